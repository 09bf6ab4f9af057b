//! [`VllmError`]: every way a call can fail, and how the core reads the error bodies that vLLM
//! and the gateways in front of it really send.
//!
//! Error bodies come in many shapes (REFERENCE §1); [`ApiError::from_response`] accepts all of
//! them and never fails:
//!
//! | shape | sent by |
//! |---|---|
//! | `{"error":{"message","type","param","code":400}}` | vLLM ≥ 0.10.1, llama.cpp's server, LiteLLM (`code` may be a string) |
//! | `{"object":"error","message","type","param","code"}` | vLLM < 0.10.1 |
//! | `{"error":"Unauthorized"}` | vLLM with `--api-key` |
//! | `{"detail":"Not Found"}` or `{"detail":[…]}` | FastAPI servers (llama-cpp-python) |
//! | empty body | a dead vLLM engine (500) |
//! | an HTML or plain-text page | proxies, load balancers, misconfigured gateways |
//!
//! Secrets never appear here: request headers are not kept, and response snippets are bounded.

use crate::policy::RateLimitSnapshot;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::Value;

/// How many bytes of an unexpected body an error keeps, so that a huge HTML page cannot bloat
/// an error and logs stay readable.
pub const SNIPPET_LIMIT: usize = 512;

/// The error a transport failed with, kept as the [`source`](std::error::Error::source) of
/// [`VllmError::Connect`] and [`VllmError::Transport`]: `reqwest::Error`, `std::io::Error`,
/// a TLS error, … Shared (`Arc`) so that a `VllmError` stays `Clone`.
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in a call.
///
/// `Timeout` is a unit variant so that code can match and construct it directly
/// (`Err(VllmError::Timeout)`); which timer fired is recorded in the call's report.
/// The other variants answer questions through [`is_retryable`](Self::is_retryable),
/// [`is_timeout`](Self::is_timeout), [`is_connect`](Self::is_connect),
/// [`status`](Self::status) and [`retry_after`](Self::retry_after).
///
/// # Causes
///
/// [`Connect`](Self::Connect) and [`Transport`](Self::Transport) keep the error the HTTP
/// client reported as their [`source`](std::error::Error::source) when the transport gave
/// one (the three built-in adapters do), so that a TLS failure can be told from a refused
/// connection by downcasting:
///
/// ```
/// use std::error::Error as _;
/// use vllm_client_core::VllmError;
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let e = VllmError::connect("error sending request: refused", Some(std::sync::Arc::new(io)));
/// let cause = e.source().and_then(|s| s.downcast_ref::<std::io::Error>()).unwrap();
/// assert_eq!(cause.kind(), std::io::ErrorKind::ConnectionRefused);
/// ```
///
/// Their `Display` already carries the whole chain of messages (`"could not connect to the
/// server: error sending request: connection refused"`), so a reporter that prints sources
/// too shows the cause twice — print either. [`Api`](Self::Api)'s [`ApiError`] is reached
/// with [`api_error`](Self::api_error), not `source()` (its text is the `Display`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum VllmError {
    /// A timer ran out: connect, time to first token, idle between data events, the whole
    /// attempt (`timeout_secs`) or the overall deadline.
    Timeout,
    /// The connection could not be established (refused, DNS failure, TLS handshake).
    Connect {
        /// What the transport said, its causes included.
        message: String,
        /// The transport's error, when it gave one (see [Causes](Self#causes)).
        source: Option<ErrorSource>,
    },
    /// The connection failed after it was established (reset, broken pipe, protocol error).
    Transport {
        /// What the transport said, its causes included.
        message: String,
        /// The transport's error, when it gave one (see [Causes](Self#causes)).
        source: Option<ErrorSource>,
    },
    /// The server answered with an error: a non-2xx status, or an in-band `{"error": …}` event
    /// inside a stream.
    Api(Box<ApiError>),
    /// The body could not be read as what the endpoint promises (not JSON, wrong shape, an HTML
    /// page with status 200, an empty body).
    Decode {
        /// What was wrong.
        message: String,
        /// The first bytes of what came back (at most [`SNIPPET_LIMIT`], lossy UTF-8).
        snippet: String,
    },
    /// The stream ended before `data: [DONE]`: the answer is incomplete.
    Truncated,
    /// The event stream broke a limit (a line or an event larger than allowed).
    StreamLimit(String),
    /// The base URL or another part of the request could not be used.
    InvalidRequest(String),
    /// The circuit breaker is open: calls fail fast until it admits a probe.
    CircuitOpen {
        /// How long until the breaker will next admit a probe.
        retry_in: Duration,
    },
    /// The client-side rate limit refused the call: it would have to wait past the deadline,
    /// or it costs more than the limiter can ever admit.
    RateLimited(String),
    /// The call was cancelled by its caller (its future or stream was dropped).
    Cancelled,
    /// The transport that drives the call broke the driver's contract (a bug in an adapter
    /// or a custom transport, never in the server).
    Misuse(String),
}

