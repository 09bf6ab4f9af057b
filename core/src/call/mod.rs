//! The call driver: one state machine per call that composes request building, the decoders,
//! retries, the retry budget, the circuit breaker, the limits and every timeout. An adapter
//! only performs the [`Action`]s it hands out and reports back [`Event`]s.
//!
//! ```text
//!            ┌───────────── admission ─────────────┐
//!  new ──▶ Start ──▶ (WaitPermit) ──▶ Admit ──▶ (RateWait) ──▶ Send ──▶ AwaitHead
//!                                     ▲                                   │ Response(2xx)
//!                                     │ retry                             ▼
//!                                   Backoff ◀── failure, policy says ── ReadBody ──▶ Emit…
//!                                                retry (no output yet)      │
//!                                                                           ▼
//!                                               give up / success ──▶ Finished (sticky)
//! ```
//!
//! # The run loop
//!
//! ```no_run
//! use std::time::{Instant, SystemTime};
//! use vllm_client_core::call::{Action, Call, Event, ResponseHead, Shared};
//! use vllm_client_core::client::CallSpec;
//! use vllm_client_core::config::ClientConfig;
//! use vllm_client_core::request::Endpoint;
//!
//! let config = ClientConfig::default();
//! let mut shared = Shared::new(&config.policy, 42);
//! let spec = CallSpec::get(Endpoint::Models);
//! let mut call = Call::new(&config, spec, Instant::now(), &mut shared);
//! loop {
//!     match call.poll(Instant::now(), &mut shared) {
//!         Action::Send { request, .. } => {
//!             // Send `request`; race it against the deadline; then report what happened:
//!             let head = ResponseHead::new(http::StatusCode::OK, http::HeaderMap::new(), SystemTime::now());
//!             call.handle(Instant::now(), Event::Response(head), &mut shared);
//!         }
//!         Action::ReadBody { .. } => {
//!             // Read one chunk, racing the deadline:
//!             call.handle(Instant::now(), Event::BodyEnd, &mut shared);
//!         }
//!         Action::Sleep { until, .. } => {
//!             // Sleep until `until`, then:
//!             call.handle(Instant::now(), Event::Timeout, &mut shared);
//!         }
//!         Action::WaitForPermit { waiter, .. } => {
//!             // Wait until `shared.poll_wake()` names `waiter` — after another call's poll,
//!             // handle or cancel — (or the deadline), then:
//!             let _ = waiter;
//!             call.handle(Instant::now(), Event::PermitReleased, &mut shared);
//!         }
//!         Action::Emit(event) => println!("{event:?}"),
//!         Action::Done(result) => { println!("{result:?}"); break; }
//!         _ => {} // `Action` is non-exhaustive: later versions may add actions.
//!     }
//! }
//! ```
//!
//! Rules the driver keeps, so that adapters need not:
//! - a stream is never retried once any of its events was emitted (a retry restarts the
//!   generation, so the caller would see text twice);
//! - no deadline it hands out lies past the call's overall deadline;
//! - a `now` earlier than one already seen is taken as the latest one;
//! - after `Done`, every poll returns `Done` with the same result, and events change nothing;
//! - a call dropped by its caller must be [`cancel`](Call::cancel)led, which releases its
//!   concurrency slot and breaker probe exactly once;
//! - concurrency slots go first come, first served: after every `poll`, `handle` and `cancel`
//!   drain [`Shared::poll_wake`] and wake exactly the calls it names;
//! - before a stream's first data event only the first-token timer (when set), the attempt
//!   timer and the overall deadline run; the idle timer counts between data events;
//! - a 2xx `application/json` answer to a stream request is turned into the events a stream
//!   would have carried; any other non-event-stream 2xx body is a non-retried `Decode` error;
//! - after a terminal stream event the transport drops the response (the connection is
//!   closed, not reused);
//! - a request the transport refuses to send ([`TransportErrorKind::Rejected`]) ends the call
//!   with `InvalidRequest`: never retried, never counted against the server.

pub mod log;
mod report;
mod shared;

pub use report::{CallReport, RetryRecord, SleepReason};
pub use shared::Shared;

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};

use crate::client::CallSpec;
use crate::config::{ClientConfig, PolicyConfig};
use crate::error::{ApiError, VllmError};
use crate::event::StreamEvent;
use crate::policy::{
    earliest_timer, parse_retry_after, Admission, BreakerPermit, ConcurrencyPermit, Failure,
    GiveUpReason, Outcome, RateLimited, RetryContext, RetryDecision, Rng, TimeoutKind, WaiterId,
};
use crate::request::Endpoint;
use crate::stream::{StreamDecoder, StreamKind};

