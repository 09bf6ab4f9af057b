//! [`Ejector`]: outlier detection for one endpoint of a pool — when to take it out of
//! rotation, and how it comes back: probed actively on a short, growing schedule, readmitted
//! as soon as a probe is answered.
//!
//! ```text
//!            N consecutive server failures (5xx, first-token timeout, …; fewer for
//!            connection failures), or a 429/503 that says until when
//!  Healthy ─────────────────────────────────────────────────▶ Ejected { until: next probe }
//!     ▲                                                         │    ▲
//!     │ the probe is answered                     until passes  │    │ the probe fails: the
//!     │ (2xx, or a 4xx: alive) — readmitted,                    ▼    │ next one after a longer
//!     │ into slow start                                                interval (jittered, capped)
//!     └─────────────────────────────────────────────────── Probing ──┘
//!                                         exactly one probe in flight
//! ```
//!
//! How it comes back depends on why it was ejected:
//! - **connection failures** (refused, reset before any answer, connect timeout): the replica
//!   is down or restarting; the first probe goes after the first interval of the
//!   [`ProbeSchedule`] (1 s by default), and the first probe answered readmits it — within
//!   seconds of answering again, not when a fixed ejection time ends;
//! - **server failures** (5xx, timeouts waiting for the server, cut streams): the replica may be
//!   up but failing, and a `/health` that answers says little; it stays out for Envoy's
//!   ejection time (`base × times ejected`, capped at `max`, minus up to `jitter_percent`),
//!   the *hold*. With health probes it is probed on the schedule all the same: a probe
//!   answered during the hold keeps it out until the hold ends (then one more probe readmits
//!   it), but a probe whose connection is refused shows that the process went away — a replica
//!   that died cuts its streams (server failures) before it refuses connections — so the hold
//!   is dropped and the first probe answered readmits it. Probes made of user requests wait
//!   for the hold's end;
//! - **a server hint** (429/503 with `Retry-After`, or a rate-limit reset): probed when the
//!   hint ends.
//!
//! Every failed probe schedules the next one after a longer interval (`first × factor^k`,
//! capped at `max` and at the ejection's length, minus jitter); a probe's own hint is honoured
//! when it is later: no probe goes before its scheduled time (a property test checks it). A
//! probe cut short before its answer (the call that carried it ended first) taught nothing:
//! its turn is given back, still due, and the next call (or the background upkeep) sends it.
//!
//! Rules (each has a test):
//! - only failures that are the server's fault count: 5xx, connect refused or reset, a
//!   timeout waiting for the server, a truncated stream; a 4xx is an answer (it resets the
//!   count) and a call the caller cancelled says nothing;
//! - connection-level failures eject after fewer in a row than 5xx do (a refused connection
//!   is a replica that is down, not one that is struggling);
//! - the ejection length is `base × times ejected`, capped at `max`, minus up to
//!   `jitter_percent`, so that many clients do not readmit an endpoint in the same instant;
//! - a `Retry-After` (or a rate-limit reset) on a 429/503 ejects until that instant at once;
//! - a later deadline always wins over an earlier one: re-ejecting never shortens an ejection;
//! - an ejected endpoint comes back through exactly one probe at a time;
//! - the pool decides whether an ejection is allowed (never more than a share of the
//!   endpoints, never the last one): [`Ejector::record`] is told.

use std::time::{Duration, Instant};

use super::clock::saturating_add;
use super::probe_schedule::ProbeSchedule;
use super::rng::Rng;

