//! Scripts: what the simulated server answers to each attempt ([`SimResponse`], built from
//! [`SimPart`]s and ending as [`SimEnd`] says), and what a caller does ([`SimCall`]).

use std::time::Duration;

#[cfg(doc)]
use super::{Sim, SimFault};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
#[cfg(doc)]
use vllm_client_core::call::{Call, Event, TransportErrorKind};
use vllm_client_core::client::CallSpec;

/// One part of a scripted response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimPart {
    /// These bytes arrive as one chunk.
    Data(Bytes),
    /// Nothing arrives for this long (the next part comes this much later).
    Wait(Duration),
    /// An SSE keep-alive comment (`: keep-alive\n\n`) arrives as one chunk.
    Comment,
}

impl SimPart {
    /// Raw bytes as one chunk.
    pub fn raw(bytes: impl Into<Bytes>) -> SimPart {
        SimPart::Data(bytes.into())
    }

    /// One SSE event `data: <payload>\n\n`.
    pub fn data(payload: &str) -> SimPart {
        SimPart::Data(Bytes::from(format!("data: {payload}\n\n")))
    }

    /// A vLLM chat chunk whose choice 0 carries `text` as `delta.content`.
    pub fn content(text: &str) -> SimPart {
        let chunk = serde_json::json!({
            "id": "chatcmpl-sim",
            "object": "chat.completion.chunk",
            "created": 1_760_000_000u64,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null}],
        });
        SimPart::data(&chunk.to_string())
    }

    /// vLLM's in-band error event (`{"error": {…, "code": code}}`), as sent mid-stream.
    pub fn error_event(message: &str, code: u16) -> SimPart {
        let ev = serde_json::json!({
            "error": {"message": message, "type": "InternalServerError", "param": null, "code": code},
        });
        SimPart::data(&ev.to_string())
    }

    /// `data: [DONE]\n\n`.
    pub fn done() -> SimPart {
        SimPart::data("[DONE]")
    }

    /// A pause.
    pub fn wait_ms(ms: u64) -> SimPart {
        SimPart::Wait(Duration::from_millis(ms))
    }
}

/// What happens after the last body part of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimEnd {
    /// The body ends cleanly ([`Event::BodyEnd`]).
    #[default]
    Close,
    /// Nothing more ever arrives; only a driver deadline ends the wait.
    Stall,
    /// The connection breaks ([`Event::TransportError`] with [`TransportErrorKind::Io`]).
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Answer,
    ConnectRefused,
    ResetBeforeHead,
    Stall,
}

/// The scripted answer to one attempt (one `Send`).
///
/// Build one with a constructor ([`status`](Self::status), [`ok_json`](Self::ok_json),
/// [`sse`](Self::sse), [`connect_refused`](Self::connect_refused), [`stall`](Self::stall), …)
/// and refine it with the builder methods ([`header`](Self::header), [`body`](Self::body),
/// [`head_after`](Self::head_after), [`then_stall`](Self::then_stall), …).
#[derive(Debug, Clone)]
pub struct SimResponse {
    pub(super) kind: Kind,
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) invalid: Vec<String>,
    pub(super) connect_delay: Duration,
    pub(super) head_delay: Duration,
    pub(super) parts: Vec<SimPart>,
    pub(super) end: SimEnd,
}

impl SimResponse {
    fn new(kind: Kind, status: u16) -> SimResponse {
        SimResponse {
            kind,
            status,
            headers: HeaderMap::new(),
            invalid: Vec::new(),
            connect_delay: Duration::ZERO,
            head_delay: Duration::ZERO,
            parts: Vec::new(),
            end: SimEnd::Close,
        }
    }

    /// A response with this status and an empty body (add one with [`body`](Self::body)).
    pub fn status(status: u16) -> SimResponse {
        SimResponse::new(Kind::Answer, status)
    }

    /// `200 OK` with a JSON body, in one chunk.
    pub fn ok_json(body: &str) -> SimResponse {
        SimResponse::status(200)
            .header("content-type", "application/json")
            .body(body)
    }

    /// `200 OK` with `content-type: text/event-stream` and these body parts.
    pub fn sse(parts: Vec<SimPart>) -> SimResponse {
        SimResponse::status(200)
            .header("content-type", "text/event-stream")
            .parts(parts)
    }

    /// The connection is refused ([`TransportErrorKind::Connect`]) right away (or after
    /// [`connect_after`](Self::connect_after)).
    pub fn connect_refused() -> SimResponse {
        SimResponse::new(Kind::ConnectRefused, 0)
    }

    /// The connection is established, then breaks before any response head
    /// ([`TransportErrorKind::Io`]) after [`head_after`](Self::head_after).
    pub fn reset_before_head() -> SimResponse {
        SimResponse::new(Kind::ResetBeforeHead, 0)
    }