/// The largest error body kept (error bodies are short; a proxy's HTML page is cut).
const MAX_ERROR_BODY: usize = 64 << 10;

/// What the adapter must do next.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Send this request. Report [`Event::Response`] when the head arrives,
    /// [`Event::TransportError`] if it fails, or [`Event::Timeout`] once `deadline` passes.
    Send {
        /// The request (a cheap clone of the call's; the body is shared `Bytes`).
        request: Request<Bytes>,
        /// When to give up waiting for the response head.
        deadline: Option<Instant>,
        /// How long connecting may take, for adapters whose HTTP client times its connect
        /// phase itself (never later than `deadline`).
        connect_timeout: Option<Duration>,
    },
    /// Read the next chunk of the body. Report [`Event::Chunk`], [`Event::BodyEnd`],
    /// [`Event::TransportError`], or [`Event::Timeout`] once `deadline` passes.
    ReadBody {
        /// When to give up waiting for the next chunk.
        deadline: Option<Instant>,
    },
    /// Sleep until `until` (backoff, or the rate limiter), then report [`Event::Timeout`].
    Sleep {
        /// When to wake.
        until: Instant,
        /// Why, for logs.
        reason: SleepReason,
    },
    /// Wait for a concurrency slot. Slots are handed out first come, first served: when
    /// another call ends, [`Shared::poll_wake`] names the one waiter whose turn it is; wake
    /// that call and report [`Event::PermitReleased`] (a wake-up for anybody else is harmless:
    /// the call just asks to wait again). Report [`Event::Timeout`] at `deadline`.
    WaitForPermit {
        /// The overall deadline, if any.
        deadline: Option<Instant>,
        /// This call's place in the queue, as [`Shared::poll_wake`] will name it.
        waiter: WaiterId,
    },
    /// Hand this event to the caller of a stream. After a terminal event (`Done`, `Error`) the
    /// transport drops the response: the connection is closed, never reused, so a server
    /// that keeps the stream open after `[DONE]` cannot hold a slot or a socket.
    Emit(StreamEvent),
    /// The call is over. For a JSON call: the body of the successful response. For a stream:
    /// `Ok` after its terminal event was emitted, `Err` when it failed before any output.
    Done(Result<Bytes, VllmError>),
}

/// What happened, as the adapter reports it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The response head arrived.
    Response(ResponseHead),
    /// The transport failed.
    TransportError {
        /// Whether the connection could not be established, or broke later.
        kind: TransportErrorKind,
        /// What the transport said (kept in the error; never contains request headers).
        message: String,
    },
    /// A chunk of the body.
    Chunk(Bytes),
    /// The body ended cleanly.
    BodyEnd,
    /// A deadline handed out with the last action passed (early or spurious ones are ignored).
    Timeout,
    /// Another call released its concurrency slot.
    PermitReleased,
}

/// How a transport failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be established (refused, DNS, TLS handshake).
    Connect,
    /// The HTTP client's own connect timer fired.
    ConnectTimeout,
    /// The connection broke after it was established.
    Io,
    /// The transport refused to send this request at all (a header value or URL its HTTP
    /// client cannot carry). A bug on the caller's side: never retried, never counted against
    /// the server, reported as [`VllmError::InvalidRequest`].
    Rejected,
}

/// A response head as received.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The wall-clock time it arrived (for `Retry-After` dates when there is no `Date`).
    pub received_at: SystemTime,
}

impl ResponseHead {
    /// A head.
    pub fn new(status: StatusCode, headers: HeaderMap, received_at: SystemTime) -> Self {
        ResponseHead {
            status,
            headers,
            received_at,
        }
    }
}

#[derive(Debug)]
enum State {
    Start,
    WaitPermit {
        waiter: Option<WaiterId>,
    },
    Admit,
    RateWait {
        until: Instant,
    },
    AwaitHead {
        deadline: Option<(Instant, TimeoutKind)>,
    },
    ReadBody,
    Backoff {
        until: Instant,
    },
    Finished,
}