/// When an endpoint is ejected, for how long, and how it is probed back. Defaults follow
/// Envoy's outlier detection (5 consecutive 5xx, 30 s × times ejected, capped at 300 s, at
/// most 10 % of the endpoints), with active probing: `GET /health` within 2 s, from 1 s after a
/// connection-failure ejection, then every 2 s, 3 s … (see [`ProbeSchedule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EjectionConfig {
    /// Server failures in a row that eject an endpoint (default 5).
    pub consecutive_failures: u32,
    /// Connection failures in a row (refused, reset before an answer, connect timeout) that
    /// eject an endpoint (default 3): a refused connection is a replica that is down.
    pub consecutive_connect_failures: u32,
    /// The first ejection's length; the n-th lasts n times as long (default 30 s). An
    /// endpoint ejected for server failures stays out that long (unless a probe finds it gone
    /// and back); one ejected for connection failures is readmitted by its first probe
    /// answered.
    pub base: Duration,
    /// The longest ejection (default 300 s).
    pub max: Duration,
    /// Up to this share of an ejection is taken off at random, so that clients do not readmit
    /// an endpoint all at once (default 10 %).
    pub jitter_percent: u32,
    /// The largest share of the pool's endpoints ejected at once (default 10 %; at least one
    /// endpoint can always be ejected, and never the last healthy one).
    pub max_ejected_percent: u32,
    /// Probe an ejected endpoint with `GET /health` (at the server's root: vLLM and llama.cpp
    /// answer it cheaply), answered within this time (default 2 s). The probe goes beside a
    /// call's own attempt (no call waits for it), or from the runner's background upkeep
    /// when no call flows. `None`: the probe is a user request instead — for servers whose
    /// `/health` is expensive (LiteLLM's calls its backends) or missing.
    pub health_probe: Option<Duration>,
    /// When the probes of an ejected endpoint go (default: 1 s × 2, at most 3 s, 25 % jitter).
    pub probe: ProbeSchedule,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        EjectionConfig {
            consecutive_failures: 5,
            consecutive_connect_failures: 3,
            base: Duration::from_secs(30),
            max: Duration::from_secs(300),
            jitter_percent: 10,
            max_ejected_percent: 10,
            health_probe: Some(Duration::from_secs(2)),
            probe: ProbeSchedule::default(),
        }
    }
}

/// Builder setters that set one field each.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty => $field:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$field = value;
            self
        }
    )*};
}

impl EjectionConfig {
    setters! {
        /// Sets how many server failures in a row eject an endpoint (0 is taken as 1).
        consecutive_failures: u32 => consecutive_failures;
        /// Sets how many connection failures in a row eject an endpoint (0 is taken as 1).
        consecutive_connect_failures: u32 => consecutive_connect_failures;
        /// Sets the jitter taken off each ejection, in percent (capped at 100).
        jitter_percent: u32 => jitter_percent;
        /// Sets the whole probe schedule.
        probe_schedule: ProbeSchedule => probe;
        /// Sets the largest share of endpoints ejected at once, in percent.
        max_ejected_percent: u32 => max_ejected_percent;
    }

    /// Sets the first ejection's length and the longest one.
    pub fn durations(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max = max;
        self
    }

    /// Probes an ejected endpoint with `GET /health`, answered within `timeout` (the
    /// default, with 2 s).
    pub fn health_probe(mut self, timeout: Duration) -> Self {
        self.health_probe = Some(timeout);
        self
    }

    /// Probes an ejected endpoint with a user request instead of `GET /health` (for servers
    /// whose `/health` is expensive or missing): the request goes to it when its probe is due,
    /// and fails over at once if the endpoint still fails.
    pub fn probe_with_requests(mut self) -> Self {
        self.health_probe = None;
        self
    }

    /// Sets the probe schedule's first and longest interval (growing ×2 in between).
    pub fn probe_interval(mut self, first: Duration, max: Duration) -> Self {
        self.probe.first = first;
        self.probe.max = max;
        self
    }

    /// How many of `endpoints` may be ejected at once: the configured share, at least one,
    /// never all of them.
    pub fn max_ejected(&self, endpoints: usize) -> usize {
        let share = endpoints.saturating_mul(self.max_ejected_percent.min(100) as usize) / 100;
        share.max(1).min(endpoints.saturating_sub(1))
    }

