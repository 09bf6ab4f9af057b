//! A circuit breaker with resilience4j semantics, hardened against the known bug classes.
//!
//! ```text
//!                 rates ≥ thresholds over the window
//!                 (and ≥ minimum_calls in it)
//!   ┌────────┐ ─────────────────────────────────► ┌──────┐
//!   │ Closed │                                    │ Open │ ◄─────────────┐
//!   └────────┘                                    └──────┘               │ a probe fails, or a
//!       ▲                                            │ break ends        │ probe's lease ends
//!       │ all half_open_probes probes of             ▼ (next call/tick)  │ unreported
//!       │ the episode succeed                   ┌──────────┐             │ (break may grow)
//!       └────────────────────────────────────── │ HalfOpen │ ────────────┘
//!                                               └──────────┘
//!                                      one episode: at most half_open_probes probes
//!
//!   force_open() ──► ForcedOpen (admits nothing)     disable() ──► Disabled (admits all,
//!   reset() ──► Closed, from any state                              records nothing)
//! ```
//!
//! * **Window**: count-based (the last `size` calls) or time-based (the last `length`, kept
//!   in `buckets` buckets). Only calls recorded while Closed enter it; it is cleared on every
//!   transition into Closed.
//! * **Rates**: a call fails if [`Outcome::Failure`]; it is slow if its time to first byte
//!   exceeds `slow_call_duration` (vLLM signals overload by queueing). The breaker trips when
//!   `failures/calls ≥ failure_rate_threshold %` or `slow/calls ≥ slow_call_rate_threshold %`,
//!   and never while fewer than `minimum_calls` calls are in the window (for a count window the
//!   minimum is clamped to `size`, as resilience4j does).
//! * **Open**: nothing is admitted until the break ends; the rejection says when
//!   ([`BreakerRejected::retry_at`]). The break of the k-th consecutive trip is
//!   `min(max_break_duration, break_duration · break_multiplier^(k−1))` (saturating).
//! * **HalfOpen**: one *episode* is one Open → HalfOpen → (Closed | Open) period, and it
//!   admits at most `half_open_probes` probes **in total** (as resilience4j's
//!   `permittedNumberOfCallsInHalfOpenState`), not merely in flight: a probe that reports a
//!   success keeps its admission, so no further probe is admitted until the episode ends. The
//!   only probe that gives its admission back is one recorded as [`Outcome::Ignored`] (it says
//!   nothing about the server: the call was cancelled, or was a client error), as
//!   resilience4j's `releasePermission`.
//!   - The episode closes the breaker when `half_open_probes` probes have reported success —
//!     hence never while one of its probes is still outstanding, so every probe's outcome
//!     arrives while the episode that admitted it is still running and is counted in it.
//!   - It re-opens the breaker as soon as one probe fails (a slow success counts as a failure
//!     when `slow_call_rate_threshold < 100`). The episode's other outstanding probes become
//!     stale: the breaker is already open, and their outcomes are ignored.
//!   - Each probe holds a lease of `probe_lease` (`0` is treated as 1 ns): it must report
//!     before `admitted + probe_lease`. A lease that ends unreported counts as a failed probe:
//!     the breaker re-opens, stamped at the instant the lease ended, and the probe's late
//!     report is stale. So a lost probe cannot wedge the breaker (it is open for one break,
//!     then a new episode starts) and cannot make room for an extra probe in its episode.
//! * **Generations**: every transition bumps the generation; a permit carries the generation
//!   and breaker it came from, and a result from another generation or breaker changes nothing.
//!   A stale permit is the only thing whose outcome is not counted, besides
//!   [`Outcome::Ignored`] and a Disabled breaker (which records nothing): an outcome recorded
//!   with a permit of the current generation is always counted — in the window while Closed,
//!   in the episode while HalfOpen — and [`CircuitBreaker::record`] returns `true`.
//! * **Permits are plain data** (the core is pure, so there is no `Drop` magic): every permit
//!   from [`CircuitBreaker::try_acquire`] must be given back to [`CircuitBreaker::record`]
//!   exactly once — with [`Outcome::Ignored`] if the call was cancelled or its result should
//!   not count. A permit is not `Clone`, so it cannot be recorded twice.
//! * **Transitions** can be observed with [`CircuitBreaker::poll_transition`]; the queue keeps
//!   the latest 64 (older ones are dropped). Open → HalfOpen and the re-opening on an expired
//!   lease happen lazily on the next call at or after the instant they are due, and are
//!   stamped with that instant (the end of the break, the end of the lease).
//! * Time: a `now` earlier than one already seen is treated as the last one seen.
//!
//! | knob | default |
//! |---|---|
//! | `window` | count-based, 100 calls |
//! | `failure_rate_threshold` | 50 % |
//! | `slow_call_rate_threshold` | 100 % (trips only if every call in the window is slow) |
//! | `slow_call_duration` | 60 s |
//! | `minimum_calls` | 10 |
//! | `break_duration` | 30 s |
//! | `break_multiplier` | 1 (constant; set e.g. 2 to grow on consecutive trips) |
//! | `max_break_duration` | 300 s |
//! | `half_open_probes` | 1 |
//! | `probe_lease` | 60 s |

