//! A resilient client for [vLLM](https://github.com/vllm-project/vllm) and every server that
//! speaks its OpenAI-compatible API (LiteLLM, llama.cpp's server, gateways in front of vLLM
//! fleets): timeouts, retries, backoff, `Retry-After`, a retry budget, a circuit breaker, rate
//! and concurrency limits and streaming are built in, so you never hand-write a retry loop.
//!
//! ```no_run
//! use vllm_client::{json, StreamEvent, StreamExt, VllmClient};
//!
//! # async fn run() -> Result<(), vllm_client::VllmError> {
//! let client = VllmClient::new("http://localhost:8000/v1").timeout_secs(120);
//!
//! let response = client
//!     .chat
//!     .completions()
//!     .create()
//!     .model("Qwen/Qwen2.5-7B-Instruct")
//!     .messages(json!([{"role": "user", "content": "Hello!"}]))
//!     .send()
//!     .await?; // retried on 429/5xx/timeouts, with backoff and Retry-After
//! println!("{}", response.content.unwrap_or_default());
//!
//! let mut stream = client
//!     .chat
//!     .completions()
//!     .create()
//!     .model("Qwen/Qwen2.5-7B-Instruct")
//!     .messages(json!([{"role": "user", "content": "Tell me a story"}]))
//!     .send_stream()
//!     .await?;
//! while let Some(event) = stream.next().await {
//!     match event {
//!         StreamEvent::Content(text) => print!("{text}"),
//!         StreamEvent::Done => break,
//!         StreamEvent::Error(e) => return Err(e), // cut, stalled or failed mid-stream
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Every knob, with its default, is on [`VllmClientBuilder`]
//! ([`ClientBuilder`](vllm_client_core::client::ClientBuilder)); `VllmClient::new(url)` alone
//! already retries transient failures twice with jittered backoff, honours `Retry-After`, never
//! retries a stream whose text you have seen, and times out stalled streams.
//!
//! | adapter | type | feature |
//! |---|---|---|
//! | tokio + reqwest | `VllmClient` | `tokio` (default) |
//! | blocking (ureq, std threads) | `blocking::VllmClient` | `blocking` |
//! | async-std + surf | `async_std::VllmClient` | `async-std` |
//! | any `tower::Service<http::Request<Bytes>>` (timed with tokio) | `tower::VllmClient<S>` | `tower` |
//!
//! TLS is one choice for every adapter: `rustls` (the default: rustls with aws-lc-rs),
//! `rustls-ring` or `native-tls`, each with the operating system's trust store; the README's
//! "TLS" section says how to trust a private CA and what to do about rustls' process-wide
//! crypto provider.
//!
//! The core that makes every decision is [`vllm_client_core`]: pure, deterministic, and
//! usable on its own.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use serde_json::json;
pub use vllm_client_core::api::{
    AudioRequest, Chunk, ChunkChoice, ChunkDelta, ClassifyRequest, ClassifyResponse, Content,
    ContentPart, FunctionDefinition, InputItem, LoadLoraAdapterRequest, Multipart, OutputItem,
    PoolingRequest, PoolingResponse, RerankApi, RerankRequest, RerankResponse, Response,
    ResponseFormat, ResponseStreamEvent, ResponsesRequest, Role, ScoreRequest, ScoreResponse, Tool,
    ToolChoice, Transcription, UnloadLoraAdapterRequest,
};
pub use vllm_client_core::api::{
    ChatChoice, ChatCompletionResponse, CompletionResponse, DetokenizeRequest, DetokenizeResponse,
    EmbeddingRequest, EmbeddingResponse, FunctionCall, Message, Model, ModelList, TokenizeRequest,
    TokenizeResponse, ToolCall, ToolCallDelta, Usage, Version,
};
pub use vllm_client_core::call::CallReport;
pub use vllm_client_core::client::Reported;
pub use vllm_client_core::client::{CallOptions, Json};
pub use vllm_client_core::config::{BreakerScope, ClientConfig, Concurrency};
/// HTTP methods, for `client.request(Method::POST, "/v1/…")`.
pub use vllm_client_core::http::Method;
pub use vllm_client_core::policy::{
    Backoff, BreakerConfig, BreakerState, EjectReason, EjectionConfig, Health, HedgeConfig, Jitter,
    ProbeSchedule, ResumeStreams, RetryBudgetConfig, RoutingConfig, SlidingWindow, SlowStartConfig,
    TimeoutKind, Timeouts,
};
pub use vllm_client_core::pool::{
    DnsDiscovery, EndpointConfig, EndpointId, EndpointStatus, EndpointsUpdate,
};
pub use vllm_client_core::{ApiError, StreamEvent, VllmError};

/// The pure core, for direct use of the decoders, policies and the call driver.
pub use vllm_client_core as core;

/// `next()` and the other combinators on a stream of events: the same trait as
/// `futures::StreamExt`, so `use vllm_client::StreamExt` is all a stream needs.
pub use futures_util::StreamExt;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use vllm_client_tokio::{ChunkStream, ResponseStream};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use vllm_client_tokio::{EventStream, VllmClient, VllmClientBuilder};

/// Metric names, units, bucket boundaries and the `gen_ai.provider.name` value.
#[cfg(all(
    not(feature = "tokio"),
    not(feature = "blocking"),
    feature = "async-std"
))]
pub use vllm_client_async_std::observability;
/// Metric names, units, bucket boundaries and the `gen_ai.provider.name` value.
#[cfg(all(not(feature = "tokio"), feature = "blocking"))]
pub use vllm_client_blocking::observability;
/// Metric names, units, bucket boundaries and the `gen_ai.provider.name` value (see the
/// README's "Observability" section).
#[cfg(feature = "tokio")]
pub use vllm_client_tokio::observability;
/// Metric names, units, bucket boundaries and the `gen_ai.provider.name` value.
#[cfg(all(
    not(feature = "tokio"),
    not(feature = "blocking"),
    not(feature = "async-std"),
    feature = "tower"
))]
pub use vllm_client_tower::observability;

/// The blocking client: same builder and method names, values and iterators instead of
/// futures and streams. No async runtime inside.
#[cfg(feature = "blocking")]
#[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
pub mod blocking {
    pub use vllm_client_blocking::*;
}

/// The async-std + surf client: same builder and method names as the tokio client.
///
/// async-std is discontinued upstream (RUSTSEC-2025-0052); prefer the tokio client for new
/// code. This adapter stays behind its feature so that others never compile it.
#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub mod async_std {
    pub use vllm_client_async_std::*;
}

/// The client over any `tower::Service<http::Request<Bytes>>` (a hyper-util client, a stack
/// of tower layers), timed with tokio: `tower::VllmClient::builder().http_client(service)`.
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower {
    pub use vllm_client_tower::*;
}

/// The README's examples, compiled as doctests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The embedding guide's examples (`docs/embedding.md`), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/embedding.md")]
pub struct EmbeddingDoctests;
