//! [`ResponseStreamEvent`]: one typed, numbered event of a Responses stream.

use serde_json::Value;

use super::{OutputItem, Response};

/// One event of a Responses stream, typed. Every event carries its `sequence_number` (vLLM
/// and OpenAI number them from 0; `None` when a server sends none).
///
/// A stream yields `Created`, then deltas and item events, then exactly one terminal item:
/// `Completed` or `Incomplete` (a success — `Incomplete` says why output stopped early), or an
/// error (`response.failed` and `error` events become
/// [`VllmError::Api`](crate::VllmError::Api); a cut stream
/// [`VllmError::Truncated`](crate::VllmError::Truncated)). Event types this enum does not name
/// arrive as [`Other`](Self::Other), so a server's new events never break a stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ResponseStreamEvent {
    /// `response.created`: the response, `in_progress` (or `queued`).
    Created {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The response so far.
        response: Box<Response>,
    },
    /// `response.in_progress` or `response.queued`.
    InProgress {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The response so far.
        response: Box<Response>,
    },
    /// `response.output_item.added`: an output item starts.
    OutputItemAdded {
        /// The event's number.
        sequence_number: Option<u64>,
        /// Its position in `output`.
        output_index: u32,
        /// The item as it starts.
        item: Box<OutputItem>,
    },
    /// `response.output_item.done`: an output item is complete.
    OutputItemDone {
        /// The event's number.
        sequence_number: Option<u64>,
        /// Its position in `output`.
        output_index: u32,
        /// The whole item (a function call with all its arguments).
        item: Box<OutputItem>,
    },
    /// `response.output_text.delta`: a piece of the answer's text.
    OutputTextDelta {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The message item it belongs to.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The content part it extends.
        content_index: u32,
        /// The text.
        delta: String,
        /// Log probabilities of its tokens, when asked for.
        logprobs: Option<Value>,
    },
    /// `response.output_text.done`: a text part is complete.
    OutputTextDone {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The message item.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The content part.
        content_index: u32,
        /// The whole text of the part.
        text: String,
    },
    /// `response.reasoning_text.delta` (or `response.reasoning_summary_text.delta`): a piece
    /// of the reasoning.
    ReasoningTextDelta {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The reasoning item.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The text.
        delta: String,
    },
    /// `response.reasoning_text.done` (or `response.reasoning_summary_text.done`).
    ReasoningTextDone {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The reasoning item.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The whole reasoning text of the part.
        text: String,
    },
    /// `response.function_call_arguments.delta`: a piece of a function call's arguments.
    FunctionCallArgumentsDelta {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The function call item.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The piece of JSON text.
        delta: String,
    },
    /// `response.function_call_arguments.done`: a function call's arguments are complete.
    FunctionCallArgumentsDone {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The function call item.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The function's name, when the server says it here.
        name: Option<String>,
        /// The whole arguments' JSON text.
        arguments: String,
    },
    /// `response.completed`: the response is complete (terminal).
    Completed {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The whole response, with its usage.
        response: Box<Response>,
    },
    /// `response.incomplete`: the response stopped early, e.g. at `max_output_tokens`
    /// (terminal; a success with less output, like a chat's `finish_reason: "length"`).
    Incomplete {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The response; `incomplete_reason` says why.
        response: Box<Response>,
    },
    /// Any other event (`response.content_part.added`, web search, MCP, code interpreter, …),
    /// as received.
    Other {
        /// The event's number.
        sequence_number: Option<u64>,
        /// Its `type`.
        kind: String,
        /// The event as received.
        data: Value,
    },
}

impl ResponseStreamEvent {
    /// The event's `sequence_number`.
    pub fn sequence_number(&self) -> Option<u64> {
        match self {
            ResponseStreamEvent::Created {
                sequence_number, ..
            }
            | ResponseStreamEvent::InProgress {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputItemAdded {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputItemDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputTextDelta {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputTextDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::ReasoningTextDelta {
                sequence_number, ..
            }
            | ResponseStreamEvent::ReasoningTextDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::FunctionCallArgumentsDelta {
                sequence_number, ..
            }
            | ResponseStreamEvent::FunctionCallArgumentsDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::Completed {
                sequence_number, ..
            }
            | ResponseStreamEvent::Incomplete {
                sequence_number, ..
            }
            | ResponseStreamEvent::Other {
                sequence_number, ..
            } => *sequence_number,
        }
    }

    /// The event's `type` as the server names it.
    pub fn kind(&self) -> &str {
        match self {
            ResponseStreamEvent::Created { .. } => "response.created",
            ResponseStreamEvent::InProgress { response, .. } if response.status == "queued" => {
                "response.queued"
            }
            ResponseStreamEvent::InProgress { .. } => "response.in_progress",
            ResponseStreamEvent::OutputItemAdded { .. } => "response.output_item.added",
            ResponseStreamEvent::OutputItemDone { .. } => "response.output_item.done",
            ResponseStreamEvent::OutputTextDelta { .. } => "response.output_text.delta",
            ResponseStreamEvent::OutputTextDone { .. } => "response.output_text.done",
            ResponseStreamEvent::ReasoningTextDelta { .. } => "response.reasoning_text.delta",
            ResponseStreamEvent::ReasoningTextDone { .. } => "response.reasoning_text.done",
            ResponseStreamEvent::FunctionCallArgumentsDelta { .. } => {
                "response.function_call_arguments.delta"
            }
            ResponseStreamEvent::FunctionCallArgumentsDone { .. } => {
                "response.function_call_arguments.done"
            }
            ResponseStreamEvent::Completed { .. } => "response.completed",
            ResponseStreamEvent::Incomplete { .. } => "response.incomplete",
            ResponseStreamEvent::Other { kind, .. } => kind,
        }
    }

    /// The piece of answer text, for an `OutputTextDelta`.
    pub fn text_delta(&self) -> Option<&str> {
        match self {
            ResponseStreamEvent::OutputTextDelta { delta, .. } => Some(delta),
            _ => None,
        }
    }

    /// The response a lifecycle event carries (`Created`, `InProgress`, `Completed`,
    /// `Incomplete`).
    pub fn response(&self) -> Option<&Response> {
        match self {
            ResponseStreamEvent::Created { response, .. }
            | ResponseStreamEvent::InProgress { response, .. }
            | ResponseStreamEvent::Completed { response, .. }
            | ResponseStreamEvent::Incomplete { response, .. } => Some(response),
            _ => None,
        }
    }

    /// Whether it ends the stream (`Completed`, `Incomplete`).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ResponseStreamEvent::Completed { .. } | ResponseStreamEvent::Incomplete { .. }
        )
    }

    /// Whether it carries generated output (text, reasoning or arguments deltas) — what a
    /// per-chunk timer measures.
    pub fn is_output(&self) -> bool {
        matches!(
            self,
            ResponseStreamEvent::OutputTextDelta { .. }
                | ResponseStreamEvent::ReasoningTextDelta { .. }
                | ResponseStreamEvent::FunctionCallArgumentsDelta { .. }
        )
    }
}
