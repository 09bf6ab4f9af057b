//! [`Observation`]: what a call did, as typed values — for spans, logs and metrics.
//!
//! The core has no logging or metrics dependency. Instead, a [`Call`](super::Call) queues one
//! [`Observation`] at each point where something worth seeing happens, and an adapter drains
//! them with [`Call::poll_observation`](super::Call::poll_observation) and turns them into
//! whatever it reports with (the shared runner: `tracing` spans and events, and optionally
//! `metrics` / OpenTelemetry instruments). Breaker transitions belong to the client, not to a
//! call: they come from [`Shared::poll_transition`](super::Shared::poll_transition).
//!
//! What a call is — its operation, model and server, for span names and metric attributes —
//! is in [`CallMeta`] ([`Call::meta`](super::Call::meta)); what the server answered about it
//! (response model, finish reasons, token usage) is in [`ResponseInfo`]
//! ([`Call::response_info`](super::Call::response_info)).
//!
//! One call produces, in order:
//!
//! ```text
//! [Waiting(limiter) [Admitted(concurrency)]]*          — limiter waits, when any
//! ( AttemptStarted  [FirstChunk]  [TimerFired]  AttemptEnded  [Retry] )*
//! Finished                                             — exactly once
//! ```
//!
//! The queue is bounded ([`MAX_QUEUED`]): a caller that never drains it loses the oldest
//! observations (counted in [`Observer::dropped`]), never memory.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde::Deserialize;

use crate::api::Usage;
use crate::event::StreamEvent;
use crate::policy::TimeoutKind;
use crate::queue::InlineQueue;
use crate::request::Operation;

/// The most observations a call keeps queued; older ones are dropped first.
pub const MAX_QUEUED: usize = 256;

pub use crate::policy::failure::ErrorType;

/// A limiter a call waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limiter {
    /// A concurrency slot (`max_concurrency`).
    Concurrency,
    /// The client's own request rate (`rate_limit`).
    ClientRate,
    /// The client's own token rate (`rate_limit_tokens`).
    TokenRate,
    /// The server's announced quota (its rate-limit headers said nothing is left).
    ServerRate,
}

impl Limiter {
    /// The attribute value: `"concurrency"`, `"client_rate"`, `"token_rate"`, `"server_rate"`.
    pub fn label(self) -> &'static str {
        match self {
            Limiter::Concurrency => "concurrency",
            Limiter::ClientRate => "client_rate",
            Limiter::TokenRate => "token_rate",
            Limiter::ServerRate => "server_rate",
        }
    }
}

/// The name of a [`TimeoutKind`] as an attribute value: `"connect"`, `"first_token"`,
/// `"idle"`, `"attempt"`, `"deadline"`.
pub fn timeout_label(kind: TimeoutKind) -> &'static str {
    match kind {
        TimeoutKind::Connect => "connect",
        TimeoutKind::FirstToken => "first_token",
        TimeoutKind::Idle => "idle",
        TimeoutKind::Attempt => "attempt",
        TimeoutKind::Deadline => "deadline",
    }
}

