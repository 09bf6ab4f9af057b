//! An adaptive concurrency limit driven by time to first token (TTFT): the controller that
//! finds how many calls a vLLM server can take at once without queueing them.
//!
//! vLLM never answers 429/503 when it is overloaded: it queues without bound and sends a
//! stream's first token only when the request is scheduled. Overload is visible only as a
//! growing TTFT. End-to-end time says little (it is dominated by the output's length), and
//! TTFT also grows with the prompt (prefill). So the congestion signal here is **TTFT in
//! excess of what the prompt alone explains**: each sample is divided by a baseline kept per
//! prompt-size bucket (powers of two of the request body's bytes, from 512 B), and the limit
//! follows the ratio.
//!
//! [`AdaptiveLimit`] only *computes* the limit; it admits nobody. It is plain data fed
//! `(now, sample, load)`; the client pairs it with a first-come-first-served
//! [`ConcurrencyLimiter`](super::ConcurrencyLimiter) whose limit it sets after every sample
//! (`Shared` does this), and one can be kept per endpoint the same way.
//!
//! ```text
//!   FirstToken{ttft, prompt} ─► baseline[bucket] = min(baseline, ttft) ─► ratio = ttft / baseline
//!       window closes (≥ `window` and ≥ `window_samples` samples):
//!         m        = the window's `quantile` (median) of the ratios
//!         gradient = clamp((1 + tolerance) / m, 0.5, 1)
//!         target   = limit · gradient + (√limit if the client used its limit, else 0;
//!                    1 instead of √limit within ±10 % of the highest limit a cut started from)
//!         target   = min(target, limit)                        when app-limited
//!         limit   += smoothing · (target − limit),             clamped to [min, max]
//!   Loss (429, 503, connect failure, first-token timeout) ─► limit · backoff (0.9), or
//!         · hinted_backoff (0.5) when the server sent Retry-After; at most once per `window`
//!   every probe_interval ± jitter (or after `probe_after_cuts` cuts in a row) ─► probe:
//!         the limit is held at limit · probe_factor until in-flight drains to it; the first
//!         `probe_samples` TTFTs of calls sent after that replace the baselines (a probe
//!         always ends: at the latest after `probe_timeout`), then the limit grows back by
//!         √limit (a burst of admissions is a burst of prefills), then window by window
//!   near the limit where congestion was last seen (±10 %) the headroom is 1, not √limit
//!
//!   a pool with a limit per endpoint: the client's limit is min(Σ their limits, pooled), the
//!   pooled limit following that sum until the client leaves it unused for 10 s (then
//!   validated down toward max(initial, peak + √peak), RFC 7661) or one delay window of all
//!   the client's first tokens sees congestion (then cut as one limit); see [`pooled`]
//! ```
//!
//! Between probes a baseline only falls (a min), so a standing queue cannot teach the limiter
//! that queueing is normal; a probe re-measures it — upward too, so a replica that really
//! became slower is not starved forever — after draining the queue the client itself built.
//! Buckets the probe did not sample are scaled by the geometric mean of the sampled buckets'
//! change (clamped to ×¼…×4).
//!
//! **Non-streamed calls** feed only the loss path: vLLM sends their head when the whole answer
//! is done, so their time is dominated by the output's length, exactly what misleads
//! RTT-based limiters (Netflix's gradient limiters assume a request's time is its queueing plus a
//! roughly constant service time); time per output token would need the usage from
//! the body and still mixes queueing into the decode time. A purely non-streamed workload
//! therefore stays at `initial` (lower on losses): prefer a [`Fixed`](crate::config::Concurrency::Fixed)
//! limit for it.
//!
//! # Defaults and where they come from
//!
//! | field | default | anchor |
//! |---|---|---|
//! | `min` / `max` / `initial` | 1 / 1000 / 20 | Gradient2's initial 20; Envoy's max 1000; a min of 1 never stalls |
//! | `tolerance` | 3.0 | TTFT up to 4× the baseline is noise, not a queue: the baseline is the *best* case (a short step, no other prefill in it), and a full batch without any queue routinely takes 2–4× that, because the prefills of every request scheduled in the same step add up. Tuned in the testkit's engine model (`BENCHMARKS.md`): 2 and 3 both meet the goodput and recovery targets there, 3 wastes less goodput |
//! | `quantile` | 0.5 | the window's median ratio, as Envoy's p50 |
//! | `smoothing` | 0.5 | Gradient2 smooths by 0.2 per sample; per window, 0.5 |
//! | `window` / `window_samples` | 1 s / 4 | Envoy computes its gradient per sampling window; 4 samples make a median |
//! | `backoff` / `hinted_backoff` | 0.9 / 0.5 | Netflix AIMD and Vector ×0.9; llm-d ×0.5 |
//! | `probe_interval` / `probe_jitter` | 60 s / 15 % | Envoy re-measures minRTT periodically with 15 % jitter |
//! | `probe_factor` / `probe_samples` / `probe_timeout` | 0.75 / 5 / 30 s | Envoy probes at a fixed low concurrency; an LLM slot lasts seconds, so a shallow dip is cheaper |
//! | `probe_after_cuts` | 5 | a limit cut window after window may rest on a stale baseline |
//!
//! Everything is deterministic: time is an argument, the probe jitter comes from a seeded
//! [`Rng`], a `now` earlier than one already seen is taken as the latest one, and no input
//! (a zero TTFT, `NaN`-producing configurations, huge durations) can panic.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::rng::Rng;

