//! [`ClientConfig`]: everything a client is configured with, in one plain value.

use std::time::Duration;

use crate::policy::{AdaptiveConfig, BreakerConfig, RetryBudgetConfig, RetryPolicy, Timeouts};
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
    /// One breaker per operation (chat, completions, embeddings, …).
    PerOperation,
}

#[allow(non_upper_case_globals)]
impl BreakerScope {
    /// The old name of [`PerOperation`](Self::PerOperation): an *endpoint* is a server of a
    /// pool, an *operation* an API route.
    #[deprecated(note = "renamed BreakerScope::PerOperation")]
    pub const PerEndpoint: BreakerScope = BreakerScope::PerOperation;
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

/// How many calls a client keeps in flight.
///
/// `Fixed(n)`: at most `n`, always. `Auto { min, max, initial }`: a limit that finds itself
/// from the time to first token of streams in excess of what the prompt explains, and from
/// losses (429, 503, connect failures, first-token timeouts); see
/// [`AdaptiveLimit`](crate::policy::AdaptiveLimit) for the rule and its defaults
/// ([`Concurrency::auto`]: 1, 1000, 20). Prefer `Fixed` when you know the server's capacity
/// (its `max_num_seqs`) and are its only client, or when your calls are not streamed (only
/// streams tell the adaptive limit about queueing).
///
/// An integer converts to `Fixed`, so `builder.max_concurrency(8)` reads as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// At most this many calls in flight.
    Fixed(u32),
    /// An adaptive limit within `[min, max]`, starting at `initial`.
    Auto {
        /// The lowest limit (taken as at least 1).
        min: u32,
        /// The highest limit.
        max: u32,
        /// The limit before the first sample.
        initial: u32,
    },
}

impl Concurrency {
    /// `Auto` with the default bounds: min 1, max 1000, initial 20.
    pub fn auto() -> Concurrency {
        let d = AdaptiveConfig::default();
        Concurrency::Auto {
            min: d.min,
            max: d.max,
            initial: d.initial,
        }
    }
}

impl From<u32> for Concurrency {
    fn from(n: u32) -> Self {
        Concurrency::Fixed(n)
    }
}

/// The resilience policy of a client. Defaults: see each field.
#[derive(Debug, Clone, PartialEq)]
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
    /// (default: off). A fixed limit; [`auto_concurrency`](Self::auto_concurrency), when set,
    /// takes precedence.
    pub max_concurrency: Option<u32>,
    /// Routing and outlier ejection across several endpoints (see [`crate::pool`]).
    pub pool: crate::pool::PoolConfig,
    /// An adaptive concurrency limit (default: off); see
    /// [`AdaptiveLimit`](crate::policy::AdaptiveLimit). Set by
    /// `max_concurrency(Concurrency::Auto { .. })`, or here with every knob.
    pub auto_concurrency: Option<AdaptiveConfig>,
    /// The seed of the jitter; `None` lets the adapter pick one from the OS so that clients in
    /// different processes do not retry in lockstep.
    pub seed: Option<u64>,
    /// The largest non-streamed response body read (default 64 MiB).
    pub max_body_bytes: usize,
    /// Limits of the event-stream decoder.
    pub sse_limits: SseLimits,
    /// Which Responses streams cut after their first event are resumed from their last
    /// `sequence_number` instead of failed (default: background responses).
    pub resume: crate::policy::ResumeStreams,
    /// Whether a chat stream cut after its text started is continued on another server from
    /// the text it handed out (default: off; see `call::continuation`).
    pub continue_chats: bool,
}

impl PolicyConfig {
    /// The concurrency limit in force: `auto_concurrency` if set, else `max_concurrency`.
    pub fn concurrency(&self) -> Option<Concurrency> {
        match (self.auto_concurrency, self.max_concurrency) {
            (Some(a), _) => Some(Concurrency::Auto {
                min: a.min,
                max: a.max,
                initial: a.initial,
            }),
            (None, Some(n)) => Some(Concurrency::Fixed(n)),
            (None, None) => None,
        }
    }

    /// Sets the concurrency limit (`None`: off). `Auto` keeps the other knobs of an
    /// `auto_concurrency` already set.
    pub fn set_concurrency(&mut self, c: Option<Concurrency>) {
        match c {
            None => {
                self.max_concurrency = None;
                self.auto_concurrency = None;
            }
            Some(Concurrency::Fixed(n)) => {
                self.max_concurrency = Some(n);
                self.auto_concurrency = None;
            }
            Some(Concurrency::Auto { min, max, initial }) => {
                let base = self.auto_concurrency.unwrap_or_default();
                self.max_concurrency = None;
                self.auto_concurrency = Some(AdaptiveConfig {
                    min,
                    max,
                    initial,
                    ..base
                });
            }
        }
    }
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
            auto_concurrency: None,
            seed: None,
            max_body_bytes: 64 << 20,
            sse_limits: SseLimits::default(),
            resume: crate::policy::ResumeStreams::default(),
            continue_chats: false,
        }
    }
}
