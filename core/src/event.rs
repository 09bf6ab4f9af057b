//! [`StreamEvent`]: what a streamed call hands to the caller.

use crate::api::{ToolCall, ToolCallDelta, Usage};
use crate::error::VllmError;

/// One event of a streamed chat completion or completion.
///
/// A stream yields any number of `Content`, `Reasoning`, tool-call and `Usage` events, then
/// exactly one terminal event: [`Done`](StreamEvent::Done) when the server sent `data: [DONE]`,
/// or [`Error`](StreamEvent::Error) (an in-band error event, a stream cut before `[DONE]`, a
/// timeout, …). Nothing follows a terminal event: the stream ends.
///
/// `Content`, `Reasoning` and tool calls are those of choice 0 — the only choice unless the
/// request set `n > 1`; other choices arrive as [`ChoiceContent`](StreamEvent::ChoiceContent).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StreamEvent {
    /// A piece of the answer's text.
    Content(String),
    /// A piece of the model's reasoning (`reasoning`, or `reasoning_content` on older servers).
    Reasoning(String),
    /// A fragment of a tool call, as it arrives.
    ToolCallDelta(ToolCallDelta),
    /// A tool call with all its arguments, once its choice finished.
    ToolCall(ToolCall),
    /// A piece of the text of a choice other than 0 (requests with `n > 1`).
    ChoiceContent {
        /// The choice's index.
        index: u32,
        /// The text.
        text: String,
    },
    /// Why a choice stopped (`stop`, `length`, `tool_calls`, …).
    Finish {
        /// The choice's index.
        index: u32,
        /// The reason the server gave.
        reason: String,
    },
    /// Token counts (only when the request asked for them, see `include_usage`).
    Usage(Usage),
    /// The stream ended properly with `[DONE]`.
    Done,
    /// The stream failed; no more events follow.
    Error(VllmError),
}

impl StreamEvent {
    /// Whether this event ends the stream.
    pub fn is_terminal(&self) -> bool {
        matches!(self, StreamEvent::Done | StreamEvent::Error(_))
    }
}
