//! Write your own transport: the core driven over `std::net::TcpStream` with hand-written
//! HTTP/1.0 — no HTTP crate, no async runtime — following the contract in
//! `vllm_client_core::call::contract`. Run against the testkit's fake server, it goes through
//! the core's scenarios: a 503 with a retry hint, a stall, a cut stream, an in-band error and
//! UTF-8 split across writes. `cargo run --example custom_transport`
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime};

use vllm_client_core::bytes::Bytes;
use vllm_client_core::call::{Action, Call, CallSpec, Event, ResponseHead, Shared};
use vllm_client_core::call::{CallReport, TransportErrorKind as Kind};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use vllm_client_core::request::Operation;
use vllm_client_core::{StreamEvent, StreamKind, VllmError};
use vllm_testkit::server::{FakeServer, Part, Reply};

/// One response being read: the socket, bytes read past what was handed out, and how many
/// body bytes are still due (`None`: the body ends when the server closes the connection).
struct Conn {
    tcp: TcpStream,
    raw: Vec<u8>,
    left: Option<usize>,
}

fn failed(kind: Kind, message: impl std::fmt::Display) -> Event {
    let message = message.to_string();
    Event::TransportError { kind, message }
}

impl Conn {
    /// Reads more bytes before `deadline` (rule 2); `Ok(0)` when the server closed.
    fn fill(&mut self, deadline: Option<Instant>) -> Result<usize, Event> {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            return Err(Event::Timeout);
        }
        let _ = self.tcp.set_read_timeout(left);
        let mut buf = [0u8; 16 << 10];
        match self.tcp.read(&mut buf) {
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(Event::Timeout)
            }
            Err(e) => Err(failed(Kind::Io, e)),
        }
    }

    /// The next piece of the decoded body (rule 3).
    fn next_chunk(&mut self, deadline: Option<Instant>) -> Event {
        if self.raw.is_empty() && self.left != Some(0) {
            match self.fill(deadline) {
                Ok(0) if self.left.is_none() => return Event::BodyEnd,
                // A body shorter than its Content-Length is a broken connection, not an end.
                Ok(0) => return failed(Kind::Io, "the connection closed inside the body"),
                Ok(_) => {}
                Err(event) => return event,
            }
        }
        let n = self.left.unwrap_or(usize::MAX).min(self.raw.len());
        if n == 0 {
            return Event::BodyEnd;
        }
        self.left = self.left.map(|l| l - n);
        Event::Chunk(Bytes::from(self.raw.drain(..n).collect::<Vec<u8>>()))
    }
}

/// Sends the request and reads its head before `deadline`. HTTP/1.0 keeps this short: the
/// server answers with a `Content-Length` or closes at the end (it must not send chunked to a
/// 1.0 client), and closes the connection after every response (rule 5: never reused).
fn send(
    request: &Request<Bytes>,
    deadline: Option<Instant>,
    connect: Option<Duration>,
) -> Result<(ResponseHead, Conn), Event> {
    let uri = request.uri();
    let (host, port) = (
        uri.host().unwrap_or("127.0.0.1"),
        uri.port_u16().unwrap_or(80),
    );
    let addr = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next());
    let addr = addr.ok_or_else(|| failed(Kind::Connect, format!("cannot resolve {host}")))?;
    let connect = connect
        .unwrap_or(Duration::from_secs(10))
        .max(Duration::from_millis(1));
    let tcp = TcpStream::connect_timeout(&addr, connect)
        .map_err(|e| failed(Kind::of_io_error(e.kind()), e))?;
    // Rule 4: the transport adds what its framing needs.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = format!(
        "{} {path} HTTP/1.0\r\nhost: {host}:{port}\r\ncontent-length: {}\r\n",
        request.method(),
        request.body().len()
    );
    for (name, value) in request.headers() {
        let value = value
            .to_str()
            .map_err(|_| failed(Kind::Rejected, format!("{name} is not ASCII")))?;
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut w = &tcp;
    let written = w
        .write_all(format!("{head}\r\n").as_bytes())
        .and_then(|()| w.write_all(request.body()));
    written.map_err(|e| failed(Kind::Io, e))?;
    let mut conn = Conn {
        tcp,
        raw: Vec::new(),
        left: None,
    };
    let end = loop {
        if let Some(end) = conn.raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if conn.fill(deadline)? == 0 || conn.raw.len() > 64 << 10 {
            return Err(failed(Kind::Io, "no response head"));
        }
    };
    let text = String::from_utf8_lossy(&conn.raw[..end]).into_owned();
    conn.raw.drain(..end + 4);
    let mut lines = text.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)?.parse().ok());
    let status =
        StatusCode::from_u16(status.unwrap_or(0)).map_err(|_| failed(Kind::Io, "bad status"))?;
    let mut headers = HeaderMap::new();
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(n, v);
        }
    }
    conn.left = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok());
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
    let spec = CallSpec::json(Operation::ChatCompletions, body("hi"));
    let (result, _, report) = run(&config, &mut shared, spec);
    assert!(result.is_ok() && report.attempts == 2, "{report}");
    println!("503 with a retry hint: {report}");

    let generate = |t: &str| Reply::generate().reply_text(t);
    let one = Part::data(r#"{"choices":[{"index":0,"delta":{"content":"one"}}]}"#);
    let stall = generate("one two three").stall_after_tokens(1, Duration::from_secs(20));
    let cut = generate("one two three").cut_after_tokens(2);
    // A pause, so that "one" reaches the caller before the error (an error read together
    // with text not yet emitted is a failure before output, and retried).
    let error = Reply::sse([one, Part::delay_ms(150), Part::error_event("engine died")]);
    let split = generate("你好 世界").split_every(1); // 1-byte writes, inside characters
    let scenarios = [
        (stall, "Timeout", "one"),
        (cut, "Truncated", "one two"),
        (error, "Api", "one"),
        (split, "Done", "你好 世界"),
    ];
    for (reply, end, expected) in scenarios {
        server.push(reply);
        let spec = CallSpec::stream(Operation::ChatCompletions, StreamKind::Chat, body("x"));
        let (_, events, _) = run(&config, &mut shared, spec);
        let last = format!("{:?}", events.last());
        assert!(
            last.contains(end) && text(&events) == expected,
            "{end}: {events:?}"
        );
        println!("{:?}, then {last}", text(&events));
    }
}
