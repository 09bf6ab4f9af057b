//! The Responses stream decoder: the typed, numbered events of `POST /v1/responses` with
//! `"stream": true`, on top of the [SSE decoder](crate::sse).
//!
//! It runs inside [`StreamDecoder`](crate::stream::StreamDecoder) (kind
//! [`StreamKind::Responses`](crate::stream::StreamKind::Responses)), so the call driver reads a
//! Responses stream exactly as it reads a chat stream — same timers, same retry rule (never
//! after output reached the caller), same limits — and hands each event out as
//! [`StreamEvent::Response`].
//!
//! | in an event (its JSON `type`, else its SSE `event:` name) | out |
//! |---|---|
//! | `response.created`, `.in_progress`, `.queued` | `Created`, `InProgress` |
//! | `response.output_item.added` / `.done` | `OutputItemAdded` / `OutputItemDone` |
//! | `response.output_text.delta` / `.done` | `OutputTextDelta` / `OutputTextDone` |
//! | `response.reasoning_text.delta` / `.done` (and `reasoning_summary_text`) | `ReasoningTextDelta` / `ReasoningTextDone` |
//! | `response.function_call_arguments.delta` / `.done` | `FunctionCallArgumentsDelta` / `FunctionCallArgumentsDone` |
//! | `response.completed`, `response.incomplete` | `Completed`, `Incomplete`, then [`StreamEvent::Done`] |
//! | `response.failed` | [`StreamEvent::Error`] with [`VllmError::Api`] (the response's `error`) |
//! | `error` (or `{"error": …}`) | [`StreamEvent::Error`] with [`VllmError::Api`] |
//! | any other type | `Other { kind, data }` |
//! | not JSON, not an object, no type, a terminal event without its response | [`StreamEvent::Error`] with [`VllmError::Decode`] |
//! | an event whose `sequence_number` is not above the last one handed out | dropped (a replayed event is never handed out twice) |
//! | `data: [DONE]`, or the end of the body, before a terminal event | [`StreamEvent::Error`] with [`VllmError::Truncated`] |
//!
//! The same rules as the chat decoder hold: exactly one terminal event (`Done` or `Error`),
//! nothing after it, whatever is pushed; keep-alive comments and blank events count as
//! keep-alives, not data; nothing is accumulated (memory is the SSE decoder's bounded
//! buffers). The id of the response and the last `sequence_number` handed out are kept
//! ([`ResponseCursor`]): what resuming a cut stream from where it stopped needs.
//!
//! The decoder itself lives beside the chat decoder (`stream/responses.rs`); this module is its
//! public face.
//!
//! [`StreamEvent::Response`]: crate::StreamEvent::Response
//! [`StreamEvent::Done`]: crate::StreamEvent::Done
//! [`StreamEvent::Error`]: crate::StreamEvent::Error
//! [`VllmError::Api`]: crate::VllmError::Api
//! [`VllmError::Decode`]: crate::VllmError::Decode
//! [`VllmError::Truncated`]: crate::VllmError::Truncated

pub use crate::stream::responses::ResponseCursor;
