//! [`Shared`]: the state every call of a client shares — retry budget, circuit breakers, rate
//! and concurrency limits, and the source of per-call jitter seeds.
//!
//! It is a plain struct passed to the driver by `&mut`: an adapter keeps it in a mutex and
//! never holds that mutex across an await or a blocking read.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::config::{BreakerScope, ClientConfig, PolicyConfig};
use crate::policy::{
    AdaptiveLimit, AdaptiveSnapshot, BreakerState, CircuitBreaker, ConcurrencyLimiter, LimitChange,
    LimitSample, Load, RateLimiter, RetryBudget, Rng, TokenRateLimiter, Transition,
};
use crate::pool::{EndpointChange, EndpointStatus, Pool};

/// Distinguishes the adaptive limiter's jitter stream from the calls' seeds.
const ADAPTIVE_SEED_SALT: u64 = 0xADA9_71FE_C0DE_0012;

/// The concurrency limit's state, from [`Shared::concurrency_snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencySnapshot {
    /// The limit in force.
    pub limit: u32,
    /// Calls in flight (holding a slot).
    pub in_flight: u32,
    /// Calls waiting for a slot.
    pub waiting: usize,
    /// The adaptive limiter's state (`None` for a fixed limit).
    pub adaptive: Option<AdaptiveSnapshot>,
}
use crate::request::Operation;

/// State shared by all calls of one client.
#[derive(Debug)]
pub struct Shared {
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) breaker: Option<CircuitBreaker>,
    pub(crate) operation_breakers: HashMap<Operation, CircuitBreaker>,
    scope: BreakerScope,
    pub(crate) rate: Option<RateLimiter>,
    pub(crate) tokens: Option<TokenRateLimiter>,
    pub(crate) concurrency: Option<ConcurrencyLimiter>,
    /// The adaptive limit that sets `concurrency`'s limit, when on.
    pub(crate) adaptive: Option<AdaptiveLimit>,
    limit_changes: VecDeque<LimitChange>,
    /// Until when the server said its quota is spent (its rate-limit headers).
    pub(crate) server_gate: Option<Instant>,
    /// The client's endpoints (configured by [`for_client`](Self::for_client), or by the
    /// first call).
    pub(crate) pool: Pool,
    /// Recent first-token times and the bucket that bounds hedges.
    pub(crate) hedge: crate::policy::hedge::HedgeState,
    seeds: Rng,
    transitions: Vec<(Option<Operation>, Transition)>,
}

impl Shared {
    /// Shared state for `policy`. `entropy` seeds the jitter when the policy has no seed of its
    /// own (adapters pass a value from the OS, so that processes do not retry in lockstep).
    pub fn new(policy: &PolicyConfig, entropy: u64) -> Self {
        let breaker = match policy.breaker_scope {
            BreakerScope::Client => policy.breaker.map(CircuitBreaker::new),
            BreakerScope::PerOperation => None,
        };
        let seed = policy.seed.unwrap_or(entropy);
        let adaptive = policy
            .auto_concurrency
            .map(|c| AdaptiveLimit::new(c, seed ^ ADAPTIVE_SEED_SALT));
        let concurrency = match &adaptive {
            Some(a) => Some(ConcurrencyLimiter::new(a.limit())),
            None => policy.max_concurrency.map(ConcurrencyLimiter::new),
        };
        Shared {
            budget: policy.budget.map(RetryBudget::new),
            breaker,
            operation_breakers: HashMap::new(),
            scope: policy.breaker_scope,
            rate: policy
                .rate_limit
                .map(|r| RateLimiter::new(r.requests, r.per, r.burst)),
            tokens: policy.token_rate_limit.map(TokenRateLimiter::per_minute),
            concurrency,
            adaptive,
            limit_changes: VecDeque::new(),
            server_gate: None,
            pool: Pool::default(),
            hedge: Default::default(),
            seeds: Rng::new(seed),
            transitions: Vec::new(),
        }
    }

    /// Shared state for a whole client configuration: the policy's, plus its endpoints (so
    /// that [`endpoints`](Self::endpoints) lists them before the first call).
    pub fn for_client(config: &ClientConfig, entropy: u64) -> Self {
        let mut shared = Shared::new(&config.policy, entropy);
        shared.configure(config);
        shared
    }

