//! Scripted replies: what the fake server does with one request.
//!
//! A [`Reply`] is a value built with chained methods and queued with
//! [`FakeServer::push`](super::FakeServer::push). It describes, byte by byte, what goes back on
//! the wire: status, headers, a body given as [`Part`]s (bytes, delays, cuts, stalls), how the
//! body is framed ([`Framing`]) and where write boundaries fall (`split_every`, `split_at`).

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::error_body::{error_json, stream_error_json};
/// The captures of `fixtures/real-servers/`, compiled in (so that test binaries built here and
/// run elsewhere, and the published crate, have them): name, head, body, raw chunked body.
/// `fixture_table_is_the_directory` checks that the table and the directory agree.
#[allow(clippy::type_complexity)]
const FIXTURES: &[(&str, &str, &[u8], Option<&[u8]>)] = &[
    (
        "litellm_chat_nonstream",
        include_str!("../../fixtures/real-servers/litellm_chat_nonstream.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_chat_nonstream.body"),
        None,
    ),
    (
        "litellm_chat_stop",
        include_str!("../../fixtures/real-servers/litellm_chat_stop.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_chat_stop.body"),
        None,
    ),
    (
        "litellm_chat_stream",
        include_str!("../../fixtures/real-servers/litellm_chat_stream.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_chat_stream.body"),
        Some(include_bytes!(
            "../../fixtures/real-servers/litellm_chat_stream.rawchunked"
        )),
    ),
    (
        "litellm_chat_stream_stop",
        include_str!("../../fixtures/real-servers/litellm_chat_stream_stop.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_chat_stream_stop.body"),
        None,
    ),
    (
        "litellm_chat_stream_usage",
        include_str!("../../fixtures/real-servers/litellm_chat_stream_usage.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_chat_stream_usage.body"),
        None,
    ),
    (
        "litellm_completions_nonstream",
        include_str!("../../fixtures/real-servers/litellm_completions_nonstream.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_completions_nonstream.body"),
        None,
    ),
    (
        "litellm_completions_stream",
        include_str!("../../fixtures/real-servers/litellm_completions_stream.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_completions_stream.body"),
        None,
    ),
    (
        "litellm_err_404_path",
        include_str!("../../fixtures/real-servers/litellm_err_404_path.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_404_path.body"),
        None,
    ),
    (
        "litellm_err_429",
        include_str!("../../fixtures/real-servers/litellm_err_429.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_429.body"),
        None,
    ),
    (
        "litellm_err_429_stream",
        include_str!("../../fixtures/real-servers/litellm_err_429_stream.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_429_stream.body"),
        None,
    ),
    (
        "litellm_err_500",
        include_str!("../../fixtures/real-servers/litellm_err_500.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_500.body"),
        None,
    ),
    (
        "litellm_err_500_stream",
        include_str!("../../fixtures/real-servers/litellm_err_500_stream.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_500_stream.body"),
        None,
    ),
    (
        "litellm_err_bad_json",
        include_str!("../../fixtures/real-servers/litellm_err_bad_json.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_bad_json.body"),
        None,
    ),
    (
        "litellm_err_bad_key",
        include_str!("../../fixtures/real-servers/litellm_err_bad_key.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_bad_key.body"),
        None,
    ),
    (
        "litellm_err_bad_role",
        include_str!("../../fixtures/real-servers/litellm_err_bad_role.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_bad_role.body"),
        None,
    ),
    (
        "litellm_err_context_overflow",
        include_str!("../../fixtures/real-servers/litellm_err_context_overflow.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_context_overflow.body"),
        None,
    ),
    (
        "litellm_err_context_overflow_stream",
        include_str!("../../fixtures/real-servers/litellm_err_context_overflow_stream.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_context_overflow_stream.body"),
        None,
    ),
    (
        "litellm_err_cooldown_req1",
        include_str!("../../fixtures/real-servers/litellm_err_cooldown_req1.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_cooldown_req1.body"),
        None,
    ),
    (
        "litellm_err_cooldown_req2",
        include_str!("../../fixtures/real-servers/litellm_err_cooldown_req2.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_cooldown_req2.body"),
        None,
    ),
    (
        "litellm_err_cooldown_req3",
        include_str!("../../fixtures/real-servers/litellm_err_cooldown_req3.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_cooldown_req3.body"),
        None,
    ),
    (
        "litellm_err_ctx",
        include_str!("../../fixtures/real-servers/litellm_err_ctx.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_ctx.body"),
        None,
    ),
    (
        "litellm_err_ctx_stream",
        include_str!("../../fixtures/real-servers/litellm_err_ctx_stream.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_ctx_stream.body"),
        None,
    ),
    (
        "litellm_err_get_on_post",
        include_str!("../../fixtures/real-servers/litellm_err_get_on_post.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_get_on_post.body"),
        None,
    ),
    (
        "litellm_err_missing_messages",
        include_str!("../../fixtures/real-servers/litellm_err_missing_messages.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_missing_messages.body"),
        None,
    ),
    (
        "litellm_err_negative_max_tokens",
        include_str!("../../fixtures/real-servers/litellm_err_negative_max_tokens.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_negative_max_tokens.body"),
        None,
    ),
    (
        "litellm_err_no_auth",
        include_str!("../../fixtures/real-servers/litellm_err_no_auth.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_no_auth.body"),
        None,
    ),
    (
        "litellm_err_stream_error_model",
        include_str!("../../fixtures/real-servers/litellm_err_stream_error_model.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_stream_error_model.body"),
        None,
    ),
    (
        "litellm_err_temperature_range",
        include_str!("../../fixtures/real-servers/litellm_err_temperature_range.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_temperature_range.body"),
        None,
    ),
    (
        "litellm_err_unknown_model",
        include_str!("../../fixtures/real-servers/litellm_err_unknown_model.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_unknown_model.body"),
        None,
    ),
    (
        "litellm_err_wrong_type",
        include_str!("../../fixtures/real-servers/litellm_err_wrong_type.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_err_wrong_type.body"),
        None,
    ),
    (
        "litellm_models",
        include_str!("../../fixtures/real-servers/litellm_models.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_models.body"),
        None,
    ),
    (
        "litellm_rpm2_req1",
        include_str!("../../fixtures/real-servers/litellm_rpm2_req1.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_rpm2_req1.body"),
        None,
    ),
    (
        "litellm_rpm2_req2",
        include_str!("../../fixtures/real-servers/litellm_rpm2_req2.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_rpm2_req2.body"),
        None,
    ),
    (
        "litellm_rpm2_req3",
        include_str!("../../fixtures/real-servers/litellm_rpm2_req3.headers"),
        include_bytes!("../../fixtures/real-servers/litellm_rpm2_req3.body"),
        None,
    ),
    (
        "llamacpp_chat_nonstream",
        include_str!("../../fixtures/real-servers/llamacpp_chat_nonstream.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_chat_nonstream.body"),
        None,
    ),
    (
        "llamacpp_chat_stop",
        include_str!("../../fixtures/real-servers/llamacpp_chat_stop.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_chat_stop.body"),
        None,
    ),
    (
        "llamacpp_chat_stream",
        include_str!("../../fixtures/real-servers/llamacpp_chat_stream.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_chat_stream.body"),
        Some(include_bytes!(
            "../../fixtures/real-servers/llamacpp_chat_stream.rawchunked"
        )),
    ),
    (
        "llamacpp_chat_stream_stop",
        include_str!("../../fixtures/real-servers/llamacpp_chat_stream_stop.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_chat_stream_stop.body"),
        None,
    ),
    (
        "llamacpp_chat_stream_usage",
        include_str!("../../fixtures/real-servers/llamacpp_chat_stream_usage.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_chat_stream_usage.body"),
        None,
    ),
    (
        "llamacpp_completions_nonstream",
        include_str!("../../fixtures/real-servers/llamacpp_completions_nonstream.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_completions_nonstream.body"),
        None,
    ),
    (
        "llamacpp_completions_stream",
        include_str!("../../fixtures/real-servers/llamacpp_completions_stream.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_completions_stream.body"),
        None,
    ),
    (
        "llamacpp_err_401",
        include_str!("../../fixtures/real-servers/llamacpp_err_401.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_401.body"),
        None,
    ),
    (
        "llamacpp_err_404_path",
        include_str!("../../fixtures/real-servers/llamacpp_err_404_path.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_404_path.body"),
        None,
    ),
    (
        "llamacpp_err_bad_json",
        include_str!("../../fixtures/real-servers/llamacpp_err_bad_json.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_bad_json.body"),
        None,
    ),
    (
        "llamacpp_err_bad_role",
        include_str!("../../fixtures/real-servers/llamacpp_err_bad_role.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_bad_role.body"),
        None,
    ),
    (
        "llamacpp_err_context_overflow",
        include_str!("../../fixtures/real-servers/llamacpp_err_context_overflow.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_context_overflow.body"),
        None,
    ),
    (
        "llamacpp_err_context_overflow_stream",
        include_str!("../../fixtures/real-servers/llamacpp_err_context_overflow_stream.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_context_overflow_stream.body"),
        None,
    ),
    (
        "llamacpp_err_get_on_post",
        include_str!("../../fixtures/real-servers/llamacpp_err_get_on_post.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_get_on_post.body"),
        None,
    ),
    (
        "llamacpp_err_missing_messages",
        include_str!("../../fixtures/real-servers/llamacpp_err_missing_messages.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_missing_messages.body"),
        None,
    ),
    (
        "llamacpp_err_negative_max_tokens",
        include_str!("../../fixtures/real-servers/llamacpp_err_negative_max_tokens.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_negative_max_tokens.body"),
        None,
    ),
    (
        "llamacpp_err_temperature_range",
        include_str!("../../fixtures/real-servers/llamacpp_err_temperature_range.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_temperature_range.body"),
        None,
    ),
    (
        "llamacpp_err_unknown_model",
        include_str!("../../fixtures/real-servers/llamacpp_err_unknown_model.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_unknown_model.body"),
        None,
    ),
    (
        "llamacpp_err_wrong_type",
        include_str!("../../fixtures/real-servers/llamacpp_err_wrong_type.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_err_wrong_type.body"),
        None,
    ),
    (
        "llamacpp_models",
        include_str!("../../fixtures/real-servers/llamacpp_models.headers"),
        include_bytes!("../../fixtures/real-servers/llamacpp_models.body"),
        None,
    ),
    (
        "llamaserver_chat_nonstream",
        include_str!("../../fixtures/real-servers/llamaserver_chat_nonstream.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_chat_nonstream.body"),
        None,
    ),
    (
        "llamaserver_chat_stop",
        include_str!("../../fixtures/real-servers/llamaserver_chat_stop.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_chat_stop.body"),
        None,
    ),
    (
        "llamaserver_chat_stream",
        include_str!("../../fixtures/real-servers/llamaserver_chat_stream.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_chat_stream.body"),
        Some(include_bytes!(
            "../../fixtures/real-servers/llamaserver_chat_stream.rawchunked"
        )),
    ),
    (
        "llamaserver_chat_stream_stop",
        include_str!("../../fixtures/real-servers/llamaserver_chat_stream_stop.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_chat_stream_stop.body"),
        None,
    ),
    (
        "llamaserver_chat_stream_usage",
        include_str!("../../fixtures/real-servers/llamaserver_chat_stream_usage.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_chat_stream_usage.body"),
        None,
    ),
    (
        "llamaserver_completions_nonstream",
        include_str!("../../fixtures/real-servers/llamaserver_completions_nonstream.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_completions_nonstream.body"),
        None,
    ),
    (
        "llamaserver_completions_stream",
        include_str!("../../fixtures/real-servers/llamaserver_completions_stream.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_completions_stream.body"),
        None,
    ),
    (
        "llamaserver_err_401",
        include_str!("../../fixtures/real-servers/llamaserver_err_401.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_401.body"),
        None,
    ),
    (
        "llamaserver_err_404_path",
        include_str!("../../fixtures/real-servers/llamaserver_err_404_path.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_404_path.body"),
        None,
    ),
    (
        "llamaserver_err_bad_json",
        include_str!("../../fixtures/real-servers/llamaserver_err_bad_json.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_bad_json.body"),
        None,
    ),
    (
        "llamaserver_err_bad_role",
        include_str!("../../fixtures/real-servers/llamaserver_err_bad_role.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_bad_role.body"),
        None,
    ),
    (
        "llamaserver_err_context_overflow",
        include_str!("../../fixtures/real-servers/llamaserver_err_context_overflow.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_context_overflow.body"),
        None,
    ),
    (
        "llamaserver_err_context_overflow_stream",
        include_str!("../../fixtures/real-servers/llamaserver_err_context_overflow_stream.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_context_overflow_stream.body"),
        None,
    ),
    (
        "llamaserver_err_get_on_post",
        include_str!("../../fixtures/real-servers/llamaserver_err_get_on_post.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_get_on_post.body"),
        None,
    ),
    (
        "llamaserver_err_missing_messages",
        include_str!("../../fixtures/real-servers/llamaserver_err_missing_messages.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_missing_messages.body"),
        None,
    ),
    (
        "llamaserver_err_negative_max_tokens",
        include_str!("../../fixtures/real-servers/llamaserver_err_negative_max_tokens.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_negative_max_tokens.body"),
        None,
    ),
    (
        "llamaserver_err_temperature_range",
        include_str!("../../fixtures/real-servers/llamaserver_err_temperature_range.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_temperature_range.body"),
        None,
    ),
    (
        "llamaserver_err_unknown_model",
        include_str!("../../fixtures/real-servers/llamaserver_err_unknown_model.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_unknown_model.body"),
        None,
    ),
    (
        "llamaserver_err_wrong_type",
        include_str!("../../fixtures/real-servers/llamaserver_err_wrong_type.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_err_wrong_type.body"),
        None,
    ),
    (
        "llamaserver_models",
        include_str!("../../fixtures/real-servers/llamaserver_models.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_models.body"),
        None,
    ),
    (
        "llamaserver_router_chat",
        include_str!("../../fixtures/real-servers/llamaserver_router_chat.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_router_chat.body"),
        None,
    ),
    (
        "llamaserver_router_unknown_model",
        include_str!("../../fixtures/real-servers/llamaserver_router_unknown_model.headers"),
        include_bytes!("../../fixtures/real-servers/llamaserver_router_unknown_model.body"),
        None,
    ),
];

