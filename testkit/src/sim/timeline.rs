//! What a run records: the [`Step`]s of every call on a [`TimelineEntry`] timeline, the
//! [`SimOutcome`] of each call, and its text renderings.

use std::fmt;
use std::time::Duration;

#[cfg(doc)]
use super::Sim;
use bytes::Bytes;
use vllm_client_core::call::{CallReport, TransportErrorKind};
use vllm_client_core::{StreamEvent, VllmError};

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
    pub(super) fn of(ev: &StreamEvent) -> Emitted {
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
        /// The server it went to (`host:port`), when the simulator has servers
        /// ([`Sim::with_servers`](super::Sim::with_servers)).
        to: Option<String>,
    },
    /// Action: send a hedge, a second attempt racing the first for the first token.
    Hedge {
        /// Its number among the call's requests (attempts and hedges), 1-based.
        attempt: u32,
        /// The head deadline handed out, as an offset.
        deadline: Option<Duration>,
        /// The server it went to (`host:port`), when the simulator has servers.
        to: Option<String>,
    },
    /// Action: close an attempt (its response dropped, its connection closed).
    Close,
    /// Action: a pool's health probe (`GET /health`) to this server.
    Probe {
        /// The server (`host:port`).
        to: String,
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
            Step::Send {
                attempt,
                deadline,
                to: None,
            } => write!(f, "send #{attempt} ({})", dl(deadline)),
            Step::Send {
                attempt,
                deadline,
                to: Some(to),
            } => write!(f, "send #{attempt} to {to} ({})", dl(deadline)),
            Step::Hedge {
                attempt,
                deadline,
                to: None,
            } => write!(f, "hedge #{attempt} ({})", dl(deadline)),
            Step::Hedge {
                attempt,
                deadline,
                to: Some(to),
            } => write!(f, "hedge #{attempt} to {to} ({})", dl(deadline)),
            Step::Close => write!(f, "close"),
            Step::Probe { to } => write!(f, "health probe to {to}"),
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
    /// The offset of every send of an attempt (the first and the retries), in order.
    pub sends: Vec<Duration>,
    /// The offset of the hedge, when the call sent one.
    pub hedges: Vec<Duration>,
    /// Breaches of the driver's contract seen while driving (empty when all is well).
    pub violations: Vec<String>,
    /// Set when the simulator had to stop the call itself.
    pub fault: Option<SimFault>,
    /// When the call started (offset).
    pub started_at: Duration,
    /// When the call returned `Done` (offset).
    pub ended_at: Duration,
    /// What the driver reported it did ([`Call::poll_observation`](vllm_client_core::call::Call::poll_observation)),
    /// drained when the call ended.
    pub observations: Vec<vllm_client_core::call::Observation>,
}

impl SimOutcome {
    /// The timeline as text, one entry per line (`<offset> <step>`).
    pub fn render(&self) -> String {
        render(self.timeline.iter())
    }

    /// The timeline as text without the `read` and `close` actions and `chunk` events (the
    /// shape of a scenario: sends, heads, sleeps, emits, timeouts, the result).
    pub fn brief(&self) -> String {
        render(
            self.timeline.iter().filter(|e| {
                !matches!(e.step, Step::ReadBody { .. } | Step::Chunk(_) | Step::Close)
            }),
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
