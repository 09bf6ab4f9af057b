//! A tiny seeded pseudo-random number generator.
//!
//! The core never touches a global or OS random source: every random choice (jitter) is drawn
//! from an [`Rng`] the caller seeds, so a whole call replays identically from
//! `(config, seed, inputs)`.
//!
//! The generator is SplitMix64 (Steele, Lea & Flood 2014): one `u64` of state, full period
//! 2^64, good statistical quality for jitter. It is **not** cryptographically secure.
//! Bounded draws are unbiased (Lemire's multiply-and-reject for 64-bit bounds, mask-and-reject
//! for 128-bit bounds), so `duration_below(Duration::MAX)` is as uniform as
//! `duration_below(1 ms)`.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A seeded SplitMix64 generator. Same seed, same sequence, on every platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// Creates a generator from a seed. Every seed (including 0) is fine.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// Returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a uniform value in `[0, n)`; returns 0 when `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's nearly-divisionless method: reject the few low products that would bias.
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// Returns a uniform value in `[0, n)` for 128-bit bounds; 0 when `n == 0`.
    fn below_u128(&mut self, n: u128) -> u128 {
        if let Ok(small) = u64::try_from(n) {
            return u128::from(self.below(small));
        }
        // n > 2^64: draw under the smallest covering bit mask and reject (< 2 draws expected).
        let mask = u128::MAX >> (n - 1).leading_zeros();
        loop {
            let x = ((u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())) & mask;
            if x < n {
                return x;
            }
        }
    }

    /// Returns a uniform duration in `[0, d)` at nanosecond resolution; zero when `d` is zero.
    pub fn duration_below(&mut self, d: Duration) -> Duration {
        let n = self.below_u128(d.as_nanos());
        // n < d.as_nanos(), so the seconds always fit in a u64.
        Duration::new((n / NANOS_PER_SEC) as u64, (n % NANOS_PER_SEC) as u32)
    }

    /// Returns a uniform duration in `[lo, hi)`; returns `lo` when `hi <= lo`.
    pub fn duration_between(&mut self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        // lo + (something < hi - lo) < hi, so this cannot overflow.
        lo + self.duration_below(hi - lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn known_splitmix_vector() {
        // Reference output of SplitMix64 seeded with 0.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn below_bounds() {
        let mut r = Rng::new(7);
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
        for _ in 0..1000 {
            assert!(r.below(3) < 3);
            assert!(r.below(u64::MAX) < u64::MAX);
        }
    }

    #[test]
    fn below_covers_range() {
        let mut r = Rng::new(9);
        let mut seen = [false; 5];
        for _ in 0..200 {
            seen[r.below(5) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn durations() {
        let mut r = Rng::new(3);
        assert_eq!(r.duration_below(Duration::ZERO), Duration::ZERO);
        assert_eq!(r.duration_below(Duration::from_nanos(1)), Duration::ZERO);
        for _ in 0..1000 {
            assert!(r.duration_below(Duration::MAX) < Duration::MAX);
            let d = r.duration_below(Duration::from_millis(10));
            assert!(d < Duration::from_millis(10));
            let lo = Duration::from_secs(1);
            let hi = Duration::from_secs(2);
            let b = r.duration_between(lo, hi);
            assert!(lo <= b && b < hi);
        }
        assert_eq!(
            r.duration_between(Duration::from_secs(5), Duration::from_secs(1)),
            Duration::from_secs(5)
        );
    }
}
