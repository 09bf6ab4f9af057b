//! Failure classification and the retry decision.
//!
//! After every failed attempt the call driver asks [`RetryPolicy::decide`] what to do. The
//! checks run in this order; the first that says "give up" wins:
//!
//! ```text
//!  Failure ──► output already reached the caller? ──yes──► GiveUp(OutputStarted)
//!                 │ no
//!                 ▼
//!              retryable? (x-should-retry overrides a status) ──no──► GiveUp(NotRetryable)
//!                 │ yes
//!                 ▼
//!              first-token timeout, not opted in? ──yes──► GiveUp(FirstTokenTimeout)
//!                 │ no
//!                 ▼
//!              attempts_made ≥ 1 + max_retries? ──yes──► GiveUp(AttemptsExhausted)
//!                 │ no
//!                 ▼
//!              server hint h?  ──h > max_retry_after──► GiveUp(HintBeyondCap { h })
//!                 │ h ≤ cap: delay = h            │ none: delay = backoff(retry n)
//!                 ▼                                ▼
//!              now + delay ≥ deadline? ──yes──► GiveUp(HintBeyondDeadline | BackoffBeyondDeadline)
//!                 │ no
//!                 ▼
//!              budget.try_withdraw(cost)? ──no──► GiveUp(BudgetExhausted)
//!                 │ yes
//!                 ▼
//!              Retry { delay, hinted }
//! ```
//!
//! **Retryable** (the retry column of [`super::failure`]'s table): connect errors; transport errors, timeouts (except [`TimeoutKind::Deadline`],
//! and [`TimeoutKind::FirstToken`] unless [`RetryPolicy::retry_first_token_timeout`] is set)
//! and truncated streams before any output; statuses 408, 429, 500, 502, 503, 504 (not 501,
//! no other 4xx, no other code); in-band stream error events before any output whose `code` is
//! one of those statuses. Decode errors are never retried. An `x-should-retry: true|false`
//! header overrides the status classification. **Nothing** is retried once output reached the
//! caller — vLLM restarts generation from scratch, so a retry would duplicate streamed text;
//! this beats even `x-should-retry: true`.
//!
//! **Hints** (`retry-after-ms`, `Retry-After`, `llm_provider-retry-after`, see
//! [`super::retry_after`]) change *when*, never *whether*: a hint `h ≤ max_retry_after` makes the
//! delay exactly `h` (even 0); a larger hint gives up at once, reporting it. A wait is never
//! silently shortened to fit a cap or deadline.
//!
//! **Deadline**: the policy gives up when `now + delay ≥ deadline` — an attempt starting exactly
//! at the deadline would have no time at all, so equality gives up too.
//!
//! **Budget**: consulted last, only when everything else says retry (first attempts never touch
//! it); a retry costs `retry_cost`, or `timeout_retry_cost` after a timeout.
//!
//! Defaults ([`RetryPolicy::default`]): `max_retries` 2 (3 attempts, like openai-python),
//! [`Backoff::default`] (500 ms · 2^(n−1) ≤ 8 s, full jitter), `max_retry_after` 60 s,
//! `honor_retry_after` true.

use std::time::{Duration, Instant, SystemTime};

use super::backoff::Backoff;
use super::budget::RetryBudget;
use super::clock::saturating_add;
use super::failure::Retry;
pub use super::failure::{is_retryable_status, Failure};
use super::retry_after::parse_retry_after;
use super::rng::Rng;
#[cfg(doc)]
use super::timeouts::TimeoutKind;

