//! What the pool learns from each request: it goes out ([`Pool::dispatch`]), it says something
//! about its endpoint ([`Pool::record`]: latency, ejection, readmission into slow start), it
//! ends ([`Pool::release`]: a drained endpoint leaves once nothing runs on it), and what its
//! endpoint's adaptive limit makes of it ([`Pool::record_limit`], [`Pool::total_limit`]).

use std::time::{Duration, Instant};

use super::{EndpointId, Pool, Ticket};
use crate::policy::adaptive::bucket_of;
use crate::policy::ejection::{Health, HealthChange, Verdict};
use crate::policy::{LimitChange, LimitSample, Load, PooledLimit, Rng};

/// The latency an outlier kept in rotation counts as, at least.
const FAILURE_PENALTY: Duration = Duration::from_secs(1);

impl Pool {
    /// An attempt (or a hedge) goes to `id` at `now`. With probes made of user requests, the
    /// first one after an ejection is its probe (`ticket.probe`).
    pub fn dispatch(&mut self, now: Instant, id: EndpointId) -> Ticket {
        self.dispatch_as(now, id, true)
    }

    pub(super) fn dispatch_as(&mut self, now: Instant, id: EndpointId, user: bool) -> Ticket {
        let health_probes = self.health_probes();
        let Some(m) = self.member_mut(id) else {
            return Ticket {
                id,
                probe: false,
                user,
            };
        };
        m.in_flight = m.in_flight.saturating_add(1);
        if user {
            m.user_in_flight = m.user_in_flight.saturating_add(1);
            let demand = self.user_in_flight();
            if let Some(p) = self.pooled.as_mut() {
                p.note_demand(demand);
            }
        }
        let Some(m) = self.member_mut(id) else {
            return Ticket {
                id,
                probe: false,
                user,
            };
        };
        // A user request is a probe only when probes are made of user requests.
        let probe = if user && health_probes {
            false
        } else {
            let before = m.ejector.health();
            let probe = m.ejector.on_dispatch(now);
            if probe {
                let change = HealthChange {
                    from: before,
                    to: m.ejector.health(),
                    reason: None,
                };
                self.push_change(id, change);
            }
            probe
        };
        Ticket { id, probe, user }
    }

    /// The request holding `ticket` ended (its response was read, failed or dropped). A
    /// drained endpoint leaves the pool when its last request ends.
    pub fn release(&mut self, ticket: Ticket) {
        let Some(m) = self.member_mut(ticket.id) else {
            return;
        };
        m.in_flight = m.in_flight.saturating_sub(1);
        if ticket.user {
            m.user_in_flight = m.user_in_flight.saturating_sub(1);
        }
        if m.draining && m.in_flight == 0 {
            self.members.retain(|m| m.id != ticket.id);
        }
    }

    /// What the request holding `ticket` said about its endpoint, with its latency sample
    /// (time to first token, or to the head of a JSON answer) when it succeeded. A probe that
    /// readmits its endpoint starts its slow start.
    pub fn record(
        &mut self,
        now: Instant,
        ticket: Ticket,
        verdict: Verdict,
        sample: Option<Duration>,
    ) {
        self.observe(now);
        let n = self.members.iter().filter(|m| !m.draining).count();
        let ejected = self.ejected();
        // A pool of one never ejects: the client behaves as with one server.
        let may_eject = ejected < self.cfg.ejection.max_ejected(n);
        let cfg = self.cfg.ejection;
        let rng = self.rng.get_or_insert_with(|| Rng::new(0));
        let Some(m) = self.members.iter_mut().find(|m| m.id == ticket.id) else {
            return;
        };
        if let Some(s) = sample {
            m.latency.observe(now, s);
        }
        match verdict {
            Verdict::Success | Verdict::Answered => m.successes = m.successes.saturating_add(1),
            Verdict::Failure { .. } | Verdict::Overloaded { .. } => {
                m.failures = m.failures.saturating_add(1)
            }
            Verdict::Neutral => {}
        }
        // A drained endpoint is on its way out: what its last requests say changes nothing.
        if m.draining {
            return;
        }
        let change = m
            .ejector
            .record(now, verdict, ticket.probe, may_eject, &cfg, rng);
        if m.ejector.is_healthy() && m.ejector.is_outlier(&cfg) {
            // It failed enough to be ejected, but the share of ejected endpoints is spent:
            // it stays in rotation, looking slow (twice its estimate, at least a second), so
            // that routing still avoids it.
            let penalty = m
                .latency
                .get()
                .map_or(FAILURE_PENALTY, |e| e.saturating_mul(2))
                .max(FAILURE_PENALTY);
            m.latency.observe(now, penalty);
        }
        if let Some(change) = change {
            if change.to == Health::Healthy {
                // Readmitted: its share ramps up again.
                m.ramp_from = Some(now);
            }
            self.push_change(ticket.id, change);
        }
    }

