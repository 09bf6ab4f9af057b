//! The user-facing API, written once: [`Client`], its builder, and the request builders.
//!
//! Each adapter implements [`Execute`] — "run this call" — and [`ExecuteExt`] — the
//! result-shaped streams and derived executors — and names its client
//! `VllmClient = Client<ItsExecutor>`. Every setter, knob and endpoint below is therefore the
//! same in the tokio, async-std and blocking clients; only what `send()` returns differs
//! (a future, or the value itself).
//!
//! # Operations
//!
//! | operation | method | streams |
//! |---|---|---|
//! | chat completions | `client.chat.completions().create()…` | `send_stream()` (events), `send_chunks()` (results) |
//! | completions | `client.completions.create()…` | `send_stream()`, `send_chunks()` |
//! | Responses | [`client.responses()`](Client::responses)`.create()…`, `.retrieve(id)`, `.cancel(id)` | `send_stream()` (typed, numbered events) |
//! | embeddings | [`client.embeddings(…)`](Client::embeddings) (`base64`, `dimensions`) | — |
//! | rerank, score | [`client.rerank(…)`](Client::rerank), [`client.score(…)`](Client::score) | — |
//! | classify, pooling | [`client.classify(…)`](Client::classify), [`client.pooling(…)`](Client::pooling) | — |
//! | audio | [`client.audio()`](Client::audio)`.transcription(…)` / `.translation(…)` | `send_stream()`, `send_chunks()` |
//! | LoRA | [`client.load_lora_adapter(…)`](Client::load_lora_adapter), [`client.unload_lora_adapter(…)`](Client::unload_lora_adapter) | — |
//! | models, tokenize, detokenize, health, version | `client.models()`, … | — |
//! | anything else | [`client.request(method, path)`](Client::request) | `send_stream()`, `send_chunks()` |
//!
//! Every operation goes through the same policies — retries, the retry budget, the breaker,
//! the limits, the pool — and is observed under its own `gen_ai.operation.name`.

mod audio;
mod builder;
mod chat;
mod completions;
mod decode;
mod endpoints;
mod env;
mod generation;
mod options;
mod raw;
mod responses;
pub mod views;

use std::fmt;
use std::sync::Arc;

pub use audio::{Audio, AudioBuilder};
pub use builder::ClientBuilder;
pub use chat::{Chat, ChatCompletionBuilder, ChatCompletions};
pub use completions::{CompletionBuilder, Completions};
pub use decode::{Decode, Json};
pub use endpoints::ManageEndpoints;
pub use env::{EnvConfig, API_KEY_VARS, BASE_URL_VARS};
pub use options::{CallOptions, IDEMPOTENCY_KEY, REQUEST_ID};
pub use raw::RequestBuilder;
pub use responses::{IntoInput, ResponseBuilder, Responses};

use serde_json::Value;

use crate::api::{
    ClassifyRequest, ClassifyResponse, DetokenizeRequest, DetokenizeResponse, EmbeddingRequest,
    EmbeddingResponse, LoadLoraAdapterRequest, ModelList, PoolingRequest, PoolingResponse,
    RerankApi, RerankRequest, RerankResponse, ScoreRequest, ScoreResponse, TokenizeRequest,
    TokenizeResponse, UnloadLoraAdapterRequest, Version,
};
use crate::call::CallReport;
pub use crate::call::CallSpec;
use crate::config::ClientConfig;
use crate::error::VllmError;
use crate::request::{ApiKey, Operation, Route};

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

/// The rest of an adapter's executor: the result-shaped streams and derived executors.
///
/// Users never call this trait either. The stream types follow the view rule of
/// [`views`]: `Ok` items, and either the end after a success or one `Err` as the last item.
pub trait ExecuteExt: Execute {
    /// The whole chunks of a chat, completion or transcription stream as results:
    /// `Stream<Item = Result<Chunk, VllmError>>` (async) or the `Iterator` twin (blocking).
    type Chunks: Send + 'static;
    /// The typed events of a Responses stream as results:
    /// `Stream<Item = Result<ResponseStreamEvent, VllmError>>` or the `Iterator` twin.
    type Responses: Send + 'static;

