//! The chat / completions stream decoder: event-stream bytes in, [`StreamEvent`]s out.
//!
//! Three more kinds run on the same machinery and keep the same rules: the chunk modes
//! ([`StreamKind::ChatChunks`], [`StreamKind::CompletionsChunks`]) hand each chunk out whole
//! as [`StreamEvent::Chunk`] (with its id, model and log probabilities) instead of the events
//! of the table below, and [`StreamKind::Responses`] decodes the Responses API's typed,
//! numbered events ([`crate::responses_stream`]).
//!
//! [`StreamDecoder`] sits on the [SSE decoder](crate::sse) and reads what vLLM and the servers
//! that copy its API send (REFERENCE §1):
//!
//! | in a `data:` event | out |
//! |---|---|
//! | `delta.content` (chat) / `text` (completions) of choice 0 | [`StreamEvent::Content`] |
//! | the same of another choice | [`StreamEvent::ChoiceContent`] |
//! | `delta.reasoning`, else `delta.reasoning_content` (never both), choice 0 | [`StreamEvent::Reasoning`] |
//! | each `delta.tool_calls[]` fragment, any choice | [`StreamEvent::ToolCallDelta`] |
//! | `finish_reason` | for choice 0 first its accumulated [`StreamEvent::ToolCall`]s, then [`StreamEvent::Finish`] |
//! | `usage` (on any chunk, also `choices: []`) | [`StreamEvent::Usage`] |
//! | `[DONE]` | tool calls of choice 0 never finished, then [`StreamEvent::Done`] |
//! | `{"error": …}` (or `{"object":"error",…}`) | [`StreamEvent::Error`] with [`VllmError::Api`] |
//! | anything that is not JSON of the expected shape | [`StreamEvent::Error`] with [`VllmError::Decode`] |
//! | end of body before `[DONE]` | [`StreamEvent::Error`] with [`VllmError::Truncated`] |
//! | a line or event over the [limits](SseLimits) | [`StreamEvent::Error`] with [`VllmError::StreamLimit`] |
//!
//! Rules:
//!
//! - Exactly one terminal event (`Done` or `Error`) ends every stream, and after it nothing is
//!   produced, whatever is pushed: an in-band error followed by vLLM's usual `[DONE]` is an
//!   error, and a broken stream yields one error, not a loop of them.
//! - Tolerant of what real servers do: `"content": null` (llama.cpp), spaces after colons
//!   (llama-cpp-python), a `role`-only first chunk, unknown fields, empty strings (which
//!   produce no event), events whose `event:` type is not `message` (ignored).
//! - The decoder never accumulates text: the caller does. Only the arguments of choice 0's tool
//!   calls are accumulated, and their total (plus 64 bytes per call) is bounded by the
//!   event-size limit ([`SseLimits::max_event`]); beyond it the stream fails with
//!   [`VllmError::StreamLimit`].
//! - [`push`](StreamDecoder::push) reports how many data events and how many keep-alives
//!   (comment lines, and events whose data is blank) it read, so that a driver resets its idle
//!   timer on data only: keep-alives must not hide a stalled generation.
//!
//! ```text
//!   push(bytes) ──► SSE parser ──► message event ──► parse chunk ──► queue ──► poll_event()
//!                        │              │  [DONE] ───────────────► Done      ─┐
//!                        │              │  {"error"} / not JSON ──► Error     ├─► terminal:
//!                        │ limit ───────┴───────────────────────► Error      │   input ignored,
//!   finish() ── no terminal yet ─────────────────────────────────► Truncated ─┘   nothing more
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::api::{FunctionCall, ToolCall, ToolCallDelta, Usage};
use crate::error::{ApiError, VllmError};
use crate::event::StreamEvent;
use crate::responses_stream::{ResponseCursor, ResponsesState};
use crate::sse::{Parser, Raw, SseLimits};

/// Bytes charged per accumulated tool call on top of its text, so that many empty calls also
/// count against the limit.
const TOOL_CALL_OVERHEAD: usize = 64;

