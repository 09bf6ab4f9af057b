//! The blocking adapter of `vllm-client`: ureq 3 and std threads, no async runtime inside.
//!
//! This crate is IO glue only: [`Ureq`] sends requests and reads bodies with ureq, each within
//! the deadline the core handed out; the run loop is `vllm-client-runner`'s, every decision —
//! retries, backoff, timeouts, the breaker, limits, parsing — the core's. Use it
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
//! Each attempt has a ureq agent of its own, built from the client's agent's configuration
//! (and sharing the client's connector, so TLS is configured once). When the attempt ends —
//! finished, timed out, retried, or its [`EventIter`] dropped — that agent is shut down: its
//! connection is closed at once (so vLLM aborts the generation), and the IO thread, wherever
//! it blocks, gets an error, finds nobody listening and ends. It is
//! never joined, so the caller does not wait for it. The one phase a shutdown cannot
//! interrupt is a TCP connect in progress, which ureq bounds with the core's connect timeout.
//!
//! The price is that connections are not reused between calls (as in the async-std
//! adapter); with vLLM's long generations, a TCP (and TLS) handshake per call is small.
//!
//! A call waiting for a concurrency slot blocks until the call ahead of it ends (first come,
//! first served) or its deadline passes.
//!
//! # TLS
//!
//! | feature | TLS library | roots |
//! |---|---|---|
//! | `rustls` (default) | rustls 0.23 + aws-lc-rs (post-quantum hybrid key exchange first) | the OS trust store (ureq's `platform-verifier`) |
//! | `rustls-ring` | rustls 0.23 + ring | the OS trust store |
//! | `native-tls` | the platform's (OpenSSL on Linux, Secure Transport, SChannel) | the OS trust store |
//!
//! `native-tls` wins when it is on, then `rustls-ring` ([`TLS_BACKEND`] says which). The
//! rustls crypto provider is the process-wide default when the application installed one (see
//! `vllm-client-tls`). A TLS handshake that fails is a connect failure (`VllmError::Connect`).
//! Your own roots or client certificate: an `ureq::Agent` with your `TlsConfig`, given to
//! `http_client(..)`. ureq compiled without a provider of its own (as here) needs one in that
//! `TlsConfig` (`unversioned_rustls_crypto_provider(vllm_client_tls::crypto_provider())`) or
//! installed process-wide; otherwise its handshake panics on the IO thread and the attempt
//! fails.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::io::Read;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use vllm_client_core::call::error_chain;
use vllm_client_core::call::{ResponseHead, TransportErrorKind};
use vllm_client_core::config::ClientConfig;
use vllm_client_runner::{BlockingExec, BlockingTransport, Completion, Failed};

pub use vllm_client_runner::observability;
pub use vllm_client_runner::EventIter;
pub use vllm_client_runner::{ChunkIter, ResponseIter};

/// The blocking executor: the shared run loop over [`Ureq`].
pub type Blocking = BlockingExec<Ureq>;
/// The blocking client: `VllmClient::new("http://localhost:8000/v1")`.
pub type VllmClient = vllm_client_core::client::Client<Blocking>;
/// The blocking client's builder.
pub type VllmClientBuilder = vllm_client_core::client::ClientBuilder<Blocking>;

/// Bytes asked for per read of a body.
const READ_CHUNK: usize = 16 << 10;

/// The TLS library the agent built by default uses for `https`: `"native-tls"`, `"rustls"` or
/// `"none"` (no TLS feature: an `https` URL is refused with an error naming the features).
pub const TLS_BACKEND: &str = vllm_client_runner::tls_backend(
    cfg!(feature = "native-tls"),
    cfg!(any(feature = "rustls", feature = "rustls-ring")),
);

/// ureq on an IO thread per attempt, as a [`BlockingTransport`] (see the crate docs). With
/// your own agent (`http_client(..)`), its configuration (TLS, proxy, …) is used for every
/// attempt, each on an agent of its own.
///
/// The attempts' agents share one connector (TCP, proxy, TLS): ureq builds its TLS
/// configuration — for rustls with the OS trust store, whose loading is the costly part (about
/// 20 ms in a debug build on Linux) — once per connector, so once per client, not per attempt.
#[derive(Debug)]
pub struct Ureq {
    agent: ureq::Agent,
    connector: SharedConnector,
    own: bool,
}