/// One piece of a scripted body, written in order.
///
/// Every `Bytes` part is written with its own `write` + `flush` (in chunked framing: as its own
/// HTTP chunk), unless [`Reply::split_every`] / [`Reply::split_at`] cut it further.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Body bytes.
    Bytes(Bytes),
    /// Wait this long before the next part. The server watches the socket meanwhile, so a
    /// client that goes away is noticed (see [`RecordedRequest::client_disconnected`]).
    ///
    /// [`RecordedRequest::client_disconnected`]: super::RecordedRequest::client_disconnected
    Delay(Duration),
    /// Close the connection here (a clean TCP FIN, no terminating chunk): the body is cut.
    /// Later parts are not sent.
    Cut,
    /// Abort the connection here with a TCP RST. Later parts are not sent.
    Reset,
    /// Stop sending and keep the connection open for this long, or until the client
    /// disconnects, then close it (FIN, no terminating chunk). Later parts are not sent.
    Stall(Duration),
}

impl Part {
    /// Raw bytes.
    pub fn bytes(bytes: impl Into<Bytes>) -> Part {
        Part::Bytes(bytes.into())
    }

    /// A UTF-8 string as bytes.
    pub fn text(text: &str) -> Part {
        Part::Bytes(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// A server-sent event carrying JSON: `data: <json>\n\n`.
    pub fn event(json: &Value) -> Part {
        Part::data(&json.to_string())
    }

    /// A server-sent event with this data line: `data: <data>\n\n`.
    pub fn data(data: &str) -> Part {
        Part::Bytes(Bytes::from(format!("data: {data}\n\n")))
    }

    /// A named server-sent event, the Responses API's framing: `event: <name>\ndata: <json>\n\n`.
    pub fn named_event(name: &str, json: &Value) -> Part {
        Part::Bytes(Bytes::from(format!("event: {name}\ndata: {json}\n\n")))
    }

    /// The end-of-stream event `data: [DONE]\n\n`.
    pub fn done() -> Part {
        Part::data("[DONE]")
    }

    /// An SSE comment used as a keep-alive: `: keep-alive\n\n`.
    pub fn keep_alive() -> Part {
        Part::Bytes(Bytes::from_static(b": keep-alive\n\n"))
    }

    /// vLLM's in-band error event (sent after a 200 head):
    /// `data: {"error": {"message": ..., "type": "InternalServerError", "param": null, "code": 500}}`.
    ///
    /// vLLM follows it with `data: [DONE]`; add [`Part::done`] yourself, or use
    /// [`Reply::error_after_tokens`].
    pub fn error_event(message: &str) -> Part {
        Part::Bytes(Bytes::from(format!(
            "data: {}\n\n",
            stream_error_json(message)
        )))
    }

    /// A pause of `ms` milliseconds.
    pub fn delay_ms(ms: u64) -> Part {
        Part::Delay(Duration::from_millis(ms))
    }
}

/// How the body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Framing {
    /// `Content-Length` for bodies set with [`Reply::body`] (and friends), chunked transfer
    /// encoding for bodies given as parts ([`Reply::sse`], [`Reply::stream_bytes`], ...).
    #[default]
    Auto,
    /// `Content-Length: <sum of all Bytes parts>`; the parts are written raw. A cut or stall
    /// therefore leaves the body shorter than announced.
    ContentLength,
    /// `Transfer-Encoding: chunked`; each write is one chunk; `0\r\n\r\n` ends a complete body.
    Chunked,
    /// Neither header: the body ends when the server closes the connection (HTTP/1.0 style).
    UntilClose,
}

/// What happens to the connection for a scripted request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send a normal response (head + body).
    Respond,
    /// Send the parts verbatim: no generated head, no framing. Closes afterwards.
    Raw,
    /// Close the connection without writing anything.
    Close,
    /// Abort the connection with a TCP RST without writing anything.
    Reset,
}