/// Which endpoint's stream is decoded, and into what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamKind {
    /// `/v1/chat/completions` (and the streamed audio transcriptions and translations, which
    /// send the same chunks): `chat.completion.chunk` objects with `choices[].delta`, decoded
    /// into [`StreamEvent`]s (`Content`, `Reasoning`, tool calls, …).
    Chat,
    /// `/v1/completions`: `text_completion` objects with `choices[].text`, decoded into
    /// [`StreamEvent`]s.
    Completions,
    /// The same chunks as [`Chat`](Self::Chat), each handed out whole as
    /// [`StreamEvent::Chunk`] (with its id, model and log probabilities), for the
    /// result-shaped view of a stream.
    ChatChunks,
    /// The same chunks as [`Completions`](Self::Completions), each handed out whole as
    /// [`StreamEvent::Chunk`].
    CompletionsChunks,
    /// `/v1/responses`: typed, numbered events ([`crate::responses_stream`]), handed out as
    /// [`StreamEvent::Response`].
    Responses,
}

impl StreamKind {
    /// Whether chunks are handed out whole ([`StreamEvent::Chunk`]).
    pub fn is_chunks(self) -> bool {
        matches!(self, StreamKind::ChatChunks | StreamKind::CompletionsChunks)
    }

    /// Whether chunks carry `delta`s (chat) rather than `text` (completions).
    fn is_chat(self) -> bool {
        matches!(self, StreamKind::Chat | StreamKind::ChatChunks)
    }
}

/// What one [`push`](StreamDecoder::push) read, for the caller's idle timer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Events carrying data (`message` events with non-blank data, `[DONE]` included). Only
    /// these show that generation is progressing.
    pub data_events: usize,
    /// Keep-alives: comment lines and events whose data is blank. They show the connection is
    /// alive, not that the model is.
    pub comments: usize,
}

impl PushReport {
    /// Whether any data event arrived (what an idle timer between data events resets on).
    pub fn has_data(&self) -> bool {
        self.data_events > 0
    }
}

impl std::ops::AddAssign for PushReport {
    fn add_assign(&mut self, other: Self) {
        self.data_events += other.data_events;
        self.comments += other.comments;
    }
}

/// Decodes a streamed chat completion or completion. See the [module docs](self).
///
/// ```
/// use vllm_client_core::stream::StreamDecoder;
/// use vllm_client_core::StreamEvent;
///
/// let mut dec = StreamDecoder::chat();
/// let report = dec.push(b": ping\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n");
/// assert_eq!((report.data_events, report.comments), (1, 1));
/// dec.push(b"data: [DONE]\n\n");
/// assert!(matches!(dec.poll_event(), Some(StreamEvent::Content(s)) if s == "Hi"));
/// assert!(matches!(dec.poll_event(), Some(StreamEvent::Done)));
/// assert!(dec.poll_event().is_none());
/// assert!(dec.is_finished());
/// ```
#[derive(Debug)]
pub struct StreamDecoder {
    sse: Parser,
    state: State,
    /// For [`StreamKind::Responses`]: its own state (the chat state then stays idle).
    responses: Option<Box<ResponsesState>>,
}

#[derive(Debug)]
struct State {
    kind: StreamKind,
    out: VecDeque<StreamEvent>,
    terminated: bool,
    /// Choice 0's tool calls by index, until its `finish_reason` or `[DONE]`.
    tools: BTreeMap<u32, ToolCall>,
    tool_bytes: usize,
    max_tool_bytes: usize,
    /// The `model` the first chunk named (`gen_ai.response.model`).
    model: Option<String>,
}

impl StreamDecoder {
    /// The `model` the stream's first chunk named (the model that answers), once it arrived.
    pub fn model(&self) -> Option<&str> {
        match &self.responses {
            Some(r) => r.model.as_deref(),
            None => self.state.model.as_deref(),
        }
    }

    /// For a Responses stream: the response's id and the last `sequence_number` handed out
    /// (`None` for other streams).
    pub fn response_cursor(&self) -> Option<&ResponseCursor> {
        self.responses.as_ref().map(|r| &r.cursor)
    }

    /// For a Responses stream resumed after `cursor` (the rest of a cut stream, asked for with
    /// `starting_after`): events numbered at or below its last `sequence_number` are dropped as
    /// replays, so none is handed out twice. No effect on other streams.
    pub fn resuming(mut self, cursor: ResponseCursor) -> Self {
        if let Some(r) = self.responses.as_deref_mut() {
            r.cursor = cursor;
        }
        self
    }

    /// A decoder for `kind`, with the default [`SseLimits`].
    pub fn new(kind: StreamKind) -> Self {
        let limits = SseLimits::default();
        StreamDecoder {
            responses: (kind == StreamKind::Responses).then(Box::default),
            sse: Parser::new(limits),
            state: State {
                kind,
                out: VecDeque::new(),
                terminated: false,
                tools: BTreeMap::new(),
                tool_bytes: 0,
                max_tool_bytes: limits.max_event,
                model: None,
            },
        }
    }

