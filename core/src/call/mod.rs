//! The call driver: one state machine per call that composes request building, the decoders,
//! retries, the retry budget, the circuit breaker, the limits and every timeout. A transport
//! only performs the [`Action`]s it hands out and reports back [`Event`]s; the whole contract
//! is in [`contract`] (one short file).
//!
//! ```text
//!            ┌───────────── admission ─────────────┐
//!  new ──▶ Start ──▶ (WaitPermit) ──▶ Admit ──▶ (RateWait) ──▶ Send ──▶ AwaitHead
//!                                     ▲                                   │ Response(2xx)
//!                                     │ retry                             ▼
//!                                   Backoff ◀── Failed: policy says ─── ReadBody ──▶ Emit…
//!                                                retry (no output yet)      │
//!                                                                           ▼
//!                                               give up / success ──▶ Finished (sticky)
//! ```
//!
//! # The run loop
//!
//! ```no_run
//! use std::time::{Instant, SystemTime};
//! use vllm_client_core::call::{Action, Call, CallSpec, Event, ResponseHead, Shared};
//! use vllm_client_core::config::ClientConfig;
//! use vllm_client_core::request::Operation;
//!
//! let config = ClientConfig::default();
//! let mut shared = Shared::new(&config.policy, vllm_client_core::os_entropy());
//! let spec = CallSpec::get(Operation::Models);
//! let mut call = Call::new(&config, spec, Instant::now(), &mut shared);
//! loop {
//!     match call.poll(Instant::now(), &mut shared) {
//!         Action::Send { request, .. } => {
//!             // Send `request`; race it against the deadline; then report what happened:
//!             let head = ResponseHead::new(http::StatusCode::OK, http::HeaderMap::new(), SystemTime::now());
//!             call.handle(Instant::now(), Event::Response(head), &mut shared);
//!         }
//!         Action::ReadBody { .. } => {
//!             // Read one chunk, racing the deadline:
//!             call.handle(Instant::now(), Event::BodyEnd, &mut shared);
//!         }
//!         Action::Sleep { until, .. } => {
//!             // Sleep until `until`, then:
//!             call.handle(Instant::now(), Event::Timeout, &mut shared);
//!         }
//!         Action::WaitForPermit { waiter, .. } => {
//!             // Wait until `shared.poll_wake()` names `waiter` (or the deadline), then:
//!             let _ = waiter;
//!             call.handle(Instant::now(), Event::PermitReleased, &mut shared);
//!         }
//!         Action::Emit(event) => println!("{event:?}"),
//!         Action::Done(result) => { println!("{result:?}"); break; }
//!     }
//!     while let Some(waiter) = shared.poll_wake() { /* wake that call */ let _ = waiter; }
//! }
//! ```
//!
//! # Observations
//!
//! What the call does — limiter waits, attempts with their status and error, the first data
//! of a stream, timers that fire, retries, the outcome — is queued as typed
//! [`Observation`]s: drain [`poll_observation`](Call::poll_observation) after each step (the
//! queue is bounded). [`meta`](Call::meta) says what the call is (operation, model, server)
//! and [`response_info`](Call::response_info) what the server said (model, finish reasons,
//! usage). See [`observe`]. The core logs nothing itself.
//!
//! # Without the shared state
//!
//! [`Shared`] is client-wide; a transport keeps it behind a lock. Reading a body needs no
//! shared state: [`handle_local`](Call::handle_local) takes the body events without it (the
//! SSE and JSON decoding happen there), and [`poll_local`](Call::poll_local) answers
//! `ReadBody` and `Emit` without it. What a call owes the shared state (a breaker outcome, a
//! retry-budget deposit, a released slot, a retry decision) is queued in the call and applied
//! by the next [`poll`](Call::poll), [`handle`](Call::handle) or [`flush`](Call::flush) — call
//! `flush` as soon as [`has_effects`](Call::has_effects) says so, so that a slot is released
//! when its stream ends, not when the caller next polls.
//!
//! Rules the driver keeps, so that transports need not:
//! - a stream is never retried once any of its events was emitted (a retry restarts the
//!   generation, so the caller would see text twice);
//! - a stream's `Done(Ok)` always follows its terminal event;
//! - no deadline it hands out lies past the call's overall deadline;
//! - a `now` earlier than one already seen is taken as the latest one;
//! - after `Done`, every poll returns `Done` with the same result, and events change nothing;
//! - events of an attempt that is no longer current are ignored;
//! - a call dropped by its caller must be [`cancel`](Call::cancel)led, which releases its
//!   concurrency slot and breaker probe exactly once;
//! - concurrency slots go first come, first served: after every `poll`, `handle`, `flush` and
//!   `cancel` drain [`Shared::poll_wake`] and wake exactly the calls it names;
//! - before a stream's first data event only the first-token timer (when set), the attempt
//!   timer and the overall deadline run; the idle timer counts between data events;
//! - a 2xx `application/json` answer to a stream request is turned into the events a stream
//!   would have carried; any other non-event-stream 2xx body is a non-retried `Decode` error;
//! - a request the transport refuses to send ([`TransportErrorKind::Rejected`]) ends the call
//!   with `InvalidRequest`: never retried, never counted against the server;
//! - with several endpoints ([`crate::pool`]) each attempt is routed here, before its `Send`:
//!   the request already carries its endpoint's URL, key and headers, and a retry before the
//!   first event fails over to an endpoint the call has not tried. A hedged first token is two
//!   calls raced by the run loop under a [`Hedge`]'s decisions.

mod body;
pub mod contract;
pub mod hedge;
pub mod log;
pub mod observe;
mod report;
mod shared;
mod spec;

pub use contract::{Action, AttemptId, Event, ResponseHead, TransportErrorKind};
pub use hedge::{Hedge, HedgeStep, Leg};
pub use observe::{CallMeta, Observation, ResponseInfo};
pub use report::{CallReport, RetryRecord, SleepReason};
pub use shared::{ConcurrencySnapshot, Shared};
pub use spec::CallSpec;

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::Request;

use self::body::{Body, StreamBody, MAX_ERROR_BODY};
use self::observe::{ErrorType, Limiter, Observer};
use crate::config::{ClientConfig, PolicyConfig};
use crate::error::{ApiError, VllmError};
use crate::event::StreamEvent;
use crate::policy::Verdict;
use crate::policy::{
    earliest_timer, estimate_tokens, parse_retry_after, Admission, BreakerPermit,
    ConcurrencyPermit, Failure, GiveUpReason, LimitSample, LossKind, Outcome, RateLimitSnapshot,
    RateLimited, RetryContext, RetryDecision, Rng, TimeoutKind, WaiterId,
};
use crate::pool::{verdict_of, EndpointId, Ticket};
use crate::request::Operation;
use crate::stream::{StreamDecoder, StreamKind};

