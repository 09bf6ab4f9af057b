//! The run loop: performs the driver's actions with reqwest and tokio timers.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::{sleep_until, timeout_at};
use vllm_client_core::call::log::{self, LogLevel, LogLine};
use vllm_client_core::call::{Action, Call, CallReport, Event, ResponseHead, TransportErrorKind};
use vllm_client_core::client::CallSpec;
use vllm_client_core::policy::WaiterId;
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
    /// Notified when this call's turn for a concurrency slot has come.
    wake: Arc<Notify>,
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
            response: None,
            wake: Arc::new(Notify::new()),
            waiter: None,
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
        loop {
            let action = self.poll();
            let event = match action {
                Action::Emit(ev) => {
                    if ev.is_terminal() {
                        // The contract: a finished stream's connection is closed, not reused.
                        self.response = None;
                    }
                    return Step::Emit(ev);
                }
                Action::Done(result) => {
                    self.response = None;
                    self.forget_waiter();
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
                Action::WaitForPermit { deadline, .. } => {
                    emit(log::wait_for_permit_line());
                    // `poll` registered this call under the client lock; a wake-up that came
                    // before this await is kept by `Notify` as a stored permit.
                    let wake = self.wake.clone();
                    let turn = wake.notified();
                    match deadline {
                        Some(d) => match timeout_at(d.into(), turn).await {
                            Ok(()) => Event::PermitReleased,
                            Err(_) => Event::Timeout,
                        },
                        None => {
                            turn.await;
                            Event::PermitReleased
                        }
                    }
                }
                other => {
                    // `Action` is non-exhaustive: an action this adapter does not know ends
                    // the call with a clear error instead of a guess.
                    self.with_call(|call, shared| call.cancel(Instant::now(), shared));
                    return Step::Done(Err(VllmError::InvalidRequest(format!(
                        "this adapter cannot perform {other:?}"
                    ))));
                }
            };
            self.with_call(|call, shared| call.handle(Instant::now(), event, shared));
        }
    }

    async fn send(&mut self, request: http::Request<Bytes>, deadline: Option<Instant>) -> Event {
        let request = match reqwest::Request::try_from(request) {
            Ok(r) => r,
            Err(e) => {
                return Event::TransportError {
                    kind: TransportErrorKind::Rejected,
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

    /// Asks the driver what to do; a call told to wait is registered as a waiter before the
    /// client lock is released, so that no release can miss it.
    fn poll(&mut self) -> Action {
        let inner = self.inner.clone();
        let wake = self.wake.clone();
        let action = self.with_call(|call, shared| {
            let action = call.poll(Instant::now(), shared);
            if let Action::WaitForPermit { waiter, .. } = &action {
                inner.waiters().insert(*waiter, wake);
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
        if !self.call.is_finished() {
            self.with_call(|call, shared| call.cancel(Instant::now(), shared));
        }
        self.forget_waiter();
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
