//! The blocking run loop, [`EventIter`] and [`BlockingExec`], through [`BlockingTransport`].
//!
//! A blocking transport performs one operation at a time, so the loop performs the core's
//! operations lazily: an operation started by `Send` or `ReadBody` runs inside the next
//! `Wait`, on the caller's thread, when it is the only one and its own deadline is the wait's
//! (the contract's rule 3) — the common case, with no thread at all. When more than one
//! exchange is in flight (a hedge racing the first attempt) or a timer is due before the
//! operation's own deadline (the hedge timer), each exchange moves to a worker thread of its
//! own, which performs its operations and reports them on a channel; the wait is then a
//! receive with a timeout. A worker's pending blocking read cannot be interrupted: a closed
//! exchange's worker drops its response when that read returns, at the latest at its
//! deadline.

use std::fmt;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use vllm_client_core::call::{AttemptId, CallSpec, Event, ResponseHead};
use vllm_client_core::client::{Decode, Execute, Reported};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::RateLimitSnapshot;
use vllm_client_core::{StreamEvent, VllmError};

use crate::driver::{no_response, Collect, Driver, Held, Io, Ops, Step};
use crate::exec::{BlockingExec, Exec};
use crate::transport::{BlockingTransport, Completion, Failed};

fn event<T>(attempt: AttemptId, outcome: Completion<T>, ok: impl FnOnce(T) -> Event) -> Event {
    match outcome {
        Completion::Ok(v) => ok(v),
        Completion::TimedOut => Event::Timeout,
        Completion::Failed(f) => f.into_event(attempt),
    }
}

fn read_event(attempt: AttemptId, outcome: Completion<Option<Bytes>>) -> Event {
    event(attempt, outcome, |chunk| match chunk {
        Some(bytes) => Event::Chunk { attempt, bytes },
        None => Event::BodyEnd { attempt },
    })
}

/// A request not sent yet.
struct Pending {
    /// Boxed as the core hands it out.
    request: Box<Request<Bytes>>,
    deadline: Option<Instant>,
    connect_timeout: Option<Duration>,
}

/// One exchange of the call, as the loop holds it.
enum Op<T: BlockingTransport> {
    /// Started by `Send`, not performed yet.
    Send(Pending),
    /// A response; `read` is the deadline of the read the core asked for, if it did.
    Open {
        response: T::Response,
        read: Option<Option<Instant>>,
    },
    /// On its own thread.
    Worker {
        commands: mpsc::Sender<Command>,
        busy: bool,
    },
}

enum Command {
    Send(Pending),
    Read(Option<Instant>),
}

/// What a worker reports.
type Report = (AttemptId, WorkerOutcome);

enum WorkerOutcome {
    Sent(Completion<ResponseHead>),
    Read(Completion<Option<Bytes>>),
}

pub(crate) struct BlockingRunner<T: BlockingTransport> {
    transport: Arc<T>,
    driver: Driver,
    ops: Ops<Op<T>>,
    /// Where workers report (made with the first worker).
    reports: Option<(mpsc::Sender<Report>, mpsc::Receiver<Report>)>,
}

impl<T: BlockingTransport> BlockingRunner<T> {
    fn new(transport: Arc<T>, driver: Driver) -> Self {
        BlockingRunner {
            transport,
            driver,
            ops: Ops::new(),
            reports: None,
        }
    }

    /// Runs until the next event for the caller, or the end.
    fn step(&mut self) -> Step {
        loop {
            match self.driver.next_io() {
                Ok(Io::Send {
                    attempt,
                    request,
                    deadline,
                    connect_timeout,
                }) => {
                    let pending = Pending {
                        request,
                        deadline,
                        connect_timeout,
                    };
                    self.ops.push(attempt, Op::Send(pending));
                }
                Ok(Io::Read { attempt, deadline }) => match self.ops.get(attempt) {
                    Some(Op::Open { read, .. }) => *read = Some(deadline),
                    Some(Op::Worker { commands, busy }) => {
                        *busy = commands.send(Command::Read(deadline)).is_ok();
                    }
                    _ => self.driver.handle(no_response(attempt)),
                },
                // Dropping a worker's command channel ends it after its current operation.
                Ok(Io::Close { attempt }) => self.ops.remove(attempt),
                Ok(Io::Wait { until, permit }) => {
                    let event = match permit {
                        true if self.driver.turn.wait_blocking(until) => Event::PermitReleased,
                        true => Event::Timeout,
                        false => self.wait(until),
                    };
                    self.driver.handle(event);
                }
                Err(step) => {
                    if let Step::Done(_) = step {
                        self.ops.0.clear();
                    }
                    return step;
                }
            }
        }
    }

