//! The call driver: one state machine per call that composes request building, the decoders,
//! retries, the retry budget, the circuit breaker, the limits, the endpoint pool, hedging and
//! every timeout. A transport only performs the [`Action`]s it hands out and reports back
//! [`Event`]s; the whole contract is in [`contract`] (one short file).
//!
//! ```text
//!  Call::new
//!     │
//!   Start ──────────────── the request cannot be built ─────────────────────┐
//!     ▼                                                                     │
//!   WaitPermit ◀─┐ Wait { waiter } until its turn (PermitReleased)          │  admit.rs
//!     │ a slot ──┘ (first come, first served)                               │
//!     ▼                                                                     │
//!   Admit ───▶ RateWait ── Wait { until } ──┐  the server's quota, the      │  admit.rs
//!     ▲  ◀──────────────────────────────────┘  token and request rates     │
//!     │     the breaker's permit (refused ────────────────────────────────▶┤
//!     │        ▼                                                            │
//!     │     Route ── Send(Attempt), and Send(HealthProbe) beside it when    │  route.rs
//!     │        │     an ejected endpoint's probe is due                     │
//!     │        ▼                                                            │
//!     │     Exchanging ── hedge timer ──▶ Send(Hedge)                       │  route.rs
//!     │        │ an exchange's first event: it commits, the others close;   │
//!     │        │ Emit … the terminal event, or a JSON body read ───────────▶┤  exchange.rs
//!     │        │ every exchange failed before output                        │
//!     │        ▼                                                            │
//!     └──── Backoff ◀── retry ── Failed ── give up ────────────────────────▶┤  settle.rs
//!           Wait { until }                                                  ▼
//!                                             Finished (sticky: Done(result) forever)
//! ```
//!
//! One file per phase: `admit.rs` (a slot, the rate limits, the breaker),
//! `route.rs` (the endpoint, a health probe, the hedge), `exchange.rs` (one request and its
//! answer: head, body, decoder, deadlines), `settle.rs` (how an exchange ends — from the
//! failure table in one place — retry or give up, the end), `resume.rs` (a cut Responses
//! stream continued where it stopped). What a call owes the client's
//! shared state is [`Owed`]; [`Shared`] pays it.
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
//! let shared = std::sync::Mutex::new(Shared::new(&config, vllm_client_core::os_entropy()));
//! let spec = CallSpec::get(Operation::Models);
//! let mut call = Call::new(&config, spec, Instant::now(), &mut shared.lock().unwrap());
//! loop {
//!     // The lock is taken only when the call owes or needs the shared state.
//!     match call.poll_with(Instant::now(), || shared.lock().unwrap()) {
//!         Action::Send { attempt, request, .. } => {
//!             // Start sending `request` (a task or a thread per attempt), then poll again.
//!         }
//!         Action::ReadBody { attempt, .. } => { /* start reading a chunk, poll again */ }
//!         Action::Close { attempt } => { /* drop what you hold for `attempt` */ }
//!         Action::Wait { until, waiter, .. } => {
//!             // Block until a started operation completes, `waiter` is woken or `until`
//!             // passes; report what happened, e.g.:
//!             let head = ResponseHead::new(http::StatusCode::OK, http::HeaderMap::new(), SystemTime::now());
//!             # let attempt = call.attempt();
//!             call.handle(Instant::now(), Event::Response { attempt, head });
//!         }
//!         Action::Emit(event) => println!("{event:?}"),
//!         Action::Done(result) => { println!("{result:?}"); break; }
//!     }
//!     // After the lock was released: wake the calls whose turn for a slot came.
//!     while let Some(waiter) = shared.lock().unwrap().poll_wake() { let _ = waiter; }
//! }
//! ```
//!
//! # Observations
//!
//! What the call does — limiter waits, attempts with their status and error, the first data
//! of a stream, timers that fire, retries, hedges, the outcome — is queued as typed
//! [`Observation`]s: drain [`poll_observation`](Call::poll_observation) after each step (the
//! queue is bounded). [`meta`](Call::meta) says what the call is (operation, model, server)
//! and [`response_info`](Call::response_info) what the server said (model, finish reasons,
//! usage). See [`observe`]. The core logs nothing itself.
//!
//! Rules the driver keeps, so that transports need not:
//! - a stream is never retried once any of its events was emitted (a retry restarts the
//!   generation, so the caller would see text twice); with a hedge, the first exchange to
//!   hand out an event wins and the other is closed before any of its events is seen; the
//!   exceptions are a resumable Responses stream, continued after its last numbered event,
//!   and, with `continue_cut_chats`, a chat stream continued from the text it handed out
//!   ([`Purpose::Resume`], see `resume.rs` and `continuation.rs`): neither hands out
//!   anything twice;
//! - a stream's `Done(Ok)` always follows its terminal event;
//! - no deadline it hands out lies past the call's overall deadline;
//! - a `now` earlier than one already seen is taken as the latest one;
//! - after `Done`, every poll returns `Done` with the same result, and events change nothing;
//! - events of an attempt that is no longer current are ignored;
//! - a call dropped by its caller must be [`cancel`](Call::cancel)led, which releases its
//!   concurrency slot and breaker probe exactly once;
//! - what a call owes the shared state is paid before its next action that needs no shared
//!   state: a slot is released before a stream's terminal event is handed out;
//! - before a stream's first data event only the first-token timer (when set), the attempt
//!   timer and the overall deadline run; the idle timer counts between data events;
//! - a 2xx `application/json` answer to a stream request is turned into the events a stream
//!   would have carried; any other non-event-stream 2xx body is a non-retried `Decode` error;
//! - a request the transport refuses to send ([`TransportErrorKind::Rejected`]) ends the call
//!   with `InvalidRequest`: never retried, never counted against the server;
//! - with several endpoints ([`crate::pool`]) each attempt is routed before its `Send`: the
//!   request already carries its endpoint's URL, key and headers, and a retry before the
//!   first event fails over to an endpoint the call has not tried.

