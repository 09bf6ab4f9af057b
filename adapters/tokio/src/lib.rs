//! The tokio + reqwest adapter of `vllm-client`.
//!
//! This crate is IO glue only: [`Reqwest`] sends requests and reads bodies with reqwest and
//! times them with tokio; the run loop is `vllm-client-runner`'s, every decision — retries,
//! backoff, timeouts, the breaker, limits, parsing — the core's. Use it through the
//! `vllm-client` facade: `vllm_client::VllmClient`.
//!
//! # TLS
//!
//! | feature | TLS library | roots |
//! |---|---|---|
//! | `rustls` (default) | rustls 0.23 + aws-lc-rs (post-quantum hybrid key exchange first) | the OS trust store (`rustls-platform-verifier`) |
//! | `rustls-ring` | rustls 0.23 + ring | the OS trust store |
//! | `native-tls` | the platform's (OpenSSL on Linux, Secure Transport, SChannel) | the OS trust store |
//!
//! `native-tls` wins when it is on, then `rustls-ring` ([`TLS_BACKEND`] says which). The
//! rustls crypto provider is the process-wide default when the application installed one (see
//! `vllm-client-tls`). A TLS handshake that fails is a connect failure (`VllmError::Connect`).
//! Your own roots or client certificate: build a `reqwest::Client` with them and give it to
//! `http_client(..)` (then its TLS is entirely yours).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use vllm_client_core::call::error_chain;
use vllm_client_core::call::{ResponseHead, TransportErrorKind};
use vllm_client_core::config::ClientConfig;
use vllm_client_runner::{AsyncExec, Failed, Transport};

pub use vllm_client_runner::observability;
pub use vllm_client_runner::EventStream;
pub use vllm_client_runner::{ChunkStream, ResponseStream};

/// The tokio executor: the shared run loop over [`Reqwest`].
pub type Tokio = AsyncExec<Reqwest>;
/// The tokio client: `VllmClient::new("http://localhost:8000/v1")`.
pub type VllmClient = vllm_client_core::client::Client<Tokio>;
/// The tokio client's builder.
pub type VllmClientBuilder = vllm_client_core::client::ClientBuilder<Tokio>;

/// The TLS library the client built by default uses for `https`: `"native-tls"`,
/// `"rustls"` or `"none"` (no TLS feature: an `https` URL is refused with an error naming
/// the features).
pub const TLS_BACKEND: &str = vllm_client_runner::tls_backend(
    cfg!(feature = "native-tls"),
    cfg!(any(feature = "rustls", feature = "rustls-ring")),
);

/// reqwest and tokio timers as a [`Transport`]. Bring your own `reqwest::Client` with
/// `http_client(..)`: its own timeouts should be longer than the client's, which are enforced
/// on top; its connect timeout is its own (the core's `connect_timeout` configures the
/// client built by default).
#[derive(Debug)]
pub struct Reqwest {
    http: Result<reqwest::Client, String>,
    own: bool,
}

/// The client built by default: the core's connect timeout, the TLS of the crate's features.
/// `Err` when reqwest cannot build it (its message); every request then fails with it.
fn http_client(config: &ClientConfig) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder();
    if let Some(c) = config.policy.timeouts.connect {
        b = b.connect_timeout(c);
    }
    #[cfg(feature = "native-tls")]
    {
        b = b.tls_backend_native();
    }
    #[cfg(all(
        not(feature = "native-tls"),
        any(feature = "rustls", feature = "rustls-ring")
    ))]
    {
        b = b.tls_backend_preconfigured(vllm_client_tls::client_config(&[b"h2", b"http/1.1"]));
    }
    b.build()
        .map_err(|e| format!("the HTTP client could not be built: {}", error_chain(&e)))
}

impl Transport for Reqwest {
    type HttpClient = reqwest::Client;
    type Response = reqwest::Response;

    fn new(config: &ClientConfig, http: Option<reqwest::Client>) -> Self {
        match http {
            Some(http) => Reqwest {
                http: Ok(http),
                own: false,
            },
            None => Reqwest {
                http: http_client(config),
                own: true,
            },
        }
    }

    fn reconfigure(&self, config: &ClientConfig) -> Self {
        match self.own {
            // A client of our own carries the connect timeout: build one for the new config.
            true => Reqwest::new(config, None),
            false => Reqwest {
                http: self.http.clone(),
                own: false,
            },
        }
    }

    async fn send(
        &self,
        request: http::Request<Bytes>,
        _connect_timeout: Option<Duration>,
    ) -> Result<(ResponseHead, reqwest::Response), Failed> {
        let http = self
            .http
            .as_ref()
            .map_err(|e| Failed::new(TransportErrorKind::Rejected, e.clone()))?;
        vllm_client_runner::refuse_https_without_tls(TLS_BACKEND, self.own, &request)?;
        let request = reqwest::Request::try_from(request)
            .map_err(|e| Failed::new(TransportErrorKind::Rejected, e.to_string()))?;
        let mut resp = http.execute(request).await.map_err(failed)?;
        // Taken, not cloned: reqwest's copy would keep hyper's read buffer (which the values
        // are slices of) alive for the whole stream; the head copies them out.
        let headers = std::mem::take(resp.headers_mut());
        let head = ResponseHead::new(resp.status(), headers, SystemTime::now());
        Ok((head, resp))
    }

    async fn read(response: &mut reqwest::Response) -> Result<Option<Bytes>, Failed> {
        response.chunk().await.map_err(failed)
    }

    async fn sleep_until(deadline: Instant) {
        tokio::time::sleep_until(deadline.into()).await
    }
}

fn failed(e: reqwest::Error) -> Failed {
    let kind = match (e.is_connect(), e.is_timeout()) {
        (true, true) => TransportErrorKind::ConnectTimeout,
        (true, false) => TransportErrorKind::Connect,
        _ if e.is_builder() => TransportErrorKind::Rejected,
        _ => TransportErrorKind::Io,
    };
    // The error itself is kept as the call's error's `source()` (TLS, IO, … by downcasting).
    Failed::new(kind, error_chain(&e)).with_source(e)
}