    /// Waits for the first operation to complete, or `until`.
    fn wait(&mut self, until: Option<Instant>) -> Event {
        let started = |op: &Op<T>| match op {
            Op::Send(_) => true,
            Op::Open { read, .. } => read.is_some(),
            Op::Worker { busy, .. } => *busy,
        };
        let deadline_of = |op: &Op<T>| match op {
            Op::Send(p) => Some(p.deadline),
            Op::Open { read, .. } => *read,
            Op::Worker { .. } => None,
        };
        // Inline: one operation, whose own deadline is the wait's.
        if let [Held { attempt, op }] = self.ops.0.as_mut_slice() {
            if started(op) && deadline_of(op) == Some(until) {
                let attempt = *attempt;
                return self.perform(attempt, until);
            }
        }
        // Otherwise every exchange with something to do runs on its own thread.
        for i in 0..self.ops.0.len() {
            if started(&self.ops.0[i].op) && !matches!(self.ops.0[i].op, Op::Worker { .. }) {
                self.spawn_worker(i);
            }
        }
        let Some((_, rx)) = self.reports.as_ref() else {
            // Nothing in flight: only the timer (the core never waits for nothing).
            if let Some(u) = until {
                std::thread::sleep(u.saturating_duration_since(Instant::now()));
            }
            return Event::Timeout;
        };
        loop {
            let received = match until {
                Some(u) => rx.recv_timeout(u.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            };
            let (attempt, outcome) = match received {
                Ok(r) => r,
                Err(_) => return Event::Timeout,
            };
            // A closed exchange's late report is dropped here.
            let op = self.ops.get(attempt);
            let Some(Op::Worker { busy, .. }) = op else {
                continue;
            };
            *busy = false;
            return match outcome {
                WorkerOutcome::Sent(o) => {
                    event(attempt, o, |head| Event::Response { attempt, head })
                }
                WorkerOutcome::Read(o) => read_event(attempt, o),
            };
        }
    }

    /// Performs the one started operation on this thread, until `until`.
    fn perform(&mut self, attempt: AttemptId, until: Option<Instant>) -> Event {
        let Some(i) = self.ops.0.iter().position(|h| h.attempt == attempt) else {
            return Event::Timeout;
        };
        let op = self.ops.0.remove(i).op;
        match op {
            Op::Send(p) => match self.transport.send(*p.request, until, p.connect_timeout) {
                Completion::Ok((head, response)) => {
                    let open = Op::Open {
                        response,
                        read: None,
                    };
                    self.ops.0.insert(i, Held { attempt, op: open });
                    Event::Response { attempt, head }
                }
                Completion::TimedOut => Event::Timeout,
                Completion::Failed(f) => f.into_event(attempt),
            },
            Op::Open { mut response, .. } => {
                let event = read_event(attempt, self.transport.read(&mut response, until));
                let open = Op::Open {
                    response,
                    read: None,
                };
                self.ops.0.insert(i, Held { attempt, op: open });
                event
            }
            worker @ Op::Worker { .. } => {
                self.ops.0.insert(
                    i,
                    Held {
                        attempt,
                        op: worker,
                    },
                );
                Event::Timeout
            }
        }
    }

    /// Moves exchange `i` to a thread of its own, with its started operation.
    fn spawn_worker(&mut self, i: usize) {
        let (tx, _) = self.reports.get_or_insert_with(mpsc::channel);
        let reports = tx.clone();
        let (commands, inbox) = mpsc::channel();
        let attempt = self.ops.0[i].attempt;
        let handle = Op::Worker {
            commands: commands.clone(),
            busy: true,
        };
        let op = std::mem::replace(&mut self.ops.0[i].op, handle);
        let mut response = None;
        match op {
            Op::Send(p) => {
                let _ = commands.send(Command::Send(p));
            }
            Op::Open {
                response: r,
                read: Some(deadline),
            } => {
                response = Some(r);
                let _ = commands.send(Command::Read(deadline));
            }
            Op::Open { response: r, .. } => response = Some(r),
            Op::Worker { .. } => {}
        }
        let transport = self.transport.clone();
        std::thread::spawn(move || worker::<T>(transport, attempt, response, inbox, reports));
    }

    fn finish(&mut self) -> Result<Bytes, VllmError> {
        loop {
            if let Step::Done(r) = self.step() {
                return r;
            }
        }
    }
}

/// One exchange on its own thread: performs what the loop sends it, reports each outcome;
/// ends (dropping its response, which closes the connection) when the loop drops its sender.
fn worker<T: BlockingTransport>(
    transport: Arc<T>,
    attempt: AttemptId,
    mut response: Option<T::Response>,
    inbox: mpsc::Receiver<Command>,
    reports: mpsc::Sender<Report>,
) {
    while let Ok(command) = inbox.recv() {
        let outcome = match command {
            Command::Send(p) => match transport.send(*p.request, p.deadline, p.connect_timeout) {
                Completion::Ok((head, r)) => {
                    response = Some(r);
                    WorkerOutcome::Sent(Completion::Ok(head))
                }
                Completion::TimedOut => WorkerOutcome::Sent(Completion::TimedOut),
                Completion::Failed(f) => WorkerOutcome::Sent(Completion::Failed(f)),
            },
            Command::Read(deadline) => match response.as_mut() {
                Some(r) => WorkerOutcome::Read(transport.read(r, deadline)),
                None => WorkerOutcome::Read(Completion::Failed(Failed::new(
                    vllm_client_core::call::TransportErrorKind::Io,
                    "no response to read",
                ))),
            },
        };
        if reports.send((attempt, outcome)).is_err() {
            return;
        }
    }
}

/// The events of a streamed call: `Content`, `Reasoning`, tool calls, `Usage`, … then exactly
/// one `Done` or `Error`, then the end (`None`).
///
/// Each `next()` blocks at most until the core's next deadline (time to first token, idle
/// between data events, attempt, overall) plus the transport's margin. Dropping it closes the
/// connection (vLLM then aborts the generation) and frees the call's concurrency slot.
pub struct EventIter {
    next: Box<dyn FnMut() -> Step + Send>,
    first: Option<StreamEvent>,
    done: bool,
    rate_limit: Option<RateLimitSnapshot>,
}

impl fmt::Debug for EventIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventIter")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl EventIter {
    fn start<T: BlockingTransport>(mut runner: BlockingRunner<T>) -> Result<EventIter, VllmError> {
        let first = match runner.step() {
            Step::Emit(ev) => ev,
            Step::Done(Err(e)) => return Err(e),
            // The core guarantees a terminal event before `Done(Ok)` of a stream.
            Step::Done(Ok(_)) => StreamEvent::Error(VllmError::Truncated),
        };
        let rate_limit = runner.driver.rate_limit();
        Ok(EventIter {
            next: Box::new(move || runner.step()),
            first: Some(first),
            done: false,
            rate_limit,
        })
    }

