//! A rate limiter: the Generic Cell Rate Algorithm (GCRA), as in `governor`.
//!
//! Configured by a rate (`requests` per `period`) and a `burst`. The emission interval is
//! `T = period / requests` (integer nanoseconds) and the tolerance `τ = T · burst`. The state
//! is one timestamp, the *theoretical arrival time* `tat` (plus the latest `now` seen, so that
//! time never goes backwards):
//!
//! ```text
//!   check(now, n):   tat' = max(tat, now) + n·T
//!                    tat' − τ ≤ now ?  ── yes ──► admit, tat := tat'
//!                                      └─ no ───► Wait { until: tat' − τ }   (tat unchanged)
//!                    n > burst        ─────────► Never { cost, burst }       (at once)
//! ```
//!
//! * A burst of up to `burst` is admitted at once from idle; after that, `T` per unit of cost.
//!   Over any interval of length `Δ` the admitted cost is at most `burst + Δ / T`.
//! * `Wait { until }` is exact: checking again at `until` admits (if nothing else was admitted
//!   meanwhile), at `until − 1 ns` it is still denied. A denial consumes nothing.
//! * A cost above the burst could never be admitted; it is refused at once with `Never` rather
//!   than queued forever. A cost of 0 is always admitted and changes nothing.
//! * `requests = 0` and `burst = 0` are treated as 1. A period shorter than `requests`
//!   nanoseconds gives `T = 0`: no limit.
//! * A `now` earlier than one already seen is treated as the last one seen; all arithmetic
//!   saturates.

use std::time::{Duration, Instant};

use super::clock::{saturating_add, Monotonic};

/// Why a check was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateLimited {
    /// Not yet: a check at `until` will succeed (unless others are admitted first).
    #[error("rate limited until {until:?}")]
    Wait {
        /// The earliest instant the same check can succeed.
        until: Instant,
    },
    /// The cost exceeds the burst and can never be admitted.
    #[error("cost {cost} exceeds the burst of {burst}")]
    Never {
        /// The cost asked for.
        cost: u32,
        /// The configured burst.
        burst: u32,
    },
}

/// A GCRA rate limiter (see the module docs).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    tat: Option<Instant>,
    clock: Monotonic,
}

impl RateLimiter {
    /// `requests` per `period`, admitting bursts of up to `burst`.
    pub fn new(requests: u32, period: Duration, burst: u32) -> Self {
        RateLimiter {
            interval: period / requests.max(1),
            burst: burst.max(1),
            tat: None,
            clock: Monotonic::new(),
        }
    }

    /// `per_second` requests per second with a burst of the same size.
    pub fn per_second(per_second: u32) -> Self {
        RateLimiter::new(per_second, Duration::from_secs(1), per_second)
    }

    /// The emission interval `T` (time per unit of cost).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The burst size.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Admits `cost` units at `now`, or says when (or that never).
    pub fn check(&mut self, now: Instant, cost: u32) -> Result<(), RateLimited> {
        let now = self.clock.observe(now);
        if cost > self.burst {
            return Err(RateLimited::Never {
                cost,
                burst: self.burst,
            });
        }
        if cost == 0 {
            return Ok(());
        }
        let increment = self.interval.saturating_mul(cost);
        let tolerance = self.interval.saturating_mul(self.burst);
        gcra(&mut self.tat, now, increment, tolerance)
    }

    /// Forgets all history: the full burst is available again.
    pub fn reset(&mut self) {
        self.tat = None;
    }
}

/// One step of GCRA, which both rate limiters run: a request worth `increment` against the
/// theoretical arrival time `tat`, admitted while it is at most `tolerance` ahead of `now`.
/// Admitting moves `tat`; a refusal says exactly when the request would fit.
pub(super) fn gcra(
    tat: &mut Option<Instant>,
    now: Instant,
    increment: Duration,
    tolerance: Duration,
) -> Result<(), RateLimited> {
    let start = tat.filter(|t| *t > now).unwrap_or(now);
    let new_tat = saturating_add(start, increment);
    // new_tat − τ, computed without subtracting from an Instant (which could underflow).
    let excess = new_tat.saturating_duration_since(now);
    if excess <= tolerance {
        *tat = Some(new_tat);
        Ok(())
    } else {
        Err(RateLimited::Wait {
            until: saturating_add(now, excess - tolerance),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_paced() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10, Duration::from_secs(1), 3);
        assert_eq!(r.interval(), ms(100));
        for _ in 0..3 {
            assert_eq!(r.check(t0, 1), Ok(()));
        }
        assert_eq!(
            r.check(t0, 1),
            Err(RateLimited::Wait {
                until: t0 + ms(100)
            })
        );
        assert!(r.check(t0 + ms(100) - Duration::from_nanos(1), 1).is_err());
        assert_eq!(r.check(t0 + ms(100), 1), Ok(()));
        assert_eq!(
            r.check(t0 + ms(100), 1),
            Err(RateLimited::Wait {
                until: t0 + ms(200)
            })
        );
    }

    #[test]
    fn denial_consumes_nothing() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1, Duration::from_secs(1), 1);
        assert!(r.check(t0, 1).is_ok());
        for _ in 0..100 {
            assert_eq!(
                r.check(t0, 1),
                Err(RateLimited::Wait {
                    until: t0 + Duration::from_secs(1)
                })
            );
        }
        assert!(r.check(t0 + Duration::from_secs(1), 1).is_ok());
    }

    #[test]
    fn cost_above_burst_never() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10, Duration::from_secs(1), 5);
        assert_eq!(
            r.check(t0, 6),
            Err(RateLimited::Never { cost: 6, burst: 5 })
        );
        assert_eq!(r.check(t0, 5), Ok(()));
        assert_eq!(r.check(t0, 0), Ok(()));
    }

    #[test]
    fn weighted_wait_is_exact() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10, Duration::from_secs(1), 5);
        assert_eq!(r.check(t0, 4), Ok(()));
        let Err(RateLimited::Wait { until }) = r.check(t0, 3) else {
            panic!()
        };
        assert_eq!(until, t0 + ms(200));
        assert!(r.check(until - Duration::from_nanos(1), 3).is_err());
        assert!(r.check(until, 3).is_ok());
    }

    #[test]
    fn backwards_time_clamped() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1, Duration::from_secs(1), 1);
        let t5 = t0 + Duration::from_secs(5);
        assert!(r.check(t5, 1).is_ok());
        assert_eq!(
            r.check(t0, 1),
            Err(RateLimited::Wait {
                until: t5 + Duration::from_secs(1)
            })
        );
    }

    #[test]
    fn extremes() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(0, Duration::MAX, u32::MAX);
        assert!(r.check(t0, u32::MAX).is_ok());
        // Saturated far past any representable instant: must simply not panic.
        let _ = r.check(t0, 1);
        let mut r = RateLimiter::new(u32::MAX, Duration::from_nanos(1), 0);
        for _ in 0..10 {
            assert!(r.check(t0, 1).is_ok());
        }
        r.reset();
        assert!(r.check(t0, 1).is_ok());
    }
}
