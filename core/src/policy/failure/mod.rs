//! One table: every way an attempt can fail, and everything that follows from it.
//!
//! An attempt that fails is classified once, into a [`FailureKind`], and its [`Row`] in
//! [`TABLE`] says everything the rest of the client does about it: whether a retry may help,
//! what a retry costs the retry budget, what the circuit breaker counts, what the pool's
//! outlier detection learns about the endpoint, whether the adaptive concurrency limit sees a
//! loss, and the `error.type` reported. Nothing else classifies failures: the breaker
//! ([`Failure::breaker_outcome`]), the pool
//! ([`verdict_of`](crate::pool::verdict_of)), the adaptive limit and the retry policy all read
//! this table, and the call driver settles an attempt's end in one place from it.
//!
//! Two rules stand above the table:
//! - **output started**: once any event of a stream reached the caller nothing is retried
//!   (vLLM restarts a generation from scratch, so a retry would duplicate text) — whatever
//!   the row, and whatever `x-should-retry` says;
//! - **`x-should-retry: true|false`** on an error answer overrides the status rows'
//!   "retry" column.
//!
//! Where two columns disagree about the same failure, the row's `why` says why; the README
//! shows the same table ([`markdown`] renders it, and a test keeps the two equal).

use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};

use super::adaptive::LossKind;
use super::breaker::Outcome;
use super::ejection::Verdict;
use super::retry_after::parse_should_retry;
use super::timeouts::TimeoutKind;

/// What an attempt ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The connection could not be established (refused, DNS, TLS handshake…). Nothing was sent
    /// or received.
    Connect,
    /// The connection broke mid-exchange (reset, broken pipe).
    Transport {
        /// Whether any output already reached the caller.
        output_started: bool,
    },
    /// A timer fired.
    Timeout {
        /// Which one.
        kind: TimeoutKind,
        /// Whether any output already reached the caller.
        output_started: bool,
    },
    /// The server answered with a non-success status. No output can have reached the caller.
    Status {
        /// The status code.
        status: StatusCode,
        /// The response headers (retry hints, `x-should-retry`, `Date`).
        headers: HeaderMap,
    },
    /// An in-band `{"error": …}` event inside a 200 stream.
    StreamError {
        /// The error's `code`, when it is an HTTP-like status (vLLM sends e.g. 500).
        code: Option<u16>,
        /// Whether any output already reached the caller.
        output_started: bool,
    },
    /// The body ended without `[DONE]`.
    Truncated {
        /// Whether any output already reached the caller.
        output_started: bool,
    },
    /// The response could not be decoded, or any other error. Never retried.
    Decode {
        /// Whether any output already reached the caller.
        output_started: bool,
    },
    /// The transport refused to send the request at all (a header or URL its HTTP client
    /// cannot carry): nothing reached the server.
    Rejected,
    /// The exchange was abandoned by the client: the caller dropped the call, or a hedged
    /// exchange lost its race.
    Cancelled,
}

/// Statuses retried by default: 408, 429, 500, 502, 503, 504.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The kinds of failure: one [`Row`] each in [`TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// Connection refused, DNS or TLS failure.
    Connect,
    /// The connect timer fired.
    ConnectTimeout,
    /// The connection broke before any answer arrived.
    ResetBeforeHead,
    /// The connection broke while a (non-stream) body was read.
    BrokenBody,
    /// No first token within the first-token timeout.
    FirstTokenTimeout,
    /// The attempt timer fired.
    AttemptTimeout,
    /// Too long between two data events (or body chunks).
    IdleTimeout,
    /// The call's overall deadline passed while waiting on the server.
    DeadlineTimeout,
    /// `429 Too Many Requests`.
    TooManyRequests,
    /// `503 Service Unavailable`.
    Unavailable,
    /// `408 Request Timeout`.
    RequestTimeout,
    /// `500`, `502`, `504`.
    ServerError,
    /// `501` and every other 5xx.
    ServerErrorFinal,
    /// Every other non-2xx status (4xx, and 1xx/3xx a server should not send here).
    ClientError,
    /// An in-band error event with a 5xx code or none.
    StreamError,
    /// An in-band error event with a 4xx code (the request was at fault: e.g. a prompt longer
    /// than the context).
    StreamErrorClient,
    /// A stream ended without `[DONE]`.
    Truncated,
    /// An answer that cannot be read (HTML from a proxy, a wrong-shape JSON body, a body over
    /// its limit).
    Decode,
    /// The transport refused to send the request.
    Rejected,
    /// The client abandoned the exchange.
    Cancelled,
}