mod gradient;
pub mod pooled;
mod probe;

use gradient::Window;
pub use pooled::PooledLimit;
use probe::Probe;

/// Prompt-size buckets: bodies below 512 B, below 1 KiB, …, and 1 MiB or more.
pub const BUCKETS: usize = 12;

/// How many limit changes are kept for [`AdaptiveLimit::poll_change`].
const CHANGES_CAP: usize = 64;

/// The adaptive limiter's knobs (see the [module docs](self) for the formulas).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveConfig {
    /// The lowest limit (at least 1: the limiter never stalls).
    pub min: u32,
    /// The highest limit.
    pub max: u32,
    /// The limit before any sample.
    pub initial: u32,
    /// TTFT up to `(1 + tolerance) ×` the baseline counts as no congestion.
    pub tolerance: f64,
    /// How far the limit moves toward each window's target, in `(0, 1]`.
    pub smoothing: f64,
    /// The shortest window of the delay path, and the least time between two loss cuts.
    pub window: Duration,
    /// The fewest TTFT samples that close a window.
    pub window_samples: u32,
    /// Which quantile of a window's TTFT ratios is compared with the tolerance, in `[0, 1]`
    /// (0.5: the median, as Envoy's p50).
    pub quantile: f64,
    /// The factor a loss cuts the limit by.
    pub backoff: f64,
    /// The factor a 429 or 503 carrying a retry hint cuts the limit by.
    pub hinted_backoff: f64,
    /// The mean time between baseline probes.
    pub probe_interval: Duration,
    /// The probe interval varies by up to this share either way, in `[0, 1]`.
    pub probe_jitter: f64,
    /// During a probe the limit is held at `limit × probe_factor`.
    pub probe_factor: f64,
    /// TTFT samples a probe collects before it ends.
    pub probe_samples: u32,
    /// A probe ends at the latest this long after it started.
    pub probe_timeout: Duration,
    /// A probe starts at once after this many delay-path cuts in a row (0: never early).
    pub probe_after_cuts: u32,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            min: 1,
            max: 1000,
            initial: 20,
            tolerance: 3.0,
            smoothing: 0.5,
            window: Duration::from_secs(1),
            window_samples: 4,
            quantile: 0.5,
            backoff: 0.9,
            hinted_backoff: 0.5,
            probe_interval: Duration::from_secs(60),
            probe_jitter: 0.15,
            probe_factor: 0.75,
            probe_samples: 5,
            probe_timeout: Duration::from_secs(30),
            probe_after_cuts: 5,
        }
    }
}

impl AdaptiveConfig {
    /// The default knobs with these bounds.
    pub fn bounded(min: u32, max: u32, initial: u32) -> Self {
        AdaptiveConfig {
            min,
            max,
            initial,
            ..AdaptiveConfig::default()
        }
    }

