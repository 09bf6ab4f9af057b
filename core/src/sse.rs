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

use memchr::{memchr, memchr2};

/// Default maximum length of one line, in bytes: 16 MiB.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024 * 1024;

/// Default maximum size of one event's data (all its `data` lines with their separators), in
/// bytes: 32 MiB. The stream decoder uses the same number to bound tool-call arguments.
pub const DEFAULT_MAX_EVENT: usize = 32 * 1024 * 1024;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

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

/// A borrowed view of what the parser found, handed to a sink without copying.
pub(crate) enum Raw<'a> {
    Event {
        /// Raw bytes of the event type; empty means `message`.
        event_type: &'a [u8],
        /// Raw bytes of the data, not yet UTF-8 decoded.
        data: Data<'a>,
        id: &'a str,
    },
    Comment(&'a [u8]),
    Retry(u64),
}

/// An event's data: a slice of the input, or the parser's data buffer, which a sink may take.
pub(crate) enum Data<'a> {
    Slice(&'a [u8]),
    /// The data is `buf[start..buf.len() - 1]` (the last byte is the LF to drop).
    Buffer {
        buf: &'a mut Vec<u8>,
        start: usize,
    },
}

/// From this size on, an event's data buffer is handed over rather than copied.
const TAKE_BUFFER_FROM: usize = 64 * 1024;

