//! [`ClientConfig`]: everything a client is configured with, in one plain value.

use std::time::Duration;

use crate::policy::{BreakerConfig, RetryBudgetConfig, RetryPolicy, Timeouts};
use crate::request::RequestConfig;
use crate::sse::SseLimits;

/// A client's whole configuration: where and how to send, and the resilience policy.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Base URL, API key, headers, user agent.
    pub request: RequestConfig,
    /// Retries, timeouts, budget, breaker and limits.
    pub policy: PolicyConfig,
}

/// Where a circuit breaker applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BreakerScope {
    /// One breaker for every call of the client.
    #[default]
    Client,
    /// One breaker per endpoint (chat, completions, embeddings, …).
    PerEndpoint,
}

/// A client-side request rate: `requests` per `per`, with bursts of up to `burst` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests admitted per period on average.
    pub requests: u32,
    /// The period.
    pub per: Duration,
    /// How many requests may go at once after a quiet spell.
    pub burst: u32,
}

/// The resilience policy of a client. Defaults: see each field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Which failures are retried, how often and after how long (default: 2 retries, full
    /// jitter from 500 ms up to 8 s, server hints honoured up to 60 s).
    pub retry: RetryPolicy,
    /// Connect, first token, idle, attempt and overall deadline.
    pub timeouts: Timeouts,
    /// The retry budget shared by all calls (default: on, AWS standard-mode numbers); `None`
    /// turns it off.
    pub budget: Option<RetryBudgetConfig>,
    /// The circuit breaker (default: off).
    pub breaker: Option<BreakerConfig>,
    /// Whether the breaker is per client or per endpoint.
    pub breaker_scope: BreakerScope,
    /// The client-side rate limit (default: off).
    pub rate_limit: Option<RateLimit>,
    /// The client-side token rate limit, in tokens per minute (default: off): see
    /// [`token_rate`](crate::policy::token_rate) for how calls are charged.
    pub token_rate_limit: Option<u32>,
    /// The most calls in flight at once; a stream holds its slot until it ends or is dropped
    /// (default: off).
    pub max_concurrency: Option<u32>,
    /// Routing and outlier ejection across several endpoints (see [`crate::pool`]).
    pub pool: crate::pool::PoolConfig,
    /// The seed of the jitter; `None` lets the adapter pick one from the OS so that clients in
    /// different processes do not retry in lockstep.
    pub seed: Option<u64>,
    /// The largest non-streamed response body read (default 64 MiB).
    pub max_body_bytes: usize,
    /// Limits of the event-stream decoder.
    pub sse_limits: SseLimits,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            budget: Some(RetryBudgetConfig::default()),
            breaker: None,
            breaker_scope: BreakerScope::Client,
            rate_limit: None,
            token_rate_limit: None,
            max_concurrency: None,
            pool: crate::pool::PoolConfig::default(),
            seed: None,
            max_body_bytes: 64 << 20,
            sse_limits: SseLimits::default(),
        }
    }
}
