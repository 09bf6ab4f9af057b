//! W3C trace context on the wire (the `opentelemetry` feature, on in the tests): each request
//! carries `traceparent` naming its `attempt` span, under the caller's trace, so the server's
//! spans nest under the client's; a `traceparent` set by the caller is kept.

use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use vllm_client_blocking::VllmClient;
use vllm_client_core::client::CallOptions;
use vllm_testkit::server::{FakeServer, Reply};

fn chat(client: &VllmClient) {
    client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(serde_json::json!([{"role": "user", "content": "hi"}]))
        .send()
        .expect("chat");
}

/// One test, its parts in sequence: `tracing` caches which callsites a subscriber wants, and
/// calls made on other threads without one while a thread-local subscriber is being set can
/// leave the cache stale (the attempt spans then go unrecorded).
#[test]
fn trace_context_on_the_wire() {
    no_context_no_header();
    without_a_tracing_layer_the_current_opentelemetry_context_is_used();
    every_attempt_carries_its_span_as_traceparent();
}

fn every_attempt_carries_its_span_as_traceparent() {
    let server = FakeServer::start();
    server.push_for("/v1/chat/completions", Reply::vllm_error(503, "busy"));
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("handle_user_request");
        let _entered = root.enter();
        let client = VllmClient::builder()
            .base_url(server.base_url())
            .exponential_backoff(
                std::time::Duration::from_millis(10),
                std::time::Duration::from_millis(20),
                vllm_client_core::policy::Jitter::None,
            )
            .provider_name("litellm")
            .build();
        chat(&client);
        client
            .rerank(vllm_client_core::api::RerankRequest::new(
                "rr",
                "q",
                ["a q"],
            ))
            .expect("rerank");
    });
    provider.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    let root = spans
        .iter()
        .find(|s| s.name == "handle_user_request")
        .expect("the caller's span");
    let attribute = |span: &str, key: &str| {
        spans
            .iter()
            .find(|s| s.name == span)
            .unwrap_or_else(|| panic!("a span {span}"))
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        attribute("chat m", "gen_ai.provider.name").as_deref(),
        Some("litellm")
    );
    assert_eq!(
        attribute("chat m", "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        attribute("rerank rr", "gen_ai.operation.name").as_deref(),
        Some("rerank")
    );
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "attempt")
        .take(2)
        .collect();
    assert_eq!(attempts.len(), 2, "the 503 and its retry");
    let requests: Vec<_> = server.requests().into_iter().take(2).collect();
    assert_eq!(requests.len(), 2);
    for (req, attempt) in requests.iter().zip(&attempts) {
        let expected = format!(
            "00-{}-{}-01",
            attempt.span_context.trace_id(),
            attempt.span_context.span_id()
        );
        assert_eq!(req.header("traceparent"), Some(expected.as_str()));
        // The caller's trace, continued.
        assert_eq!(
            attempt.span_context.trace_id(),
            root.span_context.trace_id()
        );
    }
    assert_ne!(
        requests[0].header("traceparent"),
        requests[1].header("traceparent"),
        "each attempt is its own span"
    );
}

fn without_a_tracing_layer_the_current_opentelemetry_context_is_used() {
    let server = FakeServer::start();
    let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let span_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let state = TraceState::from_key_value([("vendor", "x")]).unwrap();
    let remote = SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, true, state);
    let cx = opentelemetry::Context::current().with_remote_span_context(remote);
    let guard = cx.attach();
    let client = VllmClient::new(&server.base_url());
    chat(&client);
    let req = server.last_request().expect("a request");
    assert_eq!(
        req.header("traceparent"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(req.header("tracestate"), Some("vendor=x"));
    // A traceparent the caller sets is kept.
    let mine = "00-11111111111111111111111111111111-2222222222222222-00";
    client
        .with_options(CallOptions::new().header("traceparent", mine))
        .chat
        .completions()
        .create()
        .model("m")
        .messages(serde_json::json!([{"role": "user", "content": "hi"}]))
        .send()
        .expect("chat");
    assert_eq!(
        server.last_request().expect("req").header("traceparent"),
        Some(mine)
    );
    drop(guard);
}

fn no_context_no_header() {
    let server = FakeServer::start();
    chat(&VllmClient::new(&server.base_url()));
    assert_eq!(
        server.last_request().expect("req").header("traceparent"),
        None
    );
}
