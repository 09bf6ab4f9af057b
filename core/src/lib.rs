//! The pure, deterministic core of `vllm-client`: everything a client of vLLM's
//! OpenAI-compatible API decides, and nothing it does. No IO, no async, no clock, no global
//! randomness: it is fed timestamps, bytes and outcomes, and answers with what to do next.
//! The adapters (`vllm-client-tokio`, `-async-std`, `-blocking`) only move bytes and sleep.
//!
//! | module | decides |
//! |---|---|
//! | [`api`] | the wire types of every operation, vLLM's extras, and `extra` JSON merged last |
//! | [`request`] | the operations ([`request::Operation`]: method and path), base URL joining, `http::Request<Bytes>` building, authentication, an endpoint's own URL, key and headers |
//! | [`error`] | [`VllmError`], and reading every error-body shape servers really send |
//! | [`sse`] | the WHATWG `text/event-stream` algorithm: bytes in any chunking → events, bounded |
//! | [`stream`] | chat/completions chunks → [`StreamEvent`]s: `[DONE]`, in-band errors, truncation, tool calls |
//! | [`responses_stream`] | the Responses API's typed, numbered events → [`StreamEvent::Response`]s, with the same guarantees |
//! | [`policy`] | every rule: the failure table (`policy::failure`), retries, backoff, `Retry-After`, the retry budget, the circuit breaker, rate, token-rate and concurrency limits (fixed or adaptive), timeouts, outlier ejection, routing, hedging |
//! | [`pool`] | several endpoints: their state, load-aware routing, outlier ejection, probing and readmission in slow start, endpoints that come and go (`set_endpoints`, DNS discovery) |
//! | [`call`] | the per-call driver that composes all of the above, one file per phase (admit, route, exchange, settle); the client's shared state ([`call::Shared`]) and what calls owe it ([`call::Owed`]); its docs show the run loop, [`call::contract`] is everything a transport must know |
//! | [`client`] | the user API, written once and generic over an adapter's [`client::Execute`] |
//! | `strategies` | with the `proptest` feature: `proptest` strategies for every policy configuration |
//!
//! **Write your own transport**: read [`call::contract`] (one short file: the actions, the
//! events, the rules — start an operation and wait, what `Close` means, decoded body bytes,
//! statuses, the headers a transport adds, the shared state's lock, cancelling, seeding with
//! [`os_entropy`]), then drive [`call::Call`] as its docs show. The repository's guide
//! `docs/embedding.md` and `examples/custom_transport.rs` (std::net, hand-written HTTP/1.0,
//! hedging and health probes included) walk through it; `vllm-client-runner` has the run loop
//! ready for any async runtime or plain threads.
//!
//! Dependencies are `http`, `bytes`, `serde`, `serde_json`, `thiserror` and small pure helpers
//! (`memchr`, `httpdate`, `simdutf8`); CI checks that no IO crate is among them. The optional
//! `proptest` feature adds `proptest` and the `strategies` module, for property tests of a
//! configuration (see `vllm-testkit`'s simulator for running calls made with them).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod call;
pub mod client;
pub mod config;
pub mod error;
pub mod event;
pub mod policy;
pub mod pool;
mod queue;
pub mod request;
pub mod responses_stream;
pub mod sse;
#[cfg(feature = "proptest")]
pub mod strategies;
pub mod stream;

pub use error::{ApiError, ErrorSource, VllmError};
pub use event::StreamEvent;
pub use sse::{SseDecoder, SseError, SseEvent, SseItem, SseLimits};
pub use stream::{PushReport, StreamDecoder, StreamKind};

/// The `http` crate the contract is written in (`Request`, `HeaderMap`, `StatusCode`), so a
/// custom transport needs no version of its own.
pub use http;

/// The `bytes` crate of request and response bodies.
pub use bytes;

/// A seed from the operating system, for [`call::Shared::new`]: different in every process,
/// so that clients do not retry in lockstep. The core itself never calls it (everything it
/// decides follows from the seed it is given); transports call it once per client.
pub fn os_entropy() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // `RandomState` is seeded from the OS's randomness once per process and then per thread.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish()
}
