//! Write your own transport: the core driven over `std::net::TcpStream` with hand-written
//! HTTP/1.1 — no HTTP crate, no async runtime — following the contract in
//! `vllm_client_core::call::contract`. Run against the testkit's fake server, it goes through
//! the core's scenarios: a 503 with a retry hint, a stall, a cut stream, an in-band error and
//! UTF-8 split across writes. `cargo run --example custom_transport`
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime};

use vllm_client_core::bytes::Bytes;
use vllm_client_core::call::{Action, Call, CallSpec, Event, ResponseHead, Shared};
use vllm_client_core::call::{CallReport, TransportErrorKind as Kind};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use vllm_client_core::request::Endpoint;
use vllm_client_core::{StreamEvent, StreamKind, VllmError};
use vllm_testkit::server::{FakeServer, Reply};

/// How the body ends (RFC 9112 §6.3).
enum Framing {
    Length(usize),
    Chunked { left: usize, ended: bool },
    UntilClose,
}

/// One response being read: the socket, bytes read past what was handed out, the framing.
struct Conn {
    tcp: TcpStream,
    raw: Vec<u8>,
    framing: Framing,
}

fn failed(kind: Kind, message: impl Into<String>) -> Event {
    Event::TransportError {
        kind,
        message: message.into(),
    }
}

impl Conn {
    /// Reads more raw bytes before `deadline`; `Ok(0)` at the end of the connection.
    fn fill(&mut self, deadline: Option<Instant>) -> Result<usize, Event> {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            return Err(Event::Timeout);
        }
        self.tcp
            .set_read_timeout(left)
            .map_err(|e| failed(Kind::Io, e.to_string()))?;
        let mut buf = [0u8; 16 << 10];
        match self.tcp.read(&mut buf) {
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err(Event::Timeout)
            }
            Err(e) => Err(failed(Kind::Io, e.to_string())),
        }
    }

    /// The next piece of the *decoded* body (rule 3 of the contract).
    fn next_chunk(&mut self, deadline: Option<Instant>) -> Event {
        loop {
            match &mut self.framing {
                Framing::Length(0) | Framing::Chunked { ended: true, .. } => return Event::BodyEnd,
                Framing::Length(left) if !self.raw.is_empty() => {
                    let n = (*left).min(self.raw.len());
                    *left -= n;
                    return Event::Chunk(Bytes::from(self.raw.drain(..n).collect::<Vec<u8>>()));
                }
                Framing::UntilClose if !self.raw.is_empty() => {
                    return Event::Chunk(Bytes::from(std::mem::take(&mut self.raw)));
                }
                Framing::Chunked { left, .. } if *left > 0 && !self.raw.is_empty() => {
                    let n = (*left).min(self.raw.len());
                    *left -= n;
                    return Event::Chunk(Bytes::from(self.raw.drain(..n).collect::<Vec<u8>>()));
                }
                Framing::Chunked { left: 0, .. } => {
                    // A size line, after the previous chunk's CRLF if any; trailers ignored.
                    let skip = if self.raw.starts_with(b"\r\n") { 2 } else { 0 };
                    if let Some(end) = find(&self.raw[skip..], b"\r\n") {
                        let line =
                            String::from_utf8_lossy(&self.raw[skip..skip + end]).into_owned();
                        let Ok(size) =
                            usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                        else {
                            return failed(Kind::Io, format!("bad chunk size {line:?}"));
                        };
                        self.raw.drain(..skip + end + 2);
                        self.framing = Framing::Chunked {
                            left: size,
                            ended: size == 0,
                        };
                        continue;
                    }
                }
                _ => {}
            }
            match self.fill(deadline) {
                Ok(0) if matches!(self.framing, Framing::UntilClose) => return Event::BodyEnd,
                // A body shorter than announced is a broken connection, not an end.
                Ok(0) => return failed(Kind::Io, "the connection closed inside the body"),
                Ok(_) => {}
                Err(event) => return event,
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends the request and reads its head before `deadline`.
fn send(
    request: &Request<Bytes>,
    deadline: Option<Instant>,
    connect: Option<Duration>,
) -> Result<(ResponseHead, Conn), Event> {
    let uri = request.uri();
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri.port_u16().unwrap_or(80);
    let addr = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next());
    let addr = addr.ok_or_else(|| failed(Kind::Connect, format!("cannot resolve {host}")))?;
    let tcp = match connect {
        Some(t) => TcpStream::connect_timeout(&addr, t.max(Duration::from_millis(1))),
        None => TcpStream::connect(addr),
    }
    .map_err(|e| failed(Kind::of_io_error(e.kind()), e.to_string()))?;
    // Rule 4: the transport adds what its framing needs. `Connection: close`: no reuse.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = format!(
        "{} {path} HTTP/1.1\r\nhost: {host}:{port}\r\nconnection: close\r\ncontent-length: {}\r\n",
        request.method(),
        request.body().len()
    );
    for (name, value) in request.headers() {
        let Ok(value) = value.to_str() else {
            return Err(failed(
                Kind::Rejected,
                format!("header {name} is not ASCII"),
            ));
        };
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut tcp_w = &tcp;
    tcp_w
        .write_all(head.as_bytes())
        .and_then(|()| tcp_w.write_all(request.body()))
        .map_err(|e| failed(Kind::Io, e.to_string()))?;
    let mut conn = Conn {
        tcp,
        raw: Vec::new(),
        framing: Framing::UntilClose,
    };
    let end = loop {
        if let Some(end) = find(&conn.raw, b"\r\n\r\n") {
            break end;
        }
        match conn.fill(deadline)? {
            0 => {
                return Err(failed(
                    Kind::Io,
                    "the connection closed before a response head",
                ))
            }
            _ if conn.raw.len() > 64 << 10 => {
                return Err(failed(Kind::Io, "response head too large"))
            }
            _ => {}
        }
    };
    let text = String::from_utf8_lossy(&conn.raw[..end]).into_owned();
    conn.raw.drain(..end + 4);
    let mut lines = text.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)?.parse().ok());
    let status =
        StatusCode::from_u16(status.unwrap_or(0)).map_err(|_| failed(Kind::Io, "bad status"))?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(n, v);
        }
    }
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    conn.framing = if header("transfer-encoding").is_some_and(|t| t.ends_with("chunked")) {
        Framing::Chunked {
            left: 0,
            ended: false,
        }
    } else if let Some(len) = header("content-length").and_then(|l| l.parse().ok()) {
        Framing::Length(len)
    } else {
        Framing::UntilClose
    };
    Ok((ResponseHead::new(status, headers, SystemTime::now()), conn))
}

