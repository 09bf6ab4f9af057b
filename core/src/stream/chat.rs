//! The chat / completions half of [`StreamDecoder`](super::StreamDecoder): each `data:` event
//! read as a chunk, and the chunk's choices turned into [`StreamEvent`]s (the table in the
//! [module docs](super)).
//!
//! A chunk is read by the fast scanner ([`super::fast`]) when it has the common shape, and by
//! `serde_json` otherwise; both hand the same borrowed [`Choice`]s to one function
//! (`ChatState::apply`), so what comes out cannot depend on which of them read it.

use std::collections::BTreeMap;

use crate::queue::InlineQueue;

use serde_json::Value;

use super::fast;
use super::kind::StreamKind;
use super::record::{self, Record};
use super::report::PushReport;
use super::wire::{Choice, Chunk, Text, ToolDelta};
use crate::api::{FunctionCall, ToolCall, ToolCallDelta, Usage};
use crate::error::{ApiError, VllmError};
use crate::event::StreamEvent;
use crate::sse::Raw;

/// Bytes charged per accumulated tool call on top of its text, so that many empty calls also
/// count against the limit.
const TOOL_CALL_OVERHEAD: usize = 64;

/// The chat and completions decoder's state (the Responses kind has its own).
#[derive(Debug)]
// `repr(C)`: what every chunk reads first (see the call's layout in `call/mod.rs`).
#[repr(C)]
pub(super) struct ChatState {
    pub(super) terminated: bool,
    pub(super) kind: StreamKind,
    /// Whether chunks of the common shape are read by the fast scanner (else all by serde).
    pub(super) fast: bool,
    pub(super) out: InlineQueue<StreamEvent>,
    /// The `model` the first chunk named (`gen_ai.response.model`).
    pub(super) model: Option<String>,
    pub(super) tool_bytes: usize,
    pub(super) max_tool_bytes: usize,
    /// Choice 0's tool calls by index, until its `finish_reason` or `[DONE]`.
    tools: BTreeMap<u32, ToolCall>,
    /// The last chunk's layout, for the fast scanner (last: its bytes are inline).
    layout: fast::Layout,
}

impl ChatState {
    pub(super) fn new(kind: StreamKind, max_tool_bytes: usize) -> ChatState {
        ChatState {
            kind,
            out: InlineQueue::new(),
            terminated: false,
            tools: BTreeMap::new(),
            tool_bytes: 0,
            max_tool_bytes,
            model: None,
            fast: true,
            layout: fast::Layout::default(),
        }
    }

    pub(super) fn terminate(&mut self, ev: StreamEvent) {
        self.out.push_back(ev);
        self.terminated = true;
        self.tools = BTreeMap::new();
        self.tool_bytes = 0;
    }

    /// One finding of the SSE parser; `false` stops parsing (a terminal event was produced).
    pub(super) fn handle(&mut self, raw: Raw<'_>, report: &mut PushReport) -> bool {
        record::read(raw, report, false, |r| match r {
            Record::Nothing => {}
            Record::Done => {
                self.flush_tools();
                self.terminate(StreamEvent::Done);
            }
            Record::Payload { text, .. } => self.chunk(text),
        });
        !self.terminated
    }

    /// One chunk's JSON text.
    pub(super) fn chunk(&mut self, text: &str) {
        if self.kind.is_chunks() {
            return self.whole_chunk(text);
        }
        if self.fast {
            if let Some(c) = fast::scan(text, &mut self.layout) {
                return self.apply(c.model, c.choice, None);
            }
        }
        let chunk = match serde_json::from_str::<Chunk<'_>>(text) {
            Ok(c) => c,
            Err(e) => return self.bad_chunk(text, e),
        };
        if chunk.error.is_some() || chunk.object.as_ref().is_some_and(|o| o.0 == "error") {
            let v = serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
            return self.api_error(&v, text);
        }
        self.apply(
            chunk.model,
            chunk.choices.into_iter().flatten(),
            chunk.usage,
        );
    }

    /// What a chunk that is not an error says: its model (kept from the first chunk that names
    /// one), its choices in order, then its usage. The one place both readers' results go.
    fn apply<'a>(
        &mut self,
        model: Option<Text<'a>>,
        choices: impl IntoIterator<Item = Choice<'a>>,
        usage: Option<Usage>,
    ) {
        if self.model.is_none() {
            self.model = model.map(|m| m.0.into_owned());
        }
        for choice in choices {
            self.choice(choice);
            if self.terminated {
                return;
            }
        }
        if let Some(usage) = usage {
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

    pub(super) fn api_error(&mut self, v: &Value, text: &str) {
        let api = ApiError::from_stream_event(v)
            .unwrap_or_else(|| ApiError::in_stream(crate::error::snippet(text.as_bytes())));
        self.terminate(StreamEvent::Error(VllmError::Api(Box::new(api))));
    }

    fn choice(&mut self, choice: Choice<'_>) {
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
            if let Some(kind) = tc.kind.filter(|k| !k.is_empty()) {
                call.kind = kind;
            }
            call.function.arguments.push_str(&arguments);
        }
        if tc.id.is_some() || name.is_some() || !arguments.is_empty() {
            self.out
                .push_back(StreamEvent::ToolCallDelta(Box::new(ToolCallDelta::new(
                    choice, index, tc.id, name, arguments,
                ))));
        }
    }

    pub(super) fn flush_tools(&mut self) {
        let tools = std::mem::take(&mut self.tools);
        self.tool_bytes = 0;
        for (_, call) in tools {
            self.out.push_back(StreamEvent::ToolCall(Box::new(call)));
        }
    }

    /// The server ignored `stream: true` and answered with one complete `chat.completion` (or
    /// `text_completion`) document: the events its stream would have produced, then `Done`.
    pub(super) fn document(&mut self, body: &[u8]) {
        let mut doc = match serde_json::from_slice::<Value>(body) {
            Ok(v) => v,
            Err(e) => {
                let e = VllmError::decode(
                    format!("the JSON answer to a stream request is not JSON: {e}"),
                    body,
                );
                return self.terminate(StreamEvent::Error(e));
            }
        };
        if ApiError::from_stream_event(&doc).is_some() {
            let text = String::from_utf8_lossy(body);
            return self.api_error(&doc, &text);
        }
        let Some(choices) = doc.get_mut("choices").and_then(Value::as_array_mut) else {
            let e = VllmError::decode("the JSON answer to a stream request has no choices", body);
            return self.terminate(StreamEvent::Error(e));
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
        self.chunk(&doc.to_string());
        if !self.terminated {
            self.flush_tools();
            self.terminate(StreamEvent::Done);
        }
    }
}

/// The text of a non-empty string: its one allocation, made here (a borrowed string is copied
/// once, an unescaped one moved).
fn non_empty(s: Option<Text<'_>>) -> Option<String> {
    s.filter(|s| !s.0.is_empty()).map(|s| s.0.into_owned())
}
