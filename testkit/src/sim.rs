//! A virtual-time simulator for the core's call driver: the fourth "adapter", with no sockets.
//!
//! [`Sim`] drives [`Call`]s exactly as a real adapter does — `poll`, perform the action,
//! `handle` what happened — but answers every `Send` from a script of per-attempt
//! [`SimResponse`]s and jumps a virtual clock straight to the next thing that happens: a
//! response head, the next body part, a deadline handed out by the driver, the end of a sleep.
//! An hour of backoff runs in microseconds, and every run records an exact [timeline] of
//! actions and events with their virtual time offsets, so a scenario can be asserted to the
//! nanosecond.
//!
//! What it is not: a model of TCP or HTTP. A script says *when* a head, a chunk, a cut or a
//! stall happens; the simulator only races that against the deadline the driver handed out
//! (an arrival exactly at the deadline wins; a later one loses and the driver gets
//! [`Event::Timeout`] at the deadline).
//!
//! ```
//! use std::time::Duration;
//! use vllm_client_core::config::ClientConfig;
//! use vllm_testkit::sim::{chat_json, Sim, SimResponse};
//!
//! let mut sim = Sim::new(ClientConfig::default(), 7);
//! let out = sim.run(
//!     chat_json(),
//!     vec![
//!         SimResponse::status(429).header("retry-after-ms", "1500").body(r#"{"error":"slow down"}"#),
//!         SimResponse::ok_json(r#"{"choices":[]}"#),
//!     ],
//! );
//! assert!(out.result.is_ok());
//! assert_eq!(out.sends, vec![Duration::ZERO, Duration::from_millis(1500)]);
//! assert_eq!(out.sleeps, vec![Duration::from_millis(1500)]);
//! assert!(out.violations.is_empty() && out.fault.is_none());
//! ```
//!
//! Several calls can share one [`Shared`] (breaker, budget, limiters): call [`Sim::run`]
//! repeatedly, with [`Sim::advance`] in between, or run calls concurrently with
//! [`Sim::run_all`] (calls interleave at virtual instants; a call waiting for a concurrency
//! permit is woken with [`Event::PermitReleased`] when the core hands it the slot another call
//! released — exactly the waiter [`Shared::poll_wake`] names, as a real adapter does).
//!
//! The simulator never loops forever: a run stops after [`Sim::with_max_steps`] driver steps
//! (default 10 000) and reports [`SimFault::StepLimit`]; a call that waits for something that
//! can never happen (no deadline, nothing scheduled) ends with [`SimFault::Hang`]. A faulted
//! call is cancelled, so its permits are released.
//!
//! While it drives, the simulator also checks the driver's contract and lists what it breaks in
//! [`SimOutcome::violations`]: no handed-out deadline or sleep end past the overall deadline,
//! no call ending after it, no send after a stream event was emitted, no more than
//! `1 + max_retries` sends, nothing after a terminal stream event, a stream that emitted events
//! ends `Ok`, events only for streams.
//!
//! [timeline]: SimOutcome::timeline

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use vllm_client_core::call::{
    Action, Call, CallReport, Event, ResponseHead, Shared, SleepReason, TransportErrorKind,
};
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::WaiterId;
use vllm_client_core::request::Endpoint;
use vllm_client_core::{StreamEvent, StreamKind, VllmError};

/// The wall-clock time (seconds since the Unix epoch) at the simulator's virtual time zero:
/// 2025-10-09T08:53:20Z. A response head received at offset `t` carries `received_at` of
/// this plus `t`.
pub const WALL_ORIGIN_SECS: u64 = 1_760_000_000;

/// The default bound on driver steps (polls and handled events) per [`Sim::run_all`].
pub const DEFAULT_MAX_STEPS: usize = 10_000;

/// A chat completion request body (`stream: false`) for scenarios.
pub fn chat_json() -> CallSpec {
    CallSpec::json(
        Endpoint::ChatCompletions,
        Ok(serde_json::json!({
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
        })),
    )
}

/// A streamed chat completion request (`stream: true`) for scenarios.
pub fn chat_stream() -> CallSpec {
    CallSpec::stream(
        Endpoint::ChatCompletions,
        StreamKind::Chat,
        Ok(serde_json::json!({
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true,
        })),
    )
}

// --------------------------------------------------------------------------------------------
// Scripts
// --------------------------------------------------------------------------------------------

/// One part of a scripted response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimPart {
    /// These bytes arrive as one chunk.
    Data(Bytes),
    /// Nothing arrives for this long (the next part comes this much later).
    Wait(Duration),
    /// An SSE keep-alive comment (`: keep-alive\n\n`) arrives as one chunk.
    Comment,
}

impl SimPart {
    /// Raw bytes as one chunk.
    pub fn raw(bytes: impl Into<Bytes>) -> SimPart {
        SimPart::Data(bytes.into())
    }

    /// One SSE event `data: <payload>\n\n`.
    pub fn data(payload: &str) -> SimPart {
        SimPart::Data(Bytes::from(format!("data: {payload}\n\n")))
    }