impl fmt::Display for VllmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VllmError::Timeout => f.write_str("request timed out"),
            VllmError::Connect { message, .. } => {
                write!(f, "could not connect to the server: {message}")
            }
            VllmError::Transport { message, .. } => write!(f, "transport error: {message}"),
            VllmError::Api(api) => fmt::Display::fmt(api, f),
            VllmError::Decode { message, snippet } => write!(
                f,
                "could not decode the response: {message}; body starts with {snippet:?}"
            ),
            VllmError::Truncated => {
                f.write_str("the stream ended before [DONE]: the answer is incomplete")
            }
            VllmError::StreamLimit(s) => write!(f, "stream limit exceeded: {s}"),
            VllmError::InvalidRequest(s) => write!(f, "invalid request: {s}"),
            VllmError::CircuitOpen { retry_in } => write!(
                f,
                "circuit breaker is open; next probe admitted in {retry_in:?}"
            ),
            VllmError::RateLimited(s) => write!(f, "client-side rate limit: {s}"),
            VllmError::Cancelled => f.write_str("the call was cancelled"),
            VllmError::Misuse(s) => write!(f, "driver misuse: {s}"),
        }
    }
}

impl std::error::Error for VllmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The error itself, not the `Arc` around it: `downcast_ref` then finds its type.
            VllmError::Connect {
                source: Some(s), ..
            }
            | VllmError::Transport {
                source: Some(s), ..
            } => Some(&**s),
            _ => None,
        }
    }
}

impl VllmError {
    /// Whether retrying the same request could succeed: connect errors, timeouts, transport
    /// errors, truncated streams and HTTP 408, 429, 500, 502, 503, 504 (not 501, not other 4xx).
    ///
    /// The built-in retry policy already retries these (and never retries a stream whose output
    /// reached you); this method is for code that wants to decide by itself.
    pub fn is_retryable(&self) -> bool {
        match self {
            VllmError::Timeout
            | VllmError::Connect { .. }
            | VllmError::Transport { .. }
            | VllmError::Truncated => true,
            VllmError::Api(api) => match api.status {
                Some(s) => is_retryable_status(s),
                // An in-band error event: the engine failed mid-generation.
                None => true,
            },
            VllmError::Decode { .. }
            | VllmError::StreamLimit(_)
            | VllmError::InvalidRequest(_)
            | VllmError::CircuitOpen { .. }
            | VllmError::RateLimited(_)
            | VllmError::Cancelled
            | VllmError::Misuse(_) => false,
        }
    }