use std::time::{Duration, Instant};

use super::backoff::capped_exponential;

mod state_machine;
mod window;

pub use state_machine::CircuitBreaker;
pub use window::WindowMetrics;

/// The sliding window the rates are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `size` calls (`0` is treated as 1).
    Count {
        /// Number of calls.
        size: u32,
    },
    /// The calls of the last `length`, aggregated in `buckets` equal buckets (`0` is treated as
    /// 1; a bucket is at least 1 ns).
    Time {
        /// Window length.
        length: Duration,
        /// Number of buckets.
        buckets: u32,
    },
}

/// Configuration of a [`CircuitBreaker`] (defaults in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// The sliding window. Default count-based, 100 calls.
    pub window: SlidingWindow,
    /// Percentage of failed calls that trips the breaker, 1..=100 (clamped). Default 50.
    pub failure_rate_threshold: u8,
    /// Percentage of slow calls that trips the breaker, 1..=100 (clamped). Default 100.
    pub slow_call_rate_threshold: u8,
    /// A call whose time to first byte exceeds this is slow. Default 60 s.
    pub slow_call_duration: Duration,
    /// Calls needed in the window before the rates are evaluated. Default 10.
    pub minimum_calls: u32,
    /// Duration of the first break. Default 30 s.
    pub break_duration: Duration,
    /// Growth of the break on consecutive trips (0 and 1 mean constant). Default 1.
    pub break_multiplier: u32,
    /// Upper bound of a grown break (never below `break_duration`). Default 300 s.
    pub max_break_duration: Duration,
    /// Probes admitted per half-open episode, in total (0 is treated as 1); that many successes
    /// close the breaker. Default 1.
    pub half_open_probes: u32,
    /// How long a probe may take to report (0 is treated as 1 ns); a lease that ends
    /// unreported counts as a failed probe. Default 60 s.
    pub probe_lease: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: SlidingWindow::Count { size: 100 },
            failure_rate_threshold: 50,
            slow_call_rate_threshold: 100,
            slow_call_duration: Duration::from_secs(60),
            minimum_calls: 10,
            break_duration: Duration::from_secs(30),
            break_multiplier: 1,
            max_break_duration: Duration::from_secs(300),
            half_open_probes: 1,
            probe_lease: Duration::from_secs(60),
        }
    }
}

impl BreakerConfig {
    /// The break after the `trip`-th consecutive trip (1-based).
    pub fn break_for(&self, trip: u32) -> Duration {
        let cap = self.max_break_duration.max(self.break_duration);
        capped_exponential(self.break_duration, self.break_multiplier, trip, cap)
    }

    fn probes(&self) -> u32 {
        self.half_open_probes.max(1)
    }

    fn lease(&self) -> Duration {
        self.probe_lease.max(Duration::from_nanos(1))
    }