    /// A vLLM chat chunk whose choice 0 carries `text` as `delta.content`.
    pub fn content(text: &str) -> SimPart {
        let chunk = serde_json::json!({
            "id": "chatcmpl-sim",
            "object": "chat.completion.chunk",
            "created": 1_760_000_000u64,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null}],
        });
        SimPart::data(&chunk.to_string())
    }

    /// vLLM's in-band error event (`{"error": {…, "code": code}}`), as sent mid-stream.
    pub fn error_event(message: &str, code: u16) -> SimPart {
        let ev = serde_json::json!({
            "error": {"message": message, "type": "InternalServerError", "param": null, "code": code},
        });
        SimPart::data(&ev.to_string())
    }

    /// `data: [DONE]\n\n`.
    pub fn done() -> SimPart {
        SimPart::data("[DONE]")
    }

    /// A pause.
    pub fn wait_ms(ms: u64) -> SimPart {
        SimPart::Wait(Duration::from_millis(ms))
    }
}

/// What happens after the last body part of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimEnd {
    /// The body ends cleanly ([`Event::BodyEnd`]).
    #[default]
    Close,
    /// Nothing more ever arrives; only a driver deadline ends the wait.
    Stall,
    /// The connection breaks ([`Event::TransportError`] with [`TransportErrorKind::Io`]).
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Answer,
    ConnectRefused,
    ResetBeforeHead,
    Stall,
}

/// The scripted answer to one attempt (one `Send`).
///
/// Build one with a constructor ([`status`](Self::status), [`ok_json`](Self::ok_json),
/// [`sse`](Self::sse), [`connect_refused`](Self::connect_refused), [`stall`](Self::stall), …)
/// and refine it with the builder methods ([`header`](Self::header), [`body`](Self::body),
/// [`head_after`](Self::head_after), [`then_stall`](Self::then_stall), …).
#[derive(Debug, Clone)]
pub struct SimResponse {
    kind: Kind,
    status: u16,
    headers: HeaderMap,
    invalid: Vec<String>,
    connect_delay: Duration,
    head_delay: Duration,
    parts: Vec<SimPart>,
    end: SimEnd,
}

impl SimResponse {
    fn new(kind: Kind, status: u16) -> SimResponse {
        SimResponse {
            kind,
            status,
            headers: HeaderMap::new(),
            invalid: Vec::new(),
            connect_delay: Duration::ZERO,
            head_delay: Duration::ZERO,
            parts: Vec::new(),
            end: SimEnd::Close,
        }
    }

    /// A response with this status and an empty body (add one with [`body`](Self::body)).
    pub fn status(status: u16) -> SimResponse {
        SimResponse::new(Kind::Answer, status)
    }

    /// `200 OK` with a JSON body, in one chunk.
    pub fn ok_json(body: &str) -> SimResponse {
        SimResponse::status(200)
            .header("content-type", "application/json")
            .body(body)
    }

    /// `200 OK` with `content-type: text/event-stream` and these body parts.
    pub fn sse(parts: Vec<SimPart>) -> SimResponse {
        SimResponse::status(200)
            .header("content-type", "text/event-stream")
            .parts(parts)
    }

    /// The connection is refused ([`TransportErrorKind::Connect`]) right away (or after
    /// [`connect_after`](Self::connect_after)).
    pub fn connect_refused() -> SimResponse {
        SimResponse::new(Kind::ConnectRefused, 0)
    }

    /// The connection is established, then breaks before any response head
    /// ([`TransportErrorKind::Io`]) after [`head_after`](Self::head_after).
    pub fn reset_before_head() -> SimResponse {
        SimResponse::new(Kind::ResetBeforeHead, 0)
    }

    /// No response head ever arrives: only the driver's deadline ends the wait.
    pub fn stall() -> SimResponse {
        SimResponse::new(Kind::Stall, 0)
    }

    /// Adds a response header. A name or value `http` refuses makes the run fail with
    /// [`SimFault::InvalidScript`].
    pub fn header(mut self, name: &str, value: &str) -> SimResponse {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => self.invalid.push(format!("header {name:?}: {value:?}")),
        }
        self
    }

    /// Replaces the body by `body`, arriving in one chunk.
    pub fn body(mut self, body: &str) -> SimResponse {
        self.parts = vec![SimPart::Data(Bytes::copy_from_slice(body.as_bytes()))];
        self
    }

    /// Replaces the body by these parts.
    pub fn parts(mut self, parts: Vec<SimPart>) -> SimResponse {
        self.parts = parts;
        self
    }

    /// Connecting takes `d`. When the driver's `connect_timeout` is shorter, the simulator
    /// reports [`TransportErrorKind::ConnectTimeout`] when it runs out.
    pub fn connect_after(mut self, d: Duration) -> SimResponse {
        self.connect_delay = d;
        self
    }

    /// The response head arrives `d` after the connection is established (a slow server, or a
    /// queued request: vLLM's overload signal).
    pub fn head_after(mut self, d: Duration) -> SimResponse {
        self.head_delay = d;
        self
    }

    /// After the last part, nothing more ever arrives.
    pub fn then_stall(mut self) -> SimResponse {
        self.end = SimEnd::Stall;
        self
    }

    /// After the last part, the connection breaks.
    pub fn then_reset(mut self) -> SimResponse {
        self.end = SimEnd::Reset;
        self
    }

    /// After the last part, the body ends cleanly (the default). A stream without
    /// `data: [DONE]` that ends this way is cut ("truncated").
    pub fn then_close(mut self) -> SimResponse {
        self.end = SimEnd::Close;
        self
    }
}

