//! [`CallReport`]: what a call went through, for the caller and for logs.

use std::time::Duration;

use crate::policy::{GiveUpReason, TimeoutKind};

/// What a call went through: how many attempts, why each retry happened and how long it
/// waited, which timer fired, why the policy gave up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallReport {
    /// Attempts made (requests sent).
    pub attempts: u32,
    /// One record per retry, in order.
    pub retries: Vec<RetryRecord>,
    /// The last timer that fired, if any.
    pub timeout: Option<TimeoutKind>,
    /// Why the retry policy stopped, when the call failed after a failed attempt.
    pub gave_up: Option<GiveUpReason>,
}

/// One retry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryRecord {
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// How long the call slept before the next attempt.
    pub delay: Duration,
    /// Whether the delay was the server's `Retry-After` hint.
    pub hinted: bool,
    /// The failed attempt's error, as text.
    pub cause: String,
}

/// Why the driver asks the adapter to sleep.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SleepReason {
    /// Backoff before a retry.
    Retry(RetryRecord),
    /// Waiting for the client-side rate limiter.
    RateLimit,
}

impl CallReport {
    pub(crate) fn sleep_reason(&self) -> SleepReason {
        match self.retries.last() {
            Some(r) => SleepReason::Retry(r.clone()),
            None => SleepReason::RateLimit,
        }
    }
}
