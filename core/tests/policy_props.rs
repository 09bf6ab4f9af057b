//! Property tests for the invariants of every policy (backoff, retry, budget, breaker,
//! limiter) that the best resilience libraries state and test. Stateful policies are driven by random operation sequences with random
//! clock steps, including steps backwards.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;
use vllm_client_core::policy::*;
// proptest's prelude exports rand's `Rng` trait; ours wins.
use vllm_client_core::policy::Rng;

const CASES: u32 = 2000;

fn cfg() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

/// A fixed origin far enough from the platform epoch that `base() - small` never underflows.
fn base() -> Instant {
    use std::sync::OnceLock;
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn at(offset: Duration) -> Instant {
    base() + offset
}

// ---- strategies -------------------------------------------------------------------------------

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..20_000_000_000).prop_map(Duration::from_nanos),
        any::<u64>().prop_map(Duration::from_nanos),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn small_duration(max_ms: u64) -> impl Strategy<Value = Duration> {
    (0..=max_ms * 1_000_000).prop_map(Duration::from_nanos)
}

fn any_jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated)
    ]
}

fn any_backoff() -> impl Strategy<Value = Backoff> {
    (
        any_duration(),
        any_duration(),
        prop_oneof![0u32..5, any::<u32>()],
        any_jitter(),
    )
        .prop_map(|(initial, max, multiplier, jitter)| Backoff {
            initial,
            max,
            multiplier,
            jitter,
        })
}

fn any_retry_number() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..70, Just(u32::MAX), any::<u32>()]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..200_000).prop_map(|n| n.to_string()),
        (0u64..200, 0u64..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        prop::collection::vec(0x20u8..0x7f, 0..14).prop_map(|b| String::from_utf8(b).unwrap()),
        Just("Sun, 06 Nov 1994 08:49:47 GMT".to_string()),
        Just("-5".to_string()),
        Just("NaN".to_string()),
        Just("9".repeat(60)),
    ]
}

fn should_retry_value() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("true".to_string()),
        Just("false".to_string()),
        Just("TRUE".to_string()),
        Just("False".to_string()),
        prop::collection::vec(b'a'..=b'z', 0..5).prop_map(|b| String::from_utf8(b).unwrap()),
    ])
}

fn any_headers() -> impl Strategy<Value = HeaderMap> {
    (
        should_retry_value(),
        prop::option::of(header_value()),
        prop::option::of(header_value()),
        prop::option::of(header_value()),
        prop::option::of(header_value()),
    )
        .prop_map(|(sr, ms, ra, llm, date)| {
            let mut h = HeaderMap::new();
            let mut put = |k: &'static str, v: Option<String>| {
                if let Some(v) = v {
                    if let Ok(v) = HeaderValue::from_str(&v) {
                        h.insert(k, v);
                    }
                }
            };
            put("x-should-retry", sr);
            put("retry-after-ms", ms);
            put("retry-after", ra);
            put("llm_provider-retry-after", llm);
            put("date", date);
            h
        })
}

fn any_timeout_kind() -> impl Strategy<Value = TimeoutKind> {
    prop_oneof![
        Just(TimeoutKind::Connect),
        Just(TimeoutKind::FirstToken),
        Just(TimeoutKind::Idle),
        Just(TimeoutKind::Attempt),
        Just(TimeoutKind::Deadline),
    ]
}

fn any_failure() -> impl Strategy<Value = Failure> {
    prop_oneof![
        Just(Failure::Connect),
        any::<bool>().prop_map(|o| Failure::Transport { output_started: o }),
        (any_timeout_kind(), any::<bool>()).prop_map(|(kind, o)| Failure::Timeout {
            kind,
            output_started: o
        }),
        (100u16..600, any_headers()).prop_map(|(s, headers)| Failure::Status {
            status: StatusCode::from_u16(s).unwrap(),
            headers
        }),
        (prop::option::of(0u16..600), any::<bool>()).prop_map(|(code, o)| Failure::StreamError {
            code,
            output_started: o
        }),
        any::<bool>().prop_map(|o| Failure::Truncated { output_started: o }),
        any::<bool>().prop_map(|o| Failure::Decode { output_started: o }),
    ]
}

