//! When an ejected endpoint is probed: a short, jittered, growing schedule, so that an endpoint
//! that was down is back in rotation within seconds of answering again, without a client
//! hammering a dead one.
//!
//! ```text
//!   interval(k) = min(first × factor^k, max, ejection length) − up to jitter_percent of it
//!   k = failed probes so far in this ejection (0 for the first probe)
//! ```
//!
//! Jitter is only ever taken off (as for ejections), so an interval never exceeds its cap and
//! many clients do not probe in lockstep. With the defaults (1 s × 2, at most 3 s, 25 %
//! jitter) a replica that comes back is probed again within 3 s; the probe itself is a
//! `GET /health` (see [`EjectionConfig::health_probe`](super::EjectionConfig::health_probe)),
//! cheap on vLLM and llama.cpp. Anchors: Linkerd's failure accrual re-probes a failed endpoint
//! with an exponential backoff from 1 s; Envoy's active health checking probes unhealthy
//! hosts on their own interval, with jitter.

use std::time::Duration;

use super::rng::Rng;

/// The shortest interval, whatever the configuration.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The most jitter taken off an interval, in percent.
const MAX_JITTER_PERCENT: u32 = 50;

/// The probe schedule of an ejected endpoint (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeSchedule {
    /// The first interval (default 1 s).
    pub first: Duration,
    /// Each failed probe multiplies the interval by this (default 2; 0 is taken as 1).
    pub factor: u32,
    /// The longest interval (default 3 s); never longer than the ejection itself.
    pub max: Duration,
    /// Up to this share of each interval is taken off at random (default 25 %; at most 50).
    pub jitter_percent: u32,
}

impl Default for ProbeSchedule {
    fn default() -> Self {
        ProbeSchedule {
            first: Duration::from_secs(1),
            factor: 2,
            max: Duration::from_secs(3),
            jitter_percent: 25,
        }
    }
}

impl ProbeSchedule {
    /// The `k`-th interval before jitter (`k` failed probes so far), capped at `max` and at
    /// `cap` (the ejection's length).
    pub fn ceiling(&self, k: u32, cap: Duration) -> Duration {
        let growth = self.factor.max(1).saturating_pow(k.min(64));
        let c = self.first.saturating_mul(growth).min(self.max).min(cap);
        // Never a zero interval: a probe that fails at once is not re-sent in a loop.
        c.max(MIN_INTERVAL)
    }

    /// The shortest the `k`-th interval can be: its ceiling minus the whole jitter share.
    pub fn floor(&self, k: u32, cap: Duration) -> Duration {
        let c = self.ceiling(k, cap);
        c.saturating_sub(self.jitter(c))
    }

    fn jitter(&self, ceiling: Duration) -> Duration {
        ceiling.saturating_mul(self.jitter_percent.min(MAX_JITTER_PERCENT)) / 100
    }

    /// The `k`-th interval, jittered (within [`floor`](Self::floor) and
    /// [`ceiling`](Self::ceiling)).
    pub fn interval(&self, k: u32, cap: Duration, rng: &mut Rng) -> Duration {
        let c = self.ceiling(k, cap);
        c.saturating_sub(rng.duration_below(self.jitter(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn grows_from_one_second_and_is_capped() {
        let p = ProbeSchedule::default();
        let ceilings: Vec<Duration> = (0..5).map(|k| p.ceiling(k, s(30))).collect();
        assert_eq!(ceilings, [s(1), s(2), s(3), s(3), s(3)]);
        assert_eq!(p.ceiling(40, s(30)), s(3), "no overflow");
        assert_eq!(
            p.ceiling(0, Duration::from_millis(500)),
            Duration::from_millis(500)
        );
        assert_eq!(p.floor(0, s(30)), Duration::from_millis(750));
    }

    #[test]
    fn jitter_only_shortens() {
        let p = ProbeSchedule::default();
        let mut rng = Rng::new(3);
        for k in 0..6 {
            for _ in 0..200 {
                let i = p.interval(k, s(30), &mut rng);
                assert!(i <= p.ceiling(k, s(30)) && i >= p.floor(k, s(30)), "{i:?}");
            }
        }
    }
}
