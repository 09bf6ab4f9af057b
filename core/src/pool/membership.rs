//! Endpoints that come and go: [`Pool::set_endpoints`] replaces the list at run time.
//!
//! ```text
//!   new list ──▶ matched with the current endpoints by URL
//!     in both        kept: state, health, latency, limit stay; weight, key, headers updated
//!     only new       added: a new id, in slow start from now, its adaptive limit seeded
//!                    with the median of the others' (replicas are usually alike)
//!     only current   draining: no new request goes there, requests in flight finish; it
//!                    leaves the list when its last one ends (at once when none runs)
//! ```
//!
//! The list is checked as a whole first: an empty list or an unusable endpoint (a URL, key or
//! header that cannot be sent) changes nothing and is an error. A URL given twice counts once.
//! An endpoint removed and given again before it left is kept (no longer drained).

use std::time::Instant;

use super::endpoint::{identity_of, Member, Route};
use super::{EndpointId, Pool};
use crate::error::VllmError;
use crate::policy::routing;
use crate::policy::AdaptiveLimit;
use crate::request::EndpointConfig;

/// What [`Pool::set_endpoints`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointsUpdate {
    /// Endpoints new to the pool (in slow start).
    pub added: Vec<EndpointId>,
    /// Endpoints in both lists (their state is kept).
    pub kept: Vec<EndpointId>,
    /// Endpoints no longer listed that still have requests in flight: they finish them, take
    /// no new one, and leave the list when the last ends.
    pub draining: Vec<EndpointId>,
    /// Endpoints no longer listed that had nothing in flight: gone at once.
    pub removed: Vec<EndpointId>,
}

impl EndpointsUpdate {
    /// Whether the list changed at all.
    pub fn is_change(&self) -> bool {
        !(self.added.is_empty() && self.draining.is_empty() && self.removed.is_empty())
    }
}

impl Pool {
    /// Replaces the endpoint list at `now`. Endpoints are matched by URL: those in both lists
    /// are kept (state, health, latency and limit stay; weight, key and headers are updated);
    /// new ones are added in slow start from `now`, with the next unused id and an adaptive
    /// limit seeded with the median of the others'; the others drain — no new request goes to
    /// them, and they leave the list when their last request ends (at once when none runs).
    /// The list is checked as a whole first: an empty list or an unusable endpoint changes
    /// nothing and is an error. A URL given twice counts once; an endpoint removed and given
    /// again before it left is kept.
    pub fn set_endpoints(
        &mut self,
        now: Instant,
        list: &[EndpointConfig],
    ) -> Result<EndpointsUpdate, VllmError> {
        self.observe(now);
        if list.is_empty() {
            return Err(VllmError::InvalidRequest(
                "set_endpoints needs at least one endpoint".into(),
            ));
        }
        let mut routes: Vec<Route> = Vec::with_capacity(list.len());
        for c in list {
            let (route, invalid) = Route::of(c, false);
            if let Some(e) = invalid {
                return Err(e);
            }
            if !routes.iter().any(|r| r.identity == route.identity) {
                routes.push(route);
            }
        }
        let mut update = EndpointsUpdate::default();
        // The limit a new endpoint starts from: the median of the others' in rotation.
        let mut limits: Vec<u32> = self
            .members
            .iter()
            .filter(|m| m.in_rotation())
            .filter_map(|m| m.limit.as_ref().map(AdaptiveLimit::limit))
            .collect();
        limits.sort_unstable();
        let seed_limit = limits.get(limits.len() / 2).copied();
        let implicit = std::mem::replace(&mut self.implicit, false);
        for m in &mut self.members {
            match routes
                .iter()
                .find(|r| r.identity == identity_of(&m.route.url))
            {
                Some(route) if !(implicit && m.route.base.is_err()) => {
                    m.route = route.clone();
                    m.draining = false;
                    update.kept.push(m.id);
                }
                _ => {
                    m.draining = true;
                    if m.in_flight == 0 {
                        update.removed.push(m.id);
                    } else {
                        update.draining.push(m.id);
                    }
                }
            }
        }
        self.members.retain(|m| !(m.draining && m.in_flight == 0));
        for route in routes {
            if self
                .members
                .iter()
                .any(|m| !m.draining && m.route.identity == route.identity)
            {
                continue;
            }
            let id = EndpointId(self.next_id);
            self.next_id += 1;
            let mut m = Member::new(id, route, self.cfg.routing.latency_decay);
            m.ramp_from = Some(now);
            if let Some((cfg, seed)) = self.adaptive {
                let mut cfg = cfg;
                if let Some(l) = seed_limit {
                    cfg.initial = l;
                }
                m.limit = Some(AdaptiveLimit::new(cfg, routing::mix(seed ^ id.0 as u64)));
            }
            self.members.push(m);
            update.added.push(id);
        }
        let active = self.active();
        if let Some(p) = self.pooled.as_mut() {
            p.set_endpoints(active);
        }
        // Every endpoint listed is usable now.
        self.invalid = None;
        Ok(update)
    }
}