// --------------------------------------------------------------------------------------------
// Timeline
// --------------------------------------------------------------------------------------------

/// A stream event as recorded in the timeline (comparable, unlike [`StreamEvent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emitted {
    /// [`StreamEvent::Content`].
    Content(String),
    /// [`StreamEvent::Reasoning`].
    Reasoning(String),
    /// [`StreamEvent::Done`].
    Done,
    /// [`StreamEvent::Error`], with the error's `Display`.
    Error(String),
    /// Any other event, as `Debug`.
    Other(String),
}

impl Emitted {
    fn of(ev: &StreamEvent) -> Emitted {
        match ev {
            StreamEvent::Content(s) => Emitted::Content(s.clone()),
            StreamEvent::Reasoning(s) => Emitted::Reasoning(s.clone()),
            StreamEvent::Done => Emitted::Done,
            StreamEvent::Error(e) => Emitted::Error(e.to_string()),
            other => Emitted::Other(format!("{other:?}")),
        }
    }
}

/// One action of the driver or one event reported to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// The call was created.
    Start,
    /// Action: send attempt `attempt` (1-based); `deadline` is the offset of the head deadline.
    Send {
        /// Which attempt.
        attempt: u32,
        /// The head deadline handed out, as an offset.
        deadline: Option<Duration>,
    },
    /// Action: read the body until `deadline` (an offset).
    ReadBody {
        /// The read deadline handed out, as an offset.
        deadline: Option<Duration>,
    },
    /// Action: sleep this long.
    Sleep {
        /// How long.
        duration: Duration,
        /// Whether it is a retry backoff (`false`: the rate limiter).
        retry: bool,
    },
    /// Action: wait for a concurrency permit until `deadline` (an offset).
    WaitForPermit {
        /// The deadline handed out, as an offset.
        deadline: Option<Duration>,
    },
    /// Action: a stream event for the caller.
    Emit(Emitted),
    /// Action: the call is over; `Ok(body length)` or `Err(error text)`.
    Done(Result<usize, String>),
    /// Event: a response head with this status.
    Response(u16),
    /// Event: a transport error.
    TransportError(TransportErrorKind),
    /// Event: a body chunk of this many bytes.
    Chunk(usize),
    /// Event: the body ended.
    BodyEnd,
    /// Event: the deadline handed out passed (or a sleep ended).
    Timeout,
    /// Event: another call released its concurrency permit.
    PermitReleased,
    /// The simulator cancelled the call (scripted, or after a fault).
    Cancel,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dl = |d: &Option<Duration>| match d {
            Some(d) => format!("until {d:?}"),
            None => "no deadline".to_owned(),
        };
        match self {
            Step::Start => write!(f, "start"),
            Step::Send { attempt, deadline } => write!(f, "send #{attempt} ({})", dl(deadline)),
            Step::ReadBody { deadline } => write!(f, "read ({})", dl(deadline)),
            Step::Sleep { duration, retry } => write!(
                f,
                "sleep {duration:?} ({})",
                if *retry { "retry" } else { "rate limit" }
            ),
            Step::WaitForPermit { deadline } => write!(f, "wait for permit ({})", dl(deadline)),
            Step::Emit(Emitted::Content(s)) => write!(f, "emit content {s:?}"),
            Step::Emit(Emitted::Reasoning(s)) => write!(f, "emit reasoning {s:?}"),
            Step::Emit(Emitted::Done) => write!(f, "emit done"),
            Step::Emit(Emitted::Error(e)) => write!(f, "emit error: {e}"),
            Step::Emit(Emitted::Other(s)) => write!(f, "emit {s}"),
            Step::Done(Ok(n)) => write!(f, "done ok ({n} B)"),
            Step::Done(Err(e)) => write!(f, "done err: {e}"),
            Step::Response(s) => write!(f, "<- {s}"),
            Step::TransportError(k) => write!(f, "<- transport error {k:?}"),
            Step::Chunk(n) => write!(f, "<- chunk {n} B"),
            Step::BodyEnd => write!(f, "<- body end"),
            Step::Timeout => write!(f, "<- timeout"),
            Step::PermitReleased => write!(f, "<- permit released"),
            Step::Cancel => write!(f, "cancel"),
        }
    }
}

/// A timeline entry: when (offset from the simulator's start), which call (its index in
/// [`Sim::run_all`]'s list; always 0 for [`Sim::run`]), what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Virtual time since the simulator started.
    pub at: Duration,
    /// The call's index.
    pub call: usize,
    /// What happened.
    pub step: Step,
}

