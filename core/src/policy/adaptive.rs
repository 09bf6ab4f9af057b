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
//! RTT-based limiters (see `FLEET.md` §2); time per output token would need the usage from
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

/// Prompt-size buckets: bodies below 512 B, below 1 KiB, …, and 1 MiB or more.
pub const BUCKETS: usize = 12;

/// How many TTFT ratios a window keeps (the first ones; a window closes long before).
const WINDOW_CAP: usize = 256;

/// Within this share of the last congestion point, the limit grows by one per window.
const CEILING_BAND: f64 = 0.1;

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

#[derive(Debug, Clone)]
struct Probe {
    started: Instant,
    /// The limit to restore.
    saved: f64,
    limit: u32,
    drained_at: Option<Instant>,
    samples: Vec<(usize, Duration)>,
}

#[derive(Debug, Clone, Default)]
struct Window {
    start: Option<Instant>,
    ratios: Vec<f64>,
    count: u32,
    limited: bool,
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

    fn probe_due_after(&mut self, now: Instant) -> Instant {
        let base = self.config.probe_interval.as_secs_f64();
        let j = self.config.probe_jitter;
        // Uniform in [1 − j, 1 + j).
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let secs = base * (1.0 - j + 2.0 * j * u);
        let d = Duration::try_from_secs_f64(secs).unwrap_or(self.config.probe_interval);
        super::clock::saturating_add(now, d)
    }

    /// Starts, drains and times out probes. Returns the cause of a change it made.
    fn tick_probe(&mut self, now: Instant, load: Load) -> Option<ChangeCause> {
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

    fn end_probe(&mut self, now: Instant) {
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

    fn on_first_token(
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

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ttft(ms: u64) -> LimitSample {
        LimitSample::FirstToken {
            ttft: MS * ms as u32,
            prompt_bytes: 1000,
        }
    }

    fn busy(l: &AdaptiveLimit) -> Load {
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
