//! [`SplitMix64`]: a small seeded generator for workloads (no dependency, same numbers on
//! every platform).

/// SplitMix64 (Steele, Lea, Flood 2014): the core's own seeded generator
/// ([`vllm_client_core::policy::Rng`]) with the draws a workload needs.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    rng: vllm_client_core::policy::Rng,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 {
            rng: vllm_client_core::policy::Rng::new(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform number in `[0, 1)` (53 bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform integer in `[lo, hi]` (`lo` when `hi < lo`).
    pub fn range_u32(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        let span = u64::from(hi - lo) + 1;
        lo + (self.next_u64() % span) as u32
    }

    /// An exponentially distributed number with mean `1 / rate` (`rate > 0`).
    pub fn exp(&mut self, rate: f64) -> f64 {
        // 1 − U lies in (0, 1]: the logarithm is finite.
        -(1.0 - self.next_f64()).ln() / rate
    }
}