#[derive(Debug)]
enum Body {
    Json(Vec<u8>),
    Stream(Box<StreamDecoder>),
    /// A 2xx `application/json` answer to a stream request (a server that ignored
    /// `stream: true`): read whole, then turned into the events a stream would have produced.
    Document(Box<StreamDecoder>, Vec<u8>),
    /// A 2xx answer to a stream request that is neither an event stream nor JSON (an HTML
    /// page from a proxy): kept for the error's snippet, never retried.
    Foreign(String, Vec<u8>),
    Error(Vec<u8>),
}

/// One call: see the [module docs](self).
#[derive(Debug)]
pub struct Call {
    policy: PolicyConfig,
    endpoint: Endpoint,
    request: Result<Request<Bytes>, VllmError>,
    stream: Option<StreamKind>,
    state: State,
    rng: Rng,
    last_now: Instant,
    deadline: Option<Instant>,
    attempts: u32,
    previous_delay: Duration,
    output_started: bool,
    pending: VecDeque<StreamEvent>,
    attempt_start: Instant,
    head: Option<ResponseHead>,
    body: Option<Body>,
    first_data: Option<Instant>,
    last_activity: Instant,
    breaker_permit: Option<BreakerPermit>,
    concurrency_permit: Option<ConcurrencyPermit>,
    last_error: Option<VllmError>,
    result: Option<Result<Bytes, VllmError>>,
    report: CallReport,
}

impl Call {
    /// A call described by `spec`, starting at `now`.
    pub fn new(config: &ClientConfig, spec: CallSpec, now: Instant, shared: &mut Shared) -> Call {
        let request = if config.policy.max_concurrency == Some(0) {
            // Would wait forever (or until the deadline) for a slot that can never exist.
            Err(VllmError::InvalidRequest(
                "max_concurrency(0) can never admit a call; use at least 1".into(),
            ))
        } else {
            spec.body
                .and_then(|body| config.request.build(spec.endpoint, body.as_ref()))
        };
        let policy = config.policy.clone();
        let deadline = policy.timeouts.deadline_from(now);
        Call {
            endpoint: spec.endpoint,
            request,
            stream: spec.stream,
            state: State::Start,
            rng: Rng::new(shared.next_seed()),
            last_now: now,
            deadline,
            attempts: 0,
            previous_delay: Duration::ZERO,
            output_started: false,
            pending: VecDeque::new(),
            attempt_start: now,
            head: None,
            body: None,
            first_data: None,
            last_activity: now,
            breaker_permit: None,
            concurrency_permit: None,
            last_error: None,
            result: None,
            report: CallReport::default(),
            policy,
        }
    }

    // --- getters ---------------------------------------------------------------------------

    /// What happened so far: attempts, retries and their causes, which timer fired.
    pub fn report(&self) -> &CallReport {
        &self.report
    }

    /// Whether the call is over.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Whether any stream event reached the caller (after which nothing is retried).
    pub fn output_started(&self) -> bool {
        self.output_started
    }

    /// The endpoint called.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    // --- poll ------------------------------------------------------------------------------