/// How a generated stream ends (see [`Generate`]).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) enum Ending {
    /// Finish chunk, optional usage chunk, `[DONE]`, terminating chunk.
    #[default]
    Normal,
    /// Everything as normal except `data: [DONE]`; the HTTP body ends cleanly.
    NoDone,
    /// After n content tokens: close the connection (no finish chunk, no `[DONE]`).
    CutAfter(usize),
    /// After n content tokens: an in-band error event, then `[DONE]`, body ends cleanly.
    ErrorAfter(usize, String),
    /// After n content tokens: stall for the duration (or until the client leaves), then close.
    StallAfter(usize, Duration),
}

/// Options for a reply produced by the built-in fake model ([`Reply::generate`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Generate {
    pub(crate) token_delay: Duration,
    pub(crate) text: Option<String>,
    pub(crate) reasoning: Option<String>,
    pub(crate) ending: Ending,
    pub(crate) keep_alives: Option<(usize, usize, Duration)>,
}

/// What the scripted ending of a generated body does before one of its tokens (see
/// [`Generate::ending_at`]).
#[derive(Debug)]
pub(crate) enum EndAt<'a> {
    /// An in-band error event with this message (each operation writes it in its own shape).
    Error(&'a str),
    /// The body ends with this part: a cut or a stall.
    Last(Part),
}

