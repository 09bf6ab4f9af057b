//! The whole contract between the driver and a transport: what the driver asks
//! ([`Action`]), what the transport reports ([`Event`]), and the rules both keep.
//!
//! # The loop
//!
//! ```text
//! loop {
//!     match call.poll_with(now, || lock the client's Shared) {
//!         Send { attempt, request, .. }  => start sending it (do not wait)
//!         ReadBody { attempt, .. }       => start reading attempt's next chunk (do not wait)
//!         Close { attempt }              => drop whatever you hold for attempt
//!         Wait { until, waiter, .. }     => block until an operation you started completes,
//!                                           `waiter` is woken, or `until` passes; report it
//!         Emit(event)                    => hand it to the caller
//!         Done(result)                   => return it (drop everything still held)
//!     }
//! }
//! ```
//!
//! A call may have more than one exchange in flight — a hedged first token races two
//! requests, and a health probe may go beside an attempt — so `Send` and `ReadBody` *start* an
//! operation and the transport polls again at once; `Wait` is the only action that blocks.
//! Everything an exchange reports carries its [`AttemptId`].
//!
//! # The rules a transport keeps
//!
//! 1. **Start, then wait.** `Send` and `ReadBody` start one operation each; report its outcome
//!    when `Wait` lets you block: `Send` → [`Event::Response`] or [`Event::TransportError`];
//!    `ReadBody` → [`Event::Chunk`], [`Event::BodyEnd`] or [`Event::TransportError`]. The core
//!    never starts a second operation on an attempt before the first one's outcome was
//!    reported, and never reads an attempt before its head arrived. [`Action`] is exhaustive on
//!    purpose: a new action is a compile error in your transport, never a silent guess.
//! 2. **Wait for the first of three things**: an operation you started completes (report it),
//!    the `waiter` of the `Wait` is named by [`Shared::poll_wake`](super::Shared::poll_wake)
//!    (report [`Event::PermitReleased`]), or `until` passes (report [`Event::Timeout`]).
//!    `until` is the only timer you must keep; a `Timeout` cancels nothing — operations stay
//!    started until reported or closed. Early or spurious timeouts are ignored; time never
//!    goes backwards (a smaller `now` is taken as the last one). A `Wait` always has something
//!    to wait for: an operation, a waiter, or an `until`.
//! 3. **One operation at a time is allowed too.** A transport that cannot run operations
//!    concurrently may perform the single started operation inside `Wait`, with `until` as its
//!    deadline, and report its outcome or `Timeout` — *when exactly one operation is started
//!    and its own deadline (the one its action carried) equals `until`*. Otherwise (a hedge or
//!    a probe racing an attempt, or a hedge timer due before the operation's deadline) it must
//!    run them concurrently: a thread per extra exchange is fine (`examples/custom_transport.rs`
//!    does exactly that).
//! 4. **Close means close.** On [`Action::Close`] drop what you hold for that attempt: abandon
//!    its pending send or read (a late outcome need not be reported; it would be ignored) and
//!    close its response. A connection may be reused for a later request only if the
//!    transport reported [`Event::BodyEnd`] for it; otherwise close it — a server that keeps
//!    a stream open after `[DONE]` must not hold a socket or a vLLM slot. Every attempt sent
//!    is closed exactly once, before `Done`; a terminal stream event comes after its
//!    attempt's `Close`.
//! 5. **Bytes are the decoded body**: after transfer coding (chunked) and content coding
//!    (gzip, if your client asked for it) are undone. Report a body shorter than its
//!    `Content-Length`, or a broken chunked encoding, as [`TransportErrorKind::Io`]. An empty
//!    `Chunk` is allowed and changes nothing (it does not reset the idle timer); the end of
//!    the body is [`Event::BodyEnd`], never an empty chunk.
//! 6. **Statuses**: report the final response's head with its status as sent, whatever it is
//!    (100–599, including codes your HTTP library has no name for: 499, 529). Informational
//!    1xx responses (100 Continue, 103 Early Hints) are your HTTP client's business: report
//!    only the final one. A bodiless answer (204, 304) reports `BodyEnd` at its first read.
//! 7. **Failures**: a connection that could not be established is
//!    [`TransportErrorKind::Connect`]; an HTTP client whose own connect timer fired (the
//!    `connect_timeout` of the `Send`) reports [`TransportErrorKind::ConnectTimeout`] — not
//!    `Timeout`, which only ever means "`until` passed"; a connection that broke later is
//!    [`TransportErrorKind::Io`]. A request the transport cannot send at all — a header value
//!    or URL its HTTP client refuses, a scheme it cannot speak (`https` without TLS) — is
//!    [`TransportErrorKind::Rejected`]: never retried, never counted against the server.
//! 8. **Headers the transport adds**: the built request carries method, URL, `Content-Type`,
//!    `Accept`, `User-Agent`, `Authorization` and the client's default headers; the transport
//!    adds what its HTTP/1.1 or HTTP/2 framing needs (`Host`, `Content-Length` of the body,
//!    `Transfer-Encoding`, `Connection`). With several endpoints, attempts of one call go to
//!    different hosts: send each request where its URL says.
//! 9. **The shared state**: [`Shared`](super::Shared) is client-wide; keep it behind a lock
//!    and give [`Call::poll_with`](super::Call::poll_with) a way to take it: the call takes it
//!    only when it owes or needs the shared state (admission, a breaker outcome, a retry
//!    decision, its end), never to read a body. After releasing the lock, drain
//!    [`Shared::poll_wake`](super::Shared::poll_wake) and wake exactly the calls it names
//!    (their `Wait` carried the same [`WaiterId`]).
//! 10. **Cancel on drop**: a call its caller abandons is
//!     [`cancel`](super::Call::cancel)led, so its slot and breaker probe are released exactly
//!     once.
//! 11. **Seeding**: give [`Shared::new`](super::Shared::new) entropy from the OS (e.g.
//!     [`os_entropy`](crate::os_entropy)) so processes do not retry in lockstep; a seed in the
//!     policy replaces it for replayable runs.
//! 12. **A read that is all there is** (optional): right after a `ReadBody`,
//!     [`Call::waits_after_read`](super::Call::waits_after_read) says whether the next poll
//!     would be `Wait { until: <the ReadBody's deadline>, waiter: None, .. }` — the call's one
//!     exchange is reading and nothing else is queued, owed or due. A loop may then block at
//!     once as if it had polled; a streamed chunk then costs two polls instead of three.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};