mod admit;
mod body;
mod continuation;
pub mod contract;
mod exchange;
pub mod observe;
mod owed;
mod report;
mod resume;
mod route;
mod settle;
mod shared;
mod spec;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire;

pub use contract::{
    error_chain, Action, AttemptId, Event, Purpose, ResponseHead, TransportErrorKind, WaitReason,
};
pub use observe::{CallMeta, HedgeEvent, Observation, ResponseInfo};
pub use owed::Owed;
pub use report::{CallReport, RetryRecord};
pub use shared::{ConcurrencySnapshot, Shared};
pub use spec::CallSpec;

use std::collections::VecDeque;
use std::ops::DerefMut;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use smallvec::SmallVec;

use self::exchange::{Exchange, Io};
use self::observe::Observer;
use self::route::HedgePlan;
use crate::config::{ClientConfig, PolicyConfig};
use crate::error::VllmError;
use crate::policy::{BreakerPermit, ConcurrencyPermit, Failure, Rng, WaiterId};
use crate::request::{Operation, Template};
use crate::stream::StreamKind;

/// Where a call is (see the diagram in the [module docs](self)).
#[derive(Debug)]
enum Phase {
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
    Backoff {
        until: Instant,
    },
    /// Exchanges in flight (or ended, their events waiting to be emitted).
    Exchanging,
    /// Every exchange failed before output; the retry decision needs the shared state.
    Failed(Box<Failed>),
    Finished,
}

/// What [`Phase::Failed`] holds (boxed: rare, and a call's size is paid on every event).
#[derive(Debug)]
struct Failed {
    failure: Failure,
    error: VllmError,
    at: Instant,
    received_at: SystemTime,
}