impl Generate {
    /// What ends a generated body of `len` tokens before token `i` (`i == len`: after the
    /// last), when its ending falls there: an error event, a cut or a stall.
    pub(crate) fn ending_at(&self, i: usize, len: usize) -> Option<EndAt<'_>> {
        match &self.ending {
            Ending::CutAfter(n) if (*n).min(len) == i => Some(EndAt::Last(Part::Cut)),
            Ending::StallAfter(n, hold) if (*n).min(len) == i => {
                Some(EndAt::Last(Part::Stall(*hold)))
            }
            Ending::ErrorAfter(n, msg) if (*n).min(len) == i => Some(EndAt::Error(msg)),
            _ => None,
        }
    }
}

/// Where write boundaries fall inside the body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Split {
    pub every: Option<usize>,
    pub at: Vec<usize>,
    pub pace: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// Parts as given. `streamed` picks the automatic framing (chunked if true).
    Parts { parts: Vec<Part>, streamed: bool },
    /// The fake model's answer to the request, shaped by the options.
    Generate(Generate),
}

/// A scripted reply. Build one, then queue it with [`FakeServer::push`](super::FakeServer::push).
///
/// ```
/// use std::time::Duration;
/// use vllm_testkit::server::{Part, Reply};
///
/// // 429 with a retry hint, JSON body.
/// let _ = Reply::status(429)
///     .header("retry-after-ms", "1500")
///     .json(&serde_json::json!({"error": {"message": "slow down", "type": "RateLimitError",
///                                         "param": null, "code": 429}}));
/// // A 200 HTML page from a proxy, and an empty-body 500.
/// let _ = Reply::html(200, "<html><body>login</body></html>");
/// let _ = Reply::status(500);
/// // The default answer, streamed one token every 50 ms, cut after 3 tokens.
/// let _ = Reply::generate().token_delay(Duration::from_millis(50)).cut_after_tokens(3);
/// // A hand-made stream whose writes split a UTF-8 character.
/// let _ = Reply::stream_bytes("data: {\"x\":\"é\"}\n\n").split_at([14]);
/// // Hand-made SSE parts.
/// let _ = Reply::sse([Part::keep_alive(), Part::delay_ms(100), Part::error_event("boom"), Part::done()]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub(crate) action: Action,
    pub(crate) head_delay: Duration,
    pub(crate) status: u16,
    pub(crate) reason: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body,
    pub(crate) framing: Framing,
    pub(crate) split: Split,
    pub(crate) close_after: bool,
}