    /// No response head ever arrives: only the driver's deadline ends the wait.
    pub fn stall() -> SimResponse {
        SimResponse::new(Kind::Stall, 0)
    }

    /// Adds a response header. A name or value `http` refuses makes the run fail with
    /// [`SimFault::InvalidScript`].
    pub fn header(mut self, name: &str, value: &str) -> SimResponse {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => self.invalid.push(format!("header {name:?}: {value:?}")),
        }
        self
    }

    /// Replaces the body by `body`, arriving in one chunk.
    pub fn body(mut self, body: &str) -> SimResponse {
        self.parts = vec![SimPart::Data(Bytes::copy_from_slice(body.as_bytes()))];
        self
    }

    /// Replaces the body by these parts.
    pub fn parts(mut self, parts: Vec<SimPart>) -> SimResponse {
        self.parts = parts;
        self
    }

    /// Connecting takes `d`. When the driver's `connect_timeout` is shorter, the simulator
    /// reports [`TransportErrorKind::ConnectTimeout`] when it runs out.
    pub fn connect_after(mut self, d: Duration) -> SimResponse {
        self.connect_delay = d;
        self
    }

    /// The response head arrives `d` after the connection is established (a slow server, or a
    /// queued request: vLLM's overload signal).
    pub fn head_after(mut self, d: Duration) -> SimResponse {
        self.head_delay = d;
        self
    }

    /// After the last part, nothing more ever arrives.
    pub fn then_stall(mut self) -> SimResponse {
        self.end = SimEnd::Stall;
        self
    }

    /// After the last part, the connection breaks.
    pub fn then_reset(mut self) -> SimResponse {
        self.end = SimEnd::Reset;
        self
    }

    /// After the last part, the body ends cleanly (the default). A stream without
    /// `data: [DONE]` that ends this way is cut ("truncated").
    pub fn then_close(mut self) -> SimResponse {
        self.end = SimEnd::Close;
        self
    }
}

/// One call for [`Sim::run_all`]: what to call, the script of its attempts, when it starts and
/// (optionally) when its caller drops it.
#[derive(Debug, Clone)]
pub struct SimCall {
    pub(super) spec: CallSpec,
    pub(super) script: Vec<SimResponse>,
    pub(super) start_after: Duration,
    pub(super) cancel_after: Option<Duration>,
    pub(super) cancel_after_polls: Option<usize>,
}

impl SimCall {
    /// A call starting when the run starts.
    pub fn new(spec: CallSpec, script: Vec<SimResponse>) -> SimCall {
        SimCall {
            spec,
            script,
            start_after: Duration::ZERO,
            cancel_after: None,
            cancel_after_polls: None,
        }
    }

    /// Starts `d` after the run starts.
    pub fn start_after(mut self, d: Duration) -> SimCall {
        self.start_after = d;
        self
    }

    /// The caller drops the call `d` after the run starts (unless it ended before):
    /// [`Call::cancel`] is called then.
    pub fn cancel_after(mut self, d: Duration) -> SimCall {
        self.cancel_after = Some(d);
        self
    }

    /// The caller drops the call after polling it `n` times (unless it ended before): between
    /// two polls, even two emits of one instant, which a [`cancel_after`](Self::cancel_after)
    /// at a time cannot reach. `0` drops it before the first poll.
    pub fn cancel_after_polls(mut self, n: usize) -> SimCall {
        self.cancel_after_polls = Some(n);
        self
    }
}

/// A simulated server of a pool: answers every attempt sent to its `host:port` with what its
/// responder returns for the virtual time of the send (see [`Sim::with_servers`]).
pub struct SimServer {
    pub(super) host: String,
    pub(super) respond: Box<dyn FnMut(Duration) -> SimResponse + Send>,
    pub(super) health: Box<dyn FnMut(Duration) -> SimResponse + Send>,
    pub(super) hits: usize,
    pub(super) probes: usize,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("host", &self.host)
            .field("hits", &self.hits)
            .field("probes", &self.probes)
            .finish_non_exhaustive()
    }
}

impl SimServer {
    /// The server at `host` (as in the URL: `10.0.0.1:8000`), answering attempts sent at
    /// offset `t` from the simulator's start with `respond(t)`.
    pub fn new(
        host: impl Into<String>,
        respond: impl FnMut(Duration) -> SimResponse + Send + 'static,
    ) -> SimServer {
        SimServer {
            host: host.into(),
            respond: Box::new(respond),
            health: Box::new(|_| SimResponse::status(200)),
            hits: 0,
            probes: 0,
        }
    }

    /// How it answers a health probe (`GET /health`) at offset `t` (default: `200`).
    pub fn health(
        mut self,
        health: impl FnMut(Duration) -> SimResponse + Send + 'static,
    ) -> SimServer {
        self.health = Box::new(health);
        self
    }
}
