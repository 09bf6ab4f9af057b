//! Resilience policies: retry classification and decision, backoff with jitter, server retry
//! hints, a shared retry budget, a circuit breaker, rate and concurrency limits, and the
//! timeout taxonomy.
//!
//! Everything here is pure and deterministic: time is always an argument (`now: Instant`;
//! wall time only when passed in), randomness comes only from a seeded [`Rng`], arithmetic
//! saturates instead of panicking or wrapping, and a `now` earlier than one already seen is
//! treated as the last one. Shared state (breaker, budget, limiters) is plain `&mut self`
//! structs; an adapter keeps each in a mutex that is never held across an await.
//!
//! | module | decides |
//! |---|---|
//! | [`failure`] | **the** failure table: each kind of failure → retried or not, what a retry costs, what the breaker counts, what the endpoint's outlier detection learns, the adaptive limit's loss, `error.type` |
//! | [`retry`] | retry or give up after a failure, and after how long ([`retry_after`]: the server's hints) |
//! | [`backoff`] | the delay schedule and its jitter |
//! | [`budget`] | the retry budget shared by a client's calls |
//! | [`breaker`] | the circuit breaker: closed, open, half-open with bounded probes |
//! | [`rate`], [`token_rate`] | the client's own request and token rate limits (GCRA) |
//! | [`rate_limit_headers`] | what a server's rate-limit headers say, in every format gateways use |
//! | [`concurrency`] | calls in flight, first come first served |
//! | [`adaptive`] | a concurrency limit that finds itself from time to first token and losses |
//! | [`timeouts`] | the timeout taxonomy and every deadline's arithmetic |
//! | [`ejection`], [`probe_schedule`] | an endpoint's outlier detection: when it leaves rotation, when it is probed, how it comes back |
//! | [`routing`], [`peak_ewma`], [`slow_start`] | which endpoint takes an attempt: power of two choices on a latency estimate, affinity, the ramp of a new or returning endpoint |
//! | [`hedge`] | when a stream's late first token is hedged, and how often |
//! | [`resume`] | which Responses streams are resumed after a cut instead of failed |
//! | [`clock`], [`rng`] | saturating instant arithmetic, a seeded generator |
//!
//! | knob | type | default | file |
//! |---|---|---|---|
//! | `max_retries` | [`RetryPolicy`] | 2 (3 attempts) | `retry.rs` |
//! | `max_retry_after` | [`RetryPolicy`] | 60 s (longer hint ⇒ give up) | `retry.rs` |
//! | `honor_retry_after` | [`RetryPolicy`] | true | `retry.rs` |
//! | `initial` / `max` / `multiplier` | [`Backoff`] | 500 ms / 8 s / 2 | `backoff.rs` |
//! | `jitter` | [`Backoff`] | [`Jitter::Full`] | `backoff.rs` |
//! | `capacity` | [`RetryBudgetConfig`] | 500 tokens | `budget.rs` |
//! | `retry_cost` / `timeout_retry_cost` | [`RetryBudgetConfig`] | 5 / 10 | `budget.rs` |
//! | `success_reward` | [`RetryBudgetConfig`] | 1 | `budget.rs` |
//! | `refill_millis_per_sec` | [`RetryBudgetConfig`] | 1000 (1 token/s) | `budget.rs` |
//! | `window` | [`BreakerConfig`] | count-based, 100 calls | `breaker.rs` |
//! | `failure_rate_threshold` | [`BreakerConfig`] | 50 % | `breaker.rs` |
//! | `slow_call_rate_threshold` | [`BreakerConfig`] | 100 % | `breaker.rs` |
//! | `slow_call_duration` | [`BreakerConfig`] | 60 s (time to first byte) | `breaker.rs` |
//! | `minimum_calls` | [`BreakerConfig`] | 10 | `breaker.rs` |
//! | `break_duration` | [`BreakerConfig`] | 30 s | `breaker.rs` |
//! | `break_multiplier` / `max_break_duration` | [`BreakerConfig`] | 1 (constant) / 300 s | `breaker.rs` |
//! | `half_open_probes` | [`BreakerConfig`] | 1 | `breaker.rs` |
//! | `probe_lease` | [`BreakerConfig`] | 60 s | `breaker.rs` |
//! | rate, burst | [`RateLimiter::new`] | none (no limiter unless configured) | `rate.rs` |
//! | max in flight | [`ConcurrencyLimiter::new`] | none (no limiter unless configured) | `concurrency.rs` |
//! | adaptive limit: `min` / `max` / `initial` | [`AdaptiveConfig`] | 1 / 1000 / 20 (only with `Concurrency::Auto`) | `adaptive.rs` |
//! | `tolerance` / `smoothing` / `window` | [`AdaptiveConfig`] | TTFT ≤ 4× baseline is no congestion / 0.5 / 1 s and 4 samples | `adaptive.rs` |
//! | `backoff` / `hinted_backoff` | [`AdaptiveConfig`] | ×0.9 per loss, ×0.5 with a retry hint, once per window | `adaptive.rs` |
//! | `probe_interval` / `probe_factor` | [`AdaptiveConfig`] | 60 s ± 15 % / ×0.75 for 5 samples (≤ 30 s) | `adaptive.rs` |
//! | `connect` | [`Timeouts`] | 10 s | `timeouts.rs` |
//! | `first_token` | [`Timeouts`] | none | `timeouts.rs` |
//! | `idle` | [`Timeouts`] | 60 s (data events only) | `timeouts.rs` |
//! | `attempt` | [`Timeouts`] | 600 s | `timeouts.rs` |
//! | `total` | [`Timeouts`] | none | `timeouts.rs` |
//! | `consecutive_failures` / `consecutive_connect_failures` | [`EjectionConfig`] | 5 / 3 | `ejection.rs` |
//! | `base` / `max` ejection | [`EjectionConfig`] | 30 s × times ejected / 300 s | `ejection.rs` |
//! | `jitter_percent` / `max_ejected_percent` | [`EjectionConfig`] | 10 % / 10 % (at least one, never the last) | `ejection.rs` |
//! | `health_probe` | [`EjectionConfig`] | `GET /health` within 2 s (`None`: the probe is a user request) | `ejection.rs` |
//! | probe `first` / `factor` / `max` / `jitter_percent` | [`ProbeSchedule`] | 1 s / ×2 / 3 s / 25 % | `probe_schedule.rs` |
//! | `affinity_bound` / `latency_decay` | [`RoutingConfig`] | 8 / 10 s | `routing.rs` |
//! | slow start `window` / `aggression` / `min_weight_percent` | [`SlowStartConfig`] | 3 s / 1 / 10 % | `slow_start.rs` |
//! | hedge `delay` / `max_extra_percent` | [`HedgeConfig`] | off (p95 of recent first tokens, 5 % of calls when on) | `hedge.rs` |
//! | resume streams | [`ResumeStreams`] | `Background` (requests with `"background": true`) | `resume.rs` |
//! | tokens per minute | [`TokenRateLimiter::per_minute`] | none (no limiter unless configured) | `token_rate.rs` |