impl FailureKind {
    /// Every kind, in the table's order.
    pub const ALL: [FailureKind; 20] = [
        FailureKind::Connect,
        FailureKind::ConnectTimeout,
        FailureKind::ResetBeforeHead,
        FailureKind::BrokenBody,
        FailureKind::FirstTokenTimeout,
        FailureKind::AttemptTimeout,
        FailureKind::IdleTimeout,
        FailureKind::DeadlineTimeout,
        FailureKind::TooManyRequests,
        FailureKind::Unavailable,
        FailureKind::RequestTimeout,
        FailureKind::ServerError,
        FailureKind::ServerErrorFinal,
        FailureKind::ClientError,
        FailureKind::StreamError,
        FailureKind::StreamErrorClient,
        FailureKind::Truncated,
        FailureKind::Decode,
        FailureKind::Rejected,
        FailureKind::Cancelled,
    ];

    /// Its row.
    pub fn row(self) -> &'static Row {
        // The table is indexed by kind; a test checks that each kind is at its own place.
        &TABLE[self as usize]
    }
}

/// Whether a retry may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Yes (while no output reached the caller).
    Yes,
    /// Never.
    No,
    /// Only on another endpoint (failover), or against the same one when
    /// [`RetryPolicy::retry_first_token_timeout`](super::RetryPolicy::retry_first_token_timeout)
    /// is set: the same server would queue the retry again, at the back.
    Elsewhere,
}

/// What a retry after the failure costs the retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// `retry_cost` (default 5 tokens).
    Retry,
    /// `timeout_retry_cost` (default 10 tokens): a timed-out server is likely overloaded.
    TimeoutRetry,
    /// Nothing: the failure is never retried.
    None,
}

/// What the circuit breaker counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerEffect {
    /// A failure (it may trip the breaker).
    Failure,
    /// Nothing (a half-open probe's admission goes back to its episode).
    Ignored,
}

/// What the pool's outlier detection learns about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectionEffect {
    /// A connection failure (ejects after `consecutive_connect_failures` in a row).
    ConnectFailure,
    /// A server failure (ejects after `consecutive_failures` in a row).
    ServerFailure,
    /// With a retry hint: out of rotation until then; without one, nothing.
    HintOrNeutral,
    /// With a retry hint: out of rotation until then; without one, a server failure.
    HintOrFailure,
    /// The server answered: it is alive (resets the count).
    Answered,
    /// Nothing learned.
    Neutral,
}

/// What the adaptive concurrency limit sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossEffect {
    /// A loss of this kind (the limit is cut; deeper when the server sent a retry hint).
    Loss(LossKind),
    /// Nothing.
    None,
}

/// The `error.type` reported (OpenTelemetry's attribute: low cardinality).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorLabel {
    /// This type.
    Is(ErrorType),
    /// The status code (`"503"`).
    Status,
    /// The in-band error's code, or [`ErrorType::Api`] without one.
    Code,
}

/// Everything that follows from one [`FailureKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The kind.
    pub kind: FailureKind,
    /// What it is, in words.
    pub what: &'static str,
    /// Whether a retry may help.
    pub retry: Retry,
    /// What a retry costs the budget.
    pub cost: Cost,
    /// What the breaker counts.
    pub breaker: BreakerEffect,
    /// What the endpoint's outlier detection learns.
    pub ejection: EjectionEffect,
    /// What the adaptive limit sees.
    pub loss: LossEffect,
    /// `error.type`.
    pub error_type: ErrorLabel,
    /// Why the columns say what they say, where that is a decision.
    pub why: &'static str,
}

