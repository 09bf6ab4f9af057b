//! Baseline probes: when the next one is due (interval ± jitter, or early after cuts in a row),
//! how it holds the limit down until in-flight drains, and how its samples re-measure the
//! baselines when it ends. Separate from the delay path because it runs on its own clock and
//! suspends the delay path while it runs.

use std::time::{Duration, Instant};

use super::gradient::Window;
use super::{secs, AdaptiveLimit, ChangeCause, Load, BUCKETS};

#[derive(Debug, Clone)]
pub(super) struct Probe {
    pub(super) started: Instant,
    /// The limit to restore.
    pub(super) saved: f64,
    pub(super) limit: u32,
    pub(super) drained_at: Option<Instant>,
    pub(super) samples: Vec<(usize, Duration)>,
}

impl AdaptiveLimit {
    pub(super) fn probe_due_after(&mut self, now: Instant) -> Instant {
        let base = self.config.probe_interval.as_secs_f64();
        let j = self.config.probe_jitter;
        // Uniform in [1 − j, 1 + j).
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let secs = base * (1.0 - j + 2.0 * j * u);
        let d = Duration::try_from_secs_f64(secs).unwrap_or(self.config.probe_interval);
        crate::policy::clock::saturating_add(now, d)
    }

    /// Starts, drains and times out probes. Returns the cause of a change it made.
    pub(super) fn tick_probe(&mut self, now: Instant, load: Load) -> Option<ChangeCause> {
        if let Some(p) = self.probe.as_mut() {
            if p.drained_at.is_none() && load.in_flight <= p.limit {
                p.drained_at = Some(now);
            }
            if now.saturating_duration_since(p.started) >= self.config.probe_timeout {
                self.end_probe(now);
                return Some(ChangeCause::ProbeEnd);
            }
            return None;
        }
        if self.next_probe.is_some_and(|t| now >= t) {
            self.start_probe(now, load);
            return Some(ChangeCause::ProbeStart);
        }
        None
    }

    fn start_probe(&mut self, now: Instant, load: Load) {
        let limit = self.rounded(self.limit * self.config.probe_factor);
        self.probe = Some(Probe {
            started: now,
            saved: self.limit,
            limit,
            drained_at: (load.in_flight <= limit).then_some(now),
            samples: Vec::new(),
        });
        self.window = Window::default();
        self.cuts_in_a_row = 0;
    }

    pub(super) fn end_probe(&mut self, now: Instant) {
        let Some(p) = self.probe.take() else { return };
        // Back toward the saved limit, at most √limit at once: every slot handed out at one
        // instant is a prefill in the server's next step, and a burst of them stalls the batch.
        let from = f64::from(p.limit);
        self.limit = self.clamp(p.saved.min(from + from.sqrt().max(1.0)));
        let mut fresh: [Option<Duration>; BUCKETS] = [None; BUCKETS];
        for (b, ttft) in &p.samples {
            let slot = &mut fresh[*b];
            *slot = Some(slot.map_or(*ttft, |m| m.min(*ttft)));
        }
        // How much the sampled buckets moved, as a geometric mean, for the others.
        let mut log_sum = 0.0;
        let mut n = 0u32;
        for (b, f) in fresh.iter().enumerate() {
            if let (Some(f), Some(old)) = (f, self.baselines[b]) {
                let (f, old) = (secs(*f), secs(old));
                if f > 0.0 && old > 0.0 {
                    log_sum += (f / old).ln();
                    n += 1;
                }
            }
        }
        let scale = if n > 0 {
            (log_sum / f64::from(n)).exp().clamp(0.25, 4.0)
        } else {
            1.0
        };
        for (b, f) in fresh.iter().enumerate() {
            match (f, self.baselines[b]) {
                (Some(f), _) => self.baselines[b] = Some(*f),
                (None, Some(old)) if n > 0 => {
                    self.baselines[b] =
                        Some(Duration::try_from_secs_f64(secs(old) * scale).unwrap_or(old));
                }
                _ => {}
            }
        }
        self.window = Window::default();
        self.cuts_in_a_row = 0;
        self.next_probe = Some(self.probe_due_after(now));
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::tests::{ttft, MS};
    use super::super::{bucket_of, AdaptiveConfig, AdaptiveLimit, ChangeCause, Load};

    #[test]
    fn probe_remeasures_baseline_upward_and_ends() {
        let t0 = Instant::now();
        let cfg = AdaptiveConfig {
            probe_jitter: 0.0,
            probe_after_cuts: 0,
            ..AdaptiveConfig::bounded(1, 100, 40)
        };
        let mut l = AdaptiveLimit::new(cfg, 7);
        l.record(t0, ttft(100), Load::default());
        assert_eq!(l.snapshot().next_probe, Some(t0 + Duration::from_secs(60)));
        // Due: the next sample starts the probe, at 40 × 0.75 = 30 (not yet drained).
        let t = t0 + Duration::from_secs(60);
        let load = Load {
            in_flight: 40,
            waiting: 5,
        };
        let c = l.record(t, ttft(300), load).unwrap();
        assert_eq!((c.from, c.to, c.cause), (40, 30, ChangeCause::ProbeStart));
        assert!(l.is_probing());
        // Drained at t + 2 s; samples of calls sent before that do not count.
        let drained = Load {
            in_flight: 30,
            waiting: 5,
        };
        l.tick(t + Duration::from_secs(2), drained);
        l.record(t + Duration::from_secs(3), ttft(2500), drained);
        assert!(l.is_probing());
        for k in 0..5u32 {
            l.record(
                t + Duration::from_secs(4 + u64::from(k)),
                ttft(300),
                drained,
            );
        }
        assert!(!l.is_probing());
        let s = l.snapshot();
        assert_eq!(s.limit, 35, "30 + √30");
        assert_eq!(s.baselines[bucket_of(1000)], Some(300 * MS));
    }

    #[test]
    fn probe_without_samples_times_out() {
        let t0 = Instant::now();
        let cfg = AdaptiveConfig {
            probe_jitter: 0.0,
            ..AdaptiveConfig::bounded(1, 100, 40)
        };
        let mut l = AdaptiveLimit::new(cfg, 7);
        l.tick(t0, Load::default());
        l.tick(t0 + Duration::from_secs(60), Load::default());
        assert!(l.is_probing());
        let c = l
            .tick(t0 + Duration::from_secs(90), Load::default())
            .unwrap();
        assert_eq!((c.from, c.to, c.cause), (30, 35, ChangeCause::ProbeEnd));
        assert!(!l.is_probing());
    }
}