    /// Runs a streamed call read as whole chunks (the spec's kind is
    /// [`StreamKind::ChatChunks`](crate::StreamKind::ChatChunks) or
    /// [`CompletionsChunks`](crate::StreamKind::CompletionsChunks)).
    fn execute_chunks(&self, spec: CallSpec) -> Self::Output<Self::Chunks>;
    /// Runs a Responses stream ([`StreamKind::Responses`](crate::StreamKind::Responses)).
    fn execute_responses(&self, spec: CallSpec) -> Self::Output<Self::Responses>;
    /// The same executor — same connection pool and the **same shared state** (retry budget,
    /// breaker, limits, pool health, concurrency queue) — with another configuration for its
    /// calls (timeouts, retries, key, headers). The shared state keeps the settings it was
    /// built with (breaker, budget, limits, endpoints).
    fn derive(&self, config: ClientConfig) -> Self;
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
/// breaker and the limits. So do the clients derived from it with
/// [`timeout_secs`](Self::timeout_secs), [`with_api_key`](Self::with_api_key) and
/// [`with_options`](Self::with_options): they change how their own calls are made, never the
/// state all calls share.
#[derive(Clone)]
pub struct Client<E> {
    /// `client.chat.completions().create()…`
    pub chat: Chat<E>,
    /// `client.completions.create()…` (legacy completions)
    pub completions: Completions<E>,
    exec: E,
    /// Shared by the client's clones and its `chat`/`completions` (a client is cloned into
    /// every task; its options are copied only into each request being built).
    options: Arc<CallOptions>,
}

impl<E> fmt::Debug for Client<E>
where
    E: Execute,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", self.exec.config())
            .field("options", &self.options)
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

    /// A client configured from the environment: `VLLM_BASE_URL` (else `OPENAI_BASE_URL`,
    /// else `http://localhost:8000/v1`) and `VLLM_API_KEY` (else `OPENAI_API_KEY`), every
    /// other knob at its default. An empty variable counts as unset. See [`EnvConfig`] to
    /// start a builder from them instead.
    pub fn from_env() -> Self {
        Self::builder().from_env().build()
    }

    pub(crate) fn from_exec(exec: E) -> Self {
        Self::with_exec(exec, Arc::default())
    }

    fn with_exec(exec: E, options: Arc<CallOptions>) -> Self {
        Client {
            chat: Chat::with_options(exec.clone(), options.clone()),
            completions: Completions::with_options(exec.clone(), options.clone()),
            exec,
            options,
        }
    }

    /// A client whose every call uses `options` (timeouts, retries, deadline, headers, an
    /// idempotency key…) on top of this one's, sharing everything else: the connection pool,
    /// the retry budget, the breaker, the limits. Cheap (nothing is rebuilt); options given
    /// to a request itself come on top.
    ///
    /// ```no_run
    /// # fn run(client: vllm_client_core::client::Client<impl vllm_client_core::client::Execute>) {
    /// use std::time::Duration;
    /// use vllm_client_core::client::CallOptions;
    ///
    /// let patient = client.with_options(CallOptions::new().timeout(Duration::from_secs(900)));
    /// # let _ = patient; }
    /// ```
    pub fn with_options(&self, options: CallOptions) -> Self {
        let merged = CallOptions::clone(&self.options).merged(&options);
        Self::with_exec(self.exec.clone(), Arc::new(merged))
    }

    /// The options every call of this client uses (see [`with_options`](Self::with_options)).
    pub fn options(&self) -> &CallOptions {
        &self.options
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

    fn spec(&self, spec: CallSpec) -> CallSpec {
        spec.with_options(&self.options)
    }

    fn json<T: Decode + Send + 'static>(
        &self,
        operation: Operation,
        body: Result<Value, VllmError>,
    ) -> E::Output<T> {
        self.exec
            .execute(self.spec(CallSpec::json(operation, body)))
    }

    /// `GET /v1/models`: the served models.
    pub fn models(&self) -> E::Output<ModelList> {
        self.exec
            .execute(self.spec(CallSpec::get(Operation::Models)))
    }

    /// `POST /v1/embeddings`. With [`EmbeddingRequest::base64`] the vectors travel as base64
    /// and are decoded into the same `Vec<f32>`.
    pub fn embeddings(&self, request: EmbeddingRequest) -> E::Output<EmbeddingResponse> {
        self.json(Operation::Embeddings, to_value(&request))
    }

    /// `POST /v1/rerank` (or `/v2/rerank`, `/rerank`: [`rerank_at`](Self::rerank_at)): the
    /// documents ordered by relevance to the query.
    pub fn rerank(&self, request: RerankRequest) -> E::Output<RerankResponse> {
        self.rerank_at(RerankApi::V1, request)
    }

    /// A rerank request to the given path.
    pub fn rerank_at(&self, api: RerankApi, request: RerankRequest) -> E::Output<RerankResponse> {
        let spec = CallSpec::json(Operation::Rerank, request.to_body())
            .with_route(Route::new(http::Method::POST, api.path()));
        self.exec.execute(self.spec(spec))
    }

    /// `POST /score`: the similarity of text pairs (cross-encoder or embedding models).
    pub fn score(&self, request: ScoreRequest) -> E::Output<ScoreResponse> {
        self.json(Operation::Score, request.to_body())
    }