impl fmt::Display for TimelineEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.at, self.step)
    }
}

/// Why the simulator stopped a call itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimFault {
    /// The step bound was reached.
    StepLimit,
    /// The call waits for something that can never happen (no deadline, nothing scheduled).
    Hang,
    /// The driver sent more requests than the script has responses.
    ScriptExhausted,
    /// A scripted response is unusable (e.g. an invalid header).
    InvalidScript(String),
    /// The driver asked for something the simulator cannot do (e.g. read a body it never
    /// received a response for, or an action it does not know).
    Unexpected(String),
}

impl fmt::Display for SimFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimFault::StepLimit => write!(f, "step limit reached"),
            SimFault::Hang => write!(f, "the call would wait forever"),
            SimFault::ScriptExhausted => write!(f, "more sends than scripted responses"),
            SimFault::InvalidScript(s) => write!(f, "invalid script: {s}"),
            SimFault::Unexpected(s) => write!(f, "unexpected: {s}"),
        }
    }
}

/// Everything one simulated call did.
#[derive(Debug)]
pub struct SimOutcome {
    /// What `Action::Done` carried.
    pub result: Result<Bytes, VllmError>,
    /// Every stream event emitted, in order.
    pub events: Vec<StreamEvent>,
    /// Every action and event of this call, with virtual time offsets from the simulator's
    /// start.
    pub timeline: Vec<TimelineEntry>,
    /// The driver's own report.
    pub report: CallReport,
    /// The duration of every sleep (backoff and rate limit), in order.
    pub sleeps: Vec<Duration>,
    /// The offset of every send, in order.
    pub sends: Vec<Duration>,
    /// Breaches of the driver's contract seen while driving (empty when all is well).
    pub violations: Vec<String>,
    /// Set when the simulator had to stop the call itself.
    pub fault: Option<SimFault>,
    /// When the call started (offset).
    pub started_at: Duration,
    /// When the call returned `Done` (offset).
    pub ended_at: Duration,
}

impl SimOutcome {
    /// The timeline as text, one entry per line (`<offset> <step>`).
    pub fn render(&self) -> String {
        render(self.timeline.iter())
    }

    /// The timeline as text without the `read` actions and `chunk` events (the shape of a
    /// scenario: sends, heads, sleeps, emits, timeouts, the result).
    pub fn brief(&self) -> String {
        render(
            self.timeline
                .iter()
                .filter(|e| !matches!(e.step, Step::ReadBody { .. } | Step::Chunk(_))),
        )
    }

    /// The texts of the `Content` events, concatenated.
    pub fn content(&self) -> String {
        self.events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Content(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The last event, if any.
    pub fn last_event(&self) -> Option<&StreamEvent> {
        self.events.last()
    }

    /// Whether the run had no violation and no fault.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.fault.is_none()
    }
}

fn render<'a>(entries: impl Iterator<Item = &'a TimelineEntry>) -> String {
    let mut s = String::new();
    for e in entries {
        s.push_str(&e.to_string());
        s.push('\n');
    }
    s
}

// --------------------------------------------------------------------------------------------
// The simulator
// --------------------------------------------------------------------------------------------

/// One call for [`Sim::run_all`]: what to call, the script of its attempts, when it starts and
/// (optionally) when its caller drops it.
#[derive(Debug, Clone)]
pub struct SimCall {
    spec: CallSpec,
    script: Vec<SimResponse>,
    start_after: Duration,
    cancel_after: Option<Duration>,
}

impl SimCall {
    /// A call starting when the run starts.
    pub fn new(spec: CallSpec, script: Vec<SimResponse>) -> SimCall {
        SimCall {
            spec,
            script,
            start_after: Duration::ZERO,
            cancel_after: None,
        }
    }

    /// Starts `d` after the run starts.
    pub fn start_after(mut self, d: Duration) -> SimCall {
        self.start_after = d;
        self
    }

    /// The caller drops the call `d` after the run starts (unless it ended before):
    /// [`Call::cancel`] is called then.
    pub fn cancel_after(mut self, d: Duration) -> SimCall {
        self.cancel_after = Some(d);
        self
    }
}

/// The virtual-time simulator: see the [module docs](self).
#[derive(Debug)]
pub struct Sim {
    config: ClientConfig,
    shared: Shared,
    origin: Instant,
    wall_origin: SystemTime,
    now: Instant,
    max_steps: usize,
    timeline: Vec<TimelineEntry>,
}

impl Sim {
    /// A simulator for calls with `config`; `seed` seeds [`Shared`] (the jitter), unless the
    /// policy has a seed of its own.
    pub fn new(config: ClientConfig, seed: u64) -> Sim {
        let shared = Shared::new(&config.policy, seed);
        let origin = Instant::now();
        Sim {
            config,
            shared,
            origin,
            wall_origin: SystemTime::UNIX_EPOCH + Duration::from_secs(WALL_ORIGIN_SECS),
            now: origin,
            max_steps: DEFAULT_MAX_STEPS,
            timeline: Vec::new(),
        }
    }

