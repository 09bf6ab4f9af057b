//! A scripted fake vLLM server on 127.0.0.1, for integration tests of every client adapter.
//!
//! [`FakeServer::start`] binds `127.0.0.1:0` and serves on **its own thread with its own tokio
//! runtime**, so it works the same from a tokio test, an async-std test or plain blocking code.
//! HTTP/1.1 is written by hand on raw TCP, so a test controls every byte: how the body is cut
//! into writes, where the server pauses, stalls, cuts or resets the connection.
//!
//! # Default behaviour: a deterministic fake model
//!
//! With nothing scripted, the server answers like vLLM's OpenAI-compatible server:
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/chat/completions` | `"Echo: <last user message>"` (see [`model`]); with `"continue_final_message": true`, the rest of that answer after the last (assistant) message's text (nothing when it starts otherwise), one token per word, capped by `max_tokens` / `max_completion_tokens` (`finish_reason: "length"`); vLLM's exact JSON, or with `"stream": true` vLLM's chunk stream (role chunk, one content chunk per token, finish chunk, usage chunk if `stream_options.include_usage`, `data: [DONE]`) |
//! | `POST /v1/completions` | the same for `prompt` (`max_tokens` defaults to 16), streamed too |
//! | `POST /v1/embeddings` | deterministic unit vectors (`dimensions`, `encoding_format: "base64"` honoured) |
//! | `POST /tokenize`, `POST /detokenize` | `{count, max_model_len, tokens, token_strs}`, `{prompt}` |
//! | `GET /v1/models` | the configured model ids (default `["fake/vllm-model"]`) |
//! | `GET /health`, `GET /version`, `GET /metrics` | `200` empty, `{"version":"0.11.0-fake"}`, a Prometheus line |
//! | `POST /v1/responses` | vLLM's response object for `input` (same echo), `store`d for `GET /v1/responses/{id}`; with `"stream": true` its typed, numbered events (`event: response.created` … `response.output_text.delta` … `response.completed`, no `[DONE]`); with `background` the response `queued`, then `in_progress` on the first retrieve, then complete — or, with `background` and `stream`, its events, kept whole (whatever cut the first read) for `GET /v1/responses/{id}?stream=true&starting_after=N`, which streams those numbered above `N` (`400` for a response not streamed in the background); `POST /v1/responses/{id}/cancel` (`400` for a non-background response, `404` for an unknown id) |
//! | chat or Responses with `tools` | a user's turn is answered by calling the first tool (arguments from its schema: the user's text for strings); a `tool` message (or `function_call_output` item) by `"Tool said: <output>"` |
//! | `POST /rerank`, `/v1/rerank`, `/v2/rerank` | the documents by word overlap with the query (the share of the query's words each contains), `top_n` honoured |
//! | `POST /score`, `/v1/score` | the same overlap for `text_1` × `text_2` (1:N or N:N) |
//! | `POST /classify`, `POST /pooling` | two classes from a hash of each input; each input's embedding (`encoding_format: "base64"` honoured) |
//! | `POST /v1/audio/transcriptions`, `/v1/audio/translations` | multipart: the file's bytes read as UTF-8 are the "speech" (`Translation: …` for translations); `json`, `verbose_json`, `text`/`srt`/`vtt`; with `stream=true` `transcription.chunk`s then `[DONE]` |
//! | `POST /v1/load_lora_adapter`, `/v1/unload_lora_adapter` | vLLM's text answers; loaded adapters listed by `/v1/models`; `400` loading one twice, `404` unloading an unknown one |
//! | anything else | `404` (`405` for a known path with the wrong method) with vLLM's nested error JSON |
//!
//! Bad JSON or missing fields get `400` with `{"error":{"message","type":"BadRequestError",
//! "param":null,"code":400}}`. With [`FakeServerBuilder::api_key`], paths under `/v1` need
//! `Authorization: Bearer <key>`, else `401 {"error":"Unauthorized"}` (as vLLM's `--api-key`).
//!
//! # The engine model behind the server
//!
//! [`FakeServerBuilder::engine`] puts the [`engine`](crate::engine) model, running in real
//! time, behind chat and completion requests that nothing scripted answers: vLLM's queueing on
//! loopback (a stream's head at once, its first token when the request is scheduled, one token
//! per engine step, a disconnect aborting the request, `400` for a request that can never fit
//! the KV cache), and `GET /metrics` with the engine's gauges under vLLM's names
//! (`vllm:num_requests_waiting`, `vllm:num_requests_running`, `vllm:kv_cache_usage_perc`).
//! [`FakeServer::engine_stats`] has the engine's counters.
//!
//! Malformed requests get `400`, a head over the limit (64 KiB) `431`, a body over the limit
//! (16 MiB) `413`; the connection is then closed. Keep-alive, `Connection: close`, chunked
//! request bodies and `Expect: 100-continue` are supported.
//!
//! # Scripting
//!
//! [`FakeServer::push`] queues a [`Reply`] for the next request (FIFO);
//! [`FakeServer::push_for`] for the next request to one path. A queued reply overrides the
//! default behaviour (including the API-key check, except for [`Reply::generate`]).
//! Connection-level faults that happen before any request: [`FakeServer::refuse_connections`]
//! and [`FakeServer::reset_connections`]; for a port where nothing listens, [`free_port_url`].
//!
//! # Observing
//!
//! [`FakeServer::requests`] returns a [`RecordedRequest`] per request (method, path, headers,
//! body and parsed JSON, time received, connection id, whether the client disconnected before
//! the answer was complete). [`FakeServer::wait_for_requests`] and
//! [`FakeServer::wait_for_disconnects`] block (with a timeout) until something happened.
//!
//! # Example
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use vllm_testkit::server::{FakeServer, Reply};
//!
//! let server = FakeServer::start();
//! // First call: rate limited with a hint; the retry gets the default answer.
//! server.push_for(
//!     "/v1/chat/completions",
//!     Reply::vllm_error(429, "slow down").header("retry-after", "1"),
//! );
//!
//! // Any HTTP client works; here a raw socket.
//! let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
//! let mut tcp = std::net::TcpStream::connect(server.addr()).unwrap();
//! write!(tcp, "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
//!              content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).unwrap();
//! let mut response = String::new();
//! tcp.read_to_string(&mut response).unwrap();
//! assert!(response.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
//! assert!(response.contains("\r\nretry-after: 1\r\n"));
//!
//! let seen = server.requests();
//! assert_eq!(seen[0].path, "/v1/chat/completions");
//! assert_eq!(seen[0].json.as_ref().unwrap()["model"], "m");
//! assert!(server.base_url().starts_with("http://127.0.0.1:"));
//! // Dropping the server stops its thread.
//! ```

mod batching;
mod engine;
mod error_body;
mod http;
pub mod model;
mod ops;
mod record;
mod reply;
mod routes;

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use engine::{Scripted, Shared, State};
use http::Limits;
use model::{ModelConfig, Vocab};

pub use record::RecordedRequest;
pub use reply::{Framing, Part, Reply};

/// Default limit on a request's line plus headers.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;
/// Default limit on a request's (decoded) body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default model id served by `/v1/models`.
pub const DEFAULT_MODEL: &str = "fake/vllm-model";

/// How long [`FakeServer`]'s drop waits for the runtime's tasks to finish.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// Settings for a [`FakeServer`]; get one from [`FakeServer::builder`].
#[derive(Clone, Debug)]
pub struct FakeServerBuilder {
    cfg: ModelConfig,
    limits: Limits,
    engine: Option<crate::engine::EngineConfig>,
}

impl Default for FakeServerBuilder {
    fn default() -> Self {
        FakeServerBuilder {
            cfg: ModelConfig {
                models: vec![DEFAULT_MODEL.to_string()],
                max_model_len: 8192,
                embedding_dim: 16,
                version: "0.11.0-fake".to_string(),
                api_key: None,
            },
            limits: Limits {
                max_head: DEFAULT_MAX_HEAD_BYTES,
                max_body: DEFAULT_MAX_BODY_BYTES,
            },
            engine: None,
        }
    }
}

impl FakeServerBuilder {
    /// Answers chat and completion requests that no scripted reply answers with the engine
    /// model ([`crate::engine::Engine`]) running in real time: continuous batching, vLLM's
    /// unbounded FIFO queue, a stream's head at once and its first token when scheduled, a
    /// disconnect aborting the request. The prompt is estimated as the body's bytes / 4;
    /// `max_tokens` is honoured (default 16); the text is `t0 t1 …`. See
    /// [`FakeServer::engine_stats`].
    pub fn engine(mut self, config: crate::engine::EngineConfig) -> Self {
        self.engine = Some(config);
        self
    }

    /// Requires `Authorization: Bearer <key>` on paths under `/v1` (default: no key).
    pub fn api_key(mut self, key: &str) -> Self {
        self.cfg.api_key = Some(key.to_string());
        self
    }

    /// The model ids listed by `GET /v1/models` (the first one is used when a request names
    /// no model). Any model name is accepted in requests.
    pub fn models<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cfg.models = ids.into_iter().map(Into::into).collect();
        self
    }

    /// The context length (default 8192): prompt plus `max_tokens` beyond it gets vLLM's
    /// `400` "maximum context length" error.
    pub fn max_model_len(mut self, tokens: usize) -> Self {
        self.cfg.max_model_len = tokens;
        self
    }

    /// Length of the default embedding vectors (default 16).
    pub fn embedding_dim(mut self, dim: usize) -> Self {
        self.cfg.embedding_dim = dim.clamp(1, 4096);
        self
    }

    /// What `GET /version` reports (default `"0.11.0-fake"`).
    pub fn version(mut self, version: &str) -> Self {
        self.cfg.version = version.to_string();
        self
    }

    /// Limit on a request's line plus headers (default 64 KiB); larger gets `431`.
    pub fn max_head_bytes(mut self, n: usize) -> Self {
        self.limits.max_head = n.max(64);
        self
    }

    /// Limit on a request body (default 16 MiB); larger gets `413`.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.limits.max_body = n;
        self
    }

    /// Starts the server.
    ///
    /// # Panics
    ///
    /// If 127.0.0.1 cannot be bound or the thread cannot be started (an environment problem,
    /// never a client's doing). Use [`FakeServerBuilder::try_start`] to handle that.
    pub fn start(self) -> FakeServer {
        match self.try_start() {
            Ok(s) => s,
            Err(e) => panic!("vllm-testkit: cannot start the fake server: {e}"),
        }
    }

    /// Starts the server, reporting a failure to bind or to start its thread.
    pub fn try_start(self) -> io::Result<FakeServer> {
        let listener = StdListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let shared = Arc::new(Shared {
            cfg: self.cfg,
            limits: self.limits,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            vocab: Mutex::new(Vocab::default()),
            ops: Mutex::new(ops::OpsState::default()),
            batching: self.engine.map(|c| Arc::new(batching::Batching::new(c))),
        });
        let (tx, rx) = watch::channel(false);
        let task_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("vllm-fake-server-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    if let Some(b) = task_shared.batching.clone() {
                        tokio::spawn(b.run());
                    }
                    // Registering with the reactor only fails on an exotic OS error; the
                    // server then simply refuses connections (the listener is dropped).
                    if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                        engine::accept_loop(listener, task_shared, rx).await;
                    }
                });
                runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
            })?;
        Ok(FakeServer {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

/// A running fake vLLM server. Dropping it shuts it down (within about a second).
///
/// All methods take `&self` and are cheap; the ones that wait say so.
#[derive(Debug)]
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    // ----- starting and addresses ------------------------------------------------------------

    /// Starts a server with the default settings.
    ///
    /// # Panics
    ///
    /// See [`FakeServerBuilder::start`].
    pub fn start() -> FakeServer {
        FakeServerBuilder::default().start()
    }

    /// Settings: API key, model ids, limits.
    pub fn builder() -> FakeServerBuilder {
        FakeServerBuilder::default()
    }

    /// The engine model's counters (`None` unless the server was built with
    /// [`FakeServerBuilder::engine`]): submitted, finished, aborted, the longest waiting queue…
    pub fn engine_stats(&self) -> Option<crate::engine::EngineStats> {
        self.shared.batching.as_ref().map(|b| b.stats())
    }

    /// The socket address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI-style base URL: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.root_url())
    }

    /// The server's root: `http://127.0.0.1:PORT` (for `/health`, `/tokenize`, ...).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `root_url() + path`, e.g. `url("/health")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.root_url(), path)
    }

    // ----- scripting -------------------------------------------------------------------------

    /// Queues a reply for the next request (any path). Replies are used first in, first out.
    pub fn push(&self, reply: Reply) {
        self.shared
            .lock()
            .script
            .push_back(Scripted { path: None, reply });
    }

    /// Queues a reply for the next request to exactly this path (e.g.
    /// `"/v1/chat/completions"`, no query); requests to other paths skip it.
    pub fn push_for(&self, path: &str, reply: Reply) {
        self.shared.lock().script.push_back(Scripted {
            path: Some(path.to_string()),
            reply,
        });
    }

    /// Queues the same reply `n` times (see [`FakeServer::push`]).
    pub fn push_n(&self, n: usize, reply: Reply) {
        let mut st = self.shared.lock();
        for _ in 0..n {
            st.script.push_back(Scripted {
                path: None,
                reply: reply.clone(),
            });
        }
    }

    /// How many queued replies are still unused.
    pub fn pending_replies(&self) -> usize {
        self.shared.lock().script.len()
    }

    /// Drops every queued reply.
    pub fn clear_replies(&self) {
        self.shared.lock().script.clear();
    }

    /// The next `n` accepted connections are closed at once, before any request is read (the
    /// client sees the connection closed / reset while sending or waiting).
    pub fn refuse_connections(&self, n: usize) {
        self.shared.lock().refuse_next += n;
    }

    /// The next `n` accepted connections are aborted at once with a TCP RST.
    pub fn reset_connections(&self, n: usize) {
        self.shared.lock().reset_next += n;
    }

    /// While `true`, every accepted connection is closed at once (a server that is "down"
    /// but still listening). For a port where nothing listens, use [`free_port_url`].
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.lock().refuse_all = refusing;
    }

    // ----- observing -------------------------------------------------------------------------

    /// Every request read so far, in arrival order (the first 100 000 are kept).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The most recent request, if any was recorded.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.lock().requests.last().cloned()
    }

    /// How many requests were read (including any beyond the recorded ones).
    pub fn request_count(&self) -> usize {
        self.shared.lock().total_requests
    }

    /// How many connections were accepted (a client that reuses connections keeps it low).
    pub fn connection_count(&self) -> u64 {
        self.shared.lock().connections
    }

    /// How many connections were closed on accept by [`FakeServer::refuse_connections`],
    /// [`FakeServer::reset_connections`] or [`FakeServer::set_refusing`].
    pub fn refused_count(&self) -> usize {
        self.shared.lock().refused
    }

    /// How many requests were rejected as malformed or too large (400, 413, 431, ...); they
    /// are not recorded.
    pub fn rejected_count(&self) -> usize {
        self.shared.lock().rejected
    }

    /// How many times a client went away before its answer was complete (noticed during a
    /// delay, a stall, or by a failed write). See [`RecordedRequest::client_disconnected`].
    pub fn disconnects(&self) -> usize {
        self.shared.lock().disconnects
    }

    /// Blocks until at least `n` requests were read, or `timeout` passed; returns whether
    /// they were. (Blocks the calling thread: from async code, poll [`request_count`] instead
    /// or call it in a blocking task.)
    ///
    /// [`request_count`]: FakeServer::request_count
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |st| st.total_requests >= n)
    }

    /// Blocks until at least `n` client disconnects were noticed, or `timeout` passed; returns
    /// whether they were. (Blocks the calling thread, like [`FakeServer::wait_for_requests`].)
    pub fn wait_for_disconnects(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |st| st.disconnects >= n)
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        // Each wake-up re-checks the deadline, so this ends by `timeout` at the latest.
        loop {
            if done(&st) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = match self.shared.changed.wait_timeout(st, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Stops the server and waits for its thread (the same as dropping it).
    pub fn shutdown(self) {}
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(thread) = self.thread.take() {
            // The thread only panics if the runtime does; nothing to report from a drop.
            let _ = thread.join();
        }
    }
}

/// A free local port on which nothing listens: binds `127.0.0.1:0`, notes the port and
/// closes the listener. Connecting there is refused (barring a rare reuse of the port by
/// another process meanwhile).
///
/// # Panics
///
/// If 127.0.0.1 cannot be bound at all.
pub fn free_port() -> SocketAddr {
    match StdListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()) {
        Ok(addr) => addr,
        Err(e) => panic!("vllm-testkit: cannot bind 127.0.0.1: {e}"),
    }
}

/// `http://127.0.0.1:PORT/v1` for a [`free_port`]: a base URL whose connections are refused.
pub fn free_port_url() -> String {
    format!("http://{}/v1", free_port())
}