fn status_failure(code: u16, pairs: &[(&'static str, String)]) -> Failure {
    let mut headers = HeaderMap::new();
    for (k, v) in pairs {
        headers.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    Failure::Status {
        status: StatusCode::from_u16(code).unwrap(),
        headers,
    }
}

fn no_budget() -> Option<&'static mut RetryBudget> {
    None
}

/// The envelope computed independently: min(cap, initial · 2^(n−1)) in u128 nanoseconds.
fn envelope_pow2(initial: Duration, cap: Duration, n: u32) -> Duration {
    let n = n.max(1);
    let i = initial.as_nanos();
    let exact = if n > 128 {
        if i == 0 {
            Some(0)
        } else {
            None
        }
    } else {
        i.checked_mul(1u128 << (n - 1))
    };
    match exact {
        Some(e) if e <= cap.as_nanos() => {
            Duration::new((e / 1_000_000_000) as u64, (e % 1_000_000_000) as u32)
        }
        _ => cap,
    }
}

// ---- Backoff ----------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cfg())]

    /// Backoff: delay ≤ cap for every attempt number up to u32::MAX, never panics.
    #[test]
    fn backoff_delay_never_exceeds_cap(b in any_backoff(), n in any_retry_number(), prev in any_duration(), seed in any::<u64>()) {
        let d = b.delay(n, prev, &mut Rng::new(seed));
        prop_assert!(d <= b.max);
    }

    /// Backoff: full jitter lies in [0, min(cap, base·2^(n−1))).
    #[test]
    fn backoff_full_jitter_range(initial in any_duration(), max in any_duration(), n in any_retry_number(), seed in any::<u64>()) {
        let b = Backoff { initial, max, multiplier: 2, jitter: Jitter::Full };
        let env = envelope_pow2(initial, max, n);
        prop_assert_eq!(b.envelope(n), env);
        let d = b.delay(n, Duration::ZERO, &mut Rng::new(seed));
        if env.is_zero() {
            prop_assert_eq!(d, Duration::ZERO);
        } else {
            prop_assert!(d < env, "{:?} !< {:?}", d, env);
        }
    }

    /// Backoff: the envelope saturates instead of wrapping — it never decreases with n.
    #[test]
    fn backoff_envelope_saturates_monotonically(b in any_backoff(), n in any_retry_number()) {
        let m = n.saturating_add(1);
        prop_assert!(b.envelope(m) >= b.envelope(n));
        prop_assert!(b.envelope(u32::MAX) >= b.envelope(n));
        prop_assert!(b.envelope(n) <= b.max);
    }

    /// Backoff: equal and decorrelated jitter stay in their ranges.
    #[test]
    fn backoff_equal_and_decorrelated_ranges(initial in any_duration(), max in any_duration(), mult in 0u32..5, n in any_retry_number(), prev in any_duration(), seed in any::<u64>()) {
        let eq = Backoff { initial, max, multiplier: mult, jitter: Jitter::Equal };
        let env = eq.envelope(n);
        let d = eq.delay(n, prev, &mut Rng::new(seed));
        prop_assert!(d >= env / 2 && d <= env);
        if !env.is_zero() { prop_assert!(d < env); }
        let de = Backoff { jitter: Jitter::Decorrelated, ..eq };
        let d = de.delay(n, prev, &mut Rng::new(seed));
        prop_assert!(d <= max);
        prop_assert!(d >= initial.min(max));
        let hi = prev.saturating_mul(3);
        if hi > initial { prop_assert!(d < hi); }
    }

    /// Backoff: deterministic for a seed.
    #[test]
    fn backoff_deterministic_for_seed(b in any_backoff(), seed in any::<u64>(), ns in prop::collection::vec(any_retry_number(), 1..10)) {
        let run = || {
            let mut rng = Rng::new(seed);
            let mut prev = Duration::ZERO;
            ns.iter().map(|&n| { prev = b.delay(n, prev, &mut rng); prev }).collect::<Vec<_>>()
        };
        prop_assert_eq!(run(), run());
    }
}

// ---- Retry ------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cfg())]

    /// Retry: total attempts ≤ 1 + max_retries, whatever fails and whatever hints say.
    #[test]
    fn retry_attempts_bounded(max_retries in 0u32..12, failures in prop::collection::vec(any_failure(), 1..5), seed in any::<u64>()) {
        let p = RetryPolicy { max_retries, ..RetryPolicy::default() };
        let mut rng = Rng::new(seed);
        let mut attempts = 1u32;
        let mut prev = Duration::ZERO;
        let now = at(Duration::ZERO);
        loop {
            let f = &failures[(attempts as usize - 1) % failures.len()];
            let ctx = RetryContext::new(attempts, now, SystemTime::UNIX_EPOCH).with_previous_delay(prev);
            match p.decide(f, &ctx, &mut rng, no_budget()) {
                RetryDecision::Retry { delay, .. } => { attempts += 1; prev = delay; }
                RetryDecision::GiveUp(_) => break,
            }
            prop_assert!(attempts <= 1 + max_retries);
        }
        prop_assert!(attempts <= 1 + max_retries);
    }

    /// Retry: an always-retryable failure is retried exactly max_retries times.
    #[test]
    fn retry_exactly_max_retries_for_connect_errors(max_retries in 0u32..12, seed in any::<u64>()) {
        let p = RetryPolicy { max_retries, ..RetryPolicy::default() };
        let mut rng = Rng::new(seed);
        let mut attempts = 1u32;
        let now = at(Duration::ZERO);
        while let RetryDecision::Retry { .. } =
            p.decide(&Failure::Connect, &RetryContext::new(attempts, now, SystemTime::UNIX_EPOCH), &mut rng, no_budget())
        {
            attempts += 1;
        }
        prop_assert_eq!(attempts, 1 + max_retries);
    }

    /// Retry: 400/401/403/404/422 are never retried (without an explicit x-should-retry: true),
    /// whatever Retry-After says.
    #[test]
    fn retry_never_client_errors(code in prop::sample::select(vec![400u16, 401, 403, 404, 422]), mut headers in any_headers(), attempts in 0u32..3, seed in any::<u64>()) {
        if parse_should_retry(&headers) == Some(true) {
            headers.remove("x-should-retry");
        }
        let f = Failure::Status { status: StatusCode::from_u16(code).unwrap(), headers };
        let p = RetryPolicy { max_retries: 10, ..RetryPolicy::default() };
        let d = p.decide(&f, &RetryContext::new(attempts, at(Duration::ZERO), SystemTime::UNIX_EPOCH), &mut Rng::new(seed), no_budget());
        prop_assert_eq!(d, RetryDecision::GiveUp(GiveUpReason::NotRetryable));
    }

    /// Retry: without an override, only 408, 429, 500, 502, 503, 504 are retryable statuses.
    #[test]
    fn retry_status_classification(code in 100u16..600) {
        let f = status_failure(code, &[]);
        prop_assert_eq!(f.is_retryable(), [408, 429, 500, 502, 503, 504].contains(&code));
    }

    /// Retry: nothing is retried once output reached the caller — not even with
    /// x-should-retry: true.
    #[test]
    fn retry_never_after_output(f in any_failure(), attempts in 0u32..3, seed in any::<u64>()) {
        let p = RetryPolicy { max_retries: 10, ..RetryPolicy::default() };
        let d = p.decide(&f, &RetryContext::new(attempts, at(Duration::ZERO), SystemTime::UNIX_EPOCH), &mut Rng::new(seed), no_budget());
        if f.output_started() {
            prop_assert_eq!(d, RetryDecision::GiveUp(GiveUpReason::OutputStarted));
        }
        // A variant of the same failure with output started is never retried.
        let started = match f {
            Failure::Connect | Failure::Status { .. } => Failure::Transport { output_started: true },
            Failure::Transport { .. } => Failure::Transport { output_started: true },
            Failure::Timeout { kind, .. } => Failure::Timeout { kind, output_started: true },
            Failure::StreamError { code, .. } => Failure::StreamError { code, output_started: true },
            Failure::Truncated { .. } => Failure::Truncated { output_started: true },
            Failure::Decode { .. } => Failure::Decode { output_started: true },
            _ => Failure::Decode { output_started: true },
        };
        let d = p.decide(&started, &RetryContext::new(attempts, at(Duration::ZERO), SystemTime::UNIX_EPOCH), &mut Rng::new(seed), no_budget());
        prop_assert_eq!(d, RetryDecision::GiveUp(GiveUpReason::OutputStarted));
    }

    /// Retry: an accepted hint h gives delay == h exactly; a hint beyond the cap or the
    /// deadline gives up carrying it — never a silently shortened wait.
    #[test]
    fn retry_hint_exact_or_give_up(h_ms in 0u64..200_000, cap in small_duration(150_000), deadline_ms in prop::option::of(0u64..200_000), code in prop::sample::select(vec![429u16, 503]), use_ms in any::<bool>(), seed in any::<u64>()) {
        let h = Duration::from_millis(h_ms);
        let f = if use_ms {
            status_failure(code, &[("retry-after-ms", h_ms.to_string())])
        } else {
            status_failure(code, &[("retry-after", format!("{}.{:03}", h_ms / 1000, h_ms % 1000))])
        };
        let p = RetryPolicy { max_retry_after: cap, ..RetryPolicy::default() };
        let now = at(Duration::from_secs(1));
        let deadline = deadline_ms.map(|d| now + Duration::from_millis(d));
        let ctx = RetryContext::new(1, now, SystemTime::UNIX_EPOCH).with_deadline(deadline);
        let d = p.decide(&f, &ctx, &mut Rng::new(seed), no_budget());
        let expected = if h > cap {
            RetryDecision::GiveUp(GiveUpReason::HintBeyondCap { hint: h })
        } else if deadline.is_some_and(|dl| now + h >= dl) {
            RetryDecision::GiveUp(GiveUpReason::HintBeyondDeadline { hint: h })
        } else {
            RetryDecision::Retry { delay: h, hinted: true }
        };
        prop_assert_eq!(d, expected);
    }

    /// Retry: whenever the answer is Retry, now + delay is before the deadline; a hinted delay
    /// is exactly the parsed hint.
    #[test]
    fn retry_delay_within_deadline(f in any_failure(), b in any_backoff(), deadline in prop::option::of(any_duration()), attempts in 0u32..4, seed in any::<u64>()) {
        let p = RetryPolicy { max_retries: 5, backoff: b, ..RetryPolicy::default() };
        let now = at(Duration::from_secs(1));
        let deadline = deadline.and_then(|d| now.checked_add(d));
        let ctx = RetryContext::new(attempts, now, SystemTime::UNIX_EPOCH).with_deadline(deadline);
        if let RetryDecision::Retry { delay, hinted } = p.decide(&f, &ctx, &mut Rng::new(seed), no_budget()) {
            if let Some(dl) = deadline {
                prop_assert!(now.checked_add(delay).is_some_and(|t| t < dl));
            }
            if hinted {
                let Failure::Status { headers, .. } = &f else { panic!("hint without headers") };
                let h = parse_retry_after(headers, SystemTime::UNIX_EPOCH).unwrap().delay;
                prop_assert_eq!(delay, h);
                prop_assert!(delay <= p.max_retry_after);
            } else {
                prop_assert!(delay <= b.max);
            }
        }
    }

    /// Retry: the sum of attempts and sleeps of a whole call never passes the deadline.
    #[test]
    fn retry_whole_call_respects_deadline(total_ms in 1u64..60_000, attempt_ms in prop::collection::vec(0u64..20_000, 1..10), failures in prop::collection::vec(any_failure(), 1..5), max_retries in 0u32..10, seed in any::<u64>()) {
        let p = RetryPolicy { max_retries, ..RetryPolicy::default() };
        let start = at(Duration::ZERO);
        let deadline = start + Duration::from_millis(total_ms);
        let mut rng = Rng::new(seed);
        let mut now = start;
        let mut prev = Duration::ZERO;
        for attempt in 1..=32u32 {
            // The adapter races each attempt against the deadline.
            now = (now + Duration::from_millis(attempt_ms[attempt as usize % attempt_ms.len()])).min(deadline);
            let f = if now >= deadline {
                Failure::Timeout { kind: TimeoutKind::Deadline, output_started: false }
            } else {
                failures[attempt as usize % failures.len()].clone()
            };
            let ctx = RetryContext::new(attempt, now, SystemTime::UNIX_EPOCH).with_deadline(Some(deadline)).with_previous_delay(prev);
            match p.decide(&f, &ctx, &mut rng, no_budget()) {
                RetryDecision::Retry { delay, .. } => { now += delay; prev = delay; prop_assert!(now < deadline); }
                RetryDecision::GiveUp(_) => break,
            }
        }
        prop_assert!(now <= deadline);
    }

    /// Retry: x-should-retry: false always wins; x-should-retry: true makes any status
    /// retryable by classification.
    #[test]
    fn retry_should_retry_header_wins(code in 100u16..600, mut headers in any_headers(), flag in any::<bool>(), seed in any::<u64>()) {
        headers.insert("x-should-retry", HeaderValue::from_static(if flag { "true" } else { "false" }));
        let f = Failure::Status { status: StatusCode::from_u16(code).unwrap(), headers };
        let p = RetryPolicy { max_retries: 10, ..RetryPolicy::default() };
        let d = p.decide(&f, &RetryContext::new(1, at(Duration::ZERO), SystemTime::UNIX_EPOCH), &mut Rng::new(seed), no_budget());
        if flag {
            prop_assert!(f.is_retryable());
            prop_assert_ne!(d, RetryDecision::GiveUp(GiveUpReason::NotRetryable));
        } else {
            prop_assert_eq!(d, RetryDecision::GiveUp(GiveUpReason::NotRetryable));
        }
    }

    /// Retry: the Deadline timeout is never retried.
    #[test]
    fn retry_never_deadline_timeout(attempts in 0u32..3, seed in any::<u64>()) {
        let p = RetryPolicy { max_retries: 10, ..RetryPolicy::default() };
        let f = Failure::Timeout { kind: TimeoutKind::Deadline, output_started: false };
        let d = p.decide(&f, &RetryContext::new(attempts, at(Duration::ZERO), SystemTime::UNIX_EPOCH), &mut Rng::new(seed), no_budget());
        prop_assert_eq!(d, RetryDecision::GiveUp(GiveUpReason::NotRetryable));
    }

    /// Retry + Budget: the budget is touched only by an actual retry, by exactly its cost;
    /// every give-up (first attempts included) leaves it unchanged.
    #[test]
    fn retry_budget_only_on_retry(f in any_failure(), tokens in 0u32..30, attempts in 0u32..4, deadline in prop::option::of(small_duration(20_000)), seed in any::<u64>()) {
        let mut budget = RetryBudget::new(RetryBudgetConfig { capacity: 30, refill_millis_per_sec: 0, ..Default::default() });
        let now = at(Duration::ZERO);
        prop_assert!(budget.try_withdraw(now, 30 - tokens));
        let p = RetryPolicy { max_retries: 3, ..RetryPolicy::default() };
        let ctx = RetryContext::new(attempts, now, SystemTime::UNIX_EPOCH).with_deadline(deadline.map(|d| now + d));
        let without = p.decide(&f, &ctx, &mut Rng::new(seed), no_budget());
        let with = p.decide(&f, &ctx, &mut Rng::new(seed), Some(&mut budget));
        let cost = if f.is_timeout() { 10 } else { 5 };
        match with {
            RetryDecision::Retry { .. } => {
                prop_assert_eq!(with, without);
                prop_assert_eq!(budget.tokens(now), tokens - cost);
            }
            RetryDecision::GiveUp(GiveUpReason::BudgetExhausted) => {
                let would_retry = matches!(without, RetryDecision::Retry { .. });
                prop_assert!(would_retry);
                prop_assert!(tokens < cost);
                prop_assert_eq!(budget.tokens(now), tokens);
            }
            other => {
                prop_assert_eq!(other, without);
                prop_assert_eq!(budget.tokens(now), tokens);
            }
        }
    }

    /// Retry-After: no header value panics the parser; a parsed hint is a number the server
    /// sent (a plain integer retry-after-ms of n gives exactly n ms).
    #[test]
    fn retry_after_parse_never_panics(headers in any_headers(), bytes in prop::collection::vec(any::<u8>(), 0..20), received in any::<u32>(), n in any::<u32>()) {
        let received_at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(received));
        let _ = parse_retry_after(&headers, received_at);
        let _ = parse_should_retry(&headers);
        if let Ok(v) = HeaderValue::from_bytes(&bytes) {
            for name in ["retry-after", "retry-after-ms", "llm_provider-retry-after", "x-should-retry", "date"] {
                let mut h = HeaderMap::new();
                h.insert(name, v.clone());
                let _ = parse_retry_after(&h, received_at);
                let _ = parse_should_retry(&h);
            }
        }
        let mut h = HeaderMap::new();
        h.insert("retry-after-ms", HeaderValue::from_str(&n.to_string()).unwrap());
        h.insert("retry-after", HeaderValue::from_static("1"));
        prop_assert_eq!(parse_retry_after(&h, received_at).map(|r| r.delay), Some(Duration::from_millis(u64::from(n))));
    }
}

