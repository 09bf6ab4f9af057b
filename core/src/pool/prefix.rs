//! Session keys from a conversation's prefix, and the failure table's verdict on an endpoint.

use std::time::Instant;

use crate::policy::routing;
use crate::policy::{Failure, Verdict};

/// What a failed attempt says about its endpoint: the ejection column of the failure table
/// ([`crate::policy::failure`]). `hint` is when the server asked to be called again (its
/// `Retry-After` or rate-limit reset), `head` whether a response head arrived.
pub fn verdict_of(failure: &Failure, hint: Option<Instant>, head: bool) -> Verdict {
    failure.verdict(hint, head)
}

/// The session key of a chat derived from its conversation's prefix: the model and the
/// messages up to and including the first user message, which every later turn of the same
/// conversation repeats. `None` for a body without messages.
pub fn prefix_key(body: &serde_json::Value) -> Option<u64> {
    let messages = body.get("messages")?.as_array()?;
    let end = messages
        .iter()
        .position(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
        .map_or(messages.len(), |i| i + 1);
    let mut bytes = body
        .get("model")
        .map(|m| m.to_string())
        .unwrap_or_default()
        .into_bytes();
    for m in &messages[..end] {
        bytes.push(0);
        bytes.extend_from_slice(m.to_string().as_bytes());
    }
    (!messages.is_empty()).then(|| routing::stable_hash(&bytes))
}