impl Reply {
    fn base(action: Action, status: u16, body: Body) -> Reply {
        Reply {
            action,
            head_delay: Duration::ZERO,
            status,
            reason: None,
            headers: Vec::new(),
            body,
            framing: Framing::Auto,
            split: Split::default(),
            close_after: false,
        }
    }

    // ----- constructors -------------------------------------------------------------------

    /// A response with this status and an empty body (`content-length: 0`), e.g. vLLM's
    /// dead-engine `Reply::status(500)`. Add a body with [`Reply::body`] / [`Reply::json`].
    pub fn status(status: u16) -> Reply {
        Reply::base(
            Action::Respond,
            status,
            Body::Parts {
                parts: Vec::new(),
                streamed: false,
            },
        )
    }

    /// A JSON response (`content-type: application/json`).
    pub fn json_status(status: u16, json: &Value) -> Reply {
        Reply::status(status).json(json)
    }

    /// vLLM's nested error body with this status:
    /// `{"error": {"message", "type", "param": null, "code": status}}`; the type follows vLLM's
    /// names (`BadRequestError`, `NotFoundError`, `InternalServerError`, ...).
    pub fn vllm_error(status: u16, message: &str) -> Reply {
        Reply::status(status)
            .header("content-type", "application/json")
            .body(error_json(status, message))
    }

