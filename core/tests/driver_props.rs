//! Property tests of the call driver: random server scripts (statuses, retry hints,
//! `x-should-retry`, transport errors, stalls, cuts, in-band errors, any chunking of the event
//! stream) against random policies (retries, backoff and jitter, hint cap, every timeout,
//! budget, breaker, rate and concurrency limits), driven by a small virtual-time loop.
//!
//! The loop here mirrors `vllm_testkit::sim` (which core tests cannot depend on): it answers
//! each `Send` from the script, races every arrival against the deadline the driver handed
//! out, and jumps the clock. Several calls run interleaved over one `Shared`.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use proptest::prelude::*;
use vllm_client_core::call::{
    Action, Call, Event, ResponseHead, Shared, SleepReason, TransportErrorKind,
};
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::{ClientConfig, RateLimit};
use vllm_client_core::policy::{
    Backoff, BreakerConfig, Jitter, RetryBudgetConfig, SlidingWindow, Timeouts,
};
use vllm_client_core::request::Endpoint;
use vllm_client_core::{StreamEvent, StreamKind};

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

#[derive(Debug, Clone)]
enum Part {
    Bytes(Bytes),
    Wait(u64),
}

#[derive(Debug, Clone)]
struct Attempt {
    head: Head,
    head_delay: u64,
    parts: Vec<Part>,
    end: End,
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
fn chunked(bytes: &[u8], cuts: &[usize], waits: &[u64]) -> Vec<Part> {
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
            parts.push(Part::Wait(wait));
        }
        parts.push(Part::Bytes(Bytes::copy_from_slice(&bytes[w[0]..w[1]])));
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
        200u16, 200, 200, 400, 401, 403, 404, 408, 422, 429, 500, 501, 502, 503, 504,
    ]);
    prop_oneof![
        8 => (status, hint_strategy(), prop::option::of(any::<bool>())).prop_map(
            |(status, hint, should_retry)| Head::Status { status, hint, should_retry }
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

fn opt_ms(range: std::ops::Range<u64>) -> impl Strategy<Value = Option<Duration>> {
    prop::option::of(range.prop_map(ms))
}

fn config_strategy() -> impl Strategy<Value = ClientConfig> {
    let retry = (
        0u32..5,
        0u64..2000,
        0u64..10_000,
        0u32..4,
        prop::sample::select(vec![
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ]),
        0u64..120_000,
        any::<bool>(),
    );
    let timeouts = (
        opt_ms(1..5000),
        opt_ms(1..20_000),
        opt_ms(1..20_000),
        opt_ms(1..60_000),
        opt_ms(1..60_000),
    );
    let limits = (
        prop::option::of((1u32..20, 0u32..10)),
        prop::option::of((1u32..6, 1u32..4, 1u32..4)),
        prop::option::of(1u32..3),
        prop::option::of((1u32..4, 1u64..3000, 1u32..3)),
    );
    (retry, timeouts, limits).prop_map(|(r, t, l)| {
        let mut c = ClientConfig::default();
        let p = &mut c.policy;
        p.retry.max_retries = r.0;
        p.retry.backoff = Backoff {
            initial: ms(r.1),
            max: ms(r.2),
            multiplier: r.3,
            jitter: r.4,
        };
        p.retry.max_retry_after = ms(r.5);
        p.retry.honor_retry_after = r.6;
        p.timeouts = Timeouts {
            connect: t.0,
            first_token: t.1,
            idle: t.2,
            attempt: t.3,
            total: t.4,
        };
        p.budget = l.0.map(|(capacity, cost)| RetryBudgetConfig {
            capacity,
            retry_cost: cost,
            timeout_retry_cost: cost * 2,
            success_reward: 1,
            refill_millis_per_sec: 100,
        });
        p.breaker = l.1.map(|(size, min, probes)| BreakerConfig {
            window: SlidingWindow::Count { size },
            minimum_calls: min,
            failure_rate_threshold: 50,
            break_duration: ms(2000),
            half_open_probes: probes,
            probe_lease: ms(10_000),
            ..BreakerConfig::default()
        });
        p.max_concurrency = l.2;
        p.rate_limit = l.3.map(|(requests, per, burst)| RateLimit {
            requests,
            per: ms(per),
            burst,
        });
        c
    })
}

#[derive(Debug, Clone)]
struct CallPlan {
    stream: bool,
    start: u64,
    cancel_at_step: Option<usize>,
    script: Vec<Attempt>,
}

fn plan_strategy() -> impl Strategy<Value = CallPlan> {
    (
        any::<bool>(),
        0u64..5000,
        prop_oneof![4 => Just(None), 1 => (0usize..40).prop_map(Some)],
        prop::collection::vec(attempt_strategy(), 1..7),
    )
        .prop_map(|(stream, start, cancel_at_step, script)| CallPlan {
            stream,
            start,
            cancel_at_step,
            script,
        })
}

fn spec(stream: bool) -> CallSpec {
    let body = serde_json::json!({"model": "m", "messages": [], "stream": stream});
    if stream {
        CallSpec::stream(Endpoint::ChatCompletions, StreamKind::Chat, Ok(body))
    } else {
        CallSpec::json(Endpoint::ChatCompletions, Ok(body))
    }
}

// --------------------------------------------------------------------------------------------
// The local virtual-time driver
// --------------------------------------------------------------------------------------------

/// What one call did, with offsets from the run's start in ms-precision `Duration`s.
#[derive(Debug, Default, Clone, PartialEq)]
struct Trace {
    started: Duration,
    overall: Option<Duration>,
    /// (offset, deadline offset)
    sends: Vec<(Duration, Option<Duration>)>,
    /// (offset, until offset, is retry, sends made before it)
    sleeps: Vec<(Duration, Duration, bool, usize)>,
    emits: Vec<(Duration, String)>,
    deadlines: Vec<Duration>,
    /// For each attempt that got a head: its index and status.
    heads: Vec<(usize, u16)>,
    done: Option<(Duration, Result<usize, String>)>,
    cancelled: bool,
    log: Vec<String>,
}

#[derive(Debug)]
enum Pending {
    Head(ResponseHead),
    Transport(TransportErrorKind),
    Chunk(Bytes),
    BodyEnd,
    Timeout,
    Released,
}

#[derive(Debug)]
enum Wait {
    NotStarted,
    Poll,
    At(Instant, Pending),
    Permit(Option<Instant>, vllm_client_core::policy::WaiterId),
    Never,
    Done,
}

struct Task {
    plan: CallPlan,
    call: Option<Call>,
    script: VecDeque<Attempt>,
    body: VecDeque<Part>,
    end: End,
    ready_at: Instant,
    wait: Wait,
    steps: usize,
    trace: Trace,
}

struct Run {
    t0: Instant,
    now: Instant,
    shared: Shared,
    config: ClientConfig,
    /// Breaches of invariants checked while running (probes, in-flight).
    violations: Vec<String>,
    steps: usize,
    hit_step_bound: bool,
    /// When set, `now` passed to the driver is sometimes earlier than the true time.
    skew: Vec<u64>,
    skew_i: usize,
}

impl Run {
    fn off(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.t0)
    }

    /// The `now` handed to the driver: the true time, or an earlier one when skewing.
    fn driver_now(&mut self) -> Instant {
        if self.skew.is_empty() {
            return self.now;
        }
        self.skew_i = self.skew_i.wrapping_add(1);
        let s = self.skew[self.skew_i % self.skew.len()];
        self.now.checked_sub(ms(s)).unwrap_or(self.now)
    }
}

fn run(config: &ClientConfig, seed: u64, plans: &[CallPlan], skew: Vec<u64>) -> (Vec<Trace>, Run) {
    let t0 = Instant::now();
    let mut r = Run {
        t0,
        now: t0,
        shared: Shared::new(&config.policy, seed),
        config: config.clone(),
        violations: Vec::new(),
        steps: 0,
        hit_step_bound: false,
        skew,
        skew_i: 0,
    };
    let mut tasks: Vec<Task> = plans
        .iter()
        .map(|p| Task {
            plan: p.clone(),
            call: None,
            script: p.script.iter().cloned().collect(),
            body: VecDeque::new(),
            end: End::Close,
            ready_at: t0,
            wait: Wait::NotStarted,
            steps: 0,
            trace: Trace::default(),
        })
        .collect();
    loop {
        let next = tasks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let w = match &t.wait {
                    Wait::NotStarted => Some(t0 + ms(t.plan.start)),
                    Wait::Poll => Some(r.now),
                    Wait::At(at, _) => Some(*at),
                    Wait::Permit(d, _) => *d,
                    Wait::Never | Wait::Done => None,
                };
                w.map(|w| (w, i))
            })
            .min();
        let Some((wake, i)) = next else {
            // Nothing scheduled: cancel whatever waits forever (no deadline), so its permit
            // comes back, then wake the permit waiters.
            let mut any = false;
            for t in tasks.iter_mut() {
                if matches!(t.wait, Wait::Never | Wait::Permit(None, _)) {
                    any = true;
                    cancel(&mut r, t);
                }
            }
            if !any {
                break;
            }
            wake_named(&mut r, &mut tasks);
            continue;
        };
        r.now = r.now.max(wake);
        r.steps += 1;
        if r.steps > MAX_STEPS {
            r.hit_step_bound = true;
            break;
        }
        step(&mut r, &mut tasks[i]);
        check_shared(&mut r);
        wake_named(&mut r, &mut tasks);
    }
    // Whatever did not end (the step bound): cancel, for the permit checks.
    for t in tasks.iter_mut() {
        if !matches!(t.wait, Wait::Done) {
            cancel(&mut r, t);
        }
    }
    let traces = tasks.into_iter().map(|t| t.trace).collect();
    (traces, r)
}