    fn minimum(&self) -> u32 {
        match self.window {
            SlidingWindow::Count { size } => self.minimum_calls.min(size.max(1)),
            SlidingWindow::Time { .. } => self.minimum_calls,
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow; outcomes are recorded.
    Closed,
    /// Calls are rejected until the break ends.
    Open,
    /// A bounded number of probes test the server.
    HalfOpen,
    /// Every call is admitted and nothing is recorded.
    Disabled,
    /// Every call is rejected until `reset()` or `disable()`.
    ForcedOpen,
}

impl BreakerState {
    /// The state as a gauge reads it (`vllm_client.breaker.state`): 0 when calls flow (closed,
    /// disabled), 1 while probes test the server (half-open), 2 when calls are rejected (open,
    /// forced open).
    pub fn level(self) -> u8 {
        match self {
            BreakerState::Closed | BreakerState::Disabled => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open | BreakerState::ForcedOpen => 2,
        }
    }
}

/// A state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
    /// When it happened.
    pub at: Instant,
}

/// Admission to make one call. Record it exactly once with [`CircuitBreaker::record`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a permit must be recorded exactly once"]
pub struct BreakerPermit {
    breaker: u64,
    generation: u64,
    probe: Option<u64>,
}

impl BreakerPermit {
    /// The generation of the breaker that issued it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }
}

/// The breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker {state:?}: retry at {retry_at:?}")]
pub struct BreakerRejected {
    /// When the breaker will next admit a call at the latest: the end of the break (Open); for
    /// HalfOpen, whose episode has admitted all its probes, the end of the earliest
    /// outstanding lease plus the break that would follow it (earlier if the probes report:
    /// at once on success, after a break on failure). For ForcedOpen, which never admits by
    /// itself, `now + break_duration` as a polling hint.
    pub retry_at: Instant,
    /// The state that refused.
    pub state: BreakerState,
}

/// How a call ended, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call succeeded; `ttfb` is its time to first byte (slow-call detection).
    Success {
        /// Time to first byte.
        ttfb: Duration,
    },
    /// The call failed (in a way that says something about the server's health).
    Failure {
        /// Time to first byte, if a byte arrived.
        ttfb: Option<Duration>,
    },
    /// Not counted (cancelled by the caller, a client-side error…); gives a half-open probe's
    /// admission back to its episode.
    Ignored,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_levels() {
        use BreakerState::*;
        let levels: Vec<u8> = [Closed, Disabled, HalfOpen, Open, ForcedOpen]
            .iter()
            .map(|s| s.level())
            .collect();
        assert_eq!(levels, vec![0, 0, 1, 2, 2]);
    }

    // Fixtures, shared with the tests in `state_machine.rs` and `window.rs`.

    pub(super) fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    pub(super) const OK: Outcome = Outcome::Success {
        ttfb: Duration::ZERO,
    };
    pub(super) const FAIL: Outcome = Outcome::Failure { ttfb: None };

    pub(super) fn small() -> BreakerConfig {
        BreakerConfig {
            window: SlidingWindow::Count { size: 4 },
            minimum_calls: 4,
            break_duration: Duration::from_secs(10),
            ..Default::default()
        }
    }

    pub(super) fn call(b: &mut CircuitBreaker, now: Instant, o: Outcome) -> bool {
        match b.try_acquire(now) {
            Ok(p) => {
                b.record(now, p, o);
                true
            }
            Err(_) => false,
        }
    }

    /// Calls with these outcomes, one after the other: the state after them.
    pub(super) fn calls(
        b: &mut CircuitBreaker,
        now: Instant,
        outcomes: &[Outcome],
    ) -> BreakerState {
        for o in outcomes {
            call(b, now, *o);
        }
        b.state(now)
    }

    pub(super) fn trip(b: &mut CircuitBreaker, now: Instant) {
        for _ in 0..4 {
            call(b, now, FAIL);
        }
        assert_eq!(b.state(now), BreakerState::Open);
    }

    #[test]
    fn defaults() {
        let c = BreakerConfig::default();
        assert_eq!(c.failure_rate_threshold, 50);
        assert_eq!(c.slow_call_rate_threshold, 100);
        assert_eq!(c.minimum_calls, 10);
        assert_eq!(c.break_duration, Duration::from_secs(30));
        assert_eq!(c.half_open_probes, 1);
    }
}