/// One thing a call did. See the [module docs](self) for the order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Observation {
    /// The call waits for `limiter`: for `delay` (the rate limits), or until a slot frees
    /// (`None`: the concurrency limit).
    Waiting {
        /// Which limiter.
        limiter: Limiter,
        /// How long, when known in advance.
        delay: Option<Duration>,
    },
    /// The call got the concurrency slot it waited for.
    Admitted {
        /// Which limiter (always [`Limiter::Concurrency`] today).
        limiter: Limiter,
        /// How long it waited.
        waited: Duration,
    },
    /// An attempt's request was handed to the transport.
    AttemptStarted {
        /// The attempt, 1-based (a hedge counts as an attempt here).
        attempt: u32,
        /// The endpoint it went to (always the first for a client with one server).
        endpoint: crate::pool::EndpointId,
        /// An attempt of the call, or a hedge racing it.
        purpose: super::Purpose,
    },
    /// A hedged first token: the hedge started, or the race was decided.
    Hedge {
        /// What happened.
        event: HedgeEvent,
    },
    /// The attempt's first data (a stream's first data event; a document's end).
    FirstChunk {
        /// The attempt, 1-based.
        attempt: u32,
        /// Since the call started (waits and earlier attempts included).
        since_call_start: Duration,
        /// Since this attempt's request was sent.
        since_attempt_start: Duration,
    },
    /// A timer fired.
    TimerFired {
        /// Which one.
        kind: TimeoutKind,
    },
    /// An attempt ended.
    AttemptEnded {
        /// The attempt, 1-based.
        attempt: u32,
        /// The response status, when a head arrived.
        status: Option<StatusCode>,
        /// What went wrong; `None` for a success.
        error: Option<ErrorType>,
        /// How long the attempt took.
        duration: Duration,
    },
    /// The policy retries after a failed attempt.
    Retry {
        /// The attempt that failed, 1-based.
        attempt: u32,
        /// Why it failed.
        cause: ErrorType,
        /// The backoff before the next attempt.
        delay: Duration,
        /// Whether the delay is the server's `Retry-After` hint.
        hinted: bool,
    },
    /// The call ended (exactly once; the last observation).
    Finished {
        /// What went wrong; `None` for a success (a stream that ended with `[DONE]`).
        error: Option<ErrorType>,
        /// Attempts made.
        attempts: u32,
        /// From the call's start to its end.
        duration: Duration,
    },
}

/// What happened to a hedged first token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HedgeEvent {
    /// The hedge was sent.
    Started,
    /// The first attempt handed out the first event; the hedge was closed.
    PrimaryWon,
    /// The hedge handed out the first event; the first attempt was closed.
    HedgeWon,
}

impl HedgeEvent {
    /// The attribute value: `"started"`, `"primary_won"`, `"backup_won"`.
    pub fn label(self) -> &'static str {
        match self {
            HedgeEvent::Started => "started",
            HedgeEvent::PrimaryWon => "primary_won",
            HedgeEvent::HedgeWon => "backup_won",
        }
    }
}

/// What a call is, for span names and metric attributes: the OpenTelemetry GenAI operation
/// name, the requested model, the server. Read once when the call is built.
#[derive(Debug, Clone, PartialEq)]
pub struct CallMeta {
    /// `gen_ai.operation.name` (see [`operation_name`]): `"chat"` (chat completions and
    /// Responses), `"text_completion"`, `"embeddings"` (the convention's names), or for the
    /// other operations their own names.
    pub operation: &'static str,
    /// `gen_ai.provider.name` configured for the client (`None`: the runner's default,
    /// `"vllm"`).
    pub provider_name: Option<String>,
    /// `gen_ai.provider.name` of each endpoint of a pool that names its own (by index;
    /// empty when none does).
    pub endpoint_provider_names: Vec<Option<String>>,
    /// `gen_ai.request.model`: the body's `model` field, when it has one.
    pub request_model: Option<String>,
    /// `server.address`: the host of the request's URL.
    pub server_address: Option<String>,
    /// `server.port`: the port of the request's URL (the scheme's default when absent).
    pub server_port: Option<u16>,
    /// The request's `max_tokens` (or `max_completion_tokens`), when set.
    pub max_tokens: Option<u64>,
    /// Characters of prompt text in the body (messages' contents, `prompt`, `input`).
    pub prompt_chars: u64,
    /// `gen_ai.request.temperature`, when set.
    pub temperature: Option<f64>,
    /// `gen_ai.request.top_p`, when set.
    pub top_p: Option<f64>,
}

