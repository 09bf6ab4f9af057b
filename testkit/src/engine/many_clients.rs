//! Many clients, one fleet: N independent clients — each its own process in effect, with its
//! own shared state, its own pool over every replica and its own adaptive limits — sharing
//! one fleet of modelled vLLM replicas, in virtual time.
//!
//! What it measures (over `[warmup, duration)`):
//! - **fairness**: Jain's index of the clients' goodput (output tokens of successful calls);
//! - **oscillation**: the sum of the clients' concurrency limits every 500 ms, against the
//!   fleet's batch capacity (replicas × `max_num_seqs`);
//! - **herd**: the arrivals at a returning replica in its first 2 s back, against its fair
//!   share (1 / replicas) of the arrivals then;
//! - **goodput** against a fixed per-client limit (the best of a sweep).
//!
//! Every client gets the same arrival rate (a Poisson stream each, from one seed).
//!
//! ```
//! use std::time::Duration;
//! use vllm_testkit::engine::many_clients::{ManyClients, Scenario, Strategy};
//!
//! let spec = ManyClients {
//!     clients: 4,
//!     replicas: 2,
//!     duration: Duration::from_secs(6),
//!     warmup: Duration::from_secs(2),
//!     ..ManyClients::default()
//! };
//! let r = spec.run(Scenario::Steady, &Strategy::auto());
//! assert!(r.jain > 0.5);
//! ```

use std::time::Duration;

use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::AdaptiveConfig;

use super::config::{EngineConfig, Fault};
use super::experiment::replica_capacity;
use super::fleet::{replica_url, ClientSetup, FleetOutcome, FleetSim};
use super::summary::percentile;
use super::trace::{arrivals, jain_index};
use super::workload::{PoissonSpec, Workload};

/// The fleet and its clients. Defaults: 50 clients, 16 replicas of [`EngineConfig::default`]
/// (`max_num_seqs` 64: a batch capacity of 1 024), 120 s of arrivals with the first 30 s left
/// out of the metrics, prompts 100–700 tokens, outputs 50–350, all streamed, seed 42.
#[derive(Debug, Clone)]
pub struct ManyClients {
    /// Independent clients.
    pub clients: usize,
    /// Replicas.
    pub replicas: usize,
    /// Every replica's engine (before the scenario's faults).
    pub engine: EngineConfig,
    /// How long calls arrive.
    pub duration: Duration,
    /// The start of the metrics' window.
    pub warmup: Duration,
    /// Prompt tokens, `(min, max)`.
    pub prompt_tokens: (u32, u32),
    /// Output tokens, `(min, max)`.
    pub max_tokens: (u32, u32),
    /// The seed of the workload and the clients.
    pub seed: u64,
}

impl Default for ManyClients {
    fn default() -> Self {
        ManyClients {
            clients: 50,
            replicas: 16,
            engine: EngineConfig::default(),
            duration: Duration::from_secs(120),
            warmup: Duration::from_secs(30),
            prompt_tokens: (100, 700),
            max_tokens: (50, 350),
            seed: 42,
        }
    }
}

/// What happens to the fleet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scenario {
    /// 0.7× the fleet's capacity, nothing goes wrong.
    Steady,
    /// 1.5× the fleet's capacity.
    Overload,
    /// 0.7× capacity; replica 0 is 4× slower from the warm-up on.
    SlowReplica,
    /// 0.7× capacity; replica 0 is down for 15 s from the warm-up on, then returns.
    ReplicaReturns,
}

impl Scenario {
    /// Offered load over capacity.
    pub fn load(self) -> f64 {
        match self {
            Scenario::Overload => 1.5,
            _ => 0.7,
        }
    }

    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::Steady => "steady 0.7×",
            Scenario::Overload => "overload 1.5×",
            Scenario::SlowReplica => "one replica 4× slow",
            Scenario::ReplicaReturns => "one replica down 15 s, returns",
        }
    }
}

/// Each client's concurrency policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// `Concurrency::Auto` (a limit per endpoint; the client's is their sum, bounded by its
    /// pooled limit once validated by use or cut by congestion).
    Auto(AdaptiveConfig),
    /// `max_concurrency(n)` per client.
    Fixed(u32),
}