    /// The length of the `times`-th ejection before jitter: `base × times`, capped at `max`.
    pub fn length(&self, times: u32) -> Duration {
        self.base
            .saturating_mul(times.max(1))
            .min(self.max.max(self.base))
    }
}

/// What an attempt on an endpoint said about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The server produced a good answer (or its first token).
    Success,
    /// The server answered, though not with success (a 4xx): it is alive.
    Answered,
    /// A failure that is the server's fault; `connect` when no connection could be made (or
    /// it broke before any answer).
    Failure {
        /// A connection-level failure.
        connect: bool,
    },
    /// The server asked not to be called again before `until` (429 or 503 with a hint).
    Overloaded {
        /// Until when.
        until: Instant,
    },
    /// Nothing learned (the caller cancelled, the request was refused locally).
    Neutral,
}

/// Why an endpoint was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectReason {
    /// `n` server failures in a row.
    ConsecutiveFailures(u32),
    /// `n` connection failures in a row.
    ConsecutiveConnectFailures(u32),
    /// The server said when to come back (a 429/503 hint).
    ServerHint,
    /// A probe after an ejection failed.
    ProbeFailed,
}

impl std::fmt::Display for EjectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EjectReason::ConsecutiveFailures(n) => write!(f, "{n} server failures in a row"),
            EjectReason::ConsecutiveConnectFailures(n) => {
                write!(f, "{n} connection failures in a row")
            }
            EjectReason::ServerHint => f.write_str("the server asked to be left alone until then"),
            EjectReason::ProbeFailed => f.write_str("the probe after an ejection failed"),
        }
    }
}

/// Where an endpoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// In rotation.
    Healthy,
    /// Out of rotation; its next probe may go at `until`.
    Ejected {
        /// When its next probe may go.
        until: Instant,
    },
    /// A probe is in flight; nothing else goes.
    Probing,
}

/// A change of [`Health`], for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthChange {
    /// Before.
    pub from: Health,
    /// After.
    pub to: Health,
    /// Why, for an ejection.
    pub reason: Option<EjectReason>,
}

/// One ejection, from leaving rotation to coming back.
#[derive(Debug, Clone, Copy)]
struct Episode {
    /// Its length (jittered): the longest interval between two probes.
    length: Duration,
    /// Failed probes so far: the next interval's step in the schedule.
    failed_probes: u32,
    /// Not readmitted before this (Envoy's ejection time after server failures), unless a
    /// probe finds the process gone.
    hold: Option<Instant>,
}

/// Outlier detection for one endpoint (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Ejector {
    health: Health,
    consecutive: u32,
    consecutive_connect: u32,
    times_ejected: u32,
    /// Since when the endpoint has been healthy without an ejection (the multiplier decays).
    healthy_since: Option<Instant>,
    reason: Option<EjectReason>,
    episode: Option<Episode>,
    /// When the probe in flight was due (a probe cut short gives its turn back).
    probe_due: Option<Instant>,
}

impl Default for Ejector {
    fn default() -> Self {
        Ejector::new()
    }
}

impl Ejector {
    /// A healthy endpoint.
    pub fn new() -> Self {
        Ejector {
            health: Health::Healthy,
            consecutive: 0,
            consecutive_connect: 0,
            times_ejected: 0,
            healthy_since: None,
            reason: None,
            episode: None,
            probe_due: None,
        }
    }

    /// The stored state (an ejection whose time has passed is still `Ejected`: it waits for
    /// its probe; see [`probe_ready`](Self::probe_ready)).
    pub fn health(&self) -> Health {
        self.health
    }

    /// Whether the endpoint takes ordinary requests.
    pub fn is_healthy(&self) -> bool {
        self.health == Health::Healthy
    }

    /// Whether a probe may be sent now.
    pub fn probe_ready(&self, now: Instant) -> bool {
        matches!(self.health, Health::Ejected { until } if now >= until)
    }

