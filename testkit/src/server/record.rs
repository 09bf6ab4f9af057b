//! What the server saw: one [`RecordedRequest`] per request it read.

use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

/// A request the server received, as recorded when its body had been read.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Position in arrival order, from 0.
    pub index: usize,
    /// The connection it came on (connections are numbered from 0 in accept order), so a test
    /// can tell whether the client reused a keep-alive connection.
    pub connection_id: u64,
    /// Method, e.g. `"POST"`.
    pub method: String,
    /// Path without the query, e.g. `"/v1/chat/completions"`.
    pub path: String,
    /// The query string (after `?`), if any.
    pub query: Option<String>,
    /// `"HTTP/1.1"` or `"HTTP/1.0"`.
    pub version: String,
    /// Headers in the order received, names as sent (use [`RecordedRequest::header`] for a
    /// case-insensitive look-up).
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked if it came with `Transfer-Encoding: chunked`).
    pub body: Bytes,
    /// The body parsed as JSON, if it is JSON.
    pub json: Option<Value>,
    /// When the server had read the whole request.
    pub received_at: Instant,
    /// Whether a scripted [`Reply`](super::Reply) answered it (false: the default behaviour).
    pub scripted: bool,
    /// Whether the client went away before the server finished answering (noticed while the
    /// server waited — a delay, a stall — or when a write failed). A client that half-closes
    /// its side (shuts down writing) while waiting for the answer counts as gone too.
    pub client_disconnected: bool,
    /// When the server noticed the disconnect.
    pub disconnected_at: Option<Instant>,
}

impl RecordedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        super::http::header_lookup(&self.headers, name)
    }

    /// Every value of a header, by case-insensitive name, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as UTF-8 text, if it is valid UTF-8.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}
