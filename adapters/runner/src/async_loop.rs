//! The async run loop, [`EventStream`] and [`AsyncExec`]: any runtime, through [`Transport`].
//!
//! The loop keeps the operations the core started, one per attempt in flight (a send's
//! future, or an open response and whether a read of it was asked for), and at each `Wait`
//! races them against the core's timer and the call's turn for a slot. A read future is made
//! afresh for each wait: `Transport::read` is cancel-safe, so a read that loses a race to the
//! timer loses no data.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::{select, Either};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use vllm_client_core::call::{AttemptId, CallReport, CallSpec, Event, ResponseHead};
use vllm_client_core::client::{Decode, Execute, Reported};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::RateLimitSnapshot;
use vllm_client_core::{StreamEvent, VllmError};

use crate::driver::{no_response, Collect, Driver, Io, Ops, Step};
use crate::exec::{AsyncExec, Exec};
use crate::transport::{Failed, Transport};
use crate::turn::Turn;

/// A boxed, `Send` future: what `send()` returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, VllmError>> + Send + 'static>>;

type Sending<T> = Pin<
    Box<dyn Future<Output = Result<(ResponseHead, <T as Transport>::Response), Failed>> + Send>,
>;

/// One operation the core started.
enum Op<T: Transport> {
    /// A request on its way; the head is awaited.
    Sending(Sending<T>),
    /// A response; `reading` when the core asked for its next chunk.
    Open {
        response: T::Response,
        reading: bool,
    },
}

/// A timer armed at an instant, kept across waits.
type Timer = (Instant, Pin<Box<dyn Future<Output = ()> + Send>>);

pub(crate) struct Runner<T: Transport> {
    transport: Arc<T>,
    driver: Driver,
    ops: Ops<Op<T>>,
    /// The wait timer. The idle deadline moves forward with every data event; re-arming a
    /// runtime timer per event costs more than the event itself, so a timer armed earlier
    /// than the current deadline is kept, and when it fires early it is re-armed once.
    timer: Option<Timer>,
}

/// What completed first during a wait.
enum Woke<T: Transport> {
    Sent(AttemptId, Result<(ResponseHead, T::Response), Failed>),
    Read(AttemptId, Result<Option<Bytes>, Failed>),
    Turn,
    Timer,
}

fn failed(attempt: AttemptId, f: Failed) -> Event {
    f.into_event(attempt)
}

/// Resolves once the wait timer reaches `until` (never without one), re-arming a timer that
/// was armed earlier than `until` when it fires early.
async fn timer_until<T: Transport>(timer: &mut Option<Timer>, until: Option<Instant>) {
    let Some(d) = until else {
        return std::future::pending().await;
    };
    loop {
        if !matches!(timer, Some((at, _)) if *at <= d) {
            *timer = Some((d, Box::pin(T::sleep_until(d))));
        }
        if let Some((_, sleep)) = timer.as_mut() {
            sleep.await;
        }
        *timer = None;
        if Instant::now() >= d {
            return;
        }
    }
}

impl<T: Transport> Runner<T> {
    fn new(transport: Arc<T>, driver: Driver) -> Self {
        Runner {
            transport,
            driver,
            ops: Ops::new(),
            timer: None,
        }
    }

