//! Virtual-time scenarios of the call driver, each asserting an exact timeline.
//!
//! Every scenario also checks `out.is_clean()`: the simulator found no breach of the driver's
//! contract (deadlines, sends after output, attempt limit, terminal events) and did not have
//! to stop the call itself.

use std::time::Duration;

use vllm_client_core::call::Shared;
use vllm_client_core::config::{ClientConfig, PolicyConfig, RateLimit};
use vllm_client_core::policy::{
    Backoff, BreakerConfig, BreakerState, GiveUpReason, RetryBudgetConfig, SlidingWindow,
    TimeoutKind,
};
use vllm_client_core::request::Operation;
use vllm_client_core::{StreamEvent, VllmError};
use vllm_testkit::sim::{
    chat_json, chat_stream, Emitted, Sim, SimCall, SimOutcome, SimPart, SimResponse, Step,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn config(f: impl FnOnce(&mut PolicyConfig)) -> ClientConfig {
    let mut c = ClientConfig::default();
    f(&mut c.policy);
    c
}

/// The exact brief timeline, with the outcome's full render on failure.
fn assert_timeline(out: &SimOutcome, expected: &str) {
    let expected: String = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(out.brief(), expected, "\nfull timeline:\n{}", out.render());
}

fn assert_clean(out: &SimOutcome) {
    assert!(
        out.is_clean(),
        "violations {:?}, fault {:?}\n{}",
        out.violations,
        out.fault,
        out.render()
    );
}

fn err(out: &SimOutcome) -> &VllmError {
    match &out.result {
        Err(e) => e,
        Ok(b) => panic!("expected an error, got Ok({b:?})\n{}", out.render()),
    }
}

fn emitted(out: &SimOutcome) -> Vec<Emitted> {
    out.timeline
        .iter()
        .filter_map(|e| match &e.step {
            Step::Emit(em) => Some(em.clone()),
            _ => None,
        })
        .collect()
}

/// The offset of the first timeline entry matching `f`.
fn when(out: &SimOutcome, f: impl Fn(&Step) -> bool) -> Option<Duration> {
    out.timeline.iter().find(|e| f(&e.step)).map(|e| e.at)
}

fn s503() -> SimResponse {
    SimResponse::status(503)
        .body(r#"{"error":{"message":"busy","type":"ServiceUnavailable","code":503}}"#)
}

const OK: &str = r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;

// --- Retry-After --------------------------------------------------------------------------

#[test]
fn retry_after_ms_429_then_200_sleeps_exactly_the_hint() {
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let out = sim.run(
        chat_json(),
        vec![
            SimResponse::status(429)
                .header("retry-after-ms", "1500")
                .body(r#"{"error":{"message":"slow down","type":"RateLimit","code":429}}"#),
            SimResponse::ok_json(OK),
        ],
    );
    assert_clean(&out);
    assert_eq!(out.result.as_ref().map(|b| b.len()).ok(), Some(OK.len()));
    assert_eq!(out.sends, vec![Duration::ZERO, ms(1500)]);
    assert_eq!(out.sleeps, vec![ms(1500)]);
    assert_eq!(out.report.attempts, 2);
    assert!(out.report.retries[0].hinted);
    assert_timeline(
        &out,
        &format!(
            "0ns start
             0ns send #1 (until 600s)
             0ns <- 429
             0ns <- body end
             0ns sleep 1.5s (retry)
             1.5s <- timeout
             1.5s send #2 (until 601.5s)
             1.5s <- 200
             1.5s <- body end
             1.5s done ok ({} B)",
            OK.len()
        ),
    );
}

#[test]
fn retry_after_beyond_the_deadline_fails_at_once_with_the_hint() {
    let cfg = config(|p| p.timeouts.total = Some(secs(10)));
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(
        chat_json(),
        vec![
            SimResponse::status(429)
                .header("Retry-After", "30")
                .body("{}"),
            SimResponse::ok_json(OK),
        ],
    );
    assert_clean(&out);
    let e = err(&out);
    assert_eq!(e.retry_after(), Some(secs(30)));
    assert_eq!(e.status().map(|s| s.as_u16()), Some(429));
    assert!(out.sleeps.is_empty());
    assert_eq!(out.sends, vec![Duration::ZERO]);
    assert_eq!(
        out.report.gave_up,
        Some(GiveUpReason::HintBeyondDeadline { hint: secs(30) })
    );
    assert_eq!(out.ended_at, Duration::ZERO);
}

#[test]
fn retry_after_beyond_the_cap_fails_at_once_with_the_hint() {
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let out = sim.run(
        chat_json(),
        vec![
            SimResponse::status(503).header("retry-after", "120"),
            SimResponse::ok_json(OK),
        ],
    );
    assert_clean(&out);
    assert_eq!(err(&out).retry_after(), Some(secs(120)));
    assert_eq!(
        out.report.gave_up,
        Some(GiveUpReason::HintBeyondCap { hint: secs(120) })
    );
    assert_eq!(out.sends.len(), 1);
}

#[test]
fn retry_after_http_date_is_relative_to_the_response_date() {
    // The server's clock is 31 years behind ours: only Date → Retry-After (7 s) counts.
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let out = sim.run(
        chat_json(),
        vec![
            SimResponse::status(503)
                .header("date", "Sun, 06 Nov 1994 08:49:37 GMT")
                .header("retry-after", "Sun, 06 Nov 1994 08:49:44 GMT")
                .body("{}"),
            SimResponse::ok_json(OK),
        ],
    );
    assert_clean(&out);
    assert!(out.result.is_ok());
    assert_eq!(out.sleeps, vec![secs(7)]);
    assert_eq!(out.sends, vec![Duration::ZERO, secs(7)]);
    assert!(out.report.retries[0].hinted);
}

// --- Classification -----------------------------------------------------------------------

#[test]
fn three_503s_with_two_retries_end_with_the_last_503_after_two_jittered_sleeps() {
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let mut sim = Sim::new(ClientConfig::default(), seed);
        let out = sim.run(
            chat_json(),
            vec![s503(), s503(), s503(), SimResponse::ok_json(OK)],
        );
        assert_clean(&out);
        assert_eq!(err(&out).status().map(|s| s.as_u16()), Some(503));
        assert_eq!(out.report.attempts, 3);
        assert_eq!(out.report.gave_up, Some(GiveUpReason::AttemptsExhausted));
        assert_eq!(out.sleeps.len(), 2, "{}", out.render());
        // Full jitter: [0, 500 ms) then [0, 1 s).
        assert!(out.sleeps[0] < ms(500), "{:?}", out.sleeps);
        assert!(out.sleeps[1] < secs(1), "{:?}", out.sleeps);
        assert_eq!(
            out.sends,
            vec![Duration::ZERO, out.sleeps[0], out.sleeps[0] + out.sleeps[1]]
        );
        assert_eq!(out.ended_at, out.sleeps[0] + out.sleeps[1]);
        distinct.insert(out.sleeps.clone());
    }
    // The jitter is real: 200 seeds do not all draw the same delays.
    assert!(distinct.len() > 100, "{} distinct", distinct.len());
}

#[test]
fn x_should_retry_false_on_a_503_is_not_retried() {
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let out = sim.run(
        chat_json(),
        vec![
            s503().header("x-should-retry", "false"),
            SimResponse::ok_json(OK),
        ],
    );
    assert_clean(&out);
    assert_eq!(err(&out).status().map(|s| s.as_u16()), Some(503));
    assert_eq!(out.sends, vec![Duration::ZERO]);
    assert_eq!(out.report.gave_up, Some(GiveUpReason::NotRetryable));
}

#[test]
fn x_should_retry_true_retries_a_400() {
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let out = sim.run(
        chat_json(),
        vec![
            SimResponse::status(400)
                .header("x-should-retry", "true")
                .body("{}"),
            SimResponse::ok_json(OK),
        ],
    );
    assert_clean(&out);
    assert!(out.result.is_ok());
    assert_eq!(out.sends.len(), 2);
}

#[test]
fn client_errors_and_501_are_never_retried() {
    for status in [400u16, 401, 403, 404, 422, 501] {
        let mut sim = Sim::new(ClientConfig::default(), 1);
        let out = sim.run(
            chat_json(),
            vec![
                SimResponse::status(status).body(r#"{"error":"no"}"#),
                SimResponse::ok_json(OK),
            ],
        );
        assert_clean(&out);
        assert_eq!(err(&out).status().map(|s| s.as_u16()), Some(status));
        assert_eq!(out.sends, vec![Duration::ZERO], "{status}");
        assert!(out.sleeps.is_empty());
        assert_eq!(out.report.gave_up, Some(GiveUpReason::NotRetryable));
    }
}

#[test]
fn connection_refused_is_retried_then_reported_as_a_connect_error() {
    let cfg = config(|p| p.retry.backoff = Backoff::constant(ms(250)));
    let mut sim = Sim::new(cfg.clone(), 1);
    let out = sim.run(
        chat_json(),
        vec![
            SimResponse::connect_refused(),
            SimResponse::connect_refused(),
            SimResponse::connect_refused(),
        ],
    );
    assert_clean(&out);
    assert!(err(&out).is_connect(), "{:?}", out.result);
    assert_timeline(
        &out,
        "0ns start
         0ns send #1 (until 600s)
         0ns <- transport error Connect
         0ns sleep 250ms (retry)
         250ms <- timeout
         250ms send #2 (until 600.25s)
         250ms <- transport error Connect
         250ms sleep 250ms (retry)
         500ms <- timeout
         500ms send #3 (until 600.5s)
         500ms <- transport error Connect
         500ms done err: could not connect to the server: simulated Connect",
    );

    // Refused once, then the server is up.
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(
        chat_json(),
        vec![SimResponse::connect_refused(), SimResponse::ok_json(OK)],
    );
    assert_clean(&out);
    assert!(out.result.is_ok());
    assert_eq!(out.sends, vec![Duration::ZERO, ms(250)]);
}

#[test]
fn a_slow_connect_times_out_on_the_connect_timeout_and_is_retried() {
    let cfg = config(|p| {
        p.timeouts.connect = Some(secs(2));
        p.retry.backoff = Backoff::constant(ms(100));
    });
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(
        chat_json(),
        vec![
            SimResponse::ok_json(OK).connect_after(secs(5)),
            SimResponse::ok_json(OK).connect_after(secs(1)),
        ],
    );
    assert_clean(&out);
    assert!(out.result.is_ok());
    assert_eq!(out.sends, vec![Duration::ZERO, ms(2100)]);
    assert_eq!(
        when(&out, |s| matches!(s, Step::Response(200))),
        Some(ms(3100))
    );
}

// --- Breaker ------------------------------------------------------------------------------

fn breaker_config() -> ClientConfig {
    config(|p| {
        p.retry.max_retries = 0;
        p.breaker = Some(BreakerConfig {
            window: SlidingWindow::Count { size: 4 },
            minimum_calls: 3,
            failure_rate_threshold: 50,
            break_duration: secs(30),
            half_open_probes: 1,
            ..BreakerConfig::default()
        });
    })
}

fn transitions(shared: &mut Shared) -> Vec<(BreakerState, BreakerState)> {
    std::iter::from_fn(|| shared.poll_transition())
        .map(|(_, t)| (t.from, t.to))
        .collect()
}

#[test]
fn failures_open_the_breaker_which_fails_fast_then_one_probe_closes_it() {
    let mut sim = Sim::new(breaker_config(), 1);
    for i in 0..3 {
        let out = sim.run(chat_json(), vec![s503()]);
        assert_clean(&out);
        assert_eq!(out.sends.len(), 1, "call {i}");
        sim.advance(secs(1));
    }
    // Tripped by the third failure at t = 2 s.
    assert_eq!(
        transitions(sim.shared_mut()),
        vec![(BreakerState::Closed, BreakerState::Open)]
    );
    let now = sim.now();
    assert_eq!(
        sim.shared().breaker_state(Operation::ChatCompletions, now),
        Some(BreakerState::Open)
    );

    // Fails fast, without a send, telling when the next probe is admitted (t = 32 s).
    let out = sim.run(chat_json(), vec![SimResponse::ok_json(OK)]);
    assert_clean(&out);
    assert!(out.sends.is_empty());
    match err(&out) {
        VllmError::CircuitOpen { retry_in } => assert_eq!(*retry_in, secs(29)),
        e => panic!("expected CircuitOpen, got {e:?}"),
    }
    assert_eq!(out.ended_at, secs(3));

    // After the break: one probe; a second call while the probe is out is refused.
    sim.advance(secs(29));
    let outs = sim.run_all(vec![
        SimCall::new(
            chat_json(),
            vec![SimResponse::ok_json(OK).head_after(secs(1))],
        ),
        SimCall::new(chat_json(), vec![SimResponse::ok_json(OK)]).start_after(ms(500)),
    ]);
    for o in &outs {
        assert_clean(o);
    }
    assert!(outs[0].result.is_ok());
    assert_eq!(outs[0].sends, vec![secs(32)]);
    assert!(outs[1].sends.is_empty());
    match err(&outs[1]) {
        VllmError::CircuitOpen { retry_in } => {
            // The latest the breaker can take to admit again: the probe's lease (60 s from
            // 32 s) ends without a report, which re-opens it for one more break (30 s).
            assert_eq!(*retry_in, secs(90) - ms(500))
        }
        e => panic!("expected CircuitOpen, got {e:?}"),
    }
    assert_eq!(
        transitions(sim.shared_mut()),
        vec![
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed)
        ]
    );
    let out = sim.run(chat_json(), vec![SimResponse::ok_json(OK)]);
    assert!(out.result.is_ok());
}

#[test]
fn a_failed_probe_reopens_the_breaker() {
    let mut sim = Sim::new(breaker_config(), 1);
    for _ in 0..3 {
        sim.run(chat_json(), vec![s503()]);
    }
    sim.advance(secs(30));
    let out = sim.run(chat_json(), vec![s503()]);
    assert_eq!(out.sends.len(), 1);
    assert_eq!(
        transitions(sim.shared_mut()),
        vec![
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Open)
        ]
    );
    let out = sim.run(chat_json(), vec![SimResponse::ok_json(OK)]);
    assert!(matches!(err(&out), VllmError::CircuitOpen { .. }));
}

// --- Streams ------------------------------------------------------------------------------

fn stream_config() -> ClientConfig {
    config(|p| {
        p.timeouts.idle = Some(secs(5));
        p.retry.backoff = Backoff::constant(ms(100));
    })
}

#[test]
fn a_stall_after_the_first_content_is_an_idle_timeout_and_never_retried() {
    let mut sim = Sim::new(stream_config(), 1);
    let out = sim.run(
        chat_stream(),
        vec![
            SimResponse::sse(vec![SimPart::content("Hello")]).then_stall(),
            SimResponse::sse(vec![SimPart::content("Hello"), SimPart::done()]),
        ],
    );
    assert_clean(&out);
    assert_eq!(out.sends, vec![Duration::ZERO]);
    assert_eq!(out.content(), "Hello");
    assert!(matches!(
        out.last_event(),
        Some(StreamEvent::Error(VllmError::Timeout))
    ));
    assert_eq!(out.report.timeout, Some(TimeoutKind::Idle));
    assert_timeline(
        &out,
        "0ns start
         0ns send #1 (until 600s)
         0ns <- 200
         0ns emit content \"Hello\"
         5s <- timeout
         5s emit error: request timed out
         5s done ok (0 B)",
    );
}

#[test]
fn keep_alive_comments_do_not_keep_a_stalled_generation_alive() {
    let mut parts = vec![SimPart::wait_ms(1000), SimPart::content("Hi")];
    for _ in 0..20 {
        parts.push(SimPart::wait_ms(1000));
        parts.push(SimPart::Comment);
    }
    let mut sim = Sim::new(stream_config(), 1);
    let out = sim.run(chat_stream(), vec![SimResponse::sse(parts).then_stall()]);
    assert_clean(&out);
    assert_eq!(out.content(), "Hi");
    // Last data at 1 s, idle 5 s: fires at exactly 6 s despite a comment every second.
    assert_eq!(when(&out, |s| *s == Step::Timeout), Some(secs(6)));
    let comments = out
        .timeline
        .iter()
        .filter(|e| e.step == Step::Chunk(14))
        .count();
    assert_eq!(comments, 5, "{}", out.render());
    assert!(matches!(
        out.last_event(),
        Some(StreamEvent::Error(VllmError::Timeout))
    ));
    assert_eq!(out.sends.len(), 1);
}

#[test]
fn a_slow_first_token_is_retried_when_opted_in_and_the_second_attempt_succeeds() {
    let cfg = config(|p| {
        p.timeouts.first_token = Some(secs(10));
        p.retry.retry_first_token_timeout = true;
        p.retry.backoff = Backoff::constant(ms(100));
    });
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(
        chat_stream(),
        vec![
            // Head at once, but the first token would take 15 s (queued behind others).
            SimResponse::sse(vec![SimPart::wait_ms(15_000), SimPart::content("late")]),
            SimResponse::sse(vec![
                SimPart::wait_ms(2_000),
                SimPart::content("ok"),
                SimPart::done(),
            ]),
        ],
    );
    assert_clean(&out);
    assert_eq!(out.content(), "ok");
    assert!(matches!(out.last_event(), Some(StreamEvent::Done)));
    assert_eq!(out.report.retries.len(), 1);
    assert_timeline(
        &out,
        "0ns start
         0ns send #1 (until 10s)
         0ns <- 200
         10s <- timeout
         10s sleep 100ms (retry)
         10.1s <- timeout
         10.1s send #2 (until 20.1s)
         10.1s <- 200
         12.1s emit content \"ok\"
         12.1s emit done
         12.1s done ok (0 B)",
    );

    // A head that is itself slow is the same overload signal.
    let cfg = config(|p| {
        p.timeouts.first_token = Some(secs(10));
        p.retry.retry_first_token_timeout = true;
        p.retry.backoff = Backoff::constant(ms(100));
    });
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(
        chat_stream(),
        vec![
            SimResponse::sse(vec![SimPart::content("late"), SimPart::done()]).head_after(secs(30)),
            SimResponse::sse(vec![SimPart::content("ok"), SimPart::done()]),
        ],
    );
    assert_clean(&out);
    assert_eq!(out.content(), "ok");
    assert_eq!(out.sends, vec![Duration::ZERO, ms(10_100)]);
    assert_eq!(out.report.timeout, Some(TimeoutKind::FirstToken));
}

#[test]
fn a_truncated_stream_is_retried_before_output_and_an_error_event_after() {
    let mut sim = Sim::new(stream_config(), 1);
    let out = sim.run(
        chat_stream(),
        vec![
            SimResponse::sse(vec![]),
            SimResponse::sse(vec![SimPart::content("whole"), SimPart::done()]),
        ],
    );
    assert_clean(&out);
    assert_eq!(out.sends, vec![Duration::ZERO, ms(100)]);
    assert_eq!(
        emitted(&out),
        vec![Emitted::Content("whole".into()), Emitted::Done]
    );

    let mut sim = Sim::new(stream_config(), 1);
    let out = sim.run(
        chat_stream(),
        vec![
            SimResponse::sse(vec![SimPart::content("Hel")]),
            SimResponse::sse(vec![SimPart::content("Hello"), SimPart::done()]),
        ],
    );
    assert_clean(&out);
    assert_eq!(out.sends, vec![Duration::ZERO]);
    assert_eq!(out.content(), "Hel");
    assert!(matches!(
        out.last_event(),
        Some(StreamEvent::Error(VllmError::Truncated))
    ));
}

#[test]
fn a_connection_reset_after_output_is_an_error_event_not_a_retry() {
    let mut sim = Sim::new(stream_config(), 1);
    let out = sim.run(
        chat_stream(),
        vec![
            SimResponse::sse(vec![SimPart::content("Hel"), SimPart::wait_ms(50)]).then_reset(),
            SimResponse::sse(vec![SimPart::content("Hello"), SimPart::done()]),
        ],
    );
    assert_clean(&out);
    assert_eq!(out.sends, vec![Duration::ZERO]);
    assert_eq!(out.content(), "Hel");
    assert!(
        matches!(
            out.last_event(),
            // A stream whose connection broke before [DONE] is a truncated stream.
            Some(StreamEvent::Error(VllmError::Truncated))
        ),
        "{}",
        out.render()
    );
    assert!(out.result.is_ok());
}

#[test]
fn an_in_band_error_after_output_is_an_error_event_and_not_retried() {
    let mut sim = Sim::new(stream_config(), 1);
    let out = sim.run(
        chat_stream(),
        vec![
            SimResponse::sse(vec![
                SimPart::content("a"),
                SimPart::wait_ms(10),
                SimPart::error_event("engine died", 500),
                SimPart::done(),
            ]),
            SimResponse::sse(vec![SimPart::content("a"), SimPart::done()]),
        ],
    );
    assert_clean(&out);
    assert_eq!(out.sends, vec![Duration::ZERO]);
    assert_timeline(
        &out,
        "0ns start
         0ns send #1 (until 600s)
         0ns <- 200
         0ns emit content \"a\"
         10ms emit error: server sent an error event mid-stream: engine died (type InternalServerError)
         10ms done ok (0 B)",
    );
}

#[test]
fn an_in_band_500_before_output_is_retried() {
    let mut sim = Sim::new(stream_config(), 1);
    let out = sim.run(
        chat_stream(),
        vec![
            SimResponse::sse(vec![
                SimPart::error_event("engine busy", 500),
                SimPart::done(),
            ]),
            SimResponse::sse(vec![SimPart::content("a"), SimPart::done()]),
        ],
    );
    assert_clean(&out);
    assert_eq!(out.sends, vec![Duration::ZERO, ms(100)]);
    assert_eq!(
        emitted(&out),
        vec![Emitted::Content("a".into()), Emitted::Done]
    );
}

// --- Deadline, budget, limits --------------------------------------------------------------

#[test]
fn the_total_deadline_bounds_every_send_sleep_and_the_end() {
    let cfg = config(|p| {
        p.timeouts.attempt = Some(secs(1));
        p.timeouts.total = Some(secs(3));
        p.retry.max_retries = 10;
        p.retry.backoff = Backoff::constant(ms(500));
    });
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(chat_json(), vec![SimResponse::stall(); 11]);
    assert_clean(&out);
    assert!(matches!(err(&out), VllmError::Timeout));
    assert_timeline(
        &out,
        "0ns start
         0ns send #1 (until 1s)
         1s <- timeout
         1s sleep 500ms (retry)
         1.5s <- timeout
         1.5s send #2 (until 2.5s)
         2.5s <- timeout
         2.5s done err: request timed out",
    );
    assert_eq!(
        out.report.gave_up,
        Some(GiveUpReason::BackoffBeyondDeadline { delay: ms(500) })
    );

    // A deadline inside an attempt clamps that attempt's timer, and is never retried.
    let cfg = config(|p| {
        p.timeouts.attempt = Some(secs(1));
        p.timeouts.total = Some(ms(2200));
        p.retry.max_retries = 10;
        p.retry.backoff = Backoff::constant(ms(500));
    });
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(chat_json(), vec![SimResponse::stall(); 11]);
    assert_clean(&out);
    assert_eq!(out.sends, vec![Duration::ZERO, ms(1500)]);
    assert_eq!(out.report.timeout, Some(TimeoutKind::Deadline));
    assert_eq!(out.ended_at, ms(2200));
    assert!(matches!(err(&out), VllmError::Timeout));
}

#[test]
fn the_total_deadline_ends_a_slow_stream() {
    let cfg = config(|p| {
        p.timeouts.total = Some(secs(3));
        p.timeouts.idle = Some(secs(10));
    });
    let mut parts = Vec::new();
    for i in 0..10 {
        parts.push(SimPart::wait_ms(500));
        parts.push(SimPart::content(&i.to_string()));
    }
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(chat_stream(), vec![SimResponse::sse(parts).then_stall()]);
    assert_clean(&out);
    assert_eq!(out.content(), "012345");
    assert_eq!(when(&out, |s| *s == Step::Timeout), Some(secs(3)));
    assert_eq!(out.ended_at, secs(3));
    assert_eq!(out.report.timeout, Some(TimeoutKind::Deadline));
}

#[test]
fn an_exhausted_retry_budget_stops_retrying() {
    let cfg = config(|p| {
        p.budget = Some(RetryBudgetConfig {
            capacity: 5,
            retry_cost: 5,
            timeout_retry_cost: 10,
            success_reward: 1,
            refill_millis_per_sec: 0,
        });
        p.retry.backoff = Backoff::constant(ms(100));
    });
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(chat_json(), vec![s503(), s503(), s503()]);
    assert_clean(&out);
    assert_eq!(out.sends, vec![Duration::ZERO, ms(100)]);
    assert_eq!(out.report.gave_up, Some(GiveUpReason::BudgetExhausted));
    assert_eq!(err(&out).status().map(|s| s.as_u16()), Some(503));
    let now = sim.now();
    assert_eq!(sim.shared().budget_tokens(now), Some(0));
    // The next call's first attempt does not need the budget.
    let out = sim.run(chat_json(), vec![SimResponse::ok_json(OK)]);
    assert!(out.result.is_ok());
}

#[test]
fn the_rate_limiter_sleeps_exactly_the_gcra_wait() {
    let cfg = config(|p| {
        p.rate_limit = Some(RateLimit {
            requests: 2,
            per: secs(1),
            burst: 1,
        })
    });
    let mut sim = Sim::new(cfg, 1);
    let a = sim.run(chat_json(), vec![SimResponse::ok_json(OK)]);
    sim.advance(ms(100));
    let b = sim.run(chat_json(), vec![SimResponse::ok_json(OK)]);
    assert_clean(&a);
    assert_clean(&b);
    assert!(a.sleeps.is_empty());
    // One request per 500 ms: the second, at 100 ms, waits exactly 400 ms.
    assert_eq!(b.sleeps, vec![ms(400)]);
    assert_eq!(b.sends, vec![ms(500)]);
    assert!(b.timeline.iter().any(|e| e.step
        == Step::Sleep {
            duration: ms(400),
            retry: false
        }));
}

#[test]
fn the_rate_limiter_refuses_a_wait_past_the_deadline() {
    let cfg = config(|p| {
        p.rate_limit = Some(RateLimit {
            requests: 1,
            per: secs(10),
            burst: 1,
        });
        p.timeouts.total = Some(secs(5));
    });
    let mut sim = Sim::new(cfg, 1);
    sim.run(chat_json(), vec![SimResponse::ok_json(OK)]);
    let out = sim.run(chat_json(), vec![SimResponse::ok_json(OK)]);
    assert_clean(&out);
    assert!(matches!(err(&out), VllmError::RateLimited(_)));
    assert!(out.sends.is_empty() && out.sleeps.is_empty());
}

#[test]
fn a_second_call_waits_for_the_permit_until_the_first_stream_ends() {
    let cfg = config(|p| p.max_concurrency = Some(1));
    let mut sim = Sim::new(cfg, 1);
    let outs = sim.run_all(vec![
        SimCall::new(
            chat_stream(),
            vec![SimResponse::sse(vec![
                SimPart::content("a"),
                SimPart::wait_ms(2000),
                SimPart::done(),
            ])],
        ),
        SimCall::new(chat_json(), vec![SimResponse::ok_json(OK)]).start_after(ms(100)),
    ]);
    for o in &outs {
        assert_clean(o);
        assert!(o.result.is_ok());
    }
    assert_timeline(
        &outs[1],
        &format!(
            "100ms start
             100ms wait for permit (no deadline)
             2s <- permit released
             2s send #1 (until 602s)
             2s <- 200
             2s <- body end
             2s done ok ({} B)",
            OK.len()
        ),
    );
    assert_eq!(sim.shared().in_flight(), Some(0));
}

#[test]
fn a_cancelled_call_releases_its_permit() {
    let cfg = config(|p| p.max_concurrency = Some(1));
    let mut sim = Sim::new(cfg, 1);
    let outs = sim.run_all(vec![
        SimCall::new(
            chat_stream(),
            vec![SimResponse::sse(vec![SimPart::content("a")]).then_stall()],
        )
        .cancel_after(secs(1)),
        SimCall::new(chat_json(), vec![SimResponse::ok_json(OK)]).start_after(ms(100)),
    ]);
    assert!(outs[0].fault.is_none());
    assert!(outs[1].result.is_ok());
    assert_eq!(outs[1].sends, vec![secs(1)]);
    assert_eq!(sim.shared().in_flight(), Some(0));
}

#[test]
fn a_permit_wait_ends_at_the_deadline() {
    let cfg = config(|p| {
        p.max_concurrency = Some(1);
        p.timeouts.total = Some(secs(3));
    });
    let mut sim = Sim::new(cfg, 1);
    // Both start at 0 with a 3 s deadline; the first holds the permit until its deadline.
    let outs = sim.run_all(vec![
        SimCall::new(
            chat_json(),
            vec![SimResponse::ok_json(OK).head_after(secs(5))],
        ),
        SimCall::new(chat_json(), vec![SimResponse::ok_json(OK)]),
    ]);
    for o in &outs {
        assert_clean(o);
        assert!(matches!(err(o), VllmError::Timeout));
        assert_eq!(o.ended_at, secs(3));
    }
    assert!(outs[1].sends.is_empty());
    assert_eq!(
        outs[1].timeline[1].step,
        Step::WaitForPermit {
            deadline: Some(secs(3))
        }
    );
    assert_eq!(sim.shared().in_flight(), Some(0));
}

// --- Replay and the seed page ------------------------------------------------------------

#[test]
fn the_same_seed_replays_the_same_timeline() {
    let script = || vec![s503(), SimResponse::connect_refused(), s503()];
    let run = |seed| {
        let mut sim = Sim::new(ClientConfig::default(), seed);
        let out = sim.run(chat_json(), script());
        assert_clean(&out);
        out.timeline
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn the_seed_pages_attempt_timeout_ends_in_vllm_error_timeout() {
    // `VllmClient::new(url).timeout_secs(60)`: every attempt's whole exchange is bounded.
    let mut cfg = ClientConfig::default();
    cfg.policy.timeouts.attempt = Some(secs(60));
    let mut sim = Sim::new(cfg, 9);
    let out = sim.run(
        chat_json(),
        vec![
            SimResponse::stall(),
            // The head arrives, the body never finishes.
            SimResponse::status(200)
                .parts(vec![SimPart::raw("{\"id\":")])
                .then_stall(),
            SimResponse::ok_json(OK).head_after(secs(61)),
        ],
    );
    assert_clean(&out);
    assert!(
        matches!(out.result, Err(VllmError::Timeout)),
        "{:?}",
        out.result
    );
    assert_eq!(out.report.attempts, 3);
    assert_eq!(out.report.timeout, Some(TimeoutKind::Attempt));
    let (s0, s1) = (out.sleeps[0], out.sleeps[1]);
    assert_eq!(
        out.sends,
        vec![Duration::ZERO, secs(60) + s0, secs(120) + s0 + s1]
    );
    assert_eq!(out.ended_at, secs(180) + s0 + s1);
}

// --- The simulator itself ----------------------------------------------------------------

#[test]
fn the_simulator_reports_a_hang_instead_of_looping() {
    // No timer at all and a server that never answers: nothing can end the wait.
    let cfg = config(|p| p.timeouts = vllm_client_core::policy::Timeouts::none());
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(chat_json(), vec![SimResponse::stall()]);
    assert_eq!(out.fault, Some(vllm_testkit::sim::SimFault::Hang));
    assert!(out.result.is_err());
}

#[test]
fn the_simulator_stops_at_its_step_bound() {
    let mut parts = Vec::new();
    for _ in 0..1000 {
        parts.push(SimPart::content("x"));
    }
    let mut sim = Sim::new(stream_config(), 1).with_max_steps(50);
    let out = sim.run(chat_stream(), vec![SimResponse::sse(parts)]);
    assert_eq!(out.fault, Some(vllm_testkit::sim::SimFault::StepLimit));
    assert!(out.events.len() < 50);
}

#[test]
fn the_simulator_reports_an_exhausted_script() {
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let out = sim.run(chat_json(), vec![s503()]);
    assert_eq!(
        out.fault,
        Some(vllm_testkit::sim::SimFault::ScriptExhausted)
    );
}

#[test]
fn a_400_whose_error_body_is_cut_or_slow_is_still_not_retried() {
    let cfg = config(|p| p.timeouts.idle = Some(secs(2)));
    for resp in [
        SimResponse::status(400)
            .body(r#"{"error":{"mess"#)
            .then_reset(),
        SimResponse::status(400)
            .body(r#"{"error":{"mess"#)
            .then_stall(),
    ] {
        let mut sim = Sim::new(cfg.clone(), 1);
        let out = sim.run(chat_json(), vec![resp, SimResponse::ok_json(OK)]);
        assert_clean(&out);
        assert_eq!(out.sends.len(), 1, "{}", out.render());
        assert_eq!(err(&out).status().map(|s| s.as_u16()), Some(400));
    }
}

// --- Queued streams: first-token and idle timers -------------------------------------------

#[test]
fn a_stream_queued_for_90s_with_idle_60s_succeeds_in_one_attempt() {
    // The defaults: idle 60 s, no first-token timeout. vLLM sends the head at once and the
    // first token only when the request is scheduled; a quiet stream before its first token is
    // queued, not stalled, so the idle timer does not run yet.
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let out = sim.run(
        chat_stream(),
        vec![SimResponse::sse(vec![
            SimPart::wait_ms(90_000),
            SimPart::content("finally"),
            SimPart::done(),
        ])],
    );
    assert_clean(&out);
    assert_eq!(out.content(), "finally");
    assert_eq!(out.sends, vec![Duration::ZERO]);
    assert_timeline(
        &out,
        "0ns start
         0ns send #1 (until 600s)
         0ns <- 200
         90s emit content \"finally\"
         90s emit done
         90s done ok (0 B)",
    );
}

#[test]
fn before_the_first_data_event_the_first_token_timer_replaces_the_idle_timer() {
    // first_token 800 ms, idle 300 ms; the server sends the head, then only keep-alive
    // comments for 500 ms, then tokens: one attempt, no timeout.
    let cfg = config(|p| {
        p.timeouts.first_token = Some(ms(800));
        p.timeouts.idle = Some(ms(300));
    });
    let mut parts = Vec::new();
    for _ in 0..5 {
        parts.push(SimPart::wait_ms(100));
        parts.push(SimPart::Comment);
    }
    parts.extend([
        SimPart::content("a"),
        SimPart::content("b"),
        SimPart::done(),
    ]);
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(chat_stream(), vec![SimResponse::sse(parts)]);
    assert_clean(&out);
    assert_eq!(out.content(), "ab");
    assert!(matches!(out.last_event(), Some(StreamEvent::Done)));
    assert_eq!(out.sends, vec![Duration::ZERO]);
    assert_eq!(out.report.timeout, None);

    // After the first data event, idle applies between data events (comments do not count).
    let cfg = config(|p| {
        p.timeouts.first_token = Some(ms(800));
        p.timeouts.idle = Some(ms(300));
    });
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(
        chat_stream(),
        vec![SimResponse::sse(vec![
            SimPart::wait_ms(500),
            SimPart::content("a"),
            SimPart::wait_ms(200),
            SimPart::Comment,
            SimPart::wait_ms(200),
            SimPart::Comment,
        ])
        .then_stall()],
    );
    assert_clean(&out);
    assert_eq!(out.content(), "a");
    assert_eq!(out.report.timeout, Some(TimeoutKind::Idle));
    assert_eq!(when(&out, |s| *s == Step::Timeout), Some(ms(800)));
}

#[test]
fn a_first_token_timeout_is_not_retried_against_the_same_endpoint() {
    // The request is queued; a retry would go to the back of the same queue and throw away
    // the prefill already done. The call ends at the timer, and the report says why.
    let cfg = config(|p| p.timeouts.first_token = Some(secs(10)));
    let mut sim = Sim::new(cfg, 1);
    let out = sim.run(
        chat_stream(),
        vec![
            SimResponse::sse(vec![SimPart::wait_ms(15_000), SimPart::content("late")]),
            SimResponse::sse(vec![SimPart::content("never asked"), SimPart::done()]),
        ],
    );
    assert_clean(&out);
    assert!(matches!(err(&out), VllmError::Timeout));
    assert_eq!(out.sends, vec![Duration::ZERO]);
    assert_eq!(out.ended_at, secs(10));
    assert_eq!(out.report.timeout, Some(TimeoutKind::FirstToken));
    assert_eq!(out.report.gave_up, Some(GiveUpReason::FirstTokenTimeout));
}

// --- A server that ignores `stream: true` --------------------------------------------------

#[test]
fn a_json_answer_to_a_stream_request_becomes_the_streams_events() {
    let doc = r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there","reasoning_content":"think","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},{"id":"c2","type":"function","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let out = sim.run(chat_stream(), vec![SimResponse::ok_json(doc)]);
    assert_clean(&out);
    assert_eq!(out.sends, vec![Duration::ZERO], "not retried");
    assert_eq!(out.content(), "Hello there");
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, StreamEvent::Reasoning(r) if r == "think")));
    let calls: Vec<_> = out
        .events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCall(c) => Some((c.index, c.id.clone(), c.function.arguments.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            (0, "c1".to_owned(), r#"{"a":1}"#.to_owned()),
            (1, "c2".to_owned(), "{}".to_owned())
        ]
    );
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, StreamEvent::Usage(u) if u.total_tokens == 5)));
    assert!(matches!(out.last_event(), Some(StreamEvent::Done)));
    assert!(out.result.is_ok());
}

