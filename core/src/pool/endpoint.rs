//! One endpoint of the pool ([`Member`]): where its requests go (its [`Route`]: URL, key,
//! headers, weight) and what the pool knows of it — load, latency, health, its own adaptive
//! limit, its slow start, whether it is being drained.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use http::Request;

use super::EndpointId;
use crate::error::VllmError;
use crate::policy::ejection::Ejector;
use crate::policy::peak_ewma::PeakEwma;
use crate::policy::routing;
use crate::policy::slow_start::SlowStartConfig;
use crate::policy::AdaptiveLimit;
use crate::request::{check_header_value, ApiKey, BaseUrl, EndpointConfig, Operation};

/// Where an endpoint's requests go.
#[derive(Debug, Clone)]
pub(super) struct Route {
    pub(super) url: String,
    pub(super) base: Result<BaseUrl, VllmError>,
    pub(super) weight: u32,
    /// A hash of its URL: the same in every process (rendezvous hashing).
    pub(super) identity: u64,
    pub(super) auth: Option<HeaderValue>,
    pub(super) headers: HeaderMap,
}

impl Route {
    /// The route of `c`, or why no request could be sent to it. For the implicit endpoint
    /// (a client made with one base URL) requests are sent as built, so its URL is not
    /// checked here.
    pub(super) fn of(c: &EndpointConfig, implicit: bool) -> (Route, Option<VllmError>) {
        let mut invalid = c
            .invalid
            .as_ref()
            .map(|why| VllmError::InvalidRequest(why.clone()));
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
        let route = Route {
            identity: identity_of(&c.url),
            url: c.url.clone(),
            base,
            weight: c.weight.max(1),
            auth,
            headers: c.headers.clone(),
        };
        (route, invalid)
    }
}

/// The identity of an endpoint's URL: endpoint lists are matched by it.
pub(super) fn identity_of(url: &str) -> u64 {
    routing::stable_hash(url.trim().as_bytes())
}

/// One endpoint and what the pool knows of it.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) id: EndpointId,
    pub(super) route: Route,
    /// Its own adaptive concurrency limit (a pool of several with `Concurrency::Auto`).
    pub(super) limit: Option<AdaptiveLimit>,
    /// Requests in flight on it: attempts, hedges and health probes.
    pub(super) in_flight: u32,
    /// Of those, the user requests (attempts and hedges: each holds a client slot).
    pub(super) user_in_flight: u32,
    pub(super) latency: PeakEwma,
    pub(super) ejector: Ejector,
    pub(super) successes: u64,
    pub(super) failures: u64,
    /// Since when its share ramps up (it was added at run time, or readmitted).
    pub(super) ramp_from: Option<Instant>,
    /// Removed from the list: no new request goes to it; gone once nothing is in flight.
    pub(super) draining: bool,
}

impl Member {
    pub(super) fn new(id: EndpointId, route: Route, latency_decay: Duration) -> Member {
        Member {
            id,
            route,
            limit: None,
            in_flight: 0,
            user_in_flight: 0,
            latency: PeakEwma::new(latency_decay),
            ejector: Ejector::new(),
            successes: 0,
            failures: 0,
            ramp_from: None,
            draining: false,
        }
    }

    /// Whether it takes new attempts: healthy and not drained.
    pub(super) fn in_rotation(&self) -> bool {
        self.ejector.is_healthy() && !self.draining
    }

    /// How long it has been ramping at `now`, while its slow start lasts.
    pub(super) fn ramping(&self, now: Instant, ss: &SlowStartConfig) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.ramp_from?);
        ss.is_ramping(elapsed).then_some(elapsed)
    }

    /// Its adaptive limit in force at `now`: the limit scaled by its slow start.
    pub(super) fn limit_now(&self, now: Instant, ss: &SlowStartConfig) -> Option<u32> {
        let limit = self.limit.as_ref()?.limit();
        Some(match self.ramping(now, ss) {
            Some(elapsed) => ss.scale_limit(limit, elapsed),
            None => limit,
        })
    }

    /// Whether it is below its own limit (always, without one).
    pub(super) fn has_room(&self, now: Instant, ss: &SlowStartConfig) -> bool {
        self.limit_now(now, ss)
            .is_none_or(|l| self.user_in_flight < l)
    }

    /// Its weight for routing's draw, in thousandths, scaled by its slow start.
    pub(super) fn weight_milli(&self, now: Instant, ss: &SlowStartConfig) -> u32 {
        match self.ramping(now, ss) {
            Some(elapsed) => ss.scale_weight_milli(self.route.weight, elapsed),
            None => self.route.weight.max(1).saturating_mul(1000),
        }
    }

    /// The request of an attempt on it: `template` sent to its URL, with its key and headers.
    pub(super) fn request(
        &self,
        template: &Request<Bytes>,
        api: Operation,
    ) -> Result<Request<Bytes>, VllmError> {
        self.address(clone_request(template), template, api)
    }

    /// `req`, built as `template`, addressed to it: its URL, key and headers.
    pub(super) fn address(
        &self,
        mut req: Request<Bytes>,
        template: &Request<Bytes>,
        api: Operation,
    ) -> Result<Request<Bytes>, VllmError> {
        let base = self.route.base.as_ref().map_err(Clone::clone)?;
        *req.uri_mut() = base.uri_for(api, template)?;
        for (name, value) in &self.route.headers {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        if let Some(auth) = &self.route.auth {
            req.headers_mut().insert(AUTHORIZATION, auth.clone());
        }
        Ok(req)
    }
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
