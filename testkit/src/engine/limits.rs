//! The concurrency-limit evaluation: one fleet, one load, several client-side limits side by
//! side — none, fixed limits, and the core's adaptive limit (`Concurrency::Auto`) driving
//! admission through the real call driver.
//!
//! Each of the fleet's replicas has one client (its own [`Shared`](vllm_client_core::call::Shared)
//! state, so its own limiter): a limit is *per replica*, as an endpoint pool would keep one per
//! endpoint. Nothing tells the adaptive limit the replicas' size.
//!
//! Metrics are taken over a steady-state window `[warmup, duration)`: TTFT as the caller sees
//! it (from the call, client-side waiting included) and as the server makes it (from the last
//! send), over streams whose first token came in the window; goodput is the output tokens of
//! successful calls that ended in the window, per second.
//!
//! ```
//! use std::time::Duration;
//! use vllm_testkit::engine::limits::{evaluate, LimitEval, LimitLoad, LimitStrategy};
//!
//! let spec = LimitEval {
//!     duration: Duration::from_secs(20),
//!     warmup: Duration::from_secs(5),
//!     ..LimitEval::default()
//! };
//! let load = LimitLoad::Closed { callers: 64 };
//! let (row, _) = evaluate(&spec, &load, &LimitStrategy::Fixed(16));
//! assert!(row.goodput > 0.0);
//! ```

use std::time::Duration;

use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::AdaptiveConfig;

use super::config::EngineConfig;
use super::experiment::replica_capacity;
use super::fleet::{ClientSetup, FleetOutcome, FleetSim};
use super::summary::percentile;
use super::workload::{ClosedLoop, PoissonSpec, Workload};

/// A client-side concurrency limit, per replica.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitStrategy {
    /// No limit.
    None,
    /// `max_concurrency(n)` per replica.
    Fixed(u32),
    /// The adaptive limit with this configuration.
    Auto(AdaptiveConfig),
}

impl LimitStrategy {
    /// A short label.
    pub fn label(&self) -> String {
        match self {
            LimitStrategy::None => "no limit".to_owned(),
            LimitStrategy::Fixed(n) => format!("fixed {n}"),
            LimitStrategy::Auto(c) => {
                format!("Auto (min {}, max {}, initial {})", c.min, c.max, c.initial)
            }
        }
    }
}

/// The load offered.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitLoad {
    /// `callers` closed-loop callers (no think time), spread over the replicas' clients.
    Closed {
        /// How many.
        callers: usize,
    },
    /// Poisson arrivals at `overload ×` the fleet's measured capacity.
    Open {
        /// Offered load over capacity.
        overload: f64,
    },
}

/// The fleet and the run's length. Defaults: 4 replicas of [`EngineConfig::default`]
/// (`max_num_seqs` 64), prompts 100–700 tokens, outputs 50–350, all streamed, 120 s of load,
/// a 20 s warm-up excluded from the metrics, seed 42, no first-token timeout.
#[derive(Debug, Clone)]
pub struct LimitEval {
    /// Replicas (one client each).
    pub replicas: usize,
    /// Every replica's engine (faults included).
    pub engine: EngineConfig,
    /// Engines that differ from `engine`, by replica index.
    pub engine_overrides: Vec<(usize, EngineConfig)>,
    /// How long calls start.
    pub duration: Duration,
    /// The start of the metrics' window.
    pub warmup: Duration,
    /// Prompt tokens, `(min, max)`.
    pub prompt_tokens: (u32, u32),
    /// Output tokens, `(min, max)`.
    pub max_tokens: (u32, u32),
    /// The seed of the workload and the clients.
    pub seed: u64,
    /// Every client's first-token timeout (default: off).
    pub first_token_timeout: Option<Duration>,
}

impl Default for LimitEval {
    fn default() -> Self {
        LimitEval {
            replicas: 4,
            engine: EngineConfig::default(),
            engine_overrides: Vec::new(),
            duration: Duration::from_secs(120),
            warmup: Duration::from_secs(20),
            prompt_tokens: (100, 700),
            max_tokens: (50, 350),
            seed: 42,
            first_token_timeout: None,
        }
    }
}

/// One strategy's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitRow {
    /// The strategy's label.
    pub label: String,
    /// Calls made.
    pub calls: usize,
    /// Calls that failed.
    pub errors: usize,
    /// Caller-side TTFT median (client-side waiting included).
    pub ttft_p50: Option<Duration>,
    /// Caller-side TTFT 99th percentile.
    pub ttft_p99: Option<Duration>,
    /// Server-side TTFT median (from the last send).
    pub server_ttft_p50: Option<Duration>,
    /// Server-side TTFT 99th percentile.
    pub server_ttft_p99: Option<Duration>,
    /// Output tokens of successful calls per second, in the window.
    pub goodput: f64,
    /// Preemptions over all replicas (the whole run).
    pub preemptions: u64,
    /// The adaptive limit averaged over the window and the replicas (time-weighted).
    pub mean_limit: Option<f64>,
}

impl LimitRow {
    /// The Markdown table header of [`row`](Self::row).
    pub fn header() -> String {
        "| strategy (per replica) | calls | errors | TTFT p50 (caller) | TTFT p99 (caller) | TTFT p50 (server) | TTFT p99 (server) | goodput (tokens/s) | preemptions | mean limit |\n|---|---|---|---|---|---|---|---|---|---|".to_owned()
    }