use super::report::RetryRecord;
use crate::error::VllmError;
use crate::event::StreamEvent;
use crate::policy::WaiterId;

/// Which request of a call an action or event concerns: 1 for the first request sent, 2 for
/// the next (a retry, a hedge, or the attempt after a health probe), and so on. Events of an
/// attempt the call already closed are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId(pub(crate) u32);

impl AttemptId {
    /// The request's number within its call, from 1.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Purpose {
    /// The call's request: the first attempt or a retry.
    Attempt,
    /// A second attempt on another endpoint, racing the first for the first token.
    Hedge,
    /// `GET /health` of an ejected endpoint whose probe is due, sent beside the call's own
    /// attempt (the call waits for nothing; a call that ends first closes it).
    HealthProbe,
    /// The rest of a cut stream: `GET /v1/responses/{id}?stream=true&starting_after=N` on the
    /// endpoint whose Responses stream was cut (see
    /// [`ResumeStreams`](crate::policy::ResumeStreams)), or a chat stream's continuation on
    /// another endpoint, with the text handed out as the assistant's message (see
    /// [`continue_cut_chats`](crate::client::ClientBuilder::continue_cut_chats)). It holds the
    /// output from its send.
    Resume,
}

/// Why the call waits (for logs and timelines; the transport's part is the same for all).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// For the outcome of the operations it started (and the hedge timer, if armed).
    Exchange,
    /// Backoff before a retry.
    Backoff(RetryRecord),
    /// For the client-side rate limiter.
    RateLimit,
    /// Until the server's announced quota refills (its rate-limit headers said that nothing
    /// is left), instead of earning a 429.
    ServerRateLimit,
    /// For a concurrency slot (first come, first served).
    Permit,
}

/// What the transport must do next (see the [module docs](self) for the rules).
#[derive(Debug)]
pub enum Action {
    /// Start sending this request; then poll again. Report [`Event::Response`] when its head
    /// arrives or [`Event::TransportError`] if it fails.
    Send {
        /// Which request this is.
        attempt: AttemptId,
        /// What it is for.
        purpose: Purpose,
        /// The request (a cheap clone of the call's; the body is shared `Bytes`). Boxed: an
        /// `Action` is returned once per poll, several polls per streamed chunk, and the box
        /// keeps it at a fifth of the request's size (`*request` to take it out).
        request: Box<Request<Bytes>>,
        /// When the core gives up waiting for its head (for transports that time the
        /// operation themselves; `Wait`'s `until` is never later while it is the only one).
        deadline: Option<Instant>,
        /// How long connecting may take, for transports that time their connect phase
        /// themselves (never later than `deadline`).
        connect_timeout: Option<Duration>,
    },
    /// Start reading the next chunk of `attempt`'s body; then poll again. Report
    /// [`Event::Chunk`], [`Event::BodyEnd`] or [`Event::TransportError`].
    ReadBody {
        /// The attempt whose response is read.
        attempt: AttemptId,
        /// When the core gives up waiting for the chunk (see `Send`'s `deadline`).
        deadline: Option<Instant>,
    },
    /// Drop whatever is held for `attempt`: its pending operation and its response (rule 4).
    Close {
        /// Which one.
        attempt: AttemptId,
    },
    /// Block until an operation started completes, `waiter` is woken, or `until` passes
    /// (rule 2).
    Wait {
        /// When to report [`Event::Timeout`] (`None`: no timer).
        until: Option<Instant>,
        /// This call's place in the queue for a concurrency slot, while it waits for one.
        waiter: Option<WaiterId>,
        /// Why, for logs.
        reason: WaitReason,
    },
    /// Hand this event to the caller of a stream.
    Emit(StreamEvent),
    /// The call is over. For a JSON call: the body of the successful response. For a stream:
    /// `Ok` only after its terminal event was emitted, `Err` when it failed before any output.
    Done(Result<Bytes, VllmError>),
}

