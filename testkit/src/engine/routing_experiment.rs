//! The routing experiment: one client with several endpoints (load-aware routing, ejection,
//! failover before the first token) against the loop the seed page teaches — one client per
//! replica, requests dealt round robin — over the same replicas and the same arrivals.
//!
//! The fleet: `replicas` engines; replica 1 is `slow_factor` × slower for the whole run;
//! replica 2 is down (connections refused, requests in flight lost) for the middle third of
//! the arrivals. Everything is seeded: the same [`RoutingSpec`] gives the same tables.
//!
//! ```
//! use std::time::Duration;
//! use vllm_testkit::engine::routing_experiment::{compare, RoutingSpec};
//!
//! let spec = RoutingSpec { duration: Duration::from_secs(6), ..RoutingSpec::default() };
//! let [round_robin, pool] = compare(&spec);
//! assert_eq!(round_robin.requests, pool.requests);
//! ```

use std::time::Duration;

use vllm_client_core::config::ClientConfig;

use super::config::{EngineConfig, Fault};
use super::experiment::replica_capacity;
use super::fleet::{replica_url, ClientSetup, FleetSim};
use super::summary::Summary;
use super::workload::{PoissonSpec, Workload};

/// The experiment's knobs. Defaults: 3 replicas of [`EngineConfig::default`], replica 1 three
/// times slower, replica 2 down for the middle third; Poisson arrivals at 0.4× the nominal
/// capacity of the three (healthy) replicas — what replicas 0 and 1 can still carry while 2 is down — for 120 s; prompts 100–700 tokens, outputs
/// 50–350; all streamed; a first-token timeout of 10 s; seed 42.
#[derive(Debug, Clone)]
pub struct RoutingSpec {
    /// Replicas (at least 3: one slow, one that goes down).
    pub replicas: usize,
    /// Every replica's engine (before faults).
    pub engine: EngineConfig,
    /// How much slower replica 1 is.
    pub slow_factor: f64,
    /// Offered load over the nominal capacity of all replicas healthy.
    pub load: f64,
    /// How long requests arrive.
    pub duration: Duration,
    /// Seeds the workload and the clients.
    pub seed: u64,
    /// Prompt tokens, `(min, max)`.
    pub prompt_tokens: (u32, u32),
    /// Output tokens, `(min, max)`.
    pub max_tokens: (u32, u32),
    /// Each client's first-token timeout.
    pub first_token_timeout: Option<Duration>,
}

impl Default for RoutingSpec {
    fn default() -> Self {
        RoutingSpec {
            replicas: 3,
            engine: EngineConfig::default(),
            slow_factor: 3.0,
            load: 0.4,
            duration: Duration::from_secs(120),
            seed: 42,
            prompt_tokens: (100, 700),
            max_tokens: (50, 350),
            first_token_timeout: Some(Duration::from_secs(10)),
        }
    }
}

impl RoutingSpec {
    /// The replicas, with their faults.
    pub fn engines(&self) -> Vec<EngineConfig> {
        let n = self.replicas.max(3);
        let third = self.duration / 3;
        let end = self.duration.saturating_mul(100);
        (0..n)
            .map(|i| match i {
                1 => self.engine.clone().with_fault(Fault::slow(
                    Duration::ZERO,
                    end,
                    self.slow_factor,
                )),
                2 => self
                    .engine
                    .clone()
                    .with_fault(Fault::down(third, third * 2)),
                _ => self.engine.clone(),
            })
            .collect()
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::default();
        c.policy.timeouts.first_token = self.first_token_timeout;
        c
    }

    /// The arrivals (client indices are reassigned by each strategy).
    pub fn workload(&self) -> Workload {
        let n = self.replicas.max(3);
        let rate = self.load
            * n as f64
            * replica_capacity(&self.engine, self.prompt_tokens, self.max_tokens, self.seed);
        Workload::poisson(PoissonSpec {
            seed: self.seed,
            rate_per_sec: rate,
            duration: self.duration,
            clients: 1,
            prompt_tokens: self.prompt_tokens,
            max_tokens: self.max_tokens,
            stream_share: 1.0,
        })
    }

    /// Round robin: one client per replica, the `k`-th request to client `k % replicas`.
    pub fn round_robin(&self) -> (FleetSim, Workload) {
        let n = self.replicas.max(3);
        let clients = (0..n)
            .map(|r| ClientSetup::new(self.config(), r, self.seed.wrapping_add(r as u64)))
            .collect();
        let mut arrivals = self.workload().arrivals;
        for (k, a) in arrivals.iter_mut().enumerate() {
            a.client = k % n;
        }
        (
            FleetSim::new(self.engines(), clients),
            Workload::new(arrivals),
        )
    }

    /// The pool: one client with every replica as an endpoint.
    pub fn pool(&self) -> (FleetSim, Workload) {
        let n = self.replicas.max(3);
        let mut config = self.config();
        config.request.endpoints = (0..n).map(|i| replica_url(i).into()).collect();
        let clients = vec![ClientSetup::new(config, 0, self.seed)];
        let mut arrivals = self.workload().arrivals;
        for a in arrivals.iter_mut() {
            a.client = 0;
        }
        (
            FleetSim::new(self.engines(), clients),
            Workload::new(arrivals),
        )
    }
}

/// Runs both strategies over the same arrivals: `[round robin, pool]`.
pub fn compare(spec: &RoutingSpec) -> [Summary; 2] {
    let (rr, w) = spec.round_robin();
    let (pool, wp) = spec.pool();
    [rr.run(&w).summary, pool.run(&wp).summary]
}
