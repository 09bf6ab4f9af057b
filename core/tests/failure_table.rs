//! The failure table is the one place failures are classified: every kind has exactly one row,
//! and what the breaker, the endpoint's outlier detection, the adaptive limit and the retry
//! policy do after a failure is what its row says — checked end to end, by driving a call into
//! each kind of failure and reading the shared state afterwards.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;
use vllm_client_core::call::TransportErrorKind as Transport;
use vllm_client_core::call::{Action, Call, CallSpec, Event, ResponseHead, Shared};
use vllm_client_core::config::{ClientConfig, Concurrency};
use vllm_client_core::policy::failure::{
    BreakerEffect, EjectionEffect, FailureKind, LossEffect, Retry, TABLE,
};
use vllm_client_core::policy::{BreakerConfig, ChangeCause, EjectionConfig, Failure};
use vllm_client_core::request::Operation;
use vllm_client_core::StreamKind;

mod support;

const MS: Duration = Duration::from_millis(1);

fn config(kind: FailureKind) -> ClientConfig {
    let mut c = ClientConfig::default();
    c.request.endpoints = vec!["http://a:8000/v1".into(), "http://b:8000/v1".into()];
    c.policy.seed = Some(5);
    c.policy.breaker = Some(BreakerConfig {
        minimum_calls: 1_000,
        ..BreakerConfig::default()
    });
    c.policy.set_concurrency(Some(Concurrency::auto()));
    // Never ejected by one failure: the counters tell what was recorded.
    c.policy.pool.ejection = EjectionConfig::default()
        .consecutive_failures(100)
        .consecutive_connect_failures(100);
    c.policy.timeouts.first_token = Some(1_000 * MS);
    c.policy.timeouts.idle = Some(1_000 * MS);
    c.policy.timeouts.attempt = Some(2_000 * MS);
    // The overall deadline comes first only where it is the failure.
    let total = if kind == FailureKind::DeadlineTimeout {
        1_500
    } else {
        3_000
    };
    c.policy.timeouts.total = Some(total * MS);
    c
}

fn head(
    status: u16,
    content_type: &'static str,
    extra: &[(&'static str, &'static str)],
) -> ResponseHead {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    for (k, v) in extra {
        h.insert(*k, HeaderValue::from_static(v));
    }
    ResponseHead::new(StatusCode::from_u16(status).unwrap(), h, SystemTime::now())
}

fn body() -> serde_json::Value {
    serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
}

