//! A `text/event-stream` decoder: bytes in, in any chunking; events out.
//!
//! [`SseDecoder`] follows the WHATWG HTML standard, section "Interpreting an event stream",
//! to the letter:
//!
//! - lines end with CR, LF or CRLF — also a CR at the end of one chunk whose LF starts the
//!   next, which is one line end, not two;
//! - one UTF-8 byte-order mark at the very start of the stream is dropped (also when it is split
//!   across chunks); any later one is ordinary text;
//! - a line starting with `:` is a comment. It never dispatches an event, but the decoder hands
//!   it out as [`SseItem::Comment`] so a caller can see keep-alives;
//! - otherwise the field name runs up to the first `:` (the whole line when there is none) and
//!   the value is the rest, with exactly one leading space removed;
//! - `data` appends the value and a LF to the data buffer; `event` sets the event type; `id`
//!   sets the last event id (empty value resets it, a value containing NUL is ignored) and the
//!   id persists across events; `retry` is taken only when it is all ASCII digits (and reported
//!   as [`SseItem::Retry`]); any other field is ignored;
//! - an empty line dispatches: nothing if the data buffer is empty, otherwise an event whose
//!   data is the buffer minus its one trailing LF and whose type defaults to `message`;
//! - at the end of the stream ([`finish`](SseDecoder::finish)) an unterminated line and an
//!   undispatched event are discarded;
//! - bytes that are not UTF-8 become U+FFFD; this is never an error. The decoder keeps raw bytes
//!   until a line (and an event) is complete and decodes it then, so a character split across
//!   chunks arrives whole.
//!
//! # Limits
//!
//! A hostile or broken server must not make the client grow without bound. [`SseLimits`] caps a
//! line (default [`DEFAULT_MAX_LINE`], 16 MiB) and an event's data (default
//! [`DEFAULT_MAX_EVENT`], 32 MiB). Exceeding either is an [`SseError`], and errors are sticky:
//! once one is reported, every [`poll`](SseDecoder::poll) after the queued items returns it again
//! and further input is ignored. The pending line never exceeds `max_line` bytes and the data
//! buffer never exceeds `max_event` bytes.
//!
//! # Cost
//!
//! Work is linear in the input however it is chunked: every byte is scanned for a line end once
//! (`memchr2`), a partial line is only appended to, never rescanned, and lines that lie whole
//! inside a chunk are parsed in place without being copied into the line buffer. The common
//! event, one `data:` line and a blank line inside one chunk, is dispatched straight from the
//! input; a `data:` line completed across chunks is moved into the data buffer, not copied; and
//! an event of 64 KiB or more hands its buffer over as the event's `String`.
//!
//! Items wait in a queue until [`poll`](SseDecoder::poll)ed; each takes at least two input
//! bytes, so the queue is bounded by what the caller pushed since it last polled. A driver that
//! polls after every push holds at most one chunk's worth.
//!
//! # State
//!
//! ```text
//!            push(bytes)                       LF / CR / CRLF
//!  ┌─────┐  ─────────────►  ┌──────────────┐  ───────────────►  ┌──────────────┐
//!  │ BOM │  (≤ 3 bytes,     │ partial line │                    │ process line │──► Comment
//!  │check│   stripped once) │  (≤ max_line)│  ◄───────────────  │ field/value  │──► Retry
//!  └─────┘                  └──────────────┘    next line       └──────┬───────┘
//!                             │   CR ended the chunk: skip one         │ empty line
//!                             │   LF at the start of the next          ▼
//!                             │                               ┌──────────────────┐
//!                             │ a limit is exceeded           │ dispatch if data │──► Event
//!                             ▼                               │ buffer non-empty │
//!                      ┌────────────┐  finish()               └──────────────────┘
//!                      │ Error      │  ──────────► Finished (pending line and event dropped)
//!                      │ (sticky)   │
//!                      └────────────┘
//! ```

use std::borrow::Cow;
use std::collections::VecDeque;

mod parser;

pub(crate) use parser::{Parser, Raw};

/// Default maximum length of one line, in bytes: 16 MiB.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024 * 1024;

/// Default maximum size of one event's data (all its `data` lines with their separators), in
/// bytes: 32 MiB. The stream decoder uses the same number to bound tool-call arguments.
pub const DEFAULT_MAX_EVENT: usize = 32 * 1024 * 1024;

/// Size limits of an event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseLimits {
    /// Maximum bytes in one line, not counting its line end.
    pub max_line: usize,
    /// Maximum bytes of one event's data buffer (each `data` value plus one LF).
    pub max_event: usize,
}

impl SseLimits {
    /// Limits of `max_line` bytes per line and `max_event` bytes per event.
    pub const fn new(max_line: usize, max_event: usize) -> Self {
        SseLimits {
            max_line,
            max_event,
        }
    }
}

impl Default for SseLimits {
    /// [`DEFAULT_MAX_LINE`] (16 MiB) and [`DEFAULT_MAX_EVENT`] (32 MiB).
    fn default() -> Self {
        SseLimits::new(DEFAULT_MAX_LINE, DEFAULT_MAX_EVENT)
    }
}

/// A dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type from an `event` field; `None` means the default, `message`.
    pub event: Option<String>,
    /// The data lines joined with LF.
    pub data: String,
    /// The last event id when the event was dispatched; `None` when it is empty.
    pub id: Option<String>,
}

