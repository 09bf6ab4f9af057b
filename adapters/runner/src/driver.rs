//! [`Driver`]: one call and its client, the part of the run loop that is the same for async
//! and blocking transports — ask the core what to do, report what happened, take the
//! client lock only when the call owes the shared state something.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use vllm_client_core::{StreamEvent, VllmError};

use vllm_client_core::call::{
    Action, Call, CallReport, CallSpec, Event, Hedge, HedgeStep, Leg, TransportErrorKind,
};
use vllm_client_core::policy::WaiterId;

use crate::client::ClientState;
use crate::telemetry::Telemetry;
use crate::turn::Turn;

/// What the loop stops for.
pub(crate) enum Step {
    Emit(StreamEvent),
    Done(Result<Bytes, VllmError>),
}

/// The IO an action asks the transport for; everything else is decided in [`Driver::next_io`].
// Short-lived, moved once per action: boxing the request would cost an allocation per send.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Io {
    Send {
        request: Request<Bytes>,
        deadline: Option<Instant>,
        connect_timeout: Option<Duration>,
    },
    Read {
        deadline: Option<Instant>,
    },
    Sleep {
        until: Instant,
    },
    Wait {
        deadline: Option<Instant>,
    },
}

/// Reported when the driver asks to read a body the loop does not have (a misuse).
pub(crate) fn no_response() -> Event {
    Event::TransportError {
        kind: TransportErrorKind::Io,
        message: "no response to read".into(),
    }
}

pub(crate) struct Driver {
    client: Arc<ClientState>,
    /// Boxed: the driver moves with the run loop's futures, a call is 2 KB.
    call: Box<Call>,
    /// Set when this call's turn for a slot came.
    pub(crate) turn: Arc<Turn>,
    waiter: Option<WaiterId>,
    /// The hedge of a primary call that may hedge its first token (shown the call after each
    /// poll, so the run loop can ask it while the call runs).
    pub(crate) hedge: Option<Arc<Mutex<Hedge>>>,
    telemetry: Telemetry,
}

impl Driver {
    pub(crate) fn new(client: Arc<ClientState>, spec: CallSpec) -> Driver {
        let (call, hedge) = {
            let mut shared = client.lock();
            let now = Instant::now();
            let call = Call::new(client.config(), spec, now, &mut shared);
            let hedge = Hedge::new(&call, now, &mut shared);
            (call, hedge)
        };
        let mut driver = Driver::of_call(client, call);
        driver.hedge = hedge.deadline().map(|_| Arc::new(Mutex::new(hedge)));
        driver
    }

    /// Reports what the call did since the last time (spans, events, metrics).
    fn observe(&mut self) {
        self.telemetry.drain(&mut self.call, &self.client.sink);
    }

    /// What the server's rate-limit headers said, once a response head arrived.
    pub(crate) fn rate_limit(&self) -> Option<vllm_client_core::policy::RateLimitSnapshot> {
        self.call.report().rate_limit
    }

    /// A driver for `call` (made by [`new`](Self::new), or a hedge's backup).
    fn of_call(client: Arc<ClientState>, call: Call) -> Driver {
        let telemetry = Telemetry::new(call.meta(), client.endpoint_urls.clone());
        let mut driver = Driver {
            client,
            call: Box::new(call),
            turn: Arc::new(Turn::default()),
            waiter: None,
            hedge: None,
            telemetry,
        };
        driver.observe();
        driver
    }

    /// At the hedge deadline: the backup leg's driver, when the core allows a hedge now.
    pub(crate) fn start_backup(
        client: &Arc<ClientState>,
        hedge: &Mutex<Hedge>,
        spec: CallSpec,
    ) -> Option<Driver> {
        let call = {
            let mut shared = client.lock();
            lock(hedge).start_backup(Instant::now(), client.config(), spec, &mut shared)
        }?;
        crate::telemetry::hedge(None, &client.sink);
        Some(Driver::of_call(client.clone(), call))
    }

    pub(crate) fn client(&self) -> &Arc<ClientState> {
        &self.client
    }

    pub(crate) fn report(&self) -> CallReport {
        self.call.report().clone()
    }

    /// What to do next. Reading and emitting a body need no lock; everything else takes it,
    /// and a call told to wait is registered before the lock is released.
    pub(crate) fn next(&mut self) -> Action {
        let now = Instant::now();
        let action = match self.call.poll_local(now) {
            Some(action) => {
                self.flush();
                action
            }
            None => {
                let mut shared = self.client.lock();
                let action = self.call.poll(now, &mut shared);
                if let Action::WaitForPermit { waiter, .. } = &action {
                    self.client.register(&shared, *waiter, self.turn.clone());
                    self.waiter = Some(*waiter);
                }
                action
            }
        };
        if let Some(hedge) = &self.hedge {
            lock(hedge).observe(&self.call);
        }
        self.observe();
        match &action {
            Action::Emit(ev) => {
                self.telemetry.on_emit(ev, &self.call, &self.client.sink);
            }
            Action::Done(_) => self.forget_waiter(),
            _ => {}
        }
        action
    }

    /// The next IO for the transport, or what to hand the caller. The response in hand is
    /// dropped unless the action still concerns it (the contract's rule 5: a response lives
    /// only while its body is read or its non-terminal events are emitted).
    pub(crate) fn next_io<R>(&mut self, response: &mut Option<R>) -> Result<Io, Step> {
        let action = self.next();
        let keep = match &action {
            Action::ReadBody { .. } => true,
            Action::Emit(ev) => !ev.is_terminal(),
            _ => false,
        };
        if !keep {
            *response = None;
        }
        match action {
            Action::Emit(ev) => Err(Step::Emit(ev)),
            Action::Done(result) => Err(Step::Done(result)),
            Action::Send {
                request,
                deadline,
                connect_timeout,
                ..
            } => Ok(Io::Send {
                request: self.telemetry.trace_context(request),
                deadline,
                connect_timeout,
            }),
            Action::ReadBody { deadline, .. } => Ok(Io::Read { deadline }),
            Action::Sleep { until, .. } => Ok(Io::Sleep { until }),
            Action::WaitForPermit { deadline, .. } => Ok(Io::Wait { deadline }),
        }
    }

    /// Reports what happened; the lock is taken only if the call then owes the shared state.
    pub(crate) fn handle(&mut self, event: Event) {
        self.call.handle_local(Instant::now(), event);
        self.flush();
        self.observe();
    }

    fn flush(&mut self) {
        if self.call.has_effects() {
            let mut shared = self.client.lock();
            self.call.flush(Instant::now(), &mut shared);
        }
    }

    fn forget_waiter(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.client.forget(waiter);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.call.is_finished() || self.call.has_effects() {
            let mut shared = self.client.lock();
            self.call.cancel(Instant::now(), &mut shared);
        }
        self.observe();
        self.forget_waiter();
    }
}

pub(crate) fn lock(hedge: &Mutex<Hedge>) -> MutexGuard<'_, Hedge> {
    hedge.lock().unwrap_or_else(|p| p.into_inner())
}

/// A hedged leg's first step: what the core says to do with it (and the log line of the win).
pub(crate) fn judge_leg(
    client: &ClientState,
    hedge: &Mutex<Hedge>,
    leg: Leg,
    step: &Step,
) -> HedgeStep {
    let decision = lock(hedge).on_step(leg, matches!(step, Step::Emit(_)));
    if let HedgeStep::Deliver { cancel_other: true } = decision {
        crate::telemetry::hedge(Some(leg), &client.sink);
    }
    decision
}
