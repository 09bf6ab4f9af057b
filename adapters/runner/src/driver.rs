//! [`Driver`]: one call and its client — the part of the run loop that is the same for async
//! and blocking transports: ask the core what to do (taking the client lock only when the
//! core says it needs it), report what happened, register a waiting call for its wake-up, and
//! turn what the call did into telemetry. Everything else is IO, in the loop files.

use std::sync::Arc;
use std::time::Instant;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use smallvec::SmallVec;
use vllm_client_core::call::{
    Action, AttemptId, Call, CallReport, CallSpec, Event, TransportErrorKind,
};
use vllm_client_core::policy::WaiterId;
use vllm_client_core::{StreamEvent, VllmError};

use crate::client::ClientState;
use crate::telemetry::Telemetry;
use crate::turn::Turn;

/// What the loop stops for.
pub(crate) enum Step {
    Emit(StreamEvent),
    Done(Result<Bytes, VllmError>),
}

/// The IO an action asks the transport for; everything else is the driver's.
// The request stays boxed as the core handed it: an `Io` is returned once per poll.
pub(crate) enum Io {
    Send {
        attempt: AttemptId,
        request: Box<Request<Bytes>>,
        deadline: Option<Instant>,
        connect_timeout: Option<Duration>,
    },
    Read {
        attempt: AttemptId,
        deadline: Option<Instant>,
    },
    Close {
        attempt: AttemptId,
    },
    Wait {
        until: Option<Instant>,
        /// Whether the call also waits for its turn for a slot.
        permit: bool,
    },
}

/// The operations a loop holds for a call's attempts in flight, whatever it holds them as.
/// Inline room for one: a call usually has one operation at a time, kept in the runner's
/// own allocation.
pub(crate) struct Ops<O>(pub(crate) SmallVec<[Held<O>; 1]>);

/// One operation and its attempt. `repr(C)`: the attempt and the operation's tag share the
/// first cache line, which every poll of a wait reads (a tuple would put the attempt last).
#[repr(C)]
pub(crate) struct Held<O> {
    pub(crate) attempt: AttemptId,
    pub(crate) op: O,
}

impl<O> Ops<O> {
    pub(crate) fn new() -> Self {
        Ops(SmallVec::new())
    }

    pub(crate) fn push(&mut self, attempt: AttemptId, op: O) {
        self.0.push(Held { attempt, op });
    }

    pub(crate) fn get(&mut self, attempt: AttemptId) -> Option<&mut O> {
        self.0
            .iter_mut()
            .find(|h| h.attempt == attempt)
            .map(|h| &mut h.op)
    }

    pub(crate) fn remove(&mut self, attempt: AttemptId) {
        self.0.retain(|h| h.attempt != attempt);
    }
}

/// The text of choice 0 of a stream, event by event: `Some` at its end (`Ok` on `Done`, the
/// error otherwise), for `collect_content`.
#[derive(Default)]
pub(crate) struct Collect(String);

impl Collect {
    pub(crate) fn push(&mut self, event: Option<StreamEvent>) -> Option<Result<String, VllmError>> {
        match event {
            Some(StreamEvent::Content(s)) => {
                self.0.push_str(&s);
                None
            }
            Some(StreamEvent::Done) => Some(Ok(std::mem::take(&mut self.0))),
            Some(StreamEvent::Error(e)) => Some(Err(e)),
            Some(_) => None,
            None => Some(Err(VllmError::Truncated)),
        }
    }
}

/// Reported when the core asks to read an attempt the loop holds no response for (a misuse).
pub(crate) fn no_response(attempt: AttemptId) -> Event {
    Event::TransportError {
        attempt,
        kind: TransportErrorKind::Io,
        message: "no response to read".into(),
        source: None,
    }
}

// `repr(C)`: what each poll reads first (see the runner's layout).
#[repr(C)]
pub(crate) struct Driver {
    /// Inline, not boxed: its hot fields then follow the runner's in the same allocation
    /// (the boxed stream or future that holds the runner), and a chunk's first cache miss
    /// is not followed by another for a second allocation. The driver is moved a few times
    /// before its loop starts, never per event.
    call: Call,
    /// The time the loop runs at between two waits: read when what ended a wait is handled
    /// (or by the first poll after a wait), then given to every poll until the next wait —
    /// one clock read per wake-up instead of one per poll (a paced stream polls three times
    /// per event). The core takes `now` as given and decides nothing between two waits that
    /// needs time to have moved on: a deadline that passed meanwhile (while the caller held an
    /// event, say) is in the next wait's `until`, whose timer then fires at once.
    clock: Option<Instant>,
    /// Set when the core said the poll after a `ReadBody` would only wait until this deadline
    /// (`Call::waits_after_read`): the loop then waits without that poll.
    read_wait: Option<Option<Instant>>,
    /// The time the last event was handled at, until the next poll of a wait takes it
    /// ([`take_handled_at`](Self::take_handled_at)).
    handled_at: Option<Instant>,
    /// Set when this call's turn for a slot came.
    pub(crate) turn: Arc<Turn>,
    waiter: Option<WaiterId>,
    client: Arc<ClientState>,
    telemetry: Telemetry,
}

