//! [`proptest`](mod@proptest) strategies for every policy configuration (behind the `proptest`
//! feature).
//!
//! Each function returns a strategy of *valid, bounded* values: every value is one a user
//! could configure and the driver accepts (no `max_concurrency(0)`, which can never admit a
//! call), durations are milliseconds to about a minute, so that a simulated call runs through
//! retries, timeouts, the budget, the breaker and the limits in a few hundred steps. The
//! edge values the types document as "treated as 1" (a multiplier of 0, zero half-open
//! probes, a zero-sized window, …) are included: a property should hold for them too.
//!
//! | strategy | generates |
//! |---|---|
//! | [`jitter`] | every [`Jitter`] |
//! | [`backoff`] | [`Backoff`]: initial 0–2 s, max 0–10 s, multiplier 0–3 |
//! | [`retry_policy`] | [`RetryPolicy`]: 0–4 retries, a backoff, hints capped at 0–120 s, both flags |
//! | [`retry_budget_config`] | [`RetryBudgetConfig`]: a small bucket (1–50 tokens) that runs dry |
//! | [`sliding_window`] | [`SlidingWindow`]: 0–19 calls, or 1 ms–10 s in 0–9 buckets |
//! | [`breaker_config`] | [`BreakerConfig`]: small minimums, breaks up to 10 s, 0–3 probes |
//! | [`timeouts`] | [`Timeouts`]: each timer off or 1 ms up to 5–60 s |
//! | [`rate_limit`] | [`RateLimit`]: 1–19 requests per 1 ms–5 s, bursts of 1–4 |
//! | [`adaptive_config`] | [`AdaptiveConfig`]: limits of 1–6, windows and probes of milliseconds, so that a short run moves the limit |
//! | [`policy_config`] | [`PolicyConfig`]: all of the above, each optional part on or off; the concurrency limit off, fixed (1–3) or adaptive |
//! | [`client_config`] | [`ClientConfig`]: the default request config with a [`policy_config`] |
//!
//! Narrow a strategy with `prop_map` when a property needs it, e.g. a policy that always has
//! an overall deadline:
//!
//! ```
//! use std::time::Duration;
//! use proptest::prelude::*;
//! use vllm_client_core::strategies;
//!
//! proptest! {
//!     // In a test file, put `#[test]` on it instead of calling it.
//!     fn backoff_never_exceeds_its_cap(
//!         b in strategies::backoff(),
//!         n in 1u32..20,
//!         seed in any::<u64>(),
//!     ) {
//!         let mut rng = vllm_client_core::policy::Rng::new(seed);
//!         prop_assert!(b.delay(n, Duration::ZERO, &mut rng) <= b.max);
//!     }
//! }
//! backoff_never_exceeds_its_cap();
//!
//! let with_deadline = strategies::client_config().prop_map(|mut c| {
//!     c.policy.timeouts.total.get_or_insert(Duration::from_secs(30));
//!     c
//! });
//! # let _ = with_deadline;
//! ```
//!
//! To run calls made with these configurations against scripted failures in virtual time,
//! see the simulator in `vllm-testkit` (`vllm_testkit::sim`), whose docs carry a worked
//! example: "property-test your retry policy".

use std::time::Duration;

use proptest::prelude::*;

use crate::config::{BreakerScope, ClientConfig, PolicyConfig, RateLimit};
use crate::policy::{
    AdaptiveConfig, Backoff, BreakerConfig, Jitter, RetryBudgetConfig, RetryPolicy, SlidingWindow,
    Timeouts,
};

fn ms(range: std::ops::Range<u64>) -> impl Strategy<Value = Duration> {
    range.prop_map(Duration::from_millis)
}

fn opt_ms(range: std::ops::Range<u64>) -> impl Strategy<Value = Option<Duration>> {
    prop::option::of(ms(range))
}

/// Every [`Jitter`], uniformly.
pub fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

/// A [`Backoff`]: `initial` 0–2 s, `max` 0–10 s (possibly below `initial`: the cap wins),
/// `multiplier` 0–3 (0 and 1 are constant), any [`jitter`].
pub fn backoff() -> impl Strategy<Value = Backoff> {
    (ms(0..2_000), ms(0..10_000), 0u32..4, jitter()).prop_map(
        |(initial, max, multiplier, jitter)| Backoff {
            initial,
            max,
            multiplier,
            jitter,
        },
    )
}

/// A [`RetryPolicy`]: 0–4 retries, a [`backoff`], server hints honoured (or not) up to
/// 0–120 s, first-token timeouts retried (or not).
pub fn retry_policy() -> impl Strategy<Value = RetryPolicy> {
    (
        0u32..5,
        backoff(),
        ms(0..120_000),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(max_retries, backoff, max_retry_after, honor, first_token)| RetryPolicy {
                max_retries,
                backoff,
                max_retry_after,
                honor_retry_after: honor,
                retry_first_token_timeout: first_token,
            },
        )
}

/// A [`RetryBudgetConfig`] small enough to run dry within a few calls: 1–49 tokens, a retry
/// costs 0–9 (0–19 after a timeout), a success earns 0–2, refill 0–2 tokens per second.
pub fn retry_budget_config() -> impl Strategy<Value = RetryBudgetConfig> {
    (1u32..50, 0u32..10, 0u32..20, 0u32..3, 0u32..2_000).prop_map(
        |(capacity, retry_cost, timeout_retry_cost, success_reward, refill)| RetryBudgetConfig {
            capacity,
            retry_cost,
            timeout_retry_cost,
            success_reward,
            refill_millis_per_sec: refill,
        },
    )
}

