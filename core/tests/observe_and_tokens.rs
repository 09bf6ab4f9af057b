//! The driver's observations (what the runner turns into spans and metrics) and the token rate
//! limit, driven in virtual time with no sockets.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;
use serde_json::json;
use vllm_client_core::call::observe::{ErrorType, Limiter};
use vllm_client_core::call::{Action, Call, Event, Observation, Purpose, ResponseHead, Shared};
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::{RateLimited, TimeoutKind, TokenRateLimiter};
use vllm_client_core::pool::EndpointId;
use vllm_client_core::request::Operation;
use vllm_client_core::{StreamEvent, StreamKind, VllmError};

mod support;
use support::{answer, next, send};

fn config() -> ClientConfig {
    let mut c = ClientConfig::default();
    c.request.base_url = "http://127.0.0.1:9/v1".into();
    c.policy.seed = Some(3);
    c.policy.budget = None;
    c
}

fn chat(prompt: &str, max_tokens: u64) -> CallSpec {
    CallSpec::json(
        Operation::ChatCompletions,
        Ok(json!({
            "model": "m-1",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        })),
    )
}

fn json_head(status: u16) -> ResponseHead {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    ResponseHead::new(StatusCode::from_u16(status).unwrap(), h, SystemTime::now())
}

fn answer_body(prompt_tokens: u64, completion_tokens: u64) -> Bytes {
    Bytes::from(
        json!({
            "id": "x", "object": "chat.completion", "model": "m-1-served",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}
        })
        .to_string(),
    )
}

fn observations(call: &mut Call) -> Vec<Observation> {
    std::iter::from_fn(|| call.poll_observation()).collect()
}

/// Answers the pending send with a JSON 200 using the given usage.
fn answer_ok(call: &mut Call, now: Instant, shared: &mut Shared, usage: (u64, u64)) {
    let attempt = call.attempt();
    let body = answer_body(usage.0, usage.1);
    let (_, end) = answer(call, now, shared, attempt, json_head(200), &[&body], true);
    assert!(matches!(end, Action::Done(Ok(_))), "{end:?}");
}

