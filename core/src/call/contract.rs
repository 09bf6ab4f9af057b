//! The whole contract between the driver and a transport: what the driver asks
//! ([`Action`]), what the transport reports ([`Event`]), and the rules both keep.
//!
//! # The rules a transport keeps
//!
//! 1. **Perform each action, report its outcome, poll again.** `Send` → one of
//!    [`Event::Response`], [`Event::TransportError`], [`Event::Timeout`]; `ReadBody` → one of
//!    [`Event::Chunk`], [`Event::BodyEnd`], [`Event::TransportError`], [`Event::Timeout`];
//!    `Sleep` → [`Event::Timeout`] at `until`; `WaitForPermit` → [`Event::PermitReleased`]
//!    when woken, [`Event::Timeout`] at its deadline; `Emit` → hand the event to the caller;
//!    `Done` → return the result. [`Action`] is exhaustive on purpose: a new action is a
//!    compile error in your transport, never a silent guess.
//! 2. **Race IO against the deadline handed out** and report [`Event::Timeout`] when it passes
//!    first. Early or spurious timeouts are ignored; time never goes backwards (a smaller
//!    `now` is taken as the last one).
//! 3. **Bytes are the decoded body**: after transfer coding (chunked) and content coding
//!    (gzip, if your client asked for it) are undone. Report a body shorter than its
//!    `Content-Length`, or a broken chunked encoding, as [`TransportErrorKind::Io`].
//! 4. **Headers the transport adds**: the built request carries method, URL, `Content-Type`,
//!    `Accept`, `User-Agent`, `Authorization` and the client's default headers; the transport
//!    adds what its HTTP/1.1 or HTTP/2 framing needs (`Host`, `Content-Length` of the body,
//!    `Transfer-Encoding`, `Connection`). With several endpoints, attempts of one call may go
//!    to different hosts: send each request where its URL says.
//! 5. **Connection lifecycle**: keep a response only while the driver asks `ReadBody` for its
//!    attempt; as soon as the next action is anything else (`Emit` of a terminal event, `Done`,
//!    `Sleep`, another `Send`) drop it. A connection may be reused for a later request only if
//!    the transport reported [`Event::BodyEnd`] for it (the body was read to its end);
//!    otherwise close it — a server that keeps a stream open after `[DONE]` must not hold a
//!    socket or a vLLM slot.
//! 6. **Refusals are not failures**: a request the transport cannot send at all (a header
//!    value or URL its HTTP client refuses) is [`TransportErrorKind::Rejected`]: never
//!    retried, never counted against the server.
//! 7. **Waiting for a slot**: concurrency slots go first come, first served. After every
//!    `poll`, `handle` and `cancel`, drain [`Shared::poll_wake`](super::Shared::poll_wake) and
//!    wake exactly the calls it names (their `WaitForPermit` carried the same [`WaiterId`]).
//! 8. **Cancel on drop**: a call its caller abandons is [`cancel`](super::Call::cancel)led, so
//!    its slot and breaker probe are released exactly once.
//! 9. **Seeding**: give [`Shared::new`](super::Shared::new) entropy from the OS (e.g.
//!    [`os_entropy`](crate::os_entropy)) so processes do not retry in lockstep; a seed in the
//!    policy replaces it for replayable runs.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};

use super::report::SleepReason;
use crate::error::VllmError;
use crate::event::StreamEvent;
use crate::policy::WaiterId;

/// Which request of a call an action concerns: 1 for the first request sent, 2 for the next
/// (a retry, or the attempt after a pool's health probe), and so on. Events of a request that
/// is no longer current are ignored ([`Call::handle_attempt`](super::Call::handle_attempt)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId(pub(crate) u32);