#[derive(Debug)]
enum State {
    Start,
    WaitPermit {
        waiter: Option<WaiterId>,
    },
    Admit,
    RateWait {
        until: Instant,
        /// Waiting for the server's announced quota rather than the client's own limiter.
        server: bool,
    },
    AwaitHead {
        deadline: Option<(Instant, TimeoutKind)>,
    },
    ReadBody,
    /// An attempt failed; the retry decision needs the shared state (the budget).
    Failed {
        failure: Failure,
        error: VllmError,
        at: Instant,
    },
    Backoff {
        until: Instant,
    },
    /// Past every limit, after a health probe: route the attempt.
    Route,
    Finished,
}

/// Everything about the current attempt, reset in one place when it starts.
#[derive(Debug)]
struct Attempt {
    id: AttemptId,
    start: Instant,
    head: Option<ResponseHead>,
    body: Option<Body>,
    first_data: Option<Instant>,
    last_activity: Instant,
    breaker_permit: Option<BreakerPermit>,
    /// The endpoint it went to, until the attempt ends.
    ticket: Option<Ticket>,
    /// Whether what it says about its endpoint was recorded (once per attempt).
    judged: bool,
    /// A `GET /health` probe of an endpoint whose ejection is over, not a user attempt.
    health_probe: bool,
    head_at: Option<Instant>,
}

impl Attempt {
    fn new(id: u32, now: Instant) -> Attempt {
        // `id` counts every request sent (health probes included), from 1.
        Attempt {
            id: AttemptId(id),
            start: now,
            head: None,
            body: None,
            first_data: None,
            last_activity: now,
            breaker_permit: None,
            ticket: None,
            judged: false,
            health_probe: false,
            head_at: None,
        }
    }
}

/// What the call owes the shared state, applied at the next point that holds it.
#[derive(Debug, Default)]
struct Effects {
    breaker: Vec<(Instant, BreakerPermit, Outcome)>,
    budget_successes: Vec<Instant>,
    leave: Option<WaiterId>,
    release: Option<ConcurrencyPermit>,
    /// The server said its quota is spent until then.
    rate_gate: Option<Instant>,
    pool: Vec<PoolEffect>,
    /// A stream's time to first token, for the hedge delay.
    first_token: Option<Duration>,
    /// Tokens to charge (> 0) or refund (< 0) to the token rate limit.
    tokens: i64,
    /// Samples for the adaptive concurrency limit (first tokens, losses), with the endpoint
    /// of their attempt.
    limit_samples: Vec<(Instant, LimitSample, Option<EndpointId>)>,
}

/// What an attempt owes its endpoint's state in the pool.
#[derive(Debug)]
enum PoolEffect {
    Record(Instant, Ticket, Verdict, Option<Duration>),
    Release(Ticket),
}

impl Effects {
    fn is_empty(&self) -> bool {
        self.breaker.is_empty()
            && self.budget_successes.is_empty()
            && self.leave.is_none()
            && self.release.is_none()
            && self.rate_gate.is_none()
            && self.pool.is_empty()
            && self.first_token.is_none()
            && self.tokens == 0
            && self.limit_samples.is_empty()
    }
}

/// One call: see the [module docs](self).
#[derive(Debug)]
pub struct Call {
    policy: PolicyConfig,
    operation: Operation,
    /// Built once for the client's first endpoint; each attempt's copy goes to its own.
    request: Result<Request<Bytes>, VllmError>,
    affinity: Option<u64>,
    /// Endpoints this call already sent an attempt to (a retry skips them while it can).
    tried: Vec<EndpointId>,
    /// The backup leg of a hedged first token.
    hedge_leg: bool,
    /// Requests sent, health probes included (each has its own [`AttemptId`]).
    sends: u32,
    stream: Option<StreamKind>,
    state: State,
    rng: Rng,
    last_now: Instant,
    deadline: Option<Instant>,
    attempts: u32,
    previous_delay: Duration,
    output_started: bool,
    terminal_emitted: bool,
    pending: VecDeque<StreamEvent>,
    attempt: Attempt,
    concurrency_permit: Option<ConcurrencyPermit>,
    last_error: Option<VllmError>,
    result: Option<Result<Bytes, VllmError>>,
    report: CallReport,
    effects: Effects,
    meta: CallMeta,
    obs: Observer,
    /// The token estimate charged to the token rate limit, until it is corrected.
    tokens_charged: Option<u64>,
}

impl Call {
    /// A call described by `spec`, starting at `now`.
    pub fn new(config: &ClientConfig, spec: CallSpec, now: Instant, shared: &mut Shared) -> Call {
        shared.configure(config);
        let affinity = spec.affinity.or_else(|| {
            let derive = config.policy.pool.routing.affinity_from_prefix;
            match &spec.body {
                Ok(Some(body)) if derive => crate::pool::prefix_key(body),
                _ => None,
            }
        });
        let request = if let Some(e) = shared.pool.invalid() {
            Err(e.clone())
        } else if config.policy.max_concurrency == Some(0)
            && config.policy.auto_concurrency.is_none()
        {
            // Would wait forever (or until the deadline) for a slot that can never exist.
            Err(VllmError::InvalidRequest(
                "max_concurrency(0) can never admit a call; use at least 1".into(),
            ))
        } else {
            spec.build_request(&config.request)
        };
        let meta = CallMeta::new(spec.operation, spec.json_body(), request.as_ref().ok())
            .with_providers(&config.request);
        let policy = config.policy.with_options(&spec.options, now);
        let deadline = policy.timeouts.deadline_from(now);
        Call {
            operation: spec.operation,
            request,
            affinity,
            tried: Vec::new(),
            hedge_leg: false,
            sends: 0,
            stream: spec.stream,
            state: State::Start,
            rng: Rng::new(shared.next_seed()),
            last_now: now,
            deadline,
            attempts: 0,
            previous_delay: Duration::ZERO,
            output_started: false,
            terminal_emitted: false,
            pending: VecDeque::new(),
            attempt: Attempt::new(0, now),
            concurrency_permit: None,
            last_error: None,
            result: None,
            report: CallReport::default(),
            effects: Effects::default(),
            meta,
            obs: Observer::new(now),
            tokens_charged: None,
            policy,
        }
    }

    // --- getters ---------------------------------------------------------------------------

    /// What happened so far: attempts, retries and their causes, which timer fired.
    pub fn report(&self) -> &CallReport {
        &self.report
    }

    /// Whether the call is over.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Whether any stream event reached the caller (after which nothing is retried).
    pub fn output_started(&self) -> bool {
        self.output_started
    }

    /// Whether the call reads a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// The operation called.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// What the call is: operation, requested model, server (for span names and metrics).
    pub fn meta(&self) -> &CallMeta {
        &self.meta
    }

