//! The fleet side of [`Shared`]: time passing (slow start gives limits back), endpoint lists
//! that change at run time, and the health probes of ejected endpoints sent by the runner's
//! background upkeep when no call flows. Every decision is the pool's
//! ([`crate::pool`]); here it is applied to the client-wide limit.

use std::time::Instant;

use super::Shared;
use crate::error::VllmError;
use crate::policy::AdaptiveLimit;
use crate::pool::{
    Discovery, DnsDiscovery, EndpointConfig, EndpointsUpdate, Lookup, PoolConfig, ProbeJob,
    ProbeResult, Ticket,
};

impl Shared {
    /// Takes note of `now`: an endpoint in slow start gets more of its share as time passes,
    /// so the client-wide limit follows (waiters are handed the slots it frees).
    pub fn observe(&mut self, now: Instant) {
        self.pool.observe(now);
        self.sync_pool_limit();
    }

    /// The pool's configuration (routing, ejection, probes, slow start).
    pub fn pool_config(&self) -> PoolConfig {
        self.pool.config()
    }

    /// Replaces the endpoint list at `now`: endpoints in both lists keep their state, new
    /// ones start in slow start, removed ones drain (their calls in flight finish; no new call
    /// goes there). The client-wide limit and the waiting calls follow at once. An empty list
    /// or an unusable endpoint changes nothing and is an error. See
    /// [`Pool::set_endpoints`](crate::pool::Pool::set_endpoints).
    pub fn set_endpoints(
        &mut self,
        now: Instant,
        endpoints: Vec<EndpointConfig>,
    ) -> Result<EndpointsUpdate, VllmError> {
        let update = self.pool.set_endpoints(now, &endpoints)?;
        // A client built with one server and `Concurrency::Auto` has one client-wide adaptive
        // limit; once it has several endpoints, each gets its own, from where that one is.
        if let (Some((cfg, seed)), false) = (self.auto, self.pool.has_limits()) {
            if self.pool.active() >= 2 {
                let mut cfg = cfg;
                if let Some(a) = self.adaptive.take() {
                    cfg.initial = a.limit();
                }
                self.pool.with_adaptive_limits(cfg, seed);
            }
        }
        self.observe(now);
        Ok(update)
    }

    /// A health probe due now, for a transport with no call flowing (the runner's background
    /// upkeep): send `job.request`, wait for its head until `job.deadline`, then report with
    /// [`probe_done`](Self::probe_done). The endpoint is probing from now on (one probe at a
    /// time). `None` when no probe is due (see [`next_probe_at`](Self::next_probe_at)).
    pub fn poll_probe(&mut self, now: Instant) -> Option<ProbeJob> {
        self.observe(now);
        self.pool.probe_job(now)
    }

    /// How a background probe ended: judged by the failure table; a probe answered readmits
    /// its endpoint (into slow start), a failed one schedules the next.
    pub fn probe_done(&mut self, now: Instant, ticket: Ticket, result: ProbeResult) {
        let verdict = result.verdict(now);
        self.pool.record(now, ticket, verdict, None);
        self.pool.release(ticket);
        self.sync_pool_limit();
    }

    /// When the next probe of an ejected endpoint is due (`None`: nothing is ejected).
    pub fn next_probe_at(&self) -> Option<Instant> {
        self.pool.next_probe_at()
    }

    /// Each endpoint's own adaptive limit before slow start (several endpoints with
    /// `Concurrency::Auto`).
    pub fn endpoint_raw_limits(&self) -> Vec<(crate::pool::EndpointId, u32)> {
        self.pool.raw_limits()
    }

    /// The client-wide adaptive limit (one server, or before a pool got its endpoints).
    pub fn client_adaptive_limit(&self) -> Option<u32> {
        self.adaptive.as_ref().map(AdaptiveLimit::limit)
    }

    // --- DNS discovery -------------------------------------------------------------------

    /// Follows `config`'s hostname from now on (see [`crate::pool::discovery`]): the first
    /// lookup is due at once. Replaces any discovery set before.
    pub fn set_discovery(&mut self, config: DnsDiscovery) -> Result<(), VllmError> {
        self.discovery = Some(Discovery::new(config)?);
        Ok(())
    }

    /// Whether DNS discovery is on.
    pub fn has_discovery(&self) -> bool {
        self.discovery.is_some()
    }

    /// A name to resolve now, when discovery is on and a lookup is due: resolve it, then
    /// report with [`discovery_resolved`](Self::discovery_resolved).
    pub fn discovery_due(&mut self, now: Instant) -> Option<Lookup> {
        self.discovery.as_mut()?.due(now)
    }

    /// What a lookup found. When the set of addresses changed, the endpoint list becomes one
    /// endpoint per address ([`set_endpoints`](Self::set_endpoints): new ones in slow start,
    /// gone ones drain) and what changed is returned; a failed or empty lookup keeps the list.
    pub fn discovery_resolved(
        &mut self,
        now: Instant,
        found: Result<Vec<std::net::SocketAddr>, String>,
    ) -> Option<Result<EndpointsUpdate, VllmError>> {
        let list = self.discovery.as_mut()?.resolved(now, found)?;
        Some(self.set_endpoints(now, list))
    }
}
