//! The user-facing API, written once: [`Client`], its builder, and the request builders.
//!
//! Each adapter implements [`Execute`] — "run this call" — and names its client
//! `VllmClient = Client<ItsExecutor>`. Every setter, knob and endpoint below is therefore the
//! same in the tokio, async-std and blocking clients; only what `send()` returns differs
//! (a future, or the value itself).

mod builder;
mod chat;
mod completions;
mod decode;

use std::fmt;

pub use builder::ClientBuilder;
pub use chat::{Chat, ChatCompletionBuilder, ChatCompletions};
pub use completions::{CompletionBuilder, Completions};
pub use decode::Decode;

use serde_json::Value;

use crate::api::{
    DetokenizeRequest, DetokenizeResponse, EmbeddingRequest, EmbeddingResponse, ModelList,
    TokenizeRequest, TokenizeResponse, Version,
};
use crate::call::CallReport;
pub use crate::call::CallSpec;
use crate::config::ClientConfig;
use crate::error::VllmError;
use crate::request::{ApiKey, Operation};

/// What an adapter provides: running calls the core describes.
///
/// Users never call this trait; it is public so that adapters (and test doubles) can implement
/// it.
pub trait Execute: Clone + Sized {
    /// What a send returns for a response `T`: `impl Future<Output = Result<T, VllmError>>` in
    /// async adapters, `Result<T, VllmError>` in the blocking one.
    type Output<T: Send + 'static>;
    /// The stream `send_stream()` yields (`futures::Stream` or `Iterator` of `StreamEvent`).
    type Stream: Send + 'static;
    /// The adapter's HTTP client type, for users who bring their own.
    type HttpClient;

    /// An executor for `config`, with the user's HTTP client when given.
    fn from_config(config: ClientConfig, http: Option<Self::HttpClient>) -> Self;
    /// The configuration in force.
    fn config(&self) -> &ClientConfig;
    /// The same executor (same HTTP client) with another configuration and fresh shared state.
    fn reconfigure(&self, config: ClientConfig) -> Self;
    /// Runs a call whose answer is one JSON document.
    fn execute<T: Decode + Send + 'static>(&self, spec: CallSpec) -> Self::Output<T>;
    /// Runs a call answered by one JSON document, and reports what the call went through
    /// (attempts, retries, which timer fired) whatever its result.
    fn execute_reported<T: Decode + Send + 'static>(
        &self,
        spec: CallSpec,
    ) -> Self::Output<Reported<T>>;
    /// Runs a streamed call.
    fn execute_stream(&self, spec: CallSpec) -> Self::Output<Self::Stream>;
    /// Every endpoint's state now (health, load, latency, failures).
    fn endpoints(&self) -> Vec<crate::pool::EndpointStatus>;
}

/// A call's result together with its [`CallReport`]: how many attempts it took, why each retry
/// happened, which timer fired.
#[derive(Debug)]
#[non_exhaustive]
pub struct Reported<T> {
    /// The result, exactly as `send()` would have returned it.
    pub result: Result<T, VllmError>,
    /// What the call went through.
    pub report: CallReport,
}

impl<T> Reported<T> {
    /// Pairs a result with its report.
    pub fn new(result: Result<T, VllmError>, report: CallReport) -> Self {
        Reported { result, report }
    }
}

/// A client of a vLLM (or any OpenAI-compatible) server, generic over the adapter that runs
/// its calls. Use it through an adapter's alias: `vllm_client::VllmClient` (tokio),
/// `vllm_client::blocking::VllmClient`, `vllm_client::async_std::VllmClient`.
///
/// Cloning is cheap and clones share the connection pool, the retry budget, the circuit
/// breaker and the limits.
#[derive(Clone)]
pub struct Client<E> {
    /// `client.chat.completions().create()…`
    pub chat: Chat<E>,
    /// `client.completions.create()…` (legacy completions)
    pub completions: Completions<E>,
    exec: E,
}

impl<E> fmt::Debug for Client<E>
where
    E: Execute,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", self.exec.config())
            .finish()
    }
}

impl<E: Execute> Client<E> {
    /// A client of the server at `base_url` (`http://host:8000/v1`; a trailing slash or a
    /// missing `/v1` is fine) with the default policy: see [`ClientBuilder`] for every knob and
    /// its default. Never fails: a bad URL is reported by the first request.
    pub fn new(base_url: &str) -> Self {
        Self::builder().base_url(base_url).build()
    }

    /// A builder with every knob.
    pub fn builder() -> ClientBuilder<E> {
        ClientBuilder::new()
    }

    pub(crate) fn from_exec(exec: E) -> Self {
        Client {
            chat: Chat::new(exec.clone()),
            completions: Completions::new(exec.clone()),
            exec,
        }
    }

    fn map_config(self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        let mut config = self.exec.config().clone();
        f(&mut config);
        Self::from_exec(self.exec.reconfigure(config))
    }

    /// Sets the timeout of each attempt in seconds (the whole request, body included).
    pub fn timeout_secs(self, secs: u64) -> Self {
        self.map_config(|c| c.policy.timeouts.attempt = Some(std::time::Duration::from_secs(secs)))
    }

    /// Sets the API key, sent as `Authorization: Bearer <key>`.
    pub fn with_api_key(self, key: impl Into<String>) -> Self {
        self.map_config(|c| c.request.api_key = Some(ApiKey::new(key)))
    }

    /// Every endpoint's state now: healthy, ejected until when (and why) or probing; requests
    /// in flight; latency estimate; failure counts. One entry for a client with one server.
    pub fn endpoints(&self) -> Vec<crate::pool::EndpointStatus> {
        self.exec.endpoints()
    }

    /// The configuration in force.
    pub fn config(&self) -> &ClientConfig {
        self.exec.config()
    }

    /// The executor (the adapter's handle), for adapter-specific extras.
    pub fn executor(&self) -> &E {
        &self.exec
    }

    /// `GET /v1/models`: the served models.
    pub fn models(&self) -> E::Output<ModelList> {
        self.exec.execute(CallSpec::get(Operation::Models))
    }

    /// `POST /v1/embeddings`.
    pub fn embeddings(&self, request: EmbeddingRequest) -> E::Output<EmbeddingResponse> {
        self.exec
            .execute(CallSpec::json(Operation::Embeddings, to_value(&request)))
    }

    /// `POST /tokenize` (at the server's root).
    pub fn tokenize(&self, request: TokenizeRequest) -> E::Output<TokenizeResponse> {
        self.exec
            .execute(CallSpec::json(Operation::Tokenize, to_value(&request)))
    }

    /// `POST /detokenize` (at the server's root).
    pub fn detokenize(&self, request: DetokenizeRequest) -> E::Output<DetokenizeResponse> {
        self.exec
            .execute(CallSpec::json(Operation::Detokenize, to_value(&request)))
    }

    /// `GET /health`: `Ok(())` when the server answers 2xx.
    pub fn health(&self) -> E::Output<()> {
        self.exec.execute(CallSpec::get(Operation::Health))
    }

    /// `GET /version`.
    pub fn version(&self) -> E::Output<Version> {
        self.exec.execute(CallSpec::get(Operation::Version))
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, VllmError> {
    serde_json::to_value(v)
        .map_err(|e| VllmError::InvalidRequest(format!("cannot serialize the request: {e}")))
}