    /// What to do next.
    pub fn poll(&mut self, now: Instant, shared: &mut Shared) -> Action {
        let now = self.observe(now);
        // Bounded: every arm either returns or moves to a later state; Admit → RateWait and
        // Backoff → Admit only advance when time has passed.
        for _ in 0..16 {
            if let Some(ev) = self.pending.pop_front() {
                self.output_started = true;
                if ev.is_terminal() {
                    self.finish(now, shared, Ok(Bytes::new()));
                }
                return Action::Emit(ev);
            }
            match self.state {
                State::Finished => {
                    return Action::Done(self.result.clone().unwrap_or(Ok(Bytes::new())));
                }
                State::Start => {
                    if let Err(e) = &self.request {
                        let e = e.clone();
                        self.finish(now, shared, Err(e));
                        continue;
                    }
                    self.state = State::WaitPermit { waiter: None };
                }
                State::WaitPermit { waiter } => {
                    let Some(limiter) = shared.concurrency.as_mut() else {
                        self.state = State::Admit;
                        continue;
                    };
                    // First come, first served: a new call queues behind every waiting one; a
                    // waiting call takes only the slot handed to it.
                    let admission = match waiter {
                        None => limiter.acquire(),
                        Some(w) => match limiter.claim(w) {
                            Some(permit) => Admission::Admitted(permit),
                            None => Admission::Queued(w),
                        },
                    };
                    match admission {
                        Admission::Admitted(permit) => {
                            self.concurrency_permit = Some(permit);
                            self.state = State::Admit;
                        }
                        Admission::Queued(w) => {
                            self.state = State::WaitPermit { waiter: Some(w) };
                            if self.past_deadline(now) {
                                self.report.timeout = Some(TimeoutKind::Deadline);
                                self.finish(now, shared, Err(VllmError::Timeout));
                                continue;
                            }
                            return Action::WaitForPermit {
                                deadline: self.deadline,
                                waiter: w,
                            };
                        }
                    }
                }
                State::Admit => {
                    if let Some(action) = self.admit(now, shared) {
                        return action;
                    }
                }
                State::RateWait { until } | State::Backoff { until } => {
                    if now >= until {
                        self.state = State::Admit;
                    } else {
                        let reason = match self.state {
                            State::RateWait { .. } => SleepReason::RateLimit,
                            _ => self.report.sleep_reason(),
                        };
                        return Action::Sleep { until, reason };
                    }
                }
                State::AwaitHead { .. } => {
                    // The adapter polled instead of reporting the response: a misuse that
                    // would otherwise hang; end the call with a clear error.
                    self.release_breaker(now, shared, Outcome::Ignored);
                    self.finish(
                        now,
                        shared,
                        Err(VllmError::InvalidRequest(
                            "driver misuse: poll() while a response was awaited".into(),
                        )),
                    );
                }
                State::ReadBody => {
                    return Action::ReadBody {
                        deadline: self.body_deadline().map(|(t, _)| t),
                    }
                }
            }
        }
        // Unreachable in practice (each arm returns within a few steps); never spin.
        self.finish(
            now,
            shared,
            Err(VllmError::InvalidRequest("driver made no progress".into())),
        );
        Action::Done(self.result.clone().unwrap_or(Ok(Bytes::new())))
    }

    /// Rate limit, breaker, then the attempt itself.
    fn admit(&mut self, now: Instant, shared: &mut Shared) -> Option<Action> {
        if self.past_deadline(now) {
            self.report.timeout = Some(TimeoutKind::Deadline);
            let e = self.last_error.take().unwrap_or(VllmError::Timeout);
            self.finish(now, shared, Err(e));
            return None;
        }
        if let Some(rate) = shared.rate.as_mut() {
            match rate.check(now, 1) {
                Ok(()) => {}
                Err(RateLimited::Wait { until }) => {
                    if self.deadline.is_some_and(|d| until >= d) {
                        let e = VllmError::RateLimited(format!(
                            "the next slot opens in {:?}, after the call's deadline",
                            until.saturating_duration_since(now)
                        ));
                        self.finish(now, shared, Err(e));
                        return None;
                    }
                    self.state = State::RateWait { until };
                    return None;
                }
                Err(RateLimited::Never { cost, burst }) => {
                    let e = VllmError::RateLimited(format!(
                        "a request costing {cost} can never fit a burst of {burst}"
                    ));
                    self.finish(now, shared, Err(e));
                    return None;
                }
            }
        }
        let policy = &self.policy;
        if let Some(breaker) = shared.breaker_for(self.endpoint, policy) {
            match breaker.try_acquire(now) {
                Ok(permit) => self.breaker_permit = Some(permit),
                Err(rejected) => {
                    shared.collect_transitions();
                    // A retry the breaker refuses ends the call with the last attempt's error.
                    if self.last_error.is_some() {
                        self.report.gave_up = Some(GiveUpReason::CircuitOpen);
                    }
                    let e = self.last_error.take().unwrap_or(VllmError::CircuitOpen {
                        retry_in: rejected.retry_at.saturating_duration_since(now),
                    });
                    self.finish(now, shared, Err(e));
                    return None;
                }
            }
            shared.collect_transitions();
        }
        let request = match &self.request {
            Ok(r) => clone_request(r),
            Err(e) => {
                let e = e.clone();
                self.finish(now, shared, Err(e));
                return None;
            }
        };
        self.attempts += 1;
        self.report.attempts = self.attempts;
        self.attempt_start = now;
        self.head = None;
        self.body = None;
        self.first_data = None;
        self.last_activity = now;
        let deadline = self.head_deadline();
        self.state = State::AwaitHead { deadline };
        let t = self.policy.timeouts;
        let connect_timeout = t.connect.map(|c| match deadline {
            Some((d, _)) => c.min(d.saturating_duration_since(now)),
            None => c,
        });
        Some(Action::Send {
            request,
            deadline: deadline.map(|(d, _)| d),
            connect_timeout,
        })
    }

