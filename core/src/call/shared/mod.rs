//! [`Shared`]: the state every call of a client shares — retry budget, circuit breakers, rate
//! and concurrency limits, the endpoint pool, the hedging state, and the source of per-call
//! jitter seeds.
//!
//! It is a plain struct passed to the driver by `&mut`: an adapter keeps it in a mutex and
//! never holds that mutex across an await or a blocking read. Calls talk to it in two ways
//! only: what they owe it ([`Owed`], paid by [`apply`](Shared::apply)), and the questions they
//! ask it before they act (a slot, a rate-limit slot, a breaker permit, an endpoint, the retry
//! budget) — the methods in `ask.rs`. It is configured once, from the
//! client's configuration, when the client is built.

mod ask;
mod fleet;

pub(crate) use ask::{Destination, ProbeGrant, Routed};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::owed::Owed;
use crate::config::{BreakerScope, ClientConfig, PolicyConfig};
use crate::policy::hedge::HedgeState;
use crate::policy::{
    AdaptiveConfig, AdaptiveLimit, AdaptiveSnapshot, BreakerConfig, BreakerState, CircuitBreaker,
    ConcurrencyLimiter, LimitChange, LimitSample, Load, RateLimiter, RetryBudget, Rng,
    TokenRateLimiter, Transition,
};
use crate::pool::{EndpointChange, EndpointId, EndpointStatus, Pool};
use crate::request::Operation;

/// Distinguishes the adaptive limiter's jitter stream from the calls' seeds.
const ADAPTIVE_SEED_SALT: u64 = 0xADA9_71FE_C0DE_0012;

/// The most queued transitions and limit changes kept for logging (older ones are dropped).
const MAX_QUEUED: usize = 64;

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

/// State shared by all calls of one client.
#[derive(Debug)]
pub struct Shared {
    budget: Option<RetryBudget>,
    breaker: Option<CircuitBreaker>,
    operation_breakers: HashMap<Operation, CircuitBreaker>,
    /// The configuration of a breaker per operation (made on first use).
    breaker_config: Option<BreakerConfig>,
    scope: BreakerScope,
    rate: Option<RateLimiter>,
    tokens: Option<TokenRateLimiter>,
    concurrency: Option<ConcurrencyLimiter>,
    /// The adaptive limit that sets `concurrency`'s limit, when on (and not per endpoint).
    adaptive: Option<AdaptiveLimit>,
    limit_changes: VecDeque<LimitChange>,
    /// Until when the server said its quota is spent (its rate-limit headers).
    server_gate: Option<Instant>,
    /// The client's endpoints.
    pool: Pool,
    /// The adaptive limit's configuration and seed, when on (an endpoint list set at run
    /// time may turn a client-wide limit into one per endpoint).
    auto: Option<(AdaptiveConfig, u64)>,
    /// DNS discovery of the endpoint list, when on.
    discovery: Option<crate::pool::Discovery>,
    /// Recent first-token times and the bucket that bounds hedges.
    hedge: HedgeState,
    seeds: Rng,
    transitions: VecDeque<(Option<Operation>, Transition)>,
    /// The client's policy, shared by its calls that have no options of their own (a call
    /// keeps a pointer, not a 700-byte copy).
    policy: Arc<PolicyConfig>,
}

impl Shared {
    /// The shared state of a client with `config`. `entropy` seeds the jitter when the policy
    /// has no seed of its own (adapters pass a value from the OS, so that processes do not
    /// retry in lockstep).
    pub fn new(config: &ClientConfig, entropy: u64) -> Self {
        let policy = &config.policy;
        let breaker = match policy.breaker_scope {
            BreakerScope::Client => policy.breaker.map(CircuitBreaker::new),
            BreakerScope::PerOperation => None,
        };
        let seed = policy.seed.unwrap_or(entropy);
        let mut seeds = Rng::new(seed);
        let mut adaptive = policy
            .auto_concurrency
            .map(|c| AdaptiveLimit::new(c, seed ^ ADAPTIVE_SEED_SALT));
        let pool_seed = seeds.next_u64();
        let mut pool = Pool::new(&config.request, policy.pool, pool_seed);
        // Several endpoints with an adaptive limit: one limit per endpoint, and the client's is
        // their sum, bounded by the pooled limit (`policy::adaptive::pooled`).
        if let Some(auto) = policy.auto_concurrency {
            if pool.with_adaptive_limits(auto, pool_seed) {
                adaptive = None;
            }
        }
        let concurrency = match (&adaptive, pool.total_limit()) {
            (Some(a), _) => Some(ConcurrencyLimiter::new(a.limit())),
            (None, Some(total)) => Some(ConcurrencyLimiter::new(total)),
            (None, None) => policy.max_concurrency.map(ConcurrencyLimiter::new),
        };
        Shared {
            budget: policy.budget.map(RetryBudget::new),
            breaker,
            operation_breakers: HashMap::new(),
            breaker_config: policy.breaker,
            scope: policy.breaker_scope,
            rate: policy
                .rate_limit
                .map(|r| RateLimiter::new(r.requests, r.per, r.burst)),
            tokens: policy.token_rate_limit.map(TokenRateLimiter::per_minute),
            concurrency,
            adaptive,
            limit_changes: VecDeque::new(),
            server_gate: None,
            pool,
            auto: policy.auto_concurrency.map(|c| (c, pool_seed)),
            discovery: None,
            hedge: HedgeState::default(),
            seeds,
            transitions: VecDeque::new(),
            policy: Arc::new(policy.clone()),
        }
    }

    /// The client's policy, shared, when `policy` is it (a call of a client derived with
    /// another policy gets `None` and keeps its own).
    pub(crate) fn shared_policy(&self, policy: &PolicyConfig) -> Option<Arc<PolicyConfig>> {
        (*self.policy == *policy).then(|| Arc::clone(&self.policy))
    }