/// Why the policy gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// The failure is not retryable.
    NotRetryable,
    /// `1 + max_retries` attempts were made.
    AttemptsExhausted,
    /// Output already reached the caller; a retry would duplicate it.
    OutputStarted,
    /// The server asked to wait longer than `max_retry_after`.
    HintBeyondCap {
        /// What the server asked for.
        hint: Duration,
    },
    /// The server's hint would end at or after the overall deadline.
    HintBeyondDeadline {
        /// What the server asked for.
        hint: Duration,
    },
    /// The backoff delay would end at or after the overall deadline.
    BackoffBeyondDeadline {
        /// The delay that was drawn.
        delay: Duration,
    },
    /// The shared retry budget is empty.
    BudgetExhausted,
    /// A first-token timeout, not retried against the same endpoint (see
    /// [`RetryPolicy::retry_first_token_timeout`]): the retry would queue again at the back.
    FirstTokenTimeout,
    /// The circuit breaker refused the retry (the server kept failing).
    CircuitOpen,
}

impl std::fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GiveUpReason::NotRetryable => f.write_str("the failure is not retryable"),
            GiveUpReason::AttemptsExhausted => f.write_str("every allowed attempt was made"),
            GiveUpReason::OutputStarted => {
                f.write_str("output already reached the caller; a retry would duplicate it")
            }
            GiveUpReason::HintBeyondCap { hint } => {
                write!(f, "the server asked to wait {hint:?}, more than max_retry_after")
            }
            GiveUpReason::HintBeyondDeadline { hint } => write!(
                f,
                "the server asked to wait {hint:?}, past the call's deadline"
            ),
            GiveUpReason::BackoffBeyondDeadline { delay } => {
                write!(f, "the backoff of {delay:?} would end past the call's deadline")
            }
            GiveUpReason::BudgetExhausted => f.write_str("the client's retry budget is empty"),
            GiveUpReason::CircuitOpen => f.write_str("the circuit breaker refused the retry"),
            GiveUpReason::FirstTokenTimeout => f.write_str(
                "a first-token timeout is not retried against the same endpoint (it would queue again)",
            ),
        }
    }
}

/// The policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Sleep `delay`, then make another attempt.
    Retry {
        /// How long to wait.
        delay: Duration,
        /// Whether `delay` is the server's hint (otherwise it is the backoff).
        hinted: bool,
    },
    /// Stop and report the failure.
    GiveUp(GiveUpReason),
}

/// Everything about the call's progress the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryContext {
    /// Attempts made so far, including the one that just failed (≥ 1; 0 is treated as 1).
    pub attempts_made: u32,
    /// The current time.
    pub now: Instant,
    /// The overall deadline, if any.
    pub deadline: Option<Instant>,
    /// Wall-clock time the failed response head was received (for `Retry-After` dates).
    pub received_at: SystemTime,
    /// The delay slept before the failed attempt (zero before the first retry).
    pub previous_delay: Duration,
    /// Whether a retry can go to another endpoint the call has not tried (a pool): it then
    /// goes at once — no backoff, no waiting for this server's hint — and a first-token
    /// timeout is retried there even when it is not retried against the same endpoint.
    pub failover: bool,
}

impl RetryContext {
    /// A context with no deadline and no previous delay.
    pub fn new(attempts_made: u32, now: Instant, received_at: SystemTime) -> Self {
        RetryContext {
            attempts_made,
            now,
            deadline: None,
            received_at,
            previous_delay: Duration::ZERO,
            failover: false,
        }
    }

    /// Sets the overall deadline.
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets the previous delay.
    pub fn with_previous_delay(mut self, previous: Duration) -> Self {
        self.previous_delay = previous;
        self
    }

    /// Says whether another, untried endpoint can take the retry.
    pub fn with_failover(mut self, failover: bool) -> Self {
        self.failover = failover;
        self
    }
}