// ---- Budget -----------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum BudgetOp {
    Withdraw(u32),
    Success,
    Step { back: bool, by: Duration },
}

fn budget_op() -> impl Strategy<Value = BudgetOp> {
    prop_oneof![
        3 => (0u32..40).prop_map(BudgetOp::Withdraw),
        2 => Just(BudgetOp::Success),
        3 => (prop::bool::weighted(0.25), small_duration(30_000)).prop_map(|(back, by)| BudgetOp::Step { back, by }),
    ]
}

proptest! {
    #![proptest_config(cfg())]

    /// Budget: tokens stay in [0, capacity]; a withdrawal either takes exactly its cost or
    /// nothing; an earlier time adds nothing; the same instant twice changes nothing.
    #[test]
    fn budget_invariants(capacity in 0u32..100, refill in prop_oneof![Just(0u32), 1u32..5000, Just(u32::MAX)], reward in 0u32..5, ops in prop::collection::vec(budget_op(), 1..40)) {
        let mut b = RetryBudget::new(RetryBudgetConfig { capacity, refill_millis_per_sec: refill, success_reward: reward, ..Default::default() });
        let mut offset = Duration::from_secs(3600);
        let mut latest = at(offset);
        for op in ops {
            let now = at(offset);
            latest = latest.max(now);
            let before = b.tokens(now);
            // Same instant twice: a read and a zero withdrawal change nothing.
            prop_assert_eq!(b.tokens(now), before);
            prop_assert!(b.try_withdraw(now, 0));
            prop_assert_eq!(b.tokens(now), before);
            // An earlier time reads as the latest one.
            prop_assert_eq!(b.tokens(at(Duration::ZERO)), b.tokens(latest));
            match op {
                BudgetOp::Withdraw(c) => {
                    let ok = b.try_withdraw(now, c);
                    prop_assert_eq!(ok, before >= c);
                    prop_assert_eq!(b.tokens(now), if ok { before - c } else { before });
                }
                BudgetOp::Success => {
                    b.on_success(now);
                    prop_assert_eq!(b.tokens(now), before.saturating_add(reward).min(capacity));
                }
                BudgetOp::Step { back, by } => {
                    offset = if back { offset.saturating_sub(by) } else { offset + by };
                    let later = at(offset);
                    let t = b.tokens(later);
                    if later <= latest {
                        prop_assert_eq!(t, before);
                    } else {
                        prop_assert!(t >= before);
                    }
                }
            }
            prop_assert!(b.tokens(now) <= capacity);
        }
    }

    /// Budget: a disabled budget never refuses and a fresh budget starts full.
    #[test]
    fn budget_disabled_never_refuses(costs in prop::collection::vec(any::<u32>(), 1..50), capacity in any::<u32>()) {
        let mut d = RetryBudget::disabled();
        let now = at(Duration::ZERO);
        for c in costs {
            prop_assert!(d.try_withdraw(now, c));
        }
        let fresh = RetryBudget::new(RetryBudgetConfig { capacity, ..Default::default() });
        prop_assert_eq!(fresh.tokens(now), capacity);
    }
}

