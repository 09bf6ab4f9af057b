//! The tokio + reqwest adapter of `vllm-client`.
//!
//! This crate is IO glue only: [`Tokio`] performs the actions of the core's call driver
//! ([`vllm_client_core::call`]) with reqwest and tokio timers, and reports back what happened.
//! Every decision — retries, backoff, timeouts, the breaker, limits, parsing — is made in the
//! core. Use it through the `vllm-client` facade: `vllm_client::VllmClient`.
#![deny(missing_docs)]

mod executor;
mod runner;
mod stream;

pub use executor::Tokio;
pub use stream::EventStream;

/// The tokio client: `VllmClient::new("http://localhost:8000/v1")`.
pub type VllmClient = vllm_client_core::client::Client<Tokio>;
/// The tokio client's builder.
pub type VllmClientBuilder = vllm_client_core::client::ClientBuilder<Tokio>;
