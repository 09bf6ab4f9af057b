//! The route phase: where an attempt goes (an endpoint of the pool, first a health probe of
//! an endpoint whose ejection is over), and when a second attempt races the first for the
//! first token (a hedge).
//!
//! ```text
//!  attempt sent ──(no first token by the hedge delay; a hedge is in the bucket; another
//!       │          endpoint is healthy; a slot is free without queueing; budget)──▶ hedge sent
//!       ▼                                                                            │
//!  the first exchange to hand the caller an event wins ◀─────────────────────────────┘
//!  (the other is closed before any of its events is seen); an exchange that fails before
//!  output leaves the other to carry the call
//! ```

use std::time::Instant;

use bytes::Bytes;
use http::Request;

use super::contract::{Action, AttemptId, Purpose};
use super::exchange::Exchange;
use super::observe::{ErrorType, HedgeEvent, Observation};
use super::shared::Routed;
use super::{Call, Phase, Shared};
use crate::policy::clock::saturating_add;
use crate::pool::{EndpointId, Ticket};

/// When a call hedges its first token: armed at each attempt's send, one hedge per call.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HedgePlan {
    /// After how long without a first token (`None`: this call never hedges).
    pub(super) delay: Option<std::time::Duration>,
    /// When the hedge is due.
    pub(super) at: Option<Instant>,
    /// Whether the call's one hedge decision was taken.
    pub(super) decided: bool,
}

impl Call {
    /// Routes the attempt the limits admitted: to an endpoint of the pool, or first to a
    /// health probe of an endpoint whose ejection is over (when probes are on).
    pub(super) fn route(&mut self, now: Instant, shared: &mut Shared) -> Option<Action> {
        let template = match &self.request {
            Ok(r) => r,
            Err(e) => {
                let e = e.clone();
                self.return_breaker_permit(now);
                self.finish(now, Err(e));
                return None;
            }
        };
        let probes = self.policy.pool.ejection.health_probe;
        let routed = shared.route(
            now,
            &self.tried,
            self.affinity,
            template,
            self.operation,
            probes.is_some(),
        );
        match routed {
            Err(e) => {
                self.return_breaker_permit(now);
                self.finish(now, Err(e));
                None
            }
            Ok(Routed::Probe {
                id,
                request,
                ticket,
            }) => {
                let timeout = probes.unwrap_or_default();
                let deadline = saturating_add(now, timeout);
                let deadline = self.deadline.map_or(deadline, |d| d.min(deadline));
                let attempt = self.next_id();
                let mut ex = Exchange::new(attempt, Purpose::HealthProbe, 0, id, ticket, now);
                ex.probe_deadline = Some(deadline);
                self.exchanges.push(ex);
                self.phase = Phase::Exchanging;
                Some(Action::Send {
                    attempt,
                    purpose: Purpose::HealthProbe,
                    request,
                    deadline: Some(deadline),
                    connect_timeout: Some(deadline.saturating_duration_since(now)),
                })
            }
            Ok(Routed::Attempt {
                id,
                request,
                ticket,
            }) => {
                self.attempts += 1;
                self.report.attempts = self.attempts;
                let breaker = self.breaker_permit.take();
                let action = self.send(now, Purpose::Attempt, id, request, ticket, breaker, None);
                if let (Some(delay), false) = (self.hedge.delay, self.hedge.decided) {
                    self.hedge.at = Some(saturating_add(now, delay));
                }
                Some(action)
            }
        }
    }

    /// A new exchange on `id` with `request`.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        now: Instant,
        purpose: Purpose,
        id: EndpointId,
        request: Request<Bytes>,
        ticket: Ticket,
        breaker: Option<crate::policy::BreakerPermit>,
        slot: Option<crate::policy::ConcurrencyPermit>,
    ) -> Action {
        if !self.tried.contains(&id) {
            self.tried.push(id);
        }
        self.report.endpoints.push(id);
        let number = self.attempts + self.report.hedges;
        let attempt = self.next_id();
        let mut ex = Exchange::new(attempt, purpose, number, id, ticket, now);
        ex.breaker = breaker;
        ex.slot = slot;
        self.exchanges.push(ex);
        self.phase = Phase::Exchanging;
        self.obs.attempt_started(now, number, id, purpose);
        let deadline = self
            .policy
            .timeouts
            .head_deadline(now, self.stream.is_some(), self.deadline)
            .map(|(d, _)| d);
        let connect_timeout = self.policy.timeouts.connect.map(|c| match deadline {
            Some(d) => c.min(d.saturating_duration_since(now)),
            None => c,
        });
        Action::Send {
            attempt,
            purpose,
            request,
            deadline,
            connect_timeout,
        }
    }

    fn next_id(&mut self) -> AttemptId {
        self.sends = self.sends.saturating_add(1);
        AttemptId(self.sends)
    }

    /// Whether the hedge timer passed while the call could still hedge.
    pub(super) fn hedge_due(&self, now: Instant) -> bool {
        self.hedge.at.is_some_and(|at| now >= at) && !self.hedge.decided
    }

    /// The hedge timer passed: start a second attempt on another endpoint when the shared
    /// state allows one now (one decision per call: a hedge refused now is not asked again).
    pub(super) fn try_hedge(&mut self, now: Instant, shared: &mut Shared) -> Option<Action> {
        self.hedge.at = None;
        self.hedge.decided = true;
        // Only while the one attempt in flight has handed out nothing: after the first event
        // nothing moves, and a call between attempts (backoff) is not late for a first token.
        let racing = matches!(self.phase, Phase::Exchanging)
            && !self.output_started
            && self.exchanges.len() == 1
            && self.exchanges[0].purpose == Purpose::Attempt
            && self.exchanges[0].first_data.is_none()
            && self.exchanges[0].events.is_empty();
        if !racing {
            return None;
        }
        let template = self.request.as_ref().ok()?;
        let grant = shared.grant_hedge(now, &self.tried, self.affinity, template, self.operation)?;
        self.report.hedges += 1;
        self.obs.push(Observation::Hedge {
            event: HedgeEvent::Started,
        });
        Some(self.send(
            now,
            Purpose::Hedge,
            grant.id,
            grant.request,
            grant.ticket,
            grant.breaker,
            grant.slot,
        ))
    }

    /// Exchange `i` hands out the call's first event: it wins; every other exchange is closed.
    pub(super) fn commit(&mut self, i: usize, now: Instant) {
        let id = self.exchanges[i].id;
        let purpose = self.exchanges[i].purpose;
        self.committed = Some(id);
        let raced = self.exchanges.len() > 1;
        for j in (0..self.exchanges.len()).rev() {
            if self.exchanges[j].id != id {
                self.end_exchange(j, now, Some(ErrorType::Cancelled));
            }
        }
        if raced || self.report.hedges > 0 {
            let event = match purpose {
                Purpose::Hedge => HedgeEvent::HedgeWon,
                _ => HedgeEvent::PrimaryWon,
            };
            if self.report.hedges > 0 {
                self.obs.push(Observation::Hedge { event });
            }
        }
        // The hedge is moot once output flows.
        self.hedge.at = None;
        self.hedge.decided = true;
    }

}