impl CallMeta {
    /// What a call to `endpoint` with `body`, sent to `request`'s URL, is.
    pub fn new(
        endpoint: Operation,
        body: Option<&serde_json::Value>,
        request: Option<&http::Request<bytes::Bytes>>,
    ) -> CallMeta {
        let uri = request.map(|r| r.uri());
        let server_port = uri.and_then(|u| {
            u.port_u16().or(match u.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            })
        });
        let field = |name: &str| body.and_then(|b| b.get(name));
        CallMeta {
            operation: operation_name(endpoint),
            provider_name: None,
            endpoint_provider_names: Vec::new(),
            request_model: field("model")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            server_address: uri.and_then(|u| u.host()).map(str::to_owned),
            server_port,
            max_tokens: field("max_tokens")
                .or_else(|| field("max_completion_tokens"))
                .and_then(serde_json::Value::as_u64),
            prompt_chars: ["messages", "prompt", "input"]
                .iter()
                .filter_map(|k| field(k))
                .map(text_chars)
                .fold(0u64, u64::saturating_add),
            temperature: field("temperature").and_then(serde_json::Value::as_f64),
            top_p: field("top_p").and_then(serde_json::Value::as_f64),
        }
    }

    /// The same, with the provider names configured in `request` (the client's, and each
    /// endpoint's own).
    pub fn with_providers(mut self, request: &crate::request::RequestConfig) -> CallMeta {
        self.provider_name.clone_from(&request.provider_name);
        if request.endpoints.iter().any(|e| e.provider_name.is_some()) {
            self.endpoint_provider_names = request
                .endpoints
                .iter()
                .map(|e| e.provider_name.clone())
                .collect();
        }
        self
    }

    /// The provider name for an attempt sent to `endpoint`: the endpoint's own, else the
    /// client's; `None` when neither is configured (the runner then reports `"vllm"`).
    pub fn provider_for(&self, endpoint: Option<crate::pool::EndpointId>) -> Option<&str> {
        endpoint
            .and_then(|e| self.endpoint_provider_names.get(e.index()))
            .and_then(Option::as_deref)
            .or(self.provider_name.as_deref())
    }

    /// The span name of the conventions: `"{operation} {model}"` (`"chat gpt-x"`), or the
    /// operation alone when no model was named.
    pub fn span_name(&self) -> String {
        match &self.request_model {
            Some(m) => format!("{} {m}", self.operation),
            None => self.operation.to_owned(),
        }
    }
}

/// The GenAI operation name of an operation (`gen_ai.operation.name`).
///
/// The conventions' well-known names where one applies — `chat` for chat completions and for
/// creating a Responses response (the conventions name OpenAI's chat and Responses APIs
/// `chat`), `text_completion`, `embeddings` — and otherwise a custom name: `models`,
/// `tokenize`, `detokenize`, `health`, `version`, `retrieve_response`, `cancel_response`,
/// `rerank`, `score`, `classify`, `pooling`, `transcription`, `translation`,
/// `load_lora_adapter`, `unload_lora_adapter`, and `http` for `client.request(…)`.
pub fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::ChatCompletions | Operation::Responses => "chat",
        Operation::Completions => "text_completion",
        Operation::Embeddings => "embeddings",
        Operation::Models => "models",
        Operation::Tokenize => "tokenize",
        Operation::Detokenize => "detokenize",
        Operation::Health => "health",
        Operation::Version => "version",
        Operation::RetrieveResponse => "retrieve_response",
        Operation::CancelResponse => "cancel_response",
        Operation::Rerank => "rerank",
        Operation::Score => "score",
        Operation::Classify => "classify",
        Operation::Pooling => "pooling",
        Operation::Transcriptions => "transcription",
        Operation::Translations => "translation",
        Operation::LoadLoraAdapter => "load_lora_adapter",
        Operation::UnloadLoraAdapter => "unload_lora_adapter",
        Operation::Custom => "http",
    }
}

/// Characters of text in a prompt value: strings count their characters, arrays and
/// objects the strings inside them (a message's `content`, a list of prompts). Bounded by
/// the value's size; no recursion deeper than the JSON (which `serde_json` limits to 128).
fn text_chars(v: &serde_json::Value) -> u64 {
    match v {
        serde_json::Value::String(s) => s.chars().count() as u64,
        serde_json::Value::Array(a) => a.iter().map(text_chars).fold(0, u64::saturating_add),
        serde_json::Value::Object(o) => o
            .iter()
            .filter(|(k, _)| k.as_str() != "role" && k.as_str() != "name")
            .map(|(_, v)| text_chars(v))
            .fold(0, u64::saturating_add),
        _ => 0,
    }
}

/// What the server said about a call's answer: the model that answered, why the choices
/// stopped, the token usage. From a JSON answer's document, or from a stream's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseInfo {
    /// `gen_ai.response.id`.
    pub id: Option<String>,
    /// `gen_ai.response.model`.
    pub model: Option<String>,
    /// `gen_ai.response.finish_reasons`, in choice order (at most 16 kept).
    pub finish_reasons: Vec<String>,
    /// Token usage, when the server reported it.
    pub usage: Option<Usage>,
}