    /// One Markdown table row.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} |",
            self.label,
            self.calls,
            self.errors,
            secs(self.ttft_p50),
            secs(self.ttft_p99),
            secs(self.server_ttft_p50),
            secs(self.server_ttft_p99),
            self.goodput,
            self.preemptions,
            self.mean_limit
                .map_or("–".to_owned(), |m| format!("{m:.1}")),
        )
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("–".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// The fleet with `strategy` on every replica's client.
pub fn fleet(spec: &LimitEval, strategy: &LimitStrategy) -> FleetSim {
    let replicas = spec.replicas.max(1);
    let mut config = ClientConfig::default();
    config.policy.timeouts.first_token = spec.first_token_timeout;
    match strategy {
        LimitStrategy::None => {}
        LimitStrategy::Fixed(n) => config.policy.max_concurrency = Some(*n),
        LimitStrategy::Auto(a) => config.policy.auto_concurrency = Some(*a),
    }
    let clients = (0..replicas)
        .map(|k| ClientSetup::new(config.clone(), k, spec.seed.wrapping_add(k as u64)))
        .collect();
    let engines = (0..replicas)
        .map(|k| {
            spec.engine_overrides
                .iter()
                .find(|(i, _)| *i == k)
                .map_or_else(|| spec.engine.clone(), |(_, e)| e.clone())
        })
        .collect();
    FleetSim::new(engines, clients)
}

/// Runs `load` against the fleet with `strategy`; returns the row and the whole outcome.
pub fn evaluate(
    spec: &LimitEval,
    load: &LimitLoad,
    strategy: &LimitStrategy,
) -> (LimitRow, FleetOutcome) {
    let sim = fleet(spec, strategy);
    let out = match load {
        LimitLoad::Closed { callers } => sim.run_closed(&ClosedLoop {
            seed: spec.seed,
            callers: *callers,
            duration: spec.duration,
            prompt_tokens: spec.prompt_tokens,
            max_tokens: spec.max_tokens,
            ..ClosedLoop::default()
        }),
        LimitLoad::Open { overload } => {
            let capacity = spec.replicas.max(1) as f64
                * replica_capacity(&spec.engine, spec.prompt_tokens, spec.max_tokens, spec.seed);
            sim.run(&Workload::poisson(PoissonSpec {
                seed: spec.seed,
                rate_per_sec: overload * capacity,
                duration: spec.duration,
                clients: spec.replicas.max(1),
                prompt_tokens: spec.prompt_tokens,
                max_tokens: spec.max_tokens,
                stream_share: 1.0,
            }))
        }
    };
    let row = row_of(spec, strategy, &out);
    (row, out)
}

/// The numbers of one run (see the [module docs](self) for the window).
pub fn row_of(spec: &LimitEval, strategy: &LimitStrategy, out: &FleetOutcome) -> LimitRow {
    let (from, to) = (spec.warmup, spec.duration.max(spec.warmup));
    let in_window = |t: Duration| from <= t && t < to;
    let mut ttft = Vec::new();
    let mut server = Vec::new();
    let mut tokens = 0u64;
    for r in &out.records {
        if r.first_token.is_some_and(in_window) {
            ttft.extend(r.ttft());
            server.extend(r.server_ttft());
        }
        if r.result.is_ok() && r.end.is_some_and(in_window) {
            tokens += u64::from(r.tokens_received);
        }
    }
    ttft.sort_unstable();
    server.sort_unstable();
    let window = (to - from).as_secs_f64();
    let mean_limit = match strategy {
        LimitStrategy::Auto(a) => Some(mean_limit(out, spec.replicas.max(1), a.initial, from, to)),
        _ => None,
    };
    LimitRow {
        label: strategy.label(),
        calls: out.records.len(),
        errors: out.summary.error_count(),
        ttft_p50: percentile(&ttft, 50),
        ttft_p99: percentile(&ttft, 99),
        server_ttft_p50: percentile(&server, 50),
        server_ttft_p99: percentile(&server, 99),
        goodput: if window > 0.0 {
            tokens as f64 / window
        } else {
            0.0
        },
        preemptions: out.summary.preemptions,
        mean_limit,
    }
}

/// Client `client`'s adaptive limit averaged over `[from, to)`, weighted by time.
pub fn mean_limit_of(
    out: &FleetOutcome,
    client: usize,
    initial: u32,
    from: Duration,
    to: Duration,
) -> f64 {
    let span = to.saturating_sub(from).as_secs_f64();
    if span <= 0.0 {
        return f64::from(out.limit_at(client, from, initial));
    }
    let mut t = from;
    let mut current = out.limit_at(client, from, initial);
    let mut acc = 0.0;
    for l in out
        .limits
        .iter()
        .filter(|l| l.client == client && l.at > from && l.at < to)
    {
        acc += f64::from(current) * (l.at - t).as_secs_f64();
        t = l.at;
        current = l.limit;
    }
    acc += f64::from(current) * (to - t).as_secs_f64();
    acc / span
}

fn mean_limit(
    out: &FleetOutcome,
    clients: usize,
    initial: u32,
    from: Duration,
    to: Duration,
) -> f64 {
    let sum: f64 = (0..clients)
        .map(|c| mean_limit_of(out, c, initial, from, to))
        .sum();
    sum / clients as f64
}

/// When client `client`'s limit first came back within `tolerance` (a share, e.g. 0.1) of
/// `prior` at or after `after`; `None` if it never did.
pub fn recovered_at(
    out: &FleetOutcome,
    client: usize,
    initial: u32,
    prior: f64,
    tolerance: f64,
    after: Duration,
) -> Option<Duration> {
    let within = |l: u32| (f64::from(l) - prior).abs() <= tolerance * prior;
    if within(out.limit_at(client, after, initial)) {
        return Some(after);
    }
    out.limits
        .iter()
        .filter(|l| l.client == client && l.at > after)
        .find(|l| within(l.limit))
        .map(|l| l.at)
}