/// Wakes exactly the waiters the core names, as an adapter does, and checks that the named
/// waiter is the one that waited longest (first come, first served).
fn wake_named(r: &mut Run, tasks: &mut [Task]) {
    while let Some(w) = r.shared.poll_wake() {
        let earlier = tasks
            .iter()
            .filter_map(|t| match t.wait {
                Wait::Permit(_, x) if x < w => Some(x),
                _ => None,
            })
            .min();
        if let Some(earlier) = earlier {
            r.violations.push(format!(
                "{w:?} got a slot before {earlier:?}, which waited longer"
            ));
        }
        for t in tasks.iter_mut() {
            if matches!(t.wait, Wait::Permit(_, x) if x == w) {
                t.wait = Wait::At(r.now, Pending::Released);
            }
        }
    }
}

fn check_shared(r: &mut Run) {
    let now = r.now;
    if let (Some(max), Some(n)) = (r.config.policy.max_concurrency, r.shared.in_flight()) {
        if n > max {
            r.violations.push(format!("{n} in flight > {max}"));
        }
    }
    let probes = r.config.policy.breaker.map(|b| b.half_open_probes.max(1));
    if let (Some(max), Some(b)) = (probes, r.shared.breaker_mut()) {
        let n = b.in_flight_probes(now);
        if n > max {
            r.violations.push(format!("{n} half-open probes > {max}"));
        }
    }
}