    // --- handle ----------------------------------------------------------------------------

    /// Reports what happened.
    pub fn handle(&mut self, now: Instant, event: Event, shared: &mut Shared) {
        let now = self.observe(now);
        if matches!(self.state, State::Finished) {
            return;
        }
        match event {
            Event::Timeout => self.on_timeout(now, shared),
            Event::PermitReleased => {}
            Event::Response(head) => {
                if let State::AwaitHead { .. } = self.state {
                    self.on_head(now, head, shared);
                }
            }
            Event::TransportError { kind, message } => {
                let in_exchange = matches!(self.state, State::AwaitHead { .. } | State::ReadBody);
                if !in_exchange {
                    return;
                }
                if let Some(Body::Error(_) | Body::Foreign(..)) = self.body {
                    // The status already answered; a cut error body does not make a 400
                    // retryable: classify by the status with the part that arrived.
                    self.on_body_end(now, shared);
                    return;
                }
                if kind == TransportErrorKind::Rejected {
                    // Nothing reached the server: the caller's request is at fault.
                    self.release_breaker(now, shared, Outcome::Ignored);
                    self.report.gave_up = Some(GiveUpReason::NotRetryable);
                    let e = VllmError::InvalidRequest(format!(
                        "the HTTP client refused to send the request: {message}"
                    ));
                    self.finish(now, shared, Err(e));
                    return;
                }
                if let (TransportErrorKind::ConnectTimeout, State::AwaitHead { deadline }) =
                    (kind, &self.state)
                {
                    // An HTTP client's connect timer clamped to the head deadline fires with
                    // it: that is the deadline's timeout (an overall deadline is not retried),
                    // however the transport words it.
                    if deadline.is_some_and(|(d, _)| now >= d) {
                        self.on_timeout(now, shared);
                        return;
                    }
                }
                let (failure, error) = match kind {
                    TransportErrorKind::Connect if self.head.is_none() => {
                        (Failure::Connect, VllmError::Connect { message })
                    }
                    TransportErrorKind::ConnectTimeout if self.head.is_none() => {
                        self.report.timeout = Some(TimeoutKind::Connect);
                        (
                            Failure::Timeout {
                                kind: TimeoutKind::Connect,
                                output_started: false,
                            },
                            VllmError::Timeout,
                        )
                    }
                    // However the transport words it (a reset, an incomplete chunk), a stream
                    // whose connection broke before `[DONE]` is a truncated stream.
                    _ if matches!(self.body, Some(Body::Stream(_))) => (
                        Failure::Truncated {
                            output_started: self.output_started,
                        },
                        VllmError::Truncated,
                    ),
                    _ => (
                        Failure::Transport {
                            output_started: self.output_started,
                        },
                        VllmError::Transport { message },
                    ),
                };
                self.fail(now, shared, failure, error);
            }
            Event::Chunk(bytes) => {
                if let State::ReadBody = self.state {
                    self.on_chunk(now, &bytes, shared);
                }
            }
            Event::BodyEnd => {
                if let State::ReadBody = self.state {
                    self.on_body_end(now, shared);
                }
            }
        }
    }

    /// The caller dropped the call: release its slot and probe, record nothing against the
    /// server. Idempotent.
    pub fn cancel(&mut self, now: Instant, shared: &mut Shared) {
        let now = self.observe(now);
        if !matches!(self.state, State::Finished) {
            self.release_breaker(now, shared, Outcome::Ignored);
            self.finish(
                now,
                shared,
                Err(VllmError::InvalidRequest("the call was cancelled".into())),
            );
        }
    }

    fn on_timeout(&mut self, now: Instant, shared: &mut Shared) {
        let fired = match self.state {
            State::AwaitHead { deadline } => deadline.filter(|(d, _)| now >= *d),
            State::ReadBody => self.body_deadline().filter(|(d, _)| now >= *d),
            State::WaitPermit { .. } => {
                if self.past_deadline(now) {
                    self.report.timeout = Some(TimeoutKind::Deadline);
                    self.finish(now, shared, Err(VllmError::Timeout));
                }
                return;
            }
            // Sleeps end in poll(); an early wake is a no-op.
            _ => return,
        };
        let Some((_, kind)) = fired else { return };
        self.report.timeout = Some(kind);
        if let Some(Body::Error(_) | Body::Foreign(..)) = self.body {
            // As for a cut error body: the status decides, not the slow body.
            self.on_body_end(now, shared);
            return;
        }
        let failure = Failure::Timeout {
            kind,
            output_started: self.output_started,
        };
        if self.output_started {
            // Mid-stream: the caller gets the error as the stream's last event.
            self.release_breaker(now, shared, Outcome::Failure { ttfb: None });
            self.pending
                .push_back(StreamEvent::Error(VllmError::Timeout));
            self.state = State::ReadBody;
            self.body = None;
            self.stream_terminal_pending();
            return;
        }
        self.fail(now, shared, failure, VllmError::Timeout);
    }