/// The most finish reasons kept (a request with a huge `n`).
const MAX_FINISH_REASONS: usize = 16;

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<DocChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct DocChoice {
    #[serde(default)]
    finish_reason: Option<String>,
}

impl ResponseInfo {
    /// What a JSON answer says (nothing, if it is not one).
    pub fn from_json(body: &[u8]) -> ResponseInfo {
        match serde_json::from_slice::<Document>(body) {
            Ok(d) => ResponseInfo {
                id: d.id,
                model: d.model,
                finish_reasons: d
                    .choices
                    .into_iter()
                    .filter_map(|c| c.finish_reason)
                    .take(MAX_FINISH_REASONS)
                    .collect(),
                usage: d.usage,
            },
            Err(_) => ResponseInfo::default(),
        }
    }

    /// Takes what a stream event says: finish reasons and usage (chat and completions
    /// events, whole chunks), the id, model, status and usage of a Responses stream's
    /// lifecycle events.
    pub fn on_event(&mut self, ev: &StreamEvent) {
        match ev {
            StreamEvent::Finish { reason, .. }
                if self.finish_reasons.len() < MAX_FINISH_REASONS =>
            {
                self.finish_reasons.push(reason.clone());
            }
            StreamEvent::Usage(u) => self.usage = Some(u.clone()),
            StreamEvent::Chunk(c) => {
                if self.id.is_none() && !c.id.is_empty() {
                    self.id = Some(c.id.clone());
                }
                if self.model.is_none() && !c.model.is_empty() {
                    self.model = Some(c.model.clone());
                }
                for choice in &c.choices {
                    if let Some(r) = &choice.finish_reason {
                        if self.finish_reasons.len() < MAX_FINISH_REASONS {
                            self.finish_reasons.push(r.clone());
                        }
                    }
                }
                if let Some(u) = &c.usage {
                    self.usage = Some(u.clone());
                }
            }
            StreamEvent::Response(r) => {
                if let Some(resp) = r.response() {
                    self.on_response(resp, r.is_terminal());
                }
            }
            _ => {}
        }
    }

    /// Takes what a Responses response object says (its status is the finish reason once it
    /// is done).
    fn on_response(&mut self, r: &crate::api::Response, done: bool) {
        if !r.id.is_empty() {
            self.id = Some(r.id.clone());
        }
        if !r.model.is_empty() {
            self.model = Some(r.model.clone());
        }
        if let Some(u) = &r.usage {
            self.usage = Some(Usage::from(u));
        }
        if done && !r.status.is_empty() && self.finish_reasons.is_empty() {
            self.finish_reasons.push(r.status.clone());
        }
    }

    /// What a Responses response object's JSON says (nothing, if it is not one).
    pub fn from_response_json(body: &[u8]) -> ResponseInfo {
        let mut info = ResponseInfo::default();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
            if let Ok(r) = crate::api::Response::from_json(v) {
                info.on_response(&r, r.is_done());
            }
        }
        info
    }
}

/// A call's observations and the bookkeeping behind them (kept inside the call).
#[derive(Debug)]
// `repr(C)`: the queue, drained after every poll, first (see `Call`'s layout).
#[repr(C)]
pub struct Observer {
    /// One inline: a heap buffer for it would be held by every open stream.
    queue: InlineQueue<Observation>,
    dropped: u64,
    call_start: Instant,
    /// The attempts in progress (two while a hedge races): number, start, head status.
    open: OpenAttempts,
    /// Since when the call waits for a concurrency slot.
    queued_since: Option<Instant>,
    finished: bool,
    pub(crate) response: ResponseInfo,
}

impl Observer {
    pub(crate) fn new(now: Instant) -> Observer {
        Observer {
            queue: InlineQueue::new(),
            dropped: 0,
            call_start: now,
            open: OpenAttempts::default(),
            queued_since: None,
            finished: false,
            response: ResponseInfo::default(),
        }
    }

    /// Observations lost because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    #[inline]
    pub(crate) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Observation> {
        self.queue.pop_front()
    }

