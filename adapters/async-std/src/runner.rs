//! The run loop: performs the driver's actions with surf and async-std timers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::AsyncReadExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
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
    response: Option<surf::Response>,
    buf: Vec<u8>,
    /// Set when this call's turn for a concurrency slot has come.
    turn: Arc<Turn>,
    waiter: Option<WaiterId>,
}

/// Races `fut` against `deadline`: `None` when the deadline passed first.
async fn until<F: Future>(deadline: Option<Instant>, fut: F) -> Option<F::Output> {
    match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            async_std::future::timeout(left, fut).await.ok()
        }
        None => Some(fut.await),
    }
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
            buf: Vec::new(),
            turn: Arc::new(Turn::default()),
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
                Action::Sleep {
                    until: wake,
                    reason,
                } => {
                    self.response = None;
                    let delay = wake.saturating_duration_since(Instant::now());
                    emit(log::sleep_line(&reason, delay));
                    async_std::task::sleep(delay).await;
                    Event::Timeout
                }
                Action::WaitForPermit { deadline, .. } => {
                    emit(log::wait_for_permit_line());
                    // `poll` registered this call under the client lock; a wake-up that came
                    // before this wait is kept by the `Turn`.
                    let turn = self.turn.clone();
                    match until(deadline, turn.wait()).await {
                        Some(()) => Event::PermitReleased,
                        None => Event::Timeout,
                    }
                }
                other => {
                    // `Action` is non-exhaustive: an action this adapter does not know ends
                    // the call with a clear error instead of a guess.
                    self.response = None;
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
        let request = match to_surf(request) {
            Ok(r) => r,
            Err(message) => {
                return Event::TransportError {
                    kind: TransportErrorKind::Rejected,
                    message,
                }
            }
        };
        match until(deadline, self.inner.http.send(request)).await {
            None => Event::Timeout,
            Some(Ok(resp)) => {
                let head = ResponseHead::new(status(&resp), headers(&resp), SystemTime::now());
                self.response = Some(resp);
                Event::Response(head)
            }
            Some(Err(e)) => {
                let kind = match e.downcast_ref::<std::io::Error>() {
                    Some(io) => TransportErrorKind::of_io_error(io.kind()),
                    None => TransportErrorKind::Io,
                };
                Event::TransportError {
                    kind,
                    message: log::error_chain(e.as_ref()),
                }
            }
        }
    }

    async fn read(&mut self, deadline: Option<Instant>) -> Event {
        let Some(resp) = self.response.as_mut() else {
            return Event::BodyEnd;
        };
        self.buf.resize(READ_CHUNK, 0);
        match until(deadline, resp.read(&mut self.buf)).await {
            None => Event::Timeout,
            Some(Ok(0)) => Event::BodyEnd,
            Some(Ok(n)) => Event::Chunk(Bytes::copy_from_slice(&self.buf[..n])),
            Some(Err(e)) => Event::TransportError {
                kind: TransportErrorKind::Io,
                message: log::error_chain(&e),
            },
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
        // Closes the connection (keep-alive is off), so the server stops generating.
        self.response = None;
        if !self.call.is_finished() {
            self.with_call(|call, shared| call.cancel(Instant::now(), shared));
        }
        self.forget_waiter();
    }
}

/// `http::Request<Bytes>` as surf's request; `Err` names what surf cannot carry.
fn to_surf(request: http::Request<Bytes>) -> Result<surf::Request, String> {
    let (parts, body) = request.into_parts();
    let url = surf::Url::parse(&parts.uri.to_string()).map_err(|e| format!("bad URL: {e}"))?;
    let method: surf::http::Method = parts
        .method
        .as_str()
        .parse()
        .map_err(|_| format!("unsupported method {}", parts.method))?;
    let mut req = surf::http::Request::new(method, url);
    for (name, value) in parts.headers.iter() {
        let value = value
            .to_str()
            .map_err(|_| format!("header {name} is not visible ASCII"))?;
        req.append_header(name.as_str(), value);
    }
    if !body.is_empty() {
        // After the headers, so that the request's own content type is kept.
        req.set_body(surf::Body::from_bytes(body.to_vec()));
    }
    Ok(req.into())
}

fn status(resp: &surf::Response) -> StatusCode {
    StatusCode::from_u16(resp.status() as u16).unwrap_or(StatusCode::BAD_GATEWAY)
}

fn headers(resp: &surf::Response) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, values) in resp.iter() {
        let Ok(name) = HeaderName::from_bytes(name.as_str().as_bytes()) else {
            continue;
        };
        for v in values.iter() {
            if let Ok(v) = HeaderValue::from_str(v.as_str()) {
                map.append(name.clone(), v);
            }
        }
    }
    map
}

fn emit(line: LogLine) {
    match line.level {
        LogLevel::Debug => tracing::debug!("{}", line.message),
        LogLevel::Info => tracing::info!("{}", line.message),
        LogLevel::Warn => tracing::warn!("{}", line.message),
    }
}
