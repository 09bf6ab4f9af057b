//! The Responses API (`POST /v1/responses`, `GET /v1/responses/{id}`,
//! `POST /v1/responses/{id}/cancel`): the request, the response object, and the typed,
//! numbered events of its stream.
//!
//! vLLM streams a response as named events (`event: response.output_text.delta` then one
//! `data:` line of JSON carrying the same `type` and a `sequence_number`), with no `[DONE]`:
//! the stream ends after `response.completed` (or `response.incomplete`, `response.failed`).
//! See [`ResponseStreamEvent`] and the decoder in [`crate::responses_stream`].
//!
//! | file | holds |
//! |---|---|
//! | `request.rs` | [`ResponsesRequest`], the body of a create, and [`InputItem`] |
//! | `object.rs` | [`Response`], its [`OutputItem`]s, [`OutputContent`] and [`ResponseUsage`] |
//! | `event.rs` | [`ResponseStreamEvent`], the events of a stream |

mod event;
mod object;
mod request;

pub use event::ResponseStreamEvent;
pub use object::{OutputContent, OutputItem, Response, ResponseUsage};
pub use request::{InputItem, ResponsesRequest};