impl SseEvent {
    /// The event type, `message` unless an `event` field said otherwise.
    pub fn event_type(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

/// What the decoder hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SseItem {
    /// An event was dispatched.
    Event(SseEvent),
    /// A comment line (`: keep-alive`): the text after the colon, verbatim. Never an event.
    Comment(String),
    /// A valid `retry` field: the reconnection time the server asks for, in milliseconds
    /// (saturating at `u64::MAX`).
    Retry(u64),
}

/// Why the decoder stopped. Sticky: once returned it is returned forever.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// A line was longer than [`SseLimits::max_line`].
    #[error("an event-stream line exceeds {limit} bytes")]
    LineTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// An event's data grew past [`SseLimits::max_event`].
    #[error("an event-stream event exceeds {limit} bytes")]
    EventTooLarge {
        /// The limit in force.
        limit: usize,
    },
}

/// The WHATWG event-stream decoder. See the [module docs](self) for the rules it follows.
///
/// Inputs are [`push`](Self::push) (any chunk of the body) and [`finish`](Self::finish) (end of
/// the body); the output is [`poll`](Self::poll), one item at a time.
///
/// ```
/// use vllm_client_core::sse::{SseDecoder, SseItem};
///
/// let mut sse = SseDecoder::new();
/// sse.push(b"data: hel");
/// sse.push(b"lo\r");
/// sse.push(b"\n\r\n: ping\n");
/// match sse.poll() {
///     Some(Ok(SseItem::Event(e))) => assert_eq!((e.event_type(), e.data.as_str()), ("message", "hello")),
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(sse.poll(), Some(Ok(SseItem::Comment(" ping".into()))));
/// assert_eq!(sse.poll(), None);
/// ```
#[derive(Debug, Clone)]
pub struct SseDecoder {
    parser: Parser,
    queue: VecDeque<SseItem>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the default [`SseLimits`].
    pub fn new() -> Self {
        SseDecoder {
            parser: Parser::new(SseLimits::default()),
            queue: VecDeque::new(),
        }
    }

    /// A decoder resuming a stream: its last event id starts as `id` (what a reconnecting client
    /// sends as `Last-Event-ID`). An `id` containing NUL is ignored, as the standard ignores
    /// such an `id` field.
    pub fn with_last_event_id(id: impl Into<String>) -> Self {
        let mut d = Self::new();
        let id = id.into();
        if !id.contains('\0') {
            d.parser.last_id = id;
        }
        d
    }

    /// Sets the limits. Meant to be called before the first [`push`](Self::push).
    pub fn with_limits(mut self, limits: SseLimits) -> Self {
        self.parser.set_limits(limits);
        self
    }

    // --- getters ---

    /// The limits in force.
    pub fn limits(&self) -> SseLimits {
        self.parser.limits()
    }

    /// The last event id (empty when none was set).
    pub fn last_event_id(&self) -> &str {
        &self.parser.last_id
    }

    /// The reconnection time from the last valid `retry` field, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.parser.retry
    }

    /// Bytes held for an incomplete line and an undispatched event (not counting items waiting
    /// in the output queue). Never more than `max_line` for the line plus `max_event` for the
    /// data plus `max_line` for the event type.
    pub fn buffered_bytes(&self) -> usize {
        self.parser.buffered_bytes()
    }

    /// Whether [`finish`](Self::finish) was called or an error occurred, so no further input is
    /// read.
    pub fn is_finished(&self) -> bool {
        self.parser.finished || self.parser.error.is_some()
    }

    // --- inputs ---

    /// Feeds the next bytes of the body, split anywhere. Ignored after [`finish`](Self::finish)
    /// or an error.
    pub fn push(&mut self, bytes: &[u8]) {
        let queue = &mut self.queue;
        self.parser.push_with(bytes, &mut |raw| {
            queue.push_back(raw.into_item());
            true
        });
    }

    /// The body ended. An unterminated last line and an event missing its blank line are
    /// discarded; queued items can still be polled.
    pub fn finish(&mut self) {
        self.parser.finish();
    }

    // --- outputs ---

    /// The next item: `Some(Ok(_))` while items are queued, then `Some(Err(_))` forever if a
    /// limit was exceeded, else `None` until more input arrives.
    pub fn poll(&mut self) -> Option<Result<SseItem, SseError>> {
        match self.queue.pop_front() {
            Some(item) => Some(Ok(item)),
            None => self.parser.error.clone().map(Err),
        }
    }
}

/// `bytes` as text, invalid sequences replaced by U+FFFD. Borrows when `bytes` is valid UTF-8.
/// Validation is most of the decoder's cost, so the valid case goes through `simdutf8`'s SIMD
/// validator (a safe API); only invalid input takes std's lossy decoder.
pub(crate) fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

impl Raw<'_> {
    fn into_item(self) -> SseItem {
        match self {
            Raw::Event {
                event_type,
                data,
                id,
            } => SseItem::Event(SseEvent {
                event: (!event_type.is_empty()).then(|| lossy(event_type).into_owned()),
                data: data.into_string(),
                id: (!id.is_empty()).then(|| id.to_owned()),
            }),
            Raw::Comment(text) => SseItem::Comment(lossy(text).into_owned()),
            Raw::Retry(ms) => SseItem::Retry(ms),
        }
    }
}