/// What happened, as the transport reports it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// `attempt`'s response head arrived.
    Response {
        /// Which request.
        attempt: AttemptId,
        /// The head.
        head: ResponseHead,
    },
    /// A chunk of `attempt`'s decoded body.
    Chunk {
        /// Which request.
        attempt: AttemptId,
        /// The bytes.
        bytes: Bytes,
    },
    /// `attempt`'s body ended cleanly.
    BodyEnd {
        /// Which request.
        attempt: AttemptId,
    },
    /// `attempt`'s send or read failed.
    TransportError {
        /// Which request.
        attempt: AttemptId,
        /// Whether the connection could not be established, broke later, or the request was
        /// refused before sending.
        kind: TransportErrorKind,
        /// What the transport said, its causes included (kept in the error; never contains
        /// request headers).
        message: String,
        /// The error itself, when the transport has one: kept as the
        /// [`source`](std::error::Error::source) of the resulting [`VllmError::Connect`] or
        /// [`VllmError::Transport`], so that callers can downcast it (a TLS error, an
        /// `std::io::Error`, the HTTP client's own error type).
        source: Option<crate::error::ErrorSource>,
    },
    /// The `until` of the last `Wait` passed (early or spurious ones are ignored).
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
    /// client cannot carry, a scheme it cannot speak). A bug on the caller's side: never
    /// retried, never counted against the server, reported as [`VllmError::InvalidRequest`].
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

/// An error with its causes, `"error sending request: connection refused"`, for
/// [`Event::TransportError`]'s message.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.ends_with(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
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
    /// A head. Its header values are copied into one buffer of its own: a transport that
    /// parsed them as slices of its read buffer (hyper does, 8 KiB per connection) would
    /// otherwise have that buffer pinned for as long as the call keeps the head — a stream's
    /// whole life — and allocate another to read the body.
    pub fn new(status: StatusCode, headers: HeaderMap, received_at: SystemTime) -> Self {
        ResponseHead {
            status,
            headers: detached(&headers),
            received_at,
        }
    }
}

/// `headers` with every value copied, all into one allocation.
fn detached(headers: &HeaderMap) -> HeaderMap {
    let total = headers.iter().map(|(_, v)| v.len()).sum();
    let mut buf = bytes::BytesMut::with_capacity(total);
    for (_, v) in headers {
        buf.extend_from_slice(v.as_bytes());
    }
    let buf = buf.freeze();
    let mut out = HeaderMap::with_capacity(headers.keys_len());
    let mut at = 0;
    for (name, value) in headers {
        let end = at + value.len();
        let mut copy = http::HeaderValue::from_maybe_shared(buf.slice(at..end))
            .unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        out.append(name.clone(), copy);
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_head_does_not_keep_the_transports_read_buffer() {
        use bytes::Bytes;
        use http::{HeaderMap, HeaderValue};
        // Values as hyper parses them: slices of one read buffer.
        let read_buf = Bytes::from(b"text/event-stream req-1 2 secret".to_vec());
        let slice = |a: usize, b: usize| HeaderValue::from_maybe_shared(read_buf.slice(a..b));
        let mut h = HeaderMap::new();
        h.insert("content-type", slice(0, 17).unwrap());
        h.append("x-request-id", slice(18, 23).unwrap());
        h.append("x-request-id", slice(24, 25).unwrap());
        let mut secret = slice(26, 32).unwrap();
        secret.set_sensitive(true);
        h.insert("set-cookie", secret);
        let head = ResponseHead::new(StatusCode::OK, h.clone(), SystemTime::UNIX_EPOCH);
        assert_eq!(head.headers, h);
        let ids: Vec<_> = head.headers.get_all("x-request-id").iter().collect();
        assert_eq!(ids, ["req-1", "2"]);
        assert!(head.headers["set-cookie"].is_sensitive());
        drop(h);
        let range = read_buf.as_ptr_range();
        for (_, v) in &head.headers {
            assert!(
                !range.contains(&v.as_bytes().as_ptr()),
                "a value still points into the read buffer"
            );
        }
        // Nothing but `read_buf` itself refers to the buffer any more.
        assert!(read_buf.is_unique());
    }

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

    #[test]
    fn chain_skips_repeated_causes() {
        let io = std::io::Error::other("refused");
        assert_eq!(error_chain(&io), "refused");
    }
}