pub mod adaptive;
pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod clock;
pub mod concurrency;
pub mod ejection;
pub mod failure;
pub mod hedge;
pub mod peak_ewma;
pub mod probe_schedule;
pub mod rate;
pub mod rate_limit_headers;
pub mod resume;
pub mod retry;
pub mod retry_after;
pub mod rng;
pub mod routing;
pub mod slow_start;
pub mod timeouts;
pub mod token_rate;

pub use adaptive::{
    AdaptiveConfig, AdaptiveLimit, AdaptiveSnapshot, ChangeCause, LimitChange, LimitSample, Load,
    LossKind, PooledLimit,
};
pub use backoff::{Backoff, Jitter};
pub use breaker::{
    BreakerConfig, BreakerPermit, BreakerRejected, BreakerState, CircuitBreaker, Outcome,
    SlidingWindow, Transition, WindowMetrics,
};
pub use budget::{RetryBudget, RetryBudgetConfig};
pub use concurrency::{Admission, ConcurrencyLimiter, ConcurrencyPermit, WaiterId};
pub use ejection::{EjectReason, EjectionConfig, Ejector, Health, HealthChange, Verdict};
pub use failure::{is_retryable_status, Failure, FailureKind};
pub use hedge::{HedgeConfig, HedgeDelay};
pub use peak_ewma::PeakEwma;
pub use probe_schedule::ProbeSchedule;
pub use rate::{RateLimited, RateLimiter};
pub use rate_limit_headers::{Quota, RateLimitSnapshot};
pub use resume::ResumeStreams;
pub use retry::{GiveUpReason, RetryContext, RetryDecision, RetryPolicy};
pub use retry_after::{parse_retry_after, parse_should_retry, HintSource, RetryAfter};
pub use rng::Rng;
pub use routing::RoutingConfig;
pub use slow_start::SlowStartConfig;
pub use timeouts::{clamp_to_deadline, earliest, earliest_timer, BodyClock, TimeoutKind, Timeouts};
pub use token_rate::{estimate_tokens, TokenRateLimiter};