    /// A decoder for `/v1/chat/completions` streams.
    pub fn chat() -> Self {
        Self::new(StreamKind::Chat)
    }

    /// A decoder for legacy `/v1/completions` streams.
    pub fn completions() -> Self {
        Self::new(StreamKind::Completions)
    }

    /// A decoder for `/v1/responses` streams.
    pub fn responses() -> Self {
        Self::new(StreamKind::Responses)
    }

    /// Sets the limits (line, event, and the bound on accumulated tool-call arguments, which is
    /// `max_event`). Meant to be called before the first [`push`](Self::push).
    pub fn with_limits(mut self, limits: SseLimits) -> Self {
        self.sse.set_limits(limits);
        self.state.max_tool_bytes = limits.max_event;
        self
    }

    // --- getters ---

    /// The endpoint kind this decoder reads.
    pub fn kind(&self) -> StreamKind {
        self.state.kind
    }

    /// The limits in force.
    pub fn limits(&self) -> SseLimits {
        self.sse.limits()
    }

    /// Whether the terminal event has been produced (it may still wait in the queue).
    pub fn is_terminated(&self) -> bool {
        match &self.responses {
            Some(r) => r.terminated,
            None => self.state.terminated,
        }
    }

    /// Whether the terminal event has been produced and every event polled: nothing more will
    /// ever come out.
    pub fn is_finished(&self) -> bool {
        match &self.responses {
            Some(r) => r.terminated && r.out.is_empty(),
            None => self.state.terminated && self.state.out.is_empty(),
        }
    }

    /// Bytes held: the SSE decoder's pending line and event plus the accumulated tool calls
    /// (with their per-call overhead). Bounded by the limits; queued events are not counted.
    pub fn buffered_bytes(&self) -> usize {
        self.sse.buffered_bytes() + self.state.tool_bytes
    }

    // --- inputs ---

    /// Feeds the next bytes of the body, split anywhere, and reports what they held. After the
    /// terminal event input is ignored and the report is empty.
    pub fn push(&mut self, bytes: &[u8]) -> PushReport {
        let mut report = PushReport::default();
        if let Some(r) = self.responses.as_deref_mut() {
            if !r.terminated {
                self.sse
                    .push_with(bytes, &mut |raw| r.handle(raw, &mut report));
                if let (Some(e), false) = (self.sse.error(), r.terminated) {
                    r.terminate(StreamEvent::Error(VllmError::StreamLimit(e.to_string())));
                }
            }
            return report;
        }
        if self.state.terminated {
            return report;
        }
        let state = &mut self.state;
        self.sse
            .push_with(bytes, &mut |raw| state.handle(raw, &mut report));
        if let Some(e) = self.sse.error() {
            if !self.state.terminated {
                let e = VllmError::StreamLimit(e.to_string());
                self.state.terminate(StreamEvent::Error(e));
            }
        }
        report
    }

    /// The body ended. Without a terminal event so far this produces
    /// `Error(VllmError::Truncated)`: a stream cut before `[DONE]` is never a success.
    pub fn finish(&mut self) {
        self.sse.finish();
        if let Some(r) = self.responses.as_deref_mut() {
            if !r.terminated {
                r.terminate(StreamEvent::Error(VllmError::Truncated));
            }
            return;
        }
        if !self.state.terminated {
            self.state
                .terminate(StreamEvent::Error(VllmError::Truncated));
        }
    }

