//! What the pool shows: each endpoint's state ([`EndpointStatus`], `client.endpoints()`) and
//! its health changes, for logs ([`EndpointChange`]).

use std::time::{Duration, Instant};

use super::{EndpointId, Pool};
use crate::policy::ejection::{EjectReason, Health, HealthChange};
use crate::policy::AdaptiveLimit;

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
    /// Healthy, ejected until its next probe, or probing.
    pub health: Health,
    /// Why it was last ejected.
    pub reason: Option<EjectReason>,
    /// When its next probe goes, while it is ejected (the first call or background upkeep
    /// after that instant sends it).
    pub next_probe: Option<Instant>,
    /// Probes that failed since it was ejected.
    pub failed_probes: u32,
    /// Its share of its weight and limit while it ramps up after being added or readmitted
    /// (`None` once its slow start is over).
    pub slow_start: Option<f64>,
    /// Removed by `set_endpoints`: it takes no new request and leaves the list once its
    /// requests in flight have ended.
    pub draining: bool,
    /// Requests in flight on it (health probes included).
    pub in_flight: u32,
    /// Its own adaptive concurrency limit in force (several endpoints with
    /// `Concurrency::Auto`; scaled down during its slow start).
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

/// The most changes kept for [`Pool::poll_change`] (older ones are dropped).
const MAX_CHANGES: usize = 64;

impl Pool {
    /// Every endpoint's state at `now`, in the order of their ids (drained endpoints that
    /// left are not listed).
    pub fn status(&self, now: Instant) -> Vec<EndpointStatus> {
        let ss = &self.cfg.routing.slow_start;
        self.members
            .iter()
            .map(|m| EndpointStatus {
                id: m.id,
                url: m.route.url.clone(),
                weight: m.route.weight,
                health: m.ejector.health(),
                reason: m.ejector.reason(),
                next_probe: m.ejector.next_probe(),
                failed_probes: m.ejector.failed_probes(),
                slow_start: m
                    .ramping(now, ss)
                    .filter(|_| m.in_rotation())
                    .map(|e| ss.factor(e)),
                draining: m.draining,
                in_flight: m.in_flight,
                limit: if m.limit.is_some() {
                    m.limit_now(now, ss)
                } else {
                    None
                },
                latency: m.latency.get(),
                consecutive_failures: m.ejector.consecutive_failures(),
                times_ejected: m.ejector.times_ejected(),
                successes: m.successes,
                failures: m.failures,
            })
            .collect()
    }

    /// The raw adaptive limit of each endpoint (before slow start), by id.
    pub fn raw_limits(&self) -> Vec<(EndpointId, u32)> {
        self.members
            .iter()
            .filter_map(|m| m.limit.as_ref().map(|l| (m.id, AdaptiveLimit::limit(l))))
            .collect()
    }

    pub(super) fn push_change(&mut self, id: EndpointId, change: HealthChange) {
        if self.changes.len() >= MAX_CHANGES {
            self.changes.pop_front();
        }
        let url = self
            .member(id)
            .map(|m| m.route.url.clone())
            .unwrap_or_default();
        self.changes.push_back(EndpointChange { id, url, change });
    }

    /// The next change of an endpoint's health (ejected, probing, readmitted), for logs.
    pub fn poll_change(&mut self) -> Option<EndpointChange> {
        self.changes.pop_front()
    }

    /// How many endpoints are out of rotation (ejected or probing; drained ones not counted).
    pub fn ejected(&self) -> usize {
        self.members
            .iter()
            .filter(|m| !m.draining && m.ejector.is_ejected())
            .count()
    }
}