impl Strategy {
    /// `Concurrency::auto()`.
    pub fn auto() -> Strategy {
        Strategy::Auto(AdaptiveConfig::default())
    }

    /// A short label.
    pub fn label(&self) -> String {
        match self {
            Strategy::Auto(_) => "Auto".to_owned(),
            Strategy::Fixed(n) => format!("fixed {n} per client"),
        }
    }
}

/// One run's numbers.
#[derive(Debug, Clone)]
pub struct ManyReport {
    /// Calls made.
    pub calls: usize,
    /// Calls that failed.
    pub errors: usize,
    /// Output tokens of successful calls that ended in the window, per second, over all
    /// clients.
    pub goodput: f64,
    /// Jain's index of the clients' goodput in the window.
    pub jain: f64,
    /// Caller-side TTFT median and 99th percentile (first tokens in the window).
    pub ttft_p50: Option<Duration>,
    /// See `ttft_p50`.
    pub ttft_p99: Option<Duration>,
    /// The fleet's batch capacity (replicas × `max_num_seqs`).
    pub batch_capacity: u32,
    /// The sum of the clients' limits every 500 ms in the window: its mean, min and max.
    pub limit_sum: Option<(f64, u32, u32)>,
    /// Of the samples of that sum, the share within ±20 % of the batch capacity.
    pub limit_sum_within: f64,
    /// The returning replica's arrivals in its first 2 s back, over its fair share of them
    /// (`ReplicaReturns` only).
    pub herd_ratio: Option<f64>,
    /// The whole run.
    pub outcome: FleetOutcome,
}

impl ManyClients {
    /// The fleet's capacity in requests per second.
    pub fn capacity(&self) -> f64 {
        self.replicas.max(1) as f64
            * replica_capacity(&self.engine, self.prompt_tokens, self.max_tokens, self.seed)
    }

    /// When the faulty replica's fault starts.
    pub fn fault_at(&self) -> Duration {
        self.warmup
    }

    /// The replicas, with the scenario's faults.
    pub fn engines(&self, scenario: Scenario) -> Vec<EngineConfig> {
        let at = self.fault_at();
        let end = self.duration.saturating_mul(100);
        (0..self.replicas.max(1))
            .map(|i| match (i, scenario) {
                (0, Scenario::SlowReplica) => {
                    self.engine.clone().with_fault(Fault::slow(at, end, 4.0))
                }
                (0, Scenario::ReplicaReturns) => self
                    .engine
                    .clone()
                    .with_fault(Fault::down(at, at + Duration::from_secs(15))),
                _ => self.engine.clone(),
            })
            .collect()
    }

    /// The arrivals: every client at the same mean rate.
    pub fn workload(&self, scenario: Scenario) -> Workload {
        Workload::poisson(PoissonSpec {
            seed: self.seed,
            rate_per_sec: scenario.load() * self.capacity(),
            duration: self.duration,
            clients: self.clients.max(1),
            prompt_tokens: self.prompt_tokens,
            max_tokens: self.max_tokens,
            stream_share: 1.0,
        })
    }

    /// Every client's configuration.
    pub fn config(&self, strategy: &Strategy) -> ClientConfig {
        let mut c = ClientConfig::default();
        c.request.endpoints = (0..self.replicas.max(1))
            .map(|i| replica_url(i).into())
            .collect();
        match strategy {
            Strategy::Auto(a) => c.policy.auto_concurrency = Some(*a),
            Strategy::Fixed(n) => c.policy.max_concurrency = Some(*n),
        }
        c
    }

    /// The fleet.
    pub fn fleet(&self, scenario: Scenario, strategy: &Strategy) -> FleetSim {
        let config = self.config(strategy);
        let clients = (0..self.clients.max(1))
            .map(|k| {
                let seed = self.seed.wrapping_mul(1_000_003).wrapping_add(k as u64);
                ClientSetup::new(config.clone(), 0, seed)
            })
            .collect();
        FleetSim::new(self.engines(scenario), clients).sample_every(Duration::from_millis(500))
    }

