//! [`FleetSim`]: replicas of the [`Engine`], clients with their own [`Shared`] state, and a
//! [`Workload`], run in virtual time by driving every [`Call`] like an adapter does.
//!
//! # What the simulator does for each action
//!
//! | action | what happens |
//! |---|---|
//! | `Send` | to the client's replica, or to replica `i` when the URL's host is `replica-<i>` ([`replica_url`]: a client with several endpoints routes each attempt, a hedge, a health probe). Down replica: [`Event::TransportError`] (`Connect`) at once. 503 window: a `503` head with vLLM's error body at once. A health probe (`GET /health`) of a replica that is up: `200` at once. Otherwise the request is [submitted](Engine::submit) to the replica: a stream gets its head (`200`, `content-type: text/event-stream`) at once, as vLLM sends it; a JSON call gets its head when the engine finishes (`200`, `application/json`), or `400` when the engine rejects it. A replica going down before a JSON head breaks the connection (`TransportError` `Io`). Several exchanges of one call run at once. The continuation of a cut chat stream (`Purpose::Resume`, a body with `"continue_final_message": true`) is submitted with the tokens already generated added to its prompt and its body's `max_tokens`, and its tokens are numbered on from the cut, so that a continued stream's text is the whole `t0 … t<n−1>`. |
//! | `ReadBody` | everything the engine produced for that exchange since the last read, as one chunk: one SSE event `data: {"choices":[{"index":0,"delta":{"content":"t<k> "}}]}` per token (`k` counts the request's tokens from 0); at the end a chunk with `finish_reason: "length"` and `usage`, then `data: [DONE]`, then [`Event::BodyEnd`]. A replica going down mid-stream breaks the connection. |
//! | `Close` | the exchange is dropped; an engine request still in progress is aborted, as a disconnect does. |
//! | `Wait` | the first exchange with something to deliver is answered; otherwise [`Event::Timeout`] at `until`. A wait with a waiter is woken with [`Event::PermitReleased`] (then polled again) whenever another call of the same client released a slot, one after the other in [`WakeOrder`] (default: the order the calls started waiting); a woken call that is not granted just waits again. |
//! | `Emit` | recorded; the first `Content` is the first token. |
//! | `Done` | recorded with the call's [report](vllm_client_core::call::CallReport). |
//!
//! Calls are driven through [`Call::poll_with`], as the adapters drive them: the client's
//! shared state is taken only when the call needs it.
//!
//! Ordering at one virtual instant: first every engine is [settled](Engine::settle) (steps
//! ending then hand out their tokens), then every call due then acts (in the order their
//! wakes were scheduled; arrivals were scheduled first, in workload order), then every engine
//! [advances](Engine::advance) (batches starting then are formed, including requests
//! submitted at that instant).
//!
//! The run is bounded by [`FleetSim::with_max_steps`] driver steps; calls still running then
//! are cancelled and recorded as [`ErrorKind::Unfinished`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use vllm_client_core::call::{
    Action, AttemptId, Call, CallSpec, Event, Purpose, ResponseHead, Shared, TransportErrorKind,
};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::ChangeCause;
use vllm_client_core::policy::WaiterId;
use vllm_client_core::request::Operation;
use vllm_client_core::StreamEvent;
use vllm_client_core::StreamKind;

use super::config::EngineConfig;
use super::model::{Engine, EngineStats};
pub use super::record::{ErrorKind, RequestRecord, ResultKind};
use super::request::{Output, RequestId, RequestSpec};
use super::rng::SplitMix64;
use super::summary::Summary;
pub use super::trace::{ClientSample, EndpointChangeRecord, ReplicaSample, SendRecord};
use super::workload::{Arrival, ClosedLoop, Workload};
use crate::sim::WALL_ORIGIN_SECS;

/// The base URL of replica `i` for a client with several endpoints
/// ([`ClientConfig`]'s `request.endpoints`): an attempt sent to host `replica-<i>` goes to
/// replica `i`, whatever the client's own replica.
pub fn replica_url(i: usize) -> String {
    format!("http://replica-{i}.sim/v1")
}

