//! The tower adapter of `vllm-client`: the call driver over any
//! `tower::Service<http::Request<Bytes>>`.
//!
//! Rust services build their HTTP clients from tower layers — a hyper-util client wrapped in
//! tracing, auth, proxy or test layers. [`Tower`] runs the client's calls over such a service:
//! every decision (retries, backoff, `Retry-After`, timeouts, the breaker, limits, parsing)
//! is still the core's, the run loop `vllm-client-runner`'s; the service only sends a request
//! and hands back the response, and tokio times what the core asks for. Use it through the
//! `vllm-client` facade with the `tower` feature: `vllm_client::tower::VllmClient`.
//!
//! ```no_run
//! # async fn run() -> Result<(), vllm_client_core::VllmError> {
//! # use bytes::Bytes;
//! # #[derive(Clone)] struct MyService;
//! # impl tower_service::Service<http::Request<Bytes>> for MyService {
//! #     type Response = http::Response<http_body_util::Full<Bytes>>;
//! #     type Error = std::io::Error;
//! #     type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
//! #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> { std::task::Poll::Ready(Ok(())) }
//! #     fn call(&mut self, _: http::Request<Bytes>) -> Self::Future { unimplemented!() }
//! # }
//! # let service = MyService;
//! use vllm_client_tower::VllmClient;
//!
//! let client = VllmClient::builder()
//!     .base_url("http://localhost:8000/v1")
//!     .http_client(service) // any Service<http::Request<Bytes>> that is Clone + Send
//!     .build();
//! let models = client.models().await?;
//! # Ok(()) }
//! ```
//!
//! The example `tower_hyper` (`cargo run -p vllm-client-suite --example tower_hyper`) runs it
//! over hyper-util's client, with a `map_request` layer turning the body into `Full<Bytes>`.
//!
//! # What the service must do
//!
//! - **Send the request as given** and resolve with the response once its head arrived; the
//!   body is read frame by frame afterwards. Data frames are the *decoded* body (hyper's
//!   `Incoming` is); trailers are ignored.
//! - **Hand every status back as a response**: a 503 is an answer for the core to judge, not a
//!   service error. A service error is a transport failure: a `std::io::Error` anywhere in its
//!   source chain is classified by its kind (refused → `VllmError::Connect`), anything else is
//!   a broken connection.
//! - **No retries or timeouts of its own** (or longer ones than the client's, which are
//!   enforced on top): a retrying layer under the client multiplies attempts and hides
//!   `Retry-After`.
//! - **Close the connection when a response is dropped** before its end: the client drops a
//!   stream it no longer reads (an idle timeout, a cancelled call, a hedge that lost), and vLLM
//!   stops generating only when the connection closes. hyper does.
//!
//! Readiness is respected: each request goes to a clone of the service once `poll_ready` said
//! so (tower's usual "clone, then ready, then call"), so a concurrency or rate layer in the
//! stack makes the call wait — within the core's deadline for the response head.
//!
//! A client built without a service (`http_client(..)` not called) refuses every request with
//! `VllmError::InvalidRequest` saying so.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::error::Error as StdError;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, Bytes};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;
use vllm_client_core::call::error_chain;
use vllm_client_core::call::{ResponseHead, TransportErrorKind};
use vllm_client_core::config::ClientConfig;
use vllm_client_runner::{AsyncExec, Failed, Transport};

pub use vllm_client_runner::observability;
pub use vllm_client_runner::EventStream;

/// The executor: the shared run loop over [`Tower`].
pub type TowerExec<S> = AsyncExec<Tower<S>>;
/// The client over the service `S`: `VllmClient::builder().http_client(service).build()`.
pub type VllmClient<S> = vllm_client_core::client::Client<TowerExec<S>>;
/// The client's builder.
pub type VllmClientBuilder<S> = vllm_client_core::client::ClientBuilder<TowerExec<S>>;

/// The boxed error type of services and bodies.
type BoxError = Box<dyn StdError + Send + Sync>;

/// A `tower::Service<http::Request<Bytes>>` and tokio timers as a [`Transport`].
///
/// The service is kept behind a lock taken only to clone it (services such as tower's
/// `BoxCloneService` are `Send` but not `Sync`); each request goes to its own clone.
pub struct Tower<S> {
    service: Option<Mutex<S>>,
}

impl<S> std::fmt::Debug for Tower<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tower")
            .field(
                "service",
                &self.service.as_ref().map(|_| std::any::type_name::<S>()),
            )
            .finish()
    }
}

impl<S: Clone> Tower<S> {
    fn service(&self) -> Option<S> {
        let lock = self.service.as_ref()?;
        // A clone cannot leave the service half-changed: a poisoned lock still holds it.
        let service = lock.lock().unwrap_or_else(|p| p.into_inner());
        Some(service.clone())
    }
}

/// A failure of the service (or of a body frame) as the core names it.
fn failed(e: BoxError) -> Failed {
    let e: &(dyn StdError + 'static) = &*e;
    let mut kind = TransportErrorKind::Io;
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            kind = TransportErrorKind::of_io_error(io.kind());
            break;
        }
        source = err.source();
    }
    Failed::new(kind, error_chain(e))
}

impl<S, B> Transport for Tower<S>
where
    S: Service<http::Request<Bytes>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type HttpClient = S;
    type Response = Pin<Box<B>>;

    fn new(_config: &ClientConfig, http: Option<S>) -> Self {
        Tower {
            service: http.map(Mutex::new),
        }
    }

    fn reconfigure(&self, _config: &ClientConfig) -> Self {
        Tower {
            service: self.service().map(Mutex::new),
        }
    }

    async fn send(
        &self,
        request: http::Request<Bytes>,
        _connect_timeout: Option<Duration>,
    ) -> Result<(ResponseHead, Pin<Box<B>>), Failed> {
        let Some(mut service) = self.service() else {
            return Err(Failed::new(
                TransportErrorKind::Rejected,
                "no tower service: build the client with `http_client(service)`",
            ));
        };
        poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(|e| failed(e.into()))?;
        let response = service.call(request).await.map_err(|e| failed(e.into()))?;
        let (parts, body) = response.into_parts();
        let head = ResponseHead::new(parts.status, parts.headers, SystemTime::now());
        Ok((head, Box::pin(body)))
    }

    async fn read(body: &mut Pin<Box<B>>) -> Result<Option<Bytes>, Failed> {
        loop {
            match body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(failed(e.into())),
                Some(Ok(frame)) => {
                    // Trailers carry nothing the core reads; empty data frames are skipped.
                    if let Ok(mut data) = frame.into_data() {
                        let bytes = data.copy_to_bytes(data.remaining());
                        if !bytes.is_empty() {
                            return Ok(Some(bytes));
                        }
                    }
                }
            }
        }
    }

    async fn sleep_until(deadline: Instant) {
        tokio::time::sleep_until(deadline.into()).await
    }
}