/// One call: see the [module docs](self).
// `repr(C)`: fields stay in the order written. What every streamed chunk reads comes first, in
// a few adjacent cache lines — the small fields, then the exchange (inline: a call usually has
// one), what it owes and its observations: with a thousand open streams a call is cold when
// its next chunk arrives, and each line it touches is a cache miss.
#[derive(Debug)]
#[repr(C)]
pub struct Call {
    // --- read per chunk ---
    phase: Phase,
    last_now: Instant,
    /// Attempts to close, for the transport.
    closes: VecDeque<AttemptId>,
    /// Events of a cut exchange not yet handed out: they go first.
    carry: VecDeque<crate::event::StreamEvent>,
    /// A request routed beside the attempt (a health probe), sent at the next poll.
    queued: Option<Box<Action>>,
    policy: Arc<PolicyConfig>,
    deadline: Option<Instant>,
    hedge: HedgePlan,
    /// The exchange whose events reach the caller (the commit point).
    committed: Option<AttemptId>,
    stream: Option<StreamKind>,
    /// Set when the call's turn for a slot came (the next poll claims it).
    woken: bool,
    output_started: bool,
    terminal_emitted: bool,
    /// Whether the caller dropped the call.
    cancelled: bool,
    /// Whether the response's model is known (`obs.response.model` is set), so that a chunk
    /// does not read the observations to ask.
    model_seen: bool,
    exchanges: SmallVec<[Exchange; 1]>,
    /// What the call owes the shared state (its head, read per poll, first).
    owed: owed::OwedQueue,
    /// Its queue of observations (first) is drained after every poll.
    obs: Observer,
    // --- read per attempt or at the end ---
    operation: Operation,
    /// Built once for the client's first endpoint; each attempt's copy goes to its own.
    request: Result<Template, VllmError>,
    affinity: Option<u64>,
    rng: Rng,
    /// Requests sent, health probes included (each has its own [`AttemptId`]).
    sends: u32,
    /// Attempts sent (retries included; hedges and probes not).
    attempts: u32,
    previous_delay: Duration,
    last_error: Option<VllmError>,
    /// The breaker permit taken for the next attempt, between admission and routing.
    breaker_permit: Option<BreakerPermit>,
    /// The call's concurrency slot.
    slot: Option<ConcurrencyPermit>,
    result: Option<Result<Bytes, VllmError>>,
    report: CallReport,
    meta: CallMeta,
    /// The token estimate charged to the token rate limit, until it is corrected.
    tokens_charged: Option<u64>,
    /// Whether a cut stream of this call may be resumed ([`resume`]).
    resumable: bool,
    /// The cut stream being resumed.
    resume: Option<Box<resume::Resume>>,
    /// A chat stream that may be continued on another server after a cut ([`continuation`]).
    continuing: Option<Box<continuation::Continuing>>,
}

impl Call {
    /// A call described by `spec`, starting at `now`, for a client with `config` whose shared
    /// state is `shared`.
    pub fn new(config: &ClientConfig, spec: CallSpec, now: Instant, shared: &mut Shared) -> Call {
        let affinity = spec.affinity.or_else(|| {
            let derive = config.policy.pool.routing.affinity_from_prefix;
            match &spec.body {
                Ok(Some(body)) if derive => crate::pool::prefix_key(body),
                _ => None,
            }
        });
        let request = if let Some(e) = shared.invalid() {
            Err(e.clone())
        } else if config.policy.max_concurrency == Some(0)
            && config.policy.auto_concurrency.is_none()
        {
            // Would wait forever (or until the deadline) for a slot that can never exist.
            Err(VllmError::InvalidRequest(
                "max_concurrency(0) can never admit a call; use at least 1".into(),
            ))
        } else {
            let base = shared.parsed_base(config.request.first_url());
            spec.build_template_on(&config.request, base, || {
                shared.client_headers(&config.request)
            })
        };
        let meta = CallMeta::new(
            spec.operation,
            spec.json_body(),
            request.as_ref().ok().map(Template::request),
        )
        .with_providers(&config.request);
        let policy = match shared.shared_policy(&config.policy) {
            Some(policy) if spec.options.is_empty() => policy,
            _ => Arc::new(config.policy.with_options(&spec.options, now)),
        };
        let resumable = spec.operation == Operation::Responses
            && spec.stream == Some(StreamKind::Responses)
            && policy.resume.applies(spec.json_body());
        let continuing = (policy.continue_chats
            && spec.operation == Operation::ChatCompletions
            && spec.stream == Some(StreamKind::Chat)
            && continuation::eligible(spec.json_body()))
        .then(Box::default);
        let deadline = policy.timeouts.deadline_from(now);
        let hedge = match (policy.pool.hedge, spec.stream) {
            (Some(cfg), Some(_)) => HedgePlan {
                delay: shared.hedge_delay(&cfg),
                ..HedgePlan::default()
            },
            _ => HedgePlan::default(),
        };
        Call {
            operation: spec.operation,
            request,
            affinity,
            stream: spec.stream,
            rng: Rng::new(shared.next_seed()),
            last_now: now,
            deadline,
            phase: Phase::Start,
            woken: false,
            exchanges: SmallVec::new(),
            sends: 0,
            attempts: 0,
            previous_delay: Duration::ZERO,
            last_error: None,
            breaker_permit: None,
            slot: None,
            hedge,
            committed: None,
            output_started: false,
            terminal_emitted: false,
            closes: VecDeque::new(),
            queued: None,
            result: None,
            report: CallReport::default(),
            owed: owed::OwedQueue::default(),
            meta,
            obs: Observer::new(now),
            tokens_charged: None,
            cancelled: false,
            model_seen: false,
            resumable,
            resume: None,
            continuing,
            carry: VecDeque::new(),
            policy,
        }
    }