    /// What the server said about the answer so far: model, finish reasons, usage.
    pub fn response_info(&self) -> &ResponseInfo {
        &self.obs.response
    }

    /// The next thing the call did, oldest first (see [`observe`]). Drain it after each
    /// `poll`, `handle`, `flush` and `cancel`; the queue is bounded.
    pub fn poll_observation(&mut self) -> Option<Observation> {
        self.obs.pop()
    }

    /// The current attempt (0 before the first request is sent).
    pub fn attempt(&self) -> AttemptId {
        self.attempt.id
    }

    /// Whether the call owes the shared state something (a breaker outcome, a budget deposit,
    /// a released slot, a retry decision): [`flush`](Self::flush) it soon.
    pub fn has_effects(&self) -> bool {
        !self.effects.is_empty() || matches!(self.state, State::Failed { .. })
    }

    // --- poll ------------------------------------------------------------------------------

    /// What to do next.
    pub fn poll(&mut self, now: Instant, shared: &mut Shared) -> Action {
        let now = self.observe(now);
        self.apply(shared);
        let action = self.poll_inner(now, shared);
        self.apply(shared);
        action
    }

    /// What to do next, if it needs no shared state: reading the body and emitting its events
    /// (and the end, once nothing is owed). `None`: call [`poll`](Self::poll) with the shared
    /// state.
    pub fn poll_local(&mut self, now: Instant) -> Option<Action> {
        let now = self.observe(now);
        if self.has_effects() {
            return None;
        }
        if let Some(action) = self.emit_pending(now) {
            return Some(action);
        }
        match self.state {
            State::ReadBody => Some(self.read_body_action()),
            State::Finished => Some(self.done_action()),
            _ => None,
        }
    }

    /// Applies what the call owes the shared state (see [`has_effects`](Self::has_effects)).
    pub fn flush(&mut self, now: Instant, shared: &mut Shared) {
        self.observe(now);
        self.apply(shared);
    }

    fn emit_pending(&mut self, now: Instant) -> Option<Action> {
        let ev = self.pending.pop_front()?;
        self.output_started = true;
        self.obs.response.on_event(&ev);
        if let StreamEvent::Error(e) = &ev {
            self.obs
                .finished(now, Some(ErrorType::of(e)), self.attempts);
        }
        if ev.is_terminal() {
            self.terminal_emitted = true;
            self.finish(now, Ok(Bytes::new()));
        }
        Some(Action::Emit(ev))
    }

    fn read_body_action(&self) -> Action {
        Action::ReadBody {
            attempt: self.attempt.id,
            deadline: self.body_deadline().map(|(t, _)| t),
        }
    }

    fn done_action(&self) -> Action {
        let result = match self.result.clone() {
            // A stream ends `Ok` only after its terminal event: anything else is a cut stream.
            Some(Ok(_)) | None if self.stream.is_some() && !self.terminal_emitted => {
                Err(VllmError::Truncated)
            }
            Some(r) => r,
            None => Ok(Bytes::new()),
        };
        Action::Done(result)
    }

    fn poll_inner(&mut self, now: Instant, shared: &mut Shared) -> Action {
        // Bounded: every arm either returns or moves to a later state; Admit → RateWait and
        // Backoff → Admit only advance when time has passed.
        for _ in 0..16 {
            if let Some(action) = self.emit_pending(now) {
                return action;
            }
            match self.state {
                State::Finished => return self.done_action(),
                State::Start => {
                    if let Err(e) = &self.request {
                        let e = e.clone();
                        self.finish(now, Err(e));
                        continue;
                    }
                    self.state = State::WaitPermit { waiter: None };
                }
                State::WaitPermit { waiter } => {
                    let Some(limiter) = shared.concurrency.as_mut() else {
                        self.state = State::Admit;
                        continue;
                    };
                    // First come, first served: a new call queues behind every waiting one; a
                    // waiting call takes only the slot handed to it.
                    let admission = match waiter {
                        None => limiter.acquire(),
                        Some(w) => match limiter.claim(w) {
                            Some(permit) => Admission::Admitted(permit),
                            None => Admission::Queued(w),
                        },
                    };
                    match admission {
                        Admission::Admitted(permit) => {
                            self.obs.admitted(now);
                            self.concurrency_permit = Some(permit);
                            self.state = State::Admit;
                        }
                        Admission::Queued(w) => {
                            if waiter.is_none() {
                                self.obs.waiting(now, Limiter::Concurrency, None);
                            }
                            self.state = State::WaitPermit { waiter: Some(w) };
                            if self.past_deadline(now) {
                                self.report.timeout = Some(TimeoutKind::Deadline);
                                self.finish(now, Err(VllmError::Timeout));
                                continue;
                            }
                            return Action::WaitForPermit {
                                deadline: self.deadline,
                                waiter: w,
                            };
                        }
                    }
                }
                State::Admit => {
                    if let Some(action) = self.admit(now, shared) {
                        return action;
                    }
                }
                State::Route => {
                    if let Some(action) = self.route(now, shared) {
                        return action;
                    }
                }
                State::RateWait { until, .. } | State::Backoff { until } => {
                    if now >= until {
                        self.state = State::Admit;
                    } else {
                        let reason = match self.state {
                            State::RateWait { server: true, .. } => SleepReason::ServerRateLimit,
                            State::RateWait { .. } => SleepReason::RateLimit,
                            _ => self.report.sleep_reason(),
                        };
                        return Action::Sleep { until, reason };
                    }
                }
                State::Failed { .. } => self.apply(shared),
                State::AwaitHead { .. } => {
                    // The transport polled instead of reporting the response: a misuse that
                    // would otherwise hang; end the call with a clear error.
                    self.release_breaker(now, Outcome::Ignored);
                    self.finish(
                        now,
                        Err(VllmError::Misuse(
                            "poll() while a response head was awaited".into(),
                        )),
                    );
                }
                State::ReadBody => return self.read_body_action(),
            }
        }
        // Unreachable in practice (each arm returns within a few steps); never spin.
        self.finish(
            now,
            Err(VllmError::Misuse("the driver made no progress".into())),
        );
        self.done_action()
    }
    /// Rate limit, breaker, then the attempt itself.
    fn admit(&mut self, now: Instant, shared: &mut Shared) -> Option<Action> {
        if self.past_deadline(now) {
            self.report.timeout = Some(TimeoutKind::Deadline);
            let e = self.last_error.take().unwrap_or(VllmError::Timeout);
            self.finish(now, Err(e));
            return None;
        }
        if let Some(gate) = shared.server_gate.filter(|g| *g > now) {
            // The server announced that its quota is spent until `gate`: wait for it instead
            // of earning a 429 — within the deadline and the longest wait a hint may ask for.
            let wait = gate.saturating_duration_since(now);
            let beyond_cap = wait > self.policy.retry.max_retry_after;
            if beyond_cap || self.deadline.is_some_and(|d| gate >= d) {
                let e = match self.last_error.take() {
                    // A retry: the call ends with its last attempt's error, saying why.
                    Some(e) => {
                        self.report.gave_up = Some(if beyond_cap {
                            GiveUpReason::HintBeyondCap { hint: wait }
                        } else {
                            GiveUpReason::HintBeyondDeadline { hint: wait }
                        });
                        e
                    }
                    None => VllmError::RateLimited(format!(
                        "the server's rate limit refills in {wait:?}, past the call's deadline or max_retry_after"
                    )),
                };
                self.finish(now, Err(e));
                return None;
            }
            self.obs.waiting(now, Limiter::ServerRate, Some(gate));
            self.state = State::RateWait {
                until: gate,
                server: true,
            };
            return None;
        }
        if !self.charge_tokens(now, shared) {
            return None;
        }
        if let Some(rate) = shared.rate.as_mut() {
            let checked = rate.check(now, 1);
            if checked.is_err() {
                self.refund_unsent_tokens(now, shared);
            }
            match checked {
                Ok(()) => {}
                Err(RateLimited::Wait { until }) => {
                    if self.deadline.is_some_and(|d| until >= d) {
                        let e = VllmError::RateLimited(format!(
                            "the next slot opens in {:?}, after the call's deadline",
                            until.saturating_duration_since(now)
                        ));
                        self.finish(now, Err(e));
                        return None;
                    }
                    self.obs.waiting(now, Limiter::ClientRate, Some(until));
                    self.state = State::RateWait {
                        until,
                        server: false,
                    };
                    return None;
                }
                Err(RateLimited::Never { cost, burst }) => {
                    let e = VllmError::RateLimited(format!(
                        "a request costing {cost} can never fit a burst of {burst}"
                    ));
                    self.finish(now, Err(e));
                    return None;
                }
            }
        }
        let policy = &self.policy;
        if let Some(breaker) = shared.breaker_for(self.operation, policy) {
            match breaker.try_acquire(now) {
                Ok(permit) => self.attempt.breaker_permit = Some(permit),
                Err(rejected) => {
                    shared.collect_transitions();
                    self.refund_unsent_tokens(now, shared);
                    // A retry the breaker refuses ends the call with the last attempt's error.
                    if self.last_error.is_some() {
                        self.report.gave_up = Some(GiveUpReason::CircuitOpen);
                    }
                    let e = self.last_error.take().unwrap_or(VllmError::CircuitOpen {
                        retry_in: rejected.retry_at.saturating_duration_since(now),
                    });
                    self.finish(now, Err(e));
                    return None;
                }
            }
            shared.collect_transitions();
        }
        self.route(now, shared)
    }

