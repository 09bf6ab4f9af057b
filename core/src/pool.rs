//! Several endpoints, one client: the pool's configuration ([`EndpointConfig`],
//! [`PoolConfig`]), its state ([`Pool`], kept in [`Shared`](crate::call::Shared)) and what it
//! shows ([`EndpointStatus`]).
//!
//! Each attempt of a call is routed ([`routing`]) to one endpoint;
//! what the attempt says about the endpoint feeds its latency estimate
//! ([`PeakEwma`]) and its outlier detection ([`Ejector`]). A client made with one base URL is
//! a pool of one: it is never ejected and behaves as before.
//!
//! Failover is the call driver's: a retry skips the endpoints the call already tried while
//! others are available, and goes at once (no backoff: the other endpoint has not seen this
//! call). The commit point is the first event handed to the caller; after it nothing moves.

use std::collections::VecDeque;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use http::{Request, Uri};

use crate::error::VllmError;
use crate::policy::ejection::{
    EjectReason, EjectionConfig, Ejector, Health, HealthChange, Verdict,
};
use crate::policy::peak_ewma::PeakEwma;
use crate::policy::routing::{self, Candidate, RoutingConfig};
use crate::policy::{AdaptiveConfig, AdaptiveLimit, Failure, LimitChange, LimitSample, Load, Rng};
pub use crate::request::EndpointConfig;
use crate::request::{check_header_value, ApiKey, BaseUrl, Operation, RequestConfig};

/// How a pool routes and ejects. Defaults: see [`RoutingConfig`] and [`EjectionConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Routing.
    pub routing: RoutingConfig,
    /// Outlier detection.
    pub ejection: EjectionConfig,
    /// The hedged first token (default off).
    pub hedge: Option<crate::policy::hedge::HedgeConfig>,
}

/// An endpoint's place in the pool (the order they were given in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub(crate) usize);

impl EndpointId {
    /// The endpoint at `index` of the list the client was given.
    pub fn new(index: usize) -> EndpointId {
        EndpointId(index)
    }

    /// Its index in the list the client was given.
    pub fn index(self) -> usize {
        self.0
    }
}

/// What one endpoint looks like now ([`Shared::endpoints`](crate::call::Shared::endpoints),
/// `client.endpoints()`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EndpointStatus {
    /// Which one.
    pub id: EndpointId,
    /// Its base URL as given.
    pub url: String,
    /// Its weight.
    pub weight: u32,
    /// Healthy, ejected until when, or probing.
    pub health: Health,
    /// Why it was last ejected.
    pub reason: Option<EjectReason>,
    /// Attempts in flight on it.
    pub in_flight: u32,
    /// Its own adaptive concurrency limit (several endpoints with `Concurrency::Auto`).
    pub limit: Option<u32>,
    /// Its latency estimate (time to first token, or to the head of a JSON answer).
    pub latency: Option<Duration>,
    /// Server failures in a row.
    pub consecutive_failures: u32,
    /// Times ejected (decays while healthy).
    pub times_ejected: u32,
    /// Attempts that succeeded on it.
    pub successes: u64,
    /// Attempts that failed on it through its fault.
    pub failures: u64,
}

/// A change of an endpoint's health, for logs ([`Shared::poll_endpoint_change`](crate::call::Shared::poll_endpoint_change)).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointChange {
    /// Which endpoint.
    pub id: EndpointId,
    /// Its URL.
    pub url: String,
    /// What changed.
    pub change: HealthChange,
}

/// An attempt's hold on an endpoint: returned when it is sent, given back when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Where the attempt went.
    pub id: EndpointId,
    /// Whether it is the probe after an ejection.
    pub probe: bool,
}

#[derive(Debug, Clone)]
struct Route {
    url: String,
    base: Result<BaseUrl, VllmError>,
    weight: u32,
    identity: u64,
    auth: Option<HeaderValue>,
    headers: HeaderMap,
}

#[derive(Debug, Clone)]
struct Member {
    route: Route,
    /// Its own adaptive concurrency limit (a pool of several with `Concurrency::Auto`).
    limit: Option<AdaptiveLimit>,
    in_flight: u32,
    latency: PeakEwma,
    ejector: Ejector,
    successes: u64,
    failures: u64,
}

/// The state of a client's endpoints: routes, load, latency, health.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    members: Vec<Member>,
    /// A client made with one base URL: requests are sent as built.
    implicit: bool,
    invalid: Option<VllmError>,
    cfg: PoolConfig,
    rng: Option<Rng>,
    changes: VecDeque<EndpointChange>,
}