    /// The server ignored `stream: true` and answered with one complete `chat.completion` (or
    /// `text_completion`) JSON document: it is turned into the events its stream would have
    /// produced — reasoning, content, tool calls (with their deltas), finish reasons, usage,
    /// then `Done`. An error document gives [`VllmError::Api`]; anything else, a
    /// [`VllmError::Decode`]. Ignored after the terminal event.
    pub fn push_document(&mut self, body: &[u8]) {
        if let Some(r) = self.responses.as_deref_mut() {
            if !r.terminated {
                r.document(body);
            }
            return;
        }
        if self.state.terminated {
            return;
        }
        let mut doc = match serde_json::from_slice::<Value>(body) {
            Ok(v) => v,
            Err(e) => {
                let e = VllmError::decode(
                    format!("the JSON answer to a stream request is not JSON: {e}"),
                    body,
                );
                return self.state.terminate(StreamEvent::Error(e));
            }
        };
        if ApiError::from_stream_event(&doc).is_some() {
            let text = String::from_utf8_lossy(body);
            return self.state.api_error(&doc, &text);
        }
        let Some(choices) = doc.get_mut("choices").and_then(Value::as_array_mut) else {
            let e = VllmError::decode("the JSON answer to a stream request has no choices", body);
            return self.state.terminate(StreamEvent::Error(e));
        };
        for choice in choices.iter_mut().filter_map(Value::as_object_mut) {
            // A whole `message` reads as one big `delta`; its tool calls carry no `index`,
            // their position is it.
            if let Some(mut message) = choice.remove("message") {
                if let Some(calls) = message.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    for (i, call) in calls.iter_mut().enumerate() {
                        if let Some(call) = call.as_object_mut() {
                            call.entry("index").or_insert(Value::from(i));
                        }
                    }
                }
                choice.insert("delta".to_owned(), message);
            }
        }
        self.state.chunk(&doc.to_string());
        if !self.state.terminated {
            self.state.flush_tools();
            self.state.terminate(StreamEvent::Done);
        }
    }

    // --- outputs ---

    /// The next event, or `None` when nothing is queued. After the terminal event has been
    /// returned this is `None` forever.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        match self.responses.as_deref_mut() {
            Some(r) => r.out.pop_front(),
            None => self.state.out.pop_front(),
        }
    }
}

impl State {
    fn terminate(&mut self, ev: StreamEvent) {
        self.out.push_back(ev);
        self.terminated = true;
        self.tools = BTreeMap::new();
        self.tool_bytes = 0;
    }

    /// One finding of the SSE parser; `false` stops parsing (a terminal event was produced).
    fn handle(&mut self, raw: Raw<'_>, report: &mut PushReport) -> bool {
        match raw {
            Raw::Comment(_) => report.comments += 1,
            Raw::Retry(_) => {}
            Raw::Event {
                event_type, data, ..
            } => {
                if !event_type.is_empty() && event_type != b"message" {
                    return true;
                }
                let text = crate::sse::lossy(data.bytes());
                let trimmed = text.trim_ascii();
                if trimmed.is_empty() {
                    report.comments += 1;
                    return true;
                }
                report.data_events += 1;
                if trimmed == "[DONE]" {
                    self.flush_tools();
                    self.terminate(StreamEvent::Done);
                } else {
                    self.chunk(&text);
                }
            }
        }
        !self.terminated
    }