fn cancel(r: &mut Run, t: &mut Task) {
    let now = r.driver_now();
    if let Some(call) = t.call.as_mut() {
        call.cancel(now, &mut r.shared);
        t.trace.cancelled = true;
        match call.poll(now, &mut r.shared) {
            Action::Done(res) => {
                let res = res.map(|b| b.len()).map_err(|e| e.to_string());
                t.trace.done.get_or_insert((r.off(r.now), res));
            }
            other => r
                .violations
                .push(format!("poll after cancel returned {other:?}")),
        }
    }
    t.wait = Wait::Done;
}

fn step(r: &mut Run, t: &mut Task) {
    match std::mem::replace(&mut t.wait, Wait::Poll) {
        Wait::NotStarted => {
            let call = Call::new(&r.config, spec(t.plan.stream), r.now, &mut r.shared);
            t.trace.started = r.off(r.now);
            t.trace.overall = r.config.policy.timeouts.total.map(|d| t.trace.started + d);
            t.call = Some(call);
        }
        Wait::At(_, p) => {
            let ev = match p {
                Pending::Head(h) => Event::Response(h),
                Pending::Transport(kind) => Event::TransportError {
                    kind,
                    message: "x".into(),
                },
                Pending::Chunk(b) => Event::Chunk(b),
                Pending::BodyEnd => Event::BodyEnd,
                Pending::Timeout => Event::Timeout,
                Pending::Released => Event::PermitReleased,
            };
            t.trace.log.push(match &ev {
                Event::Chunk(b) => format!("{:?} Chunk {}B", r.off(r.now), b.len()),
                Event::Response(h) => format!("{:?} Response {}", r.off(r.now), h.status),
                other => format!("{:?} {other:?}", r.off(r.now)),
            });
            let now = r.driver_now();
            if let Some(c) = t.call.as_mut() {
                c.handle(now, ev, &mut r.shared);
            }
        }
        Wait::Permit(..) => {
            let now = r.driver_now();
            if let Some(c) = t.call.as_mut() {
                c.handle(now, Event::Timeout, &mut r.shared);
            }
        }
        w @ (Wait::Poll | Wait::Never | Wait::Done) => t.wait = w,
    }
    if matches!(t.wait, Wait::Done) {
        return;
    }
    t.wait = Wait::Poll;
    loop {
        t.steps += 1;
        if t.plan.cancel_at_step == Some(t.steps) {
            cancel(r, t);
            return;
        }
        if t.steps > MAX_STEPS {
            r.hit_step_bound = true;
            cancel(r, t);
            return;
        }
        let now = r.driver_now();
        let Some(call) = t.call.as_mut() else { return };
        let action = call.poll(now, &mut r.shared);
        let at = r.off(r.now);
        t.trace.log.push(match &action {
            Action::Send { .. } => format!("{at:?} Send"),
            Action::Sleep { until, .. } => format!("{at:?} Sleep until {:?}", r.off(*until)),
            Action::ReadBody { .. } => format!("{at:?} ReadBody"),
            other => format!("{at:?} {other:?}"),
        });
        match action {
            Action::Emit(ev) => {
                let s = match &ev {
                    StreamEvent::Content(c) => format!("content:{c}"),
                    StreamEvent::Done => "done".into(),
                    StreamEvent::Error(e) => format!("error:{e}"),
                    other => format!("{other:?}"),
                };
                t.trace.emits.push((at, s));
            }
            Action::Done(res) => {
                let res = res.map(|b| b.len()).map_err(|e| e.to_string());
                t.trace.done = Some((at, res));
                t.wait = Wait::Done;
                return;
            }
            Action::Sleep { until, reason } => {
                let retry = matches!(reason, SleepReason::Retry(_));
                let sent = t.trace.sends.len();
                t.trace.sleeps.push((at, r.off(until), retry, sent));
                t.wait = Wait::At(until.max(r.now), Pending::Timeout);
                return;
            }
            Action::WaitForPermit { deadline, waiter } => {
                if let Some(d) = deadline {
                    t.trace.deadlines.push(r.off(d));
                }
                t.wait = Wait::Permit(deadline, waiter);
                return;
            }
            Action::Send {
                deadline,
                connect_timeout,
                ..
            } => {
                t.trace.sends.push((at, deadline.map(|d| r.off(d))));
                if let Some(d) = deadline {
                    t.trace.deadlines.push(r.off(d));
                }
                let Some(a) = t.script.pop_front() else {
                    // Script exhausted: the server stalls from now on.
                    t.wait = race(None, deadline);
                    return;
                };
                let attempt = t.trace.sends.len() - 1;
                t.wait = answer(r, t, attempt, a, deadline, connect_timeout);
                return;
            }
            Action::ReadBody { deadline, .. } => {
                if let Some(d) = deadline {
                    t.trace.deadlines.push(r.off(d));
                }
                t.wait = read(r, t, deadline);
                return;
            }
        }
    }
}