#[test]
fn an_html_answer_to_a_stream_request_is_a_decode_error_and_not_retried() {
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let out = sim.run(
        chat_stream(),
        vec![
            SimResponse::status(200)
                .header("content-type", "text/html; charset=utf-8")
                .body("<html><body>Gateway login</body></html>"),
            SimResponse::sse(vec![SimPart::content("never asked"), SimPart::done()]),
        ],
    );
    assert_clean(&out);
    assert_eq!(out.sends, vec![Duration::ZERO]);
    match err(&out) {
        VllmError::Decode { message, snippet } => {
            assert!(message.contains("text/html"), "{message}");
            assert!(snippet.contains("Gateway login"), "{snippet}");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    assert_eq!(out.report.gave_up, Some(GiveUpReason::NotRetryable));
}

// --- First come, first served admission -----------------------------------------------------

#[test]
fn waiting_calls_are_admitted_in_arrival_order_and_a_newcomer_never_overtakes() {
    let cfg = config(|p| p.max_concurrency = Some(1));
    let hold = |ms_: u64| {
        vec![SimResponse::sse(vec![
            SimPart::content("x"),
            SimPart::wait_ms(ms_),
            SimPart::done(),
        ])]
    };
    let mut sim = Sim::new(cfg, 1);
    let outs = sim.run_all(vec![
        SimCall::new(chat_stream(), hold(2000)),
        SimCall::new(chat_stream(), hold(1000)).start_after(ms(100)),
        SimCall::new(chat_stream(), hold(1000)).start_after(ms(200)),
        // Arrives exactly when the first call's slot frees: it queues behind the two waiters.
        SimCall::new(chat_stream(), hold(1000)).start_after(ms(2000)),
    ]);
    for o in &outs {
        assert_clean(o);
        assert!(
            matches!(o.last_event(), Some(StreamEvent::Done)),
            "{}",
            o.render()
        );
    }
    let sends: Vec<Duration> = outs.iter().map(|o| o.sends[0]).collect();
    assert_eq!(sends, vec![ms(0), ms(2000), ms(3000), ms(4000)]);
    // Each release woke exactly one waiter: nobody was woken for nothing.
    for o in &outs {
        let wakes = o
            .timeline
            .iter()
            .filter(|e| e.step == Step::PermitReleased)
            .count();
        let waits = o
            .timeline
            .iter()
            .filter(|e| matches!(e.step, Step::WaitForPermit { .. }))
            .count();
        assert_eq!(wakes, waits, "{}", o.render());
        assert!(wakes <= 1, "{}", o.render());
    }
    assert_eq!(sim.shared().in_flight(), Some(0));
}

#[test]
fn a_waiter_whose_deadline_passes_leaves_the_queue_without_costing_anyone_their_turn() {
    let cfg = config(|p| p.max_concurrency = Some(1));
    let mut sim = Sim::new(cfg, 1);
    let hold = |ms_: u64| {
        vec![SimResponse::sse(vec![
            SimPart::content("x"),
            SimPart::wait_ms(ms_),
            SimPart::done(),
        ])]
    };
    let outs = sim.run_all(vec![
        SimCall::new(chat_stream(), hold(2000)),
        // Gives up (cancelled by its caller) after 500 ms in the queue.
        SimCall::new(chat_stream(), hold(1000))
            .start_after(ms(100))
            .cancel_after(ms(600)),
        SimCall::new(chat_stream(), hold(1000)).start_after(ms(200)),
    ]);
    assert!(outs[1].sends.is_empty());
    assert_eq!(outs[2].sends, vec![ms(2000)]);
    assert!(matches!(outs[2].last_event(), Some(StreamEvent::Done)));
    assert_eq!(sim.shared().in_flight(), Some(0));
    assert_eq!(sim.shared().waiting(), Some(0));
}

#[test]
fn a_call_dropped_after_some_polls_is_cancelled_between_two_emits_of_one_instant() {
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let three = SimPart::raw(
        [
            SimPart::content("a"),
            SimPart::content("b"),
            SimPart::content("c"),
        ]
        .into_iter()
        .flat_map(|p| match p {
            SimPart::Data(b) => b.to_vec(),
            _ => Vec::new(),
        })
        .collect::<Vec<u8>>(),
    );
    // Polls: send; wait (for the head); read; wait (for the chunk); emit "a"; then the caller
    // drops it, with "b" and "c" decoded but not yet emitted.
    let call = SimCall::new(
        chat_stream(),
        vec![SimResponse::sse(vec![three, SimPart::done()])],
    )
    .cancel_after_polls(5);
    let out = sim.run_all(vec![call]).remove(0);
    assert!(out.is_clean(), "{:?}\n{}", out.violations, out.render());
    assert_eq!(out.content(), "a", "{}", out.render());
    assert!(out.timeline.iter().any(|e| e.step == Step::Cancel));
    assert!(out.result.is_err());
    assert_eq!(sim.shared().in_flight(), None);
}

#[test]
fn a_clock_that_sometimes_reads_late_still_retries_after_the_hint_and_ends() {
    let mut sim = Sim::new(ClientConfig::default(), 1).with_time_skew(vec![ms(700), ms(0)]);
    let out = sim.run(
        chat_json(),
        vec![
            SimResponse::status(429).header("retry-after-ms", "1500"),
            SimResponse::ok_json("{}"),
        ],
    );
    assert!(out.is_clean(), "{:?}\n{}", out.violations, out.render());
    assert!(out.result.is_ok(), "{}", out.render());
    assert_eq!(out.sends.len(), 2);
    // The hint counts from the driver's (late) reading, never from before the call started.
    assert!(
        out.sends[1] >= ms(800) && out.sends[1] <= ms(1500),
        "{}",
        out.render()
    );
}

// --- Rate-limit headers ------------------------------------------------------------------------

#[test]
fn a_spent_server_quota_holds_the_next_call_until_it_refills_instead_of_a_429() {
    // The server says: no requests left, refilled in 2 s. The next call waits exactly 2 s
    // and is sent then — instead of being sent at once and answered 429.
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let first = sim.run(
        chat_json(),
        vec![SimResponse::ok_json(OK)
            .header("x-ratelimit-limit-requests", "60")
            .header("x-ratelimit-remaining-requests", "0")
            .header("x-ratelimit-reset-requests", "2s")],
    );
    assert_clean(&first);
    let snapshot = first.report.rate_limit.expect("the headers were read");
    assert_eq!(snapshot.requests.remaining, Some(0));
    assert_eq!(snapshot.wait(), Some(secs(2)));
    let second = sim.run(chat_json(), vec![SimResponse::ok_json(OK)]);
    assert_clean(&second);
    assert!(second.result.is_ok());
    assert_eq!(second.sleeps, vec![secs(2)], "{}", second.render());
    assert_eq!(second.sends, vec![secs(2)], "{}", second.render());
    // The gate is spent: a third call goes at once.
    let third = sim.run(chat_json(), vec![SimResponse::ok_json(OK)]);
    assert!(third.sleeps.is_empty() && third.sends == vec![secs(2)]);
}

#[test]
fn a_quota_refilling_past_the_deadline_fails_at_once_with_the_hint() {
    let cfg = config(|p| p.timeouts.total = Some(secs(1)));
    let mut sim = Sim::new(cfg, 1);
    let first = sim.run(
        chat_json(),
        vec![SimResponse::status(429)
            .header("x-ratelimit-remaining-tokens", "0")
            .header("x-ratelimit-reset-tokens", "6m0s")
            .body(r#"{"error":{"message":"rate limited","type":"rate_limit_error","code":429}}"#)],
    );
    // Its retry is refused at once (a 6-minute refill is past the cap), with the 429 itself.
    let e = err(&first);
    let snapshot = e.rate_limit().expect("on the error");
    assert_eq!(snapshot.tokens.reset, Some(secs(360)));
    assert!(matches!(
        first.report.gave_up,
        Some(GiveUpReason::HintBeyondCap { .. })
    ));
    let second = sim.run(chat_json(), vec![SimResponse::ok_json(OK)]);
    assert_clean(&second);
    match err(&second) {
        VllmError::RateLimited(message) => assert!(message.contains("refills in 35"), "{message}"),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(second.sends.is_empty());
}

/// The simulator drives calls through `Call::poll_with`, the path production takes: a stream
/// of 300 events takes the shared state a handful of times (admission, the first data event,
/// the end), never per event. A simulator that called `Call::poll` with the shared state at
/// every step — bypassing the lock split — would take it at every one of its ~900 polls.
#[test]
fn the_simulator_runs_the_production_path_not_a_copy() {
    let mut sim = Sim::new(ClientConfig::default(), 1);
    let mut parts: Vec<SimPart> = (0..300)
        .map(|i| SimPart::content(&format!("t{i} ")))
        .collect();
    parts.push(SimPart::done());
    let before = sim.locks_taken();
    let out = sim.run(chat_stream(), vec![SimResponse::sse(parts)]);
    assert_clean(&out);
    assert_eq!(out.events.len(), 301);
    let taken = sim.locks_taken() - before;
    assert!(
        (3..=8).contains(&taken),
        "the shared state was taken {taken} times for 301 events"
    );
}
