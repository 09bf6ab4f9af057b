//! The run loop of `vllm-client`, written once for every transport.
//!
//! In the terms of the design: the core (`vllm-client-core`) decides everything and the
//! adapters only move bytes and sleep. The loop that carries the core's decisions out —
//! perform an [`Action`](vllm_client_core::call::Action), report an
//! [`Event`](vllm_client_core::call::Event), wait for a concurrency slot and wake exactly the
//! next waiter, cancel a dropped call, log breaker transitions, start a stream and collect its
//! text — lives here, once, with no runtime dependency. An adapter implements one small trait
//! for its runtime:
//!
//! | trait | for | the adapter provides |
//! |---|---|---|
//! | [`Transport`] | async code on any runtime | send a request, read the next body chunk, a timer |
//! | [`BlockingTransport`] | plain threads | send a request and read a chunk, each within a deadline |
//!
//! and gets an executor for `vllm_client_core::client::Client`: [`AsyncExec`] (`send()`
//! returns a future, `send_stream()` an [`EventStream`]) or [`BlockingExec`] (values and an
//! [`EventIter`]).
//!
//! What the loop guarantees, whatever the transport:
//! - body bytes are decoded outside the client-wide lock: the lock is taken only when the call
//!   owes the shared state something (admission, a breaker outcome, a retry decision, the end);
//! - a response is kept only while the driver reads its body: at a terminal event, a retry, a
//!   sleep or the end it is dropped, so its connection closes (the contract's rule 5);
//! - one release wakes exactly one waiting call, the one that waited longest;
//! - a dropped call is cancelled: its slot and breaker probe are released exactly once;
//! - endpoints change at run time (`set_endpoints`), a DNS name can be followed (its lookups
//!   run on a thread of their own, started by a call or by the optional background upkeep),
//!   and the upkeep probes ejected endpoints while no call flows — the core's
//!   `ManageEndpoints`, written once here for every adapter.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod async_loop;
mod blocking_loop;
mod client;
mod driver;
mod exec;
mod fleet;
pub mod observability;
mod sink;
mod telemetry;
mod tls_choice;
mod trace_context;
mod transport;
mod turn;
mod views;

pub use async_loop::EventStream;
pub use blocking_loop::EventIter;
pub use client::ClientState;
pub use exec::{Async, AsyncExec, Blocking, BlockingExec, Exec};
pub use fleet::{UpkeepFn, UpkeepFuture};
pub use tls_choice::{refuse_https_without_tls, tls_backend, NO_TLS};
pub use transport::{BlockingTransport, Completion, Failed, Transport};
pub use views::{ChunkIter, ChunkStream, ResponseIter, ResponseStream, Results};
