//! The questions a call asks the shared state before it acts: may it have a concurrency slot,
//! a rate-limit slot, a breaker permit; which endpoint takes its attempt; may it retry, may it
//! hedge. Each answer is taken under the shared state's lock, in `Call::poll`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;

use super::Shared;
use crate::error::VllmError;
use crate::policy::{
    Admission, BreakerPermit, BreakerRejected, ConcurrencyPermit, Failure, HedgeConfig,
    RateLimited, RetryContext, RetryDecision, RetryPolicy, Rng, WaiterId,
};
use crate::pool::{EndpointId, Ticket};
use crate::request::{Operation, Template};

/// What a call asks when its next request needs an endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Destination<'a> {
    /// The endpoints the call already sent to (avoided while others are healthy).
    pub(crate) tried: &'a [EndpointId],
    /// An endpoint not to go to while another is in rotation, even one at its limit: the one
    /// that just cut the stream a continuation carries on.
    pub(crate) avoid: Option<EndpointId>,
    /// Its session key, if any.
    pub(crate) affinity: Option<u64>,
    /// Its request, built for the client's first endpoint.
    pub(crate) template: &'a Template,
    /// Its operation.
    pub(crate) operation: Operation,
}

/// Where an attempt goes, as [`Shared::route`] decided, and the health probe of an ejected
/// endpoint that goes beside it when one is due.
#[derive(Debug)]
pub(crate) struct Routed {
    /// The endpoint.
    pub(crate) id: EndpointId,
    /// The request, addressed to it.
    pub(crate) request: Request<Bytes>,
    /// Its hold on the endpoint.
    pub(crate) ticket: Ticket,
    /// A `GET /health` of an ejected endpoint whose probe is due, sent beside the attempt.
    pub(crate) probe: Option<ProbeGrant>,
}

/// A health probe a call sends beside its attempt.
#[derive(Debug)]
pub(crate) struct ProbeGrant {
    /// The endpoint probed.
    pub(crate) id: EndpointId,
    /// `GET /health` at its server's root.
    pub(crate) request: Request<Bytes>,
    /// The probe's hold on the endpoint.
    pub(crate) ticket: Ticket,
    /// How long it may take.
    pub(crate) timeout: Duration,
}

/// What a hedge was granted: its own concurrency slot and breaker permit, and where it goes.
#[derive(Debug)]
pub(crate) struct HedgeGrant {
    pub(crate) slot: Option<ConcurrencyPermit>,
    pub(crate) breaker: Option<BreakerPermit>,
    pub(crate) id: EndpointId,
    pub(crate) request: Request<Bytes>,
    pub(crate) ticket: Ticket,
}

impl Shared {
    /// A concurrency slot for a new call (`waiter: None`) or for one that waits in the queue
    /// (first come, first served: a waiting call takes only the slot handed to it). `None`
    /// when there is no limit.
    pub(crate) fn admit_slot(
        &mut self,
        now: Instant,
        waiter: Option<WaiterId>,
    ) -> Option<Admission> {
        // The limit in force now (an endpoint's slow start gives its share back with time).
        self.observe(now);
        let limiter = self.concurrency.as_mut()?;
        Some(match waiter {
            None => limiter.acquire(),
            Some(w) => match limiter.claim(w) {
                Some(permit) => Admission::Admitted(permit),
                None => Admission::Queued(w),
            },
        })
    }

    /// Charges `cost` tokens to the token rate limit (`None` when it is off).
    pub(crate) fn charge_tokens(
        &mut self,
        now: Instant,
        cost: u64,
    ) -> Option<Result<(), RateLimited>> {
        Some(self.tokens.as_mut()?.check(now, cost))
    }

    /// Gives `cost` tokens back to the token rate limit.
    pub(crate) fn refund_tokens(&mut self, now: Instant, cost: u64) {
        if let Some(t) = self.tokens.as_mut() {
            t.adjust(now, -i64::try_from(cost).unwrap_or(i64::MAX));
        }
    }

    /// One request of the client-side rate limit (`None` when it is off).
    pub(crate) fn check_rate(&mut self, now: Instant) -> Option<Result<(), RateLimited>> {
        Some(self.rate.as_mut()?.check(now, 1))
    }

    /// A breaker permit for an attempt of `operation` (`None` when breaking is off).
    pub(crate) fn breaker_permit(
        &mut self,
        operation: Operation,
        now: Instant,
    ) -> Option<Result<BreakerPermit, BreakerRejected>> {
        let answer = self.breaker_for(operation)?.try_acquire(now);
        self.collect_transitions();
        Some(answer)
    }

    /// Until when the server said its quota is spent, when that is later than `now`.
    pub(crate) fn server_gate(&self, now: Instant) -> Option<Instant> {
        self.server_gate.filter(|g| *g > now)
    }

    /// The client's base URL as parsed when the client was made, if `raw` is still it.
    pub(crate) fn parsed_base(&self, raw: &str) -> Option<&crate::request::BaseUrl> {
        self.pool.parsed_base(raw)
    }

    /// The headers every call built with `request` shares, built once per client.
    pub(crate) fn client_headers(
        &self,
        request: &crate::request::RequestConfig,
    ) -> Result<std::sync::Arc<http::HeaderMap>, VllmError> {
        self.pool.client_headers(request)
    }

    /// Why no request can be sent (an endpoint's URL, key or header is unusable).
    pub(crate) fn invalid(&self) -> Option<&VllmError> {
        self.pool.invalid()
    }

