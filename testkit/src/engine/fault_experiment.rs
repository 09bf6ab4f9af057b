//! The fault experiment: one client process in front of a fleet that loses a replica and
//! later has another one slowed — the scenario of issue 22 ("a fleet that breathes") — with
//! the hand-made round robin + per-replica semaphore the seed page teaches against the pool
//! with `Concurrency::Auto`, over the same arrivals.
//!
//! The fleet: `replicas` engines; replica `down` refuses connections (and loses what it runs)
//! in `[down_at, down_at + down_for)`; replica `slow` is `slow_factor` × slower in
//! `[slow_at, slow_at + slow_for)`. Poisson arrivals at `load` × the fleet's measured capacity,
//! all streamed. Everything is seeded: the same [`FaultSpec`] gives the same numbers.
//!
//! ```
//! use std::time::Duration;
//! use vllm_testkit::engine::fault_experiment::{FaultSpec, FaultStrategy};
//!
//! let spec = FaultSpec { duration: Duration::from_secs(8), ..FaultSpec::short() };
//! let rr = spec.run(&FaultStrategy::RoundRobin { semaphore: Some(64) });
//! let pool = spec.run(&FaultStrategy::Pool(spec.pool_config()));
//! assert_eq!(rr.summary.requests, pool.summary.requests);
//! ```

use std::time::Duration;

use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::AdaptiveConfig;

use super::config::{EngineConfig, Fault};
use super::experiment::replica_capacity;
use super::fleet::{replica_url, ClientSetup, FleetOutcome, FleetSim};
use super::summary::{percentile, Summary};
use super::trace::arrivals;
use super::workload::{PoissonSpec, Workload};

/// The scenario. Defaults ([`FaultSpec::default`]): 4 replicas of [`EngineConfig::default`];
/// replica 3 down in `[20 s, 35 s)`; replica 1 four times slower in `[40 s, 55 s)`; Poisson
/// arrivals at 0.7× the fleet's capacity for 90 s, prompts 100–700 tokens, outputs 50–350,
/// all streamed; no first-token timeout; seed 42.
#[derive(Debug, Clone)]
pub struct FaultSpec {
    /// Replicas.
    pub replicas: usize,
    /// Every replica's engine (before the faults).
    pub engine: EngineConfig,
    /// The replica that goes down.
    pub down: usize,
    /// When it goes down.
    pub down_at: Duration,
    /// For how long.
    pub down_for: Duration,
    /// The replica that slows down.
    pub slow: usize,
    /// When it slows down.
    pub slow_at: Duration,
    /// For how long.
    pub slow_for: Duration,
    /// How much slower.
    pub slow_factor: f64,
    /// Offered load over the fleet's measured capacity.
    pub load: f64,
    /// How long requests arrive.
    pub duration: Duration,
    /// Seeds the workload and the clients.
    pub seed: u64,
    /// Prompt tokens, `(min, max)`.
    pub prompt_tokens: (u32, u32),
    /// Output tokens, `(min, max)`.
    pub max_tokens: (u32, u32),
    /// Every client's first-token timeout.
    pub first_token_timeout: Option<Duration>,
    /// Independent client processes sharing the fleet (default 1): each gets an equal share
    /// of the arrivals, with its own round robin (one client per replica) or its own pool.
    pub processes: usize,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            replicas: 4,
            engine: EngineConfig::default(),
            down: 3,
            down_at: Duration::from_secs(20),
            down_for: Duration::from_secs(15),
            slow: 1,
            slow_at: Duration::from_secs(40),
            slow_for: Duration::from_secs(15),
            slow_factor: 4.0,
            load: 0.7,
            duration: Duration::from_secs(90),
            seed: 42,
            prompt_tokens: (100, 700),
            max_tokens: (50, 350),
            first_token_timeout: None,
            processes: 1,
        }
    }
}

/// How the client side is built.
#[derive(Debug, Clone)]
pub enum FaultStrategy {
    /// The seed page's loop: one client per replica, the k-th request to client k mod n,
    /// each with the default policy and `max_concurrency(semaphore)` when set.
    RoundRobin {
        /// Each replica's semaphore.
        semaphore: Option<u32>,
    },
    /// One client with every replica as an endpoint, configured as given (its endpoints are
    /// set to the replicas).
    Pool(Box<ClientConfig>),
}