/// The latency an outlier kept in rotation counts as, at least.
const FAILURE_PENALTY: Duration = Duration::from_secs(1);

/// The most changes kept for [`Pool::poll_change`] (older ones are dropped).
const MAX_CHANGES: usize = 64;

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
        let members = configs
            .into_iter()
            .map(|c| {
                if let Some(why) = &c.invalid {
                    invalid.get_or_insert(VllmError::InvalidRequest(why.clone()));
                }
                let auth = match &c.api_key {
                    Some(key) => match bearer(key) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            invalid.get_or_insert(e);
                            None
                        }
                    },
                    None => None,
                };
                let base = BaseUrl::parse(&c.url);
                if !implicit {
                    if let Err(e) = &base {
                        invalid.get_or_insert(e.clone());
                    }
                }
                Member {
                    route: Route {
                        identity: routing::stable_hash(c.url.trim().as_bytes()),
                        url: c.url,
                        base,
                        weight: c.weight.max(1),
                        auth,
                        headers: c.headers,
                    },
                    limit: None,
                    in_flight: 0,
                    latency: PeakEwma::new(cfg.routing.latency_decay),
                    ejector: Ejector::new(),
                    successes: 0,
                    failures: 0,
                }
            })
            .collect();
        Pool {
            members,
            implicit,
            invalid,
            cfg,
            rng: Some(Rng::new(seed)),
            changes: VecDeque::new(),
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

    /// Gives each endpoint its own adaptive concurrency limit (only for several endpoints:
    /// one endpoint keeps the client's). Returns whether it did.
    pub fn with_adaptive_limits(&mut self, cfg: AdaptiveConfig, seed: u64) -> bool {
        if self.members.len() < 2 {
            return false;
        }
        for (i, m) in self.members.iter_mut().enumerate() {
            m.limit = Some(AdaptiveLimit::new(cfg, routing::mix(seed ^ i as u64)));
        }
        true
    }

    /// Whether each endpoint has its own concurrency limit.
    pub fn has_limits(&self) -> bool {
        self.members.iter().any(|m| m.limit.is_some())
    }

    /// The client-wide limit when each endpoint has its own: the sum over the endpoints in
    /// rotation (`None` without per-endpoint limits).
    pub fn total_limit(&self) -> Option<u32> {
        if !self.has_limits() {
            return None;
        }
        let sum = self
            .members
            .iter()
            .filter(|m| m.ejector.is_healthy())
            .filter_map(|m| m.limit.as_ref().map(AdaptiveLimit::limit))
            .fold(0u32, u32::saturating_add);
        // Never 0 while an endpoint is out: the probe and the least-bad endpoint still run.
        Some(sum.max(1))
    }

    /// Feeds `id`'s own limit one sample (`waiting`: calls waiting for a slot client-wide).
    pub fn record_limit(
        &mut self,
        now: Instant,
        id: EndpointId,
        sample: LimitSample,
        waiting: usize,
    ) -> Option<LimitChange> {
        let m = self.members.get_mut(id.0)?;
        let load = Load {
            in_flight: m.in_flight,
            waiting,
        };
        let limit = m.limit.as_mut()?;
        let change = limit.record(now, sample, load);
        while limit.poll_change().is_some() {}
        change
    }

    fn has_room(m: &Member) -> bool {
        m.limit.as_ref().is_none_or(|l| m.in_flight < l.limit())
    }

    /// Whether the pool was configured (a default `Pool` has no endpoints).
    pub fn is_configured(&self) -> bool {
        !self.members.is_empty()
    }

    /// How many endpoints.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the pool has no endpoints (not configured yet).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Why no request can be sent (an endpoint's URL, key or header is unusable).
    pub fn invalid(&self) -> Option<&VllmError> {
        self.invalid.as_ref()
    }

    /// Picks the endpoint for an attempt at `now`: a healthy endpoint the call has not
    /// `tried` (an endpoint whose ejection is over, for its one probe, first), by affinity or
    /// power of two choices; when every healthy one was tried, any healthy one; when none is
    /// healthy, the one whose ejection ends first. `None` only for an empty pool.
    pub fn pick(
        &mut self,
        now: Instant,
        tried: &[EndpointId],
        key: Option<u64>,
    ) -> Option<EndpointId> {
        if self.members.len() <= 1 {
            return (!self.members.is_empty()).then_some(EndpointId(0));
        }
        let untried = |i: usize| !tried.contains(&EndpointId(i));
        if let Some(i) = (0..self.members.len()).find(|&i| {
            let m = &self.members[i];
            untried(i) && m.ejector.probe_ready(now) && Self::has_room(m)
        }) {
            return Some(EndpointId(i));
        }
        // Healthy, below its own limit (when it has one), not tried by this call; then tried
        // ones; then, when every endpoint is at its limit (a limit just lowered below what
        // runs), any healthy one.
        let mut candidates = self.candidates(now, |i, m| {
            untried(i) && m.ejector.is_healthy() && Self::has_room(m)
        });
        if candidates.is_empty() {
            candidates = self.candidates(now, |_, m| m.ejector.is_healthy() && Self::has_room(m));
        }
        if candidates.is_empty() {
            candidates = self.candidates(now, |_, m| m.ejector.is_healthy());
        }
        if candidates.is_empty() {
            // Never reached while the share of ejected endpoints is capped below the whole
            // pool; kept so that a pool in any state still answers.
            return self
                .members
                .iter()
                .enumerate()
                .min_by_key(|(_, m)| match m.ejector.health() {
                    Health::Ejected { until } => (0, Some(until)),
                    _ => (1, None),
                })
                .map(|(i, _)| EndpointId(i));
        }
        let bound = self.cfg.routing.affinity_bound;
        let rng = self.rng.get_or_insert_with(|| Rng::new(0));
        routing::choose(&candidates, key, bound, rng).map(EndpointId)
    }

    /// Whether `id`'s ejection is over and its one probe may go now.
    pub fn probe_ready(&self, now: Instant, id: EndpointId) -> bool {
        self.members
            .get(id.0)
            .is_some_and(|m| m.ejector.probe_ready(now))
    }

    /// `GET /health` at `id`'s server root, with its key and headers (a health probe).
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

    /// Whether an attempt could go to a healthy endpoint the call has not tried (a retry then
    /// fails over at once).
    pub fn can_fail_over(&self, now: Instant, tried: &[EndpointId]) -> bool {
        self.members.len() > 1
            && self.members.iter().enumerate().any(|(i, m)| {
                !tried.contains(&EndpointId(i))
                    && (m.ejector.is_healthy() || m.ejector.probe_ready(now))
            })
    }

    fn candidates(
        &self,
        now: Instant,
        eligible: impl Fn(usize, &Member) -> bool,
    ) -> Vec<Candidate> {
        // Unknown endpoints are seeded optimistically, at the best latency seen anywhere.
        let best = self
            .members
            .iter()
            .filter_map(|m| m.latency.get())
            .min()
            .map_or(1.0, |d| d.as_secs_f64());
        self.members
            .iter()
            .enumerate()
            .filter(|(i, m)| eligible(*i, m))
            .map(|(i, m)| Candidate {
                index: i,
                identity: m.route.identity,
                weight: m.route.weight,
                in_flight: m.in_flight,
                latency: m.latency.relaxed(now, best).unwrap_or(best),
            })
            .collect()
    }

    /// An attempt goes to `id` at `now`.
    pub fn dispatch(&mut self, now: Instant, id: EndpointId) -> Ticket {
        let probe = match self.members.get_mut(id.0) {
            Some(m) => {
                m.in_flight = m.in_flight.saturating_add(1);
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
            }
            None => false,
        };
        Ticket { id, probe }
    }

    /// The attempt holding `ticket` ended (its response was read, failed or dropped).
    pub fn release(&mut self, ticket: Ticket) {
        if let Some(m) = self.members.get_mut(ticket.id.0) {
            m.in_flight = m.in_flight.saturating_sub(1);
        }
    }

    /// What the attempt holding `ticket` said about its endpoint, with its latency sample
    /// (time to first token, or to the head of a JSON answer) when it succeeded.
    pub fn record(
        &mut self,
        now: Instant,
        ticket: Ticket,
        verdict: Verdict,
        sample: Option<Duration>,
    ) {
        let n = self.members.len();
        let ejected = self
            .members
            .iter()
            .filter(|m| m.ejector.is_ejected())
            .count();
        // A pool of one never ejects: the client behaves as with one server.
        let may_eject = ejected < self.cfg.ejection.max_ejected(n);
        let cfg = self.cfg.ejection;
        let rng = self.rng.get_or_insert_with(|| Rng::new(0));
        let Some(m) = self.members.get_mut(ticket.id.0) else {
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
            self.push_change(ticket.id, change);
        }
    }

    fn push_change(&mut self, id: EndpointId, change: HealthChange) {
        if self.changes.len() >= MAX_CHANGES {
            self.changes.pop_front();
        }
        let url = self
            .members
            .get(id.0)
            .map(|m| m.route.url.clone())
            .unwrap_or_default();
        self.changes.push_back(EndpointChange { id, url, change });
    }

    /// The next change of an endpoint's health (ejected, probing, readmitted), for logs.
    pub fn poll_change(&mut self) -> Option<EndpointChange> {
        self.changes.pop_front()
    }

    /// The request of an attempt on `id`: `template` (built for the client's base URL) sent
    /// to that endpoint, with its key and headers.
    pub fn request(
        &self,
        id: EndpointId,
        template: &Request<Bytes>,
        api: Operation,
    ) -> Result<Request<Bytes>, VllmError> {
        let mut req = clone_request(template);
        if self.implicit {
            return Ok(req);
        }
        let Some(m) = self.members.get(id.0) else {
            return Err(VllmError::Misuse(format!("no endpoint {}", id.0)));
        };
        let base = m.route.base.as_ref().map_err(Clone::clone)?;
        let uri: Uri = base
            .url_for(api, template)
            .parse()
            .map_err(|e| VllmError::InvalidRequest(format!("cannot build the URL: {e}")))?;
        *req.uri_mut() = uri;
        for (name, value) in &m.route.headers {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        if let Some(auth) = &m.route.auth {
            req.headers_mut().insert(AUTHORIZATION, auth.clone());
        }
        Ok(req)
    }

    /// Every endpoint's state at `now`.
    pub fn status(&self, _now: Instant) -> Vec<EndpointStatus> {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| EndpointStatus {
                id: EndpointId(i),
                url: m.route.url.clone(),
                weight: m.route.weight,
                health: m.ejector.health(),
                reason: m.ejector.reason(),
                in_flight: m.in_flight,
                limit: m.limit.as_ref().map(AdaptiveLimit::limit),
                latency: m.latency.get(),
                consecutive_failures: m.ejector.consecutive_failures(),
                times_ejected: m.ejector.times_ejected(),
                successes: m.successes,
                failures: m.failures,
            })
            .collect()
    }

    /// How many endpoints are out of rotation (ejected or probing).
    pub fn ejected(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.ejector.is_ejected())
            .count()
    }
}

