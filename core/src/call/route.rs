//! The route phase: where an attempt goes (an endpoint of the pool, with the health probe of
//! an ejected endpoint beside it when one is due), and when a second attempt races the first
//! for the first token (a hedge).
//!
//! ```text
//!  Route ──▶ Send(HealthProbe), when a probe is due ──▶ Send(Attempt) at the next poll: the
//!            probe runs beside the attempt, which waits for nothing; its verdict goes to its
//!            endpoint, and a call that ends first cuts it short (the probe goes again after
//!            the same interval)
//!
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
use super::shared::{Destination, ProbeGrant, Routed};
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
    /// Routes the attempt the limits admitted to an endpoint of the pool; when an ejected
    /// endpoint's health probe is due, the call also takes it and sends it beside its
    /// attempt (the probe first, the attempt at the next poll): the attempt waits for nothing.
    pub(super) fn route(&mut self, now: Instant, shared: &mut Shared) -> Option<Action> {
        if self.resume.is_some() {
            return self.route_resume(now, shared);
        }
        // A cut chat stream's continuation goes anywhere, as a retry does.
        let continuation = self.take_continuation();
        let template = match &self.request {
            Ok(r) => r,
            Err(e) => {
                let e = e.clone();
                self.return_breaker_permit(now);
                self.finish(now, Err(e));
                return None;
            }
        };
        let avoid = continuation.as_ref().and_then(|(_, avoid)| *avoid);
        let continuation = continuation.map(|(body, _)| template.with_body(body));
        let to = Destination {
            avoid,
            tried: &self.report.endpoints,
            affinity: self.affinity,
            template: continuation.as_ref().unwrap_or(template),
            operation: self.operation,
        };
        match shared.route(now, to) {
            Err(e) => {
                self.return_breaker_permit(now);
                self.finish(now, Err(e));
                None
            }
            Ok(Routed {
                id,
                request,
                ticket,
                probe,
            }) => {
                self.attempts += 1;
                self.report.attempts = self.attempts;
                let breaker = self.breaker_permit.take();
                let purpose = match continuation {
                    Some(_) => Purpose::Resume,
                    None => Purpose::Attempt,
                };
                let action = self.send(now, purpose, id, request, ticket, breaker, None);
                if purpose == Purpose::Resume {
                    // It holds the output from its send.
                    self.report.resumes += 1;
                    self.committed = self.exchanges.last().map(|e| e.id);
                } else if let (Some(delay), false) = (self.hedge.delay, self.hedge.decided) {
                    self.hedge.at = Some(saturating_add(now, delay));
                }
                match probe {
                    // The probe is sent first, the attempt right after (the next poll, no
                    // wait): a probe usually ends long before the call, and when both answer
                    // at once the probe's answer is taken first.
                    Some(probe) => {
                        self.queued = Some(Box::new(action));
                        Some(self.probe(now, probe))
                    }
                    None => Some(action),
                }
            }
        }
    }

    /// The rest of a cut stream, asked of the endpoint that holds it (no other has it: no
    /// health probe, no fail-over). The new exchange holds the output from its `Send`.
    fn route_resume(&mut self, now: Instant, shared: &mut Shared) -> Option<Action> {
        let routed = self
            .resume_request()
            .and_then(|(id, request)| shared.route_to(now, id, &request, self.operation));
        let (id, request, ticket) = match routed {
            Ok(r) => r,
            Err(e) => {
                self.return_breaker_permit(now);
                self.finish(now, Err(e));
                return None;
            }
        };
        self.attempts += 1;
        self.report.attempts = self.attempts;
        self.report.resumes += 1;
        let breaker = self.breaker_permit.take();
        let action = self.send(now, Purpose::Resume, id, request, ticket, breaker, None);
        self.committed = self.exchanges.last().map(|e| e.id);
        Some(action)
    }

    /// A health probe of an ejected endpoint, beside the call's attempt: its own exchange,
    /// with its own deadline (never past the call's).
    fn probe(&mut self, now: Instant, probe: ProbeGrant) -> Action {
        let deadline = saturating_add(now, probe.timeout);
        let deadline = self.deadline.map_or(deadline, |d| d.min(deadline));
        let attempt = self.next_id();
        let mut ex = Exchange::new(
            attempt,
            Purpose::HealthProbe,
            0,
            probe.id,
            probe.ticket,
            now,
        );
        ex.probe_deadline = Some(deadline);
        self.push_exchange(ex);
        Action::Send {
            attempt,
            purpose: Purpose::HealthProbe,
            request: Box::new(probe.request),
            deadline: Some(deadline),
            connect_timeout: Some(deadline.saturating_duration_since(now)),
        }
    }

    /// Adds an exchange: the first is kept inline in the call; a second (a hedge or a probe)
    /// is rare.
    fn push_exchange(&mut self, ex: Exchange) {
        self.exchanges.push(ex);
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
        // Also the endpoints a retry skips while it can (`Destination::tried`).
        self.report.endpoints.push(id);
        let number = self.attempts + self.report.hedges;
        let attempt = self.next_id();
        let mut ex = Exchange::new(attempt, purpose, number, id, ticket, now);
        ex.breaker = breaker;
        ex.slot = slot;
        self.push_exchange(ex);
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
            request: Box::new(request),
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
        let mut users = self.exchanges.iter().filter(|e| e.is_user());
        let racing = matches!(self.phase, Phase::Exchanging)
            && !self.output_started
            && matches!(
                (users.next(), users.next()),
                (Some(e), None) if e.purpose == Purpose::Attempt
                    && e.first_data.is_none()
                    && e.events.is_empty()
            );
        if !racing {
            return None;
        }
        let to = Destination {
            avoid: None,
            tried: &self.report.endpoints,
            affinity: self.affinity,
            template: self.request.as_ref().ok()?,
            operation: self.operation,
        };
        let grant = shared.grant_hedge(now, to)?;
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
        let raced = self.exchanges.iter().filter(|e| e.is_user()).count() > 1;
        // The losers of a race are closed; a health probe beside the attempt runs on.
        for j in (0..self.exchanges.len()).rev() {
            if self.exchanges[j].id != id && self.exchanges[j].is_user() {
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

#[cfg(test)]
mod tests {
    use super::super::wire::{chat_json, chat_stream, content, head, host, ms, pool, sse, Wire};
    use super::super::{Action, Event, HedgeEvent, Observation, Purpose};
    use crate::event::StreamEvent;
    use crate::policy::{EjectionConfig, HedgeConfig};

    #[test]
    fn a_retry_fails_over_at_once_to_an_endpoint_the_call_has_not_tried() {
        let mut w = Wire::new(pool(3));
        let mut a = w.call(chat_json());
        let first = w.next(&mut a, 0);
        let (attempt, first_host) = match &first {
            Action::Send { attempt, .. } => (*attempt, host(&first)),
            other => panic!("{other:?}"),
        };
        let busy = head(503, "application/json", &[("retry-after", "30")]);
        let (_, next) = w.answer(&mut a, 0, attempt, busy, &[], true);
        // No backoff, no waiting for that server's 30 s: another endpoint takes it now.
        assert!(matches!(next, Action::Send { .. }), "{next:?}");
        assert_ne!(host(&next), first_host);
        assert_eq!(a.report().endpoints.len(), 2);
    }

    #[test]
    fn a_health_probe_goes_beside_the_attempt_when_one_is_due() {
        let mut c = pool(2);
        c.policy.pool.ejection = EjectionConfig::default()
            .consecutive_connect_failures(1)
            .durations(ms(1000), ms(2000))
            .jitter_percent(0)
            .probe_interval(ms(100), ms(400))
            .health_probe(ms(50));
        c.policy.pool.ejection.probe.jitter_percent = 0;
        let mut w = Wire::new(c);
        // Refused connections on whichever endpoint the first call picks: ejected.
        let mut a = w.call(chat_json());
        let first = w.next(&mut a, 0);
        let (attempt, down) = match &first {
            Action::Send { attempt, .. } => (*attempt, host(&first)),
            other => panic!("{other:?}"),
        };
        let refused = Event::TransportError {
            attempt,
            kind: super::super::TransportErrorKind::Connect,
            message: "refused".into(),
            source: None,
        };
        w.handle(&mut a, 0, refused);
        let retry = w.next(&mut a, 0);
        assert_ne!(host(&retry), down, "failed over");
        let down_id = w
            .shared
            .endpoints(w.at(0))
            .iter()
            .find(|e| e.url.contains(&down))
            .map(|e| e.id)
            .unwrap();
        let status = |w: &Wire, t| {
            w.shared
                .endpoints(w.at(t))
                .into_iter()
                .find(|e| e.id == down_id)
                .unwrap()
        };
        assert_eq!(
            status(&w, 0).next_probe,
            Some(w.at(100)),
            "probed 100 ms later"
        );
        // After 100 ms the next call sends its own attempt elsewhere, and the probe beside it.
        let mut b = w.call(chat_json());
        let probe = w.next(&mut b, 100);
        let Action::Send {
            attempt: probe_id,
            purpose,
            request,
            ..
        } = probe
        else {
            panic!("expected the probe, got {probe:?}")
        };
        assert_eq!(purpose, Purpose::HealthProbe);
        assert_eq!(request.uri().path(), "/health");
        assert_eq!(request.uri().host(), Some(down.as_str()));
        let own = w.next(&mut b, 100);
        let Action::Send { purpose, .. } = &own else {
            panic!("expected the attempt, got {own:?}")
        };
        assert_eq!(*purpose, Purpose::Attempt, "at once, beside the probe");
        assert_ne!(
            host(&own),
            down,
            "the attempt never goes to the ejected endpoint"
        );
        assert_eq!(b.report().attempts, 1, "the probe is not an attempt");
        // It is refused again: the next probe after the schedule's second interval.
        w.handle(
            &mut b,
            110,
            Event::TransportError {
                attempt: probe_id,
                kind: super::super::TransportErrorKind::Connect,
                message: "refused".into(),
                source: None,
            },
        );
        assert!(matches!(w.next(&mut b, 110), Action::Wait { .. }));
        assert!(w.closed.contains(&probe_id), "the probe was closed");
        assert_eq!(status(&w, 110).next_probe, Some(w.at(310)));
        assert_eq!(status(&w, 110).failed_probes, 1);
        // The next probe is answered: readmitted at once, into slow start.
        let mut c = w.call(chat_json());
        let Action::Send {
            attempt: probe_id, ..
        } = w.next(&mut c, 310)
        else {
            panic!("expected the second probe")
        };
        let _ = w.next(&mut c, 310);
        w.handle(
            &mut c,
            312,
            Event::Response {
                attempt: probe_id,
                head: head(200, "application/json", &[]),
            },
        );
        assert!(matches!(w.next(&mut c, 312), Action::Wait { .. }));
        let s = status(&w, 312);
        assert_eq!(s.health, crate::policy::Health::Healthy);
        assert_eq!(s.slow_start, Some(0.1), "ramping from its minimum weight");
    }

    fn hedging(n: usize) -> Wire {
        let mut c = pool(n);
        c.policy.pool.hedge = Some(HedgeConfig::after(ms(200)).max_extra_percent(100));
        Wire::new(c)
    }

    #[test]
    fn the_hedge_goes_elsewhere_at_its_delay_and_the_first_event_wins() {
        let mut w = hedging(2);
        let mut a = w.call(chat_stream());
        let first = w.next(&mut a, 0);
        let (primary, slow) = match &first {
            Action::Send { attempt, .. } => (*attempt, host(&first)),
            other => panic!("{other:?}"),
        };
        w.handle(
            &mut a,
            0,
            Event::Response {
                attempt: primary,
                head: sse(),
            },
        );
        assert!(matches!(w.next(&mut a, 0), Action::ReadBody { .. }));
        match w.next(&mut a, 0) {
            Action::Wait { until, .. } => assert_eq!(until, Some(w.at(200)), "the hedge timer"),
            other => panic!("{other:?}"),
        }
        w.handle(&mut a, 200, Event::Timeout);
        let hedge = w.next(&mut a, 200);
        let Action::Send {
            attempt, purpose, ..
        } = &hedge
        else {
            panic!("expected the hedge, got {hedge:?}")
        };
        let attempt = *attempt;
        assert_eq!(*purpose, Purpose::Hedge);
        assert_ne!(host(&hedge), slow);
        let body = [content("fast").as_str(), "data: [DONE]\n\n"].concat();
        let (events, end) = w.answer(&mut a, 300, attempt, sse(), &[&body], true);
        assert!(
            matches!(&events[..], [StreamEvent::Content(t), StreamEvent::Done] if t == "fast"),
            "{events:?}"
        );
        assert!(matches!(end, Action::Done(Ok(_))));
        // The winner is closed at its `[DONE]`, the loser when the first event is handed out:
        // both before the terminal event.
        assert_eq!(w.closed, [attempt, primary]);
        let obs: Vec<_> = std::iter::from_fn(|| a.poll_observation()).collect();
        assert!(obs.contains(&Observation::Hedge {
            event: HedgeEvent::HedgeWon
        }));
        assert_eq!(w.shared.hedge_counts(), (1, 1));
        assert!(w
            .shared
            .endpoints(w.at(300))
            .iter()
            .all(|e| e.in_flight == 0));
    }

    #[test]
    fn no_hedge_without_a_free_slot_nor_for_one_endpoint() {
        let mut w = hedging(2);
        w.shared = crate::call::Shared::new(
            &{
                let mut c = w.config.clone();
                c.policy.max_concurrency = Some(1);
                c
            },
            1,
        );
        let mut a = w.call(chat_stream());
        w.stream_started(&mut a, 0);
        assert!(matches!(w.next(&mut a, 0), Action::Wait { .. }));
        w.handle(&mut a, 200, Event::Timeout);
        let next = w.next(&mut a, 200);
        assert!(
            matches!(next, Action::Wait { .. }),
            "no slot is free: no hedge, {next:?}"
        );
        assert_eq!(a.report().hedges, 0);

        let mut w = hedging(1);
        let mut a = w.call(chat_stream());
        w.stream_started(&mut a, 0);
        match w.next(&mut a, 0) {
            Action::Wait { until, .. } => assert_ne!(until, Some(w.at(200)), "no hedge timer"),
            other => panic!("{other:?}"),
        }
    }
}