    /// Whether a timer ran out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, VllmError::Timeout)
    }

    /// Whether the connection could not be established.
    pub fn is_connect(&self) -> bool {
        matches!(self, VllmError::Connect { .. })
    }

    /// Whether the stream ended without `[DONE]`.
    pub fn is_truncated(&self) -> bool {
        matches!(self, VllmError::Truncated)
    }

    /// The HTTP status of an API error, if the server sent one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            VllmError::Api(api) => api.status,
            _ => None,
        }
    }

    /// The API error, if the server answered with one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            VllmError::Api(api) => Some(api),
            _ => None,
        }
    }

    /// How long the server asked us to wait (`retry-after-ms`, `Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            VllmError::Api(api) => api.retry_after,
            _ => None,
        }
    }

    /// What the failed response's rate-limit headers said about the server's limits (for a
    /// 429: how many requests and tokens are left, and when they refill).
    pub fn rate_limit(&self) -> Option<&RateLimitSnapshot> {
        match self {
            VllmError::Api(api) => api.rate_limit.as_ref(),
            _ => None,
        }
    }

    /// A connection that could not be established, with the transport's error when there
    /// is one.
    pub fn connect(message: impl Into<String>, source: Option<ErrorSource>) -> Self {
        VllmError::Connect {
            message: message.into(),
            source,
        }
    }

    /// A connection that broke after it was established, with the transport's error when
    /// there is one.
    pub fn transport(message: impl Into<String>, source: Option<ErrorSource>) -> Self {
        VllmError::Transport {
            message: message.into(),
            source,
        }
    }

    /// Builds a decode error keeping a bounded snippet of `body`.
    pub fn decode(message: impl Into<String>, body: &[u8]) -> Self {
        VllmError::Decode {
            message: message.into(),
            snippet: snippet(body),
        }
    }
}

impl From<ApiError> for VllmError {
    fn from(e: ApiError) -> Self {
        VllmError::Api(Box::new(e))
    }
}

/// Whether an HTTP status is worth retrying: 408, 429, 500, 502, 503, 504.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// An error the server reported, with every field it gave.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ApiError {
    /// The HTTP status; `None` for an in-band error event inside a 200 stream.
    pub status: Option<StatusCode>,
    /// The human-readable message (or, when the body had none, a description of the body).
    pub message: String,
    /// The error type (`BadRequestError`, `throttling_error`, …), when given.
    pub kind: Option<String>,
    /// The offending parameter, when given.
    pub param: Option<String>,
    /// The error code as text (servers send integers and strings), when given.
    pub code: Option<String>,
    /// The server's hint of how long to wait before retrying, when it sent one.
    pub retry_after: Option<Duration>,
    /// Whether this error arrived as an event inside a stream rather than as the response.
    pub in_stream: bool,
    /// What the response's rate-limit headers said (`x-ratelimit-*`, `anthropic-ratelimit-*`,
    /// `RateLimit`), when it sent any.
    pub rate_limit: Option<RateLimitSnapshot>,
}

impl ApiError {
    /// Reads an error response of any shape. Never fails: an unknown shape keeps a bounded
    /// snippet of the body as its message.
    pub fn from_response(status: StatusCode, body: &[u8]) -> ApiError {
        let mut e = match serde_json::from_slice::<Value>(body) {
            Ok(v) => Self::from_json(&v).unwrap_or_else(|| ApiError::bare(snippet(body))),
            Err(_) if body.iter().all(u8::is_ascii_whitespace) => {
                ApiError::bare(format!("empty body with status {}", status.as_u16()))
            }
            Err(_) => ApiError::bare(snippet(body)),
        };
        e.status = Some(status);
        e
    }

    /// Reads an in-band `{"error": …}` event of a stream. `None` if `v` is not an error.
    pub fn from_stream_event(v: &Value) -> Option<ApiError> {
        let obj = v.as_object()?;
        if !obj.contains_key("error") && obj.get("object").and_then(Value::as_str) != Some("error")
        {
            return None;
        }
        let mut e = Self::from_json(v)?;
        e.in_stream = true;
        Some(e)
    }

    /// Reads the JSON error shapes; `None` if `v` is none of them.
    fn from_json(v: &Value) -> Option<ApiError> {
        let obj = v.as_object()?;
        if let Some(inner) = obj.get("error") {
            return Some(match inner {
                Value::Object(_) => Self::from_fields(inner),
                Value::String(s) => ApiError::bare(s.clone()),
                other => ApiError::bare(other.to_string()),
            });
        }
        if obj.get("object").and_then(Value::as_str) == Some("error") || obj.contains_key("message")
        {
            return Some(Self::from_fields(v));
        }
        match obj.get("detail") {
            Some(Value::String(s)) => Some(ApiError::bare(s.clone())),
            Some(other) => Some(ApiError::bare(bounded(other.to_string()))),
            None => None,
        }
    }

