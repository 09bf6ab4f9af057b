//! [`PeakEwma`]: a latency estimate that jumps to a peak at once and decays toward the mean
//! (Finagle's and tower's peak EWMA), for load-aware routing.
//!
//! A sample above the estimate replaces it (a replica that suddenly queues is avoided at once);
//! a sample below is blended in with a weight that grows with the time since the last sample
//! (`exp(-elapsed / decay)` keeps the old value), so a burst of fast samples does not erase a
//! slow spell within a few milliseconds.

use std::time::{Duration, Instant};

/// A peak-sensitive exponentially weighted moving average of a latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakEwma {
    /// The estimate in seconds; `None` before the first sample.
    estimate: Option<f64>,
    last: Option<Instant>,
    decay: Duration,
}

impl PeakEwma {
    /// An estimate with no samples that decays with time constant `decay` (tower: 10 s).
    pub fn new(decay: Duration) -> Self {
        PeakEwma {
            estimate: None,
            last: None,
            decay,
        }
    }

    /// Adds a sample taken at `now`.
    pub fn observe(&mut self, now: Instant, sample: Duration) {
        let x = sample.as_secs_f64();
        let next = match (self.estimate, self.last) {
            (Some(old), _) if x > old => x,
            (Some(old), Some(last)) => {
                let elapsed = now.saturating_duration_since(last).as_secs_f64();
                let tau = self.decay.as_secs_f64().max(1e-9);
                let keep = (-elapsed / tau).exp();
                old * keep + x * (1.0 - keep)
            }
            _ => x,
        };
        self.estimate = Some(if next.is_finite() { next } else { x });
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
    }

    /// The estimate, or `None` before the first sample.
    pub fn get(&self) -> Option<Duration> {
        self.estimate
            .map(|s| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX))
    }

    /// The estimate seen at `now`, relaxed toward `floor` while no sample arrives: an endpoint
    /// that was slow once and then left alone looks a little better every `decay`, so it is
    /// tried again instead of being starved forever. `None` before the first sample.
    pub fn relaxed(&self, now: Instant, floor: f64) -> Option<f64> {
        let (est, last) = (self.estimate?, self.last?);
        if est <= floor {
            return Some(est);
        }
        let idle = now.saturating_duration_since(last).as_secs_f64();
        let tau = self.decay.as_secs_f64().max(1e-9);
        Some(floor + (est - floor) * (-idle / tau).exp())
    }

    /// When the last sample arrived.
    pub fn last_sample(&self) -> Option<Instant> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_peak_is_taken_at_once_and_decays_with_time() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(Duration::from_secs(10));
        assert_eq!(e.get(), None);
        e.observe(t0, ms(100));
        assert_eq!(e.get(), Some(ms(100)));
        e.observe(t0 + ms(10), ms(900));
        assert_eq!(e.get(), Some(ms(900)), "peaks replace the estimate");
        // A fast sample 10 ms later barely moves it; one 30 s later nearly replaces it.
        e.observe(t0 + ms(20), ms(100));
        let soon = e.get().unwrap();
        assert!(soon > ms(890), "{soon:?}");
        e.observe(t0 + Duration::from_secs(30), ms(100));
        let later = e.get().unwrap();
        assert!(later < ms(150), "{later:?}");
    }

    #[test]
    fn relaxed_drifts_toward_the_floor_while_idle() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(Duration::from_secs(10));
        e.observe(t0, Duration::from_secs(5));
        assert_eq!(e.relaxed(t0, 0.1), Some(5.0));
        let after = e.relaxed(t0 + Duration::from_secs(10), 0.1).unwrap();
        assert!((after - (0.1 + 4.9 / std::f64::consts::E)).abs() < 1e-9);
        assert!(e.relaxed(t0 + Duration::from_secs(1000), 0.1).unwrap() < 0.1001);
        // Below the floor it stays put.
        assert_eq!(e.relaxed(t0, 9.0), Some(5.0));
    }

    #[test]
    fn extreme_samples_stay_finite() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(Duration::ZERO);
        e.observe(t0, Duration::MAX);
        e.observe(t0, Duration::ZERO);
        e.observe(t0 + Duration::from_secs(1), Duration::ZERO);
        assert!(e.get().is_some());
    }
}
