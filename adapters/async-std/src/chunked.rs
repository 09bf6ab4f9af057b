//! [`Dechunk`]: the chunked transfer coding (RFC 9112 §7.1) decoded, with bounds.
//!
//! A chunk-size line (with any chunk extensions) is at most [`MAX_LINE`] bytes and its size at
//! most 16 hex digits; the trailer section is at most [`MAX_TRAILERS`] bytes and is discarded.
//! The connection ending anywhere before the last chunk and its trailer section is an
//! `UnexpectedEof` error: a body cut short is never taken as complete. Lines may end with a
//! bare LF, as most HTTP/1.1 implementations accept.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::io::{AsyncBufRead, AsyncRead};

/// The longest chunk-size line (size, extensions, line ending).
pub(crate) const MAX_LINE: usize = 4 << 10;
/// The largest trailer section.
pub(crate) const MAX_TRAILERS: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data: its line ending.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; this many bytes read so far.
    Trailers(usize),
    /// The body ended.
    Done,
}

/// The decoded body of a chunked `inner`.
pub(crate) struct Dechunk<R> {
    inner: R,
    state: State,
    line: Vec<u8>,
}

impl<R> Dechunk<R> {
    pub(crate) fn new(inner: R) -> Self {
        Dechunk {
            inner,
            state: State::Size,
            line: Vec::new(),
        }
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn cut() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the connection closed inside a chunked body",
    )
}

/// The size of a chunk-size line (without its line ending): hex digits, then optional
/// whitespace and `;` extensions.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let rest_ok = rest.iter().all(|b| *b == b' ' || *b == b'\t')
        || rest
            .iter()
            .position(|b| *b == b';')
            .is_some_and(|i| rest[..i].iter().all(|b| *b == b' ' || *b == b'\t'));
    if digits == 0 || digits > 16 || !rest_ok {
        let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
        return Err(invalid(format!("invalid chunk size line {shown:?}")));
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| invalid("invalid chunk size"))?;
    u64::from_str_radix(hex, 16).map_err(|_| invalid("invalid chunk size"))
}

impl<R: AsyncBufRead + Unpin> Dechunk<R> {
    /// Reads one line into `self.line` (without its ending), at most `limit` bytes with it.
    fn poll_line(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<io::Result<()>> {
        loop {
            let available = ready!(Pin::new(&mut self.inner).poll_fill_buf(cx))?;
            if available.is_empty() {
                return Poll::Ready(Err(cut()));
            }
            let (take, complete) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if self.line.len() + take > limit {
                return Poll::Ready(Err(invalid(format!(
                    "a line of the chunked body is longer than {limit} bytes"
                ))));
            }
            self.line.extend_from_slice(&available[..take]);
            Pin::new(&mut self.inner).consume(take);
            if complete {
                self.line.pop();
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<R: AsyncBufRead + Unpin> AsyncRead for Dechunk<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Done => return Poll::Ready(Ok(0)),
                State::Data(left) => {
                    if buf.is_empty() {
                        return Poll::Ready(Ok(0));
                    }
                    let available = ready!(Pin::new(&mut this.inner).poll_fill_buf(cx))?;
                    if available.is_empty() {
                        return Poll::Ready(Err(cut()));
                    }
                    let n = available
                        .len()
                        .min(buf.len())
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    buf[..n].copy_from_slice(&available[..n]);
                    Pin::new(&mut this.inner).consume(n);
                    let left = left - n as u64;
                    this.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Poll::Ready(Ok(n));
                }
                State::Size => {
                    ready!(this.poll_line(cx, MAX_LINE))?;
                    let size = chunk_size(&this.line)?;
                    this.line.clear();
                    this.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::Data(size)
                    };
                }
                State::DataEnd => {
                    ready!(this.poll_line(cx, MAX_LINE))?;
                    if !this.line.is_empty() {
                        return Poll::Ready(Err(invalid("a chunk is longer than its size")));
                    }
                    this.state = State::Size;
                }
                State::Trailers(read) => {
                    ready!(this.poll_line(cx, MAX_TRAILERS - read))?;
                    let len = this.line.len();
                    this.line.clear();
                    this.state = if len == 0 {
                        State::Done
                    } else {
                        // Each line counts with its ending, so the section's bound holds.
                        State::Trailers(read + len + 1)
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::io::{AsyncReadExt, BufReader, Cursor};

    fn decode_in(wire: &[u8], capacity: usize) -> io::Result<Vec<u8>> {
        async_std::task::block_on(async {
            let mut body = Dechunk::new(BufReader::with_capacity(
                capacity,
                Cursor::new(wire.to_vec()),
            ));
            let mut out = Vec::new();
            body.read_to_end(&mut out).await.map(|_| out)
        })
    }

    fn decode(wire: &[u8]) -> io::Result<Vec<u8>> {
        decode_in(wire, 8 << 10)
    }

    #[test]
    fn decodes_any_split() {
        let wire = b"5\r\nhello\r\n7;ext=\"a;b\"\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for capacity in [1, 2, 3, 7, 64] {
            assert_eq!(
                decode_in(wire, capacity).expect("decode"),
                b"hello, world",
                "{capacity}"
            );
        }
        assert_eq!(
            decode(b"A\nabcdefghij\n0\n\n").expect("bare LF"),
            b"abcdefghij"
        );
        assert_eq!(decode(b"0\r\n\r\n").expect("empty"), b"");
    }

    #[test]
    fn a_cut_is_an_error_wherever_it_falls() {
        let wire = b"5\r\nhello\r\n0\r\n\r\n";
        for end in 0..wire.len() {
            let e = decode(&wire[..end]).expect_err("cut");
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {end}");
        }
    }

    #[test]
    fn malformed_or_unbounded_input_is_an_error() {
        for bad in [
            &b"x\r\nhello\r\n0\r\n\r\n"[..],
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
        ] {
            let e = decode(bad).expect_err("malformed");
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
        let long_line = [b"5".repeat(MAX_LINE + 1), b"\r\n".to_vec()].concat();
        assert_eq!(
            decode(&long_line).expect_err("long").kind(),
            io::ErrorKind::InvalidData
        );
        let trailers = [
            b"0\r\n".to_vec(),
            b"x-t: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(MAX_TRAILERS / 32),
            b"\r\n".to_vec(),
        ]
        .concat();
        assert_eq!(
            decode(&trailers).expect_err("trailers").kind(),
            io::ErrorKind::InvalidData
        );
    }
}