    fn from_fields(v: &Value) -> ApiError {
        let text = |k: &str| -> Option<String> {
            match v.get(k)? {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }
        };
        ApiError {
            status: None,
            message: text("message").unwrap_or_else(|| "no message".to_owned()),
            kind: text("type"),
            param: text("param"),
            code: text("code"),
            retry_after: None,
            in_stream: false,
            rate_limit: None,
        }
    }

    fn bare(message: String) -> ApiError {
        ApiError {
            status: None,
            message,
            kind: None,
            param: None,
            code: None,
            retry_after: None,
            in_stream: false,
            rate_limit: None,
        }
    }

    /// Sets the server's retry hint.
    pub fn with_retry_after(mut self, hint: Option<Duration>) -> Self {
        self.retry_after = hint;
        self
    }

    /// Sets what the rate-limit headers said.
    pub fn with_rate_limit(mut self, snapshot: Option<RateLimitSnapshot>) -> Self {
        self.rate_limit = snapshot;
        self
    }

    /// An error event from a stream.
    pub fn in_stream(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::bare(message.into());
        e.in_stream = true;
        e
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, self.in_stream) {
            (Some(s), _) => write!(f, "server returned {}", s)?,
            (None, true) => f.write_str("server sent an error event mid-stream")?,
            (None, false) => f.write_str("server error")?,
        }
        write!(f, ": {}", self.message)?;
        if let Some(kind) = &self.kind {
            write!(f, " (type {kind})")?;
        }
        if let Some(hint) = self.retry_after {
            write!(f, "; asked to retry after {hint:?}")?;
        }
        Ok(())
    }
}

/// `ApiError` is an error of its own, for code that handles it apart from the
/// [`VllmError`] around it (`e.api_error()`), e.g. to box it or chain it.
impl std::error::Error for ApiError {}

/// The first [`SNIPPET_LIMIT`] bytes of `body` as lossy UTF-8, trimmed.
pub fn snippet(body: &[u8]) -> String {
    let cut = &body[..body.len().min(SNIPPET_LIMIT)];
    let mut s = String::from_utf8_lossy(cut).trim().to_owned();
    if body.len() > SNIPPET_LIMIT {
        s.push('…');
    }
    s
}

fn bounded(s: String) -> String {
    snippet(s.as_bytes())
}

