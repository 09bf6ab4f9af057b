//! Property tests of the call driver, run on the virtual-time simulator: random server
//! scripts (statuses, retry hints, `x-should-retry`, content types, transport errors, stalls,
//! cuts, in-band errors, any chunking of the event stream) against random policies
//! (`vllm_client_core::strategies`: retries, backoff and jitter, hint cap, every timeout,
//! budget, breaker, rate and concurrency limits). Several calls run interleaved over one
//! `Shared`, some dropped mid-way, some with a clock that goes backwards.
//!
//! [`Sim`] checks the driver's contract as it drives (deadlines, attempts, no send after
//! output, the stream contract, `Done` is sticky, slots and probes never over their limits,
//! slots first come first served); every property asserts that it found nothing, and restates
//! the per-call invariants from the timeline, so a bug in the simulator's checks cannot hide
//! one in the driver.

use std::time::Duration;

use proptest::prelude::*;
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::ClientConfig;
use vllm_client_core::request::Operation;
use vllm_client_core::strategies;
use vllm_client_core::StreamKind;
use vllm_testkit::sim::{
    Emitted, Sim, SimCall, SimFault, SimOutcome, SimPart, SimResponse, Step, TimelineEntry,
};

const MAX_STEPS: usize = 20_000;

// --------------------------------------------------------------------------------------------
// Scripts
// --------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Hint {
    Ms(u64),
    Secs(u64),
}

#[derive(Debug, Clone)]
enum Head {
    Status {
        status: u16,
        hint: Option<Hint>,
        should_retry: Option<bool>,
        content_type: Option<&'static str>,
    },
    Connect,
    ConnectTimeout,
    Reset,
    Stall,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Close,
    Reset,
    Stall,
}

/// The answer to one attempt, kept as data so that the checks can read what was scripted.
#[derive(Debug, Clone)]
struct Attempt {
    head: Head,
    head_delay: u64,
    parts: Vec<SimPart>,
    end: End,
}

impl Attempt {
    fn response(&self) -> SimResponse {
        let delay = ms(self.head_delay);
        let r = match &self.head {
            // The transport's connect timer fires (when the driver hands one out); otherwise
            // nothing ever happens.
            Head::ConnectTimeout => return SimResponse::stall().connect_after(Duration::MAX),
            Head::Stall => return SimResponse::stall(),
            Head::Connect => return SimResponse::connect_refused().connect_after(delay),
            Head::Reset => return SimResponse::reset_before_head().head_after(delay),
            Head::Status {
                status,
                hint,
                should_retry,
                content_type,
            } => {
                let mut r = SimResponse::status(*status).head_after(delay);
                match hint {
                    Some(Hint::Ms(m)) => r = r.header("retry-after-ms", &m.to_string()),
                    Some(Hint::Secs(s)) => r = r.header("retry-after", &s.to_string()),
                    None => {}
                }
                if let Some(b) = should_retry {
                    r = r.header("x-should-retry", &b.to_string());
                }
                if let Some(ct) = content_type {
                    r = r.header("content-type", ct);
                }
                r
            }
        };
        let r = r.parts(self.parts.clone());
        match self.end {
            End::Close => r.then_close(),
            End::Reset => r.then_reset(),
            End::Stall => r.then_stall(),
        }
    }

