//! Rules of the driver's contract with transports that no simulator script can produce:
//! a request the transport refuses, and an HTTP client's connect timer that fires with the
//! deadline the driver handed out.

use std::time::{Duration, Instant};

use vllm_client_core::call::{Action, AttemptId, Call, Event, Shared, TransportErrorKind};
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::{BreakerConfig, GiveUpReason, TimeoutKind};
use vllm_client_core::request::Operation;
use vllm_client_core::VllmError;

fn send_deadline(
    call: &mut Call,
    now: Instant,
    shared: &mut Shared,
) -> (AttemptId, Option<Instant>) {
    match call.poll(now, shared) {
        Action::Send {
            attempt, deadline, ..
        } => (attempt, deadline),
        other => panic!("expected a send, got {other:?}"),
    }
}

/// The next action that is not a `Close` (closes come before the end).
fn next(call: &mut Call, now: Instant, shared: &mut Shared) -> Action {
    loop {
        match call.poll(now, shared) {
            Action::Close { .. } => continue,
            other => return other,
        }
    }
}

fn done(call: &mut Call, now: Instant, shared: &mut Shared) -> Result<bytes::Bytes, VllmError> {
    match next(call, now, shared) {
        Action::Done(r) => r,
        other => panic!("expected the end, got {other:?}"),
    }
}

#[test]
fn a_request_the_transport_refuses_is_an_invalid_request_never_retried_nor_counted() {
    let mut config = ClientConfig::default();
    config.policy.breaker = Some(BreakerConfig::default());
    let t0 = Instant::now();
    let mut shared = Shared::new(&config, 1);
    for _ in 0..50 {
        let mut call = Call::new(&config, CallSpec::get(Operation::Models), t0, &mut shared);
        let (attempt, _) = send_deadline(&mut call, t0, &mut shared);
        call.handle(
            t0,
            Event::TransportError {
                attempt,
                kind: TransportErrorKind::Rejected,
                message: "header value is not ASCII".into(),
                source: None,
            },
        );
        let e = done(&mut call, t0, &mut shared).expect_err("refused");
        assert!(matches!(e, VllmError::InvalidRequest(_)), "{e:?}");
        assert!(!e.is_retryable());
        assert_eq!(call.report().attempts, 1);
        assert_eq!(call.report().gave_up, Some(GiveUpReason::NotRetryable));
    }
    // Fifty refusals are the caller's bug, not the server's: the breaker stays closed.
    let mut call = Call::new(&config, CallSpec::get(Operation::Models), t0, &mut shared);
    send_deadline(&mut call, t0, &mut shared);
}

#[test]
fn a_connect_timer_firing_with_the_deadline_is_the_deadline() {
    // The HTTP client's connect timer was clamped to the overall deadline; whichever way the
    // transport reports it, it is the deadline's timeout: not retried.
    let mut config = ClientConfig::default();
    config.policy.timeouts.total = Some(Duration::from_secs(2));
    let t0 = Instant::now();
    let mut shared = Shared::new(&config, 1);
    let mut call = Call::new(&config, CallSpec::get(Operation::Models), t0, &mut shared);
    let (attempt, deadline) = send_deadline(&mut call, t0, &mut shared);
    let deadline = deadline.expect("a deadline");
    assert_eq!(deadline, t0 + Duration::from_secs(2));
    call.handle(
        deadline,
        Event::TransportError {
            attempt,
            kind: TransportErrorKind::ConnectTimeout,
            message: "connect timed out".into(),
            source: None,
        },
    );
    let e = done(&mut call, deadline, &mut shared).expect_err("timed out");
    assert!(e.is_timeout(), "{e:?}");
    assert_eq!(call.report().timeout, Some(TimeoutKind::Deadline));
    assert_eq!(call.report().attempts, 1);

    // Before the deadline it is a connect timeout, and retried.
    let mut call = Call::new(&config, CallSpec::get(Operation::Models), t0, &mut shared);
    let (attempt, _) = send_deadline(&mut call, t0, &mut shared);
    let early = t0 + Duration::from_millis(500);
    call.handle(
        early,
        Event::TransportError {
            attempt,
            kind: TransportErrorKind::ConnectTimeout,
            message: "connect timed out".into(),
            source: None,
        },
    );
    assert_eq!(call.report().timeout, Some(TimeoutKind::Connect));
    assert!(matches!(
        next(&mut call, early, &mut shared),
        Action::Wait { .. } | Action::Done(_)
    ));
    assert_eq!(call.report().retries.len(), 1);
}

#[test]
fn a_stream_call_always_asks_for_a_stream() {
    let spec = CallSpec::stream(
        Operation::ChatCompletions,
        vllm_client_core::StreamKind::Chat,
        Ok(serde_json::json!({"model": "m", "messages": [], "stream": false})),
    );
    let body = spec.body.expect("a body").expect("some");
    assert_eq!(body["stream"], serde_json::json!(true));
    let config = ClientConfig::default();
    let request = config
        .request
        .build(Operation::ChatCompletions, Some(&body))
        .expect("built");
    assert_eq!(request.headers()[http::header::ACCEPT], "text/event-stream");

    let spec = CallSpec::stream(
        Operation::ChatCompletions,
        vllm_client_core::StreamKind::Chat,
        Ok(serde_json::json!(["not", "an", "object"])),
    );
    assert!(matches!(spec.body, Err(VllmError::InvalidRequest(_))));
}
