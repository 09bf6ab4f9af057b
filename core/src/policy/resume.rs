//! When a Responses stream cut after its first event is resumed instead of failed.
//!
//! A stream of `POST /v1/responses` numbers its events (`sequence_number`). When the server
//! keeps them — vLLM and OpenAI keep the events of a *background* response
//! (`"background": true`, which needs `"store": true`) — a client whose connection broke can
//! ask for the rest with `GET /v1/responses/{id}?stream=true&starting_after=N` and lose
//! nothing. The call driver does that itself (see `call::resume`); this knob says for which
//! requests.

use serde_json::Value;

/// Which Responses streams the client resumes after a cut (default
/// [`Background`](Self::Background)). Resuming counts as a retry: it needs the retry budget,
/// stays within `max_retries` and the deadline, and passes the breaker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeStreams {
    /// Streams whose request asked for a background response (`"background": true`): the
    /// ones vLLM and OpenAI keep the events of.
    #[default]
    Background,
    /// Every Responses stream: for a server (or gateway) that keeps every stream's events.
    Always,
    /// None: a cut stream ends with its error, as any other stream.
    Never,
}

impl ResumeStreams {
    /// Whether a stream whose request body is `body` is resumed.
    pub fn applies(self, body: Option<&Value>) -> bool {
        match self {
            ResumeStreams::Always => true,
            ResumeStreams::Never => false,
            ResumeStreams::Background => body
                .and_then(|b| b.get("background"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ResumeStreams;
    use serde_json::json;

    #[test]
    fn background_requests_are_resumed_by_default() {
        let d = ResumeStreams::default();
        assert!(d.applies(Some(&json!({"background": true, "store": true}))));
        assert!(!d.applies(Some(&json!({"store": true}))));
        assert!(!d.applies(Some(&json!({"background": "yes"}))));
        assert!(!d.applies(None));
        assert!(ResumeStreams::Always.applies(None));
        assert!(!ResumeStreams::Never.applies(Some(&json!({"background": true}))));
    }
}
