//! Several endpoints, one client: the pool's configuration ([`EndpointConfig`],
//! [`PoolConfig`]), its state ([`Pool`], kept in [`Shared`](crate::call::Shared)) and what it
//! shows ([`EndpointStatus`]).
//!
//! Each attempt of a call is routed (`pick.rs`, [`crate::policy::routing`]) to one
//! endpoint; what the attempt says about the endpoint feeds its latency estimate
//! ([`PeakEwma`](crate::policy::PeakEwma)) and its outlier detection
//! ([`Ejector`](crate::policy::Ejector)) (`record.rs`). An ejected endpoint is probed on a
//! short, growing schedule with `GET /health` and readmitted as soon as it answers
//! (`probe.rs`); a readmitted or newly added endpoint ramps up its share in slow start
//! ([`SlowStartConfig`](crate::policy::SlowStartConfig)). The list itself can change at run
//! time: new endpoints start in slow start, removed ones drain (`membership.rs`).
//!
//! A client made with one base URL is a pool of one: it is never ejected and behaves as
//! before.
//!
//! | file | what |
//! |---|---|
//! | `endpoint.rs` | one endpoint: its route (URL, key, headers, weight) and state |
//! | `pick.rs` | which endpoint takes an attempt |
//! | `record.rs` | dispatch, verdicts, release; the per-endpoint limits, their sum and the pooled limit that validates it |
//! | `probe.rs` | which ejected endpoint is due for a probe, its request, its verdict |
//! | `membership.rs` | `set_endpoints`: added, kept, drained |
//! | [`discovery`] | DNS discovery: when to resolve, what a resolved address list means |
//! | `status.rs` | `EndpointStatus`, health changes for logs |
//! | `prefix.rs` | session keys from a conversation's prefix |
//!
//! Failover is the call driver's: a retry skips the endpoints the call already tried while
//! others are available, and goes at once (no backoff: the other endpoint has not seen this
//! call). The commit point is the first event handed to the caller; after it nothing moves.
//!
//! Endpoint ids are given in order: the list the client was built with is `0, 1, …`, and each
//! endpoint added later by `set_endpoints` gets the next unused number. An id is never reused,
//! so a request in flight on a removed endpoint can never be confused with a new one.

pub mod discovery;
mod endpoint;
mod membership;
mod pick;
mod prefix;
mod probe;
mod record;
mod status;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Request};

pub use discovery::{Discovery, DnsDiscovery, Lookup};
pub(crate) use endpoint::clone_request;
use endpoint::{Member, Route};
pub use membership::EndpointsUpdate;
pub use prefix::{prefix_key, verdict_of};
pub use probe::{ProbeJob, ProbeResult};
pub use status::{EndpointChange, EndpointStatus};

use crate::error::VllmError;
use crate::policy::routing::{self, RoutingConfig};
use crate::policy::{AdaptiveConfig, AdaptiveLimit, EjectionConfig, PooledLimit, Rng};
pub use crate::request::EndpointConfig;
use crate::request::{BaseUrl, Operation, RequestConfig, Template};

/// How a pool routes, ejects, probes and ramps. Defaults: see [`RoutingConfig`] and
/// [`EjectionConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Routing, and the slow start of new and readmitted endpoints.
    pub routing: RoutingConfig,
    /// Outlier detection and probing.
    pub ejection: EjectionConfig,
    /// The hedged first token (default off).
    pub hedge: Option<crate::policy::hedge::HedgeConfig>,
}

/// An endpoint's id: its place in the list the client was built with, or the next unused
/// number for one added later (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub(crate) usize);

impl EndpointId {
    /// The endpoint at `index` of the list the client was built with (or the `index`-th
    /// endpoint ever added).
    pub fn new(index: usize) -> EndpointId {
        EndpointId(index)
    }

    /// Its number (its index in the list the client was built with, for those).
    pub fn index(self) -> usize {
        self.0
    }
}

/// A request's hold on an endpoint: returned when it is sent, given back when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Where the request went.
    pub id: EndpointId,
    /// Whether its verdict decides the endpoint's readmission (a probe).
    pub probe: bool,
    /// Whether it is a user request (an attempt or a hedge, holding a client slot) rather
    /// than a health probe.
    pub user: bool,
}

/// The state of a client's endpoints: routes, load, latency, health.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    members: Vec<Member>,
    /// The id the next endpoint added gets.
    next_id: usize,
    /// A client made with one base URL: requests are sent as built.
    implicit: bool,
    invalid: Option<VllmError>,
    cfg: PoolConfig,
    rng: Option<Rng>,
    changes: VecDeque<EndpointChange>,
    /// Per-endpoint adaptive limits: their configuration and seed, for endpoints added later.
    adaptive: Option<(AdaptiveConfig, u64)>,
    /// With per-endpoint limits, the client-wide one that bounds their sum once the client
    /// has left it unused for a while (congestion-window validation) or its first tokens
    /// together saw congestion ([`PooledLimit`]).
    pooled: Option<PooledLimit>,
    /// The client's request configuration, for the background probes' `GET /health`.
    probe_base: RequestConfig,
    /// The headers every call of the client shares, built once ([`Template`]).
    client_headers: Option<Result<Arc<HeaderMap>, VllmError>>,
    /// The latest instant seen.
    last_now: Option<Instant>,
}