impl AttemptId {
    /// The request's number within its call, from 1.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// What the transport must do next (see the [module docs](self) for the rules).
#[derive(Debug)]
pub enum Action {
    /// Send this request. Report [`Event::Response`] when the head arrives,
    /// [`Event::TransportError`] if it fails, or [`Event::Timeout`] once `deadline` passes.
    Send {
        /// Which attempt this is.
        attempt: AttemptId,
        /// The request (a cheap clone of the call's; the body is shared `Bytes`).
        request: Request<Bytes>,
        /// When to give up waiting for the response head.
        deadline: Option<Instant>,
        /// How long connecting may take, for transports that time their connect phase
        /// themselves (never later than `deadline`).
        connect_timeout: Option<Duration>,
    },
    /// Read the next chunk of the body. Report [`Event::Chunk`], [`Event::BodyEnd`],
    /// [`Event::TransportError`], or [`Event::Timeout`] once `deadline` passes.
    ReadBody {
        /// The attempt whose response is read.
        attempt: AttemptId,
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
    /// Wait for a concurrency slot, first come, first served: when
    /// [`Shared::poll_wake`](super::Shared::poll_wake) names `waiter`, report
    /// [`Event::PermitReleased`] (a wake-up for anybody else is harmless: the call asks to
    /// wait again). Report [`Event::Timeout`] at `deadline`.
    WaitForPermit {
        /// The overall deadline, if any.
        deadline: Option<Instant>,
        /// This call's place in the queue.
        waiter: WaiterId,
    },
    /// Hand this event to the caller of a stream. After a terminal event (`Done`, `Error`) the
    /// response is dropped (rule 5).
    Emit(StreamEvent),
    /// The call is over. For a JSON call: the body of the successful response. For a stream:
    /// `Ok` only after its terminal event was emitted, `Err` when it failed before any output.
    Done(Result<Bytes, VllmError>),
}

/// What happened, as the transport reports it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The response head arrived.
    Response(ResponseHead),
    /// The transport failed.
    TransportError {
        /// Whether the connection could not be established, broke later, or the request was
        /// refused before sending.
        kind: TransportErrorKind,
        /// What the transport said (kept in the error; never contains request headers).
        message: String,
    },
    /// The transport failed with this error: the same as
    /// [`TransportError`](Self::TransportError), and `source` is kept as the
    /// [`source`](std::error::Error::source) of the resulting [`VllmError::Connect`] or
    /// [`VllmError::Transport`], so that callers can downcast it (a TLS error, an
    /// `std::io::Error`, the HTTP client's own error type).
    TransportFailure {
        /// As for [`TransportError`](Self::TransportError).
        kind: TransportErrorKind,
        /// What the transport said, its causes included (never request headers).
        message: String,
        /// The error itself.
        source: crate::error::ErrorSource,
    },
    /// A chunk of the decoded body.
    Chunk(Bytes),
    /// The body ended cleanly.
    BodyEnd,
    /// A deadline handed out with the last action passed (early or spurious ones are ignored).
    Timeout,
    /// This call's turn for a concurrency slot came.
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
    /// The connection broke after it was established (reset, short body, bad framing).
    Io,
    /// The transport refused to send this request at all (a header value or URL its HTTP
    /// client cannot carry). A bug on the caller's side: never retried, never counted against
    /// the server, reported as [`VllmError::InvalidRequest`].
    Rejected,
}

impl TransportErrorKind {
    /// How an IO error of the given kind raised while sending a request is reported:
    /// [`Connect`](Self::Connect) when the connection could not be established (refused, no
    /// route, address unavailable), [`ConnectTimeout`](Self::ConnectTimeout) when connecting
    /// timed out, [`Io`](Self::Io) otherwise.
    pub fn of_io_error(kind: std::io::ErrorKind) -> TransportErrorKind {
        use std::io::ErrorKind as K;
        match kind {
            K::ConnectionRefused | K::AddrNotAvailable | K::NotFound | K::AddrInUse => {
                TransportErrorKind::Connect
            }
            K::TimedOut => TransportErrorKind::ConnectTimeout,
            // Unstable kinds (HostUnreachable, NetworkUnreachable) show in their names.
            k if format!("{k:?}").contains("Unreachable") => TransportErrorKind::Connect,
            _ => TransportErrorKind::Io,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kinds() {
        use std::io::ErrorKind as K;
        assert_eq!(
            TransportErrorKind::of_io_error(K::ConnectionRefused),
            TransportErrorKind::Connect
        );
        assert_eq!(
            TransportErrorKind::of_io_error(K::TimedOut),
            TransportErrorKind::ConnectTimeout
        );
        assert_eq!(
            TransportErrorKind::of_io_error(K::ConnectionReset),
            TransportErrorKind::Io
        );
        assert_eq!(
            TransportErrorKind::of_io_error(K::UnexpectedEof),
            TransportErrorKind::Io
        );
    }
}
