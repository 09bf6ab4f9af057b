//! The run loop: performs the driver's actions with ureq on an IO thread per attempt, waiting
//! for its results with the core's deadlines (see the crate docs).

use std::io::Read;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use vllm_client_core::call::log::{self, LogLevel, LogLine};
use vllm_client_core::call::{Action, Call, CallReport, Event, ResponseHead, TransportErrorKind};
use vllm_client_core::client::CallSpec;
use vllm_client_core::{StreamEvent, VllmError};

use crate::executor::{Inner, Turn};
use vllm_client_core::policy::WaiterId;

/// Bytes asked for per read of a body.
const READ_CHUNK: usize = 16 << 10;

/// What the loop stops for.
pub(crate) enum Step {
    Emit(StreamEvent),
    Done(Result<Bytes, VllmError>),
}

pub(crate) struct Runner {
    inner: Arc<Inner>,
    call: Call,
    /// The current attempt's IO thread; dropping it ends the attempt.
    io: Option<Io>,
    /// Set when this call's turn for a concurrency slot has come.
    turn: Arc<Turn>,
    waiter: Option<WaiterId>,
}

impl Runner {
    pub(crate) fn new(inner: Arc<Inner>, spec: CallSpec) -> Self {
        let call = {
            let mut shared = inner.shared();
            Call::new(&inner.config, spec, Instant::now(), &mut shared)
        };
        Runner {
            inner,
            call,
            io: None,
            turn: Arc::new(Turn::default()),
            waiter: None,
        }
    }

    pub(crate) fn report(&self) -> CallReport {
        self.call.report().clone()
    }

    /// Runs until the call is over, ignoring stream events (JSON calls emit none).
    pub(crate) fn finish(&mut self) -> Result<Bytes, VllmError> {
        loop {
            if let Step::Done(r) = self.step() {
                return r;
            }
        }
    }

    /// Runs until the next event for the caller, or the end.
    pub(crate) fn step(&mut self) -> Step {
        loop {
            let action = self.poll();
            let event = match action {
                Action::Emit(ev) => {
                    if ev.is_terminal() {
                        // The contract: a finished stream's connection is closed, not reused.
                        self.io = None;
                    }
                    return Step::Emit(ev);
                }
                Action::Done(result) => {
                    self.io = None;
                    self.forget_waiter();
                    return Step::Done(result);
                }
                Action::Send {
                    request,
                    deadline,
                    connect_timeout,
                } => {
                    self.io = None;
                    self.send(request, deadline, connect_timeout)
                }
                Action::ReadBody { deadline } => self.recv(deadline),
                Action::Sleep { until, reason } => {
                    self.io = None;
                    let delay = until.saturating_duration_since(Instant::now());
                    emit(log::sleep_line(&reason, delay));
                    std::thread::sleep(delay);
                    Event::Timeout
                }
                Action::WaitForPermit { deadline, .. } => {
                    emit(log::wait_for_permit_line());
                    // `poll` registered this call under the client lock; a wake-up that came
                    // before this wait is kept by the `Turn`.
                    if self.turn.wait(deadline) {
                        Event::PermitReleased
                    } else {
                        Event::Timeout
                    }
                }
                other => {
                    // `Action` is non-exhaustive: an action this adapter does not know ends
                    // the call with a clear error instead of a guess.
                    self.io = None;
                    self.with_call(|call, shared| call.cancel(Instant::now(), shared));
                    return Step::Done(Err(VllmError::InvalidRequest(format!(
                        "this adapter cannot perform {other:?}"
                    ))));
                }
            };
            self.with_call(|call, shared| call.handle(Instant::now(), event, shared));
        }
    }

    /// Starts the attempt on an IO thread, then waits for its response head.
    fn send(
        &mut self,
        request: http::Request<Bytes>,
        deadline: Option<Instant>,
        connect_timeout: Option<Duration>,
    ) -> Event {
        // An agent (a connection pool) of its own, so that ending the attempt can shut its
        // connection down, interrupting the IO thread wherever it blocks (crate docs).
        let agent = self.inner.agent.config().new_agent();
        let request = agent
            .configure_request(request.map(|b| b.to_vec()))
            .http_status_as_error(false)
            .timeout_connect(connect_timeout)
            .build();
        let (tx, rx) = mpsc::sync_channel(1);
        let thread_agent = agent.clone();
        let spawned = std::thread::Builder::new()
            .name("vllm-client-io".into())
            .spawn(move || attempt(thread_agent, request, tx));
        if let Err(e) = spawned {
            return Event::TransportError {
                kind: TransportErrorKind::Io,
                message: format!("cannot start an IO thread: {e}"),
            };
        }
        self.io = Some(Io { rx, agent });
        self.recv(deadline)
    }