    /// Sets up the endpoints of `config` unless done already (every call does this).
    pub(crate) fn configure(&mut self, config: &ClientConfig) {
        if !self.pool.is_configured() {
            let seed = self.next_seed();
            self.pool = Pool::new(&config.request, config.policy.pool, seed);
            // Several endpoints with an adaptive limit: one limit per endpoint, and the
            // client's is their sum.
            if let Some(auto) = config.policy.auto_concurrency {
                if self.pool.with_adaptive_limits(auto, seed) {
                    self.adaptive = None;
                    self.sync_pool_limit();
                }
            }
        }
    }

    /// Every endpoint's state: health, load, latency, failures.
    pub fn endpoints(&self, now: Instant) -> Vec<EndpointStatus> {
        self.pool.status(now)
    }

    /// The next change of an endpoint's health (ejected, probing, readmitted), for logs.
    pub fn poll_endpoint_change(&mut self) -> Option<EndpointChange> {
        self.pool.poll_change()
    }

    /// Hedges started and hedgeable calls seen so far.
    pub fn hedge_counts(&self) -> (u64, u64) {
        self.hedge.counts()
    }

    /// A fresh seed for one call's jitter.
    pub(crate) fn next_seed(&mut self) -> u64 {
        self.seeds.next_u64()
    }

    /// The breaker that guards `endpoint`, if breaking is on.
    pub(crate) fn breaker_for(
        &mut self,
        endpoint: Operation,
        policy: &PolicyConfig,
    ) -> Option<&mut CircuitBreaker> {
        match self.scope {
            BreakerScope::Client => self.breaker.as_mut(),
            BreakerScope::PerOperation => {
                let cfg = policy.breaker?;
                Some(
                    self.operation_breakers
                        .entry(endpoint)
                        .or_insert_with(|| CircuitBreaker::new(cfg)),
                )
            }
        }
    }

    /// Moves the breakers' transitions into the queue [`poll_transition`](Self::poll_transition)
    /// drains.
    pub(crate) fn collect_transitions(&mut self) {
        // Bounded: each breaker's own queue is bounded, and callers drain this one.
        if let Some(b) = self.breaker.as_mut() {
            while let Some(t) = b.poll_transition() {
                self.transitions.push((None, t));
            }
        }
        for (e, b) in self.operation_breakers.iter_mut() {
            while let Some(t) = b.poll_transition() {
                self.transitions.push((Some(*e), t));
            }
        }
        let excess = self.transitions.len().saturating_sub(64);
        self.transitions.drain(..excess);
    }

    /// The next breaker transition (with the endpoint, for per-endpoint breakers), for logging.
    pub fn poll_transition(&mut self) -> Option<(Option<Operation>, Transition)> {
        self.collect_transitions();
        if self.transitions.is_empty() {
            None
        } else {
            Some(self.transitions.remove(0))
        }
    }

    /// The state of the client-wide breaker (or of `endpoint`'s, per endpoint).
    pub fn breaker_state(&self, endpoint: Operation, now: Instant) -> Option<BreakerState> {
        match self.scope {
            BreakerScope::Client => self.breaker.as_ref().map(|b| b.state(now)),
            BreakerScope::PerOperation => {
                self.operation_breakers.get(&endpoint).map(|b| b.state(now))
            }
        }
    }

    /// The client-wide breaker, for forcing it open, disabling or resetting it.
    pub fn breaker_mut(&mut self) -> Option<&mut CircuitBreaker> {
        self.breaker.as_mut()
    }

    /// Tokens left in the retry budget (`None` when the budget is off).
    pub fn budget_tokens(&self, now: Instant) -> Option<u32> {
        self.budget.as_ref().map(|b| b.tokens(now))
    }

    /// The next waiting call whose turn has come: a call ended and its concurrency slot was
    /// handed to this waiter (first come, first served). Wake exactly that call (its
    /// [`Action::WaitForPermit`](super::Action::WaitForPermit) named it); each hand-over is
    /// reported once. Drain this after every `poll`, `handle` and `cancel`.
    pub fn poll_wake(&mut self) -> Option<crate::policy::WaiterId> {
        self.concurrency.as_mut()?.poll_wake()
    }

    /// Until when new calls wait because the server's rate-limit headers said its quota is
    /// spent (`None` when no such announcement is in force).
    pub fn server_rate_limited_until(&self, now: Instant) -> Option<Instant> {
        self.server_gate.filter(|g| *g > now)
    }

