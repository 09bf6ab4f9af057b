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

    /// The pooled limit of a pool with a limit per endpoint, once validation lowered it: the
    /// client runs at most this many calls whatever its endpoints' limits (`None` while it
    /// follows their sum, and without per-endpoint limits). See [`crate::policy::PooledLimit`].
    pub fn pooled_limit(&self) -> Option<u32> {
        self.pool
            .pooled_limit()
            .and_then(crate::policy::PooledLimit::limit)
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::super::wire::{chat_stream, content, pool, sse, Wire, DONE};
    use super::super::super::{Action, AttemptId, Call, Event, TransportErrorKind};
    use crate::policy::{AdaptiveConfig, Health};

    /// A call of the test and where it stands.
    struct Running {
        call: Call,
        /// The attempt in flight (sent, not answered), or the open stream.
        attempt: Option<AttemptId>,
        streaming: bool,
        done: bool,
        /// Waiting out a backoff (no endpoint to fail over to): it keeps its slot.
        backoff: bool,
    }

    /// Polls `r` until it blocks; records the attempt it sent (probes are answered 200 at
    /// once: the endpoint is back).
    fn drive(w: &mut Wire, r: &mut Running, t: u64) {
        for _ in 0..64 {
            match w.next(&mut r.call, t) {
                Action::Send {
                    attempt, purpose, ..
                } => {
                    if purpose == super::super::super::Purpose::HealthProbe {
                        let head = super::super::super::wire::head(200, "text/plain", &[]);
                        w.handle(&mut r.call, t, Event::Response { attempt, head });
                    } else {
                        r.attempt = Some(attempt);
                        r.streaming = false;
                    }
                }
                Action::Done(_) => {
                    r.done = true;
                    return;
                }
                Action::Wait { reason, .. } => {
                    r.backoff = matches!(reason, super::super::super::WaitReason::Backoff(_));
                    return;
                }
                Action::ReadBody { .. } => return,
                Action::Emit(_) => {}
                Action::Close { .. } => {}
            }
        }
    }

    fn wake_all(w: &mut Wire, calls: &mut [Running], t: u64) {
        while let Some(waiter) = w.shared.poll_wake() {
            let _ = waiter;
            // The woken call is one of the waiting ones: every waiting call polls again (a
            // call not handed the slot just waits again).
            for r in calls.iter_mut().filter(|r| !r.done && r.attempt.is_none()) {
                r.call.handle(w.at(t), Event::PermitReleased);
                drive(w, r, t);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// No idle capacity while calls wait: whenever a call waits for a slot, every endpoint
        /// in rotation is at its limit in force, or the client at its pooled limit — through
        /// ejections, readmissions into slow start, endpoints added and removed.
        #[test]
        fn no_endpoint_in_rotation_has_room_while_calls_wait(
            ops in proptest::collection::vec((0u8..7, 0usize..64, 0u64..1_500), 1..120),
            seed in any::<u64>(),
        ) {
            let mut c = pool(3);
            c.policy.seed = Some(seed);
            c.policy.retry.max_retries = 1;
            c.policy.auto_concurrency = Some(AdaptiveConfig::bounded(1, 6, 3));
            c.policy.pool.ejection = c
                .policy
                .pool
                .ejection
                .consecutive_connect_failures(1)
                .max_ejected_percent(34);
            let mut w = Wire::new(c);
            let mut calls: Vec<Running> = Vec::new();
            let mut t = 0u64;
            let mut list = vec![0u8, 1, 2];
            for (op, k, wait) in ops {
                match op {
                    // A new call.
                    0 | 1 => {
                        let call = w.call(chat_stream());
                        let mut r = Running {
                            call,
                            attempt: None,
                            streaming: false,
                            done: false,
                            backoff: false,
                        };
                        drive(&mut w, &mut r, t);
                        calls.push(r);
                    }
                    // An attempt's stream starts (its first token).
                    2 => {
                        let open: Vec<usize> = (0..calls.len())
                            .filter(|i| calls[*i].attempt.is_some() && !calls[*i].streaming && !calls[*i].done)
                            .collect();
                        if let Some(&i) = open.get(k % open.len().max(1)) {
                            let r = &mut calls[i];
                            let a = r.attempt.unwrap();
                            let first = content("x");
                            let (_, _) = w.answer(&mut r.call, t, a, sse(), &[first.as_str()], false);
                            r.streaming = true;
                        }
                    }
                    // A stream ends.
                    3 => {
                        let open: Vec<usize> = (0..calls.len())
                            .filter(|i| calls[*i].streaming && !calls[*i].done)
                            .collect();
                        if let Some(&i) = open.get(k % open.len().max(1)) {
                            let r = &mut calls[i];
                            let a = r.attempt.unwrap();
                            let (_, end) = w.feed(&mut r.call, t, a, &[DONE], true);
                            r.done = matches!(end, Action::Done(_));
                            if !r.done {
                                drive(&mut w, r, t);
                            }
                        }
                    }
                    // An attempt is refused (its endpoint is down): ejected, the call fails
                    // over or ends.
                    4 => {
                        let open: Vec<usize> = (0..calls.len())
                            .filter(|i| calls[*i].attempt.is_some() && !calls[*i].streaming && !calls[*i].done)
                            .collect();
                        if let Some(&i) = open.get(k % open.len().max(1)) {
                            let r = &mut calls[i];
                            let attempt = r.attempt.take().unwrap();
                            let ev = Event::TransportError {
                                attempt,
                                kind: TransportErrorKind::Connect,
                                message: "refused".into(),
                                source: None,
                            };
                            w.handle(&mut r.call, t, ev);
                            drive(&mut w, r, t);
                        }
                    }
                    // The endpoint list changes.
                    5 => {
                        let host = (k % 5) as u8;
                        if let Some(p) = list.iter().position(|h| *h == host) {
                            if list.len() > 1 {
                                list.remove(p);
                            }
                        } else {
                            list.push(host);
                        }
                        let endpoints = list
                            .iter()
                            .map(|h| format!("http://10.0.0.{h}:8000/v1").into())
                            .collect();
                        w.shared.set_endpoints(w.at(t), endpoints).expect("a valid list");
                    }
                    // Time passes (slow start ramps; the shared state sees it, as it does at
                    // any call's step or the upkeep's tick); backoffs end.
                    _ => {
                        t += wait;
                        let now = w.at(t);
                        w.shared.observe(now);
                        for r in calls.iter_mut().filter(|r| r.backoff && !r.done) {
                            r.call.handle(now, Event::Timeout);
                            drive(&mut w, r, t);
                        }
                    }
                }
                wake_all(&mut w, &mut calls, t);
                // The room left on the endpoints in rotation is at most the slots held by calls
                // waiting out a backoff (none in the usual case: a retry fails over at once).
                let waiting = w.shared.waiting().unwrap_or(0);
                if waiting > 0 {
                    let endpoints = w.shared.endpoints(w.at(t));
                    let room: u32 = endpoints
                        .iter()
                        .filter(|e| e.health == Health::Healthy && !e.draining)
                        .map(|e| e.limit.unwrap_or(0).saturating_sub(e.in_flight))
                        .sum();
                    let parked = calls.iter().filter(|r| r.backoff && !r.done).count() as u32;
                    // Or the client is at its pooled limit (validated by use): it runs all
                    // it has shown it uses.
                    let at_pooled = w
                        .shared
                        .pooled_limit()
                        .is_some_and(|p| w.shared.in_flight().unwrap_or(0) >= p);
                    prop_assert!(
                        room <= parked || at_pooled,
                        "{waiting} calls wait while the endpoints in rotation have room for \
                         {room} ({parked} in backoff): {:?}; limit {:?}, in flight {:?}",
                        endpoints, w.shared.concurrency_limit(), w.shared.in_flight()
                    );
                }
            }
        }
    }
}