    /// The configuration actually used: `min ≥ 1`, `max ≥ min`, `initial` within them, every
    /// factor finite and within its range (out-of-range values take the default).
    pub fn sanitized(&self) -> AdaptiveConfig {
        let d = AdaptiveConfig::default();
        let min = self.min.max(1);
        let max = self.max.max(min);
        let unit = |v: f64, dflt: f64| {
            if v.is_finite() && v > 0.0 && v <= 1.0 {
                v
            } else {
                dflt
            }
        };
        AdaptiveConfig {
            min,
            max,
            initial: self.initial.clamp(min, max),
            tolerance: if self.tolerance.is_finite() && self.tolerance >= 0.0 {
                self.tolerance.min(1e6)
            } else {
                d.tolerance
            },
            smoothing: unit(self.smoothing, d.smoothing),
            window: self.window,
            window_samples: self.window_samples.max(1),
            quantile: if self.quantile.is_finite() {
                self.quantile.clamp(0.0, 1.0)
            } else {
                d.quantile
            },
            backoff: unit(self.backoff, d.backoff),
            hinted_backoff: unit(self.hinted_backoff, d.hinted_backoff),
            probe_interval: self.probe_interval.max(Duration::from_millis(1)),
            probe_jitter: if self.probe_jitter.is_finite() {
                self.probe_jitter.clamp(0.0, 1.0)
            } else {
                d.probe_jitter
            },
            probe_factor: unit(self.probe_factor, d.probe_factor),
            probe_samples: self.probe_samples.max(1),
            probe_timeout: self.probe_timeout,
            probe_after_cuts: self.probe_after_cuts,
        }
    }
}

/// What a call tells the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSample {
    /// A stream's first data event arrived `ttft` after its request was sent.
    FirstToken {
        /// From sending the request to the first data event.
        ttft: Duration,
        /// The request body's length, the prompt-size estimate.
        prompt_bytes: usize,
    },
    /// The server refused or dropped the call because it is overloaded.
    Loss {
        /// What happened.
        kind: LossKind,
        /// Whether the server sent a retry hint (`Retry-After`, `retry-after-ms`): it asked
        /// explicitly for less load, so the cut is deeper.
        hinted: bool,
    },
}

/// The losses the limiter reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// `429 Too Many Requests`.
    TooManyRequests,
    /// `503 Service Unavailable`.
    Unavailable,
    /// The connection could not be established (refused, or the connect timer fired).
    Connect,
    /// A stream's first token did not come within the first-token timeout.
    FirstTokenTimeout,
}

/// How busy the limiter's calls are when a sample arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Calls holding a slot.
    pub in_flight: u32,
    /// Calls waiting for one.
    pub waiting: usize,
}

/// Why the limit changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCause {
    /// A window of TTFT samples (the delay path), with its gradient.
    Delay,
    /// A loss.
    Loss(LossKind),
    /// A baseline probe started (the limit dips) …
    ProbeStart,
    /// … or ended (the limit grows back toward where it was).
    ProbeEnd,
}

/// One change of the limit, for logging.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitChange {
    /// When.
    pub at: Instant,
    /// The limit before.
    pub from: u32,
    /// The limit after.
    pub to: u32,
    /// Why.
    pub cause: ChangeCause,
    /// The gradient of the window that caused it (1 when no window did).
    pub gradient: f64,
}

/// The limiter's state, for dashboards and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveSnapshot {
    /// The limit in force (the probe's while probing).
    pub limit: u32,
    /// The limit before rounding down (outside probes).
    pub raw_limit: f64,
    /// Calls in flight at the last sample.
    pub in_flight: u32,
    /// Baseline TTFT per prompt-size bucket (`None`: no sample yet).
    pub baselines: [Option<Duration>; BUCKETS],
    /// The last window's gradient (1 before any window).
    pub last_gradient: f64,
    /// The last window's median TTFT ratio (1 before any window).
    pub last_ratio: f64,
    /// Whether a baseline probe is running.
    pub probing: bool,
    /// When the running probe started (`None` outside probes).
    pub probe_started: Option<Instant>,
    /// When the next probe is due (`None` before the first sample).
    pub next_probe: Option<Instant>,
}

/// The adaptive limit: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    config: AdaptiveConfig,
    limit: f64,
    rng: Rng,
    baselines: [Option<Duration>; BUCKETS],
    window: Window,
    last_gradient: f64,
    last_ratio: f64,
    last_cut: Option<Instant>,
    cuts_in_a_row: u32,
    /// The limit at which the delay path or a loss last saw congestion: growth near it is
    /// one slot per window instead of √limit.
    ceiling: Option<f64>,
    probe: Option<Probe>,
    next_probe: Option<Instant>,
    last_now: Option<Instant>,
    in_flight: u32,
    changes: VecDeque<LimitChange>,
}

/// The bucket of a request body of `bytes` bytes.
pub fn bucket_of(bytes: usize) -> usize {
    let k = (bytes / 512).checked_ilog2().map_or(0, |l| l as usize + 1);
    k.min(BUCKETS - 1)
}