/// What one run gave.
#[derive(Debug, Clone)]
pub struct FaultReport {
    /// The aggregate (TTFT from the arrival, errors, retries).
    pub summary: Summary,
    /// Output tokens of successful calls.
    pub good_tokens: u64,
    /// The down replica's share of the attempts sent in each second after it came back, from
    /// the instant it came back (10 s).
    pub returning_share: Vec<f64>,
    /// When, after it came back, the client readmitted it (its probe was answered); with
    /// several processes, the last one to (`None` when one never did).
    pub readmitted_after: Option<Duration>,
    /// When, after it came back, it first carried its fair share: the end of the first 2 s
    /// window (sliding by 250 ms) in which it got at least 80 % of its fair share
    /// (1 / replicas) of the attempts; `None` if it never did within 22 s.
    pub fair_share_after: Option<Duration>,
    /// Its attempts in its first 2 s back, over its fair share of the attempts then.
    pub herd_ratio: f64,
    /// TTFT median of the calls arriving in each 5 s window.
    pub ttft_p50_windows: Vec<(Duration, Option<Duration>)>,
    /// The whole run.
    pub outcome: FleetOutcome,
}

impl FaultSpec {
    /// A shorter version for tests: 55 s, a 10 s warm-up (the adaptive limits find the
    /// replicas first), down in `[10 s, 25 s)`, slow in `[30 s, 45 s)`.
    pub fn short() -> FaultSpec {
        FaultSpec {
            down_at: Duration::from_secs(10),
            slow_at: Duration::from_secs(30),
            duration: Duration::from_secs(55),
            ..FaultSpec::default()
        }
    }

    /// The replicas, with their faults.
    pub fn engines(&self) -> Vec<EngineConfig> {
        (0..self.replicas.max(1))
            .map(|i| {
                let mut e = self.engine.clone();
                if i == self.down {
                    e = e.with_fault(Fault::down(self.down_at, self.down_at + self.down_for));
                }
                if i == self.slow {
                    e = e.with_fault(Fault::slow(
                        self.slow_at,
                        self.slow_at + self.slow_for,
                        self.slow_factor,
                    ));
                }
                e
            })
            .collect()
    }

    /// The fleet's capacity in requests per second.
    pub fn capacity(&self) -> f64 {
        self.replicas.max(1) as f64
            * replica_capacity(&self.engine, self.prompt_tokens, self.max_tokens, self.seed)
    }

    /// The arrivals (all to client 0; round robin deals them).
    pub fn workload(&self) -> Workload {
        Workload::poisson(PoissonSpec {
            seed: self.seed,
            rate_per_sec: self.load * self.capacity(),
            duration: self.duration,
            clients: self.processes.max(1),
            prompt_tokens: self.prompt_tokens,
            max_tokens: self.max_tokens,
            stream_share: 1.0,
        })
    }

    /// The default client policy with this spec's first-token timeout.
    pub fn base_config(&self) -> ClientConfig {
        let mut c = ClientConfig::default();
        c.policy.timeouts.first_token = self.first_token_timeout;
        c.policy.seed = Some(self.seed);
        c
    }

    /// The pool's configuration: the defaults with `Concurrency::Auto`, and cut chat streams
    /// continued on another replica (`continue_cut_chats`).
    pub fn pool_config(&self) -> Box<ClientConfig> {
        let mut c = self.base_config();
        c.policy.auto_concurrency = Some(AdaptiveConfig::default());
        c.policy.continue_chats = true;
        Box::new(c)
    }

    /// The fleet and the arrivals for `strategy`.
    pub fn setup(&self, strategy: &FaultStrategy) -> (FleetSim, Workload) {
        let n = self.replicas.max(1);
        let procs = self.processes.max(1);
        let mut arrivals = self.workload().arrivals;
        let seed = |k: usize| self.seed.wrapping_mul(31).wrapping_add(k as u64);
        let clients = match strategy {
            FaultStrategy::RoundRobin { semaphore } => {
                let mut config = self.base_config();
                config.policy.max_concurrency = *semaphore;
                // Process p's k-th call goes to its client of replica k mod n.
                let mut dealt = vec![0usize; procs];
                for a in arrivals.iter_mut() {
                    let p = a.client % procs;
                    a.client = p * n + dealt[p] % n;
                    dealt[p] += 1;
                }
                (0..procs * n)
                    .map(|k| {
                        let mut c = config.clone();
                        c.policy.seed = Some(seed(k));
                        ClientSetup::new(c, k % n, seed(k))
                    })
                    .collect()
            }
            FaultStrategy::Pool(config) => {
                let mut config = (**config).clone();
                config.request.endpoints = (0..n).map(|i| replica_url(i).into()).collect();
                (0..procs)
                    .map(|p| {
                        let mut c = config.clone();
                        c.policy.seed = Some(seed(p));
                        ClientSetup::new(c, 0, seed(p))
                    })
                    .collect()
            }
        };
        (
            FleetSim::new(self.engines(), clients),
            Workload::new(arrivals),
        )
    }