    /// When the next probe may go (`None` while healthy or while a probe is in flight).
    pub fn next_probe(&self) -> Option<Instant> {
        match self.health {
            Health::Ejected { until } => Some(until),
            _ => None,
        }
    }

    /// Failed probes in the current ejection.
    pub fn failed_probes(&self) -> u32 {
        self.episode.map_or(0, |e| e.failed_probes)
    }

    /// Whether the endpoint counts as ejected (ejected or probing).
    pub fn is_ejected(&self) -> bool {
        !self.is_healthy()
    }

    /// Server failures in a row so far (all kinds).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// Whether it failed enough in a row to be ejected (it may still be in rotation when the
    /// pool's share of ejected endpoints is spent).
    pub fn is_outlier(&self, cfg: &EjectionConfig) -> bool {
        self.consecutive >= cfg.consecutive_failures.max(1)
            || self.consecutive_connect >= cfg.consecutive_connect_failures.max(1)
    }

    /// How many times the endpoint was ejected (decays while it stays healthy).
    pub fn times_ejected(&self) -> u32 {
        self.times_ejected
    }

    /// Why it was last ejected.
    pub fn reason(&self) -> Option<EjectReason> {
        self.reason
    }

    /// A probe goes to this endpoint at `now`: returns whether one may (its probe was due);
    /// the endpoint is then probing until the probe's verdict.
    pub fn on_dispatch(&mut self, now: Instant) -> bool {
        if let (true, Health::Ejected { until }) = (self.probe_ready(now), self.health) {
            self.probe_due = Some(until);
            self.health = Health::Probing;
            true
        } else {
            false
        }
    }

    /// Records what an attempt (or a probe) said. `probe` is what
    /// [`on_dispatch`](Self::on_dispatch) returned for it; `may_eject` is the pool's answer to
    /// "may one more endpoint be ejected?". Returns the change of health, if any.
    pub fn record(
        &mut self,
        now: Instant,
        verdict: Verdict,
        probe: bool,
        may_eject: bool,
        cfg: &EjectionConfig,
        rng: &mut Rng,
    ) -> Option<HealthChange> {
        let from = self.health;
        match self.health {
            Health::Probing if probe => match verdict {
                Verdict::Success | Verdict::Answered => match self.episode.and_then(|e| e.hold) {
                    // Alive, but still within its hold: out until the hold ends, then probed.
                    Some(hold) if now < hold => self.health = Health::Ejected { until: hold },
                    _ => {
                        self.consecutive = 0;
                        self.consecutive_connect = 0;
                        self.health = Health::Healthy;
                        self.healthy_since = Some(now);
                        self.episode = None;
                    }
                },
                // The probe was cut short: its turn is given back, still due.
                Verdict::Neutral => {
                    self.health = Health::Ejected {
                        until: self.probe_due.unwrap_or(now),
                    }
                }
                Verdict::Failure { connect } => {
                    if connect {
                        // The process went away: whatever it failed with is gone with it.
                        if let Some(e) = self.episode.as_mut() {
                            e.hold = None;
                        }
                    }
                    self.reason = Some(EjectReason::ProbeFailed);
                    self.next_probe_after(now, None, cfg, rng);
                }
                Verdict::Overloaded { until } => {
                    self.reason = Some(EjectReason::ServerHint);
                    self.next_probe_after(now, Some(until), cfg, rng);
                }
            },
            // Late answers to requests sent before the ejection change nothing, except a
            // longer server hint: the later deadline wins.
            Health::Probing => {}
            Health::Ejected { until: current } => {
                if let Verdict::Overloaded { until } = verdict {
                    if until > current {
                        self.health = Health::Ejected { until };
                        self.reason = Some(EjectReason::ServerHint);
                    }
                }
            }
            Health::Healthy => match verdict {
                Verdict::Success | Verdict::Answered => {
                    self.consecutive = 0;
                    self.consecutive_connect = 0;
                    self.decay(now, cfg);
                }
                Verdict::Neutral => {}
                Verdict::Failure { connect } => {
                    self.consecutive = self.consecutive.saturating_add(1);
                    if connect {
                        self.consecutive_connect = self.consecutive_connect.saturating_add(1);
                    } else {
                        self.consecutive_connect = 0;
                    }
                    let reason =
                        if self.consecutive_connect >= cfg.consecutive_connect_failures.max(1) {
                            Some(EjectReason::ConsecutiveConnectFailures(
                                self.consecutive_connect,
                            ))
                        } else if self.consecutive >= cfg.consecutive_failures.max(1) {
                            Some(EjectReason::ConsecutiveFailures(self.consecutive))
                        } else {
                            None
                        };
                    if let (Some(reason), true) = (reason, may_eject) {
                        self.eject(now, reason, None, cfg, rng);
                    }
                }
                Verdict::Overloaded { until } => {
                    if may_eject && until > now {
                        self.eject(now, EjectReason::ServerHint, Some(until), cfg, rng);
                    }
                }
            },
        }
        (self.health != from).then_some(HealthChange {
            from,
            to: self.health,
            reason: self.reason.filter(|_| !self.is_healthy()),
        })
    }

