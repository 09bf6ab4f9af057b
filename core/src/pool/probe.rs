//! Probing ejected endpoints: which one is due, the `GET /health` request, and what its
//! answer says — judged by the failure table like every other answer.
//!
//! A due probe goes out one of two ways, whichever comes first: beside a call's own attempt
//! (the call that routes takes it; nothing waits for it), or from the runner's background
//! upkeep when no call flows ([`Shared::poll_probe`](crate::call::Shared::poll_probe)). Either
//! way the endpoint is `Probing` while it is in flight, so one probe at a time goes to it, and
//! the next one is not due before the schedule says
//! ([`ProbeSchedule`](crate::policy::ProbeSchedule)).

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Request, StatusCode};

use super::{EndpointId, Pool, Ticket};
use crate::call::{ResponseHead, TransportErrorKind};
use crate::error::VllmError;
use crate::policy::clock::saturating_add;
use crate::policy::{Failure, RateLimitSnapshot, TimeoutKind, Verdict};
use crate::request::Operation;

/// A health probe to send (from [`Shared::poll_probe`](crate::call::Shared::poll_probe)):
/// perform `request` within `deadline`, then report what happened with
/// [`Shared::probe_done`](crate::call::Shared::probe_done) and this `ticket`.
#[derive(Debug)]
pub struct ProbeJob {
    /// The endpoint probed.
    pub id: EndpointId,
    /// `GET /health` at its server's root, with its key and headers.
    pub request: Request<Bytes>,
    /// When to give up waiting for its head.
    pub deadline: Instant,
    /// The probe's hold on the endpoint.
    pub ticket: Ticket,
}

/// How a health probe ended, as the transport saw it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProbeResult {
    /// A response head arrived (its body is not needed).
    Answered {
        /// The status.
        status: StatusCode,
        /// The headers (a `Retry-After` on a 503 is honoured).
        headers: HeaderMap,
        /// The wall-clock time it arrived (for a `Retry-After` date).
        received_at: SystemTime,
    },
    /// The transport failed.
    Failed(TransportErrorKind),
    /// No head by the probe's deadline.
    TimedOut,
    /// The probe was abandoned before it ended (says nothing).
    Cancelled,
}

impl ProbeResult {
    /// The result of a probe whose head arrived.
    pub fn answered(head: &ResponseHead) -> ProbeResult {
        ProbeResult::Answered {
            status: head.status,
            headers: head.headers.clone(),
            received_at: head.received_at,
        }
    }

    /// What it says about the endpoint: a 2xx readmits it; every other outcome is judged by
    /// the failure table's ejection column, as for any request (a refused connection is a
    /// connection failure, a 503 with `Retry-After` a hint, a 4xx an answer: the server is
    /// alive).
    pub fn verdict(&self, now: Instant) -> Verdict {
        match self {
            ProbeResult::Answered { status, .. } if status.is_success() => Verdict::Success,
            ProbeResult::Answered {
                status,
                headers,
                received_at,
            } => {
                let received = *received_at;
                let hint = crate::policy::parse_retry_after(headers, received)
                    .map(|h| h.delay)
                    .max(RateLimitSnapshot::parse(headers, received).and_then(|r| r.wait()))
                    .map(|wait| saturating_add(now, wait));
                let failure = Failure::Status {
                    status: *status,
                    headers: headers.clone(),
                };
                failure.verdict(hint, true)
            }
            ProbeResult::Failed(kind) => {
                let failure = match kind {
                    TransportErrorKind::Connect => Failure::Connect,
                    TransportErrorKind::ConnectTimeout => Failure::Timeout {
                        kind: TimeoutKind::Connect,
                        output_started: false,
                    },
                    TransportErrorKind::Rejected => Failure::Rejected,
                    _ => Failure::Transport {
                        output_started: false,
                    },
                };
                failure.verdict(None, false)
            }
            ProbeResult::TimedOut => Failure::Timeout {
                kind: TimeoutKind::Attempt,
                output_started: false,
            }
            .verdict(None, false),
            ProbeResult::Cancelled => Failure::Cancelled.verdict(None, false),
        }
    }
}

impl Pool {
    /// Whether ejected endpoints are probed with `GET /health` (else with a user request).
    pub fn health_probes(&self) -> bool {
        self.cfg.ejection.health_probe.is_some()
    }

    /// An ejected endpoint whose `GET /health` probe is due at `now` (the one due longest),
    /// when health probes are on.
    pub fn due_probe(&self, now: Instant) -> Option<EndpointId> {
        if !self.health_probes() || self.members.len() < 2 {
            return None;
        }
        self.members
            .iter()
            .filter(|m| !m.draining && m.ejector.probe_ready(now))
            .min_by_key(|m| m.ejector.next_probe())
            .map(|m| m.id)
    }

    /// When the next probe is due (`None`: no endpoint is ejected, or one is being probed and
    /// none other waits).
    pub fn next_probe_at(&self) -> Option<Instant> {
        self.members
            .iter()
            .filter(|m| !m.draining)
            .filter_map(|m| m.ejector.next_probe())
            .min()
    }

    /// Whether `id`'s probe may go now.
    pub fn probe_ready(&self, now: Instant, id: EndpointId) -> bool {
        self.member(id)
            .is_some_and(|m| !m.draining && m.ejector.probe_ready(now))
    }

    /// A health probe goes to `id` at `now`: `None` when its probe is not due.
    pub fn dispatch_probe(&mut self, now: Instant, id: EndpointId) -> Option<Ticket> {
        if !self.probe_ready(now, id) {
            return None;
        }
        Some(self.dispatch_as(now, id, false))
    }

    /// `GET /health` at `id`'s server root, with its key and headers, from `template` (any
    /// request built by the client: its user agent and default headers are kept).
    pub fn health_request(
        &self,
        id: EndpointId,
        template: &Request<Bytes>,
    ) -> Result<Request<Bytes>, VllmError> {
        let mut req = self.request(id, template, Operation::Health)?;
        *req.method_mut() = http::Method::GET;
        *req.body_mut() = Bytes::new();
        req.headers_mut().remove(http::header::CONTENT_TYPE);
        req.headers_mut()
            .insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        Ok(req)
    }

    /// The due probe as a job for the background upkeep: its request (built from the
    /// client's own configuration) and deadline; the endpoint is probing from now on.
    pub fn probe_job(&mut self, now: Instant) -> Option<ProbeJob> {
        let timeout = self.cfg.ejection.health_probe?;
        let id = self.due_probe(now)?;
        let template = self.probe_base.build(Operation::Health, None).ok()?;
        let request = self.health_request(id, &template).ok()?;
        let ticket = self.dispatch_probe(now, id)?;
        Some(ProbeJob {
            id,
            request,
            deadline: saturating_add(now, timeout),
            ticket,
        })
    }
}