impl AdaptiveLimit {
    /// A limiter with `config` (see [`AdaptiveConfig::sanitized`]); `seed` seeds the probe
    /// jitter.
    pub fn new(config: AdaptiveConfig, seed: u64) -> Self {
        let config = config.sanitized();
        AdaptiveLimit {
            limit: f64::from(config.initial),
            config,
            rng: Rng::new(seed),
            baselines: [None; BUCKETS],
            window: Window::default(),
            last_gradient: 1.0,
            last_ratio: 1.0,
            last_cut: None,
            cuts_in_a_row: 0,
            ceiling: None,
            probe: None,
            next_probe: None,
            last_now: None,
            in_flight: 0,
            changes: VecDeque::new(),
        }
    }

    // --- getters ---------------------------------------------------------------------------

    /// The configuration in use (sanitized).
    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// The limit in force: how many calls may be in flight (the probe's limit while probing).
    pub fn limit(&self) -> u32 {
        match &self.probe {
            Some(p) => p.limit,
            None => self.rounded(self.limit),
        }
    }

    /// The baseline TTFT of prompt-size bucket `bucket` (see [`bucket_of`]); `None` before its
    /// first sample, or for a bucket out of range.
    pub fn baseline(&self, bucket: usize) -> Option<Duration> {
        self.baselines.get(bucket).copied().flatten()
    }

    /// Whether a baseline probe is running.
    pub fn is_probing(&self) -> bool {
        self.probe.is_some()
    }

    /// The state: limit, in-flight, baselines, last gradient.
    pub fn snapshot(&self) -> AdaptiveSnapshot {
        AdaptiveSnapshot {
            limit: self.limit(),
            raw_limit: self.limit,
            in_flight: self.in_flight,
            baselines: self.baselines,
            last_gradient: self.last_gradient,
            last_ratio: self.last_ratio,
            probing: self.probe.is_some(),
            probe_started: self.probe.as_ref().map(|p| p.started),
            next_probe: self.next_probe,
        }
    }

    // --- handle ----------------------------------------------------------------------------

    /// Takes one sample at `now`, with the load at that moment; returns the change of the
    /// limit in force, if any (also queued for [`poll_change`](Self::poll_change)).
    pub fn record(&mut self, now: Instant, sample: LimitSample, load: Load) -> Option<LimitChange> {
        let now = self.observe(now);
        let before = self.limit();
        self.in_flight = load.in_flight;
        let mut cause = self.tick_probe(now, load);
        match sample {
            LimitSample::Loss { kind, hinted } => {
                if self.on_loss(now, kind, hinted) {
                    cause = Some(ChangeCause::Loss(kind));
                }
            }
            LimitSample::FirstToken { ttft, prompt_bytes } => {
                if let Some(c) = self.on_first_token(now, ttft, bucket_of(prompt_bytes), load) {
                    cause = Some(c);
                }
            }
        }
        self.change(now, before, cause)
    }

    /// Lets time pass without a sample: starts a due probe, ends one past its timeout, notes
    /// a drained probe. Returns the change of the limit in force, if any.
    pub fn tick(&mut self, now: Instant, load: Load) -> Option<LimitChange> {
        let now = self.observe(now);
        let before = self.limit();
        self.in_flight = load.in_flight;
        let cause = self.tick_probe(now, load);
        self.change(now, before, cause)
    }

    // --- poll ------------------------------------------------------------------------------

    /// The next change of the limit not yet taken (the last 64 are kept), for logging.
    pub fn poll_change(&mut self) -> Option<LimitChange> {
        self.changes.pop_front()
    }

    // --- internals -------------------------------------------------------------------------

    fn observe(&mut self, now: Instant) -> Instant {
        let now = match self.last_now {
            Some(last) if now < last => last,
            _ => now,
        };
        self.last_now = Some(now);
        if self.next_probe.is_none() {
            self.next_probe = Some(self.probe_due_after(now));
        }
        now
    }

    fn rounded(&self, limit: f64) -> u32 {
        let c = &self.config;
        if limit.is_nan() {
            return c.min;
        }
        // `as` saturates; the clamp keeps it within the bounds.
        (limit.floor() as u32).clamp(c.min, c.max)
    }

    fn clamp(&self, limit: f64) -> f64 {
        let c = &self.config;
        if limit.is_nan() {
            return f64::from(c.min);
        }
        limit.clamp(f64::from(c.min), f64::from(c.max))
    }

