//! The async run loop, [`EventStream`] and [`AsyncExec`]: any runtime, through [`Transport`].
//!
//! The loop keeps the operations the core started, one per attempt in flight (a send's
//! future, or an open response and whether a read of it was asked for), and at each `Wait`
//! races them against the core's timer and the call's turn for a slot.
//!
//! It is a poll function, not an `async fn`: [`Runner::poll_step`] runs the call until its
//! next event or its end and returns `Pending` while it waits, keeping what it waits for in
//! the runner itself. A stream's [`EventStream`] polls it directly — no future rebuilt and
//! no runner moved per event — and a JSON call's future is a `poll_fn` over it. A read future
//! is made afresh at each poll of a wait: `Transport::read` is cancel-safe, so one dropped
//! while pending loses no data; sends are boxed once per request and kept until they resolve.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use futures_util::stream::{Stream, StreamExt};
use vllm_client_core::call::{AttemptId, CallReport, CallSpec, Event, ResponseHead};
use vllm_client_core::client::{Decode, Execute, Reported};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::RateLimitSnapshot;
use vllm_client_core::{StreamEvent, VllmError};

use crate::driver::{no_response, Collect, Driver, Held, Io, Ops, Step};
use crate::exec::{AsyncExec, Exec};
use crate::transport::{Failed, Transport};

/// A boxed, `Send` future: what `send()` returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, VllmError>> + Send + 'static>>;

type Sending<T> = Pin<
    Box<dyn Future<Output = Result<(ResponseHead, <T as Transport>::Response), Failed>> + Send>,
>;

/// One operation the core started. `repr(u8)`: the tag and `reading` come first, in the
/// cache line of [`Held`]'s attempt.
#[repr(u8)]
enum Op<T: Transport> {
    /// A request on its way; the head is awaited.
    Sending(Sending<T>),
    /// A response; `reading` when the core asked for its next chunk.
    Open {
        reading: bool,
        response: T::Response,
    },
}

/// How early a transport's timer may fire and still be noticed: within this much of its
/// instant, the wait timer is polled at every wake-up even while it holds the task's waker
/// (a millisecond timer wheel that rounds down fires up to a millisecond early).
const TIMER_SLACK: std::time::Duration = std::time::Duration::from_millis(10);

/// A timer armed at an instant, kept across waits.
type Timer = (Instant, Pin<Box<dyn Future<Output = ()> + Send>>);

/// The wait in progress: until when, and whether the call also waits for its turn for a slot.
#[derive(Clone, Copy)]
struct Waiting {
    until: Option<Instant>,
    permit: bool,
}

// `repr(C)`: what each poll reads first. With a thousand open streams a runner is cold when
// its next chunk arrives, and every cache line it touches is a miss.
#[repr(C)]
pub(crate) struct Runner<T: Transport> {
    /// Set while the call waits (between a `Wait` and what ends it).
    waiting: Option<Waiting>,
    ops: Ops<Op<T>>,
    /// The wait timer. The idle deadline moves forward with every data event; re-arming a
    /// runtime timer per event costs more than the event itself, so a timer armed earlier
    /// than the current deadline is kept, and when it fires early it is re-armed once.
    timer: Option<Timer>,
    /// The waker the timer was last polled with. While the task's waker is the same and the
    /// timer's instant has not come, the timer holds it already: polling it again (a cold
    /// timer entry and an atomic swap, once per streamed chunk) is skipped.
    timer_waker: Option<Waker>,
    driver: Driver,
    transport: Arc<T>,
}

// Nothing of a runner is ever pinned in place: each read future is made from `&mut response`
// and pinned on the stack for one poll, sends and the timer are boxed.
impl<T: Transport> Unpin for Runner<T> {}

fn failed(attempt: AttemptId, f: Failed) -> Event {
    f.into_event(attempt)
}

impl<T: Transport> Runner<T> {
    fn new(transport: Arc<T>, driver: Driver) -> Self {
        Runner {
            transport,
            driver,
            ops: Ops::new(),
            timer: None,
            timer_waker: None,
            waiting: None,
        }
    }