    /// Where an attempt of a call that already tried `tried` goes: a healthy endpoint it has
    /// not tried (by affinity or power of two choices; with probes made of user requests, an
    /// endpoint whose probe is due first). The request is `template` addressed to it, with its
    /// key and headers. When an ejected endpoint's health probe is due, it goes beside the
    /// attempt.
    pub(crate) fn route(&mut self, now: Instant, to: Destination<'_>) -> Result<Routed, VllmError> {
        self.observe(now);
        let id = self.pick(now, &to);
        let request = self.pool.request_from(id, to.template, to.operation)?;
        let ticket = self.pool.dispatch(now, id);
        let probe = self.take_probe(now, to.template);
        Ok(Routed {
            id,
            request,
            ticket,
            probe,
        })
    }

    /// The health probe due now, if any, as a call sends it (from its own request's headers).
    fn take_probe(&mut self, now: Instant, template: &Template) -> Option<ProbeGrant> {
        let timeout = self.pool_config().ejection.health_probe?;
        let id = self.pool.due_probe(now)?;
        let request = self.pool.health_request(id, &template.to_request()).ok()?;
        let ticket = self.pool.dispatch_probe(now, id)?;
        Some(ProbeGrant {
            id,
            request,
            ticket,
            timeout,
        })
    }

    /// A request on endpoint `id` itself, whatever its health (a resumed stream lives only
    /// there): `template` addressed to it, with its key and headers, and its hold on it.
    pub(crate) fn route_to(
        &mut self,
        now: Instant,
        id: EndpointId,
        template: &Request<Bytes>,
        operation: Operation,
    ) -> Result<(EndpointId, Request<Bytes>, Ticket), VllmError> {
        let request = self.pool.request(id, template, operation)?;
        let ticket = self.pool.dispatch(now, id);
        Ok((id, request, ticket))
    }

    fn pick(&mut self, now: Instant, to: &Destination<'_>) -> EndpointId {
        let picked = self.pool.pick(now, to.tried, to.affinity);
        let picked = match (picked, to.avoid) {
            (Some(p), Some(avoid)) if p == avoid => self.pool.pick_other(now, avoid).or(picked),
            _ => picked,
        };
        picked.unwrap_or(EndpointId::new(0))
    }

    /// Retry or give up after `failure` (the retry budget pays for a retry). `tried`: the
    /// endpoints the call already sent to, when the retry may go to another one.
    pub(crate) fn decide_retry(
        &mut self,
        policy: &RetryPolicy,
        failure: &Failure,
        ctx: RetryContext,
        tried: Option<&[EndpointId]>,
        rng: &mut Rng,
    ) -> RetryDecision {
        let failover = tried.is_some_and(|t| self.pool.can_fail_over(ctx.now, t));
        let ctx = ctx.with_failover(failover);
        policy.decide(failure, &ctx, rng, self.budget.as_mut())
    }

    /// A new call that may hedge: it earns its share of a hedge, and learns after how long
    /// to hedge (`None`: not with fewer than two endpoints, nor before the percentile is
    /// known).
    pub(crate) fn hedge_delay(&mut self, cfg: &HedgeConfig) -> Option<Duration> {
        if self.pool.active() < 2 {
            return None;
        }
        self.hedge.on_call(cfg);
        self.hedge.delay(cfg)
    }

    /// A hedge for a call that tried `tried`, when one is allowed now: another endpoint is
    /// healthy, a concurrency slot is free without queueing, the client's rate limit and the
    /// breaker let a request through, a hedge is in the bucket, and the retry budget pays for
    /// it as for a retry after a timeout. `None` otherwise (nothing is taken).
    pub(crate) fn grant_hedge(&mut self, now: Instant, to: Destination<'_>) -> Option<HedgeGrant> {
        // The limit in force (an adaptive one moves), not the configured one.
        let slot_free = match &self.concurrency {
            Some(c) => c.in_flight() < c.max() && c.waiting() == 0,
            None => true,
        };
        let budget_ok = self
            .budget
            .as_ref()
            .is_none_or(|b| b.tokens(now) >= b.retry_cost(true));
        if !slot_free || !budget_ok || !self.pool.can_fail_over(now, to.tried) {
            return None;
        }
        // A rate-limit slot is taken now: only refusals past this point waste one.
        if let Some(r) = self.rate.as_mut() {
            if r.check(now, 1).is_err() {
                return None;
            }
        }
        if !self.hedge.try_spend() {
            return None;
        }
        let breaker = match self.breaker_permit(to.operation, now) {
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => return None,
            None => None,
        };
        let id = self.pick(now, &to);
        let request = match self.pool.request_from(id, to.template, to.operation) {
            Ok(r) => r,
            Err(_) => {
                if let (Some(p), Some(b)) = (breaker, self.breaker_for(to.operation)) {
                    b.record(now, p, crate::policy::Outcome::Ignored);
                }
                return None;
            }
        };
        if let Some(b) = self.budget.as_mut() {
            let cost = b.retry_cost(true);
            b.try_withdraw(now, cost);
        }
        let slot = self.concurrency.as_mut().and_then(|c| c.try_acquire());
        let ticket = self.pool.dispatch(now, id);
        Some(HedgeGrant {
            slot,
            breaker,
            id,
            request,
            ticket,
        })
    }
}