// ---- Breaker ----------------------------------------------------------------------------------

fn breaker_config() -> impl Strategy<Value = BreakerConfig> {
    (
        prop_oneof![
            (1u32..20).prop_map(|size| SlidingWindow::Count { size }),
            (small_duration(10_000), 0u32..10)
                .prop_map(|(length, buckets)| SlidingWindow::Time { length, buckets }),
        ],
        1u8..=100,
        prop_oneof![Just(100u8), 1u8..=100],
        small_duration(2_000),
        0u32..15,
        small_duration(10_000),
        0u32..4,
        small_duration(60_000),
        0u32..4,
        small_duration(10_000),
    )
        .prop_map(
            |(window, fr, sr, slow, min, brk, mult, maxb, probes, lease)| BreakerConfig {
                window,
                failure_rate_threshold: fr,
                slow_call_rate_threshold: sr,
                slow_call_duration: slow,
                minimum_calls: min,
                break_duration: brk,
                break_multiplier: mult,
                max_break_duration: maxb,
                half_open_probes: probes,
                probe_lease: lease,
            },
        )
}

#[derive(Debug, Clone)]
enum BreakerOp {
    Acquire,
    Record {
        idx: usize,
        outcome: u8,
        ttfb: Duration,
    },
    Step {
        back: bool,
        by: Duration,
    },
    ForceOpen,
    Disable,
    Reset,
}