    /// Takes the endpoint out of rotation: a new episode, and its first probe's time.
    fn eject(
        &mut self,
        now: Instant,
        reason: EjectReason,
        hint: Option<Instant>,
        cfg: &EjectionConfig,
        rng: &mut Rng,
    ) {
        self.times_ejected = self.times_ejected.saturating_add(1);
        let length = cfg.length(self.times_ejected);
        let jitter_share = length.saturating_mul(cfg.jitter_percent.min(100)) / 100;
        let length = length.saturating_sub(rng.duration_below(jitter_share));
        let probe_soon = saturating_add(now, cfg.probe.interval(0, length, rng));
        let (first, hold) = match reason {
            // Down or restarting: probe soon, readmit as soon as it answers.
            EjectReason::ConsecutiveConnectFailures(_) | EjectReason::ProbeFailed => {
                (probe_soon, None)
            }
            // Up but failing: Envoy's ejection time first. Health probes watch it meanwhile
            // (a process that went away drops the hold); user requests do not.
            EjectReason::ConsecutiveFailures(_) => {
                let hold = saturating_add(now, length);
                match cfg.health_probe {
                    Some(_) => (probe_soon, Some(hold)),
                    None => (hold, Some(hold)),
                }
            }
            EjectReason::ServerHint => {
                let until = hint.unwrap_or_else(|| saturating_add(now, length));
                (until, None)
            }
        };
        let until = match self.health {
            Health::Ejected { until: current } => first.max(current),
            _ => first,
        };
        self.consecutive = 0;
        self.consecutive_connect = 0;
        self.reason = Some(reason);
        self.episode = Some(Episode {
            length,
            failed_probes: 0,
            hold,
        });
        self.health = Health::Ejected { until };
    }

    /// A probe failed: the next one after the schedule's next interval, or at the server's
    /// `hint` when that is later.
    fn next_probe_after(
        &mut self,
        now: Instant,
        hint: Option<Instant>,
        cfg: &EjectionConfig,
        rng: &mut Rng,
    ) {
        let episode = self.episode.get_or_insert(Episode {
            length: cfg.length(self.times_ejected),
            failed_probes: 0,
            hold: None,
        });
        episode.failed_probes = episode.failed_probes.saturating_add(1);
        let interval = cfg
            .probe
            .interval(episode.failed_probes, episode.length, rng);
        let until = saturating_add(now, interval);
        self.health = Health::Ejected {
            until: hint.map_or(until, |h| h.max(until)),
        };
    }

