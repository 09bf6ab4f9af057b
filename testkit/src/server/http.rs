//! Hand-written HTTP/1.1 on a raw `tokio::net::TcpStream`: request parsing with bounded buffers,
//! the low-level writes (each one flushed) that the reply engine is built from, a response's
//! head (status line, `date`, `server`, framing headers) and a graceful close.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Size of one read from the socket.
const READ_CHUNK: usize = 8 * 1024;

/// The longest pause that is honoured as given; longer ones are clamped (the server is shut
/// down long before that anyway).
const MAX_PAUSE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a closing connection is drained so that the client reads our last bytes instead
/// of a reset caused by unread input.
const DRAIN_ON_CLOSE: Duration = Duration::from_millis(500);
/// How much a closing connection drains at most.
const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Limits applied while reading a request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Request line plus headers, including the blank line.
    pub max_head: usize,
    /// Decoded body size.
    pub max_body: usize,
}

/// A parsed request.
#[derive(Debug)]
pub(crate) struct ParsedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the client allows the connection to be reused after the response.
    pub keep_alive: bool,
}

impl ParsedRequest {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_lookup(&self.headers, name)
    }
}

/// Case-insensitive header lookup in a list of pairs.
pub(crate) fn header_lookup<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why a request could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection or an IO error occurred: nothing to answer.
    Closed,
    /// Malformed request: answer with this status and message, then close.
    Bad(u16, String),
}

/// The client went away (a read returned 0 / failed, or a write failed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gone;

/// One accepted connection: the socket plus the bytes read but not yet consumed.
pub(crate) struct Conn {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    pub limits: Limits,
}

fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    /// Reads more bytes into `buf`. Returns `Ok(false)` on EOF.
    async fn fill(&mut self) -> Result<bool, ReadError> {
        let mut tmp = [0u8; READ_CHUNK];
        match self.stream.read(&mut tmp).await {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(true)
            }
            Err(_) => Err(ReadError::Closed),
        }
    }

    /// Reads until `buf` holds a line ending in CRLF (or LF) within `max` bytes; returns the
    /// line without its terminator and removes it from `buf`.
    async fn read_line(&mut self, max: usize) -> Result<String, ReadError> {
        // Each iteration either returns or grows `buf` by at least one byte; `max` bounds it.
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return String::from_utf8(line)
                    .map_err(|_| ReadError::Bad(400, "line is not valid UTF-8".into()));
            }
            if self.buf.len() > max {
                return Err(ReadError::Bad(400, "line too long in chunked body".into()));
            }
            if !self.fill().await? {
                return Err(ReadError::Closed);
            }
        }
    }

    /// Reads exactly `n` bytes (removing them from `buf`).
    async fn read_exact_buf(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        // Bounded: every iteration adds at least one byte towards `n`.
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(ReadError::Closed);
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one request. `Ok(None)`: the peer closed the connection cleanly between requests.
    pub async fn read_request(&mut self) -> Result<Option<ParsedRequest>, ReadError> {
        let max_head = self.limits.max_head;
        // Skip stray CRLFs between requests (RFC 9112 §2.2), bounded by the buffer.
        let head_end = loop {
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            if let Some(pos) = find_subslice(&self.buf, b"\r\n\r\n") {
                if pos + 4 > max_head {
                    return Err(ReadError::Bad(431, "request head too large".into()));
                }
                break pos;
            }
            if self.buf.len() > max_head {
                return Err(ReadError::Bad(431, "request head too large".into()));
            }
            let was_empty = self.buf.is_empty();
            if !self.fill().await? {
                if was_empty {
                    return Ok(None);
                }
                return Err(ReadError::Closed);
            }
        };
        let head: Vec<u8> = self.buf.drain(..head_end + 4).collect();
        let head = std::str::from_utf8(&head[..head_end])
            .map_err(|_| ReadError::Bad(400, "request head is not valid UTF-8".into()))?;
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let (method, target, version) =
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, t, v),
                _ => return Err(ReadError::Bad(400, "malformed request line".into())),
            };
        if !method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
        {
            return Err(ReadError::Bad(400, "malformed method".into()));
        }
        if version != "HTTP/1.1" && version != "HTTP/1.0" {
            return Err(ReadError::Bad(505, "HTTP version not supported".into()));
        }
        let mut headers = Vec::new();
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(ReadError::Bad(400, "malformed header line".into()));
            };
            if name.is_empty()
                || name
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(ReadError::Bad(400, "malformed header name".into()));
            }
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (target.to_string(), None),
        };
        let connection = header_lookup(&headers, "connection")
            .unwrap_or("")
            .to_ascii_lowercase();
        let keep_alive = if version == "HTTP/1.0" {
            connection.split(',').any(|t| t.trim() == "keep-alive")
        } else {
            !connection.split(',').any(|t| t.trim() == "close")
        };
        let mut req = ParsedRequest {
            method: method.to_string(),
            path,
            query,
            version: version.to_string(),
            headers,
            body: Vec::new(),
            keep_alive,
        };

        let chunked = match req.header("transfer-encoding") {
            None => false,
            Some(te) if te.to_ascii_lowercase().trim().ends_with("chunked") => true,
            Some(_) => return Err(ReadError::Bad(501, "unsupported transfer-encoding".into())),
        };
        let content_length = match req.header("content-length") {
            None => None,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => return Err(ReadError::Bad(400, "invalid content-length".into())),
            },
        };
        if chunked && content_length.is_some() {
            return Err(ReadError::Bad(
                400,
                "both content-length and transfer-encoding".into(),
            ));
        }
        if let Some(n) = content_length {
            if n > self.limits.max_body as u64 {
                return Err(ReadError::Bad(413, "request body too large".into()));
            }
        }
        let expects_continue = req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if expects_continue && (chunked || content_length.unwrap_or(0) > 0) {
            // Ignore a failure here: the body read below reports it.
            let _ = self
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await;
            let _ = self.stream.flush().await;
        }
        if chunked {
            req.body = self.read_chunked_body().await?;
        } else if let Some(n) = content_length {
            // `n` <= max_body, which is a usize.
            req.body = self.read_exact_buf(n as usize).await?;
        }
        Ok(Some(req))
    }

    async fn read_chunked_body(&mut self) -> Result<Vec<u8>, ReadError> {
        let max_line = self.limits.max_head;
        let max_body = self.limits.max_body;
        let mut body = Vec::new();
        // Every non-final chunk carries at least one byte, so `max_body` bounds the chunk count;
        // trailers are bounded by `max_head` bytes in total.
        loop {
            let line = self.read_line(max_line).await?;
            let size_str = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16)
                .map_err(|_| ReadError::Bad(400, "invalid chunk size".into()))?;
            if size == 0 {
                let mut trailer_bytes = 0usize;
                loop {
                    let t = self.read_line(max_line).await?;
                    if t.is_empty() {
                        return Ok(body);
                    }
                    trailer_bytes += t.len() + 2;
                    if trailer_bytes > max_line {
                        return Err(ReadError::Bad(431, "trailers too large".into()));
                    }
                }
            }
            if size > max_body.saturating_sub(body.len()) {
                return Err(ReadError::Bad(413, "request body too large".into()));
            }
            let data = self.read_exact_buf(size).await?;
            body.extend_from_slice(&data);
            let crlf = self.read_line(2).await?;
            if !crlf.is_empty() {
                return Err(ReadError::Bad(400, "missing CRLF after chunk".into()));
            }
        }
    }

    /// Writes all bytes and flushes.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), Gone> {
        self.stream.write_all(bytes).await.map_err(|_| Gone)?;
        self.stream.flush().await.map_err(|_| Gone)
    }

    /// Waits `dur` while watching the socket: a read of 0 bytes (or an error) means the client
    /// went away. Bytes the client sends meanwhile (a pipelined request) are kept in `buf`.
    pub async fn pause(&mut self, dur: Duration) -> Result<(), Gone> {
        if dur.is_zero() {
            return Ok(());
        }
        let deadline = Instant::now() + dur.min(MAX_PAUSE);
        let cap = self.limits.max_head.saturating_add(self.limits.max_body);
        // Each iteration either returns or grows `buf` by at least one byte, up to `cap`.
        loop {
            if self.buf.len() >= cap {
                tokio::time::sleep_until(deadline).await;
                return Ok(());
            }
            let mut tmp = [0u8; READ_CHUNK];
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                r = self.stream.read(&mut tmp) => match r {
                    Ok(0) | Err(_) => return Err(Gone),
                    Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                },
            }
        }
    }
}

