//! Which endpoint takes an attempt: the candidates the pool offers to
//! [`routing::choose`](crate::policy::routing::choose), in order of preference.

use std::time::Instant;

use super::endpoint::Member;
use super::{EndpointId, Pool};
use crate::policy::ejection::Health;
use crate::policy::routing::{self, Candidate};
use crate::policy::Rng;

impl Pool {
    /// Picks the endpoint for an attempt at `now`: a healthy endpoint the call has not
    /// `tried` and below its own limit, by affinity or power of two choices (weights scaled by
    /// slow start); then one it tried; then, when every endpoint is at its limit (a limit just
    /// lowered below what runs), any healthy one. Drained endpoints never take an attempt
    /// while another endpoint exists. With probes made of user requests
    /// ([`EjectionConfig::probe_with_requests`](crate::policy::EjectionConfig::probe_with_requests)),
    /// an endpoint whose probe is due comes first: the attempt is its probe. When none is
    /// healthy, the one whose ejection ends first. `None` only for an empty pool.
    pub fn pick(
        &mut self,
        now: Instant,
        tried: &[EndpointId],
        key: Option<u64>,
    ) -> Option<EndpointId> {
        if self.members.len() <= 1 {
            return self.members.first().map(|m| m.id);
        }
        let ss = self.cfg.routing.slow_start;
        let untried = |m: &Member| !tried.contains(&m.id);
        if !self.health_probes() {
            if let Some(m) = self.members.iter().find(|m| {
                untried(m) && !m.draining && m.ejector.probe_ready(now) && m.has_room(now, &ss)
            }) {
                return Some(m.id);
            }
        }
        let mut candidates = self.candidates(now, |m| {
            untried(m) && m.in_rotation() && m.has_room(now, &ss)
        });
        if candidates.is_empty() {
            candidates = self.candidates(now, |m| m.in_rotation() && m.has_room(now, &ss));
        }
        if candidates.is_empty() {
            candidates = self.candidates(now, Member::in_rotation);
        }
        if candidates.is_empty() {
            // Never reached while the share of ejected endpoints is capped below the whole
            // pool; kept so that a pool in any state still answers.
            return self
                .members
                .iter()
                .min_by_key(|m| match (m.draining, m.ejector.health()) {
                    (false, Health::Ejected { until }) => (0, Some(until)),
                    (false, _) => (1, None),
                    (true, _) => (2, None),
                })
                .map(|m| m.id);
        }
        let bound = self.cfg.routing.affinity_bound;
        let rng = self.rng.get_or_insert_with(|| Rng::new(0));
        routing::choose(&candidates, key, bound, rng).map(EndpointId)
    }

    /// Whether an attempt could go to a healthy endpoint the call has not tried (a retry then
    /// fails over at once).
    pub fn can_fail_over(&self, now: Instant, tried: &[EndpointId]) -> bool {
        let requests_probe = !self.health_probes();
        self.members.len() > 1
            && self.members.iter().any(|m| {
                !tried.contains(&m.id)
                    && !m.draining
                    && (m.ejector.is_healthy() || (requests_probe && m.ejector.probe_ready(now)))
            })
    }

    /// An endpoint in rotation other than `avoid`, one with room first: `None` when `avoid`
    /// is the only one.
    pub(crate) fn pick_other(&mut self, now: Instant, avoid: EndpointId) -> Option<EndpointId> {
        let ss = self.cfg.routing.slow_start;
        let mut candidates = self.candidates(now, |m| {
            m.id != avoid && m.in_rotation() && m.has_room(now, &ss)
        });
        if candidates.is_empty() {
            candidates = self.candidates(now, |m| m.id != avoid && m.in_rotation());
        }
        let rng = self.rng.get_or_insert_with(|| Rng::new(0));
        routing::choose(&candidates, None, self.cfg.routing.affinity_bound, rng).map(EndpointId)
    }

    fn candidates(&self, now: Instant, eligible: impl Fn(&Member) -> bool) -> Vec<Candidate> {
        let ss = &self.cfg.routing.slow_start;
        // Unknown endpoints are seeded optimistically, at the best latency seen anywhere.
        let best = self
            .members
            .iter()
            .filter_map(|m| m.latency.get())
            .min()
            .map_or(1.0, |d| d.as_secs_f64());
        self.members
            .iter()
            .filter(|m| eligible(m))
            .map(|m| Candidate {
                index: m.id.0,
                identity: m.route.identity,
                weight: m.weight_milli(now, ss),
                in_flight: m.in_flight,
                latency: m.latency.relaxed(now, best).unwrap_or(best),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EndpointId, Pool, PoolConfig};
    use crate::request::RequestConfig;
    use std::time::Instant;

    fn pool(n: usize) -> Pool {
        let r = RequestConfig {
            endpoints: (0..n)
                .map(|i| format!("http://10.0.0.{i}:8000/v1").into())
                .collect(),
            ..RequestConfig::default()
        };
        Pool::new(&r, PoolConfig::default(), 7)
    }

    #[test]
    fn another_endpoint_than_the_one_avoided_or_none() {
        let now = Instant::now();
        let mut p = pool(3);
        let mut seen = [0; 3];
        for _ in 0..60 {
            let id = p.pick_other(now, EndpointId::new(1)).expect("two others");
            seen[id.index()] += 1;
        }
        assert_eq!(seen[1], 0);
        assert!(seen[0] > 0 && seen[2] > 0, "{seen:?}");
        assert_eq!(pool(1).pick_other(now, EndpointId::new(0)), None);
    }
}
