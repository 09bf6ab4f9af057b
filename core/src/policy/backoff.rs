//! Capped exponential backoff with jitter.
//!
//! For the `n`-th retry (1-based) the exponential envelope is
//! `e(n) = min(max, initial · multiplier^(n−1))`, computed with saturating arithmetic so that
//! `n = u32::MAX` and `Duration::MAX` neither panic nor wrap to zero. The jitter then picks the
//! actual delay, and **the cap is applied after the jitter**, so the delay never exceeds `max`:
//!
//! | jitter | delay |
//! |---|---|
//! | [`Jitter::None`] | `e(n)` |
//! | [`Jitter::Full`] (default) | uniform in `[0, e(n))` (AWS "full jitter", gRPC) |
//! | [`Jitter::Equal`] | `e(n)/2 + uniform in [0, e(n) − e(n)/2)` |
//! | [`Jitter::Decorrelated`] | `min(max, uniform in [initial, 3·previous))` (AWS "decorrelated"); `initial` when `3·previous ≤ initial` |
//!
//! Defaults ([`Backoff::default`]): initial 500 ms, max 8 s, multiplier 2, full jitter — the
//! range openai-python draws from. A multiplier of 0 or 1 gives a constant envelope.
//! Randomness comes only from the [`Rng`] passed in, so delays are deterministic for a seed.

use std::time::Duration;

use super::rng::Rng;

/// How the delay is randomised within the exponential envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// No randomness: the envelope itself.
    None,
    /// Uniform in `[0, envelope)`.
    #[default]
    Full,
    /// Half the envelope plus a uniform draw over the other half.
    Equal,
    /// Uniform in `[initial, 3 · previous delay)`, capped at `max`.
    Decorrelated,
}

/// A capped exponential backoff schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Envelope of the first retry. Default 500 ms.
    pub initial: Duration,
    /// Upper bound of every delay, applied after jitter. Default 8 s.
    pub max: Duration,
    /// Growth factor per retry; 0 and 1 mean constant. Default 2.
    pub multiplier: u32,
    /// Randomisation. Default [`Jitter::Full`].
    pub jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(8),
            multiplier: 2,
            jitter: Jitter::Full,
        }
    }
}

/// `min(cap, initial · multiplier^(n−1))` for `n ≥ 1` (n = 0 is treated as 1), saturating.
///
/// At most ~100 multiplications happen: once the value reaches the cap (or `Duration::MAX`)
/// the loop stops, so `n = u32::MAX` is as cheap as `n = 2`.
pub(crate) fn capped_exponential(
    initial: Duration,
    multiplier: u32,
    n: u32,
    cap: Duration,
) -> Duration {
    let mut e = initial;
    if multiplier > 1 {
        for _ in 1..n.max(1) {
            if e >= cap || e.is_zero() {
                break;
            }
            e = e.saturating_mul(multiplier);
        }
    }
    e.min(cap)
}

impl Backoff {
    /// A constant delay `d` with no jitter.
    pub fn constant(d: Duration) -> Self {
        Backoff {
            initial: d,
            max: d,
            multiplier: 1,
            jitter: Jitter::None,
        }
    }

    /// The envelope `min(max, initial · multiplier^(retry−1))` of the given 1-based retry.
    pub fn envelope(&self, retry: u32) -> Duration {
        capped_exponential(self.initial, self.multiplier, retry, self.max)
    }