mod error_type;
mod table;

pub use error_type::ErrorType;
pub use table::TABLE;

impl Failure {
    /// Its kind. `head`: whether a response head arrived for the attempt (a broken connection
    /// before any answer is a connection failure).
    pub fn kind(&self, head: bool) -> FailureKind {
        match self {
            Failure::Connect => FailureKind::Connect,
            Failure::Transport { .. } if !head => FailureKind::ResetBeforeHead,
            Failure::Transport { .. } => FailureKind::BrokenBody,
            Failure::Timeout { kind, .. } => match kind {
                TimeoutKind::Connect => FailureKind::ConnectTimeout,
                TimeoutKind::FirstToken => FailureKind::FirstTokenTimeout,
                TimeoutKind::Attempt => FailureKind::AttemptTimeout,
                TimeoutKind::Idle => FailureKind::IdleTimeout,
                TimeoutKind::Deadline => FailureKind::DeadlineTimeout,
            },
            Failure::Status { status, .. } => match status.as_u16() {
                429 => FailureKind::TooManyRequests,
                503 => FailureKind::Unavailable,
                408 => FailureKind::RequestTimeout,
                500 | 502 | 504 => FailureKind::ServerError,
                s if s >= 500 => FailureKind::ServerErrorFinal,
                _ => FailureKind::ClientError,
            },
            Failure::StreamError { code, .. } => match code {
                Some(c) if (400..500).contains(c) => FailureKind::StreamErrorClient,
                _ => FailureKind::StreamError,
            },
            Failure::Truncated { .. } => FailureKind::Truncated,
            Failure::Decode { .. } => FailureKind::Decode,
            Failure::Rejected => FailureKind::Rejected,
            Failure::Cancelled => FailureKind::Cancelled,
        }
    }

    /// Its row in [`TABLE`] (see [`kind`](Self::kind) for `head`).
    pub fn row(&self, head: bool) -> &'static Row {
        self.kind(head).row()
    }

    /// Whether any output of this attempt already reached the caller.
    pub fn output_started(&self) -> bool {
        match self {
            Failure::Connect | Failure::Status { .. } | Failure::Rejected | Failure::Cancelled => {
                false
            }
            Failure::Transport { output_started }
            | Failure::Timeout { output_started, .. }
            | Failure::StreamError { output_started, .. }
            | Failure::Truncated { output_started }
            | Failure::Decode { output_started } => *output_started,
        }
    }

    /// Whether this failure was a timeout (a retry after it costs more budget).
    pub fn is_timeout(&self) -> bool {
        self.row(true).cost == Cost::TimeoutRetry
    }

    /// The classification alone (no attempt limit, deadline or budget): could a retry help?
    /// Always `false` once output started. A first-token timeout counts as retryable here
    /// (on another endpoint; the retry policy decides whether the same one may take it).
    pub fn is_retryable(&self) -> bool {
        if self.output_started() {
            return false;
        }
        match self {
            // `x-should-retry` overrides whatever the status says.
            Failure::Status { headers, .. } => {
                if let Some(says) = parse_should_retry(headers) {
                    return says;
                }
            }
            // An in-band error is retried only when its code is a retryable status.
            Failure::StreamError { code, .. } => return code.is_some_and(is_retryable_status),
            _ => {}
        }
        self.row(true).retry != Retry::No
    }

    /// The breaker's outcome for it (`ttfb`: the attempt's time to first byte, when one came).
    pub fn breaker_outcome(&self, ttfb: Option<Duration>) -> Outcome {
        match self.row(true).breaker {
            BreakerEffect::Failure => Outcome::Failure { ttfb },
            BreakerEffect::Ignored => Outcome::Ignored,
        }
    }

    /// What it says about its endpoint. `hint`: when the server asked to be called again (its
    /// `Retry-After` or rate-limit reset); `head`: whether a response head arrived.
    pub fn verdict(&self, hint: Option<Instant>, head: bool) -> Verdict {
        match self.row(head).ejection {
            EjectionEffect::ConnectFailure => Verdict::Failure { connect: true },
            EjectionEffect::ServerFailure => Verdict::Failure { connect: false },
            EjectionEffect::HintOrNeutral => match hint {
                Some(until) => Verdict::Overloaded { until },
                None => Verdict::Neutral,
            },
            EjectionEffect::HintOrFailure => match hint {
                Some(until) => Verdict::Overloaded { until },
                None => Verdict::Failure { connect: false },
            },
            EjectionEffect::Answered => Verdict::Answered,
            EjectionEffect::Neutral => Verdict::Neutral,
        }
    }

    /// The loss it tells the adaptive limit, if any, and whether the server sent a retry
    /// hint (the cut is deeper then).
    pub fn loss(&self) -> Option<(LossKind, bool)> {
        let LossEffect::Loss(kind) = self.row(true).loss else {
            return None;
        };
        let hinted = match self {
            Failure::Status { headers, .. } => {
                headers.contains_key(http::header::RETRY_AFTER)
                    || headers.contains_key("retry-after-ms")
            }
            _ => false,
        };
        Some((kind, hinted))
    }

    /// `error.type`: the status code for an error answer, else the table's type.
    pub fn error_type(&self) -> ErrorType {
        match (self.row(true).error_type, self) {
            (ErrorLabel::Status, Failure::Status { status, .. }) => {
                ErrorType::Status(status.as_u16())
            }
            (ErrorLabel::Code, Failure::StreamError { code: Some(c), .. }) => ErrorType::Status(*c),
            (ErrorLabel::Is(t), _) => t,
            (ErrorLabel::Code | ErrorLabel::Status, _) => ErrorType::Api,
        }
    }
}

