//! The blocking run loop, [`EventIter`] and [`BlockingExec`], through [`BlockingTransport`].

use std::fmt;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use bytes::Bytes;
use vllm_client_core::call::{CallSpec, Event, HedgeStep, Leg};
use vllm_client_core::client::{Decode, Execute, Reported};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::RateLimitSnapshot;
use vllm_client_core::{StreamEvent, VllmError};

use crate::driver::{judge_leg, lock, no_response, Driver, Io, Step};
use crate::exec::{BlockingExec, Exec};
use crate::transport::{BlockingTransport, Outcome};

fn event<T>(outcome: Outcome<T>, ok: impl FnOnce(T) -> Event) -> Event {
    match outcome {
        Outcome::Ok(v) => ok(v),
        Outcome::TimedOut => Event::Timeout,
        Outcome::Failed(f) => f.into_event(),
    }
}

pub(crate) struct BlockingRunner<T: BlockingTransport> {
    transport: Arc<T>,
    driver: Driver,
    response: Option<T::Response>,
}

impl<T: BlockingTransport> BlockingRunner<T> {
    /// Runs until the next event for the caller, or the end.
    fn step(&mut self) -> Step {
        loop {
            let io = match self.driver.next_io(&mut self.response) {
                Ok(io) => io,
                Err(step) => return step,
            };
            let event = match io {
                Io::Send {
                    request,
                    deadline,
                    connect_timeout,
                } => event(
                    self.transport.send(request, deadline, connect_timeout),
                    |(head, response)| {
                        self.response = Some(response);
                        Event::Response(head)
                    },
                ),
                Io::Read { deadline } => match self.response.as_mut() {
                    None => no_response(),
                    Some(response) => {
                        event(
                            self.transport.read(response, deadline),
                            |chunk| match chunk {
                                Some(bytes) => Event::Chunk(bytes),
                                None => Event::BodyEnd,
                            },
                        )
                    }
                },
                Io::Sleep { until } => {
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    Event::Timeout
                }
                Io::Wait { deadline } => {
                    if self.driver.turn.wait_blocking(deadline) {
                        Event::PermitReleased
                    } else {
                        Event::Timeout
                    }
                }
            };
            self.driver.handle(event);
        }
    }

    fn finish(&mut self) -> Result<Bytes, VllmError> {
        loop {
            if let Step::Done(r) = self.step() {
                return r;
            }
        }
    }
}

/// Runs a leg's next step on its own thread; the leg comes back with it on `tx` (or is
/// dropped there, cancelling its call, when nobody listens any more).
fn spawn_leg<T: BlockingTransport>(
    leg: Leg,
    mut runner: BlockingRunner<T>,
    tx: mpsc::Sender<(Leg, BlockingRunner<T>, Step)>,
) {
    std::thread::spawn(move || {
        let step = runner.step();
        let _ = tx.send((leg, runner, step));
    });
}

/// The stream's first step, hedged when the core says so (see the async loop's twin). A
/// blocking read cannot be interrupted: the losing leg is dropped — its connection closed —
/// when its pending read returns, at the latest at its first-token or attempt deadline.
fn first_step<T: BlockingTransport>(
    mut primary: BlockingRunner<T>,
    spec: Option<CallSpec>,
) -> Result<(BlockingRunner<T>, Step), VllmError> {
    let (Some(hedge), Some(spec)) = (primary.driver.hedge.clone(), spec) else {
        let step = primary.step();
        return Ok((primary, step));
    };
    let client = primary.driver.client().clone();
    let transport = primary.transport.clone();
    let (tx, rx) = mpsc::channel();
    spawn_leg(Leg::Primary, primary, tx.clone());
    let mut racing = false;
    loop {
        let deadline = if racing {
            None
        } else {
            lock(&hedge).deadline()
        };
        let received = match deadline {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok((leg, runner, step)) => {
                let decision = if racing {
                    judge_leg(&client, &hedge, leg, &step)
                } else {
                    HedgeStep::Deliver {
                        cancel_other: false,
                    }
                };
                if let HedgeStep::Deliver { .. } = decision {
                    return Ok((runner, step));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(driver) = Driver::start_backup(&client, &hedge, spec.clone()) {
                    let backup = BlockingRunner {
                        transport: transport.clone(),
                        driver,
                        response: None,
                    };
                    spawn_leg(Leg::Backup, backup, tx.clone());
                    racing = true;
                }
            }
            // Unreachable while `tx` is held here.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(VllmError::Misuse("a hedged leg vanished".into()));
            }
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
    fn start<T: BlockingTransport>(
        runner: BlockingRunner<T>,
        spec: Option<CallSpec>,
    ) -> Result<EventIter, VllmError> {
        let (mut runner, step) = first_step(runner, spec)?;
        let first = match step {
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
    pub fn collect_content(self) -> Result<String, VllmError> {
        let mut text = String::new();
        for ev in self {
            match ev {
                StreamEvent::Content(s) => text.push_str(&s),
                StreamEvent::Done => return Ok(text),
                StreamEvent::Error(e) => return Err(e),
                _ => {}
            }
        }
        Err(VllmError::Truncated)
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
        BlockingRunner {
            transport: self.transport.clone(),
            driver: self.driver(spec),
            response: None,
        }
    }
}

impl<T: BlockingTransport> Execute for BlockingExec<T> {
    type Output<R: Send + 'static> = Result<R, VllmError>;
    type Stream = EventIter;
    type HttpClient = T::HttpClient;

    fn from_config(config: ClientConfig, http: Option<T::HttpClient>) -> Self {
        Exec::with_transport(T::new(&config, http), config)
    }

    fn config(&self) -> &ClientConfig {
        self.client.config()
    }

    fn reconfigure(&self, config: ClientConfig) -> Self {
        Exec::with_transport(self.transport.reconfigure(&config), config)
    }

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
        let hedge_spec = self.backup_spec(&spec);
        EventIter::start(self.runner(spec), hedge_spec)
    }

    fn endpoints(&self) -> Vec<vllm_client_core::pool::EndpointStatus> {
        self.client.endpoints()
    }
}