fn breaker_op() -> impl Strategy<Value = BreakerOp> {
    prop_oneof![
        6 => Just(BreakerOp::Acquire),
        6 => (any::<usize>(), 0u8..5, small_duration(3_000)).prop_map(|(idx, outcome, ttfb)| BreakerOp::Record { idx, outcome, ttfb }),
        4 => (prop::bool::weighted(0.2), small_duration(12_000)).prop_map(|(back, by)| BreakerOp::Step { back, by }),
        1 => prop_oneof![Just(BreakerOp::ForceOpen), Just(BreakerOp::Disable), Just(BreakerOp::Reset)],
    ]
}

fn effective_minimum(c: &BreakerConfig) -> u32 {
    match c.window {
        SlidingWindow::Count { size } => c.minimum_calls.min(size.max(1)),
        SlidingWindow::Time { .. } => c.minimum_calls,
    }
}

fn outcome(kind: u8, ttfb: Duration) -> Outcome {
    match kind {
        0 | 1 => Outcome::Success { ttfb },
        2 => Outcome::Failure { ttfb: Some(ttfb) },
        3 => Outcome::Failure { ttfb: None },
        _ => Outcome::Ignored,
    }
}

proptest! {
    #![proptest_config(cfg())]

    /// Breaker, driven by random operations and clock steps (also backwards):
    /// * no admission while open before the break ends; the rejection names the break's end;
    /// * half-open probes in flight ≤ configured (checked against the permits actually held),
    ///   and a half-open rejection means the episode has admitted all its probes;
    /// * an old-generation result changes nothing (state, generation, metrics, probes,
    ///   transitions);
    /// * an ignored probe releases its slot;
    /// * never trips with fewer recorded calls than the minimum;
    /// * a trip opens for exactly the configured (grown) break (also a trip on an ended lease,
    ///   even when the next episode began in the same step);
    /// * a count window trips exactly when a model of it says the rates are exceeded;
    /// * half-open: any failed probe reopens, all probes succeeding closes;
    /// * transitions chain (`to` of one is `from` of the next) and never go back in time.
    #[test]
    fn breaker_random_operations(config in breaker_config(), ops in prop::collection::vec(breaker_op(), 1..60)) {
        let mut b = CircuitBreaker::new(config);
        let probes_max = config.half_open_probes.max(1);
        let lease = config.probe_lease.max(Duration::from_nanos(1));
        let min = effective_minimum(&config);
        // Per half-open generation: probes admitted, minus those given back as Ignored.
        let mut episode: std::collections::HashMap<u64, u32> = Default::default();
        // The end of the break the latest Open transition started.
        let mut open_end: Option<Instant> = None;
        let mut offset = Duration::from_secs(3600);
        // The latest time the breaker has seen (it has seen none yet).
        let mut latest: Option<Instant> = None;
        let mut held: Vec<(BreakerPermit, Instant)> = Vec::new();
        let mut counted_since_closed = 0u32;
        let mut model_window: std::collections::VecDeque<(bool, bool)> = Default::default();
        let mut probe_successes: std::collections::HashMap<u64, u32> = Default::default();
        let mut last_transition: Option<Transition> = None;
        for op in ops {
            // The breaker gets the raw (possibly earlier) time; the model clamps it.
            let raw = at(offset);
            let now = latest.map_or(raw, |l| l.max(raw));
            match op {
                BreakerOp::Acquire => {
                    let state = b.state(raw);
                    let open_until = b.open_until();
                    match b.try_acquire(raw) {
                        Ok(p) => {
                            prop_assert!(matches!(state, BreakerState::Closed | BreakerState::Disabled | BreakerState::HalfOpen));
                            if let Some(u) = open_until { prop_assert!(now >= u); }
                            prop_assert_eq!(p.is_probe(), state == BreakerState::HalfOpen);
                            if p.is_probe() {
                                let n = episode.entry(p.generation()).or_insert(0);
                                *n += 1;
                                prop_assert!(*n <= probes_max);
                            }
                            held.push((p, now));
                        }
                        Err(r) => {
                            prop_assert!(!matches!(state, BreakerState::Closed | BreakerState::Disabled));
                            prop_assert_eq!(r.state, state);
                            if state == BreakerState::Open {
                                prop_assert_eq!(Some(r.retry_at), open_until);
                                prop_assert!(r.retry_at > now);
                            }
                            if state == BreakerState::HalfOpen {
                                prop_assert!(r.retry_at > now);
                                prop_assert!(b.in_flight_probes(raw) >= 1);
                                prop_assert_eq!(episode.get(&b.generation()).copied(), Some(probes_max));
                            }
                        }
                    }
                }
                BreakerOp::Record { idx, outcome: kind, ttfb } => {
                    if held.is_empty() { continue; }
                    let (p, acquired) = held.swap_remove(idx % held.len());
                    b.tick(raw);
                    let is_probe = p.is_probe();
                    let live_probe = is_probe && p.generation() == b.generation() && acquired + lease > now;
                    let stale = p.generation() != b.generation();
                    let snapshot = (b.state(raw), b.generation(), b.metrics(raw), b.in_flight_probes(raw), b.open_until());
                    let before_closed = b.state(raw) == BreakerState::Closed;
                    let o = outcome(kind, ttfb);
                    let gen_before = b.generation();
                    let counted = b.record(raw, p, o);
                    if stale {
                        prop_assert!(!counted);
                        prop_assert_eq!((b.state(raw), b.generation(), b.metrics(raw), b.in_flight_probes(raw), b.open_until()), snapshot);
                    }
                    if o == Outcome::Ignored {
                        prop_assert!(!counted);
                        if live_probe {
                            prop_assert_eq!(b.in_flight_probes(raw), snapshot.3 - 1);
                            *episode.get_mut(&gen_before).unwrap() -= 1;
                        }
                    }
                    let (failed, slow) = match o {
                        Outcome::Success { ttfb } => (false, ttfb > config.slow_call_duration),
                        Outcome::Failure { ttfb } => (true, ttfb.is_some_and(|t| t > config.slow_call_duration)),
                        Outcome::Ignored => (false, false),
                    };
                    if counted && before_closed && !is_probe {
                        counted_since_closed += 1;
                        // Model of a count window: trips exactly when the rates say so.
                        if let SlidingWindow::Count { size } = config.window {
                            model_window.push_back((failed, slow));
                            if model_window.len() > size.max(1) as usize {
                                model_window.pop_front();
                            }
                            let calls = model_window.len() as u64;
                            let fails = model_window.iter().filter(|c| c.0).count() as u64;
                            let slows = model_window.iter().filter(|c| c.1).count() as u64;
                            let exceeded = calls >= u64::from(min)
                                && (fails * 100 >= u64::from(config.failure_rate_threshold) * calls
                                    || slows * 100 >= u64::from(config.slow_call_rate_threshold) * calls);
                            prop_assert_eq!(b.state(raw) == BreakerState::Open, exceeded);
                        }
                    }
                    if counted && is_probe {
                        // Half-open: any failure reopens; all probes succeeding closes.
                        let probe_failed = failed || (slow && config.slow_call_rate_threshold < 100);
                        let n = probe_successes.entry(gen_before).or_insert(0);
                        if probe_failed {
                            prop_assert_eq!(b.state(raw), BreakerState::Open);
                        } else {
                            *n += 1;
                            let expected = if *n >= probes_max { BreakerState::Closed } else { BreakerState::HalfOpen };
                            prop_assert_eq!(b.state(raw), expected);
                        }
                    }
                }
                BreakerOp::Step { back, by } => {
                    offset = if back { offset.saturating_sub(by) } else { offset + by };
                    b.tick(at(offset));
                }
                BreakerOp::ForceOpen => b.force_open(raw),
                BreakerOp::Disable => b.disable(raw),
                BreakerOp::Reset => {
                    b.reset(raw);
                    counted_since_closed = 0;
                    model_window.clear();
                }
            }
            let now = latest.map_or(at(offset), |l| l.max(at(offset)));
            latest = Some(now);

            // Probes in flight, counted from the permits actually held.
            let live = held.iter().filter(|(p, t)| p.is_probe() && p.generation() == b.generation() && *t + lease > now).count() as u32;
            prop_assert!(live <= probes_max);
            prop_assert!(b.in_flight_probes(now) <= probes_max);

            while let Some(t) = b.poll_transition() {
                prop_assert!(t.at <= now);
                if let Some(prev) = last_transition {
                    prop_assert_eq!(prev.to, t.from);
                    prop_assert!(prev.at <= t.at);
                }
                if t.from == BreakerState::Closed && t.to == BreakerState::Open {
                    prop_assert!(counted_since_closed >= min.max(1), "tripped after {} calls, minimum {}", counted_since_closed, min);
                }
                if t.to == BreakerState::Closed {
                    counted_since_closed = 0;
                    model_window.clear();
                }
                if t.from == BreakerState::Open && t.to == BreakerState::HalfOpen {
                    // Lazily stamped with the end of the break the trip started.
                    if let Some(end) = open_end.take() {
                        prop_assert_eq!(t.at, end);
                    }
                }
                if t.to == BreakerState::Open {
                    let brk = config.break_for(b.consecutive_trips());
                    prop_assert!(brk >= config.break_duration);
                    let end = t.at.checked_add(brk);
                    prop_assert!(end.is_some());
                    open_end = end;
                    // Unless the next episode already began in the same step.
                    if b.open_until().is_some() {
                        prop_assert_eq!(b.open_until(), end);
                    }
                } else if t.from == BreakerState::Open && t.to != BreakerState::HalfOpen {
                    open_end = None;
                }
                last_transition = Some(t);
            }
        }
    }

    /// Breaker: lost probes (never reported) cannot wedge it: when the first lease ends the
    /// breaker re-opens (a failed probe) for exactly the next break, and then admits a new
    /// episode; the lost probes' admissions are never handed to other probes of their episode.
    #[test]
    fn breaker_lost_probe_reopens_at_lease_end(config in breaker_config(), wait in small_duration(30_000)) {
        let config = BreakerConfig { minimum_calls: 1, failure_rate_threshold: 1, probe_lease: config.probe_lease.max(Duration::from_nanos(1)), ..config };
        let mut b = CircuitBreaker::new(config);
        let t0 = at(Duration::from_secs(3600));
        let p = b.try_acquire(t0).unwrap();
        b.record(t0, p, Outcome::Failure { ttfb: None });
        prop_assert_eq!(b.state(t0), BreakerState::Open);
        let t1 = b.open_until().unwrap() + wait;
        let n = config.half_open_probes.max(1);
        let lost: Vec<_> = (0..n).map(|_| b.try_acquire(t1)).collect();
        prop_assert!(lost.iter().all(|r| r.is_ok()));
        let end = t1 + config.probe_lease;
        let reopened_until = end + config.break_for(2);
        let r = b.try_acquire(t1).unwrap_err();
        prop_assert_eq!((r.retry_at, r.state), (reopened_until, BreakerState::HalfOpen));
        prop_assert!(b.try_acquire(end - Duration::from_nanos(1)).is_err());
        prop_assert_eq!(b.in_flight_probes(end - Duration::from_nanos(1)), n);
        if reopened_until > end {
            let r = b.try_acquire(end).unwrap_err();
            prop_assert_eq!((r.retry_at, r.state), (reopened_until, BreakerState::Open));
            prop_assert_eq!(b.open_until(), Some(reopened_until));
            prop_assert!(b.try_acquire(reopened_until - Duration::from_nanos(1)).is_err());
        }
        let p = b.try_acquire(reopened_until).unwrap();
        prop_assert!(p.is_probe());
        prop_assert_eq!(b.consecutive_trips(), 2);
        let fail = Outcome::Failure { ttfb: None };
        for l in lost {
            prop_assert!(!b.record(reopened_until, l.unwrap(), fail));
        }
        prop_assert_eq!(b.in_flight_probes(reopened_until), 1);
    }

    /// Breaker: below the minimum number of calls it never trips, whatever the outcomes.
    #[test]
    fn breaker_never_trips_below_minimum(config in breaker_config(), outcomes in prop::collection::vec((0u8..4, small_duration(3_000), small_duration(500)), 0..20)) {
        let min = effective_minimum(&config);
        let mut b = CircuitBreaker::new(config);
        let mut t = at(Duration::from_secs(3600));
        for (k, ttfb, step) in outcomes.into_iter().take(min.saturating_sub(1) as usize) {
            t += step;
            let p = b.try_acquire(t).unwrap();
            b.record(t, p, outcome(k, ttfb));
            prop_assert_eq!(b.state(t), BreakerState::Closed);
        }
        prop_assert!(b.poll_transition().is_none());
    }

    /// Breaker: ignored outcomes release their permit — with every probe slot taken, ignoring
    /// one frees a slot at once and counts nothing.
    #[test]
    fn breaker_ignored_releases_permit(config in breaker_config(), which in any::<usize>()) {
        let config = BreakerConfig { minimum_calls: 1, failure_rate_threshold: 1, probe_lease: config.probe_lease.max(Duration::from_millis(1)), ..config };
        let mut b = CircuitBreaker::new(config);
        let t0 = at(Duration::from_secs(3600));
        // Ignored in Closed counts nothing.
        let p = b.try_acquire(t0).unwrap();
        prop_assert!(!b.record(t0, p, Outcome::Ignored));
        prop_assert_eq!(b.metrics(t0).calls, 0);
        let p = b.try_acquire(t0).unwrap();
        b.record(t0, p, Outcome::Failure { ttfb: None });
        let t1 = b.open_until().unwrap();
        let n = config.half_open_probes.max(1) as usize;
        let mut ps: Vec<_> = (0..n).map(|_| b.try_acquire(t1).unwrap()).collect();
        prop_assert!(b.try_acquire(t1).is_err());
        let gen = b.generation();
        let p = ps.swap_remove(which % n);
        prop_assert!(!b.record(t1, p, Outcome::Ignored));
        prop_assert_eq!(b.generation(), gen);
        prop_assert_eq!(b.state(t1), BreakerState::HalfOpen);
        prop_assert!(b.try_acquire(t1).is_ok());
    }
}

