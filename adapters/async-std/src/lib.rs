//! The async-std + surf adapter of `vllm-client`.
//!
//! This crate is IO glue only: [`AsyncStd`] performs the actions of the core's call driver
//! ([`vllm_client_core::call`]) with surf (HTTP/1 over async-std, rustls for `https`) and
//! async-std timers, and reports back what happened. Every decision — retries, backoff,
//! timeouts, the breaker, limits, parsing — is made in the core. Use it through the
//! `vllm-client` facade with the `async-std` feature: `vllm_client::async_std::VllmClient`.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use vllm_client_async_std::VllmClient;
//! use vllm_client_core::StreamEvent;
//!
//! # async fn run() -> Result<(), vllm_client_core::VllmError> {
//! let client = VllmClient::new("http://localhost:8000/v1").timeout_secs(120);
//! let mut stream = client
//!     .chat
//!     .completions()
//!     .create()
//!     .model("Qwen/Qwen2.5-7B-Instruct")
//!     .messages(serde_json::json!([{"role": "user", "content": "Tell me a story"}]))
//!     .send_stream()
//!     .await?;
//! while let Some(event) = stream.next().await {
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
//! # Connections
//!
//! Keep-alive is **off**: every attempt opens its own connection, and dropping a response
//! (an [`EventStream`] dropped mid-stream, an attempt that timed out) closes it, so vLLM aborts
//! the generation. surf's HTTP/1 connection pool would hand an unfinished connection back to
//! the pool instead, leaving the generation running and the connection unusable.
//!
//! The HTTP/1 backend under surf is this crate's [`Http1`], not surf's default one (async-h1's
//! client), which reads a body delimited by the end of the connection (no `Content-Length`,
//! not chunked: llama.cpp's server and several proxies stream so) as empty, and takes a body
//! shorter than its `Content-Length` as complete. [`Http1`] frames bodies as RFC 9112 §6.3
//! says; a body cut short is a transport error, as on the other adapters.
//!
//! It has no connect timer of its own: connecting is bounded by the deadline of the response
//! head (first-token, attempt and overall timeouts) that the core hands out with each request.
#![deny(missing_docs)]

mod executor;
mod http1;
mod runner;
mod stream;

pub use executor::{AsyncStd, BoxFuture};
pub use http1::Http1;
pub use stream::EventStream;

/// The async-std client: `VllmClient::new("http://localhost:8000/v1")`.
pub type VllmClient = vllm_client_core::client::Client<AsyncStd>;
/// The async-std client's builder.
pub type VllmClientBuilder = vllm_client_core::client::ClientBuilder<AsyncStd>;