/// The whole run loop of one call (rule 1 of the contract).
fn run(
    config: &ClientConfig,
    shared: &mut Shared,
    spec: CallSpec,
) -> (Result<Bytes, VllmError>, Vec<StreamEvent>, CallReport) {
    let mut call = Call::new(config, spec, Instant::now(), shared);
    let (mut conn, mut events) = (None::<Conn>, Vec::new());
    loop {
        let action = call.poll(Instant::now(), shared);
        // Rule 5: keep a response only while its body is read.
        if !matches!(&action, Action::ReadBody { .. })
            && !matches!(&action, Action::Emit(ev) if !ev.is_terminal())
        {
            conn = None;
        }
        let event = match action {
            Action::Send {
                request,
                deadline,
                connect_timeout,
                ..
            } => match send(&request, deadline, connect_timeout) {
                Ok((head, c)) => {
                    conn = Some(c);
                    Event::Response(head)
                }
                Err(event) => event,
            },
            Action::ReadBody { deadline, .. } => match conn.as_mut() {
                Some(c) => c.next_chunk(deadline),
                None => failed(Kind::Io, "no response"),
            },
            Action::Sleep { until, .. } => {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                Event::Timeout
            }
            // One call at a time here, and no limit configured: nobody to wait for.
            Action::WaitForPermit { .. } => Event::PermitReleased,
            Action::Emit(ev) => {
                events.push(ev);
                continue;
            }
            Action::Done(result) => return (result, events, call.report().clone()),
        };
        call.handle(Instant::now(), event, shared);
    }
}

fn text(events: &[StreamEvent]) -> String {
    let piece = |e: &StreamEvent| match e {
        StreamEvent::Content(t) => t.clone(),
        _ => String::new(),
    };
    events.iter().map(piece).collect()
}

fn main() {
    let server = FakeServer::start();
    let mut config = ClientConfig::default();
    config.request.base_url = server.base_url();
    config.policy.timeouts.idle = Some(Duration::from_millis(300));
    let mut shared = Shared::new(&config.policy, vllm_client_core::os_entropy());
    let body = |t: &str| {
        Ok(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": t}]}))
    };

    server.push(Reply::vllm_error(503, "restarting").header("retry-after-ms", "200"));
    let spec = CallSpec::json(Endpoint::ChatCompletions, body("hi"));
    let (result, _, report) = run(&config, &mut shared, spec);
    assert!(
        result.is_ok() && report.attempts == 2,
        "{result:?} {report}"
    );
    println!("503 with a retry hint: {report}");

    let generate = |t: &str| Reply::generate().reply_text(t);
    let scenarios = [
        (
            "stall",
            generate("one two three").stall_after_tokens(1, Duration::from_secs(20)),
            "Timeout",
            "one",
        ),
        (
            "cut",
            generate("one two three").cut_after_tokens(2),
            "Truncated",
            "one two",
        ),
        (
            "in-band error",
            generate("one two").error_after_tokens(1, "engine died"),
            "Api",
            "one",
        ),
        (
            "UTF-8 split in 1-byte writes",
            generate("你好 世界").split_every(1),
            "Done",
            "你好 世界",
        ),
    ];
    for (name, reply, end, expected) in scenarios {
        server.push(reply);
        let spec = CallSpec::stream(Endpoint::ChatCompletions, StreamKind::Chat, body("x"));
        let (_, events, _) = run(&config, &mut shared, spec);
        let last = format!("{:?}", events.last());
        assert!(
            last.contains(end) && text(&events) == expected,
            "{name}: {events:?}"
        );
        println!("{name}: {:?}, then {last}", text(&events));
    }
}
