//! The overload experiment: a fleet of replicas fed more than it can serve, with and without
//! a client-side concurrency limit and a first-token timeout.
//!
//! The offered rate is `overload ×` the fleet's measured capacity ([`replica_capacity`]: one
//! replica's completion rate with a deep backlog of the same request mix, times the replica
//! count). Everything is seeded: the same [`OverloadSpec`] gives the same [`Summary`].
//!
//! ```
//! use std::time::Duration;
//! use vllm_testkit::engine::experiment::{overload, OverloadSpec};
//!
//! let spec = OverloadSpec {
//!     duration: Duration::from_secs(5),
//!     ..OverloadSpec::default()
//! };
//! let s = overload(&spec);
//! assert_eq!(s.text_mismatches, 0);
//! assert!(s.requests > 0);
//! ```

use std::time::{Duration, Instant};

use vllm_client_core::config::ClientConfig;

use super::config::EngineConfig;
use super::fleet::{ClientSetup, FleetOutcome, FleetSim, WakeOrder};
use super::model::Engine;
use super::request::RequestSpec;
use super::rng::SplitMix64;
use super::summary::Summary;
use super::workload::{PoissonSpec, Workload};

/// The experiment's knobs. Defaults: 4 replicas of [`EngineConfig::default`], 4 clients per
/// replica (each with its own shared state, talking to one replica), 1.5× overload for 180 s
/// of arrivals, prompts 100–700 tokens, outputs 50–350 tokens, all streamed, seed 42, no
/// client limit, default timeouts, permit waiters woken oldest first.
#[derive(Debug, Clone)]
pub struct OverloadSpec {
    /// Replicas in the fleet.
    pub replicas: usize,
    /// Clients per replica (client `k` talks to replica `k % replicas`).
    pub clients_per_replica: usize,
    /// Every replica's engine.
    pub engine: EngineConfig,
    /// Offered load over measured capacity.
    pub overload: f64,
    /// How long requests arrive (the run continues until every call has ended).
    pub duration: Duration,
    /// Seeds the workload and the clients' jitter.
    pub seed: u64,
    /// Prompt tokens, `(min, max)`.
    pub prompt_tokens: (u32, u32),
    /// Output tokens, `(min, max)`.
    pub max_tokens: (u32, u32),
    /// Share of streamed requests.
    pub stream_share: f64,
    /// Each client's `max_concurrency`.
    pub max_concurrency: Option<u32>,
    /// Each client's first-token timeout.
    pub first_token_timeout: Option<Duration>,
    /// Whether a first-token timeout is retried (default false, as the client's default).
    pub retry_first_token_timeout: bool,
    /// The order permit waiters are woken in.
    pub wake_order: WakeOrder,
}

impl Default for OverloadSpec {
    fn default() -> Self {
        OverloadSpec {
            replicas: 4,
            clients_per_replica: 4,
            engine: EngineConfig::default(),
            overload: 1.5,
            duration: Duration::from_secs(180),
            seed: 42,
            prompt_tokens: (100, 700),
            max_tokens: (50, 350),
            stream_share: 1.0,
            max_concurrency: None,
            first_token_timeout: None,
            retry_first_token_timeout: false,
            wake_order: WakeOrder::Named,
        }
    }
}

impl OverloadSpec {
    /// The client configuration of every client.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::default();
        c.policy.max_concurrency = self.max_concurrency;
        c.policy.timeouts.first_token = self.first_token_timeout;
        c.policy.retry.retry_first_token_timeout = self.retry_first_token_timeout;
        c
    }

    /// Measured fleet capacity in requests per second (replicas × [`replica_capacity`]).
    pub fn capacity(&self) -> f64 {
        self.replicas as f64
            * replica_capacity(&self.engine, self.prompt_tokens, self.max_tokens, self.seed)
    }

    /// The workload: Poisson arrivals at `overload × capacity` for `duration`.
    pub fn workload(&self) -> Workload {
        let clients = self.replicas.max(1) * self.clients_per_replica.max(1);
        Workload::poisson(PoissonSpec {
            seed: self.seed,
            rate_per_sec: self.overload * self.capacity(),
            duration: self.duration,
            clients,
            prompt_tokens: self.prompt_tokens,
            max_tokens: self.max_tokens,
            stream_share: self.stream_share,
        })
    }

    /// The fleet.
    pub fn fleet(&self) -> FleetSim {
        let replicas = self.replicas.max(1);
        let config = self.client_config();
        let clients = (0..replicas * self.clients_per_replica.max(1))
            .map(|k| {
                ClientSetup::new(
                    config.clone(),
                    k % replicas,
                    self.seed.wrapping_add(k as u64),
                )
            })
            .collect();
        FleetSim::new(vec![self.engine.clone(); replicas], clients).wake_order(self.wake_order)
    }
}

/// One replica's throughput in requests per second when saturated: a backlog of 1 000
/// requests of the mix (drawn with `seed`) submitted at once, divided by the time the engine
/// takes to finish them all.
pub fn replica_capacity(
    engine: &EngineConfig,
    prompt_tokens: (u32, u32),
    max_tokens: (u32, u32),
    seed: u64,
) -> f64 {
    const N: u32 = 1_000;
    let t0 = Instant::now();
    let mut e = Engine::new(engine.clone(), t0);
    let mut rng = SplitMix64::new(seed ^ 0x00C0_FFEE);
    for _ in 0..N {
        let p = rng.range_u32(prompt_tokens.0, prompt_tokens.1);
        let m = rng.range_u32(max_tokens.0, max_tokens.1);
        e.submit(t0, RequestSpec::stream(p, m));
    }
    let mut end = t0;
    // Bounded: each request needs at most max_tokens steps (plus preemptions).
    for _ in 0..100_000_000u64 {
        let Some(t) = e.next_event_at() else { break };
        e.advance(t);
        end = t;
        while e.poll_output().is_some() {}
    }
    let secs = end.duration_since(t0).as_secs_f64();
    if secs > 0.0 {
        f64::from(N) / secs
    } else {
        0.0
    }
}

/// Runs the experiment and returns its summary.
pub fn overload(spec: &OverloadSpec) -> Summary {
    overload_outcome(spec).summary
}

/// Runs the experiment and returns everything (per-request records, engine counters).
pub fn overload_outcome(spec: &OverloadSpec) -> FleetOutcome {
    spec.fleet().run(&spec.workload())
}
