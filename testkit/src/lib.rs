//! Test tools for `vllm-client`, for this repository's tests and for yours.
//!
//! If your application calls vLLM (or any OpenAI-compatible server) through `vllm-client`, this
//! crate lets you test what your *configuration* does when the server misbehaves — without a
//! GPU, a network or a wall clock:
//!
//! - [`sim`]: a virtual-time simulator that drives `vllm-client-core`'s call driver with no
//!   sockets. You script what the server answers to each attempt (a 429 with `Retry-After`, a
//!   stall, a stream cut after two tokens, …), it jumps the clock to each deadline and records
//!   an exact timeline, and it checks the driver's contract as it goes. An hour of backoff
//!   runs in microseconds, so it fits property tests: with `vllm-client-core`'s `proptest`
//!   feature, generate policies and failure scripts and assert what must always hold — see
//!   [Property-test your retry policy](sim#property-test-your-retry-policy).
//! - [`server`]: a scripted fake vLLM server on 127.0.0.1 (its own thread and runtime), for
//!   integration tests through a real adapter and a real socket: vLLM's exact JSON and SSE,
//!   plus scripted faults (429 + Retry-After, 5xx, slow first byte, stalls, cuts, resets, bytes
//!   split inside UTF-8 characters, in-band error events) and recorded answers of real servers.
//! - [`engine`]: a deterministic vLLM engine model in virtual time (continuous batching,
//!   prefill, KV-cache preemption, an unbounded FIFO queue, faults) and a fleet simulator that
//!   drives the call driver against replicas of it — for questions like "does my retry policy
//!   make an overload worse?" or "what does an adaptive concurrency limit do to TTFT and
//!   goodput?" ([`engine::limits`]). Open-loop (Poisson) and closed-loop workloads. The same
//!   engine can run behind the fake server, in real time ([`server::FakeServerBuilder::engine`]).
//! - [`server_metrics`]: a bounded parser of a server's Prometheus `/metrics` load gauges
//!   (vLLM's and llama.cpp's waiting/running requests and KV-cache use), to read a fake or real
//!   server's load in tests. (It feeds no decision of the client, so it is not in the core.)
//!
//! What it is not: a load generator, or a model of TCP. The simulator scripts *when* things
//! arrive; the fake server speaks plain HTTP/1.1 on loopback.
//!
//! Add it as a dev-dependency next to the client:
//!
//! ```toml
//! [dev-dependencies]
//! vllm-testkit = "0.1"
//! vllm-client-core = { version = "0.1", features = ["proptest"] }
//! proptest = "1"
//! ```
#![deny(missing_docs)]

pub mod engine;
pub mod server;
pub mod server_metrics;
pub mod sim;

pub use server::{FakeServer, Part, RecordedRequest, Reply};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
