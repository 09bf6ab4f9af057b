//! What the fleet simulator records of one request: [`RequestRecord`], how it ended
//! ([`ResultKind`]) and how it failed ([`ErrorKind`]) — read by the run and by its
//! [`Summary`](super::Summary).

use std::fmt;
use std::time::Duration;

use vllm_client_core::policy::{GiveUpReason, TimeoutKind};
use vllm_client_core::VllmError;

use super::workload::Arrival;

/// How a call failed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// [`VllmError::Timeout`].
    Timeout,
    /// [`VllmError::Connect`].
    Connect,
    /// [`VllmError::Api`] with this HTTP status (0: an in-band error without one).
    Status(u16),
    /// [`VllmError::Truncated`].
    Truncated,
    /// [`VllmError::Transport`].
    Transport,
    /// Another error, as text.
    Other(String),
    /// The run's step bound was reached before the call ended.
    Unfinished,
}

impl ErrorKind {
    pub(crate) fn of(e: &VllmError) -> ErrorKind {
        match e {
            VllmError::Timeout => ErrorKind::Timeout,
            VllmError::Connect { .. } => ErrorKind::Connect,
            VllmError::Api(api) => ErrorKind::Status(api.status.map_or(0, |s| s.as_u16())),
            VllmError::Truncated => ErrorKind::Truncated,
            VllmError::Transport { .. } => ErrorKind::Transport,
            other => ErrorKind::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Timeout => write!(f, "timeout"),
            ErrorKind::Connect => write!(f, "connect"),
            ErrorKind::Status(s) => write!(f, "http {s}"),
            ErrorKind::Truncated => write!(f, "truncated"),
            ErrorKind::Transport => write!(f, "transport"),
            ErrorKind::Other(s) => write!(f, "other: {s}"),
            ErrorKind::Unfinished => write!(f, "unfinished"),
        }
    }
}

/// How a call ended, as its caller saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultKind {
    /// A JSON call returned its body; a stream ended with `[DONE]`.
    Ok,
    /// The call failed before any output (`Done(Err)`).
    Failed(ErrorKind),
    /// A stream emitted output, then its terminal event was an error.
    FailedMidStream(ErrorKind),
}

impl ResultKind {
    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, ResultKind::Ok)
    }

    /// The error, if it failed.
    pub fn error(&self) -> Option<&ErrorKind> {
        match self {
            ResultKind::Ok => None,
            ResultKind::Failed(k) | ResultKind::FailedMidStream(k) => Some(k),
        }
    }
}

impl fmt::Display for ResultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResultKind::Ok => write!(f, "ok"),
            ResultKind::Failed(k) => write!(f, "{k}"),
            ResultKind::FailedMidStream(k) => write!(f, "{k} (mid-stream)"),
        }
    }
}

/// What happened to one request of the workload. Times are offsets from the run's start.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// The workload's arrival.
    pub arrival: Arrival,
    /// The replica its client talks to.
    pub replica: usize,
    /// When each attempt was sent.
    pub sends: Vec<Duration>,
    /// When the first `Content` event reached the caller (streams only).
    pub first_token: Option<Duration>,
    /// When the call returned `Done`.
    pub end: Option<Duration>,
    /// How it ended.
    pub result: ResultKind,
    /// Attempts made (the driver's report).
    pub attempts: u32,
    /// Retries made (the driver's report).
    pub retries: u32,
    /// Why the retry policy gave up, if it did.
    pub gave_up: Option<GiveUpReason>,
    /// The last timer that fired, if any.
    pub timeout: Option<TimeoutKind>,
    /// `Content` events the caller received (one per token).
    pub tokens_received: u32,
    /// Whether the text the caller got is exactly the tokens the engine produced for the
    /// attempt it read (`t0 t1 … t<n−1> `); `None` unless the call succeeded.
    pub text_exact: Option<bool>,
    /// The text itself, when the fleet keeps texts ([`FleetSim::keep_text`](super::FleetSim::keep_text)).
    pub text: Option<String>,
}

impl RequestRecord {
    /// Time to first token as the caller sees it: from the arrival (client-side queueing,
    /// retries and backoff included) to the first `Content` event.
    pub fn ttft(&self) -> Option<Duration> {
        self.first_token.map(|t| t.saturating_sub(self.arrival.at))
    }

    /// Time to first token from the last send (what the server made the last attempt wait).
    pub fn server_ttft(&self) -> Option<Duration> {
        match (self.first_token, self.sends.last()) {
            (Some(t), Some(s)) => Some(t.saturating_sub(*s)),
            _ => None,
        }
    }

    /// From the arrival to `Done`.
    pub fn latency(&self) -> Option<Duration> {
        self.end.map(|t| t.saturating_sub(self.arrival.at))
    }
}
