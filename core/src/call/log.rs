//! What adapters log, formatted once: the same line for the same happening in every adapter.
//!
//! The core has no logging dependency; an adapter turns a [`LogLine`] into its logger's call
//! (`tracing::warn!("{}", line.message)` and so on).

use std::time::Duration;

use super::SleepReason;
use crate::policy::Transition;
use crate::request::Endpoint;

/// How loud a [`LogLine`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Routine detail.
    Debug,
    /// Worth knowing.
    Info,
    /// Something failed and was handled.
    Warn,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// How loud.
    pub level: LogLevel,
    /// The text (never contains request headers or the API key).
    pub message: String,
}

/// The line for an [`Action::Sleep`](super::Action::Sleep) of `delay`.
pub fn sleep_line(reason: &SleepReason, delay: Duration) -> LogLine {
    match reason {
        SleepReason::Retry(r) => LogLine {
            level: LogLevel::Warn,
            message: format!(
                "retrying after attempt {} failed ({}); waiting {} ms{}",
                r.attempt,
                r.cause,
                delay.as_millis(),
                if r.hinted { " as the server asked" } else { "" }
            ),
        },
        SleepReason::ServerRateLimit => LogLine {
            level: LogLevel::Info,
            message: format!(
                "the server's rate limit is spent: waiting {} ms for it to refill",
                delay.as_millis()
            ),
        },
        SleepReason::RateLimit => LogLine {
            level: LogLevel::Info,
            message: format!("client-side rate limit: waiting {} ms", delay.as_millis()),
        },
    }
}

/// The line for a circuit-breaker transition (from [`Shared::poll_transition`](super::Shared::poll_transition)).
pub fn transition_line(endpoint: Option<Endpoint>, t: &Transition) -> LogLine {
    let scope = match endpoint {
        Some(e) => format!(" for {e:?}"),
        None => String::new(),
    };
    LogLine {
        level: LogLevel::Warn,
        message: format!("circuit breaker{scope}: {:?} -> {:?}", t.from, t.to),
    }
}

/// The line for an endpoint's change of health (from [`Shared::poll_endpoint_change`](super::Shared::poll_endpoint_change)).
pub fn endpoint_line(c: &crate::pool::EndpointChange) -> LogLine {
    use crate::policy::Health;
    let (level, message) = match (c.change.from, c.change.to) {
        (_, Health::Ejected { .. }) => {
            let why = c.change.reason.map(|r| r.to_string()).unwrap_or_default();
            (
                LogLevel::Warn,
                format!("endpoint {} ({}) ejected: {why}", c.id.index(), c.url),
            )
        }
        (_, Health::Probing) => (
            LogLevel::Info,
            format!(
                "endpoint {} ({}) probed after its ejection",
                c.id.index(),
                c.url
            ),
        ),
        (_, Health::Healthy) => (
            LogLevel::Info,
            format!("endpoint {} ({}) back in rotation", c.id.index(), c.url),
        ),
    };
    LogLine { level, message }
}

/// The line for a hedged first token: the backup leg started (`won: None`), or which leg won.
pub fn hedge_line(won: Option<super::Leg>) -> LogLine {
    let message = match won {
        None => "the first token is late: hedging with a second attempt on another endpoint".into(),
        Some(super::Leg::Primary) => {
            "hedge: the first attempt answered first; the second is cancelled".into()
        }
        Some(super::Leg::Backup) => {
            "hedge: the second attempt answered first; the first is cancelled".into()
        }
    };
    LogLine {
        level: LogLevel::Info,
        message,
    }
}

/// The line for waiting on a concurrency slot.
pub fn wait_for_permit_line() -> LogLine {
    LogLine {
        level: LogLevel::Debug,
        message: "waiting for a concurrency slot".to_string(),
    }
}

/// An error with its causes, `"error sending request: connection refused"`, for
/// [`Event::TransportError`](super::Event::TransportError)'s message.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.ends_with(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_skips_repeated_causes() {
        let io = std::io::Error::other("refused");
        assert_eq!(error_chain(&io), "refused");
    }
}