impl Driver {
    pub(crate) fn new(client: Arc<ClientState>, spec: CallSpec) -> Driver {
        let call = {
            let mut shared = client.lock();
            Call::new(client.config(), spec, Instant::now(), &mut shared)
        };
        let telemetry = Telemetry::new(call.meta(), client.endpoint_urls());
        let mut driver = Driver {
            client,
            call,
            turn: Arc::new(Turn::default()),
            waiter: None,
            telemetry,
            clock: None,
            read_wait: None,
            handled_at: None,
        };
        driver.observe();
        driver
    }

    /// Reports what the call did since the last time (spans, events, metrics). Most polls of
    /// a stream did nothing to report: that is checked inline.
    #[inline]
    fn observe(&mut self) {
        if self.call.has_observations() {
            self.telemetry.drain(&mut self.call, &self.client.sink);
        }
    }

    /// What the server's rate-limit headers said, once a response head arrived.
    pub(crate) fn rate_limit(&self) -> Option<vllm_client_core::policy::RateLimitSnapshot> {
        self.call.report().rate_limit
    }

    pub(crate) fn report(&self) -> CallReport {
        self.call.report().clone()
    }

    /// What to do next. The lock is taken only when the call owes or needs the shared state
    /// (never to read or emit a body); a call told to wait for a slot is registered for its
    /// wake-up.
    #[inline]
    pub(crate) fn next(&mut self) -> Action {
        let client = &self.client;
        let now = *self.clock.get_or_insert_with(Instant::now);
        let action = self.call.poll_with(now, || client.lock());
        if let Action::Wait {
            waiter: Some(waiter),
            ..
        } = &action
        {
            self.client.register(*waiter, &self.turn);
            self.waiter = Some(*waiter);
        }
        self.observe();
        match &action {
            Action::Emit(ev) => self
                .telemetry
                .on_emit(ev, now, &self.call, &self.client.sink),
            // What ends the wait is handled with a fresh time.
            Action::Wait { .. } => self.clock = None,
            Action::Done(_) => {
                self.clock = None;
                self.forget_waiter();
            }
            _ => {}
        }
        action
    }

    /// The next IO for the transport, or what the loop stops for.
    #[inline]
    pub(crate) fn next_io(&mut self) -> Result<Io, Step> {
        if let Some(until) = self.read_wait.take() {
            // What ends the wait is handled with a fresh time.
            self.clock = None;
            return Ok(Io::Wait {
                until,
                permit: false,
            });
        }
        Ok(match self.next() {
            Action::Send {
                attempt,
                mut request,
                deadline,
                connect_timeout,
                ..
            } => {
                self.telemetry.trace_context(&mut request);
                Io::Send {
                    attempt,
                    request,
                    deadline,
                    connect_timeout,
                }
            }
            Action::ReadBody { attempt, deadline } => {
                if self.call.waits_after_read() {
                    self.read_wait = Some(deadline);
                }
                Io::Read { attempt, deadline }
            }
            Action::Close { attempt } => Io::Close { attempt },
            Action::Wait { until, waiter, .. } => Io::Wait {
                until,
                permit: waiter.is_some(),
            },
            Action::Emit(ev) => return Err(Step::Emit(ev)),
            Action::Done(result) => return Err(Step::Done(result)),
        })
    }

    /// Reports what happened (never takes the lock: what the call then owes the shared state
    /// is paid at its next poll). What it observed is reported at that poll too: a loop
    /// always asks for the next action after an event, and the queue keeps the order.
    pub(crate) fn handle(&mut self, event: Event) {
        self.read_wait = None;
        let now = Instant::now();
        self.clock = Some(now);
        self.handled_at = Some(now);
        self.call.handle(now, event);
    }

    /// The time the last event was handled at, once: the first poll of the wait that follows
    /// may take it for "now" (no time has passed that could have fired a timer without waking
    /// the task, and a wake brings a poll that finds nothing here and reads the clock).
    pub(crate) fn take_handled_at(&mut self) -> Option<Instant> {
        self.handled_at.take()
    }

    fn forget_waiter(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.client.forget(waiter);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.call.is_finished() || self.call.needs_shared() {
            let mut shared = self.client.lock();
            self.call.cancel(Instant::now(), &mut shared);
        }
        self.observe();
        self.forget_waiter();
    }
}