// ---- Rate limiter -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum RateOp {
    Check(u32),
    Step { back: bool, by: Duration },
}

fn rate_op() -> impl Strategy<Value = RateOp> {
    prop_oneof![
        3 => (0u32..8).prop_map(RateOp::Check),
        2 => (prop::bool::weighted(0.2), small_duration(500)).prop_map(|(back, by)| RateOp::Step { back, by }),
    ]
}

proptest! {
    #![proptest_config(cfg())]

    /// Limiter: admitted cost over any interval ≤ burst + Δ/T; a cost above the burst is
    /// refused at once with Never; a denial consumes nothing (the same check gives the same
    /// answer).
    #[test]
    fn rate_admitted_within_bound(requests in 1u32..50, period in (1u64..2_000).prop_map(Duration::from_millis), burst in 1u32..10, ops in prop::collection::vec(rate_op(), 1..60)) {
        let mut r = RateLimiter::new(requests, period, burst);
        let t = r.interval();
        prop_assume!(!t.is_zero());
        let mut offset = Duration::from_secs(3600);
        let mut latest: Option<Instant> = None;
        let mut admitted: Vec<(Instant, u32)> = Vec::new();
        for op in ops {
            match op {
                RateOp::Step { back, by } => offset = if back { offset.saturating_sub(by) } else { offset + by },
                RateOp::Check(cost) => {
                    let now = at(offset);
                    // The limiter treats an earlier time as the latest it has seen.
                    let latest = *latest.insert(latest.map_or(now, |l: Instant| l.max(now)));
                    match r.check(now, cost) {
                        Ok(()) => {
                            prop_assert!(cost <= burst);
                            admitted.push((latest, cost));
                        }
                        Err(RateLimited::Never { cost: c, burst: b }) => {
                            prop_assert!(cost > burst);
                            prop_assert_eq!((c, b), (cost, burst));
                        }
                        Err(e @ RateLimited::Wait { until }) => {
                            prop_assert!(cost <= burst);
                            prop_assert!(until > latest);
                            prop_assert_eq!(r.check(now, cost), Err(e));
                        }
                    }
                }
            }
        }
        for i in 0..admitted.len() {
            let mut sum = 0u64;
            for j in i..admitted.len() {
                sum += u64::from(admitted[j].1);
                let span = admitted[j].0 - admitted[i].0;
                let bound = u64::from(burst) + (span.as_nanos() / t.as_nanos()) as u64;
                prop_assert!(sum <= bound, "admitted {} in {:?}, bound {}", sum, span, bound);
            }
        }
    }

    /// Limiter: denied with wait until u ⇒ admitted at u, still denied at u − 1 ns.
    #[test]
    fn rate_wait_is_exact(requests in 1u32..1000, period in (1u64..5_000).prop_map(Duration::from_millis), burst in 1u32..10, pre in prop::collection::vec((0u32..10, small_duration(300)), 0..20), cost in 1u32..10) {
        let mut r = RateLimiter::new(requests, period, burst);
        let mut now = at(Duration::from_secs(3600));
        for (c, step) in pre {
            now += step;
            let _ = r.check(now, c);
        }
        match r.check(now, cost) {
            Ok(()) => prop_assert!(cost <= burst),
            Err(RateLimited::Never { .. }) => prop_assert!(cost > burst),
            Err(RateLimited::Wait { until }) => {
                let mut early = r.clone();
                prop_assert!(early.check(until - Duration::from_nanos(1), cost).is_err());
                let mut exact = r.clone();
                prop_assert_eq!(exact.check(until, cost), Ok(()));
            }
        }
    }

    /// Limiter: a cost above the burst is refused at once, in any state.
    #[test]
    fn rate_cost_above_burst_refused(requests in 1u32..100, burst in 1u32..100, extra in 1u32..1000, pre in 0u32..5) {
        let mut r = RateLimiter::new(requests, Duration::from_secs(1), burst);
        let now = at(Duration::ZERO);
        for _ in 0..pre { let _ = r.check(now, 1); }
        let cost = burst.saturating_add(extra);
        prop_assert_eq!(r.check(now, cost), Err(RateLimited::Never { cost, burst }));
    }
}