#[test]
fn a_retried_call_is_observed_in_order_with_its_meta_and_response() {
    let cfg = config();
    let t0 = Instant::now();
    let mut shared = Shared::new(&cfg, 1);
    let mut call = Call::new(&cfg, chat("hello", 5), t0, &mut shared);
    assert_eq!(call.meta().operation, "chat");
    assert_eq!(call.meta().span_name(), "chat m-1");
    assert_eq!(call.meta().server_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(call.meta().server_port, Some(9));

    let attempt = send(&mut call, t0, &mut shared);
    let mut h = json_head(503);
    h.headers
        .insert("retry-after-ms", HeaderValue::from_static("100"));
    let (_, wait) = answer(&mut call, t0, &mut shared, attempt, h, &[], true);
    let Action::Wait {
        until: Some(until), ..
    } = wait
    else {
        panic!("a backoff, got {wait:?}")
    };
    assert_eq!(until, t0 + Duration::from_millis(100));
    call.handle(until, Event::Timeout);
    assert!(matches!(call.poll(until, &mut shared), Action::Send { .. }));
    let t1 = until + Duration::from_millis(30);
    answer_ok(&mut call, t1, &mut shared, (3, 4));

    let obs = observations(&mut call);
    assert_eq!(
        obs,
        vec![
            Observation::AttemptStarted {
                attempt: 1,
                endpoint: EndpointId::new(0),
                purpose: Purpose::Attempt,
            },
            Observation::AttemptEnded {
                attempt: 1,
                status: Some(StatusCode::SERVICE_UNAVAILABLE),
                error: Some(ErrorType::Status(503)),
                duration: Duration::ZERO,
            },
            Observation::Retry {
                attempt: 1,
                cause: ErrorType::Status(503),
                delay: Duration::from_millis(100),
                hinted: true,
            },
            Observation::AttemptStarted {
                attempt: 2,
                endpoint: EndpointId::new(0),
                purpose: Purpose::Attempt,
            },
            Observation::AttemptEnded {
                attempt: 2,
                status: Some(StatusCode::OK),
                error: None,
                duration: Duration::from_millis(30),
            },
            Observation::Finished {
                error: None,
                attempts: 2,
                duration: Duration::from_millis(130),
            },
        ]
    );
    let info = call.response_info();
    assert_eq!(info.model.as_deref(), Some("m-1-served"));
    assert_eq!(info.finish_reasons, ["stop"]);
    assert_eq!(info.usage.as_ref().map(|u| u.prompt_tokens), Some(3));
}

#[test]
fn a_stream_observes_its_first_chunk_timer_and_error() {
    let mut cfg = config();
    cfg.policy.timeouts.idle = Some(Duration::from_millis(50));
    let t0 = Instant::now();
    let mut shared = Shared::new(&cfg, 1);
    let spec = CallSpec::stream(
        Operation::ChatCompletions,
        StreamKind::Chat,
        Ok(json!({"model": "m-1", "messages": []})),
    );
    let mut call = Call::new(&cfg, spec, t0, &mut shared);
    let attempt = send(&mut call, t0, &mut shared);
    let mut h = HeaderMap::new();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    let head = ResponseHead::new(StatusCode::OK, h, SystemTime::now());
    call.handle(t0, Event::Response { attempt, head });
    assert!(matches!(
        call.poll(t0, &mut shared),
        Action::ReadBody { .. }
    ));
    let t1 = t0 + Duration::from_millis(20);
    call.handle(
        t1,
        Event::Chunk {
            attempt,
            bytes: Bytes::from_static(
                b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
            ),
        },
    );
    assert!(matches!(
        call.poll(t1, &mut shared),
        Action::Emit(StreamEvent::Content(_))
    ));
    assert!(matches!(
        call.poll(t1, &mut shared),
        Action::ReadBody { .. }
    ));
    let t2 = t1 + Duration::from_millis(50);
    call.handle(t2, Event::Timeout);
    assert!(matches!(
        next(&mut call, t2, &mut shared),
        Action::Emit(StreamEvent::Error(VllmError::Timeout))
    ));
    assert!(matches!(next(&mut call, t2, &mut shared), Action::Done(_)));
    let obs = observations(&mut call);
    assert_eq!(
        obs,
        vec![
            Observation::AttemptStarted {
                attempt: 1,
                endpoint: EndpointId::new(0),
                purpose: Purpose::Attempt,
            },
            Observation::FirstChunk {
                attempt: 1,
                since_call_start: Duration::from_millis(20),
                since_attempt_start: Duration::from_millis(20),
            },
            Observation::TimerFired {
                kind: TimeoutKind::Idle
            },
            Observation::AttemptEnded {
                attempt: 1,
                status: Some(StatusCode::OK),
                error: Some(ErrorType::Timeout),
                duration: Duration::from_millis(70),
            },
            Observation::Finished {
                error: Some(ErrorType::Timeout),
                attempts: 1,
                duration: Duration::from_millis(70),
            },
        ]
    );
}

#[test]
fn token_limit_waits_and_the_reported_usage_refunds_the_estimate() {
    let mut cfg = config();
    cfg.policy.token_rate_limit = Some(600); // 10 tokens a second, a bucket of 600
    let t0 = Instant::now();
    let mut shared = Shared::new(&cfg, 1);
    // 40 characters of prompt (10 tokens) + max_tokens 390: an estimate of 400.
    let prompt = "x".repeat(40);
    let mut a = Call::new(&cfg, chat(&prompt, 390), t0, &mut shared);
    send(&mut a, t0, &mut shared);
    assert_eq!(shared.tokens_available(t0), Some(200));

    // A second call of 400 does not fit: it waits 20 s (200 tokens at 10 a second).
    let mut b = Call::new(&cfg, chat(&prompt, 390), t0, &mut shared);
    let Action::Wait {
        until: Some(until), ..
    } = b.poll(t0, &mut shared)
    else {
        panic!("b waits for tokens")
    };
    assert_eq!(until, t0 + Duration::from_secs(20));
    assert!(observations(&mut b).contains(&Observation::Waiting {
        limiter: Limiter::TokenRate,
        delay: Some(Duration::from_secs(20)),
    }));

    // `a` used 50 tokens, not 400: 350 come back. A wait already handed out is not
    // shortened (the adapter sleeps until it), but a new call fits at once.
    answer_ok(&mut a, t0, &mut shared, (10, 40));
    assert_eq!(shared.tokens_available(t0), Some(550));
    assert!(matches!(b.poll(t0, &mut shared), Action::Wait { .. }));
    let mut c = Call::new(&cfg, chat(&prompt, 390), t0, &mut shared);
    assert!(matches!(c.poll(t0, &mut shared), Action::Send { .. }));
    assert_eq!(shared.tokens_available(t0), Some(150));
    // At b's instant 200 more tokens have refilled: 350 free, b needs 400. It re-checks and
    // waits 5 s more for the rest, never going over the limit.
    b.handle(until, Event::Timeout);
    match b.poll(until, &mut shared) {
        Action::Wait {
            until: Some(again), ..
        } => {
            b.handle(again, Event::Timeout);
            assert_eq!(again, until + Duration::from_secs(5));
            assert!(matches!(b.poll(again, &mut shared), Action::Send { .. }));
        }
        other => panic!("b must wait for the rest, got {other:?}"),
    }
}

#[test]
fn token_limit_charges_a_usage_above_the_estimate_and_refuses_the_impossible() {
    let mut cfg = config();
    cfg.policy.token_rate_limit = Some(600);
    let t0 = Instant::now();
    let mut shared = Shared::new(&cfg, 1);
    let mut a = Call::new(&cfg, chat("abcd", 9), t0, &mut shared); // 1 + 9 = 10
    assert!(matches!(a.poll(t0, &mut shared), Action::Send { .. }));
    answer_ok(&mut a, t0, &mut shared, (1, 109)); // 100 more than estimated
    assert_eq!(shared.tokens_available(t0), Some(490));

    let mut huge = Call::new(&cfg, chat("", 601), t0, &mut shared);
    match huge.poll(t0, &mut shared) {
        Action::Done(Err(VllmError::RateLimited(m))) => assert!(m.contains("601"), "{m}"),
        other => panic!("refused at once, got {other:?}"),
    }
    // Not charged, and GET endpoints are never charged.
    assert_eq!(shared.tokens_available(t0), Some(490));
    let mut models = Call::new(&cfg, CallSpec::get(Operation::Models), t0, &mut shared);
    assert!(matches!(models.poll(t0, &mut shared), Action::Send { .. }));
    assert_eq!(shared.tokens_available(t0), Some(490));
}

#[test]
fn a_call_refused_by_the_request_rate_gets_its_tokens_back() {
    let mut cfg = config();
    cfg.policy.token_rate_limit = Some(600);
    cfg.policy.rate_limit = Some(vllm_client_core::config::RateLimit {
        requests: 1,
        per: Duration::from_secs(1),
        burst: 1,
    });
    let t0 = Instant::now();
    let mut shared = Shared::new(&cfg, 1);
    let mut a = Call::new(&cfg, chat("", 100), t0, &mut shared);
    assert!(matches!(a.poll(t0, &mut shared), Action::Send { .. }));
    let mut b = Call::new(&cfg, chat("", 100), t0, &mut shared);
    let Action::Wait {
        until: Some(until), ..
    } = b.poll(t0, &mut shared)
    else {
        panic!("b waits for the request rate")
    };
    // Both limits must allow: b waits for the request rate and holds no tokens meanwhile.
    assert_eq!(until, t0 + Duration::from_secs(1));
    assert_eq!(shared.tokens_available(t0), Some(500));
    b.handle(until, Event::Timeout);
    assert!(matches!(b.poll(until, &mut shared), Action::Send { .. }));
    assert_eq!(shared.tokens_available(until), Some(410));
}

proptest! {
    /// Over any run, tokens admitted by `check` never exceed a bucket plus the refill, plus
    /// what was refunded.
    #[test]
    fn token_limiter_never_admits_more_than_bucket_plus_refill(
        per_minute in 1u32..5_000,
        steps in prop::collection::vec((0u64..2_000, 0u64..3_000, -3_000i64..3_000), 1..60),
    ) {
        let t0 = Instant::now();
        let mut l = TokenRateLimiter::per_minute(per_minute);
        let mut now = t0;
        let mut admitted: u128 = 0;
        let mut refunded: u128 = 0;
        for (advance_ms, cost, adjust) in steps {
            now += Duration::from_millis(advance_ms);
            if l.check(now, cost).is_ok() {
                admitted += u128::from(cost);
            }
            if adjust < 0 {
                refunded += u128::from(adjust.unsigned_abs());
            }
            l.adjust(now, adjust);
            let elapsed_ns = now.duration_since(t0).as_nanos();
            let refill = elapsed_ns * u128::from(per_minute) / 60_000_000_000 + 1;
            prop_assert!(admitted <= u128::from(per_minute) + refill + refunded,
                "admitted {admitted} > {per_minute} + {refill} + {refunded}");
        }
    }

    /// A denied check names the instant it succeeds at, exactly.
    #[test]
    fn token_limiter_wait_is_exact(per_minute in 1u32..10_000, first in 0u64..10_000, second in 1u64..10_000) {
        let t0 = Instant::now();
        let mut l = TokenRateLimiter::per_minute(per_minute);
        let _ = l.check(t0, first);
        match l.check(t0, second) {
            Ok(()) | Err(RateLimited::Never { .. }) => {}
            Err(RateLimited::Wait { until }) => {
                let mut probe = l.clone();
                prop_assert!(probe.check(until - Duration::from_nanos(1), second).is_err());
                prop_assert!(l.check(until, second).is_ok());
            }
        }
    }
}