/// ureq's default connector chain, shared by the agents of every attempt (see [`Ureq`]).
///
/// ureq names its connector API "unversioned" (outside its semver promise): the manifest
/// requires ureq 3.5 and CI builds against the locked version.
#[derive(Debug, Clone)]
struct SharedConnector(std::sync::Arc<ureq::unversioned::transport::DefaultConnector>);

impl ureq::unversioned::transport::Connector for SharedConnector {
    type Out = Box<dyn ureq::unversioned::transport::Transport>;

    fn connect(
        &self,
        details: &ureq::unversioned::transport::ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        self.0.connect(details, chained)
    }
}

impl SharedConnector {
    fn new() -> Self {
        SharedConnector(std::sync::Arc::new(
            ureq::unversioned::transport::DefaultConnector::new(),
        ))
    }
}

/// What an IO thread reports.
enum Report {
    Head(ResponseHead),
    Chunk(Bytes),
    End,
    Failed(Failed),
}

/// An attempt in flight: the IO thread's reports, and its agent, whose shutdown on drop closes
/// the attempt's connection and unblocks the thread.
pub struct Attempt {
    rx: Receiver<Report>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt").finish_non_exhaustive()
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.agent.clone().shutdown();
    }
}

impl Attempt {
    fn recv(&self, deadline: Option<Instant>) -> Completion<Report> {
        let got = match deadline {
            Some(d) => self
                .rx
                .recv_timeout(d.saturating_duration_since(Instant::now())),
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(report) => Completion::Ok(report),
            Err(RecvTimeoutError::Timeout) => Completion::TimedOut,
            Err(RecvTimeoutError::Disconnected) => Completion::Failed(Failed::new(
                TransportErrorKind::Io,
                "the IO thread ended without a result",
            )),
        }
    }
}

/// ureq with no timer of its own (the core hands out every deadline) that reads error
/// statuses as responses, with the TLS of the crate's features.
fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(None);
    #[cfg(any(feature = "native-tls", feature = "rustls", feature = "rustls-ring"))]
    let config = config.tls_config(tls_config());
    ureq::Agent::new_with_config(config.build())
}

/// The TLS of the crate's features: native-tls, or rustls with `vllm-client-tls`'s provider,
/// each with the OS trust store.
#[cfg(any(feature = "native-tls", feature = "rustls", feature = "rustls-ring"))]
fn tls_config() -> ureq::tls::TlsConfig {
    use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
    #[cfg(feature = "native-tls")]
    return TlsConfig::builder()
        .provider(TlsProvider::NativeTls)
        .root_certs(RootCerts::PlatformVerifier)
        .build();
    #[cfg(all(
        not(feature = "native-tls"),
        any(feature = "rustls", feature = "rustls-ring")
    ))]
    return TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::PlatformVerifier)
        .unversioned_rustls_crypto_provider(vllm_client_tls::crypto_provider())
        .build();
}

impl BlockingTransport for Ureq {
    type HttpClient = ureq::Agent;
    type Response = Attempt;

    fn new(_config: &ClientConfig, http: Option<ureq::Agent>) -> Self {
        Ureq {
            own: http.is_none(),
            agent: http.unwrap_or_else(agent),
            connector: SharedConnector::new(),
        }
    }

    fn reconfigure(&self, _config: &ClientConfig) -> Self {
        Ureq {
            agent: self.agent.clone(),
            connector: self.connector.clone(),
            own: self.own,
        }
    }