fn race(arrival: Option<(Instant, Pending)>, deadline: Option<Instant>) -> Wait {
    match (arrival, deadline) {
        (Some((at, _)), Some(d)) if at > d => Wait::At(d, Pending::Timeout),
        (Some((at, p)), _) => Wait::At(at, p),
        (None, Some(d)) => Wait::At(d, Pending::Timeout),
        (None, None) => Wait::Never,
    }
}

fn answer(
    r: &mut Run,
    t: &mut Task,
    attempt: usize,
    a: Attempt,
    deadline: Option<Instant>,
    connect_timeout: Option<Duration>,
) -> Wait {
    let at = r.now + ms(a.head_delay);
    let arrival = match a.head {
        Head::Stall => None,
        Head::Connect => Some((at, Pending::Transport(TransportErrorKind::Connect))),
        Head::ConnectTimeout => {
            let ct = connect_timeout.unwrap_or(ms(a.head_delay));
            Some((
                r.now + ct,
                Pending::Transport(TransportErrorKind::ConnectTimeout),
            ))
        }
        Head::Reset => Some((at, Pending::Transport(TransportErrorKind::Io))),
        Head::Status {
            status,
            hint,
            should_retry,
        } => {
            let mut headers = HeaderMap::new();
            let mut put = |k: &'static str, v: String| {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    headers.insert(HeaderName::from_static(k), v);
                }
            };
            match hint {
                Some(Hint::Ms(m)) => put("retry-after-ms", m.to_string()),
                Some(Hint::Secs(s)) => put("retry-after", s.to_string()),
                None => {}
            }
            if let Some(b) = should_retry {
                put("x-should-retry", b.to_string());
            }
            let head = ResponseHead::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                headers,
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_760_000_000),
            );
            if deadline.is_none_or(|d| at <= d) {
                t.trace.heads.push((attempt, status));
            }
            t.body = a.parts.into_iter().collect();
            t.end = a.end;
            t.ready_at = at;
            Some((at, Pending::Head(head)))
        }
    };
    race(arrival, deadline)
}