/// Sends FIN, then reads and discards what the client still sends for a short, bounded time,
/// so that unread input does not turn our close into a reset before the client read our reply.
pub(crate) async fn close_gracefully(conn: &mut Conn) {
    let _ = conn.stream.shutdown().await;
    let deadline = tokio::time::Instant::now() + DRAIN_ON_CLOSE;
    let mut drained = 0usize;
    let mut tmp = [0u8; 8192];
    // Bounded by the deadline and by DRAIN_MAX_BYTES.
    while drained < DRAIN_MAX_BYTES {
        match tokio::time::timeout_at(deadline, conn.stream.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

/// The reason phrase of a status code.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        529 => "Site Overloaded",
        _ => "Unknown",
    }
}

/// The framing header to write.
pub(crate) enum FramingHeader {
    Length(usize),
    Chunked,
    None,
}

/// A response's head: the status line, `date` and `server` (unless the user's headers set
/// them), the framing header, the default content type, the user's headers, and
/// `connection: close` when the connection closes after it.
pub(crate) fn head_bytes(
    status: u16,
    reason: Option<&str>,
    user_headers: &[(String, String)],
    default_content_type: Option<&str>,
    framing: &FramingHeader,
    close: bool,
) -> String {
    let user_has = |n: &str| user_headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\n",
        reason.unwrap_or_else(|| reason_phrase(status))
    );
    if !user_has("date") {
        h.push_str(&format!(
            "date: {}\r\n",
            httpdate::fmt_http_date(std::time::SystemTime::now())
        ));
    }
    if !user_has("server") {
        h.push_str("server: uvicorn\r\n");
    }
    match framing {
        FramingHeader::Length(n) => h.push_str(&format!("content-length: {n}\r\n")),
        FramingHeader::Chunked => h.push_str("transfer-encoding: chunked\r\n"),
        FramingHeader::None => {}
    }
    if let Some(ct) = default_content_type {
        if !user_has("content-type") {
            h.push_str(&format!("content-type: {ct}\r\n"));
        }
    }
    for (k, v) in user_headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    if close && !user_has("connection") {
        h.push_str("connection: close\r\n");
    }
    h.push_str("\r\n");
    h
}
