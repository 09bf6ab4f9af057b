//! [`CircuitBreaker`], the state machine drawn in the [module docs](super): admission,
//! recording, trips, half-open episodes with their probe leases, generations and the
//! transition queue. The types it trades in (config, state, permit, outcome) are in `mod.rs`;
//! the rates it trips on come from the sliding window in `window.rs`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::window::{Window, WindowMetrics};
use super::{BreakerConfig, BreakerPermit, BreakerRejected, BreakerState, Outcome, Transition};
use crate::policy::clock::{saturating_add, Monotonic};

const TRANSITION_QUEUE: usize = 64;

// Distinguishes breakers so that a permit from one cannot be recorded in another.
static NEXT_BREAKER_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug, Clone, Copy)]
struct Probe {
    id: u64,
    lease_until: Instant,
}

#[derive(Debug, Clone)]
enum Inner {
    Closed,
    Open { until: Instant },
    // `probes`: admitted and not yet reported; `successes`: reported successes. Their sum is
    // the episode's admissions, at most `half_open_probes`.
    HalfOpen { probes: Vec<Probe>, successes: u32 },
    Disabled,
    ForcedOpen,
}

impl Inner {
    fn state(&self) -> BreakerState {
        match self {
            Inner::Closed => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
            Inner::Disabled => BreakerState::Disabled,
            Inner::ForcedOpen => BreakerState::ForcedOpen,
        }
    }
}

