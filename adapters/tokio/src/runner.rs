//! The run loop: performs the driver's actions with reqwest and tokio timers.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use tokio::time::{sleep_until, timeout_at};
use vllm_client_core::call::log::{self, LogLevel, LogLine};
use vllm_client_core::call::{Action, Call, CallReport, Event, ResponseHead, TransportErrorKind};
use vllm_client_core::client::CallSpec;
use vllm_client_core::{StreamEvent, VllmError};

use crate::executor::Inner;

/// What the loop stops for.
pub(crate) enum Step {
    Emit(StreamEvent),
    Done(Result<Bytes, VllmError>),
}

pub(crate) struct Runner {
    inner: Arc<Inner>,
    call: Call,
    response: Option<reqwest::Response>,
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
            response: None,
        }
    }

    pub(crate) fn report(&self) -> CallReport {
        self.call.report().clone()
    }

    /// Runs until the call is over, ignoring stream events (JSON calls emit none).
    pub(crate) async fn finish(&mut self) -> Result<Bytes, VllmError> {
        loop {
            if let Step::Done(r) = self.step().await {
                return r;
            }
        }
    }

    /// Runs until the next event for the caller, or the end.
    pub(crate) async fn step(&mut self) -> Step {
        let mut next: Option<Action> = None;
        loop {
            let action = match next.take() {
                Some(a) => a,
                None => self.with_call(|call, shared| call.poll(Instant::now(), shared)),
            };
            let event = match action {
                Action::Emit(ev) => {
                    if ev.is_terminal() {
                        self.inner.released.notify_waiters();
                    }
                    return Step::Emit(ev);
                }
                Action::Done(result) => {
                    self.response = None;
                    self.inner.released.notify_waiters();
                    return Step::Done(result);
                }
                Action::Send {
                    request, deadline, ..
                } => {
                    self.response = None;
                    self.send(request, deadline).await
                }
                Action::ReadBody { deadline } => self.read(deadline).await,
                Action::Sleep { until, reason } => {
                    self.response = None;
                    let delay = until.saturating_duration_since(Instant::now());
                    emit(log::sleep_line(&reason, delay));
                    sleep_until(until.into()).await;
                    Event::Timeout
                }
                Action::WaitForPermit { deadline } => {
                    emit(log::wait_for_permit_line());
                    let inner = self.inner.clone();
                    let released = inner.released.notified();
                    tokio::pin!(released);
                    // Registered before asking again, so a release in between is not missed.
                    released.as_mut().enable();
                    let again = self.with_call(|call, shared| call.poll(Instant::now(), shared));
                    if !matches!(again, Action::WaitForPermit { .. }) {
                        next = Some(again);
                        continue;
                    }
                    match deadline {
                        Some(d) => match timeout_at(d.into(), released).await {
                            Ok(()) => Event::PermitReleased,
                            Err(_) => Event::Timeout,
                        },
                        None => {
                            released.await;
                            Event::PermitReleased
                        }
                    }
                }
                _ => Event::Timeout,
            };
            self.with_call(|call, shared| call.handle(Instant::now(), event, shared));
        }
    }

    async fn send(&mut self, request: http::Request<Bytes>, deadline: Option<Instant>) -> Event {
        let request = match reqwest::Request::try_from(request) {
            Ok(r) => r,
            Err(e) => {
                return Event::TransportError {
                    kind: TransportErrorKind::Connect,
                    message: e.to_string(),
                }
            }
        };
        let sent = self.inner.http.execute(request);
        let outcome = match deadline {
            Some(d) => match timeout_at(d.into(), sent).await {
                Ok(r) => r,
                Err(_) => return Event::Timeout,
            },
            None => sent.await,
        };
        match outcome {
            Ok(resp) => {
                let head =
                    ResponseHead::new(resp.status(), resp.headers().clone(), SystemTime::now());
                self.response = Some(resp);
                Event::Response(head)
            }
            Err(e) => transport_error(&e),
        }
    }

    async fn read(&mut self, deadline: Option<Instant>) -> Event {
        let Some(resp) = self.response.as_mut() else {
            return Event::BodyEnd;
        };
        let chunk = match deadline {
            Some(d) => match timeout_at(d.into(), resp.chunk()).await {
                Ok(r) => r,
                Err(_) => return Event::Timeout,
            },
            None => resp.chunk().await,
        };
        match chunk {
            Ok(Some(bytes)) => Event::Chunk(bytes),
            Ok(None) => Event::BodyEnd,
            Err(e) => transport_error(&e),
        }
    }

    fn with_call<R>(
        &mut self,
        f: impl FnOnce(&mut Call, &mut vllm_client_core::call::Shared) -> R,
    ) -> R {
        let mut shared = self.inner.shared();
        let r = f(&mut self.call, &mut shared);
        while let Some((endpoint, t)) = shared.poll_transition() {
            emit(log::transition_line(endpoint, &t));
        }
        r
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if !self.call.is_finished() {
            self.with_call(|call, shared| call.cancel(Instant::now(), shared));
            self.inner.released.notify_waiters();
        }
    }
}

fn transport_error(e: &reqwest::Error) -> Event {
    let kind = match (e.is_connect(), e.is_timeout()) {
        (true, true) => TransportErrorKind::ConnectTimeout,
        (true, false) => TransportErrorKind::Connect,
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