    /// An HTML page with this status (`content-type: text/html; charset=utf-8`), as a proxy or
    /// login portal sends.
    pub fn html(status: u16, html: &str) -> Reply {
        Reply::status(status)
            .header("content-type", "text/html; charset=utf-8")
            .body(html.to_string())
    }

    /// A plain-text body with this status.
    pub fn text(status: u16, text: &str) -> Reply {
        Reply::status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(text.to_string())
    }

    /// A `200 text/event-stream` response whose body is these parts, chunked.
    pub fn sse(parts: impl IntoIterator<Item = Part>) -> Reply {
        Reply::base(
            Action::Respond,
            200,
            Body::Parts {
                parts: parts.into_iter().collect(),
                streamed: true,
            },
        )
        .header("content-type", "text/event-stream; charset=utf-8")
    }

    /// A `200 text/event-stream` response whose body is exactly these bytes (chunked); combine
    /// with [`Reply::split_every`] / [`Reply::split_at`] to choose the write boundaries.
    pub fn stream_bytes(bytes: impl Into<Bytes>) -> Reply {
        Reply::sse([Part::Bytes(bytes.into())])
    }

    /// The built-in fake model's answer for the request (what the server does with no
    /// script), with options: per-token delay, custom text, and stream endings (cut, error,
    /// stall, no `[DONE]`). Works on every default endpoint; the stream options apply to
    /// streamed chat and completions requests.
    pub fn generate() -> Reply {
        Reply::base(Action::Respond, 200, Body::Generate(Generate::default()))
    }

    /// Read the request, then close the connection without any response (the client sees
    /// the connection closed before a response head). Combine with [`Reply::delay`].
    pub fn close() -> Reply {
        Reply::status(0).with_action(Action::Close)
    }

    /// Read the request, then abort the connection with a TCP RST (the client sees
    /// "connection reset"). Combine with [`Reply::delay`].
    pub fn reset() -> Reply {
        Reply::status(0).with_action(Action::Reset)
    }

    /// Write these bytes verbatim (no status line or headers are generated, no framing), then
    /// close the connection: for malformed responses.
    pub fn raw(bytes: impl Into<Bytes>) -> Reply {
        Reply::raw_parts([Part::Bytes(bytes.into())])
    }

    /// Like [`Reply::raw`] with parts (delays, cuts...) in between.
    pub fn raw_parts(parts: impl IntoIterator<Item = Part>) -> Reply {
        Reply::base(
            Action::Raw,
            0,
            Body::Parts {
                parts: parts.into_iter().collect(),
                streamed: true,
            },
        )
    }

