//! The blocking adapter of `vllm-client`: ureq 3 and std threads, no async runtime inside.
//!
//! This crate is IO glue only: [`Blocking`] performs the actions of the core's call driver
//! ([`vllm_client_core::call`]) with ureq and reports back what happened. Every decision —
//! retries, backoff, timeouts, the breaker, limits, parsing — is made in the core. Use it
//! through the `vllm-client` facade with the `blocking` feature:
//! `vllm_client::blocking::VllmClient`. Same builder and method names as the async clients;
//! `send()` returns the value and `send_stream()` an [`EventIter`] (an `Iterator`).
//!
//! ```no_run
//! use vllm_client_blocking::VllmClient;
//! use vllm_client_core::StreamEvent;
//!
//! # fn run() -> Result<(), vllm_client_core::VllmError> {
//! let client = VllmClient::new("http://localhost:8000/v1").timeout_secs(120);
//! let stream = client
//!     .chat
//!     .completions()
//!     .create()
//!     .model("Qwen/Qwen2.5-7B-Instruct")
//!     .messages(serde_json::json!([{"role": "user", "content": "Tell me a story"}]))
//!     .send_stream()?;
//! for event in stream {
//!     match event {
//!         StreamEvent::Content(text) => print!("{text}"),
//!         StreamEvent::Done => break,
//!         StreamEvent::Error(e) => return Err(e),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # How deadlines hold in blocking code
//!
//! Each attempt runs on a short-lived **IO thread** that sends the request with ureq and reads
//! the body, handing the response head and each chunk to the caller over a channel of one
//! slot. The caller's thread never blocks in a socket read: it waits on that channel with
//! `recv_timeout(deadline − now)`, where the deadline is the one the core handed out (time to
//! first token, idle between data events, the whole attempt, the overall deadline). So a call
//! or a stream's `next()` returns at its deadline **plus scheduling latency only — documented
//! margin: 50 ms** — whatever the server does (stalls, keep-alive comments, a head that never
//! comes).
//!
//! Each attempt has a ureq agent of its own, built from the client's agent's configuration.
//! When the attempt ends — finished, timed out, retried, or its [`EventIter`] dropped — that
//! agent is shut down: its connection is closed at once (so vLLM aborts the generation), and
//! the IO thread, wherever it blocks, gets an error, finds nobody listening and ends. It is
//! never joined, so the caller does not wait for it. The one phase a shutdown cannot
//! interrupt is a TCP connect in progress, which ureq bounds with the core's connect timeout.
//!
//! The price is that connections are not reused between calls (as in the async-std
//! adapter); with vLLM's long generations, a TCP (and TLS) handshake per call is small.
//!
//! A call waiting for a concurrency slot sleeps on a `Condvar`.
#![deny(missing_docs)]

mod executor;
mod runner;
mod stream;

pub use executor::Blocking;
pub use stream::EventIter;

/// The blocking client: `VllmClient::new("http://localhost:8000/v1")`.
pub type VllmClient = vllm_client_core::client::Client<Blocking>;
/// The blocking client's builder.
pub type VllmClientBuilder = vllm_client_core::client::ClientBuilder<Blocking>;