impl Data<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Data::Slice(s) => s,
            Data::Buffer { buf, start } => &buf[*start..buf.len() - 1],
        }
    }

    /// The data as text. A large buffer is taken over in place: no second allocation and copy
    /// of a multi-megabyte event.
    fn into_string(self) -> String {
        match self {
            Data::Buffer { buf, start } if buf.len() >= TAKE_BUFFER_FROM => {
                let mut v = std::mem::take(buf);
                v.pop();
                v.drain(..start);
                String::from_utf8(v)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
            }
            d => lossy(d.bytes()).into_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bom {
    /// This many bytes of a BOM seen at the start of the stream (0..=2).
    Matched(u8),
    Done,
}

/// The line parser shared by [`SseDecoder`] and the stream decoder. Findings go to a sink, which
/// returns `false` to stop parsing (the stream decoder does after a terminal event).
#[derive(Debug, Clone)]
pub(crate) struct Parser {
    limits: SseLimits,
    /// The unterminated tail of the input; never holds a CR or LF.
    line: Vec<u8>,
    /// Each `data` value followed by LF, as the standard's data buffer, from `data_start` on:
    /// a completed `data:` line is moved here whole rather than copied, so its field name
    /// stays in front.
    data: Vec<u8>,
    data_start: usize,
    event_type: Vec<u8>,
    last_id: String,
    retry: Option<u64>,
    bom: Bom,
    /// The last chunk ended with CR: a LF starting the next chunk belongs to it.
    after_cr: bool,
    error: Option<SseError>,
    finished: bool,
}

impl Parser {
    pub(crate) fn new(limits: SseLimits) -> Self {
        Parser {
            limits,
            line: Vec::new(),
            data: Vec::new(),
            data_start: 0,
            event_type: Vec::new(),
            last_id: String::new(),
            retry: None,
            bom: Bom::Matched(0),
            after_cr: false,
            error: None,
            finished: false,
        }
    }

    pub(crate) fn set_limits(&mut self, limits: SseLimits) {
        self.limits = limits;
    }

    pub(crate) fn limits(&self) -> SseLimits {
        self.limits
    }

    pub(crate) fn error(&self) -> Option<&SseError> {
        self.error.as_ref()
    }

    pub(crate) fn buffered_bytes(&self) -> usize {
        self.line.len() + self.data_len() + self.event_type.len()
    }

    /// Bytes in the standard's data buffer.
    fn data_len(&self) -> usize {
        self.data.len() - self.data_start
    }

    fn clear_data(&mut self) {
        self.data.clear();
        self.data_start = 0;
    }

    fn fail(&mut self, e: SseError) {
        self.error = Some(e);
        // Nothing pending can ever be used again; give the memory back.
        self.line = Vec::new();
        self.data = Vec::new();
        self.data_start = 0;
        self.event_type = Vec::new();
    }

    fn line_too_long(&mut self) {
        let limit = self.limits.max_line;
        self.fail(SseError::LineTooLong { limit });
    }

    /// Feeds `input`; calls `sink` for each comment, retry and dispatched event, in order.
    pub(crate) fn push_with<F>(&mut self, mut input: &[u8], sink: &mut F)
    where
        F: FnMut(Raw<'_>) -> bool,
    {
        if self.error.is_some() || self.finished {
            return;
        }
        if let Bom::Matched(mut n) = self.bom {
            while n < 3 {
                match input.first() {
                    None => {
                        self.bom = Bom::Matched(n);
                        return;
                    }
                    Some(&b) if b == BOM[n as usize] => {
                        n += 1;
                        input = &input[1..];
                    }
                    Some(_) => break,
                }
            }
            self.bom = Bom::Done;
            if n < 3 {
                // The bytes matched so far were not a BOM after all: they start the first line.
                if n as usize > self.limits.max_line {
                    return self.line_too_long();
                }
                self.line.extend_from_slice(&BOM[..n as usize]);
            }
        }
        if self.after_cr {
            match input.first() {
                None => return,
                Some(&b) => {
                    self.after_cr = false;
                    if b == b'\n' {
                        input = &input[1..];
                    }
                }
            }
        }
        if !self.line.is_empty() {
            // Only the new bytes are scanned: the pending line holds no line end.
            match memchr2(b'\r', b'\n', input) {
                None => {
                    if self.line.len() + input.len() > self.limits.max_line {
                        return self.line_too_long();
                    }
                    self.line.extend_from_slice(input);
                    return;
                }
                Some(p) => {
                    if self.line.len() + p > self.limits.max_line {
                        return self.line_too_long();
                    }
                    self.line.extend_from_slice(&input[..p]);
                    let go = if self.data_len() == 0 && self.line.starts_with(b"data:") {
                        // The first data line of an event: move the buffer instead of copying
                        // it (an 8 MiB line would otherwise be copied once more).
                        let start = if self.line.get(5) == Some(&b' ') {
                            6
                        } else {
                            5
                        };
                        if self.line.len() - start + 1 > self.limits.max_event {
                            let limit = self.limits.max_event;
                            return self.fail(SseError::EventTooLarge { limit });
                        }
                        std::mem::swap(&mut self.line, &mut self.data);
                        self.data.push(b'\n');
                        self.data_start = start;
                        self.line.clear();
                        true
                    } else {
                        let line = std::mem::take(&mut self.line);
                        let go = self.process_line(&line, sink);
                        self.line = line;
                        self.line.clear();
                        go
                    };
                    input = self.skip_line_end(input, p);
                    if !go || self.error.is_some() {
                        return;
                    }
                }
            }
        }
        loop {
            match memchr2(b'\r', b'\n', input) {
                Some(p) => {
                    if p > self.limits.max_line {
                        return self.line_too_long();
                    }
                    if let Some(rest) = self.single_line_event(input, p, sink) {
                        match rest {
                            Some(rest) => {
                                input = rest;
                                continue;
                            }
                            None => return,
                        }
                    }
                    let go = self.process_line(&input[..p], sink);
                    input = self.skip_line_end(input, p);
                    if !go || self.error.is_some() {
                        return;
                    }
                }
                None => {
                    if input.len() > self.limits.max_line {
                        return self.line_too_long();
                    }
                    self.line.extend_from_slice(input);
                    return;
                }
            }
        }
    }

    /// The fast path for the common event `data: …` + blank line lying whole in `input` (line
    /// end at `p`) with nothing buffered: dispatches straight from `input`, skipping the copy
    /// into the data buffer. `None` if it does not apply; `Some(None)` to stop parsing,
    /// `Some(Some(rest))` to go on with `rest`.
    #[inline]
    fn single_line_event<'a, F>(
        &mut self,
        input: &'a [u8],
        p: usize,
        sink: &mut F,
    ) -> Option<Option<&'a [u8]>>
    where
        F: FnMut(Raw<'_>) -> bool,
    {
        let line = &input[..p];
        if self.data_len() != 0 || !line.starts_with(b"data:") {
            return None;
        }
        let end = match (input[p], input.get(p + 1)) {
            (b'\r', None) => return None,
            (b'\r', Some(b'\n')) => p + 2,
            _ => p + 1,
        };
        if !matches!(input.get(end), Some(b'\n' | b'\r')) {
            return None;
        }
        let value = &line[5..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if value.len() + 1 > self.limits.max_event {
            let limit = self.limits.max_event;
            self.fail(SseError::EventTooLarge { limit });
            return Some(None);
        }
        let go = sink(Raw::Event {
            event_type: &self.event_type,
            data: Data::Slice(value),
            id: &self.last_id,
        });
        self.event_type.clear();
        let rest = self.skip_line_end(input, end);
        Some(go.then_some(rest))
    }

    /// The rest of `input` after the line end at `p`.
    fn skip_line_end<'a>(&mut self, input: &'a [u8], p: usize) -> &'a [u8] {
        if input[p] == b'\r' {
            match input.get(p + 1) {
                Some(b'\n') => &input[p + 2..],
                Some(_) => &input[p + 1..],
                None => {
                    self.after_cr = true;
                    &input[p + 1..]
                }
            }
        } else {
            &input[p + 1..]
        }
    }

    fn process_line<F>(&mut self, line: &[u8], sink: &mut F) -> bool
    where
        F: FnMut(Raw<'_>) -> bool,
    {
        if line.is_empty() {
            return self.dispatch(sink);
        }
        if line[0] == b':' {
            return sink(Raw::Comment(&line[1..]));
        }
        let (name, value) = match memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.data_len() + value.len() + 1 > self.limits.max_event {
                    let limit = self.limits.max_event;
                    self.fail(SseError::EventTooLarge { limit });
                    return false;
                }
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            b"id" if memchr(0, value).is_none() => {
                self.last_id = lossy(value).into_owned();
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |acc, d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                self.retry = Some(ms);
                return sink(Raw::Retry(ms));
            }
            _ => {}
        }
        true
    }

    fn dispatch<F>(&mut self, sink: &mut F) -> bool
    where
        F: FnMut(Raw<'_>) -> bool,
    {
        if self.data_len() == 0 {
            self.event_type.clear();
            return true;
        }
        let go = sink(Raw::Event {
            event_type: &self.event_type,
            data: Data::Buffer {
                buf: &mut self.data,
                start: self.data_start,
            },
            id: &self.last_id,
        });
        self.clear_data();
        self.event_type.clear();
        go
    }

    /// End of the stream: whatever is pending is discarded, as the standard says.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
        self.line = Vec::new();
        self.data = Vec::new();
        self.data_start = 0;
        self.event_type = Vec::new();
    }
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
