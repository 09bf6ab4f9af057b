//! A client-side token rate limit: at most `per_minute` tokens a minute, charged per call
//! before it is sent and corrected by the usage the server reports.
//!
//! The same GCRA as [`RateLimiter`](super::RateLimiter), with a cost in tokens and a bucket of
//! one minute's worth (`burst = per_minute`): the emission interval is `T = 60 s / per_minute`,
//! the tolerance `τ = T · per_minute`, the state the theoretical arrival time `tat`.
//!
//! ```text
//!   check(now, n):   n > per_minute            ──► Never (at once; never queued)
//!                    tat' = max(tat, now) + n·T
//!                    tat' − τ ≤ now ?  ── yes ──► admit, tat := tat'
//!                                      └─ no ───► Wait { until: tat' − τ }  (nothing charged)
//!   adjust(now, +d): tat := max(tat, now) + min(d, per_minute)·T   (a debt: later calls wait)
//!   adjust(now, −d): tat := max(tat − d·T, now)                    (a refund, never a credit
//!                                                                   beyond a full bucket)
//! ```
//!
//! * Over any interval of length `Δ`, the tokens admitted by `check` are at most
//!   `per_minute + Δ / T` plus what refunds gave back.
//! * `Wait { until }` is exact, as for the request limiter: a check at `until` admits (if
//!   nothing was charged meanwhile).
//! * One correction charges at most a bucket (`per_minute` tokens): a server that reports an
//!   absurd usage cannot stop the client for longer than a minute.
//! * A `now` earlier than one seen is taken as the latest; arithmetic saturates.
//!
//! How the driver uses it: a call's estimate is `ceil(prompt characters / 4) + max_tokens`
//! (`max_completion_tokens` when `max_tokens` is absent; 0 when neither is set), at least 1,
//! charged once before its first attempt (retries are not charged again). When the call ends
//! with a reported `usage`, the difference `prompt_tokens + completion_tokens − estimate` is
//! charged or refunded; without a reported usage the estimate stands. A call the client never
//! sent (refused by the breaker or the request rate limit) is refunded at once.

use std::time::{Duration, Instant};

use super::clock::{saturating_add, Monotonic};
use super::RateLimited;

/// The token-rate limiter (see the module docs).
#[derive(Debug, Clone)]
pub struct TokenRateLimiter {
    /// Nanoseconds per token.
    interval_ns: u128,
    per_minute: u64,
    tat: Option<Instant>,
    clock: Monotonic,
}

impl TokenRateLimiter {
    /// At most `per_minute` tokens a minute, in bursts of up to a minute's worth (0 is taken
    /// as 1).
    pub fn per_minute(per_minute: u32) -> Self {
        let per_minute = u64::from(per_minute.max(1));
        TokenRateLimiter {
            interval_ns: 60_000_000_000u128 / u128::from(per_minute),
            per_minute,
            tat: None,
            clock: Monotonic::new(),
        }
    }

    /// Tokens per minute.
    pub fn limit(&self) -> u64 {
        self.per_minute
    }

    fn span(&self, tokens: u64) -> Duration {
        let ns = self.interval_ns.saturating_mul(u128::from(tokens));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Tokens that `check` would admit at once at `now`.
    pub fn available(&self, now: Instant) -> u64 {
        let now = self.clock.peek(now);
        let used = match self.tat {
            Some(tat) if tat > now => tat.saturating_duration_since(now).as_nanos(),
            _ => 0,
        };
        let used_tokens = used.div_ceil(self.interval_ns.max(1));
        self.per_minute
            .saturating_sub(u64::try_from(used_tokens).unwrap_or(u64::MAX))
    }

    /// Charges `tokens` at `now`, or says when they fit (or that they never will).
    pub fn check(&mut self, now: Instant, tokens: u64) -> Result<(), RateLimited> {
        let now = self.clock.observe(now);
        if tokens > self.per_minute {
            return Err(RateLimited::Never {
                cost: u32::try_from(tokens).unwrap_or(u32::MAX),
                burst: u32::try_from(self.per_minute).unwrap_or(u32::MAX),
            });
        }
        if tokens == 0 {
            return Ok(());
        }
        let (increment, tolerance) = (self.span(tokens), self.span(self.per_minute));
        super::rate::gcra(&mut self.tat, now, increment, tolerance)
    }

    /// Charges `delta` more tokens (`delta > 0`, at most a bucket) or refunds `-delta`
    /// (`delta < 0`) at `now`.
    pub fn adjust(&mut self, now: Instant, delta: i64) {
        let now = self.clock.observe(now);
        let start = self.tat.filter(|t| *t > now).unwrap_or(now);
        if delta > 0 {
            let d = delta.unsigned_abs().min(self.per_minute);
            self.tat = Some(saturating_add(start, self.span(d)));
        } else if delta < 0 {
            let back = self.span(delta.unsigned_abs());
            let room = start.saturating_duration_since(now);
            // tat − back, not below now: computed from `now` so no Instant can underflow.
            self.tat = Some(saturating_add(now, room.saturating_sub(back)));
        }
    }
}

/// The estimate the driver charges for a call (see the module docs).
pub fn estimate_tokens(prompt_chars: u64, max_tokens: Option<u64>) -> u64 {
    prompt_chars
        .div_ceil(4)
        .saturating_add(max_tokens.unwrap_or(0))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_minute_of_tokens_then_waits() {
        let t0 = Instant::now();
        let mut l = TokenRateLimiter::per_minute(600); // 10 tokens a second
        assert_eq!(l.available(t0), 600);
        assert_eq!(l.check(t0, 600), Ok(()));
        assert_eq!(l.available(t0), 0);
        let Err(RateLimited::Wait { until }) = l.check(t0, 100) else {
            panic!("must wait")
        };
        assert_eq!(until, t0 + 10 * S);
        assert!(l.check(until - Duration::from_nanos(1), 100).is_err());
        assert_eq!(l.check(until, 100), Ok(()));
    }

    #[test]
    fn more_than_a_bucket_is_refused_at_once() {
        let t0 = Instant::now();
        let mut l = TokenRateLimiter::per_minute(100);
        assert_eq!(
            l.check(t0, 101),
            Err(RateLimited::Never {
                cost: 101,
                burst: 100
            })
        );
        assert_eq!(l.available(t0), 100, "a refusal charges nothing");
    }

    #[test]
    fn corrections_charge_and_refund() {
        let t0 = Instant::now();
        let mut l = TokenRateLimiter::per_minute(600);
        l.check(t0, 300).unwrap();
        l.adjust(t0, -200); // the call used 100, not 300
        assert_eq!(l.available(t0), 500);
        l.adjust(t0, 400); // another used 400 more than estimated
        assert_eq!(l.available(t0), 100);
        l.adjust(t0, -10_000); // a refund never gives more than a full bucket
        assert_eq!(l.available(t0), 600);
        l.adjust(t0, i64::MAX); // an absurd usage costs at most one bucket
        assert_eq!(l.available(t0), 0);
        assert_eq!(l.available(t0 + 60 * S), 600);
    }

    #[test]
    fn estimate_rule() {
        assert_eq!(estimate_tokens(0, None), 1);
        assert_eq!(estimate_tokens(9, None), 3);
        assert_eq!(estimate_tokens(8, Some(100)), 102);
        assert_eq!(estimate_tokens(u64::MAX, Some(u64::MAX)), u64::MAX);
    }
}