    pub(crate) fn push(&mut self, o: Observation) {
        if self.finished {
            return;
        }
        if self.queue.len() >= MAX_QUEUED {
            self.queue.pop_front();
            self.dropped = self.dropped.saturating_add(1);
        }
        self.queue.push_back(o);
    }

    pub(crate) fn waiting(&mut self, now: Instant, limiter: Limiter, until: Option<Instant>) {
        if limiter == Limiter::Concurrency {
            self.queued_since = Some(now);
        }
        let delay = until.map(|u| u.saturating_duration_since(now));
        self.push(Observation::Waiting { limiter, delay });
    }

    pub(crate) fn admitted(&mut self, now: Instant) {
        if let Some(since) = self.queued_since.take() {
            self.push(Observation::Admitted {
                limiter: Limiter::Concurrency,
                waited: now.saturating_duration_since(since),
            });
        }
    }

    pub(crate) fn attempt_started(
        &mut self,
        now: Instant,
        attempt: u32,
        endpoint: crate::pool::EndpointId,
        purpose: super::Purpose,
    ) {
        if let (true, Some(&(number, ..))) = (self.open.is_full(), self.open.first()) {
            // Bounded: an attempt never ended is closed by the next ones.
            self.end_attempt(number, now, None);
        }
        self.open.push((attempt, now, None));
        self.push(Observation::AttemptStarted {
            attempt,
            endpoint,
            purpose,
        });
    }

    pub(crate) fn head(&mut self, attempt: u32, status: StatusCode) {
        if let Some((_, _, s)) = self.open.find_mut(attempt) {
            *s = Some(status);
        }
    }

    pub(crate) fn first_chunk(&mut self, attempt: u32, now: Instant) {
        if let Some(&mut (attempt, start, _)) = self.open.find_mut(attempt) {
            self.push(Observation::FirstChunk {
                attempt,
                since_call_start: now.saturating_duration_since(self.call_start),
                since_attempt_start: now.saturating_duration_since(start),
            });
        }
    }

    /// Ends attempt `attempt`, if it is in progress.
    pub(crate) fn end_attempt(&mut self, attempt: u32, now: Instant, error: Option<ErrorType>) {
        if let Some((attempt, start, status)) = self.open.remove(attempt) {
            self.push(Observation::AttemptEnded {
                attempt,
                status,
                error,
                duration: now.saturating_duration_since(start),
            });
        }
    }

    pub(crate) fn finished(&mut self, now: Instant, error: Option<ErrorType>, attempts: u32) {
        if self.finished {
            return;
        }
        while let Some(&(attempt, ..)) = self.open.first() {
            self.end_attempt(attempt, now, error);
        }
        self.push(Observation::Finished {
            error,
            attempts,
            duration: now.saturating_duration_since(self.call_start),
        });
        self.finished = true;
    }
}

/// An attempt in progress: its number, its start and its head's status.
type OpenAttempt = (u32, Instant, Option<StatusCode>);

/// The attempts in progress, oldest first, inline: at most four (a call rarely has more than
/// one, two while a hedge races), so recording them never allocates.
#[derive(Debug, Default)]
struct OpenAttempts([Option<OpenAttempt>; 4]);

impl OpenAttempts {
    fn is_full(&self) -> bool {
        self.0.iter().all(Option::is_some)
    }

    fn first(&self) -> Option<&OpenAttempt> {
        self.0[0].as_ref()
    }

    /// Adds `a` after the others (ignored when full: the caller makes room first).
    fn push(&mut self, a: OpenAttempt) {
        if let Some(slot) = self.0.iter_mut().find(|s| s.is_none()) {
            *slot = Some(a);
        }
    }

    fn find_mut(&mut self, number: u32) -> Option<&mut OpenAttempt> {
        self.0.iter_mut().flatten().find(|(n, ..)| *n == number)
    }