fn replica_of(uri: &http::Uri) -> Option<usize> {
    uri.host()?
        .strip_prefix("replica-")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The default bound on driver steps per run.
pub const DEFAULT_MAX_STEPS: u64 = 200_000_000;

/// One client: its configuration, the replica it talks to (its one base URL), and the seed of
/// its [`Shared`] state (the jitter, unless the policy has its own seed).
#[derive(Debug, Clone)]
pub struct ClientSetup {
    /// The client's configuration (policy: retries, timeouts, limits).
    pub config: ClientConfig,
    /// Index of its replica.
    pub replica: usize,
    /// The seed of its shared state.
    pub seed: u64,
}

impl ClientSetup {
    /// A client of `replica` with `config`, seeded with `seed`.
    pub fn new(config: ClientConfig, replica: usize, seed: u64) -> ClientSetup {
        ClientSetup {
            config,
            replica,
            seed,
        }
    }
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct FleetOutcome {
    /// One record per arrival, in workload order.
    pub records: Vec<RequestRecord>,
    /// Each replica's counters.
    pub engines: Vec<EngineStats>,
    /// The aggregate.
    pub summary: Summary,
    /// Whether the step bound stopped the run.
    pub step_limit_hit: bool,
    /// Virtual time when the run ended.
    pub elapsed: Duration,
    /// Driver steps taken.
    pub steps: u64,
    /// Every change of a client's adaptive concurrency limit, in time order (empty for fixed
    /// limits).
    pub limits: Vec<LimitRecord>,
    /// Every request sent to a replica, in time order.
    pub sends: Vec<SendRecord>,
    /// Each client's concurrency state every [`FleetSim::sample_every`] (empty unless asked).
    pub samples: Vec<ClientSample>,
    /// Each replica's load at the same instants.
    pub replica_samples: Vec<ReplicaSample>,
    /// Every change of an endpoint's health in a client's pool (ejected, probing,
    /// readmitted), in time order.
    pub endpoint_changes: Vec<EndpointChangeRecord>,
}

/// One change of a client's adaptive concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitRecord {
    /// The client's index.
    pub client: usize,
    /// When (offset from the run's start).
    pub at: Duration,
    /// The new limit.
    pub limit: u32,
    /// Why it changed.
    pub cause: ChangeCause,
}

impl FleetOutcome {
    /// Client `client`'s limit at `at`: the last change at or before it, else `initial`.
    pub fn limit_at(&self, client: usize, at: Duration, initial: u32) -> u32 {
        self.limits
            .iter()
            .rev()
            .find(|l| l.client == client && l.at <= at)
            .map_or(initial, |l| l.limit)
    }
}

/// Which calls waiting for a concurrency permit are woken when a slot frees up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WakeOrder {
    /// Exactly the waiter the core names ([`Shared::poll_wake`]), as the adapters do (the
    /// default).
    #[default]
    Named,
    /// Every waiter, in a seeded random order, on every wake-up: models an adapter that wakes
    /// all waiters at once (`tokio::sync::Notify::notify_waiters`) and lets them race. With the
    /// core's first-come-first-served limiter the race cannot reorder admissions: a woken
    /// call that was not handed the slot waits again.
    Random {
        /// The seed of the order.
        seed: u64,
    },
}

/// The fleet simulator: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct FleetSim {
    replicas: Vec<EngineConfig>,
    clients: Vec<ClientSetup>,
    max_steps: u64,
    keep_text: bool,
    wake_order: WakeOrder,
    sample_every: Option<Duration>,
    changes: Vec<EndpointChangeAt>,
}

/// A change of a client's endpoint list at run time ([`FleetSim::set_endpoints_at`]).
#[derive(Debug, Clone)]
struct EndpointChangeAt {
    at: Duration,
    /// `None`: every client.
    client: Option<usize>,
    endpoints: Vec<vllm_client_core::pool::EndpointConfig>,
}

impl FleetSim {
    /// A fleet of these replicas and clients. A client whose replica index is out of range
    /// talks to replica `index % replicas`.
    pub fn new(replicas: Vec<EngineConfig>, clients: Vec<ClientSetup>) -> FleetSim {
        FleetSim {
            replicas,
            clients,
            max_steps: DEFAULT_MAX_STEPS,
            keep_text: false,
            wake_order: WakeOrder::Named,
            sample_every: None,
            changes: Vec::new(),
        }
    }

    /// Records each client's concurrency limit, in flight and waiting every `every`
    /// ([`FleetOutcome::samples`]).
    pub fn sample_every(mut self, every: Duration) -> FleetSim {
        self.sample_every = (!every.is_zero()).then_some(every);
        self
    }

    /// At `at`, client `client`'s endpoint list (every client's, for `None`) becomes
    /// `endpoints`, as `client.set_endpoints(...)` does: new ones start in slow start, removed
    /// ones drain. Use [`replica_url`] for the replicas' URLs.
    pub fn set_endpoints_at(
        mut self,
        at: Duration,
        client: Option<usize>,
        endpoints: Vec<vllm_client_core::pool::EndpointConfig>,
    ) -> FleetSim {
        self.changes.push(EndpointChangeAt {
            at,
            client,
            endpoints,
        });
        self.changes.sort_by_key(|c| c.at);
        self
    }

    /// Sets the order permit waiters are woken in (see [`WakeOrder`]).
    pub fn wake_order(mut self, order: WakeOrder) -> FleetSim {
        self.wake_order = order;
        self
    }

    /// Bounds the driver steps (polls and handled events) of a run.
    pub fn with_max_steps(mut self, max_steps: u64) -> FleetSim {
        self.max_steps = max_steps;
        self
    }

    /// Keeps each call's text in its record ([`RequestRecord::text`]).
    pub fn keep_text(mut self, keep: bool) -> FleetSim {
        self.keep_text = keep;
        self
    }

