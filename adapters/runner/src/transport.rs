//! The two traits an adapter implements: [`Transport`] (async) and [`BlockingTransport`].

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use vllm_client_core::call::{AttemptId, Event, ResponseHead, TransportErrorKind};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::ErrorSource;

/// Why a transport operation failed, as the driver's contract names it.
#[derive(Debug, Clone)]
pub struct Failed {
    /// Connect, connect timeout, broken connection, or a request refused before sending.
    pub kind: TransportErrorKind,
    /// What the HTTP client said (never the request's headers).
    pub message: String,
    /// The HTTP client's error itself, when the transport keeps it: it becomes the
    /// `source()` of the call's `VllmError::Connect` / `Transport`, for callers who downcast
    /// (a TLS error, an `std::io::Error`, `reqwest::Error`, …).
    pub source: Option<ErrorSource>,
}

impl PartialEq for Failed {
    /// Failures compare by kind and message (the source is the same error, told again).
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for Failed {}

impl Failed {
    /// A failure of `kind`.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        Failed {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same failure, keeping `error` as its cause.
    pub fn with_source(mut self, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(error));
        self
    }

    /// The event the driver is told about `attempt`, with the cause when there is one.
    pub(crate) fn into_event(self, attempt: AttemptId) -> Event {
        Event::TransportError {
            attempt,
            kind: self.kind,
            message: self.message,
            source: self.source,
        }
    }
}

/// An async transport: moves bytes, nothing else. Every deadline is raced by the loop, and
/// the loop runs the operations of a call's exchanges concurrently (a hedge racing the first
/// attempt, a health probe).
///
/// Rules (the core's contract, `vllm_client_core::call::contract`): `send` resolves with the
/// response head once it arrives; `read` yields the *decoded* body (no chunked framing, a body
/// shorter than its `Content-Length` is an `Io` failure) and `Ok(None)` at its end, and is
/// **cancel-safe**: a `read` future dropped before it resolves loses no data (the loop drops
/// it when a timer wins the race, and reads again later); dropping a `Response` before its end
/// closes the connection.
pub trait Transport: Send + Sync + Sized + 'static {
    /// The HTTP client users may bring (`reqwest::Client`, `surf::Client`, …).
    type HttpClient;
    /// A response whose body is being read.
    type Response: Send + 'static;

    /// A transport for `config`, with the user's HTTP client when given.
    fn new(config: &ClientConfig, http: Option<Self::HttpClient>) -> Self;
    /// The same transport (same connection pool where it can) for another configuration.
    fn reconfigure(&self, config: &ClientConfig) -> Self;
    /// Sends `request` (connecting within `connect_timeout` where the HTTP client can time
    /// its connect phase) and resolves with the head.
    fn send(
        &self,
        request: Request<Bytes>,
        connect_timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(ResponseHead, Self::Response), Failed>> + Send;
    /// The next chunk of the decoded body, `None` at its end.
    fn read(
        response: &mut Self::Response,
    ) -> impl Future<Output = Result<Option<Bytes>, Failed>> + Send + '_;
    /// Resolves at `deadline` (up to 10 ms early is tolerated; earlier than that, the run
    /// loop may not notice it before the next chunk, because it does not poll its timer again
    /// while the timer holds the task's waker).
    fn sleep_until(deadline: Instant) -> impl Future<Output = ()> + Send;
}

/// What a blocking operation came to.
#[derive(Debug)]
pub enum Completion<T> {
    /// It completed.
    Ok(T),
    /// The deadline passed first.
    TimedOut,
    /// It failed.
    Failed(Failed),
}

/// A blocking transport: each operation returns by its deadline (plus a small margin).
///
/// Same rules as [`Transport`]; dropping a `Response` must close its connection (and unblock
/// whatever thread reads it). The loop performs an operation on the caller's thread when it is
/// the call's only one; when a call has two exchanges in flight (a hedge) each runs on a thread
/// of its own, so `Self` and its responses are shared across threads (`Send + Sync`).
pub trait BlockingTransport: Send + Sync + Sized + 'static {
    /// The HTTP client users may bring (`ureq::Agent`).
    type HttpClient;
    /// A response whose body is being read.
    type Response: Send + 'static;

    /// A transport for `config`, with the user's HTTP client when given.
    fn new(config: &ClientConfig, http: Option<Self::HttpClient>) -> Self;
    /// The same transport for another configuration.
    fn reconfigure(&self, config: &ClientConfig) -> Self;
    /// Sends `request` and waits for the head until `deadline`.
    fn send(
        &self,
        request: Request<Bytes>,
        deadline: Option<Instant>,
        connect_timeout: Option<Duration>,
    ) -> Completion<(ResponseHead, Self::Response)>;
    /// Waits for the next chunk of the decoded body until `deadline`; `None` at its end.
    fn read(
        &self,
        response: &mut Self::Response,
        deadline: Option<Instant>,
    ) -> Completion<Option<Bytes>>;
}
