//! The line and field algorithm behind [`SseDecoder`](super::SseDecoder) and the stream
//! decoder: BOM, line ends across chunks, fields, dispatch and the size limits, handing what it
//! finds to a sink as borrowed views. Separate from the public types so that the decoder's API
//! reads on one page and the byte-level parsing on another.

use memchr::{memchr, memchr2};

use super::{lossy, SseError, SseLimits};

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

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
    pub(super) fn into_string(self) -> String {
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

/// The line parser shared by [`SseDecoder`](super::SseDecoder) and the stream decoder. Findings
/// go to a sink, which returns `false` to stop parsing (the stream decoder does after a terminal
/// event).
#[derive(Debug, Clone)]
// `repr(C)`: what every chunk reads first (see the call's layout in `call/mod.rs`).
#[repr(C)]
pub(crate) struct Parser {
    pub(super) error: Option<SseError>,
    pub(super) finished: bool,
    limits: SseLimits,
    bom: Bom,
    /// The last chunk ended with CR: a LF starting the next chunk belongs to it.
    after_cr: bool,
    /// The unterminated tail of the input; never holds a CR or LF.
    line: Vec<u8>,
    /// Each `data` value followed by LF, as the standard's data buffer, from `data_start` on:
    /// a completed `data:` line is moved here whole rather than copied, so its field name
    /// stays in front.
    data: Vec<u8>,
    data_start: usize,
    event_type: Vec<u8>,
    pub(super) last_id: String,
    pub(super) retry: Option<u64>,
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