    /// Runs `strategy` and measures it.
    pub fn run(&self, strategy: &FaultStrategy) -> FaultReport {
        let (sim, workload) = self.setup(strategy);
        let outcome = sim.sample_every(Duration::from_millis(250)).run(&workload);
        self.report(outcome)
    }

    /// The numbers of one run.
    pub fn report(&self, outcome: FleetOutcome) -> FaultReport {
        let n = self.replicas.max(1);
        let fair = 1.0 / n as f64;
        let back = self.down_at + self.down_for;
        let sec = Duration::from_secs(1);
        let returning_share: Vec<f64> = (0..10u32)
            .map(|k| {
                arrivals(
                    &outcome.sends,
                    self.down,
                    back + sec * k,
                    back + sec * (k + 1),
                )
                .1
            })
            .collect();
        // The last client process to readmit it (each readmits it on its own).
        let procs = self.processes.max(1);
        let readmissions: Vec<(usize, Duration)> = outcome
            .endpoint_changes
            .iter()
            .filter(|c| {
                c.at >= back
                    && c.change.id.index() == self.down
                    && c.change.change.to == vllm_client_core::policy::Health::Healthy
            })
            .map(|c| (c.client, c.at - back))
            .collect();
        let readmitted_after = (0..procs)
            .map(|p| readmissions.iter().find(|(c, _)| *c == p).map(|(_, t)| *t))
            .collect::<Option<Vec<Duration>>>()
            .and_then(|v| v.into_iter().max());
        // The end of the first 2 s window (sliding by 250 ms) in which its share of the
        // attempts was at least 80 % of its fair share.
        let quarter = Duration::from_millis(250);
        let fair_share_after = (0..80u32).find_map(|k| {
            let from = back + quarter * k;
            let (_, share) = arrivals(&outcome.sends, self.down, from, from + 2 * sec);
            (share >= 0.8 * fair).then(|| quarter * k + 2 * sec)
        });
        let (_, first_two) = arrivals(&outcome.sends, self.down, back, back + 2 * sec);
        let herd_ratio = first_two / fair;
        let good_tokens = outcome
            .records
            .iter()
            .filter(|r| r.result.is_ok())
            .map(|r| u64::from(r.tokens_received))
            .sum();
        let window = Duration::from_secs(5);
        let windows = (self.duration.as_secs() / 5) as u32;
        let ttft_p50_windows = (0..windows)
            .map(|k| {
                let (from, to) = (window * k, window * (k + 1));
                let mut t: Vec<Duration> = outcome
                    .records
                    .iter()
                    .filter(|r| r.arrival.at >= from && r.arrival.at < to)
                    .filter_map(|r| r.ttft())
                    .collect();
                t.sort_unstable();
                (from, percentile(&t, 50))
            })
            .collect();
        FaultReport {
            summary: outcome.summary.clone(),
            good_tokens,
            returning_share,
            readmitted_after,
            fair_share_after,
            herd_ratio,
            ttft_p50_windows,
            outcome,
        }
    }
}

impl FaultReport {
    /// One Markdown row: errors, TTFT p50 / p99, goodput against `baseline`'s.
    pub fn row(&self, label: &str, baseline: Option<&FaultReport>) -> String {
        let s = &self.summary;
        let secs = |d: Option<Duration>| {
            d.map_or("–".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
        };
        let goodput = baseline.map_or("1.00×".to_owned(), |b| {
            format!(
                "{:.2}×",
                self.good_tokens as f64 / b.good_tokens.max(1) as f64
            )
        });
        let errors: Vec<String> = s.errors.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!(
            "| {label} | {}/{} | {} ({}) | {} | {} | {} | {goodput} | {} | {} | {:.2}× |",
            s.ok,
            s.requests,
            s.error_count(),
            if errors.is_empty() {
                "–".to_owned()
            } else {
                errors.join(", ")
            },
            secs(s.ttft_p50),
            secs(s.ttft_p90),
            secs(s.ttft_p99),
            self.readmitted_after
                .map_or("–".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
            self.fair_share_after
                .map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
            self.herd_ratio,
        )
    }

    /// The header of [`row`](Self::row).
    pub fn header() -> String {
        "| setup | ok | errors | TTFT p50 | TTFT p90 | TTFT p99 | goodput | readmitted after its return | carries its fair share after | attempts in its first 2 s / fair share |\n|---|---|---|---|---|---|---|---|---|---|".to_owned()
    }
}