    fn hint(&self) -> Option<Duration> {
        match &self.head {
            Head::Status {
                hint: Some(Hint::Ms(m)),
                ..
            } => Some(ms(*m)),
            Head::Status {
                hint: Some(Hint::Secs(s)),
                ..
            } => Some(Duration::from_secs(*s)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum SseEv {
    Content(String),
    Comment,
    Error(u16),
    Done,
    Garbage,
}

fn sse_bytes(evs: &[SseEv]) -> Vec<u8> {
    let mut out = Vec::new();
    for ev in evs {
        let s = match ev {
            SseEv::Content(t) => format!(
                "data: {}\n\n",
                serde_json::json!({"choices":[{"index":0,"delta":{"content":t},"finish_reason":null}]})
            ),
            SseEv::Comment => ": keep-alive\n\n".to_owned(),
            SseEv::Error(code) => format!(
                "data: {}\n\n",
                serde_json::json!({"error":{"message":"boom","type":"X","code":code}})
            ),
            SseEv::Done => "data: [DONE]\n\n".to_owned(),
            SseEv::Garbage => "data: {not json\n\n".to_owned(),
        };
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// Splits `bytes` at the given cut points, with a wait before each chunk.
fn chunked(bytes: &[u8], cuts: &[usize], waits: &[u64]) -> Vec<SimPart> {
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|c| if bytes.is_empty() { 0 } else { c % bytes.len() })
        .collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut parts = Vec::new();
    for (i, w) in cuts.windows(2).enumerate() {
        let wait = waits.get(i % waits.len().max(1)).copied().unwrap_or(0);
        if wait > 0 {
            parts.push(SimPart::wait_ms(wait));
        }
        parts.push(SimPart::raw(bytes[w[0]..w[1]].to_vec()));
    }
    parts
}

fn hint_strategy() -> impl Strategy<Value = Option<Hint>> {
    prop_oneof![
        3 => Just(None),
        1 => (0u64..6000).prop_map(|m| Some(Hint::Ms(m))),
        1 => (0u64..90).prop_map(|s| Some(Hint::Secs(s))),
    ]
}

fn head_strategy() -> impl Strategy<Value = Head> {
    let status = prop::sample::select(vec![
        200u16, 200, 200, 200, 200, 200, 400, 401, 403, 404, 408, 422, 429, 500, 501, 502, 503, 504,
    ]);
    // Mostly none (read as an event stream) or an event stream; sometimes a JSON document or
    // a proxy's HTML page in answer to a stream.
    let content_type = prop::sample::select(vec![
        None,
        None,
        None,
        None,
        Some("text/event-stream"),
        Some("text/event-stream"),
        Some("text/event-stream"),
        Some("application/json"),
        Some("text/html"),
    ]);
    prop_oneof![
        8 => (status, hint_strategy(), prop::option::of(any::<bool>()), content_type).prop_map(
            |(status, hint, should_retry, content_type)| Head::Status {
                status,
                hint,
                should_retry,
                content_type,
            }
        ),
        1 => Just(Head::Connect),
        1 => Just(Head::ConnectTimeout),
        1 => Just(Head::Reset),
        1 => Just(Head::Stall),
    ]
}

fn sse_ev_strategy() -> impl Strategy<Value = SseEv> {
    prop_oneof![
        6 => "[a-z你]{0,4}".prop_map(SseEv::Content),
        2 => Just(SseEv::Comment),
        1 => prop::sample::select(vec![400u16, 500, 503]).prop_map(SseEv::Error),
        2 => Just(SseEv::Done),
        1 => Just(SseEv::Garbage),
    ]
}

fn attempt_strategy() -> impl Strategy<Value = Attempt> {
    (
        head_strategy(),
        prop_oneof![3 => Just(0u64), 1 => 0u64..20_000],
        prop::collection::vec(sse_ev_strategy(), 0..8),
        prop::collection::vec(any::<usize>(), 0..6),
        prop::collection::vec(prop_oneof![3 => Just(0u64), 1 => 0u64..8000], 1..4),
        prop::sample::select(vec![End::Close, End::Close, End::Reset, End::Stall]),
    )
        .prop_map(|(head, head_delay, evs, cuts, waits, end)| {
            let body = match &head {
                Head::Status { status: 200, .. } => sse_bytes(&evs),
                _ => br#"{"error":{"message":"no","code":1}}"#.to_vec(),
            };
            Attempt {
                head,
                head_delay,
                parts: chunked(&body, &cuts, &waits),
                end,
            }
        })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One call: JSON or stream, when it starts, when its caller drops it (after that many
/// polls), and its script (padded with stalls up to `1 + max_retries` attempts).
#[derive(Debug, Clone)]
struct CallPlan {
    stream: bool,
    start: u64,
    cancel_after_polls: Option<usize>,
    script: Vec<Attempt>,
}

fn plan_strategy() -> impl Strategy<Value = CallPlan> {
    (
        any::<bool>(),
        0u64..5000,
        prop_oneof![4 => Just(None), 1 => (0usize..40).prop_map(Some)],
        prop::collection::vec(attempt_strategy(), 1..7),
    )
        .prop_map(|(stream, start, cancel_after_polls, script)| CallPlan {
            stream,
            start,
            cancel_after_polls,
            script,
        })
}

fn spec(stream: bool) -> CallSpec {
    let body = serde_json::json!({"model": "m", "messages": [], "stream": stream});
    if stream {
        CallSpec::stream(Operation::ChatCompletions, StreamKind::Chat, Ok(body))
    } else {
        CallSpec::json(Operation::ChatCompletions, Ok(body))
    }
}

impl CallPlan {
    fn sim_call(&self, cfg: &ClientConfig) -> SimCall {
        // Once the script runs out the server stalls: only the driver's deadlines end a wait.
        let attempts = cfg.policy.retry.max_retries as usize + 1;
        let mut script: Vec<SimResponse> = self.script.iter().map(Attempt::response).collect();
        script.resize_with(script.len().max(attempts), SimResponse::stall);
        let mut call = SimCall::new(spec(self.stream), script).start_after(ms(self.start));
        if let Some(n) = self.cancel_after_polls {
            call = call.cancel_after_polls(n);
        }
        call
    }
}

/// Runs `plans` concurrently on a fresh simulator.
fn run(
    cfg: &ClientConfig,
    seed: u64,
    plans: &[CallPlan],
    skew: Vec<Duration>,
) -> (Sim, Vec<SimOutcome>) {
    let mut sim = Sim::new(cfg.clone(), seed)
        .with_max_steps(MAX_STEPS)
        .with_time_skew(skew);
    let outs = sim.run_all(plans.iter().map(|p| p.sim_call(cfg)).collect());
    (sim, outs)
}

// --------------------------------------------------------------------------------------------
// Checks
// --------------------------------------------------------------------------------------------

/// The simulator stopped the call only because it would have waited forever (no deadline,
/// a stalled server): never at the step bound, never for a bad script or an unknown action.
fn fault_is_benign(out: &SimOutcome) -> bool {
    matches!(out.fault, None | Some(SimFault::Hang))
}

fn is_terminal(e: &Emitted) -> bool {
    matches!(e, Emitted::Done | Emitted::Error(_))
}

/// Every per-call invariant of one outcome: what the simulator checked, restated from the
/// timeline.
fn check_call(cfg: &ClientConfig, plan: &CallPlan, out: &SimOutcome) -> Result<(), TestCaseError> {
    let p = &cfg.policy;
    let ctx = || out.render();
    prop_assert!(fault_is_benign(out), "fault {:?}\n{}", out.fault, ctx());
    prop_assert!(out.violations.is_empty(), "{:?}\n{}", out.violations, ctx());
    let cancelled = out.timeline.iter().any(|e| e.step == Step::Cancel);
    let steps: Vec<&TimelineEntry> = out.timeline.iter().collect();
    // The call ended.
    let Some(end) = steps.iter().rev().find_map(|e| match &e.step {
        Step::Done(r) => Some((e.at, r.clone())),
        _ => None,
    }) else {
        return Err(TestCaseError::fail(format!("never ended\n{}", ctx())));
    };
    // Attempts ≤ 1 + max_retries.
    let sends = steps
        .iter()
        .filter(|e| matches!(e.step, Step::Send { .. }))
        .count();
    prop_assert!(
        sends as u64 <= u64::from(p.retry.max_retries) + 1,
        "{} sends, max_retries {}\n{}",
        sends,
        p.retry.max_retries,
        ctx()
    );
    // Never a send after an emit (in timeline order, so a send at the very instant of the
    // first emit must come before it).
    let sends_after_emit = steps
        .iter()
        .skip_while(|e| !matches!(e.step, Step::Emit(_)))
        .filter(|e| matches!(e.step, Step::Send { .. }))
        .count();
    prop_assert_eq!(sends_after_emit, 0, "send after emit\n{}", ctx());
    // Deadlines: none past the overall deadline; sleeps and the end neither.
    if let Some(total) = p.timeouts.total {
        let overall = out.started_at + total;
        for e in &steps {
            let deadline = match &e.step {
                Step::Send { deadline, .. }
                | Step::ReadBody { deadline }
                | Step::WaitForPermit { deadline } => *deadline,
                _ => None,
            };
            if let Some(d) = deadline {
                prop_assert!(d <= overall, "deadline {:?} > {:?}\n{}", d, overall, ctx());
            }
        }
        let mut slept = Duration::ZERO;
        for e in &steps {
            if let Step::Sleep { duration, .. } = e.step {
                prop_assert!(
                    e.at + duration <= overall,
                    "sleep past {:?}\n{}",
                    overall,
                    ctx()
                );
                slept += duration;
            }
        }
        prop_assert!(slept <= total, "slept {:?}\n{}", slept, ctx());
        if !cancelled {
            prop_assert!(
                end.0 <= overall,
                "ended at {:?} > {:?}\n{}",
                end.0,
                overall,
                ctx()
            );
        }
    }
    // Retry classification, hints and x-should-retry, attempt by attempt.
    let mut sent = 0usize;
    for (k, e) in steps.iter().enumerate() {
        match e.step {
            Step::Send { .. } => sent += 1,
            Step::Response(status) if status != 200 => {
                let i = sent - 1;
                let a = &plan.script[i];
                let Head::Status { should_retry, .. } = &a.head else {
                    continue;
                };
                let retried = sends > i + 1;
                if *should_retry == Some(false) {
                    prop_assert!(!retried, "x-should-retry: false retried\n{}", ctx());
                }
                if [400, 401, 403, 404, 422, 501].contains(&status) && *should_retry != Some(true) {
                    prop_assert!(!retried, "{} retried\n{}", status, ctx());
                }
                if let (true, true, Some(h)) = (retried, p.retry.honor_retry_after, a.hint()) {
                    prop_assert!(h <= p.retry.max_retry_after, "hint over the cap\n{}", ctx());
                    // The retry sleep before the next send is exactly h (a zero hint retries
                    // at once, without a sleep action).
                    let retry_sleeps: Vec<Duration> = steps[k..]
                        .iter()
                        .take_while(|e| !matches!(e.step, Step::Send { .. }))
                        .filter_map(|e| match e.step {
                            Step::Sleep {
                                duration,
                                retry: true,
                            } if !duration.is_zero() => Some(duration),
                            _ => None,
                        })
                        .collect();
                    let expected: Vec<Duration> =
                        Some(h).filter(|h| !h.is_zero()).into_iter().collect();
                    prop_assert_eq!(retry_sleeps, expected, "hint {:?}\n{}", h, ctx());
                }
            }
            _ => {}
        }
    }
    // A stream that emitted events ends Ok (the failure is its last event); a JSON call
    // emits nothing.
    let emits: Vec<&Emitted> = steps
        .iter()
        .filter_map(|e| match &e.step {
            Step::Emit(x) => Some(x),
            _ => None,
        })
        .collect();
    if !cancelled {
        if plan.stream {
            if let Some(last) = emits.last() {
                prop_assert!(
                    end.1.is_ok(),
                    "stream with output ended {:?}\n{}",
                    end.1,
                    ctx()
                );
                prop_assert!(is_terminal(last), "{}", ctx());
            }
            let terminals = emits.iter().filter(|e| is_terminal(e)).count();
            prop_assert!(terminals <= 1, "{} terminal events\n{}", terminals, ctx());
        } else {
            prop_assert!(emits.is_empty(), "{}", ctx());
        }
    }
    check_observations(out)
}

/// What the driver reports it did matches what it did: attempts open and close in order, one
/// retry observation per retry, and exactly one `Finished`, last, agreeing with the result.
fn check_observations(out: &SimOutcome) -> Result<(), TestCaseError> {
    use vllm_client_core::call::observe::MAX_QUEUED;
    use vllm_client_core::call::Observation as O;
    let obs = &out.observations;
    let ctx = || format!("{obs:#?}\n{}", out.render());
    if obs.len() >= MAX_QUEUED {
        return Ok(()); // the oldest were dropped: the bounded queue did its job
    }
    let finished: Vec<usize> = (0..obs.len())
        .filter(|&i| matches!(obs[i], O::Finished { .. }))
        .collect();
    prop_assert_eq!(finished.clone(), vec![obs.len() - 1], "{}", ctx());
    let mut open: Option<u32> = None;
    let mut started = 0u32;
    let mut retries = 0usize;
    for o in obs {
        match o {
            O::AttemptStarted { attempt, .. } => {
                prop_assert!(
                    open.is_none(),
                    "an attempt started inside another\n{}",
                    ctx()
                );
                started += 1;
                prop_assert_eq!(*attempt, started, "{}", ctx());
                open = Some(*attempt);
            }
            O::AttemptEnded { attempt, .. } => {
                prop_assert_eq!(open.take(), Some(*attempt), "{}", ctx());
            }
            O::FirstChunk { attempt, .. } => {
                prop_assert_eq!(open, Some(*attempt), "{}", ctx());
            }
            O::Retry { attempt, .. } => {
                retries += 1;
                prop_assert!(open.is_none(), "a retry of an open attempt\n{}", ctx());
                prop_assert_eq!(*attempt, started, "{}", ctx());
            }
            _ => {}
        }
    }
    prop_assert_eq!(started, out.report.attempts, "{}", ctx());
    prop_assert_eq!(retries, out.report.retries.len(), "{}", ctx());
    let Some(O::Finished {
        error, attempts, ..
    }) = obs.last()
    else {
        return Err(TestCaseError::fail(ctx()));
    };
    prop_assert_eq!(*attempts, out.report.attempts, "{}", ctx());
    // Success iff the call succeeded: `Done(Ok)` for JSON, a final `Done` event for a stream.
    let ok = match out.events.last() {
        Some(ev) => matches!(ev, vllm_client_core::StreamEvent::Done),
        None => out.result.is_ok(),
    };
    prop_assert_eq!(error.is_none(), ok, "{}", ctx());
    Ok(())
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// --------------------------------------------------------------------------------------------
// Properties
// --------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(2000))]

    /// One call at a time: attempts, no retry after output, deadlines, classification,
    /// hints, `x-should-retry`, termination, the stream contract, `Done` is sticky.
    #[test]
    fn single_call_invariants(cfg in strategies::client_config(), plan in plan_strategy(), seed in any::<u64>()) {
        let plan = CallPlan { cancel_after_polls: None, start: 0, ..plan };
        let (sim, outs) = run(&cfg, seed, std::slice::from_ref(&plan), Vec::new());
        check_call(&cfg, &plan, &outs[0])?;
        prop_assert_eq!(sim.shared().in_flight().unwrap_or(0), 0);
    }
}

proptest! {
    #![proptest_config(cases(1000))]

    /// Several calls interleaved over one `Shared`, some dropped mid-way: every call ends,
    /// in flight stays ≤ the limit and returns to 0, half-open probes stay ≤ the configured
    /// number, slots go first come first served, and every per-call invariant still holds.
    #[test]
    fn concurrent_calls_share_limits_and_breaker(
        cfg in strategies::client_config(),
        plans in prop::collection::vec(plan_strategy(), 1..5),
        seed in any::<u64>(),
    ) {
        let (sim, outs) = run(&cfg, seed, &plans, Vec::new());
        for (plan, out) in plans.iter().zip(&outs) {
            check_call(&cfg, plan, out)?;
        }
        prop_assert_eq!(sim.shared().in_flight().unwrap_or(0), 0, "permits leaked");
    }

    /// Same config, seed and script ⇒ the same timeline, to the nanosecond.
    #[test]
    fn same_seed_same_timeline(
        cfg in strategies::client_config(),
        plans in prop::collection::vec(plan_strategy(), 1..3),
        seed in any::<u64>(),
    ) {
        let (a, _) = run(&cfg, seed, &plans, Vec::new());
        let (b, _) = run(&cfg, seed, &plans, Vec::new());
        prop_assert_eq!(a.timeline(), b.timeline());
    }

    /// After `Done`, every poll returns the same `Done` and late events change nothing — for
    /// calls that end on their own and for calls dropped after a random number of polls (even
    /// between two emits of one instant). The simulator checks it after every `Done`.
    #[test]
    fn done_is_sticky(
        cfg in strategies::client_config(),
        plan in plan_strategy(),
        polls in 0usize..40,
        seed in any::<u64>(),
    ) {
        let plan = CallPlan { cancel_after_polls: Some(polls), start: 0, ..plan };
        let (sim, outs) = run(&cfg, seed, std::slice::from_ref(&plan), Vec::new());
        check_call(&cfg, &plan, &outs[0])?;
        prop_assert_eq!(sim.shared().in_flight().unwrap_or(0), 0);
    }
}

proptest! {
    #![proptest_config(cases(1500))]

    /// Time going backwards (a `now` earlier than one already seen) never panics, and every
    /// call still ends, without leaking its slot.
    #[test]
    fn time_going_backwards_never_panics(
        cfg in strategies::client_config(),
        plans in prop::collection::vec(plan_strategy(), 1..3),
        skew in prop::collection::vec(prop_oneof![Just(0u64), 0u64..100_000], 1..8),
        seed in any::<u64>(),
    ) {
        // An adapter that reports an earlier time *every* time makes no progress by design;
        // the true time comes through now and then.
        let mut skew: Vec<Duration> = skew.into_iter().map(ms).collect();
        skew.push(Duration::ZERO);
        let (sim, outs) = run(&cfg, seed, &plans, skew);
        for out in &outs {
            prop_assert!(fault_is_benign(out), "fault {:?}\n{}", out.fault, out.render());
            prop_assert!(out.timeline.iter().any(|e| matches!(e.step, Step::Done(_))), "{}", out.render());
        }
        prop_assert_eq!(sim.shared().in_flight().unwrap_or(0), 0);
    }
}

/// A server hint at the extremes (`Duration::MAX`-like values) with a cap that accepts it
/// never turns into a zero wait (a hot retry loop).
#[test]
fn a_huge_accepted_hint_never_becomes_a_zero_wait() {
    let mut cfg = ClientConfig::default();
    cfg.policy.retry.max_retry_after = Duration::MAX;
    let mut sim = Sim::new(cfg, 1);
    let huge = SimResponse::status(503).header("retry-after", "99999999999999999999999");
    // Nobody waits that long: the caller gives up the call a second in.
    let call = SimCall::new(spec(false), vec![huge.clone(), huge.clone(), huge])
        .cancel_after(Duration::from_secs(1));
    let out = sim.run_all(vec![call]).remove(0);
    assert_eq!(out.sends.len(), 1, "{}", out.render());
    assert_eq!(out.sleeps.len(), 1, "{}", out.render());
    assert!(
        out.sleeps[0] > Duration::from_secs(1_000_000),
        "a huge hint slept only {:?}",
        out.sleeps[0]
    );
    assert!(out.is_clean(), "{:?}", out.violations);
}