impl Pool {
    /// The pool of `request`'s endpoints (its `endpoints`, or its `base_url` alone), with
    /// routing jitter from `seed`.
    pub fn new(request: &RequestConfig, cfg: PoolConfig, seed: u64) -> Pool {
        let implicit = request.endpoints.is_empty();
        let configs: Vec<EndpointConfig> = if implicit {
            vec![EndpointConfig::new(request.base_url.clone())]
        } else {
            request.endpoints.clone()
        };
        let mut invalid = None;
        let members: Vec<Member> = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (route, why) = Route::of(c, implicit);
                if let Some(e) = why {
                    invalid.get_or_insert(e);
                }
                Member::new(EndpointId(i), route, cfg.routing.latency_decay)
            })
            .collect();
        let mut probe_base = request.clone();
        probe_base.endpoints.clear();
        let client_headers = Some(request.client_headers().map(Arc::new));
        Pool {
            client_headers,
            next_id: members.len(),
            members,
            implicit,
            invalid,
            cfg,
            rng: Some(Rng::new(seed)),
            changes: VecDeque::new(),
            adaptive: None,
            pooled: None,
            probe_base,
            last_now: None,
        }
    }

    /// The first endpoint's base URL, parsed once, when it was given as `raw` (else `None`:
    /// the caller parses `raw` itself).
    pub(crate) fn parsed_base(&self, raw: &str) -> Option<&BaseUrl> {
        let first = self.members.first()?;
        if first.route.url != raw {
            return None;
        }
        first.route.base.as_ref().ok()
    }

    /// The headers every call built with `request` shares: those built with the pool when
    /// `request` gives the same, else built now.
    pub(crate) fn client_headers(
        &self,
        request: &RequestConfig,
    ) -> Result<Arc<HeaderMap>, VllmError> {
        match &self.client_headers {
            Some(built) if self.probe_base.same_headers(request) => built.clone(),
            _ => request.client_headers().map(Arc::new),
        }
    }

    /// Gives each endpoint its own adaptive concurrency limit (only for several endpoints:
    /// one endpoint keeps the client's), each starting at the configuration's `initial`.
    /// Returns whether it did.
    pub fn with_adaptive_limits(&mut self, cfg: AdaptiveConfig, seed: u64) -> bool {
        if self.members.len() < 2 {
            return false;
        }
        for m in self.members.iter_mut() {
            m.limit = Some(AdaptiveLimit::new(cfg, routing::mix(seed ^ m.id.0 as u64)));
        }
        self.adaptive = Some((cfg, seed));
        self.pooled = Some(PooledLimit::new(cfg, self.members.len()));
        true
    }

    /// The client-wide limit that bounds the per-endpoint limits' sum (with per-endpoint
    /// limits only): see [`PooledLimit`].
    pub fn pooled_limit(&self) -> Option<&PooledLimit> {
        self.pooled.as_ref()
    }

    /// Whether each endpoint has its own concurrency limit.
    pub fn has_limits(&self) -> bool {
        self.adaptive.is_some()
    }

    /// Whether the pool was configured (a default `Pool` has no endpoints).
    pub fn is_configured(&self) -> bool {
        !self.members.is_empty()
    }

    /// How many endpoints are listed (drained ones still finishing included).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// How many endpoints take new requests (listed and not drained).
    pub fn active(&self) -> usize {
        self.members.iter().filter(|m| !m.draining).count()
    }

    /// Whether the pool has no endpoints (not configured yet).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Why no request can be sent (an endpoint's URL, key or header is unusable).
    pub fn invalid(&self) -> Option<&VllmError> {
        self.invalid.as_ref()
    }

    /// The request of an attempt on `id`: `template` (built for the client's base URL) sent
    /// to that endpoint, with its key and headers.
    pub fn request(
        &self,
        id: EndpointId,
        template: &Request<Bytes>,
        api: Operation,
    ) -> Result<Request<Bytes>, VllmError> {
        if self.implicit {
            return Ok(clone_request(template));
        }
        match self.member(id) {
            Some(m) => m.request(template, api),
            None => Err(VllmError::Misuse(format!("no endpoint {}", id.0))),
        }
    }

    /// The request of an attempt on `id` from a call's `template`, as
    /// [`request`](Self::request).
    pub(crate) fn request_from(
        &self,
        id: EndpointId,
        template: &Template,
        api: Operation,
    ) -> Result<Request<Bytes>, VllmError> {
        if self.implicit {
            return Ok(template.to_request());
        }
        match self.member(id) {
            Some(m) => m.address(template.to_request(), template.request(), api),
            None => Err(VllmError::Misuse(format!("no endpoint {}", id.0))),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> PoolConfig {
        self.cfg
    }

    /// The latest instant the pool was told of.
    pub fn last_now(&self) -> Option<Instant> {
        self.last_now
    }

    /// Takes note of `now` (time never goes back).
    pub fn observe(&mut self, now: Instant) {
        if self.last_now.is_none_or(|l| now > l) {
            self.last_now = Some(now);
        }
    }

    fn member(&self, id: EndpointId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_mut(&mut self, id: EndpointId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }
}