// ---- Concurrency limiter and timeouts ---------------------------------------------------------

#[derive(Debug, Clone)]
enum ConcOp {
    Acquire,
    Release(usize),
    ReleaseForeign,
}

proptest! {
    #![proptest_config(cfg())]

    /// Concurrency: in-flight ≤ limit; each permit released exactly once frees exactly one
    /// slot; a foreign permit changes nothing.
    #[test]
    fn concurrency_in_flight_bounded(max in 0u32..6, ops in prop::collection::vec(prop_oneof![
        3 => Just(ConcOp::Acquire),
        2 => any::<usize>().prop_map(ConcOp::Release),
        1 => Just(ConcOp::ReleaseForeign),
    ], 1..50)) {
        let mut l = ConcurrencyLimiter::new(max);
        let mut other = ConcurrencyLimiter::new(u32::MAX);
        let mut held = Vec::new();
        for op in ops {
            match op {
                ConcOp::Acquire => match l.try_acquire() {
                    Some(p) => held.push(p),
                    None => prop_assert_eq!(held.len() as u32, max),
                },
                ConcOp::Release(i) => {
                    if held.is_empty() { continue; }
                    let p = held.swap_remove(i % held.len());
                    prop_assert!(l.release(p));
                }
                ConcOp::ReleaseForeign => {
                    let p = other.try_acquire().unwrap();
                    prop_assert!(!l.release(p));
                }
            }
            prop_assert_eq!(l.in_flight(), held.len() as u32);
            prop_assert!(l.in_flight() <= max);
        }
    }

    /// Timeouts: no timer is ever armed past the overall deadline.
    #[test]
    fn timeouts_never_past_deadline(t in (prop::option::of(any_duration()), prop::option::of(any_duration()), prop::option::of(any_duration()), prop::option::of(any_duration()), prop::option::of(any_duration())), kind in any_timeout_kind(), from in small_duration(10_000), total in prop::option::of(small_duration(100_000))) {
        let timeouts = Timeouts { connect: t.0, first_token: t.1, idle: t.2, attempt: t.3, total: t.4 };
        let start = at(Duration::ZERO);
        let deadline = total.map(|d| start + d);
        let from = start + from;
        if let Some((when, k)) = timeouts.arm(kind, from, deadline) {
            if let Some(dl) = deadline {
                prop_assert!(when <= dl);
                if when == dl { prop_assert_eq!(k, TimeoutKind::Deadline); }
            }
            prop_assert!(when >= from.min(deadline.unwrap_or(from)));
        } else {
            prop_assert!(deadline.is_none() && timeouts.get(kind).is_none());
        }
        let timer = timeouts.get(kind).and_then(|d| from.checked_add(d));
        let clamped = clamp_to_deadline(timer, deadline);
        if let (Some(c), Some(dl)) = (clamped, deadline) { prop_assert!(c <= dl); }
        prop_assert_eq!(earliest([timer, deadline]), clamped);
    }

    /// RNG: bounded draws stay in bounds.
    #[test]
    fn rng_bounds(seed in any::<u64>(), n in any::<u64>(), lo in any_duration(), hi in any_duration()) {
        let mut r = Rng::new(seed);
        let x = r.below(n);
        prop_assert!(x < n || (n == 0 && x == 0));
        let d = r.duration_between(lo, hi);
        if hi > lo { prop_assert!(d >= lo && d < hi); } else { prop_assert_eq!(d, lo); }
    }
}