    /// The IO thread's next report, or `Timeout` at `deadline`.
    fn recv(&mut self, deadline: Option<Instant>) -> Event {
        let Some(rx) = self.io.as_ref().map(|io| &io.rx) else {
            return Event::BodyEnd;
        };
        let got = match deadline {
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => Event::Timeout,
            Err(RecvTimeoutError::Disconnected) => {
                self.io = None;
                Event::TransportError {
                    kind: TransportErrorKind::Io,
                    message: "the IO thread ended without a result".into(),
                }
            }
        }
    }

    /// Asks the driver what to do; a call told to wait is registered as a waiter before the
    /// client lock is released, so that no release can miss it.
    fn poll(&mut self) -> Action {
        let inner = self.inner.clone();
        let turn = self.turn.clone();
        let action = self.with_call(|call, shared| {
            let action = call.poll(Instant::now(), shared);
            if let Action::WaitForPermit { waiter, .. } = &action {
                inner.waiters().insert(*waiter, turn);
            }
            action
        });
        if let Action::WaitForPermit { waiter, .. } = &action {
            self.waiter = Some(*waiter);
        }
        action
    }

    fn forget_waiter(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            let _shared = self.inner.shared();
            self.inner.waiters().remove(&waiter);
        }
    }

    fn with_call<R>(
        &mut self,
        f: impl FnOnce(&mut Call, &mut vllm_client_core::call::Shared) -> R,
    ) -> R {
        let mut shared = self.inner.shared();
        let r = f(&mut self.call, &mut shared);
        self.inner.wake_next(&mut shared);
        while let Some((endpoint, t)) = shared.poll_transition() {
            emit(log::transition_line(endpoint, &t));
        }
        r
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Shuts the connection down, so the server stops generating.
        self.io = None;
        if !self.call.is_finished() {
            self.with_call(|call, shared| call.cancel(Instant::now(), shared));
        }
        self.forget_waiter();
    }
}

/// An attempt in flight: the IO thread's reports, and its agent, whose shutdown on drop closes
/// the attempt's connection and unblocks the thread.
struct Io {
    rx: Receiver<Event>,
    agent: ureq::Agent,
}

impl Drop for Io {
    fn drop(&mut self) {
        self.agent.clone().shutdown();
    }
}

/// One attempt, on the IO thread: send, hand over the head, then each chunk, until the body
/// ends, fails, or the caller stops listening.
fn attempt(agent: ureq::Agent, request: http::Request<Vec<u8>>, tx: SyncSender<Event>) {
    let response = if request.body().is_empty() {
        agent.run(request.map(|_| ureq::SendBody::none()))
    } else {
        agent.run(request)
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(send_error(&e));
            return;
        }
    };
    let (parts, body) = response.into_parts();
    let head = ResponseHead::new(parts.status, parts.headers, SystemTime::now());
    if tx.send(Event::Response(head)).is_err() {
        return;
    }
    let mut reader = body.into_with_config().limit(u64::MAX).reader();
    let mut buf = vec![0; READ_CHUNK];
    loop {
        let event = match reader.read(&mut buf) {
            Ok(0) => Event::BodyEnd,
            Ok(n) => Event::Chunk(Bytes::copy_from_slice(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Event::TransportError {
                kind: TransportErrorKind::Io,
                message: log::error_chain(&e),
            },
        };
        let last = !matches!(event, Event::Chunk(_));
        if tx.send(event).is_err() || last {
            return;
        }
    }
}

fn send_error(e: &ureq::Error) -> Event {
    let kind = match e {
        // ureq refused the request itself; nothing was sent.
        ureq::Error::Http(_) | ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_) => {
            TransportErrorKind::Rejected
        }
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => TransportErrorKind::Connect,
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
            TransportErrorKind::ConnectTimeout
        }
        ureq::Error::Io(io) => TransportErrorKind::of_io_error(io.kind()),
        _ => TransportErrorKind::Io,
    };
    Event::TransportError {
        kind,
        message: log::error_chain(e),
    }
}

fn emit(line: LogLine) {
    match line.level {
        LogLevel::Debug => tracing::debug!("{}", line.message),
        LogLevel::Info => tracing::info!("{}", line.message),
        LogLevel::Warn => tracing::warn!("{}", line.message),
    }
}