    /// Runs until the next event for the caller, or the end; `Pending` while it waits.
    pub(crate) fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        loop {
            if let Some(w) = self.waiting {
                let event = ready!(self.poll_wait(cx, w));
                self.waiting = None;
                self.driver.handle(event);
            }
            match self.driver.next_io() {
                Ok(Io::Send {
                    attempt,
                    request,
                    connect_timeout,
                    ..
                }) => {
                    let transport = self.transport.clone();
                    let send = async move { transport.send(*request, connect_timeout).await };
                    self.ops.push(attempt, Op::Sending(Box::pin(send)));
                }
                Ok(Io::Read { attempt, .. }) => match self.ops.get(attempt) {
                    Some(Op::Open { reading, .. }) => *reading = true,
                    _ => self.driver.handle(no_response(attempt)),
                },
                Ok(Io::Close { attempt }) => self.ops.remove(attempt),
                Ok(Io::Wait { until, permit }) => self.waiting = Some(Waiting { until, permit }),
                Err(step) => {
                    if let Step::Done(_) = step {
                        self.ops.0.clear();
                    }
                    return Poll::Ready(step);
                }
            }
        }
    }

    /// Polls what the call waits for: the operations started (in order), the call's turn for
    /// a slot, then the timer. What completed first becomes the event reported to the core.
    fn poll_wait(&mut self, cx: &mut Context<'_>, w: Waiting) -> Poll<Event> {
        let handled_at = self.driver.take_handled_at();
        for i in 0..self.ops.0.len() {
            let Held { attempt, op } = &mut self.ops.0[i];
            let attempt = *attempt;
            match op {
                Op::Sending(f) => {
                    if let Poll::Ready(out) = f.as_mut().poll(cx) {
                        return Poll::Ready(match out {
                            Ok((head, response)) => {
                                *op = Op::Open {
                                    response,
                                    reading: false,
                                };
                                Event::Response { attempt, head }
                            }
                            Err(f) => {
                                self.ops.0.remove(i);
                                failed(attempt, f)
                            }
                        });
                    }
                }
                Op::Open {
                    response,
                    reading: reading @ true,
                } => {
                    if let Poll::Ready(out) = pin!(T::read(response)).poll(cx) {
                        *reading = false;
                        return Poll::Ready(match out {
                            Ok(Some(bytes)) => Event::Chunk { attempt, bytes },
                            Ok(None) => Event::BodyEnd { attempt },
                            Err(f) => failed(attempt, f),
                        });
                    }
                }
                Op::Open { .. } => {}
            }
        }
        if w.permit && pin!(self.driver.turn.wait()).poll(cx).is_ready() {
            return Poll::Ready(Event::PermitReleased);
        }
        match w.until {
            Some(until) => self
                .poll_timer(cx, until, handled_at)
                .map(|()| Event::Timeout),
            None => Poll::Pending,
        }
    }

    /// Ready once the wait timer reaches `until`, re-arming a timer that was armed earlier
    /// than `until` when it fires early. `handled_at`: when the event before this wait was
    /// handled, if this is the wait's first poll since (it stands for "now" without a clock
    /// read: a paced stream's wait begins microseconds after its chunk was handled).
    fn poll_timer(
        &mut self,
        cx: &mut Context<'_>,
        until: Instant,
        handled_at: Option<Instant>,
    ) -> Poll<()> {
        loop {
            if !matches!(&self.timer, Some((at, _)) if *at <= until) {
                self.timer = Some((until, Box::pin(T::sleep_until(until))));
                self.timer_waker = None;
            }
            let Some((at, sleep)) = self.timer.as_mut() else {
                return Poll::Pending;
            };
            let at = *at;
            let holds_waker = self
                .timer_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()));
            // A timer does not fire before its instant (a transport's may fire a little
            // early: `TIMER_SLACK`), and it wakes the waker it holds. An earlier "now" is
            // safe here: if the timer fired since, it woke the task, and that wake's poll
            // reads the clock.
            let quiet_until = at.checked_sub(TIMER_SLACK);
            if holds_waker
                && quiet_until.is_some_and(|q| handled_at.unwrap_or_else(Instant::now) < q)
            {
                return Poll::Pending;
            }
            if sleep.as_mut().poll(cx).is_pending() {
                if !holds_waker {
                    self.timer_waker = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            self.timer = None;
            self.timer_waker = None;
            // A timer armed for this very deadline has reached it; one armed earlier (for an
            // older idle deadline) is re-armed once.
            if at >= until || Instant::now() >= until {
                return Poll::Ready(());
            }
        }
    }

    /// Runs until the call is over, ignoring stream events (JSON calls emit none).
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, VllmError>> {
        loop {
            if let Step::Done(r) = ready!(self.poll_step(cx)) {
                return Poll::Ready(r);
            }
        }
    }

    async fn finish(&mut self) -> Result<Bytes, VllmError> {
        poll_fn(|cx| self.poll_finish(cx)).await
    }

    async fn step(&mut self) -> Step {
        poll_fn(|cx| self.poll_step(cx)).await
    }

    fn report(&self) -> CallReport {
        self.driver.report()
    }
}

/// A stream's runner after its first event: the events until the terminal one, then the end.
#[repr(C)]
struct Events<T: Transport> {
    done: bool,
    runner: Runner<T>,
}

impl<T: Transport> Stream for Events<T> {
    type Item = StreamEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match ready!(this.runner.poll_step(cx)) {
            Step::Emit(ev) => {
                this.done = ev.is_terminal();
                Poll::Ready(Some(ev))
            }
            Step::Done(_) => {
                this.done = true;
                Poll::Ready(None)
            }
        }
    }
}

/// The events of a streamed call: `Content`, `Reasoning`, tool calls, `Usage`, … then exactly
/// one `Done` or `Error`, then the end.
///
/// Dropping it closes the connection (vLLM then aborts the generation) and frees the call's
/// concurrency slot.
pub struct EventStream {
    /// The first event, handed out before the rest.
    first: Option<StreamEvent>,
    inner: Pin<Box<dyn Stream<Item = StreamEvent> + Send>>,
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
    ///
    /// The runner (the call inline, a few KB) is boxed once, before this future is made: the
    /// future then holds a pointer, never a copy of it, and the box becomes the stream's.
    async fn start<T: Transport>(mut events: Box<Events<T>>) -> Result<EventStream, VllmError> {
        let first = match events.runner.step().await {
            Step::Emit(ev) => ev,
            Step::Done(Err(e)) => return Err(e),
            // The core guarantees a terminal event before `Done(Ok)` of a stream.
            Step::Done(Ok(_)) => StreamEvent::Error(VllmError::Truncated),
        };
        events.done = first.is_terminal();
        let rate_limit = events.runner.driver.rate_limit();
        let inner: Box<dyn Stream<Item = StreamEvent> + Send> = events;
        Ok(EventStream {
            first: Some(first),
            inner: Box::into_pin(inner),
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
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
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

    crate::exec::config_methods!();

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
        let events = Box::new(Events {
            done: false,
            runner: self.runner(spec),
        });
        Box::pin(EventStream::start(events))
    }

    fn endpoints(&self) -> Vec<vllm_client_core::pool::EndpointStatus> {
        self.client.endpoints()
    }
}