    /// Takes attempt `number` out, keeping the others in order.
    fn remove(&mut self, number: u32) -> Option<OpenAttempt> {
        let i = self
            .0
            .iter()
            .position(|s| matches!(s, Some((n, ..)) if *n == number))?;
        let a = self.0[i].take();
        self.0[i..].rotate_left(1);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::VllmError;

    #[test]
    fn open_attempts_keep_their_order_and_their_bound() {
        let t = Instant::now();
        let mut open = OpenAttempts::default();
        for n in 1..=4 {
            assert!(!open.is_full());
            open.push((n, t, None));
        }
        assert!(open.is_full());
        open.push((5, t, None)); // full: ignored
        assert!(open.find_mut(5).is_none());
        assert_eq!(open.remove(2).map(|a| a.0), Some(2));
        assert_eq!(open.remove(2), None);
        open.push((6, t, None));
        let order: Vec<u32> = std::iter::from_fn(|| {
            let n = open.first()?.0;
            open.remove(n).map(|a| a.0)
        })
        .collect();
        assert_eq!(order, [1, 3, 4, 6]);
    }
    use serde_json::json;

    #[test]
    fn meta_reads_model_operation_server_and_prompt() {
        let body = json!({
            "model": "gpt-x",
            "max_tokens": 7,
            "temperature": 0.5,
            "messages": [{"role": "user", "content": "hello"}, {"role": "system", "content": "abc"}]
        });
        let req = http::Request::builder()
            .uri("http://127.0.0.1:8123/v1/chat/completions")
            .body(bytes::Bytes::new())
            .unwrap();
        let m = CallMeta::new(Operation::ChatCompletions, Some(&body), Some(&req));
        assert_eq!(m.operation, "chat");
        assert_eq!(m.request_model.as_deref(), Some("gpt-x"));
        assert_eq!(m.server_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(m.server_port, Some(8123));
        assert_eq!(m.max_tokens, Some(7));
        assert_eq!(m.prompt_chars, 8);
        assert_eq!((m.temperature, m.top_p), (Some(0.5), None));
        assert_eq!(m.span_name(), "chat gpt-x");
        let https = http::Request::builder()
            .uri("https://api.example/v1/models")
            .body(bytes::Bytes::new())
            .unwrap();
        let m = CallMeta::new(Operation::Models, None, Some(&https));
        assert_eq!((m.operation, m.server_port), ("models", Some(443)));
        assert_eq!(m.span_name(), "models");
        assert_eq!(m.prompt_chars, 0);
    }

    #[test]
    fn response_info_from_a_document_and_from_events() {
        let doc = br#"{"id":"c1","model":"m2","choices":[{"finish_reason":"stop"},{"finish_reason":"length"}],
            "usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#;
        let r = ResponseInfo::from_json(doc);
        assert_eq!(r.model.as_deref(), Some("m2"));
        assert_eq!(r.id.as_deref(), Some("c1"));
        assert_eq!(r.finish_reasons, ["stop", "length"]);
        assert_eq!(r.usage.as_ref().map(|u| u.completion_tokens), Some(5));
        assert_eq!(ResponseInfo::from_json(b"<html>"), ResponseInfo::default());

        let mut r = ResponseInfo::default();
        r.on_event(&StreamEvent::Finish {
            index: 0,
            reason: "stop".into(),
        });
        assert_eq!(r.finish_reasons, ["stop"]);
    }

    #[test]
    fn error_types_are_low_cardinality_labels() {
        assert_eq!(ErrorType::of(&VllmError::Timeout).label(), "timeout");
        assert_eq!(ErrorType::Status(503).label(), "503");
        assert_eq!(
            ErrorType::of(&VllmError::Truncated).to_string(),
            "truncated"
        );
    }

    #[test]
    fn the_queue_is_bounded_and_ends_with_finished() {
        let t0 = Instant::now();
        let mut o = Observer::new(t0);
        for i in 0..(MAX_QUEUED as u32 + 10) {
            o.attempt_started(
                t0,
                i + 1,
                crate::pool::EndpointId::new(0),
                super::super::Purpose::Attempt,
            );
        }
        assert!(o.dropped() > 0);
        o.finished(t0 + Duration::from_secs(1), None, 3);
        o.finished(t0 + Duration::from_secs(2), None, 3);
        o.push(Observation::TimerFired {
            kind: TimeoutKind::Idle,
        });
        let all: Vec<_> = std::iter::from_fn(|| o.pop()).collect();
        assert!(all.len() <= MAX_QUEUED);
        assert_eq!(
            all.last(),
            Some(&Observation::Finished {
                error: None,
                attempts: 3,
                duration: Duration::from_secs(1)
            })
        );
    }
}