/// How a call meets one kind of failure, on its first attempt.
enum Script {
    Transport(Transport),
    /// A JSON call whose body breaks after the head.
    BrokenBody,
    /// The wait for the head (`stream`: a stream's first token) times out at this offset.
    TimeoutSending {
        stream: bool,
        at: u64,
    },
    /// A JSON call's body stalls: the idle timer.
    TimeoutReading,
    Status(u16, &'static [(&'static str, &'static str)]),
    /// A stream's body, in one chunk, then its end.
    Stream(&'static str, &'static str),
    Cancel,
}

fn script(kind: FailureKind) -> Script {
    match kind {
        FailureKind::Connect => Script::Transport(Transport::Connect),
        FailureKind::ConnectTimeout => Script::Transport(Transport::ConnectTimeout),
        FailureKind::ResetBeforeHead => Script::Transport(Transport::Io),
        FailureKind::BrokenBody => Script::BrokenBody,
        FailureKind::FirstTokenTimeout => Script::TimeoutSending {
            stream: true,
            at: 1_000,
        },
        FailureKind::AttemptTimeout => Script::TimeoutSending {
            stream: false,
            at: 2_000,
        },
        FailureKind::IdleTimeout => Script::TimeoutReading,
        FailureKind::DeadlineTimeout => Script::TimeoutSending {
            stream: false,
            at: 1_500,
        },
        FailureKind::TooManyRequests => Script::Status(429, &[]),
        FailureKind::Unavailable => Script::Status(503, &[]),
        FailureKind::RequestTimeout => Script::Status(408, &[]),
        FailureKind::ServerError => Script::Status(502, &[]),
        FailureKind::ServerErrorFinal => Script::Status(501, &[]),
        FailureKind::ClientError => Script::Status(422, &[]),
        FailureKind::StreamError => Script::Stream(
            "text/event-stream",
            "data: {\"error\":{\"message\":\"x\",\"code\":503}}\n\n",
        ),
        FailureKind::StreamErrorClient => Script::Stream(
            "text/event-stream",
            "data: {\"error\":{\"message\":\"x\",\"code\":400}}\n\n",
        ),
        FailureKind::Truncated => Script::Stream("text/event-stream", ": nothing yet\n\n"),
        FailureKind::Decode => Script::Stream("text/html", "<html>oops</html>"),
        FailureKind::Rejected => Script::Transport(Transport::Rejected),
        FailureKind::Cancelled => Script::Cancel,
        // A kind added without a scenario fails here, not silently.
        other => panic!("no scenario for {other:?}"),
    }
}

/// What the shared state recorded after one call met `kind`, and whether the call retried.
#[derive(Debug, PartialEq)]
struct Seen {
    breaker_failures: u64,
    endpoint_failures: u64,
    endpoint_successes: u64,
    ejected: bool,
    loss: bool,
    retried: bool,
}

fn run(kind: FailureKind, hinted: bool) -> Seen {
    let config = config(kind);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut shared = Shared::new(&config, 1);
    let script = script(kind);
    let stream = matches!(
        script,
        Script::Stream(..) | Script::TimeoutSending { stream: true, .. }
    );
    let spec = if stream {
        CallSpec::stream(Operation::ChatCompletions, StreamKind::Chat, Ok(body()))
    } else {
        CallSpec::json(Operation::ChatCompletions, Ok(body()))
    };
    let mut call = Call::new(&config, spec, t0, &mut shared);
    let attempt = support::send(&mut call, t0, &mut shared);
    let mut now = t0;
    match script {
        Script::Transport(kind) => call.handle(
            now,
            Event::TransportError {
                attempt,
                kind,
                message: "scripted".into(),
                source: None,
            },
        ),
        Script::BrokenBody => {
            let (_, read) = support::answer(
                &mut call,
                now,
                &mut shared,
                attempt,
                head(200, "application/json", &[]),
                &[b"{\"cho"],
                false,
            );
            assert!(matches!(read, Action::ReadBody { .. }), "{read:?}");
            call.handle(
                now,
                Event::TransportError {
                    attempt,
                    kind: Transport::Io,
                    message: "reset".into(),
                    source: None,
                },
            );
        }
        Script::TimeoutSending { stream, at: ms } => {
            if stream {
                // vLLM sends a stream's head at once; the first token never comes.
                call.handle(
                    now,
                    Event::Response {
                        attempt,
                        head: head(200, "text/event-stream", &[]),
                    },
                );
                assert!(matches!(
                    call.poll(now, &mut shared),
                    Action::ReadBody { .. }
                ));
            }
            now = at(ms);
            call.handle(now, Event::Timeout);
        }
        Script::TimeoutReading => {
            let (_, read) = support::answer(
                &mut call,
                now,
                &mut shared,
                attempt,
                head(200, "application/json", &[]),
                &[],
                false,
            );
            assert!(matches!(read, Action::ReadBody { .. }), "{read:?}");
            now = at(1_000);
            call.handle(now, Event::Timeout);
        }
        Script::Status(status, extra) => {
            let extra: &[(&str, &str)] = if hinted {
                &[("retry-after", "1")]
            } else {
                extra
            };
            support::answer(
                &mut call,
                now,
                &mut shared,
                attempt,
                head(status, "application/json", extra),
                &[b"{\"error\":{\"message\":\"x\"}}"],
                true,
            );
        }
        Script::Stream(content_type, chunk) => {
            support::answer(
                &mut call,
                now,
                &mut shared,
                attempt,
                head(200, content_type, &[]),
                &[chunk.as_bytes()],
                true,
            );
        }
        Script::Cancel => call.cancel(now, &mut shared),
    }
    // Whatever the call owes is paid at its next poll.
    let next = support::next(&mut call, now, &mut shared);
    let retried = matches!(next, Action::Send { .. }) || !call.report().retries.is_empty();
    let endpoint = call.report().endpoints[0];
    let status = &shared.endpoints(now)[endpoint.index()];
    let breaker = shared
        .breaker_mut()
        .map(|b| b.metrics(now))
        .unwrap_or_default();
    let mut loss = false;
    while let Some(change) = shared.poll_limit_change() {
        loss |= matches!(change.cause, ChangeCause::Loss(_));
    }
    Seen {
        breaker_failures: breaker.failures,
        endpoint_failures: status.failures,
        endpoint_successes: status.successes,
        ejected: status.times_ejected > 0,
        loss,
        retried,
    }
}

/// What the row says should be seen.
fn expected(kind: FailureKind, hinted: bool) -> Seen {
    let row = kind.row();
    let failure = matches!(
        (row.ejection, hinted),
        (
            EjectionEffect::ConnectFailure | EjectionEffect::ServerFailure,
            _
        ) | (EjectionEffect::HintOrFailure, _)
            | (EjectionEffect::HintOrNeutral, true)
    );
    Seen {
        breaker_failures: u64::from(row.breaker == BreakerEffect::Failure),
        endpoint_failures: u64::from(failure),
        endpoint_successes: u64::from(row.ejection == EjectionEffect::Answered),
        // A hint takes the endpoint out until then.
        ejected: hinted
            && matches!(
                row.ejection,
                EjectionEffect::HintOrFailure | EjectionEffect::HintOrNeutral
            ),
        loss: matches!(row.loss, LossEffect::Loss(_)),
        // With a second endpoint, a first-token timeout fails over too; an in-band error is
        // retried only with a retryable code (the scripts use 503 and 400).
        retried: row.retry != Retry::No,
    }
}

#[test]
fn every_kind_has_exactly_one_row() {
    for kind in FailureKind::ALL {
        assert_eq!(
            TABLE.iter().filter(|r| r.kind == kind).count(),
            1,
            "{kind:?}"
        );
        assert_eq!(kind.row().kind, kind);
    }
    assert_eq!(TABLE.len(), FailureKind::ALL.len());
}

#[test]
fn breaker_endpoint_limit_and_retry_do_what_the_row_says() {
    for kind in FailureKind::ALL {
        let hints: &[bool] = match kind.row().ejection {
            EjectionEffect::HintOrFailure | EjectionEffect::HintOrNeutral => &[false, true],
            _ => &[false],
        };
        for &hinted in hints {
            assert_eq!(
                run(kind, hinted),
                expected(kind, hinted),
                "{kind:?} (hinted: {hinted}): {}",
                kind.row().why
            );
        }
    }
}

proptest! {
    /// Any status a server may send (100–599, named or not), with or without a hint or an
    /// `x-should-retry`: classified into one row, whose breaker and ejection columns are what
    /// the breaker and the pool use.
    #[test]
    fn any_status_finds_one_row_and_its_effects(
        status in 100u16..600,
        hint in any::<bool>(),
        should_retry in prop::option::of(any::<bool>()),
    ) {
        let mut headers = HeaderMap::new();
        if hint {
            headers.insert("retry-after", HeaderValue::from_static("2"));
        }
        if let Some(s) = should_retry {
            headers.insert("x-should-retry", HeaderValue::from_static(if s { "true" } else { "false" }));
        }
        let f = Failure::Status { status: StatusCode::from_u16(status).unwrap(), headers };
        let row = f.row(true);
        let outcome = f.breaker_outcome(None);
        let counted = !matches!(outcome, vllm_client_core::policy::Outcome::Ignored);
        prop_assert_eq!(counted, row.breaker == BreakerEffect::Failure);
        let verdict = vllm_client_core::pool::verdict_of(&f, None, true);
        prop_assert_eq!(verdict, f.verdict(None, true));
        match should_retry {
            Some(s) => prop_assert_eq!(f.is_retryable(), s),
            None => prop_assert_eq!(f.is_retryable(), row.retry == Retry::Yes),
        }
    }
}