    /// Runs the workload to its end: every call ends (or the step bound is reached). An
    /// arrival whose client index is out of range uses client `index % clients`; with no
    /// replica or no client, every call is recorded as unfinished.
    pub fn run(&self, workload: &Workload) -> FleetOutcome {
        Run::new(self, workload).run()
    }

    /// Runs a closed loop (see [`ClosedLoop`]) to its end: calls start until its duration
    /// has passed, and every call then in progress ends (or the step bound is reached). The
    /// records are in the order calls started.
    pub fn run_closed(&self, spec: &ClosedLoop) -> FleetOutcome {
        Run::closed(self, spec).run()
    }
}

// --------------------------------------------------------------------------------------------
// The run
// --------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Wait {
    NotStarted,
    Ready,
    /// In the core's `Wait`: until `until`, an exchange's delivery, or (`permit`) its turn.
    Waiting {
        permit: bool,
    },
    Done,
}

/// What the transport is doing for an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XIo {
    Sending,
    Open,
    Reading,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyEnd {
    Close,
    Reset,
}

#[derive(Debug)]
struct Exchange {
    attempt: AttemptId,
    replica: usize,
    id: Option<RequestId>,
    stream: bool,
    io: XIo,
    /// A head to deliver (set when it is due).
    head: Option<ResponseHead>,
    head_delivered: bool,
    /// A transport error to deliver instead of a head.
    error: Option<TransportErrorKind>,
    body: Vec<u8>,
    end: Option<BodyEnd>,
    tokens: u32,
    text: String,
    /// The engine is done with it (finished, rejected, lost).
    engine_done: bool,
}

impl Exchange {
    fn new(attempt: AttemptId, replica: usize, stream: bool) -> Exchange {
        Exchange {
            attempt,
            replica,
            id: None,
            stream,
            io: XIo::Sending,
            head: None,
            head_delivered: false,
            error: None,
            body: Vec::new(),
            end: None,
            tokens: 0,
            text: String::new(),
            engine_done: false,
        }
    }

    /// Whether something can be delivered now.
    fn ready(&self) -> bool {
        match self.io {
            XIo::Reading => !self.body.is_empty() || self.end.is_some(),
            XIo::Sending => self.error.is_some() || self.head.is_some(),
            XIo::Open => false,
        }
    }
}

#[derive(Debug)]
struct Task {
    arrival: Arrival,
    client: usize,
    replica: usize,
    call: Option<Call>,
    wait: Wait,
    gen: u64,
    exchanges: Vec<Exchange>,
    /// The engine's completion tokens for each exchange that finished, by attempt.
    finished: Vec<(AttemptId, u32)>,
    content: String,
    json_body: Option<Bytes>,
    sends: Vec<Duration>,
    first_token: Option<Duration>,
    end: Option<Duration>,
    result: Option<ResultKind>,
    tokens_received: u32,
    /// Listed in its client's permit waiters.
    listed: bool,
    /// The closed-loop caller that made it.
    caller: Option<usize>,
}

struct Run<'a> {
    sim: &'a FleetSim,
    origin: Instant,
    now: Instant,
    engines: Vec<Engine>,
    shareds: Vec<Shared>,
    tasks: Vec<Task>,
    /// (replica, request) → (task, attempt).
    routes: HashMap<(usize, RequestId), (usize, AttemptId)>,
    heap: BinaryHeap<Reverse<(Instant, u64, usize, u64)>>,
    seq: u64,
    waiters: Vec<Vec<usize>>,
    /// Per client: the task behind each waiter the core queued.
    waiter_task: Vec<HashMap<WaiterId, usize>>,
    sweep: Vec<bool>,
    steps: u64,
    step_limit_hit: bool,
    wake_rng: Option<SplitMix64>,
    /// The closed loop, when the run is one.
    closed: Option<(ClosedLoop, SplitMix64)>,
    limits: Vec<LimitRecord>,
    endpoint_changes: Vec<EndpointChangeRecord>,
    sends: Vec<SendRecord>,
    samples: Vec<ClientSample>,
    replica_samples: Vec<ReplicaSample>,
    next_sample: Option<Instant>,
    /// The next endpoint change to apply (index into the simulator's list).
    next_change: usize,
}

/// A chat call whose body is about as long as a prompt of `prompt_tokens` tokens (4 bytes
/// a token, the usual estimate), so that a client's prompt-size estimate sees it, asking for
/// `max_tokens`.
fn chat_spec(prompt_tokens: u32, max_tokens: u32, stream: bool) -> CallSpec {
    let content = "word".repeat(prompt_tokens.min(1 << 20) as usize);
    let body = serde_json::json!({
        "model": "m",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
    });
    if stream {
        CallSpec::stream(Operation::ChatCompletions, StreamKind::Chat, Ok(body))
    } else {
        CallSpec::json(Operation::ChatCompletions, Ok(body))
    }
}

/// The `max_tokens` of a continuation's request body.
fn continued_max_tokens(body: &[u8]) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if v.get("continue_final_message") != Some(&serde_json::Value::Bool(true)) {
        return None;
    }
    v.get("max_tokens")?.as_u64()?.try_into().ok()
}