    /// Replays a captured response: `head` is its status line and headers (as in the
    /// `*.headers` files of `fixtures/real-servers/`), `body` its decoded body. Framing headers
    /// of the capture (`content-length`, `transfer-encoding`) are replaced by the server's own:
    /// a capture that was chunked is sent chunked (as one chunk; see [`Reply::fixture`] for
    /// the original chunk boundaries), others with `content-length`. Other headers are kept
    /// as captured, in order. A head without a parsable status line gives a 200.
    pub fn from_capture(head: &str, body: impl Into<Bytes>) -> Reply {
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or("");
        let mut it = status_line.splitn(3, ' ');
        let _version = it.next();
        let status = it.next().and_then(|s| s.trim().parse().ok()).unwrap_or(200);
        let reason = it.next().map(str::trim).filter(|r| !r.is_empty());
        let mut reply = Reply::status(status);
        if let Some(r) = reason {
            reply = reply.reason(r);
        }
        let mut chunked = false;
        for line in lines {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let k = k.trim();
            if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
                continue;
            }
            if k.eq_ignore_ascii_case("content-length") || k.is_empty() {
                continue;
            }
            reply.headers.push((k.to_string(), v.trim().to_string()));
        }
        reply.body = Body::Parts {
            parts: vec![Part::Bytes(body.into())],
            streamed: chunked,
        };
        reply
    }

    /// Replays one of the real-server captures of this crate's `fixtures/real-servers/`
    /// (e.g. `"litellm_err_429"`, `"llamaserver_chat_stream"`; the names are the files'
    /// stems, their `README.md` says what each server is). When a `.rawchunked` capture exists,
    /// the original HTTP chunk boundaries are kept.
    ///
    /// The captures are compiled in: this works wherever the test binary runs. An unknown name
    /// is an `InvalidInput` error listing none of the files (see [`Reply::fixture_names`]).
    pub fn fixture(name: &str) -> std::io::Result<Reply> {
        let Some((_, head, body, raw)) = FIXTURES.iter().find(|(n, ..)| *n == name) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no fixture named {name:?} (see Reply::fixture_names)"),
            ));
        };
        let mut reply = Reply::from_capture(head, Bytes::from_static(body));
        if let Some(parts) = (*raw).and_then(parse_chunked) {
            reply.body = Body::Parts {
                parts,
                streamed: true,
            };
        }
        Ok(reply)
    }

    /// The names [`Reply::fixture`] knows, in order.
    pub fn fixture_names() -> impl Iterator<Item = &'static str> {
        FIXTURES.iter().map(|(name, ..)| *name)
    }

    fn with_action(mut self, action: Action) -> Reply {
        self.action = action;
        self
    }

    // ----- head -----------------------------------------------------------------------------

    /// Sets the status code (1xx/204/304 are sent without a body). Ignored by
    /// [`Reply::generate`], whose status is the fake model's.
    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    /// Sets the reason phrase (default: the standard one for the status).
    pub fn reason(mut self, reason: &str) -> Reply {
        self.reason = Some(reason.to_string());
        self
    }

    /// Adds a header (repeatable; written in order, after `date` and `server`). Setting
    /// `content-type` replaces the default one. Setting `content-length` or
    /// `transfer-encoding` yourself turns off the automatic framing headers: the body is
    /// written raw as given, and the connection is closed after the reply unless the
    /// `content-length` you gave matches the body.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if name.eq_ignore_ascii_case("content-type") {
            self.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        }
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Waits this long after the request is read before anything is written (slow first
    /// byte). For [`Reply::close`] / [`Reply::reset`]: waits before closing.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.head_delay = delay;
        self
    }

    /// [`Reply::delay`] in milliseconds.
    pub fn delay_ms(self, ms: u64) -> Reply {
        self.delay(Duration::from_millis(ms))
    }

    /// Sends `connection: close` and closes the connection after the reply.
    pub fn close_connection(mut self) -> Reply {
        self.close_after = true;
        self
    }

    // ----- body -----------------------------------------------------------------------------

    /// Replaces the body with these bytes (framed with `content-length` by default).
    pub fn body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = Body::Parts {
            parts: vec![Part::Bytes(body.into())],
            streamed: false,
        };
        self
    }

    /// Replaces the body with this JSON and sets `content-type: application/json`.
    pub fn json(self, json: &Value) -> Reply {
        self.header("content-type", "application/json")
            .body(json.to_string())
    }

    /// Appends a part to the body; a body built from parts is chunked by default.
    pub fn part(mut self, part: Part) -> Reply {
        match &mut self.body {
            Body::Parts { parts, streamed } => {
                parts.push(part);
                *streamed = true;
            }
            Body::Generate(_) => {
                self.body = Body::Parts {
                    parts: vec![part],
                    streamed: true,
                };
            }
        }
        self
    }

    /// Appends several parts (see [`Reply::part`]).
    pub fn parts(self, parts: impl IntoIterator<Item = Part>) -> Reply {
        parts.into_iter().fold(self, Reply::part)
    }

    /// Chooses the body framing (default [`Framing::Auto`]).
    pub fn framing(mut self, framing: Framing) -> Reply {
        self.framing = framing;
        self
    }

    /// Puts a write boundary every `n` body bytes (counted across all parts, before chunk
    /// framing), e.g. `split_every(1)` sends the body one byte per write. `0` is ignored.
    pub fn split_every(mut self, n: usize) -> Reply {
        self.split.every = (n > 0).then_some(n);
        self
    }

    /// Puts write boundaries at these body offsets (counted across all parts, before chunk
    /// framing) — e.g. in the middle of a multi-byte UTF-8 character.
    pub fn split_at(mut self, offsets: impl IntoIterator<Item = usize>) -> Reply {
        self.split.at = offsets.into_iter().collect();
        self.split.at.sort_unstable();
        self.split.at.dedup();
        self
    }

    /// Waits this long after every body write, so that each write tends
    /// to arrive in its own read at the client.
    pub fn pace(mut self, pause: Duration) -> Reply {
        self.split.pace = pause;
        self
    }

    // ----- options for Reply::generate ---------------------------------------------------

    fn gen(mut self, f: impl FnOnce(&mut Generate)) -> Reply {
        if let Body::Generate(g) = &mut self.body {
            f(g);
        }
        self
    }

    /// [`Reply::generate`] only: wait this long before each content token of a stream (for a
    /// non-streamed answer: `token_delay × completion tokens` before the head).
    pub fn token_delay(self, delay: Duration) -> Reply {
        self.gen(|g| g.token_delay = delay)
    }

    /// [`Reply::generate`] only: answer with this text instead of the default echo (still
    /// tokenized by words and capped by `max_tokens`).
    pub fn reply_text(self, text: &str) -> Reply {
        self.gen(|g| g.text = Some(text.to_string()))
    }

    /// [`Reply::generate`] only, chat: also produce this reasoning text (`reasoning` deltas
    /// before the content in a stream; `message.reasoning` otherwise).
    pub fn reasoning(self, text: &str) -> Reply {
        self.gen(|g| g.reasoning = Some(text.to_string()))
    }

    /// [`Reply::generate`] only, streams: after `n` content tokens, close the connection (no
    /// finish chunk, no `[DONE]`, no terminating chunk).
    pub fn cut_after_tokens(self, n: usize) -> Reply {
        self.gen(|g| g.ending = Ending::CutAfter(n))
    }

    /// [`Reply::generate`] only, streams: after `n` content tokens, send vLLM's in-band error
    /// event with this message, then `data: [DONE]`; the HTTP body ends cleanly.
    pub fn error_after_tokens(self, n: usize, message: &str) -> Reply {
        self.gen(|g| g.ending = Ending::ErrorAfter(n, message.to_string()))
    }

    /// [`Reply::generate`] only, streams: after `n` content tokens stop sending; keep the
    /// connection open for `hold` or until the client disconnects, then close it.
    pub fn stall_after_tokens(self, n: usize, hold: Duration) -> Reply {
        self.gen(|g| g.ending = Ending::StallAfter(n, hold))
    }

    /// [`Reply::generate`] only, streams: send everything except `data: [DONE]` and end the
    /// HTTP body cleanly (a stream that ends without its terminator).
    pub fn without_done(self) -> Reply {
        self.gen(|g| g.ending = Ending::NoDone)
    }

    /// [`Reply::generate`] only, streams: after `n` content tokens, send `count` keep-alive
    /// comments `every` apart (then go on with the stream).
    pub fn keep_alives_after_tokens(self, n: usize, count: usize, every: Duration) -> Reply {
        self.gen(|g| g.keep_alives = Some((n, count, every)))
    }
}