    /// Staying healthy earns back one step of the ejection multiplier per `base`.
    fn decay(&mut self, now: Instant, cfg: &EjectionConfig) {
        if self.times_ejected == 0 {
            return;
        }
        let since = *self.healthy_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= cfg.base {
            self.times_ejected -= 1;
            self.healthy_since = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Verdict = Verdict::Failure { connect: false };
    const REFUSED: Verdict = Verdict::Failure { connect: true };

    fn cfg() -> EjectionConfig {
        let mut c = EjectionConfig::default().jitter_percent(0);
        c.probe.jitter_percent = 0;
        c
    }

    fn assert_ejected_until(e: &Ejector, until: Instant) {
        assert_eq!(e.health(), Health::Ejected { until });
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn feed(e: &mut Ejector, now: Instant, v: Verdict, n: u32) -> Option<HealthChange> {
        let mut last = None;
        for _ in 0..n {
            last = e
                .record(now, v, false, true, &cfg(), &mut Rng::new(1))
                .or(last);
        }
        last
    }

    /// A probe (a request sent while ejected) that succeeded, with the default configuration.
    fn answered_probe(e: &mut Ejector, at: Instant) {
        e.record(at, Verdict::Success, true, true, &cfg(), &mut Rng::new(1));
    }

    #[test]
    fn five_server_failures_in_a_row_eject_for_the_base_time() {
        // LiteLLM #34836: 25 consecutive 500s left a deployment in rotation.
        let t0 = Instant::now();
        let mut e = Ejector::new();
        assert_eq!(feed(&mut e, t0, FAIL, 4), None);
        assert!(e.is_healthy());
        let change = feed(&mut e, t0, FAIL, 1).unwrap();
        assert_eq!(change.reason, Some(EjectReason::ConsecutiveFailures(5)));
        // Watched by a health probe from 1 s on; answered, it stays out for the base time.
        assert_eq!(
            change.to,
            Health::Ejected {
                until: t0 + secs(1)
            }
        );
        assert!(e.on_dispatch(t0 + secs(1)));
        answered_probe(&mut e, t0 + secs(1));
        assert_ejected_until(&e, t0 + secs(30));
        assert!(e.on_dispatch(t0 + secs(30)));
        answered_probe(&mut e, t0 + secs(30));
        assert!(e.is_healthy());
        // Probes made of user requests wait for the base time.
        let legacy = cfg().probe_with_requests();
        let mut e = Ejector::new();
        for _ in 0..5 {
            e.record(t0, FAIL, false, true, &legacy, &mut Rng::new(1));
        }
        assert_ejected_until(&e, t0 + secs(30));
    }

    #[test]
    fn a_replica_that_died_drops_its_hold_when_a_probe_is_refused() {
        // Its streams were cut (server failures) before it refused connections.
        let t0 = Instant::now();
        let mut e = Ejector::new();
        feed(&mut e, t0, FAIL, 5);
        assert!(e.on_dispatch(t0 + secs(1)));
        e.record(t0 + secs(1), REFUSED, true, true, &cfg(), &mut Rng::new(1));
        assert_eq!(
            e.next_probe(),
            Some(t0 + secs(3)),
            "the schedule's next step"
        );
        // Back: the first probe answered readmits it, long before the 30 s hold.
        assert!(e.on_dispatch(t0 + secs(3)));
        let change = e.record(
            t0 + secs(3),
            Verdict::Success,
            true,
            true,
            &cfg(),
            &mut Rng::new(1),
        );
        assert_eq!(change.map(|c| c.to), Some(Health::Healthy));
    }

    #[test]
    fn an_answer_resets_the_count_and_4xx_is_an_answer() {
        let t0 = Instant::now();
        let mut e = Ejector::new();
        feed(&mut e, t0, FAIL, 4);
        feed(&mut e, t0, Verdict::Answered, 1);
        feed(&mut e, t0, FAIL, 4);
        assert!(e.is_healthy());
        feed(&mut e, t0, Verdict::Neutral, 3);
        assert_eq!(e.consecutive_failures(), 4, "a cancelled call says nothing");
    }

    #[test]
    fn connection_failures_eject_sooner_and_are_probed_within_a_second() {
        // LiteLLM #27610: connection errors were exempt from cooldown.
        let t0 = Instant::now();
        let mut e = Ejector::new();
        let change = feed(&mut e, t0, REFUSED, 3).unwrap();
        assert_eq!(
            change.reason,
            Some(EjectReason::ConsecutiveConnectFailures(3))
        );
        assert_eq!(
            change.to,
            Health::Ejected {
                until: t0 + secs(1)
            }
        );
        assert_eq!(e.next_probe(), Some(t0 + secs(1)));
    }

    #[test]
    fn a_failed_probe_schedules_the_next_one_later_up_to_the_cap() {
        let t0 = Instant::now();
        let mut e = Ejector::new();
        feed(&mut e, t0, REFUSED, 3);
        let mut now = t0;
        let mut gaps = Vec::new();
        for _ in 0..6 {
            let until = e.next_probe().expect("ejected");
            gaps.push((until - now).as_millis());
            now = until;
            assert!(e.on_dispatch(now));
            assert_eq!(e.next_probe(), None, "probing");
            e.record(now, REFUSED, true, true, &cfg(), &mut Rng::new(1));
            assert_eq!(e.reason(), Some(EjectReason::ProbeFailed));
        }
        assert_eq!(gaps, [1000, 2000, 3000, 3000, 3000, 3000]);
        assert_eq!(e.times_ejected(), 1, "one episode, however many probes");
        // The next probe is answered: back at once.
        now = e.next_probe().unwrap();
        e.on_dispatch(now);
        let change = e.record(now, Verdict::Success, true, true, &cfg(), &mut Rng::new(1));
        assert_eq!(change.map(|c| c.to), Some(Health::Healthy));
    }

    #[test]
    fn server_failures_keep_envoys_ejection_time_growing_with_each_episode() {
        let t0 = Instant::now();
        let mut e = Ejector::new();
        let mut now = t0;
        let mut lengths = Vec::new();
        for _ in 0..12 {
            feed(&mut e, now, FAIL, 5);
            // The first probe (1 s) finds it alive: out until its hold ends.
            let probe = e.next_probe().expect("ejected");
            assert_eq!(probe - now, secs(1));
            assert!(e.on_dispatch(probe));
            e.record(
                probe,
                Verdict::Answered,
                true,
                true,
                &cfg(),
                &mut Rng::new(1),
            );
            let hold = e.next_probe().expect("held");
            lengths.push((hold - now).as_secs());
            // At the hold's end a 5xx: the next probe on the short schedule, not a whole
            // ejection later.
            assert!(e.on_dispatch(hold));
            e.record(hold, FAIL, true, true, &cfg(), &mut Rng::new(1));
            assert_eq!(e.next_probe(), Some(hold + secs(2)));
            now = hold + secs(2);
            e.on_dispatch(now);
            e.record(now, Verdict::Success, true, true, &cfg(), &mut Rng::new(1));
            assert!(e.is_healthy());
        }
        assert_eq!(&lengths[..6], &[30, 60, 90, 120, 150, 180]);
        assert!(lengths.iter().all(|&l| l <= 300));
        assert_eq!(*lengths.last().unwrap(), 300);
    }

    #[test]
    fn the_probe_interval_never_exceeds_a_short_ejection() {
        let t0 = Instant::now();
        let c = cfg().durations(Duration::from_millis(500), secs(1));
        let mut e = Ejector::new();
        for _ in 0..3 {
            e.record(t0, REFUSED, false, true, &c, &mut Rng::new(1));
        }
        assert_eq!(e.next_probe(), Some(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn a_later_deadline_wins_and_an_earlier_one_never_shortens() {
        // LiteLLM #40130: re-cooling kept the earlier, shorter deadline.
        let t0 = Instant::now();
        let mut e = Ejector::new();
        let over = |s| Verdict::Overloaded {
            until: t0 + secs(s),
        };
        e.record(t0, over(10), false, true, &cfg(), &mut Rng::new(1));
        assert_ejected_until(&e, t0 + secs(10));
        e.record(t0, over(40), false, true, &cfg(), &mut Rng::new(1));
        assert_ejected_until(&e, t0 + secs(40));
        e.record(t0, over(5), false, true, &cfg(), &mut Rng::new(1));
        assert_ejected_until(&e, t0 + secs(40));
        feed(&mut e, t0, FAIL, 10);
        assert_ejected_until(&e, t0 + secs(40));
    }

    #[test]
    fn exactly_one_probe_and_late_answers_change_nothing() {
        let t0 = Instant::now();
        let mut e = Ejector::new();
        let legacy = cfg().probe_with_requests();
        for _ in 0..5 {
            e.record(t0, FAIL, false, true, &legacy, &mut Rng::new(1));
        }
        assert!(
            !e.on_dispatch(t0 + secs(29)),
            "no probe before the ejection ends"
        );
        assert!(e.on_dispatch(t0 + secs(30)));
        assert!(!e.on_dispatch(t0 + secs(30)), "one probe at a time");
        // A late success of a request sent before the ejection does not readmit.
        e.record(
            t0 + secs(31),
            Verdict::Success,
            false,
            true,
            &cfg(),
            &mut Rng::new(1),
        );
        assert_eq!(e.health(), Health::Probing);
        // A probe cut short gives its turn back: still due (at 30 s), nothing learned.
        e.record(
            t0 + secs(31),
            Verdict::Neutral,
            true,
            true,
            &cfg(),
            &mut Rng::new(1),
        );
        assert_eq!(e.next_probe(), Some(t0 + secs(30)));
        assert!(e.probe_ready(t0 + secs(31)));
        assert_eq!(e.failed_probes(), 0, "nothing was learned");
    }

    #[test]
    fn no_ejection_when_the_pool_forbids_it() {
        let t0 = Instant::now();
        let mut e = Ejector::new();
        for _ in 0..10 {
            e.record(t0, FAIL, false, false, &cfg(), &mut Rng::new(1));
        }
        assert!(e.is_healthy());
        // Once allowed, the next failure ejects.
        e.record(t0, FAIL, false, true, &cfg(), &mut Rng::new(1));
        assert!(e.is_ejected());
    }

    #[test]
    fn jitter_only_shortens_and_stays_within_its_share() {
        let t0 = Instant::now();
        for seed in 0..200 {
            let mut e = Ejector::new();
            for _ in 0..5 {
                e.record(
                    t0,
                    FAIL,
                    false,
                    true,
                    &EjectionConfig::default().probe_with_requests(),
                    &mut Rng::new(seed),
                );
            }
            let Health::Ejected { until } = e.health() else {
                panic!()
            };
            let l = until - t0;
            assert!(l <= secs(30) && l >= secs(27), "{l:?}");
        }
    }

    #[test]
    fn the_multiplier_decays_while_healthy() {
        let t0 = Instant::now();
        let mut e = Ejector::new();
        feed(&mut e, t0, FAIL, 5);
        e.on_dispatch(t0 + secs(30));
        answered_probe(&mut e, t0 + secs(30));
        assert_eq!(e.times_ejected(), 1);
        feed(&mut e, t0 + secs(45), Verdict::Success, 1);
        assert_eq!(e.times_ejected(), 1);
        feed(&mut e, t0 + secs(61), Verdict::Success, 1);
        assert_eq!(e.times_ejected(), 0);
    }

    #[test]
    fn max_ejected_share() {
        let c = EjectionConfig::default();
        assert_eq!(c.max_ejected(1), 0, "never the last one");
        assert_eq!(c.max_ejected(2), 1);
        assert_eq!(c.max_ejected(3), 1);
        assert_eq!(c.max_ejected(30), 3);
        assert_eq!(c.max_ejected_percent(100).max_ejected(4), 3);
    }
}