fn sse_content(k: u32) -> String {
    format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{k} \"}}}}]}}\n\n")
}

fn token_text(k: u32) -> String {
    format!("t{k} ")
}

/// The text of `n` tokens: `t0 t1 … t<n−1> `.
pub fn expected_text(n: u32) -> String {
    (0..n).map(token_text).collect()
}

fn usage(prompt: u32, completion: u32) -> String {
    format!(
        "{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion},\"total_tokens\":{}}}",
        u64::from(prompt) + u64::from(completion)
    )
}

fn error_body(status: u16, kind: &str, message: &str) -> Vec<u8> {
    format!(
        "{{\"object\":\"error\",\"message\":\"{message}\",\"type\":\"{kind}\",\"param\":null,\"code\":{status}}}"
    )
    .into_bytes()
}

impl<'a> Run<'a> {
    fn new(sim: &'a FleetSim, workload: &Workload) -> Run<'a> {
        let origin = Instant::now();
        let engines: Vec<Engine> = sim
            .replicas
            .iter()
            .map(|c| Engine::new(c.clone(), origin))
            .collect();
        let shareds: Vec<Shared> = sim
            .clients
            .iter()
            .map(|c| Shared::new(&c.config, c.seed))
            .collect();
        let nc = sim.clients.len();
        let mut run = Run {
            sim,
            origin,
            now: origin,
            engines,
            shareds,
            tasks: Vec::with_capacity(workload.arrivals.len()),
            routes: HashMap::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            waiters: vec![Vec::new(); nc],
            waiter_task: vec![HashMap::new(); nc],
            sweep: vec![false; nc],
            steps: 0,
            step_limit_hit: false,
            wake_rng: match sim.wake_order {
                WakeOrder::Named => None,
                WakeOrder::Random { seed } => Some(SplitMix64::new(seed)),
            },
            closed: None,
            limits: Vec::new(),
            endpoint_changes: Vec::new(),
            sends: Vec::new(),
            samples: Vec::new(),
            replica_samples: Vec::new(),
            next_sample: sim.sample_every.map(|_| origin),
            next_change: 0,
        };
        for a in &workload.arrivals {
            run.add_task(*a, None);
        }
        run
    }

    /// A run of a closed loop: each caller's first call is scheduled; the next ones are
    /// added as calls end.
    fn closed(sim: &'a FleetSim, spec: &ClosedLoop) -> Run<'a> {
        let mut run = Run::new(sim, &Workload::default());
        let mut rng = SplitMix64::new(spec.seed);
        for k in 0..spec.callers {
            let at = spec.stagger.saturating_mul(k.min(u32::MAX as usize) as u32);
            if at >= spec.duration {
                break;
            }
            let a = spec.arrival(&mut rng, k, at);
            run.add_task(a, Some(k));
        }
        run.closed = Some((*spec, rng));
        run
    }

    /// Adds a task for `a` (of closed-loop `caller`, if any) and schedules its start.
    fn add_task(&mut self, a: Arrival, caller: Option<usize>) {
        let nc = self.sim.clients.len();
        let nr = self.sim.replicas.len();
        let client = if nc == 0 { 0 } else { a.client % nc };
        let replica = match (self.sim.clients.get(client), nr) {
            (Some(c), n) if n > 0 => c.replica % n,
            _ => 0,
        };
        let i = self.tasks.len();
        self.tasks.push(Task {
            arrival: a,
            client,
            replica,
            call: None,
            wait: Wait::NotStarted,
            gen: 0,
            exchanges: Vec::new(),
            finished: Vec::new(),
            content: String::new(),
            json_body: None,
            sends: Vec::new(),
            first_token: None,
            end: None,
            result: None,
            tokens_received: 0,
            listed: false,
            caller,
        });
        let at = self.origin.checked_add(a.at).unwrap_or(self.origin);
        self.push(at, i);
    }

    /// A closed-loop caller's call ended: its next call, unless the loop's time is over.
    fn next_call(&mut self, i: usize) {
        let Some(caller) = self.tasks[i].caller else {
            return;
        };
        let off = self.off(self.now);
        let Some((spec, rng)) = self.closed.as_mut() else {
            return;
        };
        let at = off.saturating_add(spec.think);
        if at >= spec.duration {
            return;
        }
        let a = spec.arrival(rng, caller, at);
        self.add_task(a, Some(caller));
    }

    /// Records the limit changes of every client's adaptive concurrency limit.
    fn collect_limits(&mut self) {
        let off = self.off(self.now);
        for (c, shared) in self.shareds.iter_mut().enumerate() {
            while let Some(change) = shared.poll_endpoint_change() {
                self.endpoint_changes.push(EndpointChangeRecord {
                    client: c,
                    at: off,
                    change,
                });
            }
            while let Some(change) = shared.poll_limit_change() {
                self.limits.push(LimitRecord {
                    client: c,
                    at: off,
                    limit: change.to,
                    cause: change.cause,
                });
            }
        }
    }

    /// When the next endpoint change is due.
    fn change_due(&self) -> Option<Instant> {
        let c = self.sim.changes.get(self.next_change)?;
        Some(self.origin.checked_add(c.at).unwrap_or(self.origin))
    }

    /// Applies the endpoint changes due now.
    fn apply_changes(&mut self) {
        while let Some(due) = self.change_due() {
            if due > self.now {
                return;
            }
            let change = self.sim.changes[self.next_change].clone();
            self.next_change += 1;
            for (c, shared) in self.shareds.iter_mut().enumerate() {
                if change.client.is_none_or(|k| k == c) {
                    // A list the pool refuses (an unusable URL) is the caller's bug here.
                    shared
                        .set_endpoints(self.now, change.endpoints.clone())
                        .expect("a valid endpoint list");
                    self.sweep[c] = true;
                }
            }
            self.sweeps();
        }
    }

    /// Records every client's concurrency state when a sample is due.
    fn take_samples(&mut self) {
        let (Some(due), Some(every)) = (self.next_sample, self.sim.sample_every) else {
            return;
        };
        if due > self.now {
            return;
        }
        let at = self.off(due);
        for (c, shared) in self.shareds.iter().enumerate() {
            self.samples.push(ClientSample {
                at,
                client: c,
                limit: shared.concurrency_limit(),
                in_flight: shared.in_flight().unwrap_or(0),
                waiting: shared.waiting().unwrap_or(0),
            });
        }
        for (r, e) in self.engines.iter().enumerate() {
            self.replica_samples.push(ReplicaSample {
                at,
                replica: r,
                running: e.num_running(),
                waiting: e.num_waiting(),
            });
        }
        // Sampling stops with the run: no sample is due once nothing else is.
        self.next_sample = due.checked_add(every);
    }

    fn off(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.origin)
    }

    fn push(&mut self, at: Instant, task: usize) {
        let gen = self.tasks[task].gen;
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, task, gen)));
    }

    /// Sets a task's wait (invalidating its older wakes) and schedules its wake, if any.
    fn set_wait(&mut self, i: usize, wait: Wait, wake: Option<Instant>) {
        let t = &mut self.tasks[i];
        t.wait = wait;
        t.gen += 1;
        if let Some(w) = wake {
            self.push(w.max(self.now), i);
        }
    }

    fn run(mut self) -> FleetOutcome {
        if self.engines.is_empty() || self.shareds.is_empty() {
            self.step_limit_hit = false;
            return self.finish();
        }
        loop {
            let te = self.engines.iter().filter_map(|e| e.next_event_at()).min();
            let tt = self.heap.peek().map(|Reverse((t, ..))| *t);
            let t = match (te, tt) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            // Samples and endpoint changes happen only while something else is going on.
            let t = [self.next_sample, self.change_due()]
                .into_iter()
                .flatten()
                .fold(t, Instant::min);
            if self.steps > self.sim.max_steps {
                self.step_limit_hit = true;
                break;
            }
            self.now = self.now.max(t);
            let now = self.now;
            for r in 0..self.engines.len() {
                self.engines[r].settle(now);
                self.route(r);
            }
            self.apply_changes();
            self.take_samples();
            while let Some(Reverse((at, _, i, gen))) = self.heap.peek().copied() {
                if at > now || self.step_limit_hit {
                    break;
                }
                self.heap.pop();
                if self.tasks[i].gen != gen {
                    continue;
                }
                self.step(i);
                self.sweeps();
            }
            for r in 0..self.engines.len() {
                self.engines[r].advance(now);
                self.route(r);
            }
            self.collect_limits();
            if self.step_limit_hit {
                break;
            }
        }
        self.finish()
    }

    /// Hands the engine's outputs to the exchanges they belong to, waking their calls.
    fn route(&mut self, r: usize) {
        while let Some((id, out)) = self.engines[r].poll_output() {
            let Some(&(i, attempt)) = self.routes.get(&(r, id)) else {
                continue;
            };
            let now = self.now;
            let wall = self.wall(now);
            let task = &mut self.tasks[i];
            let Some(x) = task
                .exchanges
                .iter_mut()
                .find(|x| x.attempt == attempt && x.id == Some(id))
            else {
                continue;
            };
            match out {
                Output::FirstToken | Output::Token => {
                    if x.stream {
                        x.body.extend_from_slice(sse_content(x.tokens).as_bytes());
                    } else {
                        x.text.push_str(&token_text(x.tokens));
                    }
                    x.tokens += 1;
                }
                Output::Finished {
                    prompt_tokens,
                    completion_tokens,
                    ..
                } => {
                    x.engine_done = true;
                    // Counted from the stream's start (a continuation's from the cut on).
                    task.finished.push((attempt, x.tokens));
                    let usage = usage(prompt_tokens, completion_tokens);
                    if x.stream {
                        let tail = format!(
                            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"length\"}}],\"usage\":{usage}}}\n\ndata: [DONE]\n\n"
                        );
                        x.body.extend_from_slice(tail.as_bytes());
                    } else {
                        let body = format!(
                            "{{\"id\":\"chatcmpl-sim\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{}\"}},\"finish_reason\":\"length\"}}],\"usage\":{usage}}}",
                            x.text
                        );
                        x.body.extend_from_slice(body.as_bytes());
                        x.head = Some(head(200, "application/json", wall));
                    }
                    x.end = Some(BodyEnd::Close);
                }
                Output::Rejected => {
                    x.engine_done = true;
                    x.head = Some(head(400, "application/json", wall));
                    x.body = error_body(
                        400,
                        "BadRequestError",
                        "the request does not fit the KV cache",
                    );
                    x.end = Some(BodyEnd::Close);
                }
                Output::Lost => {
                    x.engine_done = true;
                    if x.head_delivered || x.head.is_some() {
                        x.end = Some(BodyEnd::Reset);
                    } else {
                        x.error = Some(TransportErrorKind::Io);
                    }
                }
            }
            if out.is_terminal() {
                self.routes.remove(&(r, id));
            }
            if matches!(task.wait, Wait::Waiting { .. })
                && task.exchanges.iter().any(Exchange::ready)
            {
                task.gen += 1;
                self.push(now, i);
            }
        }
    }

    fn wall(&self, now: Instant) -> SystemTime {
        let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(WALL_ORIGIN_SECS);
        origin.checked_add(self.off(now)).unwrap_or(origin)
    }

    /// Delivers what the task waits for, then drives it until it blocks.
    fn step(&mut self, i: usize) {
        let now = self.now;
        let c = self.tasks[i].client;
        let wait = std::mem::replace(&mut self.tasks[i].wait, Wait::Ready);
        let event = match wait {
            Wait::NotStarted => {
                let a = self.tasks[i].arrival;
                let spec = chat_spec(a.prompt_tokens, a.max_tokens, a.stream);
                let config = &self.sim.clients[c].config;
                let call = Call::new(config, spec, now, &mut self.shareds[c]);
                self.tasks[i].call = Some(call);
                None
            }
            Wait::Ready => None,
            Wait::Waiting { .. } => Some(self.deliver(i)),
            Wait::Done => {
                self.tasks[i].wait = Wait::Done;
                return;
            }
        };
        if let Some(ev) = event {
            self.steps += 1;
            if let Some(call) = self.tasks[i].call.as_mut() {
                call.handle(now, ev);
            }
        }
        self.drive(i);
    }

    /// What the first exchange with something to deliver delivers; otherwise the wait's
    /// timer fired.
    fn deliver(&mut self, i: usize) -> Event {
        let Some(x) = self.tasks[i].exchanges.iter_mut().find(|x| x.ready()) else {
            return Event::Timeout;
        };
        let attempt = x.attempt;
        if x.io == XIo::Sending {
            if let Some(kind) = x.error.take() {
                return Event::TransportError {
                    attempt,
                    kind,
                    message: format!("simulated {kind:?}"),
                    source: None,
                };
            }
            x.head_delivered = true;
            x.io = XIo::Open;
            return match x.head.take() {
                Some(head) => Event::Response { attempt, head },
                None => Event::Timeout,
            };
        }
        x.io = XIo::Open;
        if !x.body.is_empty() {
            return Event::Chunk {
                attempt,
                bytes: Bytes::from(std::mem::take(&mut x.body)),
            };
        }
        match x.end {
            Some(BodyEnd::Close) => Event::BodyEnd { attempt },
            _ => Event::TransportError {
                attempt,
                kind: TransportErrorKind::Io,
                message: "simulated connection reset".into(),
                source: None,
            },
        }
    }

    /// Drops exchange `attempt` of task `i`; an engine request still in progress is aborted.
    fn close_exchange(&mut self, i: usize, attempt: AttemptId) {
        let Some(k) = self.tasks[i]
            .exchanges
            .iter()
            .position(|x| x.attempt == attempt)
        else {
            return;
        };
        let x = self.tasks[i].exchanges.remove(k);
        if let (Some(id), false) = (x.id, x.engine_done) {
            self.engines[x.replica].abort(self.now, id);
            self.routes.remove(&(x.replica, id));
        }
    }

    /// Drops every exchange of task `i`.
    fn close_all(&mut self, i: usize) {
        while let Some(x) = self.tasks[i].exchanges.first() {
            let attempt = x.attempt;
            self.close_exchange(i, attempt);
        }
    }

    fn drive(&mut self, i: usize) {
        let now = self.now;
        let c = self.tasks[i].client;
        // Whatever this call does may hand a slot to a waiter of its client.
        self.sweep[c] = true;
        loop {
            self.steps += 1;
            if self.steps > self.sim.max_steps {
                self.step_limit_hit = true;
                self.close_all(i);
                self.set_wait(i, Wait::Ready, None);
                return;
            }
            let Some(call) = self.tasks[i].call.as_mut() else {
                return;
            };
            // The production path: the client's shared state only when the call needs it.
            let shared = &mut self.shareds[c];
            let action = call.poll_with(now, || &mut *shared);
            match action {
                Action::Emit(ev) => {
                    let off = self.off(now);
                    let t = &mut self.tasks[i];
                    match &ev {
                        StreamEvent::Content(s) => {
                            t.first_token.get_or_insert(off);
                            t.content.push_str(s);
                            t.tokens_received += 1;
                        }
                        StreamEvent::Error(e) => {
                            t.result = Some(ResultKind::FailedMidStream(ErrorKind::of(e)));
                        }
                        _ => {}
                    }
                    if ev.is_terminal() {
                        self.sweep[c] = true;
                    }
                }
                Action::Done(r) => {
                    self.close_all(i);
                    let off = self.off(now);
                    let t = &mut self.tasks[i];
                    t.end = Some(off);
                    match r {
                        Ok(body) => {
                            if t.result.is_none() {
                                t.result = Some(ResultKind::Ok);
                                if !t.arrival.stream {
                                    t.json_body = Some(body);
                                }
                            }
                        }
                        Err(e) => {
                            t.result
                                .get_or_insert(ResultKind::Failed(ErrorKind::of(&e)));
                        }
                    }
                    self.sweep[c] = true;
                    self.set_wait(i, Wait::Done, None);
                    self.next_call(i);
                    return;
                }
                Action::Send {
                    attempt,
                    purpose,
                    request,
                    ..
                } => {
                    // A client with several endpoints names the replica in the URL's host.
                    let r = replica_of(request.uri())
                        .map_or(self.tasks[i].replica, |r| r % self.engines.len().max(1));
                    let off = self.off(now);
                    if purpose != Purpose::HealthProbe {
                        self.tasks[i].replica = r;
                        self.tasks[i].sends.push(off);
                    }
                    self.sends.push(SendRecord {
                        at: off,
                        client: c,
                        replica: r,
                        purpose,
                    });
                    // A cut chat stream's continuation asks for the tokens it has not got.
                    let left = (purpose == Purpose::Resume)
                        .then(|| continued_max_tokens(request.body()))
                        .flatten();
                    self.open_exchange(i, attempt, r, purpose == Purpose::HealthProbe, left);
                }
                Action::ReadBody { attempt, .. } => {
                    let x = self.tasks[i]
                        .exchanges
                        .iter_mut()
                        .find(|x| x.attempt == attempt);
                    if let Some(x) = x {
                        x.io = XIo::Reading;
                    }
                }
                Action::Close { attempt } => self.close_exchange(i, attempt),
                Action::Wait { until, waiter, .. } => {
                    if let Some(w) = waiter {
                        self.waiter_task[c].insert(w, i);
                        if !self.tasks[i].listed {
                            self.tasks[i].listed = true;
                            self.waiters[c].push(i);
                        }
                    }
                    let ready = self.tasks[i].exchanges.iter().any(Exchange::ready);
                    let wake = if ready { Some(now) } else { until };
                    let permit = waiter.is_some();
                    self.set_wait(i, Wait::Waiting { permit }, wake);
                    return;
                }
            }
        }
    }

    /// Starts exchange `attempt` of task `i` with replica `r` (a health probe, when `probe`;
    /// the continuation of a cut stream with `left` tokens to generate, when given).
    fn open_exchange(
        &mut self,
        i: usize,
        attempt: AttemptId,
        r: usize,
        probe: bool,
        left: Option<u32>,
    ) {
        let now = self.now;
        let wall = self.wall(now);
        let a = self.tasks[i].arrival;
        let mut x = Exchange::new(attempt, r, a.stream && !probe);
        let engine = &mut self.engines[r];
        if engine.is_down(now) {
            x.error = Some(TransportErrorKind::Connect);
        } else if engine.is_failing(now) {
            x.head = Some(head(503, "application/json", wall));
            x.body = error_body(503, "ServiceUnavailableError", "Service Unavailable");
            x.end = Some(BodyEnd::Close);
        } else if probe {
            x.head = Some(head(200, "application/json", wall));
            x.end = Some(BodyEnd::Close);
        } else {
            // A continuation's prompt ends with the text already generated, and its tokens
            // are numbered on from there.
            let done = left.map_or(0, |l| a.max_tokens.saturating_sub(l));
            x.tokens = done;
            let spec = RequestSpec {
                prompt_tokens: a.prompt_tokens + done,
                max_tokens: a.max_tokens - done,
                stream: a.stream,
            };
            let id = engine.submit(now, spec);
            x.id = Some(id);
            self.routes.insert((r, id), (i, attempt));
            self.tasks[i].exchanges.push(x);
            // Outputs at submission (rejected) and any earlier ones.
            self.route(r);
            let x = self.tasks[i]
                .exchanges
                .iter_mut()
                .find(|x| x.attempt == attempt);
            if let Some(x) = x {
                if x.stream && x.head.is_none() && x.error.is_none() {
                    x.head = Some(head(200, "text/event-stream", wall));
                }
            }
            return;
        }
        self.tasks[i].exchanges.push(x);
    }

    /// Wakes permit waiters of clients whose calls did something: exactly the waiters the
    /// core names ([`WakeOrder::Named`]), or every waiter in a random order
    /// ([`WakeOrder::Random`]).
    fn sweeps(&mut self) {
        // Bounded: each round clears a flag; a flag is set again only by a call that was
        // driven, and calls end.
        for _ in 0..1_000_000 {
            let Some(c) = self.sweep.iter().position(|s| *s) else {
                return;
            };
            self.sweep[c] = false;
            let mut named = Vec::new();
            while let Some(w) = self.shareds[c].poll_wake() {
                if let Some(j) = self.waiter_task[c].remove(&w) {
                    named.push(j);
                }
            }
            let order = match self.wake_rng.as_mut() {
                None => named,
                // Nothing was released: nobody to wake.
                Some(_) if named.is_empty() => continue,
                Some(rng) => {
                    let mut all = std::mem::take(&mut self.waiters[c]);
                    all.extend(named);
                    all.sort_unstable();
                    all.dedup();
                    // Fisher–Yates.
                    for k in (1..all.len()).rev() {
                        let j = (rng.next_u64() % (k as u64 + 1)) as usize;
                        all.swap(k, j);
                    }
                    all
                }
            };
            let mut keep = Vec::new();
            for j in order {
                if !matches!(self.tasks[j].wait, Wait::Waiting { permit: true }) {
                    self.tasks[j].listed = false;
                    continue;
                }
                if self.step_limit_hit {
                    keep.push(j);
                    continue;
                }
                self.steps += 1;
                if let Some(call) = self.tasks[j].call.as_mut() {
                    call.handle(self.now, Event::PermitReleased);
                }
                self.tasks[j].wait = Wait::Ready;
                self.drive(j);
                if matches!(self.tasks[j].wait, Wait::Waiting { permit: true }) {
                    keep.push(j);
                } else {
                    self.tasks[j].listed = false;
                }
            }
            if self.wake_rng.is_some() {
                let added = std::mem::take(&mut self.waiters[c]);
                keep.extend(added);
                self.waiters[c] = keep;
            }
        }
    }

    fn finish(mut self) -> FleetOutcome {
        let now = self.now;
        for i in 0..self.tasks.len() {
            if self.tasks[i].end.is_some() || self.tasks[i].result.is_some() {
                continue;
            }
            self.close_all(i);
            let c = self.tasks[i].client;
            if let (Some(call), Some(shared)) =
                (self.tasks[i].call.as_mut(), self.shareds.get_mut(c))
            {
                call.cancel(now, shared);
            }
            self.tasks[i].result = Some(ResultKind::Failed(ErrorKind::Unfinished));
        }
        let keep_text = self.sim.keep_text;
        let records: Vec<RequestRecord> = self
            .tasks
            .into_iter()
            .map(|t| {
                let report = t
                    .call
                    .as_ref()
                    .map(|c| c.report().clone())
                    .unwrap_or_default();
                let result = t
                    .result
                    .unwrap_or(ResultKind::Failed(ErrorKind::Unfinished));
                let text = if t.arrival.stream {
                    t.content
                } else {
                    t.json_body
                        .as_ref()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                        .and_then(|v| {
                            v.pointer("/choices/0/message/content")
                                .and_then(|c| c.as_str())
                                .map(str::to_owned)
                        })
                        .unwrap_or_default()
                };
                // The engine's tokens of the exchange whose text the caller read (a hedge's
                // loser may have finished too; the winner's count is the text's).
                let text_exact = result
                    .is_ok()
                    .then(|| t.finished.iter().any(|(_, n)| expected_text(*n) == text));
                RequestRecord {
                    arrival: t.arrival,
                    replica: t.replica,
                    sends: t.sends,
                    first_token: t.first_token,
                    end: t.end,
                    result,
                    attempts: report.attempts,
                    retries: report.retries.len() as u32,
                    gave_up: report.gave_up,
                    timeout: report.timeout,
                    tokens_received: t.tokens_received,
                    text_exact,
                    text: keep_text.then_some(text),
                }
            })
            .collect();
        let engines: Vec<EngineStats> = self.engines.iter().map(|e| *e.stats()).collect();
        let summary = Summary::of(&records, &engines);
        FleetOutcome {
            records,
            engines,
            summary,
            step_limit_hit: self.step_limit_hit,
            elapsed: now.saturating_duration_since(self.origin),
            steps: self.steps,
            limits: self.limits,
            endpoint_changes: self.endpoint_changes,
            sends: self.sends,
            samples: self.samples,
            replica_samples: self.replica_samples,
        }
    }
}

fn head(status: u16, content_type: &'static str, at: SystemTime) -> ResponseHead {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    ResponseHead::new(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        headers,
        at,
    )
}