/// A [`SlidingWindow`]: the last 0–19 calls (0 is treated as 1), or the calls of the last
/// 1 ms–10 s in 0–9 buckets (0 is treated as 1).
pub fn sliding_window() -> impl Strategy<Value = SlidingWindow> {
    prop_oneof![
        (0u32..20).prop_map(|size| SlidingWindow::Count { size }),
        (ms(1..10_000), 0u32..10)
            .prop_map(|(length, buckets)| SlidingWindow::Time { length, buckets }),
    ]
}

/// A [`BreakerConfig`] that trips and reaches half-open often: a [`sliding_window`], a
/// failure threshold of 1–100 %, a slow-call threshold of 100 % or 1–100 % over 0–2 s, a
/// minimum of 0–14 calls, breaks of 0–10 s growing by 0–3 up to 0–60 s, 0–3 half-open probes
/// (0 is treated as 1) leased for 0–10 s.
pub fn breaker_config() -> impl Strategy<Value = BreakerConfig> {
    (
        sliding_window(),
        1u8..=100,
        prop_oneof![Just(100u8), 1u8..=100],
        ms(0..2_000),
        0u32..15,
        ms(0..10_000),
        0u32..4,
        ms(0..60_000),
        0u32..4,
        ms(0..10_000),
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

/// [`Timeouts`] with each timer off or on: connect 1 ms–5 s, first token and idle 1 ms–20 s,
/// attempt and total 1 ms–60 s.
pub fn timeouts() -> impl Strategy<Value = Timeouts> {
    (
        opt_ms(1..5_000),
        opt_ms(1..20_000),
        opt_ms(1..20_000),
        opt_ms(1..60_000),
        opt_ms(1..60_000),
    )
        .prop_map(|(connect, first_token, idle, attempt, total)| Timeouts {
            connect,
            first_token,
            idle,
            attempt,
            total,
        })
}

/// A [`RateLimit`]: 1–19 requests per 1 ms–5 s, bursts of 1–4.
pub fn rate_limit() -> impl Strategy<Value = RateLimit> {
    (1u32..20, ms(1..5_000), 1u32..5).prop_map(|(requests, per, burst)| RateLimit {
        requests,
        per,
        burst,
    })
}

/// An [`AdaptiveConfig`]: min 1–2, max up to 6, windows of 0–200 ms closed by 1–3 samples,
/// probes every 1 ms–2 s lasting at most 0–2 s, any smoothing and quantile.
pub fn adaptive_config() -> impl Strategy<Value = AdaptiveConfig> {
    (
        (1u32..3, 0u32..5, 0u32..7),
        (ms(0..200), 1u32..4, 0.0f64..=1.0, 0.1f64..=1.0, 0.0f64..4.0),
        (ms(1..2_000), ms(0..2_000), 0u32..4),
    )
        .prop_map(
            |(
                (min, extra, initial),
                (window, window_samples, quantile, smoothing, tolerance),
                (probe_interval, probe_timeout, probe_after_cuts),
            )| AdaptiveConfig {
                min,
                max: min + extra,
                initial,
                window,
                window_samples,
                quantile,
                smoothing,
                tolerance,
                probe_interval,
                probe_timeout,
                probe_after_cuts,
                ..AdaptiveConfig::default()
            },
        )
}

/// A [`PolicyConfig`]: a [`retry_policy`] and [`timeouts`]; a [`retry_budget_config`], a
/// [`breaker_config`] (per client or per endpoint), a [`rate_limit`] each on or off, a
/// concurrency limit off, fixed at 1–3 or adaptive ([`adaptive_config`]); a jitter seed or none; a body limit of 64 MiB or 256 B–64 KiB.
/// Event-stream limits are the defaults.
pub fn policy_config() -> impl Strategy<Value = PolicyConfig> {
    let parts = (retry_policy(), timeouts());
    let shared = (
        prop::option::of(retry_budget_config()),
        prop::option::of(breaker_config()),
        prop_oneof![3 => Just(BreakerScope::Client), 1 => Just(BreakerScope::PerOperation)],
        prop::option::of(rate_limit()),
        prop_oneof![
            2 => Just((None, None)),
            2 => (1u32..4).prop_map(|n| (Some(n), None)),
            1 => adaptive_config().prop_map(|a| (None, Some(a))),
        ],
    );
    let rest = (
        prop::option::of(any::<u64>()),
        prop_oneof![3 => Just(64usize << 20), 1 => 256usize..(64 << 10)],
    );
    (parts, shared, rest).prop_map(
        |(
            (retry, timeouts),
            (budget, breaker, breaker_scope, rate_limit, (max_concurrency, auto_concurrency)),
            (seed, max_body_bytes),
        )| PolicyConfig {
            retry,
            timeouts,
            budget,
            breaker,
            breaker_scope,
            rate_limit,
            max_concurrency,
            auto_concurrency,
            seed,
            max_body_bytes,
            ..PolicyConfig::default()
        },
    )
}

/// A [`ClientConfig`]: the default request configuration with a [`policy_config`].
pub fn client_config() -> impl Strategy<Value = ClientConfig> {
    policy_config().prop_map(|policy| ClientConfig {
        policy,
        ..ClientConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::call::{Action, Call, Shared};
    use crate::client::CallSpec;
    use crate::request::Operation;

    proptest! {
        /// Every generated configuration is one the driver accepts: its first action is never
        /// a rejection of the configuration.
        #[test]
        fn every_generated_config_is_accepted(config in client_config(), entropy in any::<u64>()) {
            let now = Instant::now();
            let mut shared = Shared::new(&config, entropy);
            let mut call = Call::new(&config, CallSpec::get(Operation::Models), now, &mut shared);
            let action = call.poll(now, &mut shared);
            prop_assert!(!matches!(action, Action::Done(Err(_))), "{:?}", action);
        }
    }
}