    /// Feeds `id`'s own limit one sample (`waiting`: calls waiting for a slot client-wide).
    pub fn record_limit(
        &mut self,
        now: Instant,
        id: EndpointId,
        sample: LimitSample,
        waiting: usize,
    ) -> Option<LimitChange> {
        self.observe(now);
        let m = self.member_mut(id)?;
        let load = Load {
            in_flight: m.user_in_flight,
            waiting,
        };
        let limit = m.limit.as_mut()?;
        let change = limit.record(now, sample, load);
        while limit.poll_change().is_some() {}
        // The pooled limit counts the client's first tokens (its windows), with the client's
        // load, and follows the endpoints' sum; its delay window takes the TTFT against the
        // best baseline of the prompt's bucket on any endpoint.
        if let LimitSample::FirstToken { ttft, prompt_bytes } = sample {
            let bucket = bucket_of(prompt_bytes);
            let base = self
                .members
                .iter()
                .filter_map(|m| m.limit.as_ref()?.baseline(bucket))
                .min();
            if let (Some(b), Some(p)) = (base, self.pooled.as_mut()) {
                if !b.is_zero() {
                    p.note_ratio(ttft.as_secs_f64() / b.as_secs_f64());
                }
            }
            let bound = self.endpoint_limits_sum();
            let load = Load {
                in_flight: self.user_in_flight(),
                waiting,
            };
            if let Some(p) = self.pooled.as_mut() {
                p.set_bound(bound);
                p.record(now, load);
            }
        }
        change
    }

    /// User requests in flight on every endpoint (each holds a client slot).
    fn user_in_flight(&self) -> u32 {
        self.members
            .iter()
            .map(|m| m.user_in_flight)
            .fold(0u32, u32::saturating_add)
    }

    /// The sum of the own limits in force (slow start included) of the endpoints in rotation.
    fn endpoint_limits_sum(&self) -> u32 {
        let ss = &self.cfg.routing.slow_start;
        self.members
            .iter()
            .filter(|m| m.in_rotation())
            .filter_map(|m| match self.last_now {
                Some(now) => m.limit_now(now, ss),
                None => m.limit.as_ref().map(|l| l.limit()),
            })
            .fold(0u32, u32::saturating_add)
    }

    /// The client-wide limit when each endpoint has its own: the sum of the limits
    /// in force (slow start included) of the endpoints in rotation, plus the user requests
    /// still running on the endpoints out of rotation (ejected or drained) — those hold
    /// their calls' slots, and must not eat the share of the endpoints in rotation — and at
    /// most the pooled limit once validation lowered it ([`PooledLimit`]). `None` without
    /// per-endpoint limits.
    /// Time is the latest the pool was told of ([`observe`](Self::observe)).
    pub fn total_limit(&self) -> Option<u32> {
        if !self.has_limits() {
            return None;
        }
        let ss = &self.cfg.routing.slow_start;
        let raw = |m: &super::endpoint::Member| m.limit.as_ref().map(|l| l.limit());
        let sum = self
            .members
            .iter()
            .map(|m| {
                let limit = match self.last_now {
                    Some(now) => m.limit_now(now, ss),
                    None => raw(m),
                };
                match (m.in_rotation(), limit) {
                    // Calls still running above a limit just lowered (slow start after a
                    // readmission, a cut) hold their slots: they must not eat the others'.
                    (true, Some(l)) => l.max(m.user_in_flight),
                    (true, None) => 0,
                    (false, _) => m.user_in_flight,
                }
            })
            .fold(0u32, u32::saturating_add);
        // Bounded by the pooled limit once validation lowered it: what the client has shown
        // it uses.
        let sum = match self.pooled.as_ref().and_then(PooledLimit::limit) {
            Some(p) => sum.min(p),
            None => sum,
        };
        // Never 0: the least-bad endpoint still runs while every one is out.
        Some(sum.max(1))
    }
}