    /// The attempt, past every limit: pick its endpoint (probing it first when its ejection
    /// is over and health probes are on) and send.
    fn route(&mut self, now: Instant, shared: &mut Shared) -> Option<Action> {
        let id = shared
            .pool
            .pick(now, &self.tried, self.affinity)
            .unwrap_or(EndpointId(0));
        if let Some(action) = self.health_probe(now, id, shared) {
            return Some(action);
        }
        let request = match &self.request {
            Ok(template) => shared.pool.request(id, template, self.operation),
            Err(e) => Err(e.clone()),
        };
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                self.release_breaker(now, Outcome::Ignored);
                self.finish(now, Err(e));
                return None;
            }
        };
        let ticket = shared.pool.dispatch(now, id);
        if !self.tried.contains(&id) {
            self.tried.push(id);
        }
        self.attempts += 1;
        self.report.attempts = self.attempts;
        self.report.endpoints.push(id);
        let breaker_permit = self.attempt.breaker_permit.take();
        self.sends = self.sends.saturating_add(1);
        self.attempt = Attempt::new(self.sends, now);
        self.attempt.breaker_permit = breaker_permit;
        self.attempt.ticket = Some(ticket);
        self.obs.attempt_started(now, self.attempts, id);
        let deadline = self.head_deadline();
        self.state = State::AwaitHead { deadline };
        let t = self.policy.timeouts;
        let connect_timeout = t.connect.map(|c| match deadline {
            Some((d, _)) => c.min(d.saturating_duration_since(now)),
            None => c,
        });
        Some(Action::Send {
            attempt: self.attempt.id,
            request,
            deadline: deadline.map(|(d, _)| d),
            connect_timeout,
        })
    }

    /// When `id` is an endpoint whose ejection is over and health probes are on: its
    /// `GET /health`, sent before (and instead of spending) the call's own attempt. The
    /// breaker permit taken for the attempt stays with the call for the attempt that follows.
    fn health_probe(
        &mut self,
        now: Instant,
        id: EndpointId,
        shared: &mut Shared,
    ) -> Option<Action> {
        let timeout = self.policy.pool.ejection.health_probe?;
        if !shared.pool.probe_ready(now, id) {
            return None;
        }
        let template = self.request.as_ref().ok()?;
        let request = shared.pool.health_request(id, template).ok()?;
        let ticket = shared.pool.dispatch(now, id);
        let breaker_permit = self.attempt.breaker_permit.take();
        self.sends = self.sends.saturating_add(1);
        self.attempt = Attempt::new(self.sends, now);
        self.attempt.breaker_permit = breaker_permit;
        self.attempt.ticket = Some(ticket);
        self.attempt.health_probe = true;
        let deadline = crate::policy::clock::saturating_add(now, timeout);
        let deadline = self.deadline.map_or(deadline, |d| d.min(deadline));
        self.state = State::AwaitHead {
            deadline: Some((deadline, TimeoutKind::Attempt)),
        };
        Some(Action::Send {
            attempt: self.attempt.id,
            request,
            deadline: Some(deadline),
            connect_timeout: Some(deadline.saturating_duration_since(now)),
        })
    }

    /// The health probe ended: what it says goes to its endpoint, and the call goes on to
    /// route its own attempt (the response, if any, is dropped unread).
    fn end_health_probe(&mut self, now: Instant, healthy: bool) {
        let verdict = if healthy {
            Verdict::Success
        } else {
            Verdict::Failure { connect: false }
        };
        self.judge(now, verdict, None);
        self.end_attempt();
        self.attempt.head = None;
        self.attempt.body = None;
        if self.past_deadline(now) {
            self.report.timeout = Some(TimeoutKind::Deadline);
            let e = self.last_error.take().unwrap_or(VllmError::Timeout);
            self.release_breaker(now, Outcome::Ignored);
            self.finish(now, Err(e));
        } else {
            // The limits were passed for this attempt (its breaker permit is kept).
            self.state = State::Route;
        }
    }

    /// Charges the call's token estimate to the token rate limit, once, before its first
    /// attempt. `false`: the call now waits for it, or ended.
    fn charge_tokens(&mut self, now: Instant, shared: &mut Shared) -> bool {
        let generates = matches!(
            self.operation,
            Operation::ChatCompletions | Operation::Completions | Operation::Embeddings
        );
        let Some(limiter) = shared.tokens.as_mut() else {
            return true;
        };
        if self.tokens_charged.is_some() || !generates {
            return true;
        }
        let cost = estimate_tokens(self.meta.prompt_chars, self.meta.max_tokens);
        match limiter.check(now, cost) {
            Ok(()) => {
                self.tokens_charged = Some(cost);
                true
            }
            Err(RateLimited::Wait { until }) => {
                if self.deadline.is_some_and(|d| until >= d) {
                    let e = VllmError::RateLimited(format!(
                        "the token rate limit admits {cost} tokens in {:?}, after the call's deadline",
                        until.saturating_duration_since(now)
                    ));
                    self.finish(now, Err(e));
                    return false;
                }
                self.obs.waiting(now, Limiter::TokenRate, Some(until));
                self.state = State::RateWait {
                    until,
                    server: false,
                };
                false
            }
            Err(RateLimited::Never { cost, burst }) => {
                let e = VllmError::RateLimited(format!(
                    "a request estimated at {cost} tokens can never fit a limit of {burst} tokens per minute"
                ));
                self.finish(now, Err(e));
                false
            }
        }
    }

    /// Gives the token estimate back when no attempt of the call was sent.
    fn refund_unsent_tokens(&mut self, now: Instant, shared: &mut Shared) {
        if self.attempts > 0 {
            return;
        }
        if let (Some(cost), Some(limiter)) = (self.tokens_charged.take(), shared.tokens.as_mut()) {
            limiter.adjust(now, -i64::try_from(cost).unwrap_or(i64::MAX));
        }
    }

    // --- handle ----------------------------------------------------------------------------

    /// Reports what happened to the current attempt (or to the sleep or wait in progress).
    pub fn handle(&mut self, now: Instant, event: Event, shared: &mut Shared) {
        self.handle_local(now, event);
        self.apply(shared);
    }

    /// Reports what happened to `attempt`; events of an attempt that is no longer current are
    /// ignored (a late answer to a request the driver already gave up on).
    pub fn handle_attempt(
        &mut self,
        now: Instant,
        attempt: AttemptId,
        event: Event,
        shared: &mut Shared,
    ) {
        if attempt == self.attempt.id {
            self.handle(now, event, shared);
        }
    }

    /// Reports what happened without the shared state: what the call then owes it is queued
    /// (see [`has_effects`](Self::has_effects)). This is where body bytes are decoded.
    pub fn handle_local(&mut self, now: Instant, event: Event) {
        let now = self.observe(now);
        if matches!(self.state, State::Finished | State::Failed { .. }) {
            return;
        }
        match event {
            Event::Timeout => self.on_timeout(now),
            Event::PermitReleased => {}
            Event::Response(head) => {
                if let State::AwaitHead { .. } = self.state {
                    self.on_head(now, head);
                }
            }
            Event::TransportError { kind, message } => {
                self.on_transport_error(now, kind, message, None)
            }
            Event::TransportFailure {
                kind,
                message,
                source,
            } => self.on_transport_error(now, kind, message, Some(source)),
            Event::Chunk(bytes) => {
                if let State::ReadBody = self.state {
                    self.on_chunk(now, &bytes);
                }
            }
            Event::BodyEnd => {
                if let State::ReadBody = self.state {
                    self.on_body_end(now);
                }
            }
        }
    }

    /// The caller dropped the call: release its slot and probe, record nothing against the
    /// server. Idempotent.
    pub fn cancel(&mut self, now: Instant, shared: &mut Shared) {
        let now = self.observe(now);
        if !matches!(self.state, State::Finished) {
            self.release_breaker(now, Outcome::Ignored);
            self.finish(now, Err(VllmError::Cancelled));
        }
        self.apply(shared);
    }

    fn on_transport_error(
        &mut self,
        now: Instant,
        kind: TransportErrorKind,
        message: String,
        source: Option<crate::error::ErrorSource>,
    ) {
        let in_exchange = matches!(self.state, State::AwaitHead { .. } | State::ReadBody);
        if !in_exchange {
            return;
        }
        if self.attempt.health_probe {
            let _ = (kind, message);
            self.end_health_probe(now, false);
            return;
        }
        if let Some(Body::Error(_) | Body::Foreign(..)) = self.attempt.body {
            // The status already answered; a cut error body does not make a 400 retryable:
            // classify by the status with the part that arrived.
            self.on_body_end(now);
            return;
        }
        if kind == TransportErrorKind::Rejected {
            // Nothing reached the server: the caller's request is at fault.
            self.release_breaker(now, Outcome::Ignored);
            self.report.gave_up = Some(GiveUpReason::NotRetryable);
            let e = VllmError::InvalidRequest(format!(
                "the HTTP client refused to send the request: {message}"
            ));
            self.finish(now, Err(e));
            return;
        }
        if let (TransportErrorKind::ConnectTimeout, State::AwaitHead { deadline }) =
            (kind, &self.state)
        {
            // An HTTP client's connect timer clamped to the head deadline fires with it: that
            // is the deadline's timeout (an overall deadline is not retried), however the
            // transport words it.
            if deadline.is_some_and(|(d, _)| now >= d) {
                self.on_timeout(now);
                return;
            }
        }
        let no_head = self.attempt.head.is_none();
        let (failure, error) = match kind {
            TransportErrorKind::Connect if no_head => {
                (Failure::Connect, VllmError::connect(message, source))
            }
            TransportErrorKind::ConnectTimeout if no_head => {
                self.report.timeout = Some(TimeoutKind::Connect);
                self.obs.push(Observation::TimerFired {
                    kind: TimeoutKind::Connect,
                });
                (
                    Failure::Timeout {
                        kind: TimeoutKind::Connect,
                        output_started: false,
                    },
                    VllmError::Timeout,
                )
            }
            // However the transport words it (a reset, an incomplete chunk), a stream whose
            // connection broke before `[DONE]` is a truncated stream.
            _ if matches!(self.attempt.body, Some(Body::Stream(_))) => (
                Failure::Truncated {
                    output_started: self.output_started,
                },
                VllmError::Truncated,
            ),
            _ => (
                Failure::Transport {
                    output_started: self.output_started,
                },
                VllmError::transport(message, source),
            ),
        };
        self.fail(now, failure, error);
    }

    fn on_timeout(&mut self, now: Instant) {
        let fired = match self.state {
            State::AwaitHead { deadline } => deadline.filter(|(d, _)| now >= *d),
            State::ReadBody => self.body_deadline().filter(|(d, _)| now >= *d),
            State::WaitPermit { .. } => {
                if self.past_deadline(now) {
                    self.report.timeout = Some(TimeoutKind::Deadline);
                    self.finish(now, Err(VllmError::Timeout));
                }
                return;
            }
            // Sleeps end in poll(); an early wake is a no-op.
            _ => return,
        };
        let Some((_, kind)) = fired else { return };
        if self.attempt.health_probe {
            // The probe's own timer: the endpoint did not answer in time. (The call's
            // deadline is checked when the call goes on.)
            self.end_health_probe(now, false);
            return;
        }
        self.report.timeout = Some(kind);
        self.obs.push(Observation::TimerFired { kind });
        if let Some(Body::Error(_) | Body::Foreign(..)) = self.attempt.body {
            // As for a cut error body: the status decides, not the slow body.
            self.on_body_end(now);
            return;
        }
        if self.output_started {
            // Mid-stream: the caller gets the error as the stream's last event.
            self.release_breaker(now, Outcome::Failure { ttfb: None });
            self.judge(now, Verdict::Failure { connect: false }, None);
            self.pending
                .push_back(StreamEvent::Error(VllmError::Timeout));
            self.stream_terminal_pending();
            return;
        }
        let failure = Failure::Timeout {
            kind,
            output_started: false,
        };
        self.fail(now, failure, VllmError::Timeout);
    }

    fn on_head(&mut self, now: Instant, head: ResponseHead) {
        if self.attempt.health_probe {
            self.end_health_probe(now, head.status.is_success());
            return;
        }
        self.obs.head(head.status);
        let body = if !head.status.is_success() {
            Body::Error(Vec::new())
        } else if let Some(kind) = self.stream {
            let decoder = Box::new(StreamDecoder::new(kind).with_limits(self.policy.sse_limits));
            match StreamBody::of(&head.headers) {
                StreamBody::EventStream => Body::Stream(decoder),
                StreamBody::Json => Body::Document(decoder, Vec::new()),
                StreamBody::Other(content_type) => Body::Foreign(content_type, Vec::new()),
            }
        } else {
            Body::Json(Vec::new())
        };
        // What the server says about its limits: kept in the report (and in an error), and a
        // spent quota holds the next calls of the client until it refills.
        let rate_limit = RateLimitSnapshot::parse(&head.headers, head.received_at);
        if rate_limit.is_some() {
            self.report.rate_limit = rate_limit;
        }
        if let Some(wait) = rate_limit.and_then(|r| r.wait()) {
            self.effects.rate_gate = Some(crate::policy::clock::saturating_add(now, wait));
        }
        self.attempt.body = Some(body);
        self.attempt.head = Some(head);
        self.attempt.head_at = Some(now);
        self.attempt.last_activity = now;
        self.state = State::ReadBody;
    }

    fn on_chunk(&mut self, now: Instant, bytes: &[u8]) {
        let max_body = self.policy.max_body_bytes;
        match self.attempt.body.as_mut() {
            Some(Body::Json(buf) | Body::Document(_, buf)) => {
                self.attempt.last_activity = now;
                if buf.len().saturating_add(bytes.len()) > max_body {
                    let e = VllmError::decode(
                        format!("the response body exceeds {max_body} bytes"),
                        buf,
                    );
                    let failure = Failure::Decode {
                        output_started: false,
                    };
                    self.fail(now, failure, e);
                    return;
                }
                buf.extend_from_slice(bytes);
            }
            Some(Body::Error(buf) | Body::Foreign(_, buf)) => {
                self.attempt.last_activity = now;
                let room = MAX_ERROR_BODY.saturating_sub(buf.len());
                buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Some(Body::Stream(dec)) => {
                let report = dec.push(bytes);
                if self.obs.response.model.is_none() {
                    self.obs.response.model = dec.model().map(str::to_owned);
                }
                if report.has_data() {
                    self.attempt.last_activity = now;
                    if self.attempt.first_data.is_none() {
                        self.attempt.first_data = Some(now);
                        self.obs.first_chunk(now);
                        // The server is generating: that is the breaker's success signal.
                        let ttfb = now.saturating_duration_since(self.attempt.start);
                        self.release_breaker(now, Outcome::Success { ttfb });
                        self.judge(now, Verdict::Success, Some(ttfb));
                        if !self.hedge_leg && self.policy.pool.hedge.is_some() {
                            self.effects.first_token = Some(ttfb);
                        }
                        self.limit_sample(now, |prompt_bytes| LimitSample::FirstToken {
                            ttft: ttfb,
                            prompt_bytes,
                        });
                    }
                }
                self.drain_decoder(now);
            }
            None => {}
        }
    }

    fn on_body_end(&mut self, now: Instant) {
        let Some(body) = self.attempt.body.take() else {
            return;
        };
        let Some(head) = self.attempt.head.clone() else {
            return;
        };
        match body {
            Body::Json(buf) => {
                if matches!(
                    self.operation,
                    Operation::ChatCompletions | Operation::Completions | Operation::Embeddings
                ) {
                    self.obs.response = ResponseInfo::from_json(&buf);
                }
                let ttfb = self.ttfb();
                self.release_breaker(now, Outcome::Success { ttfb });
                // Time to the head: a non-streamed answer's head comes when it is done.
                let to_head = self
                    .attempt
                    .head_at
                    .map(|h| h.saturating_duration_since(self.attempt.start));
                self.judge(now, Verdict::Success, to_head);
                self.effects.budget_successes.push(now);
                self.finish(now, Ok(Bytes::from(buf)));
            }
            Body::Error(buf) => {
                let hint = parse_retry_after(&head.headers, head.received_at).map(|h| h.delay);
                let api = ApiError::from_response(head.status, &buf)
                    .with_retry_after(hint)
                    .with_rate_limit(RateLimitSnapshot::parse(&head.headers, head.received_at));
                let failure = Failure::Status {
                    status: head.status,
                    headers: head.headers,
                };
                self.fail(now, failure, VllmError::from(api));
            }
            Body::Stream(mut dec) => {
                dec.finish();
                self.attempt.body = Some(Body::Stream(dec));
                self.drain_decoder(now);
            }
            Body::Document(mut dec, buf) => {
                // The server ignored `stream: true`: its whole answer is one document, turned
                // into the events its stream would have carried, so the caller's loop works.
                dec.push_document(&buf);
                self.attempt.first_data = Some(now);
                self.obs.first_chunk(now);
                self.attempt.body = Some(Body::Stream(dec));
                self.drain_decoder(now);
            }
            Body::Foreign(content_type, buf) => {
                let e = VllmError::decode(
                    format!(
                        "a stream was asked for, but the server answered {} with Content-Type {content_type:?}",
                        head.status
                    ),
                    &buf,
                );
                let failure = Failure::Decode {
                    output_started: false,
                };
                self.fail(now, failure, e);
            }
        }
    }

    /// Moves decoded events to the emit queue; a terminal error before any output is an
    /// attempt failure (and may be retried) instead.
    fn drain_decoder(&mut self, now: Instant) {
        loop {
            let Some(Body::Stream(dec)) = self.attempt.body.as_mut() else {
                return;
            };
            let Some(ev) = dec.poll_event() else { return };
            match ev {
                StreamEvent::Error(e) if !self.output_started => {
                    // Nothing reached the caller yet: events decoded but not emitted are
                    // dropped with the attempt, so a retry cannot duplicate them.
                    self.pending.clear();
                    let failure = match &e {
                        VllmError::Truncated => Failure::Truncated {
                            output_started: false,
                        },
                        VllmError::Api(api) => Failure::StreamError {
                            code: api.code.as_deref().and_then(|c| c.parse().ok()),
                            output_started: false,
                        },
                        _ => Failure::Decode {
                            output_started: false,
                        },
                    };
                    self.attempt.body = None;
                    self.fail(now, failure, e);
                    return;
                }
                StreamEvent::Done => {
                    self.effects.budget_successes.push(now);
                    let ttfb = self.ttfb();
                    self.release_breaker(now, Outcome::Success { ttfb });
                    self.judge(now, Verdict::Success, Some(ttfb));
                    self.pending.push_back(StreamEvent::Done);
                    self.stream_terminal_pending();
                    return;
                }
                StreamEvent::Error(e) => {
                    self.release_breaker(now, Outcome::Failure { ttfb: None });
                    self.judge(now, Verdict::Failure { connect: false }, None);
                    self.pending.push_back(StreamEvent::Error(e));
                    self.stream_terminal_pending();
                    return;
                }
                other => self.pending.push_back(other),
            }
        }
    }

    /// A terminal stream event is queued: nothing is read any more; poll emits the queue and
    /// then finishes.
    fn stream_terminal_pending(&mut self) {
        self.state = State::ReadBody;
        self.attempt.body = None;
    }

    /// An attempt failed: its breaker outcome is owed, and the retry decision waits for the
    /// shared state (the retry budget).
    fn fail(&mut self, now: Instant, failure: Failure, error: VllmError) {
        if let Some((kind, hinted)) = loss_of(&failure) {
            self.limit_sample(now, |_| LimitSample::Loss { kind, hinted });
        }
        let ttfb = self.attempt.head.as_ref().map(|_| self.ttfb());
        let outcome = Outcome::of_failure(&failure, ttfb);
        self.release_breaker(now, outcome);
        let verdict = verdict_of(&failure, self.server_hint(now), self.attempt.head.is_some());
        // A server that made the call wait for a timer is at least that slow.
        let sample = match failure {
            Failure::Timeout {
                kind: TimeoutKind::FirstToken | TimeoutKind::Attempt,
                ..
            } => Some(now.saturating_duration_since(self.attempt.start)),
            _ => None,
        };
        self.judge(now, verdict, sample);
        self.end_attempt();
        self.obs.end_attempt(now, Some(ErrorType::of(&error)));
        self.attempt.body = None;
        self.state = State::Failed {
            failure,
            error,
            at: now,
        };
    }

    /// Retry or give up, after a failed attempt.
    fn decide(&mut self, at: Instant, failure: Failure, error: VllmError, shared: &mut Shared) {
        let received_at = self
            .attempt
            .head
            .as_ref()
            .map(|h| h.received_at)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let ctx = RetryContext::new(self.attempts, at, received_at)
            .with_deadline(self.deadline)
            .with_previous_delay(self.previous_delay)
            .with_failover(shared.pool.can_fail_over(at, &self.tried));
        let decision =
            self.policy
                .retry
                .decide(&failure, &ctx, &mut self.rng, shared.budget.as_mut());
        match decision {
            RetryDecision::Retry { delay, hinted } => {
                self.obs.push(Observation::Retry {
                    attempt: self.attempts,
                    cause: ErrorType::of(&error),
                    delay,
                    hinted,
                });
                self.report.retries.push(RetryRecord {
                    attempt: self.attempts,
                    delay,
                    hinted,
                    cause: error.to_string(),
                });
                self.previous_delay = delay;
                self.last_error = Some(error);
                // Events decoded from the failed attempt never reached the caller (a retry
                // happens only before any output); a retry must not emit them later.
                self.pending.clear();
                // Saturate: an accepted huge hint must not wrap to "now" (a hot retry loop).
                self.state = State::Backoff {
                    until: crate::policy::clock::saturating_add(at, delay),
                };
            }
            RetryDecision::GiveUp(reason) => {
                self.report.gave_up = Some(reason);
                if self.output_started {
                    // Part of the stream reached the caller: the failure is its last event,
                    // as for a timeout mid-stream (`Done(Err)` means "failed before output").
                    self.state = State::ReadBody;
                    self.pending.push_back(StreamEvent::Error(error));
                    self.stream_terminal_pending();
                } else {
                    self.state = State::ReadBody;
                    self.finish(at, Err(error));
                }
            }
        }
    }

    fn finish(&mut self, now: Instant, result: Result<Bytes, VllmError>) {
        // A stream's error event already finished the observations, with its error.
        let error = result.as_ref().err().map(ErrorType::of);
        self.obs.finished(now, error, self.attempts);
        // The token estimate, corrected by what the server says the call used.
        if let (Some(charged), Some(usage)) = (self.tokens_charged, &self.obs.response.usage) {
            let used = usage.prompt_tokens.saturating_add(usage.completion_tokens);
            let delta = i128::from(used) - i128::from(charged);
            self.effects.tokens =
                i64::try_from(delta).unwrap_or(if delta > 0 { i64::MAX } else { i64::MIN });
            self.tokens_charged = None;
        }
        // Nothing is emitted after the end: events still queued (a call cancelled between two
        // emits, or a failure before output) are dropped, so a queued terminal event cannot
        // later replace the result.
        self.pending.clear();
        if let State::WaitPermit { waiter: Some(w) } = self.state {
            // Out of the queue; a slot already handed to this call passes on.
            self.effects.leave = Some(w);
        }
        if let Some(permit) = self.concurrency_permit.take() {
            self.effects.release = Some(permit);
        }
        self.end_attempt();
        self.attempt.body = None;
        self.result = Some(result);
        self.state = State::Finished;
    }

    /// Queues a sample for the adaptive concurrency limit (when it is on); `sample` gets the
    /// request body's length, the prompt-size estimate.
    fn limit_sample(&mut self, now: Instant, sample: impl FnOnce(usize) -> LimitSample) {
        if self.policy.auto_concurrency.is_some() {
            let bytes = self.request.as_ref().map_or(0, |r| r.body().len());
            let endpoint = self.attempt.ticket.map(|t| t.id);
            self.effects
                .limit_samples
                .push((now, sample(bytes), endpoint));
        }
    }

    fn release_breaker(&mut self, now: Instant, outcome: Outcome) {
        if let Some(permit) = self.attempt.breaker_permit.take() {
            self.effects.breaker.push((now, permit, outcome));
        }
    }

    /// Records, once per attempt, what it says about its endpoint.
    fn judge(&mut self, now: Instant, verdict: Verdict, sample: Option<Duration>) {
        if let (Some(ticket), false) = (self.attempt.ticket, self.attempt.judged) {
            self.attempt.judged = true;
            self.effects
                .pool
                .push(PoolEffect::Record(now, ticket, verdict, sample));
        }
    }

    /// The attempt no longer occupies its endpoint (an unjudged one says nothing about it).
    fn end_attempt(&mut self) {
        if let Some(ticket) = self.attempt.ticket.take() {
            if !self.attempt.judged {
                self.attempt.judged = true;
                let now = self.last_now;
                self.effects
                    .pool
                    .push(PoolEffect::Record(now, ticket, Verdict::Neutral, None));
            }
            self.effects.pool.push(PoolEffect::Release(ticket));
        }
    }

    /// When the server of the current attempt asked to be called again: its `Retry-After`,
    /// or the reset of a spent rate-limit quota.
    fn server_hint(&self, now: Instant) -> Option<Instant> {
        let head = self.attempt.head.as_ref()?;
        let retry_after = parse_retry_after(&head.headers, head.received_at).map(|h| h.delay);
        let reset =
            RateLimitSnapshot::parse(&head.headers, head.received_at).and_then(|r| r.wait());
        let wait = retry_after.max(reset)?;
        Some(crate::policy::clock::saturating_add(now, wait))
    }

    /// Pays what the call owes the shared state, then takes a pending retry decision.
    fn apply(&mut self, shared: &mut Shared) {
        let effects = std::mem::take(&mut self.effects);
        if !effects.breaker.is_empty() {
            for (at, permit, outcome) in effects.breaker {
                if let Some(b) = shared.breaker_for(self.operation, &self.policy) {
                    b.record(at, permit, outcome);
                }
            }
            shared.collect_transitions();
        }
        if let Some(budget) = shared.budget.as_mut() {
            for at in effects.budget_successes {
                budget.on_success(at);
            }
        }
        if let Some(ttfb) = effects.first_token {
            shared.hedge.observe(ttfb);
        }
        for effect in effects.pool {
            match effect {
                PoolEffect::Record(at, ticket, verdict, sample) => {
                    shared.pool.record(at, ticket, verdict, sample)
                }
                PoolEffect::Release(ticket) => shared.pool.release(ticket),
            }
            // An ejection or a readmission moves the client's share of the limits.
            shared.sync_pool_limit();
        }
        if effects.tokens != 0 {
            if let Some(limiter) = shared.tokens.as_mut() {
                limiter.adjust(self.last_now, effects.tokens);
            }
        }
        for (at, sample, endpoint) in effects.limit_samples {
            shared.record_endpoint_limit_sample(at, sample, endpoint);
        }
        if let Some(gate) = effects.rate_gate {
            shared.server_gate = Some(shared.server_gate.map_or(gate, |g| g.max(gate)));
        }
        if let Some(limiter) = shared.concurrency.as_mut() {
            if let Some(w) = effects.leave {
                limiter.leave(w);
            }
            if let Some(permit) = effects.release {
                limiter.release(permit);
            }
        }
        if let State::Failed { .. } = self.state {
            let State::Failed { failure, error, at } =
                std::mem::replace(&mut self.state, State::ReadBody)
            else {
                return;
            };
            self.decide(at, failure, error, shared);
            // Giving up may have released the slot.
            self.apply(shared);
        }
    }

    // --- time ------------------------------------------------------------------------------

    fn observe(&mut self, now: Instant) -> Instant {
        if now > self.last_now {
            self.last_now = now;
        }
        self.last_now
    }

    fn past_deadline(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    fn ttfb(&self) -> Duration {
        let at = self
            .attempt
            .first_data
            .unwrap_or(self.attempt.last_activity);
        at.saturating_duration_since(self.attempt.start)
    }

    /// The deadline for the response head: attempt, first token (streams), overall.
    fn head_deadline(&self) -> Option<(Instant, TimeoutKind)> {
        let t = &self.policy.timeouts;
        let from = self.attempt.start;
        earliest_timer([
            t.arm(TimeoutKind::Attempt, from, self.deadline),
            self.stream
                .and_then(|_| t.arm(TimeoutKind::FirstToken, from, self.deadline)),
            self.deadline.map(|d| (d, TimeoutKind::Deadline)),
        ])
    }

    /// The deadline for the next chunk.
    ///
    /// Before a stream's first data event only the first-token timer (when set), the attempt
    /// timer and the overall deadline run — never the idle timer: vLLM sends a stream's head at
    /// once and its first token only when the request is scheduled, so a quiet stream before
    /// its first token is *queued*, not stalled. After the first data event, idle counts from
    /// the last data event (keep-alive comments do not reset it). A non-streamed body (and an
    /// error body) is idle-timed from the head and then from each chunk.
    fn body_deadline(&self) -> Option<(Instant, TimeoutKind)> {
        // No body: a terminal event is queued; the next poll emits it. Nothing to wait for.
        let body = self.attempt.body.as_ref()?;
        let t = &self.policy.timeouts;
        let from = self.attempt.start;
        let (first_token, idle) = match (body, self.attempt.first_data) {
            (Body::Stream(_), None) => (t.arm(TimeoutKind::FirstToken, from, self.deadline), None),
            _ => (
                None,
                t.arm(TimeoutKind::Idle, self.attempt.last_activity, self.deadline),
            ),
        };
        earliest_timer([
            t.arm(TimeoutKind::Attempt, from, self.deadline),
            first_token,
            idle,
            self.deadline.map(|d| (d, TimeoutKind::Deadline)),
        ])
    }
}

/// The losses that tell the adaptive concurrency limit the server is overloaded, and whether
/// the server sent a retry hint.
fn loss_of(failure: &Failure) -> Option<(LossKind, bool)> {
    match failure {
        Failure::Status { status, headers } => {
            let kind = match status.as_u16() {
                429 => LossKind::TooManyRequests,
                503 => LossKind::Unavailable,
                _ => return None,
            };
            let hinted = headers.contains_key(http::header::RETRY_AFTER)
                || headers.contains_key("retry-after-ms");
            Some((kind, hinted))
        }
        Failure::Connect
        | Failure::Timeout {
            kind: TimeoutKind::Connect,
            ..
        } => Some((LossKind::Connect, false)),
        Failure::Timeout {
            kind: TimeoutKind::FirstToken,
            ..
        } => Some((LossKind::FirstTokenTimeout, false)),
        _ => None,
    }
}