    /// Runs until the next event for the caller, or the end.
    pub(crate) async fn step(&mut self) -> Step {
        loop {
            match self.driver.next_io() {
                Ok(Io::Send {
                    attempt,
                    request,
                    connect_timeout,
                    ..
                }) => {
                    let transport = self.transport.clone();
                    let send = async move { transport.send(request, connect_timeout).await };
                    self.ops.0.push((attempt, Op::Sending(Box::pin(send))));
                }
                Ok(Io::Read { attempt, .. }) => match self.ops.get(attempt) {
                    Some(Op::Open { reading, .. }) => *reading = true,
                    _ => self.driver.handle(no_response(attempt)),
                },
                Ok(Io::Close { attempt }) => self.ops.remove(attempt),
                Ok(Io::Wait { until, permit }) => {
                    let event = self.wait(until, permit).await;
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

    /// Waits for the first of: an operation completes, the call's turn for a slot, `until`.
    async fn wait(&mut self, until: Option<Instant>, permit: bool) -> Event {
        let woke = match self.ops.0.as_mut_slice() {
            // The common case, one read and a timer: no allocation per chunk.
            [(attempt, Op::Open { response, reading })] if *reading && !permit => {
                let attempt = *attempt;
                let read = pin!(T::read(response));
                let timer = pin!(timer_until::<T>(&mut self.timer, until));
                match select(read, timer).await {
                    Either::Left((out, _)) => Woke::Read(attempt, out),
                    Either::Right(_) => Woke::Timer,
                }
            }
            ops => {
                let turn = permit.then(|| self.driver.turn.clone());
                race::<T>(ops, &mut self.timer, until, turn.as_deref()).await
            }
        };
        match woke {
            Woke::Timer => Event::Timeout,
            Woke::Turn => Event::PermitReleased,
            Woke::Sent(attempt, Ok((head, response))) => {
                if let Some(op) = self.ops.get(attempt) {
                    *op = Op::Open {
                        response,
                        reading: false,
                    };
                }
                Event::Response { attempt, head }
            }
            Woke::Sent(attempt, Err(f)) => {
                self.ops.remove(attempt);
                failed(attempt, f)
            }
            Woke::Read(attempt, out) => {
                if let Some(Op::Open { reading, .. }) = self.ops.get(attempt) {
                    *reading = false;
                }
                match out {
                    Ok(Some(bytes)) => Event::Chunk { attempt, bytes },
                    Ok(None) => Event::BodyEnd { attempt },
                    Err(f) => failed(attempt, f),
                }
            }
        }
    }

    /// Runs until the call is over, ignoring stream events (JSON calls emit none).
    async fn finish(&mut self) -> Result<Bytes, VllmError> {
        loop {
            if let Step::Done(r) = self.step().await {
                return r;
            }
        }
    }

    fn report(&self) -> CallReport {
        self.driver.report()
    }
}

/// The general wait: every send in flight, every read asked for, the timer and the turn.
async fn race<T: Transport>(
    ops: &mut [(AttemptId, Op<T>)],
    timer: &mut Option<Timer>,
    until: Option<Instant>,
    turn: Option<&Turn>,
) -> Woke<T> {
    type Reading<'a> = Pin<Box<dyn Future<Output = Result<Option<Bytes>, Failed>> + Send + 'a>>;
    let mut sends: Vec<(AttemptId, &mut Sending<T>)> = Vec::new();
    let mut reads: Vec<(AttemptId, Reading<'_>)> = Vec::new();
    for (attempt, op) in ops.iter_mut() {
        match op {
            Op::Sending(f) => sends.push((*attempt, f)),
            Op::Open {
                response,
                reading: true,
            } => reads.push((*attempt, Box::pin(T::read(response)))),
            Op::Open { .. } => {}
        }
    }
    let mut timer = pin!(timer_until::<T>(timer, until));
    let mut turn = turn.map(|t| Box::pin(t.wait()));
    poll_fn(|cx: &mut Context<'_>| {
        for (attempt, f) in sends.iter_mut() {
            if let Poll::Ready(out) = f.as_mut().poll(cx) {
                return Poll::Ready(Woke::Sent(*attempt, out));
            }
        }
        for (attempt, f) in reads.iter_mut() {
            if let Poll::Ready(out) = f.as_mut().poll(cx) {
                return Poll::Ready(Woke::Read(*attempt, out));
            }
        }
        if let Some(t) = turn.as_mut() {
            if t.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Woke::Turn);
            }
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Woke::Timer);
        }
        Poll::Pending
    })
    .await
}

/// The events of a streamed call: `Content`, `Reasoning`, tool calls, `Usage`, … then exactly
/// one `Done` or `Error`, then the end.
///
/// Dropping it closes the connection (vLLM then aborts the generation) and frees the call's
/// concurrency slot.
pub struct EventStream {
    inner: BoxStream<'static, StreamEvent>,
    rate_limit: Option<RateLimitSnapshot>,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// Drives the call until its first event: a failure before any output (after retries) is
    /// returned as the error.
    async fn start<T: Transport>(mut runner: Runner<T>) -> Result<EventStream, VllmError> {
        let first = match runner.step().await {
            Step::Emit(ev) => ev,
            Step::Done(Err(e)) => return Err(e),
            // The core guarantees a terminal event before `Done(Ok)` of a stream.
            Step::Done(Ok(_)) => StreamEvent::Error(VllmError::Truncated),
        };
        let done = first.is_terminal();
        let rate_limit = runner.driver.rate_limit();
        let rest = futures_util::stream::unfold((runner, done), |(mut runner, done)| async move {
            if done {
                return None;
            }
            match runner.step().await {
                Step::Emit(ev) => {
                    let done = ev.is_terminal();
                    Some((ev, (runner, done)))
                }
                Step::Done(_) => None,
            }
        });
        Ok(EventStream {
            inner: futures_util::stream::once(async move { first })
                .chain(rest)
                .boxed(),
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
    pub async fn collect_content(mut self) -> Result<String, VllmError> {
        let mut text = Collect::default();
        loop {
            if let Some(end) = text.push(self.next().await) {
                return end;
            }
        }
    }
}

impl Stream for EventStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl<T: Transport> AsyncExec<T> {
    fn runner(&self, spec: CallSpec) -> Runner<T> {
        Runner::new(self.transport.clone(), self.driver(spec))
    }
}

impl<T: Transport> Execute for AsyncExec<T> {
    type Output<R: Send + 'static> = BoxFuture<R>;
    type Stream = EventStream;
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

    fn execute<R: Decode + Send + 'static>(&self, spec: CallSpec) -> BoxFuture<R> {
        let mut runner = self.runner(spec);
        Box::pin(async move {
            let body = runner.finish().await?;
            R::decode(&body)
        })
    }

    fn execute_reported<R: Decode + Send + 'static>(
        &self,
        spec: CallSpec,
    ) -> BoxFuture<Reported<R>> {
        let mut runner = self.runner(spec);
        Box::pin(async move {
            let result = runner.finish().await.and_then(|body| R::decode(&body));
            Ok(Reported::new(result, runner.report()))
        })
    }

    fn execute_stream(&self, spec: CallSpec) -> BoxFuture<EventStream> {
        let runner = self.runner(spec);
        Box::pin(EventStream::start(runner))
    }

    fn endpoints(&self) -> Vec<vllm_client_core::pool::EndpointStatus> {
        self.client.endpoints()
    }
}
