//! What the driver keeps of a response body while it arrives, chosen by status and
//! `Content-Type`.

use http::HeaderMap;

use crate::stream::StreamDecoder;

/// The largest error body kept (error bodies are short; a proxy's HTML page is cut).
pub(super) const MAX_ERROR_BODY: usize = 64 << 10;

// The decoder is inline: it is read on every chunk, right after the exchange's own fields
// (see `Call`'s layout); the other variants are rare or read once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Body {
    Json(Vec<u8>),
    Stream(StreamDecoder),
    /// A 2xx `application/json` answer to a stream request (a server that ignored
    /// `stream: true`): read whole, then turned into the events a stream would have produced.
    Document(Box<StreamDecoder>, Vec<u8>),
    /// A 2xx answer to a stream request that is neither an event stream nor JSON (an HTML
    /// page from a proxy): kept for the error's snippet, never retried.
    Foreign(String, Vec<u8>),
    Error(Vec<u8>),
}

/// What a 2xx answer to a stream request carries, by its `Content-Type`.
pub(super) enum StreamBody {
    /// `text/event-stream`, or no `Content-Type` at all (read as events; anything else fails
    /// in the decoder).
    EventStream,
    /// `application/json` or `…+json`: one complete answer from a server that ignored
    /// `stream: true`.
    Json,
    /// Anything else (`text/html` from a proxy, …), with the type as sent.
    Other(String),
}

impl StreamBody {
    pub(super) fn of(headers: &HeaderMap) -> StreamBody {
        let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
            return StreamBody::EventStream;
        };
        let text = String::from_utf8_lossy(value.as_bytes());
        let essence = text
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/event-stream" | "" => StreamBody::EventStream,
            "application/json" => StreamBody::Json,
            e if e.ends_with("+json") => StreamBody::Json,
            _ => StreamBody::Other(crate::error::snippet(value.as_bytes())),
        }
    }
}