    /// The delay before the given 1-based retry (`retry = 0` is treated as 1).
    ///
    /// `previous` is the delay slept before the previous retry (zero before the first); only
    /// [`Jitter::Decorrelated`] uses it. The result is always `≤ self.max`.
    pub fn delay(&self, retry: u32, previous: Duration, rng: &mut Rng) -> Duration {
        let e = self.envelope(retry);
        let d = match self.jitter {
            Jitter::None => e,
            Jitter::Full => rng.duration_below(e),
            Jitter::Equal => {
                let half = e / 2;
                half + rng.duration_below(e - half)
            }
            Jitter::Decorrelated => rng.duration_between(self.initial, previous.saturating_mul(3)),
        };
        // Cap after jitter: jitter must never push a delay above the maximum.
        d.min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn defaults() {
        let b = Backoff::default();
        assert_eq!(b.initial, ms(500));
        assert_eq!(b.max, Duration::from_secs(8));
        assert_eq!(b.multiplier, 2);
        assert_eq!(b.jitter, Jitter::Full);
    }

    #[test]
    fn envelope_grows_and_caps() {
        let b = Backoff::default();
        assert_eq!(b.envelope(0), ms(500));
        assert_eq!(b.envelope(1), ms(500));
        assert_eq!(b.envelope(2), ms(1000));
        assert_eq!(b.envelope(4), ms(4000));
        assert_eq!(b.envelope(5), ms(8000));
        assert_eq!(b.envelope(6), ms(8000));
        assert_eq!(b.envelope(u32::MAX), ms(8000));
    }

    #[test]
    fn no_overflow_with_huge_values() {
        let b = Backoff {
            initial: Duration::MAX,
            max: Duration::MAX,
            multiplier: u32::MAX,
            jitter: Jitter::None,
        };
        assert_eq!(
            b.delay(u32::MAX, Duration::MAX, &mut Rng::new(1)),
            Duration::MAX
        );
        let b = Backoff {
            initial: Duration::from_nanos(1),
            max: Duration::MAX,
            multiplier: u32::MAX,
            jitter: Jitter::Decorrelated,
        };
        assert!(b.delay(u32::MAX, Duration::MAX, &mut Rng::new(1)) <= Duration::MAX);
        let b = Backoff {
            jitter: Jitter::None,
            ..b
        };
        // Saturates to the cap instead of wrapping to zero.
        assert_eq!(
            b.delay(u32::MAX, Duration::ZERO, &mut Rng::new(1)),
            Duration::MAX
        );
    }

    #[test]
    fn full_jitter_in_range() {
        let b = Backoff::default();
        let mut rng = Rng::new(5);
        for n in 1..10 {
            for _ in 0..100 {
                assert!(b.delay(n, Duration::ZERO, &mut rng) < b.envelope(n));
            }
        }
    }

    #[test]
    fn equal_jitter_in_range() {
        let b = Backoff {
            jitter: Jitter::Equal,
            ..Backoff::default()
        };
        let mut rng = Rng::new(5);
        for _ in 0..100 {
            let d = b.delay(3, Duration::ZERO, &mut rng);
            assert!(d >= ms(1000) && d < ms(2000), "{d:?}");
        }
    }

    #[test]
    fn decorrelated_in_range_and_capped() {
        let b = Backoff {
            jitter: Jitter::Decorrelated,
            ..Backoff::default()
        };
        let mut rng = Rng::new(5);
        assert_eq!(b.delay(1, Duration::ZERO, &mut rng), ms(500));
        for _ in 0..100 {
            let d = b.delay(2, ms(1000), &mut rng);
            assert!(d >= ms(500) && d < ms(3000), "{d:?}");
            assert!(b.delay(9, ms(7000), &mut rng) <= Duration::from_secs(8));
        }
    }

    #[test]
    fn cap_after_jitter_even_when_initial_exceeds_max() {
        let b = Backoff {
            initial: Duration::from_secs(100),
            max: Duration::from_secs(1),
            multiplier: 2,
            jitter: Jitter::Decorrelated,
        };
        let mut rng = Rng::new(1);
        for n in 1..50 {
            assert!(b.delay(n, Duration::from_secs(1000), &mut rng) <= Duration::from_secs(1));
        }
    }

    #[test]
    fn deterministic_for_seed() {
        let b = Backoff::default();
        let a: Vec<_> = {
            let mut r = Rng::new(99);
            (1..20)
                .map(|n| b.delay(n, Duration::ZERO, &mut r))
                .collect()
        };
        let c: Vec<_> = {
            let mut r = Rng::new(99);
            (1..20)
                .map(|n| b.delay(n, Duration::ZERO, &mut r))
                .collect()
        };
        assert_eq!(a, c);
    }

    #[test]
    fn constant() {
        let b = Backoff::constant(ms(250));
        assert_eq!(b.delay(1, Duration::ZERO, &mut Rng::new(0)), ms(250));
        assert_eq!(b.delay(1000, Duration::ZERO, &mut Rng::new(0)), ms(250));
    }
}
