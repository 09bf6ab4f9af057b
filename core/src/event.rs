//! [`StreamEvent`]: what a streamed call hands to the caller.

use crate::api::{Chunk, ResponseStreamEvent, ToolCall, ToolCallDelta, Usage};
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
    /// A fragment of a tool call, as it arrives. Boxed, like the tool call below: a tool call
    /// is rare and large, and inline it would double the size of every event (104 bytes
    /// instead of 56), which each streamed token moves several times on its way to the caller.
    ToolCallDelta(Box<ToolCallDelta>),
    /// A tool call with all its arguments, once its choice finished.
    ToolCall(Box<ToolCall>),
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
    /// A whole chunk, with its id, model and log probabilities: what a stream read for the
    /// result-shaped view (`send_chunks()`, [`StreamKind::ChatChunks`](crate::StreamKind))
    /// carries instead of the events above.
    Chunk(Box<Chunk>),
    /// A typed event of a Responses stream ([`StreamKind::Responses`](crate::StreamKind));
    /// `Completed` or `Incomplete` is followed by `Done`.
    Response(Box<ResponseStreamEvent>),
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

    /// Whether it carries generated output (text, reasoning, tool-call arguments): what a
    /// time-per-output-chunk metric counts.
    pub fn is_output(&self) -> bool {
        match self {
            StreamEvent::Content(_)
            | StreamEvent::Reasoning(_)
            | StreamEvent::ToolCallDelta(_)
            | StreamEvent::ChoiceContent { .. } => true,
            StreamEvent::Chunk(c) => c.choices.iter().any(|c| {
                c.text.as_deref().is_some_and(|t| !t.is_empty())
                    || c.delta.as_ref().is_some_and(|d| {
                        d.content.as_deref().is_some_and(|t| !t.is_empty())
                            || d.reasoning().is_some()
                            || d.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
                    })
            }),
            StreamEvent::Response(r) => r.is_output(),
            _ => false,
        }
    }
}