/// Headers that are safe to keep in an error or a log: everything but credentials.
pub fn redact_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in [
        http::header::AUTHORIZATION,
        http::header::PROXY_AUTHORIZATION,
        http::header::COOKIE,
        http::header::SET_COOKIE,
    ] {
        if out.contains_key(&name) {
            out.insert(name, http::HeaderValue::from_static("<redacted>"));
        }
    }
    if out.contains_key("api-key") {
        out.insert("api-key", http::HeaderValue::from_static("<redacted>"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(n: u16) -> StatusCode {
        StatusCode::from_u16(n).unwrap()
    }

    #[test]
    fn nested_shape() {
        let body = br#"{"error":{"message":"bad temp","type":"BadRequestError","param":"temperature","code":400}}"#;
        let e = ApiError::from_response(status(400), body);
        assert_eq!(e.message, "bad temp");
        assert_eq!(e.kind.as_deref(), Some("BadRequestError"));
        assert_eq!(e.param.as_deref(), Some("temperature"));
        assert_eq!(e.code.as_deref(), Some("400"));
        assert_eq!(e.status, Some(status(400)));
    }

    #[test]
    fn flat_shape_of_old_vllm() {
        let body = br#"{"object":"error","message":"model not found","type":"NotFoundError","param":null,"code":404}"#;
        let e = ApiError::from_response(status(404), body);
        assert_eq!(e.message, "model not found");
        assert_eq!(e.kind.as_deref(), Some("NotFoundError"));
        assert_eq!(e.param, None);
        assert_eq!(e.code.as_deref(), Some("404"));
    }

    #[test]
    fn string_valued_error() {
        let e = ApiError::from_response(status(401), br#"{"error": "Unauthorized"}"#);
        assert_eq!(e.message, "Unauthorized");
        assert_eq!(e.kind, None);
    }

    #[test]
    fn string_code_of_litellm() {
        let body =
            br#"{"error":{"message":"rate","type":"throttling_error","param":null,"code":"429"}}"#;
        let e = ApiError::from_response(status(429), body);
        assert_eq!(e.code.as_deref(), Some("429"));
        assert_eq!(e.kind.as_deref(), Some("throttling_error"));
    }

    #[test]
    fn fastapi_detail() {
        let e = ApiError::from_response(status(404), br#"{"detail":"Not Found"}"#);
        assert_eq!(e.message, "Not Found");
        let e = ApiError::from_response(status(422), br#"{"detail":[{"loc":["body"],"msg":"x"}]}"#);
        assert!(e.message.contains("msg"));
    }

    #[test]
    fn empty_body() {
        let e = ApiError::from_response(status(500), b"");
        assert_eq!(e.message, "empty body with status 500");
        let e = ApiError::from_response(status(500), b" \r\n");
        assert_eq!(e.message, "empty body with status 500");
    }

    #[test]
    fn html_page_is_kept_as_bounded_snippet() {
        let mut page = b"<html><body>502 Bad Gateway</body></html>".to_vec();
        page.extend(std::iter::repeat_n(b'x', 10_000));
        let e = ApiError::from_response(status(502), &page);
        assert!(e.message.starts_with("<html><body>502 Bad Gateway"));
        assert!(e.message.len() <= SNIPPET_LIMIT + '…'.len_utf8());
    }

    #[test]
    fn unknown_json_shape_is_kept_as_snippet() {
        let e = ApiError::from_response(status(500), br#"[1,2,3]"#);
        assert_eq!(e.message, "[1,2,3]");
    }

    #[test]
    fn in_band_event() {
        let v = json!({"error": {"message": "boom", "type": "InternalServerError", "param": null, "code": 500}});
        let e = ApiError::from_stream_event(&v).unwrap();
        assert!(e.in_stream);
        assert_eq!(e.status, None);
        assert_eq!(e.message, "boom");
        assert!(ApiError::from_stream_event(&json!({"choices": []})).is_none());
    }

    #[test]
    fn retryable_classification() {
        for (code, want) in [
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (408, true),
            (422, false),
            (429, true),
            (500, true),
            (501, false),
            (502, true),
            (503, true),
            (504, true),
        ] {
            let e = VllmError::from(ApiError::from_response(status(code), b""));
            assert_eq!(e.is_retryable(), want, "{code}");
            assert_eq!(e.status(), Some(status(code)));
        }
        assert!(VllmError::Timeout.is_retryable());
        assert!(VllmError::Timeout.is_timeout());
        assert!(VllmError::connect("refused", None).is_connect());
        assert!(!VllmError::decode("x", b"y").is_retryable());
    }

    #[test]
    fn display_is_informative() {
        let e = VllmError::from(
            ApiError::from_response(status(429), br#"{"error":{"message":"slow down"}}"#)
                .with_retry_after(Some(Duration::from_millis(1500))),
        );
        let s = e.to_string();
        assert!(
            s.contains("429") && s.contains("slow down") && s.contains("1.5s"),
            "{s}"
        );
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn redaction() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer sk-secret".parse().unwrap());
        h.insert("x-other", "fine".parse().unwrap());
        let r = redact_headers(&h);
        assert_eq!(r["authorization"], "<redacted>");
        assert_eq!(r["x-other"], "fine");
        assert!(!format!("{r:?}").contains("sk-secret"));
    }

    #[test]
    fn causes_are_kept_and_downcast() {
        use std::error::Error as _;
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = VllmError::connect("error sending request: refused", Some(Arc::new(io)));
        let cause = e.source().expect("a source");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("the io error itself");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        // Cloning keeps the cause.
        let again = e.clone();
        assert!(again.source().is_some());
        assert_eq!(
            e.to_string(),
            "could not connect to the server: error sending request: refused"
        );
        let t = VllmError::transport("reset", None);
        assert!(t.source().is_none());
        assert!(VllmError::Timeout.source().is_none());
        assert!(VllmError::from(ApiError::in_stream("x")).source().is_none());
    }

    #[test]
    fn api_error_is_an_error() {
        let api = ApiError::from_response(status(400), br#"{"error":{"message":"bad"}}"#);
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(api.clone());
        assert_eq!(boxed.to_string(), api.to_string());
        assert!(boxed.downcast_ref::<ApiError>().is_some());
    }
}