// ---- timeouts ---------------------------------------------------------------------------------

/// `Timeouts::body_deadline` as it was first written: each timer armed and clamped to the
/// deadline on its own, then the earliest (the single-pass version must say the same).
fn body_deadline_reference(
    t: &Timeouts,
    start: Instant,
    clock: BodyClock,
    overall: Option<Instant>,
) -> Option<(Instant, TimeoutKind)> {
    let (first_token, idle) = match clock {
        BodyClock::AwaitingFirstData => (t.arm(TimeoutKind::FirstToken, start, overall), None),
        BodyClock::LastActivity(at) => (None, t.arm(TimeoutKind::Idle, at, overall)),
    };
    earliest_timer([
        t.arm(TimeoutKind::Attempt, start, overall),
        first_token,
        idle,
        overall.map(|d| (d, TimeoutKind::Deadline)),
    ])
}

fn any_opt_duration() -> impl Strategy<Value = Option<Duration>> {
    prop_oneof![
        Just(None),
        any_duration().prop_map(Some),
        // Small values make ties between the timers likely.
        (0u64..4).prop_map(|s| Some(Duration::from_secs(s))),
    ]
}

proptest! {
    #![proptest_config(cfg())]

    /// The body's deadline (asked once per streamed chunk) is the earliest of the deadline,
    /// the attempt timer and the first-token or idle timer, reported with the same kind on
    /// every tie as arming each timer separately.
    #[test]
    fn body_deadline_is_the_earliest_timer(
        first_token in any_opt_duration(),
        idle in any_opt_duration(),
        attempt in any_opt_duration(),
        since_start in 0u64..4,
        overall in prop::option::of(0u64..8),
        awaiting in any::<bool>(),
    ) {
        let t = Timeouts { first_token, idle, attempt, ..Timeouts::none() };
        let start = at(Duration::from_secs(1));
        let clock = if awaiting {
            BodyClock::AwaitingFirstData
        } else {
            BodyClock::LastActivity(start + Duration::from_secs(since_start))
        };
        let overall = overall.map(|s| start + Duration::from_secs(s));
        prop_assert_eq!(
            t.body_deadline(start, clock, overall),
            body_deadline_reference(&t, start, clock, overall)
        );
    }
}