fn read(r: &mut Run, t: &mut Task, deadline: Option<Instant>) -> Wait {
    if t.ready_at < r.now {
        t.ready_at = r.now;
    }
    while let Some(Part::Wait(w)) = t.body.front() {
        t.ready_at += ms(*w);
        t.body.pop_front();
    }
    let at = t.ready_at;
    let late = deadline.is_some_and(|d| at > d);
    let arrival = match t.body.front() {
        Some(Part::Bytes(_)) if late => Some((at, Pending::Timeout)),
        Some(Part::Bytes(b)) => {
            let b = b.clone();
            t.body.pop_front();
            Some((at, Pending::Chunk(b)))
        }
        _ => match t.end {
            End::Close => Some((at, Pending::BodyEnd)),
            End::Reset => Some((at, Pending::Transport(TransportErrorKind::Io))),
            End::Stall => None,
        },
    };
    race(arrival, deadline)
}

// --------------------------------------------------------------------------------------------
// Checks
// --------------------------------------------------------------------------------------------

fn hint_of(a: &Attempt) -> Option<Duration> {
    match &a.head {
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

/// Every per-call invariant of one trace.
fn check_trace(cfg: &ClientConfig, plan: &CallPlan, tr: &Trace) -> Result<(), TestCaseError> {
    let p = &cfg.policy;
    let ctx = || tr.log.join("\n");
    // The call ended.
    prop_assert!(tr.done.is_some(), "never ended\n{}", ctx());
    let (end, result) = tr.done.clone().unwrap_or_default_pair();
    // Attempts ≤ 1 + max_retries.
    prop_assert!(
        tr.sends.len() as u64 <= u64::from(p.retry.max_retries) + 1,
        "{} sends, max_retries {}\n{}",
        tr.sends.len(),
        p.retry.max_retries,
        ctx()
    );
    // Never a send after an emit.
    if let Some((first_emit, _)) = tr.emits.first() {
        let later = tr.sends.iter().filter(|(at, _)| at >= first_emit).count();
        // A send at the very instant of the first emit must come before it in the log.
        let sends_after = tr
            .log
            .iter()
            .skip_while(|l| !l.contains("Emit("))
            .filter(|l| l.ends_with(" Send"))
            .count();
        prop_assert_eq!(
            sends_after,
            0,
            "send after emit ({} at/after)\n{}",
            later,
            ctx()
        );
    }
    // Deadlines: none past the overall deadline; sleeps and the end neither.
    if let Some(overall) = tr.overall {
        for d in &tr.deadlines {
            prop_assert!(*d <= overall, "deadline {:?} > {:?}\n{}", d, overall, ctx());
        }
        for (_, until, _, _) in &tr.sleeps {
            prop_assert!(
                *until <= overall,
                "sleep to {:?} > {:?}\n{}",
                until,
                overall,
                ctx()
            );
        }
        let slept: Duration = tr
            .sleeps
            .iter()
            .map(|(a, u, _, _)| u.saturating_sub(*a))
            .sum();
        prop_assert!(
            slept <= overall - tr.started,
            "slept {:?}\n{}",
            slept,
            ctx()
        );
        if !tr.cancelled {
            prop_assert!(
                end <= overall,
                "ended at {:?} > {:?}\n{}",
                end,
                overall,
                ctx()
            );
        }
    }
    // Retry classification, hints and x-should-retry, attempt by attempt.
    for (i, status) in &tr.heads {
        let a = &plan.script[*i];
        let retried = tr.sends.len() > i + 1;
        let Head::Status { should_retry, .. } = &a.head else {
            continue;
        };
        if *status == 200 {
            continue;
        }
        if *should_retry == Some(false) {
            prop_assert!(!retried, "x-should-retry: false retried\n{}", ctx());
        }
        if [400, 401, 403, 404, 422, 501].contains(status) && *should_retry != Some(true) {
            prop_assert!(!retried, "{} retried\n{}", status, ctx());
        }
        if retried && p.retry.honor_retry_after {
            if let Some(h) = hint_of(a) {
                prop_assert!(h <= p.retry.max_retry_after, "hint over the cap\n{}", ctx());
                // The retry sleep between attempt i and i+1 is exactly h.
                let retry_sleeps: Vec<Duration> = tr
                    .sleeps
                    .iter()
                    .filter(|(_, _, retry, sent)| *retry && *sent == i + 1)
                    .map(|(at, u, _, _)| u.saturating_sub(*at))
                    .filter(|d| !d.is_zero())
                    .collect();
                // A zero hint retries at once, without a sleep action.
                let expected: Vec<Duration> =
                    Some(h).filter(|h| !h.is_zero()).into_iter().collect();
                prop_assert_eq!(retry_sleeps, expected, "hint {:?}\n{}", h, ctx());
            }
        }
    }
    // A stream that emitted events ends Ok (the failure is its last event); a JSON call
    // emits nothing.
    if !tr.cancelled {
        if plan.stream {
            if !tr.emits.is_empty() {
                prop_assert!(
                    result.is_ok(),
                    "stream with output ended {:?}\n{}",
                    result,
                    ctx()
                );
                let last = &tr.emits[tr.emits.len() - 1].1;
                prop_assert!(last == "done" || last.starts_with("error:"), "{}", ctx());
            }
            let terminals = tr
                .emits
                .iter()
                .filter(|(_, s)| s == "done" || s.starts_with("error:"))
                .count();
            prop_assert!(terminals <= 1, "{} terminal events\n{}", terminals, ctx());
        } else {
            prop_assert!(tr.emits.is_empty(), "{}", ctx());
        }
    }
    Ok(())
}

trait DonePair {
    fn unwrap_or_default_pair(self) -> (Duration, Result<usize, String>);
}

impl DonePair for Option<(Duration, Result<usize, String>)> {
    fn unwrap_or_default_pair(self) -> (Duration, Result<usize, String>) {
        self.unwrap_or((Duration::ZERO, Err("never ended".into())))
    }
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
    /// hints, `x-should-retry`, termination, the stream contract.
    #[test]
    fn single_call_invariants(cfg in config_strategy(), plan in plan_strategy(), seed in any::<u64>()) {
        let plan = CallPlan { cancel_at_step: None, start: 0, ..plan };
        let (traces, r) = run(&cfg, seed, std::slice::from_ref(&plan), Vec::new());
        prop_assert!(!r.hit_step_bound, "step bound\n{}", traces[0].log.join("\n"));
        prop_assert!(r.violations.is_empty(), "{:?}", r.violations);
        check_trace(&cfg, &plan, &traces[0])?;
        prop_assert_eq!(r.shared.in_flight().unwrap_or(0), 0);
    }

}

proptest! {
    #![proptest_config(cases(1000))]

    /// Several calls interleaved over one `Shared`, some cancelled mid-way: every call ends,
    /// in-flight stays ≤ the limit and returns to 0, half-open probes stay ≤ the configured
    /// number, and every per-call invariant still holds.
    #[test]
    fn concurrent_calls_share_limits_and_breaker(
        cfg in config_strategy(),
        plans in prop::collection::vec(plan_strategy(), 1..5),
        seed in any::<u64>(),
    ) {
        let (traces, r) = run(&cfg, seed, &plans, Vec::new());
        prop_assert!(!r.hit_step_bound);
        prop_assert!(r.violations.is_empty(), "{:?}", r.violations);
        for (plan, tr) in plans.iter().zip(&traces) {
            check_trace(&cfg, plan, tr)?;
        }
        prop_assert_eq!(r.shared.in_flight().unwrap_or(0), 0, "permits leaked");
    }

    /// Same config, seed and script ⇒ the same timeline, to the nanosecond.
    #[test]
    fn same_seed_same_timeline(
        cfg in config_strategy(),
        plans in prop::collection::vec(plan_strategy(), 1..3),
        seed in any::<u64>(),
    ) {
        // The logs print absolute `Instant`s; everything else is offsets.
        let strip = |mut t: Vec<Trace>| { for x in &mut t { x.log.clear(); } t };
        let (a, _) = run(&cfg, seed, &plans, Vec::new());
        let (b, _) = run(&cfg, seed, &plans, Vec::new());
        prop_assert_eq!(strip(a), strip(b));
    }

}

proptest! {
    #![proptest_config(cases(1500))]

    /// Time going backwards (a `now` earlier than one already seen) never panics, and the call
    /// still ends.
    #[test]
    fn time_going_backwards_never_panics(
        cfg in config_strategy(),
        plan in plan_strategy(),
        skew in prop::collection::vec(prop_oneof![Just(0u64), 0u64..100_000], 1..8),
        seed in any::<u64>(),
    ) {
        // An adapter that reports an earlier time *every* time makes no progress by design;
        // the true time comes through now and then.
        let mut skew = skew;
        skew.push(0);
        let (traces, r) = run(&cfg, seed, std::slice::from_ref(&plan), skew);
        prop_assert!(!r.hit_step_bound, "step bound\n{}", traces[0].log.join("\n"));
        prop_assert!(traces[0].done.is_some());
        prop_assert_eq!(r.shared.in_flight().unwrap_or(0), 0);
    }
}

/// After `Done`, every poll returns the same `Done` and events change nothing — for calls
/// that ended on their own and for calls cancelled at a random step. Driven by a deliberately
/// naive adapter (every answer at once, one event per action), 1000 cases.
#[test]
fn done_is_sticky_after_a_natural_end() {
    let mut runner = proptest::test_runner::TestRunner::new(cases(1000));
    runner
        .run(
            &(config_strategy(), plan_strategy(), any::<u64>()),
            |(cfg, plan, seed)| {
                let t0 = Instant::now();
                let mut shared = Shared::new(&cfg.policy, seed);
                let mut call = Call::new(&cfg, spec(plan.stream), t0, &mut shared);
                let mut now = t0;
                let mut script: VecDeque<Attempt> = plan.script.iter().cloned().collect();
                let mut body: VecDeque<Part> = VecDeque::new();
                let mut end = End::Close;
                let mut done = None;
                // A deliberately naive adapter: every response at once, every timer at its
                // deadline, one event per action.
                for step in 0..MAX_STEPS {
                    if plan.cancel_at_step == Some(step) {
                        call.cancel(now, &mut shared);
                    }
                    match call.poll(now, &mut shared) {
                        Action::Done(r) => {
                            done = Some(r.map(|b| b.len()).map_err(|e| e.to_string()));
                            break;
                        }
                        Action::Emit(_) => {}
                        Action::Sleep { until, .. } => {
                            now = now.max(until);
                            call.handle(now, Event::Timeout, &mut shared);
                        }
                        Action::WaitForPermit { .. } => call.cancel(now, &mut shared),
                        Action::Send { .. } => match script.pop_front() {
                            Some(Attempt {
                                head: Head::Status { status, .. },
                                parts,
                                end: e,
                                ..
                            }) => {
                                body = parts.into_iter().collect();
                                end = e;
                                let head = ResponseHead::new(
                                    StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                                    HeaderMap::new(),
                                    SystemTime::UNIX_EPOCH,
                                );
                                call.handle(now, Event::Response(head), &mut shared);
                            }
                            _ => call.handle(
                                now,
                                Event::TransportError {
                                    kind: TransportErrorKind::Connect,
                                    message: "x".into(),
                                },
                                &mut shared,
                            ),
                        },
                        Action::ReadBody { .. } => {
                            while let Some(Part::Wait(_)) = body.front() {
                                body.pop_front();
                            }
                            let ev = match body.pop_front() {
                                Some(Part::Bytes(b)) => Event::Chunk(b),
                                _ if end == End::Reset => Event::TransportError {
                                    kind: TransportErrorKind::Io,
                                    message: "x".into(),
                                },
                                _ => Event::BodyEnd,
                            };
                            call.handle(now, ev, &mut shared);
                        }
                    }
                }
                let done = done.ok_or_else(|| TestCaseError::fail("never ended"))?;
                for i in 0..5u64 {
                    let later = now + ms(i * 7000);
                    call.handle(
                        later,
                        Event::Chunk(Bytes::from_static(b"data: [DONE]\n\n")),
                        &mut shared,
                    );
                    call.handle(later, Event::Timeout, &mut shared);
                    call.handle(later, Event::BodyEnd, &mut shared);
                    match call.poll(later, &mut shared) {
                        Action::Done(r) => prop_assert_eq!(
                            r.map(|b| b.len()).map_err(|e| e.to_string()),
                            done.clone()
                        ),
                        other => return Err(TestCaseError::fail(format!("{other:?}"))),
                    }
                }
                prop_assert_eq!(shared.in_flight().unwrap_or(0), 0);
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A server hint at the extremes (`Duration::MAX`-like values) with a cap that accepts it
/// never turns into a zero wait (a hot retry loop).
#[test]
fn a_huge_accepted_hint_never_becomes_a_zero_wait() {
    let mut cfg = ClientConfig::default();
    cfg.policy.retry.max_retry_after = Duration::MAX;
    let t0 = Instant::now();
    let mut shared = Shared::new(&cfg.policy, 1);
    let mut call = Call::new(&cfg, spec(false), t0, &mut shared);
    let mut now = t0;
    let mut sends = 0;
    for _ in 0..100 {
        match call.poll(now, &mut shared) {
            Action::Send { .. } => {
                sends += 1;
                let mut h = HeaderMap::new();
                h.insert(
                    "retry-after",
                    HeaderValue::from_static("99999999999999999999999"),
                );
                let head =
                    ResponseHead::new(StatusCode::SERVICE_UNAVAILABLE, h, SystemTime::UNIX_EPOCH);
                call.handle(now, Event::Response(head), &mut shared);
            }
            Action::ReadBody { .. } => call.handle(now, Event::BodyEnd, &mut shared),
            Action::Sleep { until, .. } => {
                assert!(
                    until > now + Duration::from_secs(1_000_000),
                    "a huge hint slept only {:?}",
                    until - now
                );
                // Nobody waits that long: give up the call.
                call.cancel(now, &mut shared);
            }
            Action::Done(_) => break,
            other => panic!("{other:?}"),
        }
        now += ms(1);
    }
    assert_eq!(sends, 1);
}