    /// What the server's rate-limit headers said (its remaining requests and tokens and when
    /// they refill), as of the response that started this stream — or of an earlier attempt's
    /// answer when that one sent none. `None` when no answer of this call carried any (vLLM
    /// itself sends none; gateways such as LiteLLM do). See `RateLimitSnapshot`.
    pub fn rate_limit(&self) -> Option<&RateLimitSnapshot> {
        self.rate_limit.as_ref()
    }

    /// Collects the text of choice 0 until the end: `Ok` on `Done`, the error otherwise.
    pub fn collect_content(mut self) -> Result<String, VllmError> {
        let mut text = Collect::default();
        loop {
            if let Some(end) = text.push(self.next()) {
                return end;
            }
        }
    }
}

impl Iterator for EventIter {
    type Item = StreamEvent;

    fn next(&mut self) -> Option<StreamEvent> {
        if self.done {
            return None;
        }
        let ev = match self.first.take() {
            Some(ev) => ev,
            None => match (self.next)() {
                Step::Emit(ev) => ev,
                Step::Done(_) => {
                    self.done = true;
                    return None;
                }
            },
        };
        self.done = ev.is_terminal();
        Some(ev)
    }
}

impl<T: BlockingTransport> BlockingExec<T> {
    fn runner(&self, spec: CallSpec) -> BlockingRunner<T> {
        BlockingRunner::new(self.transport.clone(), self.driver(spec))
    }
}

impl<T: BlockingTransport> Execute for BlockingExec<T> {
    type Output<R: Send + 'static> = Result<R, VllmError>;
    type Stream = EventIter;
    type HttpClient = T::HttpClient;

    crate::exec::config_methods!();

    fn execute<R: Decode + Send + 'static>(&self, spec: CallSpec) -> Result<R, VllmError> {
        let body = self.runner(spec).finish()?;
        R::decode(&body)
    }

    fn execute_reported<R: Decode + Send + 'static>(
        &self,
        spec: CallSpec,
    ) -> Result<Reported<R>, VllmError> {
        let mut runner = self.runner(spec);
        let result = runner.finish().and_then(|body| R::decode(&body));
        Ok(Reported::new(result, runner.driver.report()))
    }

    fn execute_stream(&self, spec: CallSpec) -> Result<EventIter, VllmError> {
        EventIter::start(self.runner(spec))
    }

    fn endpoints(&self) -> Vec<vllm_client_core::pool::EndpointStatus> {
        self.client.endpoints()
    }
}
