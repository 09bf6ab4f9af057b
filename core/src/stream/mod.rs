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
//!
//! # Reading a chunk
//!
//! vLLM sends hundreds of chunks of one fixed shape per answer
//! (`{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[{"index":0,"delta":{"content":…},"logprobs":null,"finish_reason":null}]}`),
//! so a chunk is first read by a small scanner written for that shape, straight from the
//! event's bytes: escapes are decoded, the text it hands out is allocated once, and fields it
//! does not use (`id`, `created`, `logprobs: null`, `stop_reason`, …, in any order) are checked
//! and skipped. Anything it is not sure of — tool calls, a non-null `usage` or `logprobs`
//! object nested too deep, more than one choice, an `error`, a duplicate field, a key with an
//! escape, a number `serde_json` would read differently, invalid JSON — it leaves to the full
//! `serde_json` reading, which decides as it always did. Both readers feed the same code that
//! produces the events, and a differential fuzz target (`fuzz/fuzz_targets/stream_fast.rs`)
//! and property tests (`core/tests/stream_fast.rs`) check that the events are the same for
//! every input and every split. [`StreamDecoder::with_fast_path`] turns the scanner off.
//!
//! Files: this one (the decoder and its dispatch), `chat.rs` (chat and completions chunks to
//! events), `fast/` (the scanner; its JSON grammar in `fast/json.rs`), `wire.rs` (a chunk as
//! both read it), `responses.rs` (the Responses API's events, [`crate::responses_stream`]),
//! `record.rs` (an SSE finding as both decoders count and read it), `kind.rs` and `report.rs`
//! (the two small public types).

mod chat;
mod fast;
mod kind;
mod record;
mod report;
pub(crate) mod responses;
mod wire;

pub use kind::StreamKind;
pub use report::PushReport;

use crate::error::VllmError;
use crate::event::StreamEvent;

use crate::sse::{Parser, SseLimits};
use chat::ChatState;
use responses::{ResponseCursor, ResponsesState};

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
// `repr(C)`: read in this order on every chunk (see the call's layout in `call/mod.rs`).
#[repr(C)]
pub struct StreamDecoder {
    /// For [`StreamKind::Responses`]: its own state (the chat state then stays idle).
    responses: Option<Box<ResponsesState>>,
    sse: Parser,
    state: ChatState,
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
            state: ChatState::new(kind, limits.max_event),
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

    /// Whether chat and completions chunks of the common shape are read by the fast scanner
    /// (the default, `true`) or every chunk by `serde_json` (`false`). The events are the same
    /// either way (see [Reading a chunk](self#reading-a-chunk)); turning it off is for
    /// differential tests, and for ruling the scanner out when something looks wrong.
    pub fn with_fast_path(mut self, on: bool) -> Self {
        self.state.fast = on;
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
        if !self.state.terminated {
            self.state.document(body);
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
