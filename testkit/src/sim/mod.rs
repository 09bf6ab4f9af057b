//! A virtual-time simulator for the core's call driver: the fourth "adapter", with no sockets.
//!
//! [`Sim`] drives [`Call`]s exactly as a real adapter does — `poll`, perform the action,
//! `handle` what happened — but answers every `Send` from a script of per-attempt
//! [`SimResponse`]s and jumps a virtual clock straight to the next thing that happens: a
//! response head, the next body part, a deadline handed out by the driver, the end of a sleep.
//! An hour of backoff runs in microseconds, and every run records an exact [timeline] of
//! actions and events with their virtual time offsets, so a scenario can be asserted to the
//! nanosecond.
//!
//! What it is not: a model of TCP or HTTP. A script says *when* a head, a chunk, a cut or a
//! stall happens; the simulator only races that against the deadline the driver handed out
//! (an arrival exactly at the deadline wins; a later one loses and the driver gets
//! [`Event::Timeout`] at the deadline).
//!
//! ```
//! use std::time::Duration;
//! use vllm_client_core::config::ClientConfig;
//! use vllm_testkit::sim::{chat_json, Sim, SimResponse};
//!
//! let mut sim = Sim::new(ClientConfig::default(), 7);
//! let out = sim.run(
//!     chat_json(),
//!     vec![
//!         SimResponse::status(429).header("retry-after-ms", "1500").body(r#"{"error":"slow down"}"#),
//!         SimResponse::ok_json(r#"{"choices":[]}"#),
//!     ],
//! );
//! assert!(out.result.is_ok());
//! assert_eq!(out.sends, vec![Duration::ZERO, Duration::from_millis(1500)]);
//! assert_eq!(out.sleeps, vec![Duration::from_millis(1500)]);
//! assert!(out.violations.is_empty() && out.fault.is_none());
//! ```
//!
//! Several calls can share one [`Shared`] (breaker, budget, limiters): call [`Sim::run`]
//! repeatedly, with [`Sim::advance`] in between, or run calls concurrently with
//! [`Sim::run_all`] (calls interleave at virtual instants; a call waiting for a concurrency
//! permit is woken with [`Event::PermitReleased`] when the core hands it the slot another call
//! released — exactly the waiter [`Shared::poll_wake`] names, as a real adapter does).
//!
//! The simulator never loops forever: a run stops after [`Sim::with_max_steps`] driver steps
//! (default 10 000) and reports [`SimFault::StepLimit`]; a call that waits for something that
//! can never happen (no deadline, nothing scheduled) ends with [`SimFault::Hang`]. A faulted
//! call is cancelled, so its permits are released.
//!
//! While it drives, the simulator also checks the driver's contract and lists what it breaks in
//! [`SimOutcome::violations`]:
//! - no handed-out deadline or sleep end past the overall deadline, no call ending after it;
//! - no more than `1 + max_retries` sends, and no send after a stream event was emitted;
//! - events only for streams, nothing after a terminal stream event, and a stream that emitted
//!   events ends `Ok`;
//! - after `Done`, polling again returns the same result, and late events change nothing;
//! - after every step: no more calls in flight than `max_concurrency`, no more half-open
//!   probes than the breaker admits; a freed slot goes to the call that waited longest.
//!
//! Knobs for harsher adapters: [`SimCall::cancel_after`] and [`SimCall::cancel_after_polls`]
//! drop a call mid-way (at a time, or between two polls); [`Sim::with_time_skew`] hands the
//! driver stale clock readings.
//!
//! # Property-test your retry policy
//!
//! A retry policy is a handful of numbers — retries, backoff, a cap on server hints, timeouts,
//! a budget, a breaker — and its worst cases come from combinations nobody writes by hand: a
//! 503 with `Retry-After: 40` under a 30 s deadline, a reset after 29 s of a 30 s attempt
//! timer. The simulator runs a call through any such combination in microseconds, so you can
//! let [proptest](https://docs.rs/proptest) generate them. You need three things:
//!
//! 1. **Policies**: `vllm-client-core`'s `proptest` feature has a strategy for every
//!    configuration type in `vllm_client_core::strategies` (valid, bounded values). Use
//!    `strategies::client_config()` for everything at once, or start from *your* config and
//!    vary only part of it (`strategies::retry_policy().prop_map(|r| { let mut c =
//!    my_config(); c.policy.retry = r; c })`).
//! 2. **Failure scripts**: a strategy of [`SimResponse`]s — what the server may answer to
//!    one attempt. Give each call as many answers as it may make attempts (`1 + max_retries`;
//!    the strategies retry at most 4 times), or the run ends with
//!    [`SimFault::ScriptExhausted`].
//! 3. **What must always hold**, read off the [`SimOutcome`]: its sends, sleeps, result,
//!    [`report`](SimOutcome::report) and timeline. Assert [`SimOutcome::is_clean`] too: the
//!    simulator's own contract checks found nothing, and it never had to stop the call.
//!
//! The worked example: *for any policy and any script of failures, a call never makes more than
//! `1 + max_retries` attempts, and never sleeps or runs past its deadline.*
//!
//! ```
//! use std::time::Duration;
//!
//! use proptest::prelude::*;
//! use vllm_client_core::strategies;
//! use vllm_testkit::sim::{chat_json, Sim, SimResponse};
//!
//! /// What the server may answer to one attempt: a retryable status with a hint, a refused
//! /// connection, a reset after a while, silence, or a success.
//! fn answer() -> impl Strategy<Value = SimResponse> {
//!     let ms = Duration::from_millis;
//!     prop_oneof![
//!         (prop::sample::select(vec![429u16, 500, 502, 503, 504]), 0u64..5_000)
//!             .prop_map(|(status, hint)| {
//!                 SimResponse::status(status).header("retry-after-ms", &hint.to_string())
//!             }),
//!         Just(SimResponse::connect_refused()),
//!         (0u64..30_000).prop_map(move |t| SimResponse::reset_before_head().head_after(ms(t))),
//!         Just(SimResponse::stall()),
//!         Just(SimResponse::ok_json(r#"{"choices":[]}"#)),
//!     ]
//! }
//!
//! /// Any policy, with an overall deadline of up to a minute.
//! fn policy() -> impl Strategy<Value = vllm_client_core::config::ClientConfig> {
//!     (strategies::client_config(), 1u64..60_000).prop_map(|(mut config, total)| {
//!         config.policy.timeouts.total = Some(Duration::from_millis(total));
//!         config
//!     })
//! }
//!
//! proptest! {
//!     #![proptest_config(ProptestConfig::with_cases(200))]
//!
//!     // In your tests: `#[test]` here, instead of calling it below.
//!     fn retries_stay_within_their_limits(
//!         config in policy(),
//!         script in prop::collection::vec(answer(), 5), // ≥ 1 + max_retries
//!         seed in any::<u64>(),
//!     ) {
//!         let max_attempts = config.policy.retry.max_retries as usize + 1;
//!         let total = config.policy.timeouts.total.unwrap();
//!         let out = Sim::new(config, seed).run(chat_json(), script);
//!
//!         // `render()` prints the call's timeline: with shrinking, the failure you get is a
//!         // small policy and a short script, step by step.
//!         prop_assert!(out.is_clean(), "{:?}\n{}", out.violations, out.render());
//!         prop_assert!(out.sends.len() <= max_attempts, "{}", out.render());
//!         prop_assert!(out.sleeps.iter().sum::<Duration>() <= total, "{}", out.render());
//!         prop_assert!(out.ended_at - out.started_at <= total, "{}", out.render());
//!     }
//! }
//! retries_stay_within_their_limits();
//! ```
//!
//! From there: assert what *your* service promises (a JSON call that got a 200 returns `Ok`;
//! a 400 is never retried: `out.report.retries` is empty; a stream never shows text twice),
//! run several calls over one breaker and budget with [`Sim::run_all`] (a retry storm is a
//! property of many calls, not one), drop calls mid-way with [`SimCall::cancel_after`], and
//! read `testkit/tests/driver_props.rs` in this repository: the driver's own properties,
//! written this way.
//!
//! # Parts
//!
//! | part | what it holds |
//! |---|---|
//! | `script` | what the server answers to each attempt ([`SimResponse`], [`SimPart`], [`SimEnd`]) and what the caller does ([`SimCall`]: start, drop) |
//! | `timeline` | what a run records ([`Step`], [`TimelineEntry`], [`Emitted`]) and reports per call ([`SimOutcome`], [`SimFault`]), with its text renderings |
//! | `driver` | [`Sim`]: the loop that polls calls, answers them from the script in virtual time, and checks the driver's contract |
//!
//! (Not to be confused with [`crate::engine`], a model of a vLLM *server* that the fleet
//! simulator drives calls against; this module scripts the server's answers directly.)
//!
//! [timeline]: SimOutcome::timeline