    // --- what calls owe -----------------------------------------------------------------

    /// Pays one thing a call owes (see [`Owed`]). Calls do this themselves whenever they hold
    /// the shared state; it is public so that the vocabulary is, and for tests.
    pub fn apply(&mut self, owed: Owed) {
        match owed {
            Owed::Breaker {
                at,
                operation,
                permit,
                outcome,
            } => {
                if let Some(b) = self.breaker_for(operation) {
                    b.record(at, permit, outcome);
                }
                self.collect_transitions();
            }
            Owed::BudgetReward { at } => {
                if let Some(b) = self.budget.as_mut() {
                    b.on_success(at);
                }
            }
            Owed::Verdict {
                at,
                ticket,
                verdict,
                sample,
            } => {
                self.pool.record(at, ticket, verdict, sample);
                // An ejection or a readmission moves the client's share of the limits.
                self.sync_pool_limit();
            }
            Owed::Release { ticket } => {
                self.pool.release(ticket);
                self.sync_pool_limit();
            }
            Owed::LimitSample {
                at,
                sample,
                endpoint,
            } => self.record_endpoint_limit_sample(at, sample, endpoint),
            Owed::Tokens { at, delta } => {
                if let Some(t) = self.tokens.as_mut() {
                    t.adjust(at, delta);
                }
            }
            Owed::RateGate { until } => {
                self.server_gate = Some(self.server_gate.map_or(until, |g| g.max(until)));
            }
            Owed::FirstToken { ttft } => self.hedge.observe(ttft),
            Owed::LeaveQueue { waiter } => {
                if let Some(c) = self.concurrency.as_mut() {
                    c.leave(waiter);
                }
            }
            Owed::ReleaseSlot { permit } => {
                if let Some(c) = self.concurrency.as_mut() {
                    c.release(permit);
                }
            }
        }
    }

    // --- getters --------------------------------------------------------------------------

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

    /// The next breaker transition (with the operation, for breakers per operation), for
    /// logging.
    pub fn poll_transition(&mut self) -> Option<(Option<Operation>, Transition)> {
        self.collect_transitions();
        self.transitions.pop_front()
    }

    /// The state of the client-wide breaker (or of `operation`'s, per operation).
    pub fn breaker_state(&self, operation: Operation, now: Instant) -> Option<BreakerState> {
        match self.scope {
            BreakerScope::Client => self.breaker.as_ref().map(|b| b.state(now)),
            BreakerScope::PerOperation => self
                .operation_breakers
                .get(&operation)
                .map(|b| b.state(now)),
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
    /// [`Action::Wait`](super::Action::Wait) named it); each hand-over is reported once. Drain
    /// this after every time a call held the shared state.
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

    // --- the adaptive limit -----------------------------------------------------------------

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
        endpoint: Option<EndpointId>,
    ) {
        if self.pool.has_limits() {
            let waiting = self.concurrency.as_ref().map_or(0, |c| c.waiting());
            if let Some(id) = endpoint {
                if let Some(change) = self.pool.record_limit(now, id, sample, waiting) {
                    self.push_limit_change(change);
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
        let change = a.record(now, sample, load);
        // Drained by the shared queue.
        while a.poll_change().is_some() {}
        c.set_max(a.limit());
        if let Some(change) = change {
            self.push_limit_change(change);
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
        let change = a.tick(now, load);
        while a.poll_change().is_some() {}
        c.set_max(a.limit());
        if let Some(change) = change {
            self.push_limit_change(change);
        }
    }

    fn push_limit_change(&mut self, change: LimitChange) {
        if self.limit_changes.len() >= MAX_QUEUED {
            self.limit_changes.pop_front();
        }
        self.limit_changes.push_back(change);
    }

    /// With a limit per endpoint: the client's limit is their sum over the endpoints in
    /// rotation (an ejection takes its share away, a readmission gives it back, slow start
    /// gives it back gradually), plus the calls still running on endpoints out of rotation,
    /// at most the pooled limit (what the client has shown it uses, cut as one limit when its
    /// first tokens queue). A raised limit hands slots to waiters at once.
    pub(super) fn sync_pool_limit(&mut self) {
        if let (Some(total), Some(c)) = (self.pool.total_limit(), self.concurrency.as_mut()) {
            if c.max() != total {
                c.set_max(total);
            }
        }
    }

    // --- breakers ---------------------------------------------------------------------------

    /// The breaker that guards `operation`, if breaking is on.
    pub(super) fn breaker_for(&mut self, operation: Operation) -> Option<&mut CircuitBreaker> {
        match self.scope {
            BreakerScope::Client => self.breaker.as_mut(),
            BreakerScope::PerOperation => {
                let cfg = self.breaker_config?;
                Some(
                    self.operation_breakers
                        .entry(operation)
                        .or_insert_with(|| CircuitBreaker::new(cfg)),
                )
            }
        }
    }

    /// Moves the breakers' transitions into the queue [`poll_transition`](Self::poll_transition)
    /// drains.
    pub(super) fn collect_transitions(&mut self) {
        if let Some(b) = self.breaker.as_mut() {
            while let Some(t) = b.poll_transition() {
                self.transitions.push_back((None, t));
            }
        }
        for (op, b) in self.operation_breakers.iter_mut() {
            while let Some(t) = b.poll_transition() {
                self.transitions.push_back((Some(*op), t));
            }
        }
        while self.transitions.len() > MAX_QUEUED {
            self.transitions.pop_front();
        }
    }

    /// A fresh seed for one call's jitter.
    pub(super) fn next_seed(&mut self) -> u64 {
        self.seeds.next_u64()
    }
}