    fn change(
        &mut self,
        now: Instant,
        before: u32,
        cause: Option<ChangeCause>,
    ) -> Option<LimitChange> {
        let after = self.limit();
        if after == before {
            return None;
        }
        let change = LimitChange {
            at: now,
            from: before,
            to: after,
            cause: cause.unwrap_or(ChangeCause::Delay),
            gradient: match cause {
                Some(ChangeCause::Delay) | None => self.last_gradient,
                _ => 1.0,
            },
        };
        if self.changes.len() >= CHANGES_CAP {
            self.changes.pop_front();
        }
        self.changes.push_back(change);
        Some(change)
    }

    /// A loss: one multiplicative cut per window. Returns whether it cut.
    fn on_loss(&mut self, now: Instant, _kind: LossKind, hinted: bool) -> bool {
        if self
            .last_cut
            .is_some_and(|t| now.saturating_duration_since(t) < self.config.window)
        {
            return false;
        }
        let factor = if hinted {
            self.config.hinted_backoff
        } else {
            self.config.backoff
        };
        self.last_cut = Some(now);
        self.ceiling = Some(self.ceiling.map_or(self.limit, |c| c.max(self.limit)));
        self.limit = self.clamp(self.limit * factor);
        let probe_limit = self.rounded(self.limit * self.config.probe_factor);
        if let Some(p) = self.probe.as_mut() {
            p.saved *= factor;
            p.limit = probe_limit.min(p.limit);
        }
        self.window = Window::default();
        true
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixtures, shared with the tests in `gradient.rs` and `probe.rs`.

    pub(super) const MS: Duration = Duration::from_millis(1);

    pub(super) fn ttft(ms: u64) -> LimitSample {
        LimitSample::FirstToken {
            ttft: MS * ms as u32,
            prompt_bytes: 1000,
        }
    }

    pub(super) fn busy(l: &AdaptiveLimit) -> Load {
        Load {
            in_flight: l.limit(),
            waiting: 10,
        }
    }

    #[test]
    fn buckets() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(511), 0);
        assert_eq!(bucket_of(512), 1);
        assert_eq!(bucket_of(1023), 1);
        assert_eq!(bucket_of(1024), 2);
        assert_eq!(bucket_of(usize::MAX), BUCKETS - 1);
    }

    #[test]
    fn sanitizes() {
        let c = AdaptiveConfig {
            min: 0,
            max: 0,
            initial: 9,
            smoothing: f64::NAN,
            backoff: 2.0,
            ..AdaptiveConfig::default()
        }
        .sanitized();
        assert_eq!((c.min, c.max, c.initial), (1, 1, 1));
        assert_eq!(c.smoothing, 0.5);
        assert_eq!(c.backoff, 0.9);
    }

    #[test]
    fn loss_cuts_once_per_window() {
        let t0 = Instant::now();
        let mut l = AdaptiveLimit::new(AdaptiveConfig::bounded(1, 100, 50), 1);
        let loss = LimitSample::Loss {
            kind: LossKind::Unavailable,
            hinted: false,
        };
        let c = l.record(t0, loss, Load::default()).unwrap();
        assert_eq!((c.from, c.to), (50, 45));
        assert_eq!(c.cause, ChangeCause::Loss(LossKind::Unavailable));
        assert!(l.record(t0 + 500 * MS, loss, Load::default()).is_none());
        let hinted = LimitSample::Loss {
            kind: LossKind::TooManyRequests,
            hinted: true,
        };
        let c = l.record(t0 + 1000 * MS, hinted, Load::default()).unwrap();
        assert_eq!((c.from, c.to), (45, 22));
        assert_eq!(l.poll_change().map(|c| c.to), Some(45));
        assert_eq!(l.poll_change().map(|c| c.to), Some(22));
        assert_eq!(l.poll_change(), None);
    }

    #[test]
    fn zero_ttft_and_time_going_back_do_not_panic() {
        let t0 = Instant::now();
        let mut l = AdaptiveLimit::new(AdaptiveConfig::default(), 0);
        for k in 0..20u32 {
            let t = if k % 2 == 0 { t0 + MS * k } else { t0 };
            l.record(t, ttft(0), busy(&l));
            l.record(
                t,
                LimitSample::FirstToken {
                    ttft: Duration::MAX,
                    prompt_bytes: usize::MAX,
                },
                busy(&l),
            );
        }
        let s = l.snapshot();
        assert!(s.limit >= 1 && s.limit <= 1000);
    }
}
