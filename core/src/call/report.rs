//! [`CallReport`]: what a call went through, for the caller and for logs.

use std::time::Duration;

use crate::policy::{GiveUpReason, RateLimitSnapshot, TimeoutKind};
use crate::pool::EndpointId;

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
    /// What the last response's rate-limit headers said, when it sent any.
    pub rate_limit: Option<RateLimitSnapshot>,
    /// The endpoint each request went to, attempts and hedges, in the order they were sent
    /// (always the first for a client with one server).
    pub endpoints: Vec<EndpointId>,
    /// Hedges sent (a second attempt racing the first for the first token; not counted in
    /// `attempts`).
    pub hedges: u32,
    /// Times a cut Responses stream was resumed where it stopped (each is also an attempt,
    /// after a retry record).
    pub resumes: u32,
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

/// One line a person can read: `"1 attempt; timer fired: Idle; gave up: the client's retry
/// budget is empty"`. Why a failed call was not retried is always in it when the policy
/// decided so.
impl std::fmt::Display for CallReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.attempts == 1 { "" } else { "s" };
        write!(f, "{} attempt{s}", self.attempts)?;
        if !self.retries.is_empty() {
            let slept: Duration = self.retries.iter().map(|r| r.delay).sum();
            write!(
                f,
                ", {} retried after {slept:?} of backoff",
                self.retries.len()
            )?;
        }
        if self
            .endpoints
            .iter()
            .any(|e| Some(e) != self.endpoints.first())
        {
            let list: Vec<String> = self
                .endpoints
                .iter()
                .map(|e| e.index().to_string())
                .collect();
            write!(f, " (endpoints {})", list.join(" → "))?;
        }
        if self.hedges > 0 {
            write!(f, ", hedged")?;
        }
        if self.resumes > 0 {
            let s = if self.resumes == 1 { "" } else { "s" };
            write!(f, ", stream resumed {} time{s}", self.resumes)?;
        }
        if let Some(t) = self.timeout {
            write!(f, "; timer fired: {t:?}")?;
        }
        if let Some(g) = &self.gave_up {
            write!(f, "; gave up: {g}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_why_a_call_was_not_retried() {
        let report = CallReport {
            attempts: 1,
            retries: Vec::new(),
            timeout: Some(TimeoutKind::Idle),
            gave_up: Some(GiveUpReason::BudgetExhausted),
            rate_limit: None,
            endpoints: Vec::new(),
            hedges: 0,
            resumes: 0,
        };
        assert_eq!(
            report.to_string(),
            "1 attempt; timer fired: Idle; gave up: the client's retry budget is empty"
        );
    }
}