    /// `POST /classify`: class probabilities of each input (classifier models).
    pub fn classify(&self, request: ClassifyRequest) -> E::Output<ClassifyResponse> {
        self.json(Operation::Classify, request.to_body())
    }

    /// `POST /pooling`: a pooling model's raw output for each input.
    pub fn pooling(&self, request: PoolingRequest) -> E::Output<PoolingResponse> {
        self.json(Operation::Pooling, request.to_body())
    }

    /// `POST /v1/load_lora_adapter`: loads a LoRA adapter, served as `model` under its
    /// name from then on. The answer is the server's line of text.
    pub fn load_lora_adapter(&self, request: LoadLoraAdapterRequest) -> E::Output<String> {
        self.json(Operation::LoadLoraAdapter, to_value(&request))
    }

    /// `POST /v1/unload_lora_adapter`. The answer is the server's line of text.
    pub fn unload_lora_adapter(&self, request: UnloadLoraAdapterRequest) -> E::Output<String> {
        self.json(Operation::UnloadLoraAdapter, to_value(&request))
    }

    /// `POST /tokenize` (at the server's root).
    pub fn tokenize(&self, request: TokenizeRequest) -> E::Output<TokenizeResponse> {
        self.json(Operation::Tokenize, to_value(&request))
    }

    /// `POST /detokenize` (at the server's root).
    pub fn detokenize(&self, request: DetokenizeRequest) -> E::Output<DetokenizeResponse> {
        self.json(Operation::Detokenize, to_value(&request))
    }

    /// `GET /health`: `Ok(())` when the server answers 2xx.
    pub fn health(&self) -> E::Output<()> {
        self.exec
            .execute(self.spec(CallSpec::get(Operation::Health)))
    }

    /// `GET /version`.
    pub fn version(&self) -> E::Output<Version> {
        self.exec
            .execute(self.spec(CallSpec::get(Operation::Version)))
    }

    /// Any other endpoint, under the same policies: `method` on `path`, relative to the
    /// server root (`/v1/…` for the OpenAI API, `/metrics`, `/v2/rerank`, …), with a JSON or
    /// raw body. See [`RequestBuilder`].
    ///
    /// ```no_run
    /// # fn run(client: vllm_client_core::client::Client<impl vllm_client_core::client::Execute>) {
    /// use vllm_client_core::http::Method;
    ///
    /// let pending = client
    ///     .request(Method::POST, "/v1/chat/completions/render")
    ///     .json(&serde_json::json!({"model": "m", "messages": []}))
    ///     .send::<serde_json::Value>();
    /// # let _ = pending; }
    /// ```
    pub fn request(&self, method: http::Method, path: &str) -> RequestBuilder<E> {
        RequestBuilder::new(
            self.exec.clone(),
            CallOptions::clone(&self.options),
            method,
            path,
        )
    }

    /// The Responses API: `create()`, `retrieve(id)`, `cancel(id)`.
    pub fn responses(&self) -> Responses<E> {
        Responses::new(self.exec.clone(), CallOptions::clone(&self.options))
    }

    /// Speech to text: `transcription(…)` and `translation(…)`.
    pub fn audio(&self) -> Audio<E> {
        Audio::new(self.exec.clone(), CallOptions::clone(&self.options))
    }
}

impl<E: ExecuteExt> Client<E> {
    fn map_config(&self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        let mut config = self.exec.config().clone();
        f(&mut config);
        Self::with_exec(self.exec.derive(config), self.options.clone())
    }

    /// A client whose attempts time out after `secs` seconds (the whole request, body
    /// included), sharing this one's connection pool, retry budget, breaker, limits and
    /// endpoint health (it is derived, not rebuilt). For one request, use
    /// `.timeout(…)` on its builder instead.
    pub fn timeout_secs(&self, secs: u64) -> Self {
        self.map_config(|c| c.policy.timeouts.attempt = Some(std::time::Duration::from_secs(secs)))
    }

    /// A client that sends `key` as `Authorization: Bearer <key>`, sharing this one's
    /// connection pool, retry budget, breaker, limits and endpoint health. Endpoints
    /// configured with a key of their own keep it.
    pub fn with_api_key(&self, key: impl Into<String>) -> Self {
        self.map_config(|c| c.request.api_key = Some(ApiKey::new(key)))
    }
}

pub(crate) fn to_value<T: serde::Serialize + ?Sized>(v: &T) -> Result<Value, VllmError> {
    serde_json::to_value(v)
        .map_err(|e| VllmError::InvalidRequest(format!("cannot serialize the request: {e}")))
}