    /// Tokens the token rate limit would admit at once (`None` when it is off).
    pub fn tokens_available(&self, now: Instant) -> Option<u64> {
        self.tokens.as_ref().map(|t| t.available(now))
    }

    /// Calls waiting for a concurrency slot (`None` when the limit is off).
    pub fn waiting(&self) -> Option<usize> {
        self.concurrency.as_ref().map(|c| c.waiting())
    }

    /// Calls in flight under the concurrency limit (`None` when it is off).
    pub fn in_flight(&self) -> Option<u32> {
        self.concurrency.as_ref().map(|c| c.in_flight())
    }

    /// The concurrency limit in force (`None` when it is off); an adaptive one changes.
    pub fn concurrency_limit(&self) -> Option<u32> {
        self.concurrency.as_ref().map(|c| c.max())
    }

    /// The concurrency limit's state: limit, in flight, waiting, and the adaptive limiter's
    /// baselines and last gradient (`None` when the limit is off).
    pub fn concurrency_snapshot(&self) -> Option<ConcurrencySnapshot> {
        let c = self.concurrency.as_ref()?;
        Some(ConcurrencySnapshot {
            limit: c.max(),
            in_flight: c.in_flight(),
            waiting: c.waiting(),
            adaptive: self.adaptive.as_ref().map(|a| {
                let mut s = a.snapshot();
                s.in_flight = c.in_flight();
                s
            }),
        })
    }

    /// The next change of the adaptive concurrency limit, for logging (the last 64 are kept).
    pub fn poll_limit_change(&mut self) -> Option<LimitChange> {
        self.limit_changes.pop_front()
    }

    /// Feeds the adaptive limit one sample and applies the limit it then sets: a raised limit
    /// hands slots to waiters (drain [`poll_wake`](Self::poll_wake)). No-op when the limit is
    /// fixed or off.
    pub fn record_limit_sample(&mut self, now: Instant, sample: LimitSample) {
        self.record_endpoint_limit_sample(now, sample, None);
    }

    /// As [`record_limit_sample`](Self::record_limit_sample), for an attempt on `endpoint`:
    /// with a limit per endpoint, that endpoint's limit takes it.
    pub fn record_endpoint_limit_sample(
        &mut self,
        now: Instant,
        sample: LimitSample,
        endpoint: Option<crate::pool::EndpointId>,
    ) {
        if self.pool.has_limits() {
            let waiting = self.concurrency.as_ref().map_or(0, |c| c.waiting());
            if let Some(id) = endpoint {
                if let Some(change) = self.pool.record_limit(now, id, sample, waiting) {
                    if self.limit_changes.len() >= 64 {
                        self.limit_changes.pop_front();
                    }
                    self.limit_changes.push_back(change);
                }
            }
            self.sync_pool_limit();
            return;
        }
        let (Some(a), Some(c)) = (self.adaptive.as_mut(), self.concurrency.as_mut()) else {
            return;
        };
        let load = Load {
            in_flight: c.in_flight(),
            waiting: c.waiting(),
        };
        if let Some(change) = a.record(now, sample, load) {
            if self.limit_changes.len() >= 64 {
                self.limit_changes.pop_front();
            }
            self.limit_changes.push_back(change);
        }
        // Drained by the shared queue above.
        while a.poll_change().is_some() {}
        c.set_max(a.limit());
    }

    /// With a limit per endpoint: the client's limit is their sum over the endpoints in
    /// rotation (an ejection takes its share away, a readmission gives it back).
    pub(crate) fn sync_pool_limit(&mut self) {
        if let (Some(total), Some(c)) = (self.pool.total_limit(), self.concurrency.as_mut()) {
            if c.max() != total {
                c.set_max(total);
            }
        }
    }

    /// Lets the adaptive limit see the time pass without a sample (a probe due or past its
    /// timeout). Transports need not call it: every sample does the same.
    pub fn tick_limit(&mut self, now: Instant) {
        let (Some(a), Some(c)) = (self.adaptive.as_mut(), self.concurrency.as_mut()) else {
            return;
        };
        let load = Load {
            in_flight: c.in_flight(),
            waiting: c.waiting(),
        };
        if let Some(change) = a.tick(now, load) {
            if self.limit_changes.len() >= 64 {
                self.limit_changes.pop_front();
            }
            self.limit_changes.push_back(change);
        }
        while a.poll_change().is_some() {}
        c.set_max(a.limit());
    }
}