mod driver;
mod script;
mod timeline;

pub use driver::Sim;
pub use script::{SimCall, SimEnd, SimPart, SimResponse, SimServer};
pub use timeline::{Emitted, SimFault, SimOutcome, Step, TimelineEntry};

#[cfg(doc)]
use vllm_client_core::call::{Call, Event, Shared};
use vllm_client_core::client::CallSpec;
use vllm_client_core::request::Operation;
use vllm_client_core::StreamKind;

/// The wall-clock time (seconds since the Unix epoch) at the simulator's virtual time zero:
/// 2025-10-09T08:53:20Z. A response head received at offset `t` carries `received_at` of
/// this plus `t`.
pub const WALL_ORIGIN_SECS: u64 = 1_760_000_000;

/// The default bound on driver steps (polls and handled events) per [`Sim::run_all`].
pub const DEFAULT_MAX_STEPS: usize = 10_000;

/// A chat completion request body (`stream: false`) for scenarios.
pub fn chat_json() -> CallSpec {
    CallSpec::json(
        Operation::ChatCompletions,
        Ok(serde_json::json!({
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
        })),
    )
}

/// A streamed chat completion request (`stream: true`) for scenarios.
pub fn chat_stream() -> CallSpec {
    CallSpec::stream(
        Operation::ChatCompletions,
        StreamKind::Chat,
        Ok(serde_json::json!({
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true,
        })),
    )
}