    fn send(
        &self,
        request: http::Request<Bytes>,
        deadline: Option<Instant>,
        connect_timeout: Option<Duration>,
    ) -> Completion<(ResponseHead, Attempt)> {
        if let Err(e) =
            vllm_client_runner::refuse_https_without_tls(TLS_BACKEND, self.own, &request)
        {
            return Completion::Failed(e);
        }
        // An agent (a connection pool) of its own, so that ending the attempt can shut its
        // connection down, interrupting the IO thread wherever it blocks (crate docs); its
        // connector (and so its TLS configuration) is the client's.
        let agent = ureq::Agent::with_parts(
            self.agent.config().clone(),
            self.connector.clone(),
            ureq::unversioned::resolver::DefaultResolver::default(),
        );
        let request = agent
            .configure_request(request.map(|b| b.to_vec()))
            .http_status_as_error(false)
            .timeout_connect(connect_timeout)
            .build();
        let (tx, rx) = mpsc::sync_channel(1);
        let thread_agent = agent.clone();
        let spawned = std::thread::Builder::new()
            .name("vllm-client-io".into())
            .spawn(move || run(thread_agent, request, tx));
        if let Err(e) = spawned {
            let message = format!("cannot start an IO thread: {e}");
            return Completion::Failed(Failed::new(TransportErrorKind::Io, message));
        }
        let attempt = Attempt { rx, agent };
        match attempt.recv(deadline) {
            Completion::Ok(Report::Head(head)) => Completion::Ok((head, attempt)),
            Completion::Ok(Report::Failed(f)) | Completion::Failed(f) => Completion::Failed(f),
            Completion::Ok(_) => Completion::Failed(Failed::new(TransportErrorKind::Io, "no head")),
            Completion::TimedOut => Completion::TimedOut,
        }
    }

    fn read(&self, attempt: &mut Attempt, deadline: Option<Instant>) -> Completion<Option<Bytes>> {
        match attempt.recv(deadline) {
            Completion::Ok(Report::Chunk(bytes)) => Completion::Ok(Some(bytes)),
            Completion::Ok(Report::End) => Completion::Ok(None),
            Completion::Ok(Report::Failed(f)) | Completion::Failed(f) => Completion::Failed(f),
            Completion::Ok(Report::Head(_)) => {
                Completion::Failed(Failed::new(TransportErrorKind::Io, "a second head"))
            }
            Completion::TimedOut => Completion::TimedOut,
        }
    }
}

/// One attempt, on the IO thread: send, hand over the head, then each chunk, until the body
/// ends, fails, or the caller stops listening.
fn run(agent: ureq::Agent, request: http::Request<Vec<u8>>, tx: SyncSender<Report>) {
    let response = if request.body().is_empty() {
        agent.run(request.map(|_| ureq::SendBody::none()))
    } else {
        agent.run(request)
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Report::Failed(send_error(e)));
            return;
        }
    };
    let (parts, body) = response.into_parts();
    let head = ResponseHead::new(parts.status, parts.headers, SystemTime::now());
    if tx.send(Report::Head(head)).is_err() {
        return;
    }
    let mut reader = body.into_with_config().limit(u64::MAX).reader();
    let mut buf = vec![0; READ_CHUNK];
    loop {
        let report = match reader.read(&mut buf) {
            Ok(0) => Report::End,
            Ok(n) => Report::Chunk(Bytes::copy_from_slice(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                Report::Failed(Failed::new(TransportErrorKind::Io, error_chain(&e)).with_source(e))
            }
        };
        let last = !matches!(report, Report::Chunk(_));
        if tx.send(report).is_err() || last {
            return;
        }
    }
}

fn send_error(e: ureq::Error) -> Failed {
    let kind = match &e {
        // ureq refused the request itself; nothing was sent.
        ureq::Error::Http(_) | ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_) => {
            TransportErrorKind::Rejected
        }
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => TransportErrorKind::Connect,
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
            TransportErrorKind::ConnectTimeout
        }
        // The TLS handshake failed (an unknown issuer, a wrong name): no connection.
        ureq::Error::Tls(_) => TransportErrorKind::Connect,
        #[cfg(any(feature = "rustls", feature = "rustls-ring"))]
        ureq::Error::Rustls(_) | ureq::Error::Pem(_) => TransportErrorKind::Connect,
        #[cfg(any(feature = "rustls", feature = "rustls-ring"))]
        ureq::Error::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<vllm_client_tls::rustls::Error>()) =>
        {
            TransportErrorKind::Connect
        }
        #[cfg(feature = "native-tls")]
        ureq::Error::NativeTls(_) | ureq::Error::Der(_) => TransportErrorKind::Connect,
        ureq::Error::Io(io) => TransportErrorKind::of_io_error(io.kind()),
        _ => TransportErrorKind::Io,
    };
    // The error itself is kept as the call's error's `source()` (TLS, IO, … by downcasting);
    // an io::Error as itself (ureq's Io variant does not name it as its source).
    let f = Failed::new(kind, error_chain(&e));
    match e {
        ureq::Error::Io(io) => f.with_source(io),
        other => f.with_source(other),
    }
}