    /// Bounds the driver steps of each [`run`](Self::run) / [`run_all`](Self::run_all).
    pub fn with_max_steps(mut self, max_steps: usize) -> Sim {
        self.max_steps = max_steps;
        self
    }

    /// The configuration calls are made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The shared state (breaker, budget, limiters).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The shared state, to inspect transitions or force the breaker.
    pub fn shared_mut(&mut self) -> &mut Shared {
        &mut self.shared
    }

    /// The current virtual instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the simulator started.
    pub fn elapsed(&self) -> Duration {
        self.now.saturating_duration_since(self.origin)
    }

    /// The offset of `t` from the simulator's start.
    pub fn offset(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.origin)
    }

    /// The wall-clock time at the current virtual instant.
    pub fn wall_now(&self) -> SystemTime {
        self.wall_origin + self.elapsed()
    }

    /// Moves the virtual clock forward.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.checked_add(d).unwrap_or(self.now);
    }

    /// Every timeline entry of every run so far, in order.
    pub fn timeline(&self) -> &[TimelineEntry] {
        &self.timeline
    }

    /// Runs one call to its end, starting now.
    pub fn run(&mut self, spec: CallSpec, script: Vec<SimResponse>) -> SimOutcome {
        let mut out = self.run_all(vec![SimCall::new(spec, script)]);
        match out.pop() {
            Some(o) => o,
            // Unreachable: run_all returns one outcome per call.
            None => SimOutcome {
                result: Err(VllmError::InvalidRequest("simulator: no outcome".into())),
                events: Vec::new(),
                timeline: Vec::new(),
                report: CallReport::default(),
                sleeps: Vec::new(),
                sends: Vec::new(),
                violations: Vec::new(),
                fault: Some(SimFault::Unexpected("no outcome".into())),
                started_at: self.elapsed(),
                ended_at: self.elapsed(),
            },
        }
    }

    /// Runs these calls concurrently over the shared state until all have ended; returns their
    /// outcomes in the same order. At one virtual instant, calls act in list order.
    pub fn run_all(&mut self, calls: Vec<SimCall>) -> Vec<SimOutcome> {
        let run_start = self.now;
        let mut tasks: Vec<Task> = calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| Task::new(i, c, run_start, self.elapsed()))
            .collect();
        let mut steps = 0usize;
        loop {
            // The next task to act: the earliest wake, list order on ties.
            let next = tasks
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.wake(self.now).map(|w| (w, i)))
                .min();
            let Some((wake, i)) = next else {
                // Nothing scheduled: every call ended, or the rest wait forever.
                let mut any = false;
                for t in tasks.iter_mut().filter(|t| !t.is_done()) {
                    any = true;
                    self.fault(t, SimFault::Hang);
                }
                if any {
                    self.wake_waiters(&mut tasks);
                    continue;
                }
                break;
            };
            if wake > self.now {
                self.now = wake;
            }
            steps += 1;
            if steps > self.max_steps {
                for t in tasks.iter_mut().filter(|t| !t.is_done()) {
                    self.fault(t, SimFault::StepLimit);
                }
                break;
            }
            self.step(&mut tasks[i], &mut steps);
            self.wake_waiters(&mut tasks);
        }
        tasks.into_iter().map(|t| t.into_outcome()).collect()
    }

    /// Wakes exactly the waiters the core names ([`Shared::poll_wake`]): they are told
    /// [`Event::PermitReleased`] now. Nobody else is woken.
    fn wake_waiters(&mut self, tasks: &mut [Task]) {
        while let Some(waiter) = self.shared.poll_wake() {
            for t in tasks.iter_mut() {
                if matches!(t.wait, Wait::Permit(_, w) if w == waiter) {
                    t.wait = Wait::At(self.now, Pending::PermitReleased);
                }
            }
        }
    }

    fn record(&mut self, task: &mut Task, step: Step) {
        let entry = TimelineEntry {
            at: self.elapsed(),
            call: task.index,
            step,
        };
        self.timeline.push(entry.clone());
        task.timeline.push(entry);
    }

    fn off(&self, t: Option<Instant>) -> Option<Duration> {
        t.map(|t| self.offset(t))
    }

    /// Cancels a call the simulator cannot continue, and collects its result.
    fn fault(&mut self, task: &mut Task, fault: SimFault) {
        task.fault.get_or_insert(fault);
        let now = self.now;
        if let Some(call) = task.call.as_mut() {
            call.cancel(now, &mut self.shared);
            self.record(task, Step::Cancel);
            if let Some(call) = task.call.as_mut() {
                match call.poll(now, &mut self.shared) {
                    Action::Done(r) => {
                        let step =
                            Step::Done(r.as_ref().map(|b| b.len()).map_err(|e| e.to_string()));
                        self.record(task, step);
                        task.finish(r, self.elapsed());
                        return;
                    }
                    other => task.violations.push(format!(
                        "after cancel, poll returned {other:?} instead of Done"
                    )),
                }
            }
        }
        let e = VllmError::InvalidRequest(format!(
            "simulator fault: {}",
            task.fault
                .as_ref()
                .map(|f| f.to_string())
                .unwrap_or_default()
        ));
        task.finish(Err(e), self.elapsed());
    }

    /// Delivers what the task waits for, then polls it until it blocks again.
    fn step(&mut self, task: &mut Task, steps: &mut usize) {
        let now = self.now;
        // Scripted cancellation preempts whatever the call waits for.
        if task.cancel_at.is_some_and(|c| c <= now) && task.call.is_some() && !task.is_done() {
            task.cancel_at = None;
            task.was_cancelled = true;
            if let Some(call) = task.call.as_mut() {
                call.cancel(now, &mut self.shared);
            }
            self.record(task, Step::Cancel);
            task.wait = Wait::Poll;
            task.body = None;
        } else {
            match std::mem::replace(&mut task.wait, Wait::Poll) {
                Wait::Start(_) => {
                    let spec = task.spec.take().unwrap_or_else(chat_json);
                    let call = Call::new(&self.config, spec, now, &mut self.shared);
                    task.overall = self.config.policy.timeouts.deadline_from(now);
                    task.started_at = self.elapsed();
                    task.call = Some(call);
                    self.record(task, Step::Start);
                    if let Some(bad) = task.invalid_script.take() {
                        self.fault(task, SimFault::InvalidScript(bad));
                        return;
                    }
                }
                Wait::At(_, pending) => self.deliver(task, pending),
                Wait::Permit(..) => {
                    // Its deadline passed.
                    self.deliver(task, Pending::Timeout);
                }
                Wait::Poll => {}
                w @ (Wait::Never | Wait::Done) => {
                    task.wait = w;
                    return;
                }
            }
        }
        self.drive(task, steps);
    }

    fn deliver(&mut self, task: &mut Task, pending: Pending) {
        let now = self.now;
        let (step, event) = match pending {
            Pending::Head(head) => {
                let status = head.status.as_u16();
                (Step::Response(status), Event::Response(head))
            }
            Pending::Transport(kind) => (
                Step::TransportError(kind),
                Event::TransportError {
                    kind,
                    message: format!("simulated {kind:?}"),
                },
            ),
            Pending::Chunk(b) => (Step::Chunk(b.len()), Event::Chunk(b)),
            Pending::BodyEnd => (Step::BodyEnd, Event::BodyEnd),
            Pending::Timeout => (Step::Timeout, Event::Timeout),
            Pending::PermitReleased => (Step::PermitReleased, Event::PermitReleased),
        };
        self.record(task, step);
        if let Some(call) = task.call.as_mut() {
            call.handle(now, event, &mut self.shared);
        }
    }

    /// Polls until the call blocks on something in the future (or ends).
    fn drive(&mut self, task: &mut Task, steps: &mut usize) {
        loop {
            *steps += 1;
            if *steps > self.max_steps {
                self.fault(task, SimFault::StepLimit);
                return;
            }
            let now = self.now;
            let Some(call) = task.call.as_mut() else {
                return;
            };
            let action = call.poll(now, &mut self.shared);
            match action {
                Action::Emit(ev) => {
                    if task.terminal_emitted {
                        task.violations
                            .push(format!("event emitted after the terminal one: {ev:?}"));
                    }
                    if !task.is_stream {
                        task.violations
                            .push(format!("a non-stream call emitted {ev:?}"));
                    }
                    task.terminal_emitted |= ev.is_terminal();
                    self.record(task, Step::Emit(Emitted::of(&ev)));
                    task.events.push(ev);
                }
                Action::Done(r) => {
                    let step = Step::Done(r.as_ref().map(|b| b.len()).map_err(|e| e.to_string()));
                    self.record(task, step);
                    if task.overall.is_some_and(|d| now > d) {
                        task.violations.push(format!(
                            "the call ended at {:?}, after its deadline",
                            self.elapsed()
                        ));
                    }
                    if task.is_stream && task.fault.is_none() && !task.cancelled() {
                        if !task.events.is_empty() && r.is_err() {
                            task.violations
                                .push("a stream that emitted events ended with Err".into());
                        }
                        if r.is_ok() && !task.terminal_emitted {
                            task.violations
                                .push("a stream ended Ok without a terminal event".into());
                        }
                    }
                    task.finish(r, self.elapsed());
                    return;
                }
                Action::Send {
                    deadline,
                    connect_timeout,
                    ..
                } => {
                    task.sends.push(self.elapsed());
                    let attempt = task.sends.len() as u32;
                    self.check_deadline(task, deadline, "send");
                    if !task.events.is_empty() {
                        task.violations
                            .push(format!("send #{attempt} after a stream event was emitted"));
                    }
                    let max = self.config.policy.retry.max_retries.saturating_add(1);
                    if attempt > max {
                        task.violations
                            .push(format!("send #{attempt} exceeds 1 + max_retries = {max}"));
                    }
                    let off = self.off(deadline);
                    self.record(
                        task,
                        Step::Send {
                            attempt,
                            deadline: off,
                        },
                    );
                    let Some(resp) = task.script.pop_front() else {
                        self.fault(task, SimFault::ScriptExhausted);
                        return;
                    };
                    self.answer(task, resp, deadline, connect_timeout);
                    return;
                }
                Action::ReadBody { deadline, .. } => {
                    self.check_deadline(task, deadline, "read");
                    let off = self.off(deadline);
                    self.record(task, Step::ReadBody { deadline: off });
                    self.read(task, deadline);
                    return;
                }
                Action::Sleep { until, reason } => {
                    let duration = until.saturating_duration_since(now);
                    if task.overall.is_some_and(|d| until > d) {
                        task.violations.push(format!(
                            "a sleep ends at {:?}, past the deadline",
                            self.offset(until)
                        ));
                    }
                    task.sleeps.push(duration);
                    let retry = matches!(reason, SleepReason::Retry(_));
                    self.record(task, Step::Sleep { duration, retry });
                    task.wait = Wait::At(until.max(now), Pending::Timeout);
                    return;
                }
                Action::WaitForPermit { deadline, waiter } => {
                    self.check_deadline(task, deadline, "permit wait");
                    let off = self.off(deadline);
                    self.record(task, Step::WaitForPermit { deadline: off });
                    task.wait = Wait::Permit(deadline, waiter);
                    return;
                }
            }
        }
    }

    fn check_deadline(&self, task: &mut Task, deadline: Option<Instant>, what: &str) {
        if let (Some(d), Some(overall)) = (deadline, task.overall) {
            if d > overall {
                task.violations.push(format!(
                    "{what} deadline {:?} is past the overall deadline {:?}",
                    self.offset(d),
                    self.offset(overall)
                ));
            }
        }
    }

    /// Schedules the answer to a send: head, transport error or timeout.
    fn answer(
        &mut self,
        task: &mut Task,
        resp: SimResponse,
        deadline: Option<Instant>,
        connect_timeout: Option<Duration>,
    ) {
        let now = self.now;
        let at = |d: Duration| now.checked_add(d);
        // Connection phase.
        let connect_timed_out = connect_timeout.filter(|ct| resp.connect_delay > *ct);
        let scheduled: Option<(Option<Instant>, Pending)> = if let Some(ct) = connect_timed_out {
            Some((
                at(ct),
                Pending::Transport(TransportErrorKind::ConnectTimeout),
            ))
        } else {
            match resp.kind {
                Kind::Stall => None,
                Kind::ConnectRefused => Some((
                    at(resp.connect_delay),
                    Pending::Transport(TransportErrorKind::Connect),
                )),
                Kind::ResetBeforeHead => Some((
                    at(resp.connect_delay.saturating_add(resp.head_delay)),
                    Pending::Transport(TransportErrorKind::Io),
                )),
                Kind::Answer => {
                    let when = at(resp.connect_delay.saturating_add(resp.head_delay));
                    let wall = self.wall_origin
                        + when.unwrap_or(now).saturating_duration_since(self.origin);
                    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK);
                    let head = ResponseHead::new(status, resp.headers.clone(), wall);
                    task.body = Some(BodyCursor {
                        parts: resp.parts.into_iter().collect(),
                        ready_at: when.unwrap_or(now),
                        end: resp.end,
                    });
                    Some((when, Pending::Head(head)))
                }
            }
        };
        self.schedule(task, scheduled, deadline);
    }

    /// Races a scheduled arrival (`None`: never) against the deadline.
    fn schedule(
        &mut self,
        task: &mut Task,
        scheduled: Option<(Option<Instant>, Pending)>,
        deadline: Option<Instant>,
    ) {
        // An arrival whose instant overflows never happens.
        let arrival = scheduled.and_then(|(t, p)| t.map(|t| (t, p)));
        task.wait = match (arrival, deadline) {
            (Some((t, _)), Some(d)) if t > d => Wait::At(d, Pending::Timeout),
            (Some((t, p)), _) => Wait::At(t, p),
            (None, Some(d)) => Wait::At(d, Pending::Timeout),
            (None, None) => Wait::Never,
        };
    }

    /// Schedules the next body part, the body's end, or a timeout.
    fn read(&mut self, task: &mut Task, deadline: Option<Instant>) {
        let now = self.now;
        let Some(body) = task.body.as_mut() else {
            self.fault(
                task,
                SimFault::Unexpected("ReadBody without a response".into()),
            );
            return;
        };
        if body.ready_at < now {
            body.ready_at = now;
        }
        while let Some(SimPart::Wait(w)) = body.parts.front() {
            match body.ready_at.checked_add(*w) {
                Some(t) => {
                    body.ready_at = t;
                    body.parts.pop_front();
                }
                None => {
                    // An absurd wait: nothing more ever arrives.
                    body.parts.clear();
                    body.end = SimEnd::Stall;
                }
            }
        }
        let at = body.ready_at;
        let scheduled = match body.parts.front() {
            // Arrives after the deadline: `schedule` turns this into a timeout at the deadline,
            // and the part stays unread.
            Some(SimPart::Data(_)) | Some(SimPart::Comment) if deadline.is_some_and(|d| at > d) => {
                Some((Some(at), Pending::Timeout))
            }
            Some(SimPart::Data(b)) => {
                let b = b.clone();
                body.parts.pop_front();
                Some((Some(at), Pending::Chunk(b)))
            }
            Some(SimPart::Comment) => {
                body.parts.pop_front();
                Some((
                    Some(at),
                    Pending::Chunk(Bytes::from_static(b": keep-alive\n\n")),
                ))
            }
            Some(SimPart::Wait(_)) | None => match body.end {
                SimEnd::Close => Some((Some(at), Pending::BodyEnd)),
                SimEnd::Reset => Some((Some(at), Pending::Transport(TransportErrorKind::Io))),
                SimEnd::Stall => None,
            },
        };
        self.schedule(task, scheduled, deadline);
    }
}