/// A circuit breaker (see the module docs for the state machine and defaults).
// Not `Clone`: a clone would share the id, and one permit could be recorded in both.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    id: u64,
    inner: Inner,
    generation: u64,
    consecutive_trips: u32,
    window: Window,
    origin: Option<Instant>,
    clock: Monotonic,
    next_probe: u64,
    transitions: VecDeque<Transition>,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::new(BreakerConfig::default())
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            id: NEXT_BREAKER_ID.fetch_add(1, Ordering::Relaxed),
            inner: Inner::Closed,
            generation: 0,
            consecutive_trips: 0,
            window: Window::new(config.window),
            origin: None,
            clock: Monotonic::new(),
            next_probe: 0,
            transitions: VecDeque::new(),
        }
    }

    // ---- getters -------------------------------------------------------------------------

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state at `now`, with the lazy transitions due by then applied (an Open breaker
    /// whose break ended reads as HalfOpen; a HalfOpen one whose probe lease ended reads as
    /// Open, or as HalfOpen again once the break after it ended too). Changes nothing.
    pub fn state(&self, now: Instant) -> BreakerState {
        let now = self.clock.peek(now);
        match self.inner {
            Inner::Open { until } if now >= until => BreakerState::HalfOpen,
            Inner::HalfOpen { .. } => match self.expired_lease(now) {
                Some(end) if now < self.reopen_until(end) => BreakerState::Open,
                _ => BreakerState::HalfOpen,
            },
            ref i => i.state(),
        }
    }

    /// The current generation; it changes on every transition and on `reset`.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When the current break ends, if Open.
    pub fn open_until(&self) -> Option<Instant> {
        match self.inner {
            Inner::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Half-open probes in flight at `now`: admitted, not reported, lease not ended. (An ended
    /// lease re-opens the breaker, so then there are none.)
    pub fn in_flight_probes(&self, now: Instant) -> u32 {
        let now = self.clock.peek(now);
        match &self.inner {
            Inner::HalfOpen { probes, .. } if self.expired_lease(now).is_none() => {
                probes.len() as u32
            }
            _ => 0,
        }
    }

    /// Consecutive trips since the breaker was last closed.
    pub fn consecutive_trips(&self) -> u32 {
        self.consecutive_trips
    }

    /// The window's counts at `now`.
    pub fn metrics(&self, now: Instant) -> WindowMetrics {
        let now = self.clock.peek(now);
        match self.origin {
            Some(origin) => self.window.metrics(origin, now),
            None => WindowMetrics::default(),
        }
    }

    // ---- calls ---------------------------------------------------------------------------

    /// Asks to make a call at `now`.
    pub fn try_acquire(&mut self, now: Instant) -> Result<BreakerPermit, BreakerRejected> {
        let now = self.advance(now);
        let (breaker, generation) = (self.id, self.generation);
        let permit = |probe| BreakerPermit {
            breaker,
            generation,
            probe,
        };
        match &mut self.inner {
            Inner::Closed | Inner::Disabled => Ok(permit(None)),
            Inner::Open { until } => Err(BreakerRejected {
                retry_at: *until,
                state: BreakerState::Open,
            }),
            Inner::ForcedOpen => Err(BreakerRejected {
                retry_at: saturating_add(now, self.config.break_duration),
                state: BreakerState::ForcedOpen,
            }),
            Inner::HalfOpen { probes, successes } => {
                // Reported successes keep their admission: the cap is per episode.
                let admitted = probes.len() as u64 + u64::from(*successes);
                if admitted < u64::from(self.config.probes()) {
                    let id = self.next_probe;
                    self.next_probe = self.next_probe.wrapping_add(1);
                    probes.push(Probe {
                        id,
                        lease_until: saturating_add(now, self.config.lease()),
                    });
                    Ok(permit(Some(id)))
                } else {
                    // Fewer successes than probes, so at least one is outstanding.
                    let end = probes.iter().map(|p| p.lease_until).min().unwrap_or(now);
                    Err(BreakerRejected {
                        retry_at: self.reopen_until(end),
                        state: BreakerState::HalfOpen,
                    })
                }
            }
        }
    }

    /// Records how a permitted call ended. Consumes the permit.
    ///
    /// Returns whether the outcome was counted. It is counted whenever the permit is of this
    /// breaker's current generation (the state that admitted it is still running) and the
    /// breaker is not Disabled: in the window while Closed, in the half-open episode that
    /// admitted it while HalfOpen. It is not counted (`false`, nothing changes) for a stale
    /// permit — issued before a transition, e.g. before a trip, or a probe whose episode
    /// already ended because another probe failed or a lease ended — for another breaker's
    /// permit, on a Disabled breaker, and for [`Outcome::Ignored`] (which gives a half-open
    /// probe's admission back).
    pub fn record(&mut self, now: Instant, permit: BreakerPermit, outcome: Outcome) -> bool {
        let now = self.advance(now);
        if permit.breaker != self.id || permit.generation != self.generation {
            return false;
        }
        let slow_limit = self.config.slow_call_duration;
        let (failed, slow) = match outcome {
            Outcome::Success { ttfb } => (false, ttfb > slow_limit),
            Outcome::Failure { ttfb } => (true, ttfb.is_some_and(|t| t > slow_limit)),
            Outcome::Ignored => {
                if let (Inner::HalfOpen { probes, .. }, Some(id)) = (&mut self.inner, permit.probe)
                {
                    probes.retain(|p| p.id != id);
                }
                return false;
            }
        };
        match &mut self.inner {
            Inner::Closed => {
                let origin = *self.origin.get_or_insert(now);
                self.window.record(origin, now, failed, slow);
                let m = self.window.metrics(origin, now);
                if m.calls >= u64::from(self.config.minimum())
                    && m.calls > 0
                    && self.rates_exceeded(m)
                {
                    self.trip(now, BreakerState::Closed);
                }
                true
            }
            Inner::HalfOpen { probes, successes } => {
                let Some(id) = permit.probe else { return false };
                let before = probes.len();
                probes.retain(|p| p.id != id);
                if probes.len() == before {
                    // Unreachable: a probe of this generation is outstanding until it reports
                    // (an ended lease re-opens the breaker, which bumps the generation).
                    return false;
                }
                let slow_counts = self.config.slow_call_rate_threshold < 100;
                if failed || (slow && slow_counts) {
                    self.trip(now, BreakerState::HalfOpen);
                } else {
                    *successes += 1;
                    if *successes >= self.config.probes() {
                        self.transition(now, Inner::Closed);
                    }
                }
                true
            }
            Inner::Open { .. } | Inner::Disabled | Inner::ForcedOpen => false,
        }
    }

    /// Applies the time-based changes due at `now` — the end of a break (Open → HalfOpen) and
    /// expired probe leases — without making a call. Optional: every other method does this
    /// first; call it to observe a transition promptly.
    pub fn tick(&mut self, now: Instant) {
        self.advance(now);
    }

    /// The next unobserved transition, oldest first.
    pub fn poll_transition(&mut self) -> Option<Transition> {
        self.transitions.pop_front()
    }

    // ---- mutators ------------------------------------------------------------------------

    /// Rejects every call until [`reset`](Self::reset) or [`disable`](Self::disable).
    pub fn force_open(&mut self, now: Instant) {
        let now = self.advance(now);
        self.transition(now, Inner::ForcedOpen);
    }

    /// Admits every call and records nothing until [`reset`](Self::reset) or
    /// [`force_open`](Self::force_open).
    pub fn disable(&mut self, now: Instant) {
        let now = self.advance(now);
        self.transition(now, Inner::Disabled);
    }

    /// Back to Closed with an empty window and no trip history. Outstanding permits become
    /// stale.
    pub fn reset(&mut self, now: Instant) {
        let now = self.advance(now);
        self.transition(now, Inner::Closed);
    }

    // ---- internals -----------------------------------------------------------------------

    fn rates_exceeded(&self, m: WindowMetrics) -> bool {
        let f = u64::from(self.config.failure_rate_threshold.clamp(1, 100));
        let s = u64::from(self.config.slow_call_rate_threshold.clamp(1, 100));
        m.failures * 100 >= f * m.calls || m.slow * 100 >= s * m.calls
    }

    /// The end of the earliest probe lease that ended at or before `now`, if HalfOpen.
    fn expired_lease(&self, now: Instant) -> Option<Instant> {
        match &self.inner {
            Inner::HalfOpen { probes, .. } => probes
                .iter()
                .map(|p| p.lease_until)
                .filter(|&end| end <= now)
                .min(),
            _ => None,
        }
    }

    /// The end of the break that a half-open failure at `at` would start.
    fn reopen_until(&self, at: Instant) -> Instant {
        let trip = self.consecutive_trips.saturating_add(1);
        saturating_add(at, self.config.break_for(trip))
    }

    /// Clamps `now` and performs the lazy transitions due by then, each stamped with the
    /// instant it was due: Open → HalfOpen at the end of the break, HalfOpen → Open at the end
    /// of the earliest unreported lease (then → HalfOpen again if that break also ended).
    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.clock.observe(now);
        // At most Open → HalfOpen → Open → HalfOpen: a fresh episode has no probes.
        loop {
            if let Inner::Open { until } = self.inner {
                if now >= until {
                    self.transition(
                        until,
                        Inner::HalfOpen {
                            probes: Vec::new(),
                            successes: 0,
                        },
                    );
                    continue;
                }
            }
            match self.expired_lease(now) {
                Some(end) => self.trip(end, BreakerState::HalfOpen),
                None => return now,
            }
        }
    }

    fn trip(&mut self, now: Instant, _from: BreakerState) {
        self.consecutive_trips = self.consecutive_trips.saturating_add(1);
        let until = saturating_add(now, self.config.break_for(self.consecutive_trips));
        self.transition(now, Inner::Open { until });
    }

    fn transition(&mut self, at: Instant, to: Inner) {
        let from = self.inner.state();
        let to_state = to.state();
        self.generation = self.generation.wrapping_add(1);
        if to_state == BreakerState::Closed {
            self.window.clear();
            self.consecutive_trips = 0;
        }
        self.inner = to;
        if from != to_state {
            if self.transitions.len() >= TRANSITION_QUEUE {
                self.transitions.pop_front();
            }
            self.transitions.push_back(Transition {
                from,
                to: to_state,
                at,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::tests::{call, calls, ms, small, trip, FAIL, OK};

    /// A breaker of `config`, tripped at `t0`; `t1`: the end of its break.
    fn tripped(config: BreakerConfig) -> (CircuitBreaker, Instant, Instant) {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(config);
        trip(&mut b, t0);
        (b, t0, t0 + Duration::from_secs(10))
    }

    /// A breaker of `probes` half-open probes, tripped, at the end of its break.
    fn half_open(probes: u32) -> (CircuitBreaker, Instant) {
        let (b, _, t1) = tripped(BreakerConfig {
            half_open_probes: probes,
            ..small()
        });
        (b, t1)
    }
    use super::super::{
        BreakerConfig, BreakerRejected, BreakerState, CircuitBreaker, Outcome, SlidingWindow,
        Transition,
    };

    #[test]
    fn never_trips_below_minimum() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(small());
        for _ in 0..3 {
            call(&mut b, t0, FAIL);
        }
        assert_eq!(b.state(t0), BreakerState::Closed);
        call(&mut b, t0, FAIL);
        assert_eq!(b.state(t0), BreakerState::Open);
    }

    #[test]
    fn failure_rate_threshold() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(small());
        // 25 %
        assert_eq!(calls(&mut b, t0, &[OK, OK, OK, FAIL]), BreakerState::Closed);
        call(&mut b, t0, FAIL); // window: OK OK FAIL FAIL = 50 %
        assert_eq!(b.state(t0), BreakerState::Open);
    }

    #[test]
    fn open_rejects_until_break_ends_then_one_probe() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(small());
        trip(&mut b, t0);
        let until = t0 + Duration::from_secs(10);
        assert_eq!(
            b.try_acquire(until - Duration::from_nanos(1)),
            Err(BreakerRejected {
                retry_at: until,
                state: BreakerState::Open
            })
        );
        let p = b.try_acquire(until).unwrap();
        assert!(p.is_probe());
        assert_eq!(b.state(until), BreakerState::HalfOpen);
        // Herd protection: a second caller is rejected while the probe is out; at the latest,
        // the probe's lease ends (60 s) and a new episode starts after another break (10 s).
        let r = b.try_acquire(until).unwrap_err();
        assert_eq!(r.state, BreakerState::HalfOpen);
        assert_eq!(r.retry_at, until + Duration::from_secs(70));
        assert!(b.record(until, p, OK));
        assert_eq!(b.state(until), BreakerState::Closed);
        let ts: Vec<_> = std::iter::from_fn(|| b.poll_transition()).collect();
        assert_eq!(
            ts,
            vec![
                Transition {
                    from: BreakerState::Closed,
                    to: BreakerState::Open,
                    at: t0
                },
                Transition {
                    from: BreakerState::Open,
                    to: BreakerState::HalfOpen,
                    at: until
                },
                Transition {
                    from: BreakerState::HalfOpen,
                    to: BreakerState::Closed,
                    at: until
                },
            ]
        );
    }

    #[test]
    fn probe_failure_reopens_with_growth() {
        let (mut b, _, t1) = tripped(BreakerConfig {
            break_multiplier: 2,
            max_break_duration: Duration::from_secs(25),
            ..small()
        });
        assert!(call(&mut b, t1, FAIL));
        assert_eq!(b.open_until(), Some(t1 + Duration::from_secs(20)));
        let t2 = t1 + Duration::from_secs(20);
        assert!(call(&mut b, t2, FAIL));
        assert_eq!(b.open_until(), Some(t2 + Duration::from_secs(25)));
        assert_eq!(b.consecutive_trips(), 3);
    }

    #[test]
    fn lost_probe_reopens_at_lease_end() {
        let (mut b, t0, t1) = tripped(BreakerConfig {
            probe_lease: ms(100),
            ..small()
        });
        let lost = b.try_acquire(t1).unwrap();
        assert_eq!(b.in_flight_probes(t1 + ms(99)), 1);
        assert_eq!(
            b.try_acquire(t1 + ms(99)).unwrap_err().retry_at,
            t1 + ms(100) + Duration::from_secs(10)
        );
        // The lease ends unreported: a failed probe. The breaker re-opens, stamped at the
        // lease's end, and does not hand the slot to another probe of the same episode.
        assert_eq!(b.state(t1 + ms(100)), BreakerState::Open);
        assert_eq!(b.in_flight_probes(t1 + ms(100)), 0);
        let r = b.try_acquire(t1 + ms(150)).unwrap_err();
        assert_eq!(r.state, BreakerState::Open);
        let t2 = t1 + ms(100) + Duration::from_secs(10);
        assert_eq!(r.retry_at, t2);
        assert_eq!(b.consecutive_trips(), 2);
        // Its late report is stale.
        assert!(!b.record(t1 + ms(150), lost, FAIL));
        // Not wedged: after the break, a new episode.
        let p = b.try_acquire(t2).unwrap();
        assert!(b.record(t2, p, OK));
        assert_eq!(b.state(t2), BreakerState::Closed);
        let ts: Vec<_> = std::iter::from_fn(|| b.poll_transition())
            .map(|t| (t.from, t.to, t.at))
            .collect();
        use BreakerState::*;
        assert_eq!(
            ts,
            vec![
                (Closed, Open, t0),
                (Open, HalfOpen, t1),
                (HalfOpen, Open, t1 + ms(100)),
                (Open, HalfOpen, t2),
                (HalfOpen, Closed, t2),
            ]
        );
    }

    #[test]
    fn lease_end_and_next_break_in_one_step() {
        let (mut b, t0, t1) = tripped(BreakerConfig {
            probe_lease: ms(100),
            ..small()
        });
        let _lost = b.try_acquire(t1).unwrap();
        // Long after the lease and the break after it: a new episode, reached lazily.
        let late = t1 + Duration::from_secs(60);
        assert_eq!(b.state(late), BreakerState::HalfOpen);
        let p = b.try_acquire(late).unwrap();
        assert_eq!(b.in_flight_probes(late), 1);
        assert!(b.record(late, p, FAIL));
        assert_eq!(b.consecutive_trips(), 3);
        let ats: Vec<_> = std::iter::from_fn(|| b.poll_transition())
            .map(|t| t.at)
            .collect();
        let t2 = t1 + ms(100) + Duration::from_secs(10);
        assert_eq!(ats, vec![t0, t1, t1 + ms(100), t2, late]);
    }

    #[test]
    fn probe_reported_at_admission_instant_counts_with_zero_lease() {
        let (mut b, _, t1) = tripped(BreakerConfig {
            probe_lease: Duration::ZERO,
            ..small()
        });
        assert!(call(&mut b, t1, OK));
        assert_eq!(b.state(t1), BreakerState::Closed);
    }

    #[test]
    fn ignored_releases_probe() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(small());
        trip(&mut b, t0);
        let t1 = t0 + Duration::from_secs(10);
        let p = b.try_acquire(t1).unwrap();
        assert!(!b.record(t1, p, Outcome::Ignored));
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert!(b.try_acquire(t1).is_ok());
    }

    #[test]
    fn stale_generation_changes_nothing() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(small());
        let old: Vec<_> = (0..4).map(|_| b.try_acquire(t0).unwrap()).collect();
        trip(&mut b, t0);
        let t1 = t0 + Duration::from_secs(10);
        let probe = b.try_acquire(t1).unwrap();
        for p in old {
            assert!(!b.record(t1, p, OK));
        }
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert!(b.record(t1, probe, OK));
        // A permit from another breaker is ignored too.
        let mut other = CircuitBreaker::new(small());
        let foreign = other.try_acquire(t1).unwrap();
        assert!(!b.record(t1, foreign, FAIL));
    }

    #[test]
    fn several_probes_all_must_succeed() {
        let (mut b, t1) = half_open(3);
        let ps: Vec<_> = (0..3).map(|_| b.try_acquire(t1).unwrap()).collect();
        assert!(b.try_acquire(t1).is_err());
        let mut ps = ps.into_iter();
        b.record(t1, ps.next().unwrap(), OK);
        b.record(t1, ps.next().unwrap(), OK);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        b.record(t1, ps.next().unwrap(), OK);
        assert_eq!(b.state(t1), BreakerState::Closed);
    }

    /// The issue's sequence: with two probes per episode, a completed probe must not free an
    /// admission for a third, and the breaker must not close while a probe is outstanding.
    #[test]
    fn issue_probe_cap_is_per_episode() {
        let (mut b, t1) = half_open(2);
        let p1 = b.try_acquire(t1).unwrap();
        let p2 = b.try_acquire(t1).unwrap();
        assert!(b.try_acquire(t1).is_err());
        assert!(b.record(t1, p1, OK));
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        // Before the fix, p1's success freed a slot and a third probe was admitted here.
        let r = b.try_acquire(t1).unwrap_err();
        assert_eq!(r.state, BreakerState::HalfOpen);
        assert!(b.record(t1, p2, OK));
        assert_eq!(b.state(t1), BreakerState::Closed);
    }

    /// The rest of the issue: a failure of a probe of the episode always counts — it re-opens
    /// the breaker even after the other probes succeeded.
    #[test]
    fn last_probe_failure_reopens_after_other_successes() {
        let (mut b, t1) = half_open(3);
        let p1 = b.try_acquire(t1).unwrap();
        let p2 = b.try_acquire(t1).unwrap();
        assert!(b.record(t1, p1, OK));
        let p3 = b.try_acquire(t1).unwrap();
        assert!(b.record(t1, p2, OK));
        assert!(b.try_acquire(t1).is_err());
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert!(b.record(t1 + ms(5), p3, FAIL));
        assert_eq!(b.state(t1 + ms(5)), BreakerState::Open);
        assert_eq!(b.consecutive_trips(), 2);
    }

    /// A failure ends the episode at once; the episode's other probes are stale after it.
    #[test]
    fn other_probes_of_a_failed_episode_are_stale() {
        let (mut b, t1) = half_open(2);
        let p1 = b.try_acquire(t1).unwrap();
        let p2 = b.try_acquire(t1).unwrap();
        assert!(b.record(t1, p1, FAIL));
        let g = b.generation();
        assert!(!b.record(t1, p2, OK));
        assert_eq!((b.state(t1), b.generation()), (BreakerState::Open, g));
    }

    /// Ignored gives the admission back (resilience4j's releasePermission), also after
    /// another probe of the episode succeeded.
    #[test]
    fn ignored_probe_admission_is_reissued() {
        let (mut b, t1) = half_open(2);
        let p1 = b.try_acquire(t1).unwrap();
        let p2 = b.try_acquire(t1).unwrap();
        assert!(b.record(t1, p1, OK));
        assert!(!b.record(t1, p2, Outcome::Ignored));
        let p3 = b.try_acquire(t1).unwrap();
        assert!(b.try_acquire(t1).is_err());
        assert!(b.record(t1, p3, OK));
        assert_eq!(b.state(t1), BreakerState::Closed);
    }

    #[test]
    fn slow_calls_trip() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig {
            slow_call_rate_threshold: 50,
            slow_call_duration: Duration::from_secs(5),
            ..small()
        });
        let slow = Outcome::Success {
            ttfb: Duration::from_secs(6),
        };
        assert_eq!(calls(&mut b, t0, &[OK, OK, slow]), BreakerState::Closed);
        call(&mut b, t0, slow);
        assert_eq!(b.state(t0), BreakerState::Open);
    }

    #[test]
    fn forced_and_disabled() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(small());
        b.force_open(t0);
        assert_eq!(
            b.try_acquire(t0 + Duration::from_secs(1000))
                .unwrap_err()
                .state,
            BreakerState::ForcedOpen
        );
        b.disable(t0);
        for _ in 0..100 {
            assert!(call(&mut b, t0, FAIL));
        }
        assert_eq!(b.state(t0), BreakerState::Disabled);
        b.reset(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        assert_eq!(b.metrics(t0).calls, 0);
    }

    #[test]
    fn backwards_time_is_clamped() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(small());
        let t5 = t0 + Duration::from_secs(5);
        trip(&mut b, t5);
        // An earlier now is treated as t5: still open.
        assert!(b.try_acquire(t0).is_err());
        assert_eq!(b.state(t0), BreakerState::Open);
    }

    #[test]
    fn huge_durations_do_not_panic() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig {
            break_duration: Duration::MAX,
            max_break_duration: Duration::MAX,
            break_multiplier: u32::MAX,
            probe_lease: Duration::MAX,
            window: SlidingWindow::Time {
                length: Duration::MAX,
                buckets: u32::MAX,
            },
            minimum_calls: 1,
            ..Default::default()
        });
        call(&mut b, t0, FAIL);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(b.try_acquire(t0 + Duration::from_secs(1_000_000)).is_err());
    }
}
