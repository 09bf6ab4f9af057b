//! Slow start: an endpoint that joins the pool (added at run time) or comes back into rotation
//! (readmitted after an ejection) gets a share of its weight that ramps up over a window, in
//! routing and in its adaptive concurrency limit, so that the calls waiting in the client do
//! not land on it in one burst — for vLLM, one burst is one huge prefill step that makes every
//! request of the batch wait.
//!
//! Envoy's `slow_start_config` (round robin and least request balancers), with its formula:
//!
//! ```text
//!   factor(t) = max(min_weight_percent / 100, (t / window) ^ (1 / aggression))    t < window
//!             = 1                                                                 t ≥ window
//!   weight    = configured weight × factor(t)      (routing's draw)
//!   limit     = max(1, ⌈adaptive limit × factor(t)⌉) (the endpoint's limit in force)
//! ```
//!
//! `t` is the time since the endpoint joined or was readmitted. An aggression of 1 ramps
//! linearly; above 1 it ramps faster at first, below 1 slower. Envoy floors `t` at one second
//! for its scheduler's sake; here the minimum weight does that job, so `factor` is defined from
//! `t = 0` and never decreases as `t` grows (a property test checks it).

use std::time::Duration;

/// Envoy's `slow_start_config`. Defaults: a 3 s window, aggression 1 (linear), a minimum
/// weight of 10 %. `window` zero turns slow start off.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SlowStartConfig {
    /// How long the ramp lasts (default 3 s; zero: off).
    pub window: Duration,
    /// How fast the share grows: `(t / window) ^ (1 / aggression)` (default 1.0, linear;
    /// values that are not finite and positive are taken as 1).
    pub aggression: f64,
    /// The smallest share of its weight an endpoint in slow start gets, in percent (default
    /// 10; at most 100).
    pub min_weight_percent: u32,
}

impl PartialEq for SlowStartConfig {
    fn eq(&self, other: &Self) -> bool {
        self.window == other.window
            && self.aggression.to_bits() == other.aggression.to_bits()
            && self.min_weight_percent == other.min_weight_percent
    }
}

impl Eq for SlowStartConfig {}

impl Default for SlowStartConfig {
    fn default() -> Self {
        SlowStartConfig {
            window: Duration::from_secs(3),
            aggression: 1.0,
            min_weight_percent: 10,
        }
    }
}

impl SlowStartConfig {
    /// No slow start: a readmitted or new endpoint gets its whole share at once.
    pub fn off() -> Self {
        SlowStartConfig {
            window: Duration::ZERO,
            ..SlowStartConfig::default()
        }
    }

    /// Sets the window.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets the aggression.
    pub fn aggression(mut self, aggression: f64) -> Self {
        self.aggression = aggression;
        self
    }

    /// Sets the minimum weight, in percent.
    pub fn min_weight_percent(mut self, percent: u32) -> Self {
        self.min_weight_percent = percent;
        self
    }

    /// Whether an endpoint that started `elapsed` ago is still ramping.
    pub fn is_ramping(&self, elapsed: Duration) -> bool {
        elapsed < self.window
    }

    /// The share of its weight (and of its limit) an endpoint gets `elapsed` after it joined
    /// or was readmitted: in `[min_weight_percent / 100, 1]`, never decreasing in `elapsed`.
    pub fn factor(&self, elapsed: Duration) -> f64 {
        if !self.is_ramping(elapsed) {
            return 1.0;
        }
        let a = if self.aggression.is_finite() && self.aggression > 0.0 {
            self.aggression
        } else {
            1.0
        };
        let t = elapsed.as_secs_f64() / self.window.as_secs_f64();
        let min = f64::from(self.min_weight_percent.min(100)) / 100.0;
        let ramp = t.powf(1.0 / a);
        // NaN or out of range cannot come out of a finite t in [0, 1), but stay safe.
        if ramp.is_finite() {
            ramp.clamp(0.0, 1.0).max(min)
        } else {
            1.0
        }
    }

    /// `limit` scaled by the factor: at least 1, never above `limit` (0 stays 0).
    pub fn scale_limit(&self, limit: u32, elapsed: Duration) -> u32 {
        if limit == 0 {
            return 0;
        }
        let scaled = (f64::from(limit) * self.factor(elapsed)).ceil();
        // `as` saturates; the clamp keeps it within [1, limit].
        (scaled as u32).clamp(1, limit)
    }

    /// `weight` (0 taken as 1) in thousandths, scaled by the factor: the integer weight the
    /// routing draw uses (at least 1).
    pub fn scale_weight_milli(&self, weight: u32, elapsed: Duration) -> u32 {
        let milli = f64::from(weight.max(1)) * 1000.0 * self.factor(elapsed);
        (milli.round() as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn envoys_formula() {
        let c = SlowStartConfig::default().window(Duration::from_secs(10));
        assert_eq!(c.factor(s(0)), 0.1, "the minimum weight");
        assert_eq!(c.factor(s(500)), 0.1);
        assert!((c.factor(s(5000)) - 0.5).abs() < 1e-12, "linear");
        assert_eq!(c.factor(s(10_000)), 1.0);
        assert_eq!(c.factor(s(60_000)), 1.0);
        let fast = c.aggression(2.0);
        assert!((fast.factor(s(2500)) - 0.5).abs() < 1e-12, "√(1/4)");
        let slow = c.aggression(0.5);
        assert!((slow.factor(s(5000)) - 0.25).abs() < 1e-12, "(1/2)²");
    }

    #[test]
    fn off_and_odd_values() {
        assert_eq!(SlowStartConfig::off().factor(Duration::ZERO), 1.0);
        let odd = SlowStartConfig::default()
            .aggression(f64::NAN)
            .min_weight_percent(500);
        assert_eq!(odd.factor(s(100)), 1.0, "min weight capped at 100 %");
        let neg = SlowStartConfig::default()
            .window(Duration::from_secs(5))
            .aggression(-3.0);
        assert!((neg.factor(s(2500)) - 0.5).abs() < 1e-12, "taken as 1");
    }

    #[test]
    fn limits_and_weights_scale_within_bounds() {
        let c = SlowStartConfig::default().window(Duration::from_secs(5));
        assert_eq!(c.scale_limit(64, Duration::ZERO), 7, "⌈6.4⌉");
        assert_eq!(c.scale_limit(64, s(2500)), 32);
        assert_eq!(c.scale_limit(64, s(5000)), 64);
        assert_eq!(c.scale_limit(1, Duration::ZERO), 1, "never below 1");
        assert_eq!(c.scale_limit(0, Duration::ZERO), 0);
        assert_eq!(c.scale_weight_milli(1, Duration::ZERO), 100);
        assert_eq!(c.scale_weight_milli(0, s(5000)), 1000);
        assert_eq!(c.scale_weight_milli(u32::MAX, s(5000)), u32::MAX);
    }
}
