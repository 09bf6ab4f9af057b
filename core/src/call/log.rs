//! What adapters log, formatted once: the same line for the same happening in every adapter.
//!
//! The core has no logging dependency; an adapter turns a [`LogLine`] into its logger's call
//! (`tracing::warn!("{}", line.message)` and so on).

use std::time::Duration;

use super::SleepReason;
use crate::policy::{ChangeCause, LimitChange, Transition};
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

/// The line for a change of the adaptive concurrency limit (from
/// [`Shared::poll_limit_change`](super::Shared::poll_limit_change)): a loss is `Info`, the
/// routine moves of the delay path and of baseline probes are `Debug`.
pub fn limit_change_line(c: &LimitChange) -> LogLine {
    let (level, why) = match c.cause {
        ChangeCause::Delay => (
            LogLevel::Debug,
            format!("time to first token (gradient {:.2})", c.gradient),
        ),
        ChangeCause::Loss(kind) => (LogLevel::Info, format!("{kind:?}")),
        ChangeCause::ProbeStart => (LogLevel::Debug, "baseline probe".to_owned()),
        ChangeCause::ProbeEnd => (LogLevel::Debug, "baseline probe over".to_owned()),
    };
    LogLine {
        level,
        message: format!("concurrency limit {} -> {} ({why})", c.from, c.to),
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
    fn limit_change_lines() {
        let c = LimitChange {
            at: std::time::Instant::now(),
            from: 40,
            to: 20,
            cause: ChangeCause::Loss(crate::policy::LossKind::TooManyRequests),
            gradient: 1.0,
        };
        let line = limit_change_line(&c);
        assert_eq!(line.level, LogLevel::Info);
        assert_eq!(line.message, "concurrency limit 40 -> 20 (TooManyRequests)");
        let d = LimitChange {
            cause: ChangeCause::Delay,
            gradient: 0.5,
            ..c
        };
        assert_eq!(
            limit_change_line(&d).message,
            "concurrency limit 40 -> 20 (time to first token (gradient 0.50))"
        );
    }

    #[test]
    fn chain_skips_repeated_causes() {
        let io = std::io::Error::other("refused");
        assert_eq!(error_chain(&io), "refused");
    }
}
