//! The driver with the new operations: routes re-targeted per endpoint, per-call options in
//! the call's policy, transport errors keeping their cause, operation and provider names for
//! observability.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use vllm_client_core::call::observe::operation_name;
use vllm_client_core::call::{
    Action, AttemptId, Call, CallMeta, Event, Shared, TransportErrorKind,
};
use vllm_client_core::client::{CallOptions, CallSpec};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::pool::{EndpointConfig, EndpointId, Pool, PoolConfig};
use vllm_client_core::request::{Operation, RequestConfig, Route};
use vllm_client_core::VllmError;

mod support;

fn first_send(call: &mut Call, now: Instant, shared: &mut Shared) -> AttemptId {
    support::send(call, now, shared)
}

#[test]
fn every_endpoint_of_a_pool_gets_the_same_route() {
    let request = RequestConfig {
        endpoints: vec![
            EndpointConfig::new("http://a:1/v1"),
            EndpointConfig::new("http://b:2/gw/v1"),
        ],
        ..Default::default()
    };
    let pool = Pool::new(&request, PoolConfig::default(), 1);
    for (route, op, a, b) in [
        (
            Route::new(Method::POST, "/v2/rerank"),
            Operation::Rerank,
            "http://a:1/v2/rerank",
            "http://b:2/gw/v2/rerank",
        ),
        (
            Route::new(Method::GET, "/v1/responses/resp_1?stream=true"),
            Operation::RetrieveResponse,
            "http://a:1/v1/responses/resp_1?stream=true",
            "http://b:2/gw/v1/responses/resp_1?stream=true",
        ),
    ] {
        let template = CallSpec::get(op)
            .with_route(route)
            .build_request(&request)
            .unwrap();
        assert_eq!(template.uri(), a);
        let on_b = pool.request(EndpointId::new(1), &template, op).unwrap();
        assert_eq!(on_b.uri(), b);
    }
    // Without a route, the operation's own path, as before.
    let template = CallSpec::get(Operation::Models)
        .build_request(&request)
        .unwrap();
    let on_b = pool
        .request(EndpointId::new(1), &template, Operation::Models)
        .unwrap();
    assert_eq!(on_b.uri(), "http://b:2/gw/v1/models");
}

#[test]
fn a_calls_options_are_its_policy_and_headers() {
    let mut config = ClientConfig::default();
    config.request.base_url = "http://h:1/v1".into();
    let t0 = Instant::now();
    let mut shared = Shared::new(&config, 1);
    // A deadline already past: the call ends with a timeout before anything is sent.
    let spec = CallSpec::get(Operation::Models).with_options(&CallOptions::new().deadline(t0));
    let mut call = Call::new(&config, spec, t0, &mut shared);
    match call.poll(t0, &mut shared) {
        Action::Done(Err(VllmError::Timeout)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    // A request timeout: the send's deadline is the request's, not the client's 600 s.
    let spec = CallSpec::get(Operation::Models).with_options(
        &CallOptions::new()
            .timeout(Duration::from_secs(2))
            .header("x-a", "1"),
    );
    let mut call = Call::new(&config, spec, t0, &mut shared);
    match call.poll(t0, &mut shared) {
        Action::Send {
            deadline, request, ..
        } => {
            assert_eq!(deadline, Some(t0 + Duration::from_secs(2)));
            assert_eq!(request.headers()["x-a"], "1");
        }
        other => panic!("expected a send, got {other:?}"),
    }
    // max_retries(0): a 503 ends the call.
    let spec = CallSpec::get(Operation::Models).with_options(&CallOptions::new().max_retries(0));
    let mut call = Call::new(&config, spec, t0, &mut shared);
    let attempt = first_send(&mut call, t0, &mut shared);
    let head = vllm_client_core::call::ResponseHead::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        http::HeaderMap::new(),
        std::time::SystemTime::now(),
    );
    let (_, end) = support::answer(&mut call, t0, &mut shared, attempt, head, &[], true);
    match end {
        Action::Done(Err(e)) => assert_eq!(e.status().map(|s| s.as_u16()), Some(503)),
        other => panic!("expected the 503, got {other:?}"),
    }
}

#[test]
fn a_transport_failure_keeps_its_source() {
    let mut config = ClientConfig::default();
    config.policy.retry.max_retries = 0;
    let t0 = Instant::now();
    let mut shared = Shared::new(&config, 1);
    let mut call = Call::new(&config, CallSpec::get(Operation::Models), t0, &mut shared);
    let attempt = first_send(&mut call, t0, &mut shared);
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    call.handle(
        t0,
        Event::TransportError {
            attempt,
            kind: TransportErrorKind::Connect,
            message: "error sending request: refused".into(),
            source: Some(Arc::new(io)),
        },
    );
    match support::next(&mut call, t0, &mut shared) {
        Action::Done(Err(e)) => {
            assert!(e.is_connect(), "{e:?}");
            let io = e
                .source()
                .unwrap()
                .downcast_ref::<std::io::Error>()
                .unwrap();
            assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected the error, got {other:?}"),
    }
}

#[test]
fn operation_and_provider_names() {
    for (op, name) in [
        (Operation::ChatCompletions, "chat"),
        (Operation::Responses, "chat"),
        (Operation::Completions, "text_completion"),
        (Operation::Embeddings, "embeddings"),
        (Operation::RetrieveResponse, "retrieve_response"),
        (Operation::CancelResponse, "cancel_response"),
        (Operation::Rerank, "rerank"),
        (Operation::Score, "score"),
        (Operation::Classify, "classify"),
        (Operation::Pooling, "pooling"),
        (Operation::Transcriptions, "transcription"),
        (Operation::Translations, "translation"),
        (Operation::LoadLoraAdapter, "load_lora_adapter"),
        (Operation::UnloadLoraAdapter, "unload_lora_adapter"),
        (Operation::Custom, "http"),
    ] {
        assert_eq!(operation_name(op), name, "{op:?}");
    }
    let request = RequestConfig {
        provider_name: Some("litellm".into()),
        endpoints: vec![
            EndpointConfig::new("http://a/v1"),
            EndpointConfig::new("http://b/v1").provider_name("openai"),
        ],
        ..Default::default()
    };
    let meta = CallMeta::new(Operation::ChatCompletions, None, None).with_providers(&request);
    assert_eq!(meta.provider_for(None), Some("litellm"));
    assert_eq!(meta.provider_for(Some(EndpointId::new(0))), Some("litellm"));
    assert_eq!(meta.provider_for(Some(EndpointId::new(1))), Some("openai"));
    let plain = CallMeta::new(Operation::ChatCompletions, None, None)
        .with_providers(&RequestConfig::default());
    assert_eq!(plain.provider_for(Some(EndpointId::new(0))), None);
}