/// Whether and when to retry (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; total attempts ≤ 1 + `max_retries`. Default 2.
    pub max_retries: u32,
    /// Delay schedule when the server gives no hint. Default [`Backoff::default`].
    pub backoff: Backoff,
    /// Longest server hint honoured; a longer one gives up at once. Default 60 s.
    pub max_retry_after: Duration,
    /// Whether server hints are honoured at all (otherwise the backoff is used). Default true.
    pub honor_retry_after: bool,
    /// Whether a first-token timeout is retried against the same endpoint. Default false: a
    /// vLLM server that is slow to start a stream is *queueing* it, and a retry would throw
    /// away the queue position (and any prefill done), then queue again at the back — the
    /// second attempt waits longer than the first would have. The call ends with
    /// [`GiveUpReason::FirstTokenTimeout`] instead.
    pub retry_first_token_timeout: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            backoff: Backoff::default(),
            max_retry_after: Duration::from_secs(60),
            honor_retry_after: true,
            retry_first_token_timeout: false,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// Decides whether to retry after `failure`.
    ///
    /// Draws from `rng` only when the backoff is used; withdraws from `budget` only when the
    /// answer is [`RetryDecision::Retry`].
    pub fn decide(
        &self,
        failure: &Failure,
        ctx: &RetryContext,
        rng: &mut Rng,
        budget: Option<&mut RetryBudget>,
    ) -> RetryDecision {
        use GiveUpReason::*;
        if failure.output_started() {
            return RetryDecision::GiveUp(OutputStarted);
        }
        if !failure.is_retryable() {
            return RetryDecision::GiveUp(NotRetryable);
        }
        if !self.retry_first_token_timeout
            && !ctx.failover
            && failure.row(true).retry == Retry::Elsewhere
        {
            return RetryDecision::GiveUp(FirstTokenTimeout);
        }
        let attempts = ctx.attempts_made.max(1);
        if attempts > self.max_retries || attempts == u32::MAX {
            // attempts − 1 retries were made; one more would exceed max_retries (or the
            // attempt counter itself).
            return RetryDecision::GiveUp(AttemptsExhausted);
        }
        let hint = match failure {
            Failure::Status { headers, .. } if self.honor_retry_after => {
                parse_retry_after(headers, ctx.received_at).map(|h| h.delay)
            }
            _ => None,
        };
        let (delay, hinted) = match hint {
            // Another endpoint takes the retry at once: this server's hint and backoff are
            // about this server.
            _ if ctx.failover => (Duration::ZERO, false),
            Some(h) if h > self.max_retry_after => {
                return RetryDecision::GiveUp(HintBeyondCap { hint: h })
            }
            Some(h) => (h, true),
            None => (self.backoff.delay(attempts, ctx.previous_delay, rng), false),
        };
        if let Some(deadline) = ctx.deadline {
            if saturating_add(ctx.now, delay) >= deadline {
                return RetryDecision::GiveUp(if hinted {
                    HintBeyondDeadline { hint: delay }
                } else {
                    BackoffBeyondDeadline { delay }
                });
            }
        }
        if let Some(budget) = budget {
            let cost = budget.retry_cost(failure.is_timeout());
            if !budget.try_withdraw(ctx.now, cost) {
                return RetryDecision::GiveUp(BudgetExhausted);
            }
        }
        RetryDecision::Retry { delay, hinted }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::failure::tests::status;
    use crate::policy::TimeoutKind;

    fn ctx(attempts: u32) -> RetryContext {
        RetryContext::new(attempts, Instant::now(), SystemTime::UNIX_EPOCH)
    }

    fn decide(p: &RetryPolicy, f: &Failure, c: &RetryContext) -> RetryDecision {
        p.decide(f, c, &mut Rng::new(1), None)
    }

    fn is_retry(d: RetryDecision) -> bool {
        matches!(d, RetryDecision::Retry { .. })
    }

    #[test]
    fn status_classification() {
        let p = RetryPolicy::default();
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(is_retry(decide(&p, &status(code, &[]), &ctx(1))), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422, 501, 505, 529, 302, 200] {
            assert_eq!(
                decide(&p, &status(code, &[]), &ctx(1)),
                RetryDecision::GiveUp(GiveUpReason::NotRetryable),
                "{code}"
            );
        }
    }

    #[test]
    fn should_retry_header_overrides() {
        let p = RetryPolicy::default();
        assert!(is_retry(decide(
            &p,
            &status(400, &[("x-should-retry", "true")]),
            &ctx(1)
        )));
        assert_eq!(
            decide(&p, &status(503, &[("x-should-retry", "false")]), &ctx(1)),
            RetryDecision::GiveUp(GiveUpReason::NotRetryable)
        );
        assert!(is_retry(decide(
            &p,
            &status(503, &[("x-should-retry", "maybe")]),
            &ctx(1)
        )));
    }

    #[test]
    fn transport_and_timeouts() {
        let p = RetryPolicy::default();
        assert!(is_retry(decide(&p, &Failure::Connect, &ctx(1))));
        assert!(is_retry(decide(
            &p,
            &Failure::Transport {
                output_started: false
            },
            &ctx(1)
        )));
        assert!(is_retry(decide(
            &p,
            &Failure::Truncated {
                output_started: false
            },
            &ctx(1)
        )));
        for kind in [
            TimeoutKind::Connect,
            TimeoutKind::Idle,
            TimeoutKind::Attempt,
        ] {
            assert!(is_retry(decide(
                &p,
                &Failure::Timeout {
                    kind,
                    output_started: false
                },
                &ctx(1)
            )));
        }
        // A first-token timeout would queue again at the back of the same server's queue.
        let first_token = Failure::Timeout {
            kind: TimeoutKind::FirstToken,
            output_started: false,
        };
        assert_eq!(
            decide(&p, &first_token, &ctx(1)),
            RetryDecision::GiveUp(GiveUpReason::FirstTokenTimeout)
        );
        let opt_in = RetryPolicy {
            retry_first_token_timeout: true,
            ..RetryPolicy::default()
        };
        assert!(is_retry(decide(&opt_in, &first_token, &ctx(1))));
        assert_eq!(
            decide(
                &p,
                &Failure::Timeout {
                    kind: TimeoutKind::Deadline,
                    output_started: false
                },
                &ctx(1)
            ),
            RetryDecision::GiveUp(GiveUpReason::NotRetryable)
        );
        assert_eq!(
            decide(
                &p,
                &Failure::Decode {
                    output_started: false
                },
                &ctx(1)
            ),
            RetryDecision::GiveUp(GiveUpReason::NotRetryable)
        );
        assert!(is_retry(decide(
            &p,
            &Failure::StreamError {
                code: Some(500),
                output_started: false
            },
            &ctx(1)
        )));
        assert!(!is_retry(decide(
            &p,
            &Failure::StreamError {
                code: Some(400),
                output_started: false
            },
            &ctx(1)
        )));
    }

    #[test]
    fn never_after_output() {
        let p = RetryPolicy {
            max_retries: 100,
            ..Default::default()
        };
        for f in [
            Failure::Transport {
                output_started: true,
            },
            Failure::Timeout {
                kind: TimeoutKind::Idle,
                output_started: true,
            },
            Failure::StreamError {
                code: Some(503),
                output_started: true,
            },
            Failure::Truncated {
                output_started: true,
            },
            Failure::Decode {
                output_started: true,
            },
        ] {
            assert_eq!(
                decide(&p, &f, &ctx(1)),
                RetryDecision::GiveUp(GiveUpReason::OutputStarted)
            );
        }
    }

    #[test]
    fn attempt_limit() {
        let p = RetryPolicy::default();
        assert!(is_retry(decide(&p, &Failure::Connect, &ctx(0))));
        assert!(is_retry(decide(&p, &Failure::Connect, &ctx(1))));
        assert!(is_retry(decide(&p, &Failure::Connect, &ctx(2))));
        assert_eq!(
            decide(&p, &Failure::Connect, &ctx(3)),
            RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted)
        );
        assert_eq!(
            decide(&RetryPolicy::none(), &Failure::Connect, &ctx(1)),
            RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted)
        );
        let p = RetryPolicy {
            max_retries: u32::MAX,
            ..Default::default()
        };
        assert!(is_retry(decide(&p, &Failure::Connect, &ctx(u32::MAX - 1))));
        assert!(!is_retry(decide(&p, &Failure::Connect, &ctx(u32::MAX))));
    }

    #[test]
    fn hint_exact_and_cap() {
        let p = RetryPolicy::default();
        assert_eq!(
            decide(&p, &status(429, &[("retry-after", "7")]), &ctx(1)),
            RetryDecision::Retry {
                delay: Duration::from_secs(7),
                hinted: true
            }
        );
        assert_eq!(
            decide(&p, &status(429, &[("retry-after-ms", "0")]), &ctx(1)),
            RetryDecision::Retry {
                delay: Duration::ZERO,
                hinted: true
            }
        );
        assert_eq!(
            decide(&p, &status(429, &[("retry-after", "61")]), &ctx(1)),
            RetryDecision::GiveUp(GiveUpReason::HintBeyondCap {
                hint: Duration::from_secs(61)
            })
        );
        // A hint never turns a non-retryable status into a retry, nor extends attempts.
        assert_eq!(
            decide(&p, &status(400, &[("retry-after", "1")]), &ctx(1)),
            RetryDecision::GiveUp(GiveUpReason::NotRetryable)
        );
        assert_eq!(
            decide(&p, &status(429, &[("retry-after", "1")]), &ctx(3)),
            RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted)
        );
        // Ignored when configured so.
        let p = RetryPolicy {
            honor_retry_after: false,
            ..p
        };
        assert!(matches!(
            decide(&p, &status(429, &[("retry-after", "1000")]), &ctx(1)),
            RetryDecision::Retry { hinted: false, .. }
        ));
    }

    #[test]
    fn deadline() {
        let p = RetryPolicy::default();
        let c = ctx(1);
        let c = c.with_deadline(Some(c.now + Duration::from_secs(5)));
        assert_eq!(
            decide(&p, &status(503, &[("retry-after", "5")]), &c),
            RetryDecision::GiveUp(GiveUpReason::HintBeyondDeadline {
                hint: Duration::from_secs(5)
            })
        );
        assert!(is_retry(decide(
            &p,
            &status(503, &[("retry-after", "4")]),
            &c
        )));
        let p = RetryPolicy {
            backoff: Backoff::constant(Duration::from_secs(6)),
            ..p
        };
        assert_eq!(
            decide(&p, &Failure::Connect, &c),
            RetryDecision::GiveUp(GiveUpReason::BackoffBeyondDeadline {
                delay: Duration::from_secs(6)
            })
        );
    }

    #[test]
    fn budget_consulted_last() {
        let p = RetryPolicy::default();
        let c = ctx(1);
        let mut b = RetryBudget::new(crate::policy::budget::RetryBudgetConfig {
            capacity: 10,
            refill_millis_per_sec: 0,
            ..Default::default()
        });
        // Not retryable: budget untouched.
        p.decide(&status(400, &[]), &c, &mut Rng::new(1), Some(&mut b));
        assert_eq!(b.tokens(c.now), 10);
        assert!(is_retry(p.decide(
            &Failure::Connect,
            &c,
            &mut Rng::new(1),
            Some(&mut b)
        )));
        assert_eq!(b.tokens(c.now), 5);
        let t = Failure::Timeout {
            kind: TimeoutKind::Idle,
            output_started: false,
        };
        assert_eq!(
            p.decide(&t, &c, &mut Rng::new(1), Some(&mut b)),
            RetryDecision::GiveUp(GiveUpReason::BudgetExhausted)
        );
        assert_eq!(b.tokens(c.now), 5);
        assert!(is_retry(p.decide(
            &Failure::Connect,
            &c,
            &mut Rng::new(1),
            Some(&mut b)
        )));
        assert_eq!(b.tokens(c.now), 0);
    }

    #[test]
    fn backoff_used_without_hint() {
        let p = RetryPolicy::default();
        match decide(&p, &status(503, &[]), &ctx(2)) {
            RetryDecision::Retry { delay, hinted } => {
                assert!(!hinted);
                assert!(delay < Duration::from_secs(1));
            }
            d => panic!("{d:?}"),
        }
    }
}