/// Splits a chunked-encoded body into one part per chunk (`None` if it is not well formed).
fn parse_chunked(mut raw: &[u8]) -> Option<Vec<Part>> {
    let mut parts = Vec::new();
    // Each iteration consumes at least the size line, so it ends within `raw.len()` steps.
    while !raw.is_empty() {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_str = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(parts);
        }
        if raw.len() < size + 2 || &raw[size..size + 2] != b"\r\n" {
            return None;
        }
        parts.push(Part::Bytes(Bytes::copy_from_slice(&raw[..size])));
        raw = &raw[size + 2..];
    }
    Some(parts)
}

#[cfg(test)]
mod fixture_tests {
    use super::*;

    #[test]
    fn fixture_table_is_the_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/real-servers");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("the fixtures directory")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|f| f.strip_suffix(".headers").map(str::to_owned))
            .collect();
        on_disk.sort();
        let table: Vec<&str> = Reply::fixture_names().collect();
        assert_eq!(table, on_disk, "add the new capture to FIXTURES");
        for (name, _, body, raw) in FIXTURES {
            let file = std::fs::read(dir.join(format!("{name}.body"))).expect("body");
            assert_eq!(*body, file.as_slice(), "{name}");
            let raw_file = std::fs::read(dir.join(format!("{name}.rawchunked"))).ok();
            assert_eq!(raw.map(<[u8]>::to_vec), raw_file, "{name}");
        }
    }

    #[test]
    fn fixtures_replay_and_unknown_names_are_errors() {
        let reply = Reply::fixture("litellm_err_429").expect("a capture");
        assert_eq!(reply.status, 429);
        let stream = Reply::fixture("llamaserver_chat_stream").expect("a chunked capture");
        match &stream.body {
            Body::Parts { parts, streamed } => {
                assert!(*streamed);
                assert!(parts.len() > 1, "the captured chunk boundaries are kept");
            }
            other => panic!("{other:?}"),
        }
        for bad in ["", "../Cargo", "no_such_capture"] {
            let e = Reply::fixture(bad).expect_err(bad);
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
