//! The async-std + surf adapter of `vllm-client`.
//!
//! This crate is IO glue only: [`Surf`] sends requests and reads bodies with surf (HTTP/1
//! over async-std, TLS for `https` as the features chose) and times them with async-std; the run loop is
//! `vllm-client-runner`'s, every decision — retries, backoff, timeouts, the breaker, limits,
//! parsing — the core's. Use it through the
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
//!
//! Every status code 100–599 reaches the core as the server sent it, also those surf has no
//! name for (499, 529, private codes: see [`RawStatus`]); interim 1xx responses are skipped.
//!
//! # TLS
//!
//! | feature | TLS library | roots |
//! |---|---|---|
//! | `rustls` (default) | rustls 0.23 + aws-lc-rs (post-quantum hybrid key exchange first) | the OS trust store (`rustls-platform-verifier`) |
//! | `rustls-ring` | rustls 0.23 + ring | the OS trust store |
//! | `native-tls` | the platform's (OpenSSL on Linux, Secure Transport, SChannel) | the OS trust store |
//!
//! `native-tls` wins when it is on, then `rustls-ring` ([`TLS_BACKEND`] says which). The rustls crypto provider is the
//! process-wide default when the application installed one (see `vllm-client-tls`). A TLS
//! handshake that fails (an unknown issuer, a wrong name) is a connect failure
//! (`VllmError::Connect`). Your own roots or client certificate: `Http1::with_rustls` or
//! `Http1::with_native_tls`, given to `http_client(surf::Client::with_http_client(..))`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod chunked;
mod http1;
mod tls;

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::AsyncReadExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use vllm_client_core::call::error_chain;
use vllm_client_core::call::{ResponseHead, TransportErrorKind};
use vllm_client_core::config::ClientConfig;
use vllm_client_runner::{AsyncExec, Failed, Transport};

/// The native-tls connector `Http1::with_native_tls` takes.
#[cfg(feature = "native-tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "native-tls")))]
pub use async_native_tls;
pub use http1::{Http1, RawStatus};
pub use vllm_client_runner::observability;
pub use vllm_client_runner::EventStream;
pub use vllm_client_runner::{ChunkStream, ResponseStream};
/// The rustls that `Http1::with_rustls` takes a configuration of.
#[cfg(any(feature = "rustls", feature = "rustls-ring"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "rustls", feature = "rustls-ring"))))]
pub use vllm_client_tls::rustls;

/// The async-std executor: the shared run loop over [`Surf`].
pub type AsyncStd = AsyncExec<Surf>;
/// The async-std client: `VllmClient::new("http://localhost:8000/v1")`.
pub type VllmClient = vllm_client_core::client::Client<AsyncStd>;
/// The async-std client's builder.
pub type VllmClientBuilder = vllm_client_core::client::ClientBuilder<AsyncStd>;

/// Bytes asked for per read of a body.
const READ_CHUNK: usize = 16 << 10;

/// The TLS library [`Http1::new`] (the default client's backend) uses for `https`:
/// `"native-tls"`, `"rustls"` or `"none"` (no TLS feature: an `https` URL is refused with an
/// error naming the features).
pub const TLS_BACKEND: &str = vllm_client_runner::tls_backend(
    cfg!(feature = "native-tls"),
    cfg!(any(feature = "rustls", feature = "rustls-ring")),
);

/// surf and async-std timers as a [`Transport`].
///
/// With your own surf client (`http_client(..)`), build it on [`Http1`]
/// (`surf::Client::with_http_client(Http1::new())`, then your middleware): see the crate docs.
/// On surf's default backend, turn keep-alive and the timeout off
/// (`Config::set_http_keep_alive(false)`, `set_timeout(None)`), and know that it reads a body
/// delimited by the end of the connection as empty and takes a body shorter than its
/// `Content-Length` as complete.
#[derive(Debug)]
pub struct Surf {
    http: surf::Client,
}

/// A response being read, with its read buffer.
pub struct SurfResponse {
    response: surf::Response,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SurfResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SurfResponse").finish_non_exhaustive()
    }
}

impl Transport for Surf {
    type HttpClient = surf::Client;
    type Response = SurfResponse;

