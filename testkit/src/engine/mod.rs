//! A deterministic model of a vLLM engine in virtual time, and a fleet simulator that drives
//! the core's call driver against replicas of it.
//!
//! This is the yardstick for fairness and adaptive-concurrency work: it reproduces what vLLM
//! does under load — it never answers 429/503 when overloaded, its
//! waiting queue is unbounded, a stream's head is sent at once and its first token only when
//! the request is scheduled, so overload shows only as a growing time to first token.
//!
//! # The engine ([`Engine`])
//!
//! No clock is read: every method takes the virtual `now`, and nothing is random.
//!
//! - **Continuous batching.** Up to [`max_num_seqs`](EngineConfig::max_num_seqs) sequences
//!   run together. Each engine step decodes one token for every sequence running at the
//!   step's start; the tokens are handed out at the step's end. A step lasts
//!   `(step_base + step_per_seq × running + prefill_per_token × prefilled tokens) / speed`,
//!   times the factor of every slow window covering the step's start (defaults: 15 ms,
//!   0.25 ms per sequence, 0.1 ms per prefilled token: see [`EngineConfig`]).
//! - **Scheduling** happens at a step's start: first, while the running sequences' KV
//!   footprint for this step (Σ prompt + generated + 1) exceeds
//!   [`kv_capacity_tokens`](EngineConfig::kv_capacity_tokens), the newest running sequence is
//!   **preempted** to the *front* of the waiting queue (recompute: its generated tokens are
//!   kept, it pays prefill for prompt + generated again when rescheduled); then sequences are
//!   admitted from the front of the **FIFO waiting queue** (unbounded) while a slot is free
//!   and their footprint fits (head-of-line blocking, like vLLM). Each admitted sequence adds
//!   its prefill to this step and gets its next token at the step's end (a new request's
//!   first token arrives at the end of the step that scheduled it).
//! - **Back to back.** When a step ends and there is work, the next step starts at the same
//!   instant. A step's batch is formed by [`advance`](Engine::advance) reaching its start;
//!   [`submit`](Engine::submit), [`abort`](Engine::abort) and [`settle`](Engine::settle) bring
//!   the engine up to `now` but leave a step starting exactly at `now` unformed — so requests
//!   submitted at one instant (also the instant a step ends) all join the step that starts
//!   then. An idle engine starts a step at the instant of a submission.
//! - **Abort** ([`Engine::abort`], a client disconnect) removes a request from the queue or
//!   the batch; it produces nothing more.
//! - **Faults** on the replica's timeline ([`Fault`]): slow windows, down windows (everything
//!   in flight is lost at the start, connections are refused during it), 503 windows (for the
//!   HTTP layer).
//! - **Rejection**: a request with `max_tokens = 0`, or whose prompt + `max_tokens` exceeds
//!   the KV cache, is rejected at submission (vLLM answers 400), so a lone sequence always
//!   fits and scheduling never deadlocks.
//!
//! Not modelled: chunked prefill and the per-step token budget, prefix caching, stop tokens
//! (every request generates exactly `max_tokens`), priorities.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use vllm_testkit::engine::{Engine, EngineConfig, Output, RequestSpec};
//!
//! let t0 = Instant::now();
//! let mut e = Engine::new(EngineConfig::default(), t0);
//! let id = e.submit(t0, RequestSpec::stream(100, 2));
//! e.advance(t0); // the step starts: 15 ms + 0.25 ms × 1 + 0.1 ms × 100 = 25.25 ms
//! assert_eq!(e.next_event_at(), Some(t0 + Duration::from_micros(25_250)));
//! e.advance(t0 + Duration::from_secs(1));
//! assert_eq!(e.poll_output(), Some((id, Output::FirstToken)));
//! assert_eq!(e.poll_output(), Some((id, Output::Token)));
//! assert!(matches!(e.poll_output(), Some((_, Output::Finished { completion_tokens: 2, .. }))));
//! ```
//!
//! # The fleet ([`fleet::FleetSim`])
//!
//! N replicas, M clients (each a [`ClientConfig`](vllm_client_core::config::ClientConfig) with
//! its own [`Shared`](vllm_client_core::call::Shared), pointed at one replica), and a
//! [`Workload`]; every request becomes a [`Call`](vllm_client_core::call::Call) driven exactly
//! like an adapter drives it, in virtual time. See [`fleet`] for the HTTP mapping,
//! [`experiment`] for the overload experiment and [`limits`] for the evaluation of
//! concurrency limits (fixed and adaptive) with open-loop and closed-loop
//! ([`ClosedLoop`], [`FleetSim::run_closed`]) workloads. A client's endpoint list can change
//! during a run ([`FleetSim::set_endpoints_at`]); a run records every request sent to a
//! replica and, when asked ([`FleetSim::sample_every`]), each client's limit and each
//! replica's load over time ([`trace`]). [`fault_experiment`] is the fault scenario of a fleet
//! that breathes (a replica down, then another slow: round robin against the pool), and
//! [`many_clients`] many independent clients sharing one fleet (fairness, the sum of their
//! limits, the herd at a returning replica).

pub mod config;
pub mod experiment;
pub mod fault_experiment;
pub mod fleet;
pub mod limits;
pub mod many_clients;
pub mod model;
pub mod record;
pub mod request;
pub mod rng;
pub mod routing_experiment;
pub mod summary;
pub mod trace;
pub mod workload;

pub use config::{EngineConfig, Fault, FaultKind};
pub use fleet::{
    ClientSetup, ErrorKind, FleetOutcome, FleetSim, LimitRecord, RequestRecord, ResultKind,
    WakeOrder,
};
pub use model::{Engine, EngineStats};
pub use request::{Output, RequestId, RequestSpec};
pub use summary::Summary;
pub use workload::{Arrival, ClosedLoop, PoissonSpec, Workload};