    // --- getters ---------------------------------------------------------------------------

    /// What happened so far: attempts, retries and their causes, which timer fired.
    pub fn report(&self) -> &CallReport {
        &self.report
    }

    /// Whether the call is over.
    #[inline]
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
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
    /// `poll` and `handle`; the queue is bounded.
    #[inline]
    pub fn poll_observation(&mut self) -> Option<Observation> {
        self.obs.pop()
    }

    /// Whether [`poll_observation`](Self::poll_observation) has something.
    #[inline]
    pub fn has_observations(&self) -> bool {
        self.obs.has_queued()
    }

    /// The most recent request sent (0 before the first).
    pub fn attempt(&self) -> AttemptId {
        AttemptId(self.sends)
    }

    /// The requests in flight: sent and not closed.
    pub fn in_flight(&self) -> impl Iterator<Item = (AttemptId, Purpose)> + '_ {
        self.exchanges
            .iter()
            .filter(|e| e.io != Io::Ended)
            .map(|e| (e.id, e.purpose))
    }

    /// Whether the next [`poll`](Self::poll) needs the shared state: the call owes it
    /// something (a breaker outcome, a released slot, a budget reward) or must ask it (for
    /// admission, a retry decision, a hedge). [`poll_local`](Self::poll_local) answers `None`
    /// exactly then.
    #[inline]
    pub fn needs_shared(&self) -> bool {
        if !self.owed.is_empty() || self.hedge_due(self.last_now) {
            return true;
        }
        match self.phase {
            Phase::Start | Phase::Admit | Phase::Failed(_) => true,
            Phase::WaitPermit { waiter } => waiter.is_none() || self.woken,
            Phase::RateWait { until, .. } | Phase::Backoff { until } => self.last_now >= until,
            Phase::Exchanging | Phase::Finished => false,
        }
    }

    /// Whether the poll after the [`Action::ReadBody`] just returned would be
    /// `Wait { until: <that ReadBody's deadline>, waiter: None, reason: WaitReason::Exchange }`:
    /// the read is the call's one exchange and nothing else is queued, owed or due (no hedge
    /// timer). A loop may then block at once instead of polling for that `Wait` — one poll
    /// fewer per chunk of a stream (rule 12 of the [`contract`]). Ask it only right after a
    /// `ReadBody`; what the loop reports next goes through [`handle`](Self::handle) as usual.
    #[inline]
    pub fn waits_after_read(&self) -> bool {
        let [ex] = self.exchanges.as_slice() else {
            return false;
        };
        ex.io == Io::Reading
            && ex.events.is_empty()
            && matches!(self.phase, Phase::Exchanging)
            && self.closes.is_empty()
            && self.queued.is_none()
            && self.carry.is_empty()
            && self.owed.is_empty()
            && (self.hedge.at.is_none() || self.hedge.decided)
    }

    // --- poll ------------------------------------------------------------------------------

    /// What to do next, taking the shared state only when the call needs it: `lock` is called
    /// at most once, and not at all while the call reads and emits a body. This is the loop's
    /// one entry point (rule 9 of the [`contract`]).
    #[inline]
    pub fn poll_with<G, L>(&mut self, now: Instant, lock: L) -> Action
    where
        G: DerefMut<Target = Shared>,
        L: FnOnce() -> G,
    {
        let Some(action) = self.poll_local(now) else {
            return self.poll(now, &mut lock());
        };
        // Emitting a stream's terminal event ends the call: its slot goes back before the
        // caller sees the event.
        if !self.owed.is_empty() {
            self.pay(&mut lock());
        }
        action
    }

    /// What to do next, if it needs no shared state (reading and emitting a body, closing,
    /// waiting for an exchange or a timer, the end once nothing is owed). `None`: call
    /// [`poll`](Self::poll) with the shared state.
    #[inline]
    pub fn poll_local(&mut self, now: Instant) -> Option<Action> {
        self.observe(now);
        if self.needs_shared() {
            return None;
        }
        Some(self.next_local())
    }

    /// What to do next, with the shared state: pays what the call owes it, then goes on.
    pub fn poll(&mut self, now: Instant, shared: &mut Shared) -> Action {
        let now = self.observe(now);
        // Bounded: every step either returns or moves the call to a later phase; Admit →
        // RateWait and Backoff → Admit only advance when time has passed.
        for _ in 0..32 {
            self.pay(shared);
            // What is over is closed before anything new starts.
            if let Some(attempt) = self.closes.pop_front() {
                return Action::Close { attempt };
            }
            if let Some(action) = self.queued.take() {
                return *action;
            }
            if self.hedge_due(now) {
                if let Some(action) = self.try_hedge(now, shared) {
                    return action;
                }
                continue;
            }
            let action = match self.phase {
                Phase::Start => {
                    if let Err(e) = &self.request {
                        let e = e.clone();
                        self.finish(now, Err(e));
                        continue;
                    }
                    self.phase = Phase::WaitPermit { waiter: None };
                    continue;
                }
                Phase::WaitPermit { waiter } if waiter.is_none() || self.woken => {
                    self.wait_for_slot(now, shared)
                }
                Phase::Admit => self.admit(now, shared),
                Phase::RateWait { until, .. } | Phase::Backoff { until } if now >= until => {
                    self.phase = Phase::Admit;
                    continue;
                }
                Phase::Failed(_) => {
                    let Phase::Failed(f) = std::mem::replace(&mut self.phase, Phase::Exchanging)
                    else {
                        continue;
                    };
                    let Failed {
                        failure,
                        error,
                        at,
                        received_at,
                    } = *f;
                    self.decide(at, failure, error, received_at, shared);
                    continue;
                }
                _ => {
                    let action = self.next_local();
                    self.pay(shared);
                    return action;
                }
            };
            match action {
                Some(action) => {
                    self.pay(shared);
                    return action;
                }
                None => continue,
            }
        }
        // Unreachable in practice (each step returns within a few); never spin.
        self.finish(
            now,
            Err(VllmError::Misuse("the driver made no progress".into())),
        );
        self.pay(shared);
        self.done_action()
    }

    /// The next action that needs no shared state: a close, an event, a read, a wait, the end.
    fn next_local(&mut self) -> Action {
        let now = self.last_now;
        if let Some(attempt) = self.closes.pop_front() {
            return Action::Close { attempt };
        }
        if let Some(action) = self.queued.take() {
            return *action;
        }
        if let Some(action) = self.emit(now) {
            return action;
        }
        match self.phase {
            Phase::Finished => return self.done_action(),
            Phase::WaitPermit {
                waiter: Some(waiter),
            } => return self.permit_wait(waiter),
            Phase::RateWait { until, server } => {
                let reason = if server {
                    WaitReason::ServerRateLimit
                } else {
                    WaitReason::RateLimit
                };
                return Action::Wait {
                    until: Some(until),
                    waiter: None,
                    reason,
                };
            }
            Phase::Backoff { until } => {
                let reason = match self.report.retries.last() {
                    Some(r) => WaitReason::Backoff(r.clone()),
                    None => WaitReason::RateLimit,
                };
                return Action::Wait {
                    until: Some(until),
                    waiter: None,
                    reason,
                };
            }
            _ => {}
        }
        if let Some(i) = self.exchanges.iter().position(Exchange::wants_read) {
            self.exchanges[i].io = Io::Reading;
            let attempt = self.exchanges[i].id;
            let deadline = self.exchange_deadline(i).map(|(d, _)| d);
            return Action::ReadBody { attempt, deadline };
        }
        let mut until = self
            .exchanges
            .iter()
            .enumerate()
            .filter_map(|(i, _)| self.exchange_deadline(i).map(|(d, _)| d))
            .min();
        if let Some(at) = self.hedge.at.filter(|_| !self.hedge.decided) {
            until = Some(until.map_or(at, |u| u.min(at)));
        }
        if until.is_none()
            && !self
                .exchanges
                .iter()
                .any(|e| matches!(e.io, Io::Sending | Io::Reading))
        {
            // Nothing in flight and nothing to wait for: a state the driver never reaches;
            // end clearly instead of waiting forever.
            self.finish(
                now,
                Err(VllmError::Misuse(
                    "the driver has nothing to wait for".into(),
                )),
            );
            return self.done_action();
        }
        Action::Wait {
            until,
            waiter: None,
            reason: WaitReason::Exchange,
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

    /// Pays everything the call owes the shared state.
    fn pay(&mut self, shared: &mut Shared) {
        for owed in self.owed.drain() {
            shared.apply(owed);
        }
    }

    // --- handle ----------------------------------------------------------------------------

    /// Reports what happened. Never needs the shared state: what the call then owes it is
    /// paid at the next poll. This is where body bytes are decoded.
    pub fn handle(&mut self, now: Instant, event: Event) {
        let now = self.observe(now);
        if matches!(self.phase, Phase::Finished) {
            return;
        }
        let find = |call: &Call, attempt: AttemptId, io: &[Io]| {
            call.exchanges
                .iter()
                .position(|e| e.id == attempt && io.contains(&e.io))
        };
        match event {
            Event::Timeout => self.on_timeout(now),
            Event::PermitReleased => {
                if matches!(self.phase, Phase::WaitPermit { .. }) {
                    self.woken = true;
                }
            }
            Event::Response { attempt, head } => {
                if let Some(i) = find(self, attempt, &[Io::Sending]) {
                    self.on_head(i, now, head);
                }
            }
            Event::Chunk { attempt, bytes } => {
                if let Some(i) = find(self, attempt, &[Io::Reading]) {
                    self.on_chunk(i, now, &bytes);
                }
            }
            Event::BodyEnd { attempt } => {
                if let Some(i) = find(self, attempt, &[Io::Reading]) {
                    self.on_body_end(i, now);
                }
            }
            Event::TransportError {
                attempt,
                kind,
                message,
                source,
            } => {
                if let Some(i) = find(self, attempt, &[Io::Sending, Io::Reading]) {
                    self.on_transport_error(i, now, kind, message, source);
                }
            }
        }
    }

    /// The caller dropped the call: release its slot and probe, record nothing against the
    /// server. Idempotent.
    pub fn cancel(&mut self, now: Instant, shared: &mut Shared) {
        let now = self.observe(now);
        self.cancelled = true;
        if !matches!(self.phase, Phase::Finished) {
            self.finish(now, Err(VllmError::Cancelled));
        }
        self.closes.clear();
        self.pay(shared);
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
}