/// The table as a Markdown table (the README's "When an attempt fails" section is this).
pub fn markdown() -> String {
    let mut s = String::from(
        "| failure | retried | a retry costs | breaker | endpoint (ejection) | adaptive limit | `error.type` | why |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in &TABLE {
        let retry = match r.retry {
            Retry::Yes => "yes",
            Retry::No => "no",
            Retry::Elsewhere => "on another endpoint",
        };
        let cost = match r.cost {
            Cost::Retry => "`retry_cost`",
            Cost::TimeoutRetry => "`timeout_retry_cost`",
            Cost::None => "—",
        };
        let breaker = match r.breaker {
            BreakerEffect::Failure => "failure",
            BreakerEffect::Ignored => "ignored",
        };
        let ejection = match r.ejection {
            EjectionEffect::ConnectFailure => "connection failure",
            EjectionEffect::ServerFailure => "server failure",
            EjectionEffect::HintOrNeutral => "out until its hint, else nothing",
            EjectionEffect::HintOrFailure => "out until its hint, else server failure",
            EjectionEffect::Answered => "answered (alive)",
            EjectionEffect::Neutral => "nothing",
        };
        let loss = match r.loss {
            LossEffect::Loss(LossKind::Connect) => "loss (connect)",
            LossEffect::Loss(LossKind::FirstTokenTimeout) => "loss (first token)",
            LossEffect::Loss(LossKind::TooManyRequests) => "loss (429)",
            LossEffect::Loss(LossKind::Unavailable) => "loss (503)",
            LossEffect::None => "—",
        };
        let error_type = match r.error_type {
            ErrorLabel::Is(t) => format!("`{t}`"),
            ErrorLabel::Status => "the status".to_owned(),
            ErrorLabel::Code => "its code, or `api_error`".to_owned(),
        };
        s.push_str(&format!(
            "| {} | {retry} | {cost} | {breaker} | {ejection} | {loss} | {error_type} | {} |\n",
            r.what, r.why
        ));
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn every_kind_has_exactly_one_row_at_its_place() {
        for (i, kind) in FailureKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "ALL is in declaration order");
            assert_eq!(TABLE[i].kind, *kind, "row {i}");
            assert_eq!(TABLE.iter().filter(|r| r.kind == *kind).count(), 1);
        }
    }

    /// A status failure with these headers (the retry policy's tests use it too).
    pub(crate) fn status(code: u16, hdrs: &[(&'static str, &str)]) -> Failure {
        let mut headers = HeaderMap::new();
        for (k, v) in hdrs {
            headers.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        Failure::Status {
            status: StatusCode::from_u16(code).unwrap(),
            headers,
        }
    }

    #[test]
    fn statuses_find_their_rows() {
        for (code, kind) in [
            (429, FailureKind::TooManyRequests),
            (503, FailureKind::Unavailable),
            (408, FailureKind::RequestTimeout),
            (500, FailureKind::ServerError),
            (502, FailureKind::ServerError),
            (504, FailureKind::ServerError),
            (501, FailureKind::ServerErrorFinal),
            (599, FailureKind::ServerErrorFinal),
            (400, FailureKind::ClientError),
            (404, FailureKind::ClientError),
            (302, FailureKind::ClientError),
        ] {
            assert_eq!(status(code, &[]).kind(true), kind, "{code}");
            assert_eq!(
                status(code, &[]).is_retryable(),
                is_retryable_status(code),
                "{code}"
            );
        }
    }

    #[test]
    fn should_retry_overrides_the_status_but_never_output() {
        assert!(status(400, &[("x-should-retry", "true")]).is_retryable());
        assert!(!status(503, &[("x-should-retry", "false")]).is_retryable());
        assert!(!Failure::Truncated {
            output_started: true
        }
        .is_retryable());
    }

    #[test]
    fn hints_decide_429_and_503_verdicts() {
        let t = Instant::now();
        assert_eq!(status(429, &[]).verdict(None, true), Verdict::Neutral);
        assert_eq!(
            status(429, &[]).verdict(Some(t), true),
            Verdict::Overloaded { until: t }
        );
        assert_eq!(
            status(503, &[]).verdict(None, true),
            Verdict::Failure { connect: false }
        );
        assert_eq!(
            status(503, &[("retry-after", "2")]).loss(),
            Some((LossKind::Unavailable, true))
        );
        assert_eq!(status(500, &[]).loss(), None);
    }

    #[test]
    fn a_reset_before_the_head_is_a_connection_failure() {
        let f = Failure::Transport {
            output_started: false,
        };
        assert_eq!(f.verdict(None, false), Verdict::Failure { connect: true });
        assert_eq!(f.verdict(None, true), Verdict::Failure { connect: false });
    }

    #[test]
    fn in_band_errors_follow_their_code() {
        let client = Failure::StreamError {
            code: Some(400),
            output_started: false,
        };
        assert_eq!(client.breaker_outcome(None), Outcome::Ignored);
        assert_eq!(client.verdict(None, true), Verdict::Answered);
        assert_eq!(client.error_type(), ErrorType::Status(400));
        let server = Failure::StreamError {
            code: None,
            output_started: false,
        };
        assert!(!server.is_retryable(), "no code: not retried");
        assert_eq!(server.error_type(), ErrorType::Api);
        assert!(Failure::StreamError {
            code: Some(503),
            output_started: false
        }
        .is_retryable());
    }

    #[test]
    fn the_markdown_has_a_line_per_row() {
        assert_eq!(markdown().lines().count(), 2 + TABLE.len());
    }
    #[test]
    fn which_failures_count_against_the_server() {
        use http::{HeaderMap, StatusCode};
        let status = |n: u16| Failure::Status {
            status: StatusCode::from_u16(n).unwrap(),
            headers: HeaderMap::new(),
        };
        for n in [408, 429, 500, 501, 502, 503, 504] {
            assert!(
                matches!(status(n).breaker_outcome(None), Outcome::Failure { .. }),
                "{n}"
            );
        }
        for n in [400, 401, 403, 404, 422] {
            assert_eq!(status(n).breaker_outcome(None), Outcome::Ignored, "{n}");
        }
        assert_eq!(
            Failure::Decode {
                output_started: false
            }
            .breaker_outcome(None),
            Outcome::Ignored
        );
        assert!(matches!(
            Failure::Connect.breaker_outcome(None),
            Outcome::Failure { .. }
        ));
    }
}