/// What a failed attempt says about its endpoint: the ejection column of the failure table
/// ([`crate::policy::failure`]). `hint` is when the server asked to be called again (its
/// `Retry-After` or rate-limit reset), `head` whether a response head arrived.
pub fn verdict_of(failure: &Failure, hint: Option<Instant>, head: bool) -> Verdict {
    failure.verdict(hint, head)
}

/// The session key of a chat derived from its conversation's prefix: the model and the
/// messages up to and including the first user message, which every later turn of the same
/// conversation repeats. `None` for a body without messages.
pub fn prefix_key(body: &serde_json::Value) -> Option<u64> {
    let messages = body.get("messages")?.as_array()?;
    let end = messages
        .iter()
        .position(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
        .map_or(messages.len(), |i| i + 1);
    let mut bytes = body
        .get("model")
        .map(|m| m.to_string())
        .unwrap_or_default()
        .into_bytes();
    for m in &messages[..end] {
        bytes.push(0);
        bytes.extend_from_slice(m.to_string().as_bytes());
    }
    (!messages.is_empty()).then(|| routing::stable_hash(&bytes))
}

fn bearer(key: &ApiKey) -> Result<HeaderValue, VllmError> {
    let bad = || {
        VllmError::InvalidRequest(
            "an endpoint's API key has characters a header cannot carry".into(),
        )
    };
    let mut v = HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| bad())?;
    v.set_sensitive(true);
    check_header_value("authorization", &v).map_err(|_| bad())?;
    Ok(v)
}

/// A copy of a request (the body is shared `Bytes`).
pub(crate) fn clone_request(r: &Request<Bytes>) -> Request<Bytes> {
    let mut b = Request::builder()
        .method(r.method().clone())
        .uri(r.uri().clone())
        .version(r.version());
    if let Some(h) = b.headers_mut() {
        *h = r.headers().clone();
    }
    b.body(r.body().clone())
        .unwrap_or_else(|_| Request::new(r.body().clone()))
}
