//! The client-wide limit of a pool whose endpoints each have their own adaptive limit:
//! **congestion-window validation** (TCP's RFC 2861 and RFC 7661) applied to the sum of those
//! limits, and **one delay window for the whole client**.
//!
//! Each endpoint's [`AdaptiveLimit`](super::AdaptiveLimit) moves only when it is used: a limit
//! that binds nobody is never raised, and nothing lowers it either. A client spread over many
//! endpoints rarely uses any of its per-endpoint limits, so their sum says nothing about what
//! the client can use — fifty clients over sixteen replicas each keep 16 × `initial` = 320
//! slots while they run about ten calls. TCP meets the same problem with a congestion window
//! that an application-limited sender does not fill: the window is not *validated*, and after a
//! while it is lowered toward what the sender actually used; when the sender uses it again it
//! grows back quickly (slow start) to where it was.
//!
//! And each endpoint's limit sees only the first tokens of its own endpoint: one of fifty
//! clients over sixteen replicas gets one every few seconds per endpoint, so its delay windows
//! take half a minute each and an overload is cut far too slowly. The pooled limit gathers the
//! TTFT ratios of all the client's first tokens in one window, each against the best baseline
//! of its prompt bucket on any of the client's endpoints (replicas are alike, and the baseline
//! an endpoint learnt from few samples may already hold a queue), so it closes as often as all
//! of them together.
//!
//! ```text
//!   bound = Σ the endpoints' own limits in force (in rotation)
//!   limit = bound while following (from the start, and once grown back to bound)
//!   delay window (≥ `window` and ≥ `window_samples` ratios):
//!     m = the `quantile` of the ratios; m > 1 + tolerance (congestion):
//!         limit += smoothing · (limit · clamp((1 + tolerance) / m, 0.5, 1) + √limit − limit)
//!         when that lowers it; it no longer follows bound; growth is now additive
//!   use window (≥ `window` and ≥ `window_samples` first tokens of the client):
//!     used (in flight + waiting reached the limit) ─► toward bound:
//!         limit · 2 (slow start), or limit + smoothing · √limit after congestion
//!     not used, for less than NON_VALIDATED_PERIOD ─► unchanged
//!     not used, for NON_VALIDATED_PERIOD or more   ─► v = max(initial, peak + √peak)
//!         (peak: the most in flight + waiting since it was last used)
//!         limit += smoothing · (v − limit) when v < limit; it no longer follows bound
//!   the client's limit in force = min(bound, limit)
//! ```
//!
//! So a client that uses its endpoints' limits without congestion is bounded by them alone
//! (the pooled limit follows their sum), a client that has not used its limit for a while
//! holds what it has shown it uses plus one window's growth (`√peak`, the delay path's
//! headroom) — never less than one endpoint's `initial` (TCP never validates below its initial
//! window) — and a client whose first tokens queue is cut as one limit, whatever the number of
//! its endpoints (a sum of per-endpoint limits, each growing by its own √, would settle at
//! four slots per endpoint under any congestion).
//!
//! Deterministic and panic-free as the rest of the module: time is an argument, a `now`
//! earlier than one already seen counts as the latest.

use std::time::{Duration, Instant};

use super::{AdaptiveConfig, Load};

/// How long a pooled limit goes unused before validation lowers it: RFC 7661's non-validated
/// period, shortened from its five minutes (a client's load changes in seconds).
pub const NON_VALIDATED_PERIOD: Duration = Duration::from_secs(10);

/// How many ratios a delay window keeps (the first ones; a window closes long before).
const MAX_RATIOS: usize = 256;

/// The client-wide limit of a pool with a limit per endpoint: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct PooledLimit {
    /// The lowest limit validation lowers to: one endpoint's `initial`.
    floor: f64,
    min: f64,
    /// One endpoint's `max`; the pooled limit's is this × the endpoints.
    max_each: u32,
    max: f64,
    smoothing: f64,
    window: Duration,
    window_samples: u32,
    limit: f64,
    bound: f64,
    following: bool,
    win_start: Option<Instant>,
    win_count: u32,
    win_used: bool,
    win_peak: u32,
    unused_since: Option<Instant>,
    unused_peak: u32,
    last_now: Option<Instant>,
    /// The delay window: TTFT ratios, and when it started.
    ratios: Vec<f64>,
    delay_start: Option<Instant>,
    tolerance: f64,
    quantile: f64,
    /// A delay window saw congestion since the limit last followed the endpoints' sum.
    congestion_seen: bool,
}