    fn on_head(&mut self, now: Instant, head: ResponseHead, shared: &mut Shared) {
        let ok = head.status.is_success();
        self.body = Some(if !ok {
            Body::Error(Vec::new())
        } else if let Some(kind) = self.stream {
            let decoder = Box::new(StreamDecoder::new(kind).with_limits(self.policy.sse_limits));
            match StreamBody::of(&head.headers) {
                StreamBody::EventStream => Body::Stream(decoder),
                StreamBody::Json => Body::Document(decoder, Vec::new()),
                StreamBody::Other(content_type) => Body::Foreign(content_type, Vec::new()),
            }
        } else {
            Body::Json(Vec::new())
        });
        self.head = Some(head);
        self.last_activity = now;
        self.state = State::ReadBody;
        let _ = shared;
    }

    fn on_chunk(&mut self, now: Instant, bytes: &[u8], shared: &mut Shared) {
        let max_body = self.policy.max_body_bytes;
        match self.body.as_mut() {
            Some(Body::Json(buf)) => {
                self.last_activity = now;
                if buf.len().saturating_add(bytes.len()) > max_body {
                    let e = VllmError::decode(
                        format!("the response body exceeds {max_body} bytes"),
                        buf,
                    );
                    self.fail(
                        now,
                        shared,
                        Failure::Decode {
                            output_started: false,
                        },
                        e,
                    );
                    return;
                }
                buf.extend_from_slice(bytes);
            }
            Some(Body::Error(buf) | Body::Foreign(_, buf)) => {
                self.last_activity = now;
                let room = MAX_ERROR_BODY.saturating_sub(buf.len());
                buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Some(Body::Document(_, buf)) => {
                self.last_activity = now;
                if buf.len().saturating_add(bytes.len()) > max_body {
                    let e = VllmError::decode(
                        format!("the JSON answer to a stream request exceeds {max_body} bytes"),
                        buf,
                    );
                    let failure = Failure::Decode {
                        output_started: false,
                    };
                    self.fail(now, shared, failure, e);
                    return;
                }
                buf.extend_from_slice(bytes);
            }
            Some(Body::Stream(dec)) => {
                let report = dec.push(bytes);
                if report.has_data() {
                    self.last_activity = now;
                    if self.first_data.is_none() {
                        self.first_data = Some(now);
                        // The server is generating: that is the breaker's success signal.
                        let ttfb = now.saturating_duration_since(self.attempt_start);
                        self.release_breaker(now, shared, Outcome::Success { ttfb });
                    }
                }
                self.drain_decoder(now, shared);
            }
            None => {}
        }
    }

    fn on_body_end(&mut self, now: Instant, shared: &mut Shared) {
        let Some(body) = self.body.take() else { return };
        let Some(head) = self.head.clone() else {
            return;
        };
        match body {
            Body::Json(buf) => {
                let ttfb = self.ttfb();
                self.release_breaker(now, shared, Outcome::Success { ttfb });
                if let Some(b) = shared.budget.as_mut() {
                    b.on_success(now);
                }
                self.finish(now, shared, Ok(Bytes::from(buf)));
            }
            Body::Error(buf) => {
                let hint = parse_retry_after(&head.headers, head.received_at).map(|h| h.delay);
                let api = ApiError::from_response(head.status, &buf).with_retry_after(hint);
                let failure = Failure::Status {
                    status: head.status,
                    headers: head.headers,
                };
                self.fail(now, shared, failure, VllmError::from(api));
            }
            Body::Stream(mut dec) => {
                dec.finish();
                self.body = Some(Body::Stream(dec));
                self.drain_decoder(now, shared);
            }
            Body::Document(mut dec, buf) => {
                // The server ignored `stream: true`: its whole answer is one document, turned
                // into the events its stream would have carried, so the caller's loop works.
                dec.push_document(&buf);
                self.first_data = Some(now);
                self.body = Some(Body::Stream(dec));
                self.drain_decoder(now, shared);
            }
            Body::Foreign(content_type, buf) => {
                let e = VllmError::decode(
                    format!(
                        "a stream was asked for, but the server answered {} with Content-Type {content_type:?}",
                        head.status
                    ),
                    &buf,
                );
                let failure = Failure::Decode {
                    output_started: false,
                };
                self.fail(now, shared, failure, e);
            }
        }
    }

    /// Moves decoded events to the emit queue; a terminal error before any output is an
    /// attempt failure (and may be retried) instead.
    fn drain_decoder(&mut self, now: Instant, shared: &mut Shared) {
        loop {
            let Some(Body::Stream(dec)) = self.body.as_mut() else {
                return;
            };
            let Some(ev) = dec.poll_event() else { return };
            match ev {
                StreamEvent::Error(e) if !self.output_started => {
                    // Nothing reached the caller yet: events decoded but not emitted are
                    // dropped with the attempt, so a retry cannot duplicate them.
                    self.pending.clear();
                    let failure = match &e {
                        VllmError::Truncated => Failure::Truncated {
                            output_started: false,
                        },
                        VllmError::Api(api) => Failure::StreamError {
                            code: api.code.as_deref().and_then(|c| c.parse().ok()),
                            output_started: false,
                        },
                        _ => Failure::Decode {
                            output_started: false,
                        },
                    };
                    self.body = None;
                    self.fail(now, shared, failure, e);
                    return;
                }
                StreamEvent::Done => {
                    if let Some(b) = shared.budget.as_mut() {
                        b.on_success(now);
                    }
                    let ttfb = self.ttfb();
                    self.release_breaker(now, shared, Outcome::Success { ttfb });
                    self.pending.push_back(StreamEvent::Done);
                    self.body = None;
                    self.stream_terminal_pending();
                    return;
                }
                StreamEvent::Error(e) => {
                    self.release_breaker(now, shared, Outcome::Failure { ttfb: None });
                    self.pending.push_back(StreamEvent::Error(e));
                    self.body = None;
                    self.stream_terminal_pending();
                    return;
                }
                other => self.pending.push_back(other),
            }
        }
    }

    /// A terminal stream event is queued: nothing is read any more; poll emits the queue and
    /// then finishes.
    fn stream_terminal_pending(&mut self) {
        self.state = State::ReadBody;
        self.body = None;
    }

    /// An attempt failed: retry or give up.
    fn fail(&mut self, now: Instant, shared: &mut Shared, failure: Failure, error: VllmError) {
        let ttfb = self.head.as_ref().map(|_| self.ttfb());
        let outcome = Outcome::of_failure(&failure, ttfb);
        self.release_breaker(now, shared, outcome);
        self.body = None;
        let received_at = self
            .head
            .as_ref()
            .map(|h| h.received_at)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let ctx = RetryContext::new(self.attempts, now, received_at)
            .with_deadline(self.deadline)
            .with_previous_delay(self.previous_delay);
        let decision =
            self.policy
                .retry
                .decide(&failure, &ctx, &mut self.rng, shared.budget.as_mut());
        match decision {
            RetryDecision::Retry { delay, hinted } => {
                self.report.retries.push(RetryRecord {
                    attempt: self.attempts,
                    delay,
                    hinted,
                    cause: error.to_string(),
                });
                self.previous_delay = delay;
                self.last_error = Some(error);
                // Events decoded from the failed attempt never reached the caller (a retry
                // happens only before any output); a retry must not emit them later.
                self.pending.clear();
                // Saturate: an accepted huge hint must not wrap to "now" (a hot retry loop).
                self.state = State::Backoff {
                    until: crate::policy::clock::saturating_add(now, delay),
                };
            }
            RetryDecision::GiveUp(reason) => {
                self.report.gave_up = Some(reason);
                if self.output_started {
                    // Part of the stream reached the caller: the failure is its last event,
                    // as for a timeout mid-stream (`Done(Err)` means "failed before output").
                    self.pending.push_back(StreamEvent::Error(error));
                    self.stream_terminal_pending();
                } else {
                    self.finish(now, shared, Err(error));
                }
            }
        }
    }

    fn finish(&mut self, now: Instant, shared: &mut Shared, result: Result<Bytes, VllmError>) {
        let _ = now;
        // Nothing is emitted after the end: events still queued (a call cancelled between two
        // emits, or a failure before output) are dropped, so a queued terminal event cannot
        // later replace the result.
        self.pending.clear();
        if let Some(limiter) = shared.concurrency.as_mut() {
            if let State::WaitPermit { waiter: Some(w) } = self.state {
                // Out of the queue; a slot already handed to this call passes on.
                limiter.leave(w);
            }
            if let Some(permit) = self.concurrency_permit.take() {
                limiter.release(permit);
            }
        }
        self.result = Some(result);
        self.state = State::Finished;
    }

    fn release_breaker(&mut self, now: Instant, shared: &mut Shared, outcome: Outcome) {
        if let Some(permit) = self.breaker_permit.take() {
            if let Some(b) = shared.breaker_for(self.endpoint, &self.policy) {
                b.record(now, permit, outcome);
            }
            shared.collect_transitions();
        }
    }

    // --- time ------------------------------------------------------------------------------

    fn observe(&mut self, now: Instant) -> Instant {
        if now > self.last_now {
            self.last_now = now;
        }
        self.last_now
    }

    fn past_deadline(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    fn ttfb(&self) -> Duration {
        let at = self.first_data.unwrap_or(self.last_activity);
        at.saturating_duration_since(self.attempt_start)
    }

    /// The deadline for the response head: attempt, first token (streams), overall.
    fn head_deadline(&self) -> Option<(Instant, TimeoutKind)> {
        let t = &self.policy.timeouts;
        let from = self.attempt_start;
        earliest_timer([
            t.arm(TimeoutKind::Attempt, from, self.deadline),
            self.stream
                .and_then(|_| t.arm(TimeoutKind::FirstToken, from, self.deadline)),
            self.deadline.map(|d| (d, TimeoutKind::Deadline)),
        ])
    }

    /// The deadline for the next chunk.
    ///
    /// Before a stream's first data event only the first-token timer (when set), the attempt
    /// timer and the overall deadline run — never the idle timer: vLLM sends a stream's head at
    /// once and its first token only when the request is scheduled, so a quiet stream before
    /// its first token is *queued*, not stalled. After the first data event, idle counts from
    /// the last data event (keep-alive comments do not reset it). A non-streamed body (and an
    /// error body) is idle-timed from the head and then from each chunk.
    fn body_deadline(&self) -> Option<(Instant, TimeoutKind)> {
        // No body: a terminal event is queued; the next poll emits it. Nothing to wait for.
        let body = self.body.as_ref()?;
        let t = &self.policy.timeouts;
        let from = self.attempt_start;
        let (first_token, idle) = match (body, self.first_data) {
            (Body::Stream(_), None) => (t.arm(TimeoutKind::FirstToken, from, self.deadline), None),
            _ => (
                None,
                t.arm(TimeoutKind::Idle, self.last_activity, self.deadline),
            ),
        };
        earliest_timer([
            t.arm(TimeoutKind::Attempt, from, self.deadline),
            first_token,
            idle,
            self.deadline.map(|d| (d, TimeoutKind::Deadline)),
        ])
    }
}

/// What a 2xx answer to a stream request carries, by its `Content-Type`.
enum StreamBody {
    /// `text/event-stream`, or no `Content-Type` at all (read as events; anything else fails
    /// in the decoder).
    EventStream,
    /// `application/json` or `…+json`: one complete answer from a server that ignored
    /// `stream: true`.
    Json,
    /// Anything else (`text/html` from a proxy, …), with the type as sent.
    Other(String),
}

impl StreamBody {
    fn of(headers: &HeaderMap) -> StreamBody {
        let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
            return StreamBody::EventStream;
        };
        let text = String::from_utf8_lossy(value.as_bytes());
        let essence = text
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/event-stream" | "" => StreamBody::EventStream,
            "application/json" => StreamBody::Json,
            e if e.ends_with("+json") => StreamBody::Json,
            _ => StreamBody::Other(crate::error::snippet(value.as_bytes())),
        }
    }
}

fn clone_request(r: &Request<Bytes>) -> Request<Bytes> {
    let mut b = Request::builder()
        .method(r.method().clone())
        .uri(r.uri().clone())
        .version(r.version());
    if let Some(h) = b.headers_mut() {
        *h = r.headers().clone();
    }
    b.body(r.body().clone())
        .unwrap_or_else(|_| Request::new(r.body().clone()))
}