// --------------------------------------------------------------------------------------------
// Tasks
// --------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Pending {
    Head(ResponseHead),
    Transport(TransportErrorKind),
    Chunk(Bytes),
    BodyEnd,
    Timeout,
    PermitReleased,
}

#[derive(Debug)]
enum Wait {
    /// Not created yet; starts at this instant.
    Start(Instant),
    /// Ready to be polled now.
    Poll,
    /// Something happens at this instant.
    At(Instant, Pending),
    /// Waits for a permit as this waiter, until this deadline.
    Permit(Option<Instant>, WaiterId),
    /// Waits for something that never happens.
    Never,
    /// Ended.
    Done,
}

#[derive(Debug)]
struct BodyCursor {
    parts: VecDeque<SimPart>,
    ready_at: Instant,
    end: SimEnd,
}

#[derive(Debug)]
struct Task {
    index: usize,
    spec: Option<CallSpec>,
    is_stream: bool,
    script: VecDeque<SimResponse>,
    invalid_script: Option<String>,
    call: Option<Call>,
    wait: Wait,
    cancel_at: Option<Instant>,
    was_cancelled: bool,
    body: Option<BodyCursor>,
    overall: Option<Instant>,
    terminal_emitted: bool,
    result: Option<Result<Bytes, VllmError>>,
    events: Vec<StreamEvent>,
    timeline: Vec<TimelineEntry>,
    sleeps: Vec<Duration>,
    sends: Vec<Duration>,
    violations: Vec<String>,
    fault: Option<SimFault>,
    started_at: Duration,
    ended_at: Duration,
}

