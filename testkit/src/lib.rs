//! Test tools for vllm-client.
//!
//! - [`server`]: a scripted fake vLLM server on 127.0.0.1 (its own thread and runtime), for
//!   integration tests of every adapter: vLLM's exact JSON and SSE, plus scripted faults
//!   (429 + Retry-After, 5xx, slow first byte, stalls, cuts, resets, bytes split inside UTF-8
//!   characters, in-band error events).
//! - [`sim`]: a virtual-time simulator that drives the core's call driver with no sockets,
//!   jumping the clock to each deadline, and records exact timelines.
//! - [`engine`]: a deterministic vLLM engine model in virtual time (continuous batching,
//!   prefill, KV-cache preemption, an unbounded FIFO queue, faults) and a fleet simulator that
//!   drives the call driver against replicas of it.
#![deny(missing_docs)]

pub mod engine;
pub mod server;
pub mod sim;

pub use server::{FakeServer, Part, RecordedRequest, Reply};