    fn new(_config: &ClientConfig, http: Option<surf::Client>) -> Self {
        Surf {
            http: http.unwrap_or_else(|| surf::Client::with_http_client(Http1::new())),
        }
    }

    fn reconfigure(&self, _config: &ClientConfig) -> Self {
        Surf {
            http: self.http.clone(),
        }
    }

    async fn send(
        &self,
        request: http::Request<Bytes>,
        _connect_timeout: Option<Duration>,
    ) -> Result<(ResponseHead, SurfResponse), Failed> {
        let request = to_surf(request).map_err(|m| Failed::new(TransportErrorKind::Rejected, m))?;
        match self.http.send(request).await {
            Ok(response) => {
                let head =
                    ResponseHead::new(status(&response), headers(&response), SystemTime::now());
                Ok((
                    head,
                    SurfResponse {
                        response,
                        buf: Vec::new(),
                    },
                ))
            }
            Err(e) => {
                let kind = if let Some(c) = e.downcast_ref::<http1::ConnectFailed>() {
                    match TransportErrorKind::of_io_error(c.0.kind()) {
                        TransportErrorKind::ConnectTimeout => TransportErrorKind::ConnectTimeout,
                        _ => TransportErrorKind::Connect,
                    }
                } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
                    TransportErrorKind::of_io_error(io.kind())
                } else if e.status() == surf::StatusCode::BadRequest {
                    // Refused by `Http1` before anything was sent (a scheme it cannot speak,
                    // https without a TLS feature).
                    TransportErrorKind::Rejected
                } else {
                    TransportErrorKind::Io
                };
                let f = Failed::new(kind, error_chain(e.as_ref()));
                // surf's error wraps the cause; it is kept as the call's error's `source()`
                // (an io::Error as itself, so that it can be downcast).
                Err(match e.downcast::<std::io::Error>() {
                    Ok(io) => f.with_source(io),
                    Err(e) => {
                        let cause: Box<dyn std::error::Error + Send + Sync> = e.into_inner().into();
                        Failed {
                            source: Some(std::sync::Arc::from(cause)),
                            ..f
                        }
                    }
                })
            }
        }
    }

    async fn read(r: &mut SurfResponse) -> Result<Option<Bytes>, Failed> {
        r.buf.resize(READ_CHUNK, 0);
        match r.response.read(&mut r.buf).await {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(Bytes::copy_from_slice(&r.buf[..n]))),
            Err(e) => Err(Failed::new(TransportErrorKind::Io, error_chain(&e)).with_source(e)),
        }
    }

    async fn sleep_until(deadline: Instant) {
        async_std::task::sleep(deadline.saturating_duration_since(Instant::now())).await
    }
}
/// `http::Request<Bytes>` as surf's request; `Err` names what surf cannot carry.
fn to_surf(request: http::Request<Bytes>) -> Result<surf::Request, String> {
    let (parts, body) = request.into_parts();
    let url = surf::Url::parse(&parts.uri.to_string()).map_err(|e| format!("bad URL: {e}"))?;
    let method: surf::http::Method = parts
        .method
        .as_str()
        .parse()
        .map_err(|_| format!("unsupported method {}", parts.method))?;
    let mut req = surf::http::Request::new(method, url);
    for (name, value) in parts.headers.iter() {
        let value = value
            .to_str()
            .map_err(|_| format!("header {name} is not visible ASCII"))?;
        req.append_header(name.as_str(), value);
    }
    if !body.is_empty() {
        // After the headers, so that the request's own content type is kept.
        req.set_body(surf::Body::from_bytes(body.to_vec()));
    }
    Ok(req.into())
}

/// The status as the server sent it: [`Http1`]'s [`RawStatus`], or surf's status on another
/// backend.
fn status(resp: &surf::Response) -> StatusCode {
    let code = match resp.ext::<RawStatus>() {
        Some(raw) => raw.0,
        None => resp.status() as u16,
    };
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY)
}

fn headers(resp: &surf::Response) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, values) in resp.iter() {
        let Ok(name) = HeaderName::from_bytes(name.as_str().as_bytes()) else {
            continue;
        };
        for v in values.iter() {
            if let Ok(v) = HeaderValue::from_str(v.as_str()) {
                map.append(name.clone(), v);
            }
        }
    }
    map
}
