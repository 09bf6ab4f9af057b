//! The delay path: each first-token time as a ratio to its prompt bucket's baseline, gathered
//! in a window; when the window closes, its quantile gives the gradient that moves the limit
//! (the formulas in the [module docs](super)). Separate from the limiter's bookkeeping because
//! it is the arithmetic one reads and tunes on its own.

use std::time::{Duration, Instant};

use super::{secs, AdaptiveLimit, ChangeCause, Load};

/// How many TTFT ratios a window keeps (the first ones; a window closes long before).
const WINDOW_CAP: usize = 256;

/// Within this share of the last congestion point, the limit grows by one per window.
const CEILING_BAND: f64 = 0.1;

#[derive(Debug, Clone, Default)]
pub(super) struct Window {
    start: Option<Instant>,
    ratios: Vec<f64>,
    count: u32,
    limited: bool,
}

impl AdaptiveLimit {
    pub(super) fn on_first_token(
        &mut self,
        now: Instant,
        ttft: Duration,
        bucket: usize,
        load: Load,
    ) -> Option<ChangeCause> {
        if let Some(p) = self.probe.as_mut() {
            let sent = now.checked_sub(ttft).unwrap_or(now);
            if p.drained_at.is_some_and(|d| sent >= d) {
                p.samples.push((bucket, ttft));
                if p.samples.len() >= self.config.probe_samples as usize {
                    self.end_probe(now);
                    return Some(ChangeCause::ProbeEnd);
                }
            }
            return None;
        }
        let base = match self.baselines[bucket] {
            Some(b) if b <= ttft => b,
            _ => {
                self.baselines[bucket] = Some(ttft);
                ttft
            }
        };
        let ratio = if base.is_zero() {
            1.0
        } else {
            secs(ttft) / secs(base)
        };
        let limit_now = self.rounded(self.limit);
        let w = &mut self.window;
        let start = *w.start.get_or_insert(now);
        if w.ratios.len() < WINDOW_CAP {
            w.ratios.push(ratio);
        }
        w.count = w.count.saturating_add(1);
        if (load.in_flight as usize).saturating_add(load.waiting) >= limit_now as usize {
            w.limited = true;
        }
        if now.saturating_duration_since(start) < self.config.window
            || w.count < self.config.window_samples
        {
            return None;
        }
        self.close_window(now)
    }

    fn close_window(&mut self, now: Instant) -> Option<ChangeCause> {
        let w = std::mem::take(&mut self.window);
        let mut r = w.ratios;
        r.sort_by(f64::total_cmp);
        let c = self.config;
        let m = match r.len() {
            0 => return None,
            n => {
                // Linear interpolation between the closest ranks.
                let pos = c.quantile * (n - 1) as f64;
                let lo = pos.floor() as usize;
                let hi = (lo + 1).min(n - 1);
                let frac = pos - lo as f64;
                r[lo.min(n - 1)] * (1.0 - frac) + r[hi] * frac
            }
        };
        let gradient = if m > 0.0 && m.is_finite() {
            ((1.0 + c.tolerance) / m).clamp(0.5, 1.0)
        } else {
            1.0
        };
        self.last_ratio = m;
        self.last_gradient = gradient;
        let limit = self.limit;
        if gradient < 1.0 {
            // The highest congestion point seen: a cut caused by noise lower down must not
            // license fast growth through the real one.
            self.ceiling = Some(self.ceiling.map_or(limit, |c| c.max(limit)));
        } else if self
            .ceiling
            .is_some_and(|c| limit > c * (1.0 + CEILING_BAND))
        {
            // Grown well past the old congestion point without congestion: forget it.
            self.ceiling = None;
        }
        let near_ceiling = self
            .ceiling
            .is_some_and(|c| limit >= c * (1.0 - CEILING_BAND));
        let headroom = match (w.limited, near_ceiling) {
            (false, _) => 0.0,
            (true, true) => 1.0,
            (true, false) => limit.sqrt(),
        };
        let mut target = limit * gradient + headroom;
        if !w.limited {
            target = target.min(limit);
        }
        let new = self.clamp(limit + c.smoothing * (target - limit));
        if new < limit {
            self.cuts_in_a_row = self.cuts_in_a_row.saturating_add(1);
        } else {
            self.cuts_in_a_row = 0;
        }
        self.limit = new;
        if c.probe_after_cuts > 0 && self.cuts_in_a_row >= c.probe_after_cuts {
            // Cut window after window: the baseline may be stale (a slower replica). Probe now.
            self.next_probe = Some(now);
        }
        Some(ChangeCause::Delay)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::tests::{busy, ttft};
    use super::super::{AdaptiveConfig, AdaptiveLimit, Load};

    #[test]
    fn grows_when_used_and_uncongested() {
        let t0 = Instant::now();
        let mut l = AdaptiveLimit::new(AdaptiveConfig::default(), 1);
        assert_eq!(l.limit(), 20);
        // Four samples at the baseline over one second: a window closes, gradient 1,
        // limit 20 + 0.5·√20 = 22.2.
        for k in 0..4u32 {
            l.record(t0 + Duration::from_millis(334) * k, ttft(100), busy(&l));
        }
        assert_eq!(l.limit(), 22);
        assert_eq!(l.snapshot().last_gradient, 1.0);
    }

    #[test]
    fn app_limited_never_grows() {
        let t0 = Instant::now();
        let mut l = AdaptiveLimit::new(AdaptiveConfig::default(), 1);
        let idle = Load {
            in_flight: 3,
            waiting: 0,
        };
        for k in 0..100u32 {
            l.record(t0 + Duration::from_millis(300) * k, ttft(100), idle);
        }
        assert_eq!(l.limit(), 20);
    }

    #[test]
    fn queueing_cuts() {
        let t0 = Instant::now();
        let mut l = AdaptiveLimit::new(AdaptiveConfig::default(), 1);
        for k in 0..4u32 {
            l.record(t0 + Duration::from_millis(334) * k, ttft(100), busy(&l));
        }
        let before = l.snapshot().raw_limit;
        // TTFT 8× the baseline: gradient 4/8 = 0.5; this limit becomes the congestion point,
        // so the headroom is 1, not √L: target = L/2 + 1.
        for k in 4..8u32 {
            l.record(t0 + Duration::from_millis(334) * k, ttft(800), busy(&l));
        }
        let s = l.snapshot();
        assert_eq!(s.last_gradient, 0.5);
        let target = before * 0.5 + 1.0;
        let expected = before + 0.5 * (target - before);
        assert!((s.raw_limit - expected).abs() < 1e-9, "{s:?}");
    }
}