    /// Runs `scenario` with `strategy` on every client.
    pub fn run(&self, scenario: Scenario, strategy: &Strategy) -> ManyReport {
        let outcome = self.fleet(scenario, strategy).run(&self.workload(scenario));
        self.report(scenario, outcome)
    }

    /// The numbers of one run.
    pub fn report(&self, scenario: Scenario, outcome: FleetOutcome) -> ManyReport {
        let (from, to) = (self.warmup, self.duration.max(self.warmup));
        let in_window = |t: Duration| from <= t && t < to;
        let n = self.clients.max(1);
        let mut per_client = vec![0f64; n];
        let mut ttft = Vec::new();
        for r in &outcome.records {
            if r.result.is_ok() && r.end.is_some_and(in_window) {
                per_client[r.arrival.client % n] += f64::from(r.tokens_received);
            }
            if r.first_token.is_some_and(in_window) {
                ttft.extend(r.ttft());
            }
        }
        ttft.sort_unstable();
        let span = (to - from).as_secs_f64().max(1e-9);
        let goodput = per_client.iter().sum::<f64>() / span;
        let batch_capacity = self.replicas.max(1) as u32 * self.engine.max_num_seqs.max(1);
        let mut sums: std::collections::BTreeMap<Duration, u32> = Default::default();
        for s in outcome.samples.iter().filter(|s| in_window(s.at)) {
            *sums.entry(s.at).or_default() += s.limit.unwrap_or(0);
        }
        let limit_sum = (!sums.is_empty()).then(|| {
            let v: Vec<u32> = sums.values().copied().collect();
            let mean = v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len() as f64;
            (
                mean,
                *v.iter().min().unwrap_or(&0),
                *v.iter().max().unwrap_or(&0),
            )
        });
        let cap = f64::from(batch_capacity);
        let limit_sum_within = if sums.is_empty() {
            0.0
        } else {
            sums.values()
                .filter(|s| (f64::from(**s) - cap).abs() <= 0.2 * cap)
                .count() as f64
                / sums.len() as f64
        };
        let herd_ratio = (scenario == Scenario::ReplicaReturns).then(|| {
            let back = self.fault_at() + Duration::from_secs(15);
            let (_, share) = arrivals(&outcome.sends, 0, back, back + Duration::from_secs(2));
            share * self.replicas.max(1) as f64
        });
        ManyReport {
            calls: outcome.records.len(),
            errors: outcome.summary.error_count(),
            goodput,
            jain: jain_index(&per_client),
            ttft_p50: percentile(&ttft, 50),
            ttft_p99: percentile(&ttft, 99),
            batch_capacity,
            limit_sum,
            limit_sum_within,
            herd_ratio,
            outcome,
        }
    }
}

impl ManyReport {
    /// The Markdown header of [`row`](Self::row).
    pub fn header() -> String {
        "| scenario | strategy | calls | errors | goodput (tokens/s) | Jain | TTFT p50 | TTFT p99 | Σ limits mean (min–max) / batch capacity | samples within ±20 % | returning replica, first 2 s / fair |\n|---|---|---|---|---|---|---|---|---|---|---|".to_owned()
    }

    /// One Markdown row.
    pub fn row(&self, scenario: &str, strategy: &str) -> String {
        let secs = |d: Option<Duration>| {
            d.map_or("–".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
        };
        let sum = self.limit_sum.map_or("–".to_owned(), |(m, lo, hi)| {
            format!("{m:.0} ({lo}–{hi}) / {}", self.batch_capacity)
        });
        format!(
            "| {scenario} | {strategy} | {} | {} | {:.0} | {:.3} | {} | {} | {sum} | {:.0} % | {} |",
            self.calls,
            self.errors,
            self.goodput,
            self.jain,
            secs(self.ttft_p50),
            secs(self.ttft_p99),
            self.limit_sum_within * 100.0,
            self.herd_ratio.map_or("–".to_owned(), |h| format!("{h:.2}×")),
        )
    }
}
