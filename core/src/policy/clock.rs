//! Time helpers shared by the policies: a monotonic "last seen" clamp and saturating
//! `Instant` arithmetic.
//!
//! Every policy takes `now` as an argument. A `now` earlier than one already seen is treated as
//! the last one seen ([`Monotonic::observe`]), so time never goes backwards and nothing panics.
//! `Instant + Duration` can overflow (e.g. `Duration::MAX`); [`saturating_add`] instead returns
//! the latest representable instant not after the exact sum.

use std::time::{Duration, Instant};

/// Remembers the latest `now` seen and clamps earlier ones to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Monotonic {
    last: Option<Instant>,
}

impl Monotonic {
    /// A clamp that has seen no time yet.
    pub fn new() -> Self {
        Monotonic { last: None }
    }

    /// Returns `max(now, last seen)` and remembers it.
    pub fn observe(&mut self, now: Instant) -> Instant {
        let t = self.peek(now);
        self.last = Some(t);
        t
    }

    /// Returns `max(now, last seen)` without remembering it.
    pub fn peek(&self, now: Instant) -> Instant {
        match self.last {
            Some(last) if last > now => last,
            _ => now,
        }
    }

    /// The latest instant seen, if any.
    pub fn last(&self) -> Option<Instant> {
        self.last
    }
}

/// `t + d`, or — when that is not representable — the latest representable instant
/// before it (found by greedy halving). Never panics.
pub fn saturating_add(t: Instant, d: Duration) -> Instant {
    if let Some(sum) = t.checked_add(d) {
        return sum;
    }
    let mut result = t;
    let mut step = d / 2;
    while !step.is_zero() {
        if let Some(next) = result.checked_add(step) {
            result = next;
        }
        step /= 2;
    }
    result
}

/// `later - earlier`, or zero when `later` is not after `earlier`.
pub fn saturating_since(later: Instant, earlier: Instant) -> Duration {
    later.saturating_duration_since(earlier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_backwards_time() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let mut m = Monotonic::new();
        assert_eq!(m.observe(t1), t1);
        assert_eq!(m.observe(t0), t1);
        assert_eq!(m.last(), Some(t1));
    }

    #[test]
    fn saturating_add_never_panics() {
        let t = Instant::now();
        let far = saturating_add(t, Duration::MAX);
        assert!(far > t + Duration::from_secs(1_000_000_000));
        assert_eq!(
            saturating_add(t, Duration::from_secs(1)),
            t + Duration::from_secs(1)
        );
        assert_eq!(saturating_since(t, far), Duration::ZERO);
    }
}