impl Task {
    fn new(index: usize, c: SimCall, run_start: Instant, elapsed: Duration) -> Task {
        let invalid: Vec<String> = c
            .script
            .iter()
            .flat_map(|r| r.invalid.iter().cloned())
            .collect();
        let at = |d: Duration| run_start.checked_add(d).unwrap_or(run_start);
        Task {
            index,
            is_stream: c.spec.stream.is_some(),
            spec: Some(c.spec),
            script: c.script.into_iter().collect(),
            invalid_script: (!invalid.is_empty()).then(|| invalid.join(", ")),
            call: None,
            wait: Wait::Start(at(c.start_after)),
            cancel_at: c.cancel_after.map(at),
            was_cancelled: false,
            body: None,
            overall: None,
            terminal_emitted: false,
            result: None,
            events: Vec::new(),
            timeline: Vec::new(),
            sleeps: Vec::new(),
            sends: Vec::new(),
            violations: Vec::new(),
            fault: None,
            started_at: elapsed,
            ended_at: elapsed,
        }
    }

    fn is_done(&self) -> bool {
        matches!(self.wait, Wait::Done)
    }

    fn cancelled(&self) -> bool {
        self.was_cancelled
    }

    /// When this task next acts.
    fn wake(&self, now: Instant) -> Option<Instant> {
        let own = match &self.wait {
            Wait::Start(t) => return Some(*t),
            Wait::Poll => Some(now),
            Wait::At(t, _) => Some(*t),
            Wait::Permit(d, _) => *d,
            Wait::Never | Wait::Done => None,
        };
        if matches!(self.wait, Wait::Done) {
            return None;
        }
        match (own, self.cancel_at) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        }
    }

    fn finish(&mut self, r: Result<Bytes, VllmError>, at: Duration) {
        if self.result.is_none() {
            self.result = Some(r);
            self.ended_at = at;
        }
        self.wait = Wait::Done;
        self.body = None;
    }

    fn into_outcome(self) -> SimOutcome {
        let report = self
            .call
            .as_ref()
            .map(|c| c.report().clone())
            .unwrap_or_default();
        SimOutcome {
            result: self.result.unwrap_or_else(|| {
                Err(VllmError::InvalidRequest(
                    "simulator: the call never ended".into(),
                ))
            }),
            events: self.events,
            timeline: self.timeline,
            report,
            sleeps: self.sleeps,
            sends: self.sends,
            violations: self.violations,
            fault: self.fault,
            started_at: self.started_at,
            ended_at: self.ended_at,
        }
    }
}
