//! [`ErrorType`]: the `error.type` of the OpenTelemetry conventions — the last column of the
//! failure table, and what a call's error is reported as.

use std::borrow::Cow;
use std::fmt;

use crate::error::VllmError;

/// A low-cardinality name for what went wrong, for the `error.type` attribute of the
/// OpenTelemetry conventions: the HTTP status code for an error answer (`"429"`, `"503"`),
/// otherwise a fixed word (`"timeout"`, `"connect"`, …). See [`label`](Self::label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorType {
    /// The server answered with this non-2xx status.
    Status(u16),
    /// An in-band error event or error body without a status.
    Api,
    /// A timer fired.
    Timeout,
    /// The connection could not be established.
    Connect,
    /// The connection failed mid-exchange.
    Transport,
    /// The answer could not be decoded.
    Decode,
    /// A stream ended before `[DONE]`.
    Truncated,
    /// A stream broke a decoder limit.
    StreamLimit,
    /// The request was invalid (never sent).
    InvalidRequest,
    /// The circuit breaker refused the call.
    CircuitOpen,
    /// A client-side rate limit refused the call.
    RateLimited,
    /// The caller dropped the call.
    Cancelled,
    /// The driver was misused.
    Misuse,
}

impl ErrorType {
    /// The type of `e`.
    pub fn of(e: &VllmError) -> ErrorType {
        match e {
            // An in-band error carries the status-like code vLLM gives it (500, 503 …).
            VllmError::Api(api) => match (api.status, api.code.as_deref()) {
                (Some(s), _) => ErrorType::Status(s.as_u16()),
                (None, Some(code)) => match code.parse::<u16>() {
                    Ok(c @ 100..=599) => ErrorType::Status(c),
                    _ => ErrorType::Api,
                },
                (None, None) => ErrorType::Api,
            },
            VllmError::Timeout => ErrorType::Timeout,
            VllmError::Connect { .. } => ErrorType::Connect,
            VllmError::Transport { .. } => ErrorType::Transport,
            VllmError::Decode { .. } => ErrorType::Decode,
            VllmError::Truncated => ErrorType::Truncated,
            VllmError::StreamLimit(_) => ErrorType::StreamLimit,
            VllmError::InvalidRequest(_) => ErrorType::InvalidRequest,
            VllmError::CircuitOpen { .. } => ErrorType::CircuitOpen,
            VllmError::RateLimited(_) => ErrorType::RateLimited,
            VllmError::Cancelled => ErrorType::Cancelled,
            VllmError::Misuse(_) => ErrorType::Misuse,
        }
    }

    /// The attribute value: the status code (`"503"`) or `"api_error"`, `"timeout"`,
    /// `"connect"`, `"transport"`, `"decode"`, `"truncated"`, `"stream_limit"`,
    /// `"invalid_request"`, `"circuit_open"`, `"rate_limited"`, `"cancelled"`, `"misuse"`.
    pub fn label(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            ErrorType::Status(s) => return Cow::Owned(s.to_string()),
            ErrorType::Api => "api_error",
            ErrorType::Timeout => "timeout",
            ErrorType::Connect => "connect",
            ErrorType::Transport => "transport",
            ErrorType::Decode => "decode",
            ErrorType::Truncated => "truncated",
            ErrorType::StreamLimit => "stream_limit",
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::CircuitOpen => "circuit_open",
            ErrorType::RateLimited => "rate_limited",
            ErrorType::Cancelled => "cancelled",
            ErrorType::Misuse => "misuse",
        })
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}
