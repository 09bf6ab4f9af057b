//! Hedging the first token: when a stream's first token is late, a second attempt starts on
//! another endpoint and the first to produce output wins.
//!
//! - **When**: after a fixed delay, or after the p-th percentile (default p95) of the client's
//!   recent times to first token, once enough of them were seen (AWS's S3 transfer manager
//!   hedges past p95 of 20 points; tower's `hedge` likewise waits for data).
//! - **How much**: a hedge spends a token from a bucket every call fills by
//!   `max_extra_percent / 100` (default 5 %: brpc's and Finagle's backup requests stay near
//!   that), so hedges never exceed that share of calls plus a small burst; the retry budget is
//!   charged as for a retry.
//! - **Where**: only on another endpoint that is not ejected (a replica queueing the request
//!   would queue its twin too).
//! - **Never after commit**: the first event handed to the caller ends the race; the loser is
//!   cancelled (its connection closed, so vLLM aborts it) before any of its events is seen.
//!
//! Off by default, and for streams only: a JSON call's "first token" is its whole answer.

use std::collections::VecDeque;
use std::time::Duration;

/// When to hedge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeDelay {
    /// After this long without a first token.
    Fixed(Duration),
    /// After the client's recent time-to-first-token percentile (0–100) — no hedge until
    /// [`HedgeConfig::min_samples`] first tokens were seen.
    Percentile(u8),
}

/// The hedged-first-token policy (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HedgeConfig {
    /// When the second attempt starts (default: the p95 of recent first-token times).
    pub delay: HedgeDelay,
    /// The most hedges per 100 calls, over time (default 5).
    pub max_extra_percent: u32,
    /// First-token times needed before a percentile delay is trusted (default 20).
    pub min_samples: u32,
    /// Never hedge sooner than this (default 50 ms), whatever the percentile says.
    pub min_delay: Duration,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            delay: HedgeDelay::Percentile(95),
            max_extra_percent: 5,
            min_samples: 20,
            min_delay: Duration::from_millis(50),
        }
    }
}

impl HedgeConfig {
    /// Hedges after a fixed delay.
    pub fn after(delay: Duration) -> Self {
        HedgeConfig {
            delay: HedgeDelay::Fixed(delay),
            ..HedgeConfig::default()
        }
    }

    /// Hedges past the `p`-th percentile of recent first-token times.
    pub fn percentile(p: u8) -> Self {
        HedgeConfig {
            delay: HedgeDelay::Percentile(p.min(100)),
            ..HedgeConfig::default()
        }
    }

    /// Sets the most hedges per 100 calls.
    pub fn max_extra_percent(mut self, percent: u32) -> Self {
        self.max_extra_percent = percent;
        self
    }
}

/// How many recent first-token times are kept.
const WINDOW: usize = 100;
/// Hundredths of a token: a call deposits `max_extra_percent` of them, a hedge costs 100.
const TOKEN: u32 = 100;
/// The bucket holds at most this many hedges.
const BURST: u32 = 10;

/// The client's hedging state: recent first-token times and the bucket that bounds hedges.
#[derive(Debug, Clone, Default)]
pub struct HedgeState {
    recent: VecDeque<Duration>,
    /// In hundredths of a hedge.
    bucket: u32,
    /// Hedges started, for the record.
    hedges: u64,
    calls: u64,
}

impl HedgeState {
    /// A first token arrived after `ttft`.
    pub fn observe(&mut self, ttft: Duration) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(ttft);
    }

    /// A hedgeable call started: it earns its share of a hedge.
    pub fn on_call(&mut self, cfg: &HedgeConfig) {
        self.calls = self.calls.saturating_add(1);
        self.bucket = self
            .bucket
            .saturating_add(cfg.max_extra_percent.min(TOKEN))
            .min(BURST * TOKEN);
    }

    /// How long after its start a call should hedge (`None`: not yet known — too few samples).
    pub fn delay(&self, cfg: &HedgeConfig) -> Option<Duration> {
        let d = match cfg.delay {
            HedgeDelay::Fixed(d) => d,
            HedgeDelay::Percentile(p) => {
                if self.recent.len() < cfg.min_samples.max(1) as usize {
                    return None;
                }
                let mut sorted: Vec<Duration> = self.recent.iter().copied().collect();
                sorted.sort_unstable();
                let rank = (usize::from(p.min(100)) * sorted.len())
                    .div_ceil(100)
                    .max(1);
                sorted[rank.min(sorted.len()) - 1]
            }
        };
        Some(d.max(cfg.min_delay))
    }

    /// Takes a hedge from the bucket, if one is there.
    pub fn try_spend(&mut self) -> bool {
        if self.bucket >= TOKEN {
            self.bucket -= TOKEN;
            self.hedges = self.hedges.saturating_add(1);
            true
        } else {
            false
        }
    }

    /// Hedges started and hedgeable calls seen so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hedges, self.calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentile_needs_samples_then_follows_them() {
        let cfg = HedgeConfig::percentile(95);
        let mut s = HedgeState::default();
        for i in 1..=19 {
            s.observe(ms(i * 10));
        }
        assert_eq!(s.delay(&cfg), None);
        s.observe(ms(200));
        assert_eq!(s.delay(&cfg), Some(ms(190)));
        // Old samples leave the window.
        for _ in 0..100 {
            s.observe(ms(1000));
        }
        assert_eq!(s.delay(&cfg), Some(ms(1000)));
        assert_eq!(
            HedgeState::default().delay(&HedgeConfig::after(ms(1))),
            Some(ms(50)),
            "never sooner than min_delay"
        );
    }

    #[test]
    fn hedges_stay_within_their_share_plus_the_burst() {
        for percent in [0u32, 1, 5, 20, 100, 500] {
            let cfg = HedgeConfig::after(ms(100)).max_extra_percent(percent);
            let mut s = HedgeState::default();
            let mut hedges = 0u64;
            for _ in 0..10_000 {
                s.on_call(&cfg);
                if s.try_spend() {
                    hedges += 1;
                }
            }
            let bound = 10_000 * u64::from(percent.min(100)) / 100;
            assert!(hedges <= bound + u64::from(BURST), "{percent}: {hedges}");
            assert!(hedges >= bound.saturating_sub(1), "{percent}: {hedges}");
        }
    }
}
