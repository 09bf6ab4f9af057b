//! The async run loop, [`EventStream`] and [`AsyncExec`]: any runtime, through [`Transport`].

use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::{select, Either};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use vllm_client_core::call::{CallReport, CallSpec, Event, HedgeStep, Leg};
use vllm_client_core::client::{Decode, Execute, Reported};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::RateLimitSnapshot;
use vllm_client_core::{StreamEvent, VllmError};

use crate::driver::{judge_leg, lock, no_response, Driver, Io, Step};
use crate::exec::{AsyncExec, Exec};
use crate::transport::{Failed, Transport};

/// A boxed, `Send` future: what `send()` returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, VllmError>> + Send + 'static>>;

/// Races `fut` against `deadline`: `None` when the deadline passed first (an arrival exactly
/// at the deadline wins).
async fn until<T: Transport, F: Future>(deadline: Option<Instant>, fut: F) -> Option<F::Output> {
    match deadline {
        None => Some(fut.await),
        Some(d) => match select(pin!(fut), pin!(T::sleep_until(d))).await {
            Either::Left((out, _)) => Some(out),
            Either::Right(_) => None,
        },
    }
}

fn failed(f: Failed) -> Event {
    f.into_event()
}

/// A timer armed at an instant, kept across body reads.
type Timer = (Instant, Pin<Box<dyn Future<Output = ()> + Send>>);

pub(crate) struct Runner<T: Transport> {
    transport: Arc<T>,
    driver: Driver,
    response: Option<T::Response>,
    /// The body-read timer. The idle deadline moves forward with every data event; re-arming
    /// a runtime timer per event costs more than the event itself, so a timer armed earlier
    /// than the current deadline is kept, and when it fires early it is re-armed once.
    timer: Option<Timer>,
}

/// Reads the next chunk of `response` before `deadline`, reusing `timer` (see [`Runner`]).
async fn read_until<T: Transport>(
    response: &mut T::Response,
    deadline: Option<Instant>,
    timer: &mut Option<Timer>,
) -> Option<Result<Option<Bytes>, Failed>> {
    let Some(d) = deadline else {
        return Some(T::read(response).await);
    };
    let mut read = pin!(T::read(response));
    loop {
        if !matches!(timer, Some((at, _)) if *at <= d) {
            *timer = Some((d, Box::pin(T::sleep_until(d))));
        }
        let (_, sleep) = timer.as_mut()?;
        match select(read.as_mut(), sleep.as_mut()).await {
            Either::Left((out, _)) => return Some(out),
            Either::Right(_) => {
                *timer = None;
                if Instant::now() >= d {
                    return None;
                }
            }
        }
    }
}

impl<T: Transport> Runner<T> {
    /// Runs until the next event for the caller, or the end.
    pub(crate) async fn step(&mut self) -> Step {
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
                } => match until::<T, _>(deadline, self.transport.send(request, connect_timeout))
                    .await
                {
                    None => Event::Timeout,
                    Some(Ok((head, response))) => {
                        self.response = Some(response);
                        Event::Response(head)
                    }
                    Some(Err(f)) => failed(f),
                },
                Io::Read { deadline } => match self.response.as_mut() {
                    None => no_response(),
                    Some(response) => {
                        match read_until::<T>(response, deadline, &mut self.timer).await {
                            None => Event::Timeout,
                            Some(Ok(Some(bytes))) => Event::Chunk(bytes),
                            Some(Ok(None)) => Event::BodyEnd,
                            Some(Err(f)) => failed(f),
                        }
                    }
                },
                Io::Sleep { until: at } => {
                    T::sleep_until(at).await;
                    Event::Timeout
                }
                Io::Wait { deadline } => {
                    let turn = self.driver.turn.clone();
                    match until::<T, _>(deadline, turn.wait()).await {
                        Some(()) => Event::PermitReleased,
                        None => Event::Timeout,
                    }
                }
            };
            self.driver.handle(event);
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
}

/// A runner moved into the future of its next step, which gives it back.
type LegFuture<T> = Pin<Box<dyn Future<Output = (Runner<T>, Step)> + Send>>;

fn leg<T: Transport>(mut runner: Runner<T>) -> LegFuture<T> {
    Box::pin(async move {
        let step = runner.step().await;
        (runner, step)
    })
}

/// The stream's first step, hedged when the core says so: the primary races the hedge
/// deadline, then (if the core starts a backup) the backup; the leg the core picks goes on,
/// the other is dropped — its connection closed, its call cancelled.
async fn first_step<T: Transport>(
    mut primary: Runner<T>,
    spec: Option<CallSpec>,
) -> (Runner<T>, Step) {
    let (Some(hedge), Some(spec)) = (primary.driver.hedge.clone(), spec) else {
        let step = primary.step().await;
        return (primary, step);
    };
    let client = primary.driver.client().clone();
    let transport = primary.transport.clone();
    let mut p = leg(primary);
    let backup = loop {
        let Some(at) = lock(&hedge).deadline() else {
            return p.await;
        };
        match select(p, Box::pin(T::sleep_until(at))).await {
            Either::Left((done, _)) => return done,
            Either::Right((_, pending)) => {
                p = pending;
                if let Some(driver) = Driver::start_backup(&client, &hedge, spec.clone()) {
                    break Runner {
                        transport: transport.clone(),
                        driver,
                        response: None,
                        timer: None,
                    };
                }
            }
        }
    };
    let (first, rest, leg_first) = match select(p, leg(backup)).await {
        Either::Left((done, rest)) => (done, rest, Leg::Primary),
        Either::Right((done, rest)) => (done, rest, Leg::Backup),
    };
    match judge_leg(&client, &hedge, leg_first, &first.1) {
        // Dropping `rest` closes the other leg's connection and cancels its call.
        HedgeStep::Deliver { .. } => first,
        HedgeStep::Wait => {
            let other = if leg_first == Leg::Primary {
                Leg::Backup
            } else {
                Leg::Primary
            };
            let done = rest.await;
            judge_leg(&client, &hedge, other, &done.1);
            done
        }
    }
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
    async fn start<T: Transport>(
        runner: Runner<T>,
        spec: Option<CallSpec>,
    ) -> Result<EventStream, VllmError> {
        let (runner, step) = first_step(runner, spec).await;
        let first = match step {
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
        let mut text = String::new();
        while let Some(ev) = self.next().await {
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

impl Stream for EventStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl<T: Transport> AsyncExec<T> {
    fn runner(&self, spec: CallSpec) -> Runner<T> {
        Runner {
            transport: self.transport.clone(),
            driver: self.driver(spec),
            response: None,
            timer: None,
        }
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
        let hedge_spec = self.backup_spec(&spec);
        let runner = self.runner(spec);
        Box::pin(EventStream::start(runner, hedge_spec))
    }

    fn endpoints(&self) -> Vec<vllm_client_core::pool::EndpointStatus> {
        self.client.endpoints()
    }
}

impl<T: Transport> Runner<T> {
    fn report(&self) -> CallReport {
        self.driver.report()
    }
}