    fn chunk(&mut self, text: &str) {
        if self.kind.is_chunks() {
            return self.whole_chunk(text);
        }
        let chunk = match serde_json::from_str::<Chunk<'_>>(text) {
            Ok(c) => c,
            Err(e) => return self.bad_chunk(text, e),
        };
        if chunk.error.is_some() || chunk.object.as_deref() == Some("error") {
            let v = serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
            return self.api_error(&v, text);
        }
        if self.model.is_none() {
            self.model = chunk.model.map(Cow::into_owned);
        }
        for choice in chunk.choices.into_iter().flatten() {
            self.choice(choice);
            if self.terminated {
                return;
            }
        }
        if let Some(usage) = chunk.usage {
            self.out.push_back(StreamEvent::Usage(usage));
        }
    }

    /// Chunk mode: the chunk handed out whole, after the same error checks.
    fn whole_chunk(&mut self, text: &str) {
        let v = match serde_json::from_str::<Value>(text) {
            Ok(v) => v,
            Err(e) => {
                return self.terminate(StreamEvent::Error(VllmError::decode(
                    format!("stream event is not JSON: {e}"),
                    text.as_bytes(),
                )))
            }
        };
        if ApiError::from_stream_event(&v).is_some() {
            return self.api_error(&v, text);
        }
        match serde_json::from_value::<crate::api::Chunk>(v) {
            Ok(chunk) => {
                if self.model.is_none() && !chunk.model.is_empty() {
                    self.model = Some(chunk.model.clone());
                }
                self.out.push_back(StreamEvent::Chunk(Box::new(chunk)));
            }
            Err(e) => self.terminate(StreamEvent::Error(VllmError::decode(
                format!("stream event has an unexpected shape: {e}"),
                text.as_bytes(),
            ))),
        }
    }

    /// The typed parse failed: an error event of an unusual shape, JSON of an unexpected shape,
    /// or not JSON at all.
    fn bad_chunk(&mut self, text: &str, e: serde_json::Error) {
        match serde_json::from_str::<Value>(text) {
            Ok(v) if ApiError::from_stream_event(&v).is_some() => self.api_error(&v, text),
            Ok(_) => self.terminate(StreamEvent::Error(VllmError::decode(
                format!("stream event has an unexpected shape: {e}"),
                text.as_bytes(),
            ))),
            Err(_) => self.terminate(StreamEvent::Error(VllmError::decode(
                format!("stream event is not JSON: {e}"),
                text.as_bytes(),
            ))),
        }
    }

    fn api_error(&mut self, v: &Value, text: &str) {
        let api = ApiError::from_stream_event(v)
            .unwrap_or_else(|| ApiError::in_stream(crate::error::snippet(text.as_bytes())));
        self.terminate(StreamEvent::Error(VllmError::Api(Box::new(api))));
    }

    fn choice(&mut self, choice: Choice) {
        let index = choice.index.unwrap_or(0);
        match self.kind.is_chat() {
            true => {
                if let Some(delta) = choice.delta {
                    let reasoning =
                        non_empty(delta.reasoning).or(non_empty(delta.reasoning_content));
                    if let (Some(r), 0) = (reasoning, index) {
                        self.out.push_back(StreamEvent::Reasoning(r));
                    }
                    if let Some(text) = non_empty(delta.content) {
                        self.text(index, text);
                    }
                    for tc in delta.tool_calls.into_iter().flatten() {
                        self.tool_fragment(index, tc);
                        if self.terminated {
                            return;
                        }
                    }
                }
            }
            false => {
                if let Some(text) = non_empty(choice.text) {
                    self.text(index, text);
                }
            }
        }
        if let Some(reason) = non_empty(choice.finish_reason) {
            if index == 0 {
                self.flush_tools();
            }
            self.out.push_back(StreamEvent::Finish { index, reason });
        }
    }

    fn text(&mut self, index: u32, text: String) {
        self.out.push_back(if index == 0 {
            StreamEvent::Content(text)
        } else {
            StreamEvent::ChoiceContent { index, text }
        });
    }

    fn tool_fragment(&mut self, choice: u32, tc: ToolDelta) {
        let index = tc.index.unwrap_or(0);
        let (name, arguments) = match tc.function {
            Some(f) => (f.name, f.arguments.unwrap_or_default()),
            None => (None, String::new()),
        };
        if choice == 0 {
            let is_new = !self.tools.contains_key(&index);
            let cost = arguments.len()
                + tc.id.as_ref().map_or(0, String::len)
                + name.as_ref().map_or(0, String::len)
                + if is_new { TOOL_CALL_OVERHEAD } else { 0 };
            if self.tool_bytes + cost > self.max_tool_bytes {
                let e = VllmError::StreamLimit(format!(
                    "tool-call arguments exceed {} bytes",
                    self.max_tool_bytes
                ));
                return self.terminate(StreamEvent::Error(e));
            }
            self.tool_bytes += cost;
            let call = self.tools.entry(index).or_insert_with(|| ToolCall {
                index,
                id: String::new(),
                kind: "function".to_owned(),
                function: FunctionCall::default(),
            });
            match &tc.id {
                Some(id) if call.id.is_empty() => call.id.clone_from(id),
                _ => {}
            }
            match &name {
                Some(n) if call.function.name.is_empty() => call.function.name.clone_from(n),
                _ => {}
            }
            if let Some(kind) = non_empty(tc.kind) {
                call.kind = kind;
            }
            call.function.arguments.push_str(&arguments);
        }
        if tc.id.is_some() || name.is_some() || !arguments.is_empty() {
            self.out
                .push_back(StreamEvent::ToolCallDelta(ToolCallDelta::new(
                    choice, index, tc.id, name, arguments,
                )));
        }
    }

    fn flush_tools(&mut self) {
        let tools = std::mem::take(&mut self.tools);
        self.tool_bytes = 0;
        for (_, call) in tools {
            self.out.push_back(StreamEvent::ToolCall(call));
        }
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

// The chunk as far as the decoder reads it. Unknown fields (`id`, `model`, `created`,
// `logprobs`, `timings`, …) are skipped by serde without being materialised.

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<IgnoredAny>,
    #[serde(default, borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolDelta>>,
}

#[derive(Deserialize)]
struct ToolDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}