/// The `q` quantile of sorted, non-empty `r`, interpolated between the closest ranks.
fn quantile(r: &[f64], q: f64) -> f64 {
    let n = r.len();
    if n == 0 {
        return 1.0;
    }
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = (pos.floor() as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let frac = pos - lo as f64;
    r[lo] * (1.0 - frac) + r[hi] * frac
}

impl PooledLimit {
    /// The pooled limit of `endpoints` endpoints whose own limits have `config` (sanitized):
    /// it starts following their sum, `endpoints × initial`.
    pub fn new(config: AdaptiveConfig, endpoints: usize) -> Self {
        let c = config.sanitized();
        let n = endpoints.max(1) as f64;
        let bound = f64::from(c.initial) * n;
        PooledLimit {
            floor: f64::from(c.initial),
            min: f64::from(c.min),
            max_each: c.max,
            max: f64::from(c.max) * n,
            smoothing: c.smoothing,
            window: c.window,
            window_samples: c.window_samples,
            limit: bound,
            bound,
            following: true,
            win_start: None,
            win_count: 0,
            win_used: false,
            win_peak: 0,
            unused_since: None,
            unused_peak: 0,
            last_now: None,
            ratios: Vec::new(),
            delay_start: None,
            tolerance: c.tolerance,
            quantile: c.quantile,
            congestion_seen: false,
        }
    }

    /// The limit: `None` while it follows the endpoints' sum (it bounds nothing), else how
    /// many calls the client may have in flight at most.
    pub fn limit(&self) -> Option<u32> {
        (!self.following).then(|| self.rounded())
    }

    /// Whether it follows the endpoints' sum (from the start, and again once it grew back to
    /// it).
    pub fn is_following(&self) -> bool {
        self.following
    }

    /// The endpoints now number `endpoints` (the list changed): its highest limit follows.
    pub fn set_endpoints(&mut self, endpoints: usize) {
        self.max = f64::from(self.max_each) * endpoints.max(1) as f64;
        self.limit = self.limit.clamp(self.min, self.max.max(self.min));
    }

    /// The sum of the endpoints' own limits in force is now `sum`. While following, the
    /// pooled limit is that sum.
    pub fn set_bound(&mut self, sum: u32) {
        self.bound = f64::from(sum);
        if self.following {
            self.limit = self.bound.clamp(self.min, self.max.max(self.min));
        }
    }

    /// `demand` calls of the client are in flight or waiting (a call was just sent, or is
    /// waiting): the window notes its peak, and whether the limit was reached.
    pub fn note_demand(&mut self, demand: u32) {
        self.win_peak = self.win_peak.max(demand);
        if !self.following && demand >= self.rounded() {
            self.win_used = true;
        }
    }

    /// A first token's TTFT over the best baseline of its prompt bucket (on any of the
    /// client's endpoints), for the delay window; taken before [`record`](Self::record) of the
    /// same first token. Ratios that are not finite and ≥ 0 are ignored.
    pub fn note_ratio(&mut self, ratio: f64) {
        if ratio.is_finite() && ratio >= 0.0 && self.ratios.len() < MAX_RATIOS {
            self.ratios.push(ratio);
        }
    }

    /// One first token of the client at `now`, with its load: closes the window when it is
    /// due. Returns whether the limit in force changed.
    pub fn record(&mut self, now: Instant, load: Load) -> bool {
        let now = match self.last_now {
            Some(last) if now < last => last,
            _ => now,
        };
        self.last_now = Some(now);
        let demand = u32::try_from((load.in_flight as usize).saturating_add(load.waiting))
            .unwrap_or(u32::MAX);
        self.note_demand(demand);
        let before = self.limit();
        self.delay_window(now);
        let start = *self.win_start.get_or_insert(now);
        self.win_count = self.win_count.saturating_add(1);
        if now.saturating_duration_since(start) < self.window
            || self.win_count < self.window_samples
        {
            return self.limit() != before;
        }
        self.close_window(now, start);
        self.limit() != before
    }

    /// Closes the delay window when it is due; congestion cuts the limit (as one limit).
    fn delay_window(&mut self, now: Instant) {
        if self.ratios.is_empty() {
            return;
        }
        let start = *self.delay_start.get_or_insert(now);
        if now.saturating_duration_since(start) < self.window
            || self.ratios.len() < self.window_samples as usize
        {
            return;
        }
        self.delay_start = None;
        let mut r = std::mem::take(&mut self.ratios);
        r.sort_by(f64::total_cmp);
        let m = quantile(&r, self.quantile);
        if !m.is_finite() || m <= 1.0 + self.tolerance {
            return;
        }
        let g = ((1.0 + self.tolerance) / m).clamp(0.5, 1.0);
        let target = self.limit * g + self.limit.sqrt();
        let to = self.limit + self.smoothing * (target - self.limit);
        if to < self.limit {
            self.limit = to.clamp(self.min, self.max.max(self.min));
            self.following = false;
        }
        self.congestion_seen = true;
    }

    /// Closes the use window: growth when used, validation when not.
    fn close_window(&mut self, now: Instant, start: Instant) {
        let (used, peak) = (self.win_used, self.win_peak);
        self.win_start = None;
        self.win_count = 0;
        self.win_used = false;
        self.win_peak = 0;
        if self.following {
            // Bounds nothing: only a long enough stretch of non-use starts validation.
            if peak >= self.rounded() {
                self.unused_since = None;
                self.unused_peak = 0;
                return;
            }
        }
        if used {
            self.unused_since = None;
            self.unused_peak = 0;
            // Used: back toward the endpoints' sum, at twice per window (slow start) until
            // congestion was seen, then by √limit (the delay path's headroom).
            let grown = if self.congestion_seen {
                self.limit + self.smoothing * self.limit.sqrt()
            } else {
                2.0 * self.limit
            };
            let to = grown.min(self.bound).max(self.limit);
            self.limit = to.clamp(self.min, self.max.max(self.min));
            if self.limit >= self.bound {
                self.following = true;
                self.congestion_seen = false;
                self.limit = self.bound.clamp(self.min, self.max.max(self.min));
            }
            return;
        }
        let since = *self.unused_since.get_or_insert(start);
        self.unused_peak = self.unused_peak.max(peak);
        if now.saturating_duration_since(since) < NON_VALIDATED_PERIOD {
            return;
        }
        let p = f64::from(self.unused_peak);
        let validated = (p + p.sqrt()).max(self.floor);
        if validated < self.limit {
            let to = self.limit + self.smoothing * (validated - self.limit);
            self.limit = to.clamp(self.min, self.max.max(self.min));
            self.following = false;
        }
    }

    fn rounded(&self) -> u32 {
        // `as` saturates; the limit is finite and within [min, max].
        (self.limit.floor() as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn load(in_flight: u32) -> Load {
        Load {
            in_flight,
            waiting: 0,
        }
    }

    #[test]
    fn follows_until_unused_for_the_period_then_halves_toward_the_peak() {
        let t0 = Instant::now();
        let mut p = PooledLimit::new(AdaptiveConfig::default(), 16);
        p.set_bound(320);
        assert_eq!(p.limit(), None);
        // 9 in flight, a first token every 250 ms: windows of 1 s or so, peak 9.
        let mut seen = vec![];
        for k in 0..200u32 {
            let at = MS * 250 * k;
            p.record(t0 + at, load(9));
            if at < NON_VALIDATED_PERIOD {
                assert_eq!(p.limit(), None, "not before the non-validated period");
            }
            if seen.last() != Some(&p.limit()) {
                seen.push(p.limit());
            }
        }
        // Halfway toward max(20, 9 + 3) each window: 320 → 170 → 95 → 57 → 38 → 29 → …
        assert_eq!(&seen[..4], &[None, Some(170), Some(95), Some(57)]);
        assert_eq!(p.limit(), Some(20), "never below one endpoint's initial");
    }

    #[test]
    fn used_again_grows_back_at_twice_per_window_then_follows() {
        let t0 = Instant::now();
        let mut p = PooledLimit::new(AdaptiveConfig::default(), 16);
        p.set_bound(320);
        let mut k = 0u32;
        for _ in 0..120 {
            p.record(t0 + MS * 250 * k, load(5));
            k += 1;
        }
        assert_eq!(p.limit(), Some(20));
        let mut seen = vec![];
        for _ in 0..24 {
            p.record(t0 + MS * 250 * k, load(400));
            k += 1;
            seen.push(p.limit());
        }
        assert!(
            seen.contains(&Some(40)) && seen.contains(&Some(160)),
            "{seen:?}"
        );
        assert_eq!(p.limit(), None, "grown back to the sum: follows it");
    }

    #[test]
    fn congestion_cuts_as_one_limit_then_growth_is_additive() {
        let t0 = Instant::now();
        let mut p = PooledLimit::new(AdaptiveConfig::default(), 16);
        p.set_bound(320);
        // First tokens 10× their baseline, every 250 ms, 330 in flight: a delay window of
        // ≥ 1 s and ≥ 4 ratios closes at the fifth; gradient clamp(4 / 10) = 0.5:
        // 320 + 0.5 · (160 + √320 − 320) = 248.9.
        for k in 0..5u32 {
            p.note_ratio(10.0);
            p.record(t0 + MS * 250 * k, load(330));
        }
        assert_eq!(p.limit(), Some(248));
        // No more congestion, and the client uses its limit: +0.5 · √limit per use window
        // (not twice), toward the endpoints' sum.
        let mut prev = 248;
        for k in 5..17u32 {
            p.note_ratio(1.0);
            p.record(t0 + MS * 250 * k, load(330));
            let l = p.limit().unwrap_or(320);
            assert!(
                l >= prev && f64::from(l) <= f64::from(prev) + 0.5 * f64::from(prev).sqrt() + 1.0,
                "{prev} → {l}"
            );
            prev = l;
        }
        assert!(prev > 248, "grew back: {prev}");
    }
}
