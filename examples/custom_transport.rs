//! Write your own transport: the core driven over `std::net::TcpStream` with hand-written
//! HTTP/1.0 — no HTTP crate, no async runtime — following the contract in
//! `vllm_client_core::call::contract` and the guide `docs/embedding.md`. Each request runs on
//! a thread of its own, so hedging and health probes come for free. Against the testkit's fake
//! servers it goes through a 503 with a retry hint, a stall, a cut stream, an in-band error,
//! UTF-8 split across writes, a hedged first token, and a replica that goes down and comes
//! back through a health probe. `cargo run --example custom_transport`
use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use vllm_client::{EjectionConfig, EndpointConfig, Health, HedgeConfig};
use vllm_client_core::bytes::Bytes;
use vllm_client_core::call::{Action, AttemptId, Call, CallReport, CallSpec, Event, Purpose};
use vllm_client_core::call::{ResponseHead, Shared, TransportErrorKind as Kind};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::http::{HeaderMap, HeaderName, Request, StatusCode};
use vllm_client_core::request::Operation;
use vllm_client_core::{StreamEvent, StreamKind, VllmError};
use vllm_testkit::server::{FakeServer, Part, Reply};

type Failure = (Kind, String);

/// One exchange on its own thread: sends the request, then reads a chunk per command, and
/// reports each outcome on `out`. It ends (closing the socket) when the loop drops the sender
/// it returned: the contract's `Close`.
fn exchange(id: AttemptId, req: Request<Bytes>, out: mpsc::Sender<Event>) -> mpsc::Sender<()> {
    let failed = move |(kind, message): Failure| Event::TransportError {
        attempt: id,
        kind,
        message,
        source: None,
    };
    let chunk = move |b: &[u8]| Event::Chunk {
        attempt: id,
        bytes: b.to_vec().into(),
    };
    let (reads, inbox) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut body = match send(&req) {
            Ok((head, body)) => (out.send(Event::Response { attempt: id, head }).ok(), body).1,
            Err(f) => return drop(out.send(failed(f))),
        };
        // Short reads, so that a `Close` (the loop dropped `reads`) ends a stalled read too.
        let tcp = body.get_ref();
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(50)));
        while inbox.recv().is_ok() {
            let mut buf = [0u8; 16 << 10];
            let event = loop {
                match body.read(&mut buf) {
                    Ok(0) => break Event::BodyEnd { attempt: id },
                    Ok(n) => break chunk(&buf[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        if let Err(mpsc::TryRecvError::Disconnected) = inbox.try_recv() {
                            return; // closed: the socket closes with this thread
                        }
                    }
                    Err(e) => break failed((Kind::Io, e.to_string())),
                }
            };
            if out.send(event).is_err() {
                return;
            }
        }
    });
    reads
}

/// Sends the request and reads its head. HTTP/1.0 keeps this short: the server closes the
/// connection at the end of the body (the body is what comes before the close).
fn send(req: &Request<Bytes>) -> Result<(ResponseHead, BufReader<TcpStream>), Failure> {
    let io = |e: std::io::Error| (Kind::of_io_error(e.kind()), e.to_string());
    let uri = req.uri();
    let (host, port) = (uri.host().unwrap_or(""), uri.port_u16().unwrap_or(80));
    let addr = (host, port).to_socket_addrs().map_err(io)?.next();
    let addr = addr.ok_or((Kind::Connect, format!("cannot resolve {host}")))?;
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(io)?;
    // Rule 8: the transport adds what its framing needs.
    let (method, path) = (
        req.method(),
        uri.path_and_query().map_or("/", |p| p.as_str()),
    );
    let mut head = format!("{method} {path} HTTP/1.0\r\nhost: {host}:{port}\r\n");
    head.push_str(&format!("content-length: {}\r\n", req.body().len()));
    for (name, value) in req.headers() {
        let Ok(value) = value.to_str() else {
            return Err((Kind::Rejected, format!("{name}: not ASCII")));
        };
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).map_err(io)?;
    tcp.write_all(req.body()).map_err(io)?;
    let mut r = BufReader::new(tcp);
    let mut line = String::new();
    let mut read_line = |line: &mut String| {
        line.clear();
        r.by_ref().take(8 << 10).read_line(line).map_err(io)
    };
    read_line(&mut line)?;
    let status = StatusCode::from_bytes(line.split(' ').nth(1).unwrap_or("").as_bytes());
    let status = status.map_err(|_| (Kind::Io, format!("bad status line {line:?}")))?;
    let mut headers = HeaderMap::new();
    while read_line(&mut line)? > 2 {
        let (name, value) = line.trim_end().split_once(':').unwrap_or_default();
        if let (Ok(n), Ok(v)) = (name.parse::<HeaderName>(), value.trim().parse()) {
            headers.append(n, v);
        }
    }
    Ok((ResponseHead::new(status, headers, SystemTime::now()), r))
}

fn content(e: &StreamEvent) -> Option<&str> {
    let StreamEvent::Content(text) = e else {
        return None;
    };
    Some(text)
}

/// What one call came to, and the health probes it sent.
type Ran = (
    Result<Bytes, VllmError>,
    Vec<StreamEvent>,
    CallReport,
    usize,
);

/// The whole run loop of one call: the contract's loop.
fn run(config: &ClientConfig, shared: &Mutex<Shared>, spec: CallSpec) -> Ran {
    let (tx, rx) = mpsc::channel();
    let mut call = Call::new(config, spec, Instant::now(), &mut shared.lock().unwrap());
    let (mut open, mut events, mut probes) = (HashMap::new(), Vec::new(), 0);
    loop {
        match call.poll_with(Instant::now(), || shared.lock().unwrap()) {
            Action::Send {
                attempt,
                purpose,
                request,
                ..
            } => {
                probes += usize::from(purpose == Purpose::HealthProbe);
                open.insert(attempt, exchange(attempt, *request, tx.clone()));
            }
            Action::ReadBody { attempt, .. } => drop(open.get(&attempt).map(|r| r.send(()))),
            Action::Close { attempt } => drop(open.remove(&attempt)),
            Action::Wait { until, .. } => {
                let left = until.map(|u| u.saturating_duration_since(Instant::now()));
                // No concurrency limit here, so never a waiter to wake.
                let event = rx.recv_timeout(left.unwrap_or(Duration::MAX));
                call.handle(Instant::now(), event.unwrap_or(Event::Timeout));
            }
            Action::Emit(ev) => events.push(ev),
            Action::Done(result) => return (result, events, call.report().clone(), probes),
        }
    }
}

fn main() {
    let ms = Duration::from_millis;
    let server = FakeServer::start();
    let mut config = ClientConfig::default();
    config.request.base_url = server.base_url();
    config.policy.timeouts.idle = Some(ms(300));
    let shared = Mutex::new(Shared::new(&config, vllm_client_core::os_entropy()));
    let body = |t: &str| {
        Ok(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": t}]}))
    };
    let chat = || CallSpec::stream(Operation::ChatCompletions, StreamKind::Chat, body("x"));
    let json = || CallSpec::json(Operation::ChatCompletions, body("hi"));

    server.push(Reply::vllm_error(503, "restarting").header("retry-after-ms", "200"));
    let (result, _, report, _) = run(&config, &shared, json());
    assert!(result.is_ok() && report.attempts == 2, "{report}");
    println!("503 with a retry hint: {report}");

    let g = |t: &str| Reply::generate().reply_text(t);
    // A pause, so that "a" reaches the caller before the error (an error read together with
    // text not yet emitted is a failure before output, and retried).
    let a = Part::data(r#"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#);
    let scenarios = [
        (g("a b c").stall_after_tokens(1, ms(20_000)), "Timeout", "a"),
        (g("a b c").cut_after_tokens(2), "Truncated", "a b"),
        (
            Reply::sse([a, Part::delay_ms(150), Part::error_event("died")]),
            "Api",
            "a",
        ),
        (g("你好 世界").split_every(1), "Done", "你好 世界"), // 1-byte writes
    ];
    for (reply, end, expected) in scenarios {
        server.push(reply);
        let (_, events, _, _) = run(&config, &shared, chat());
        let text: String = events.iter().filter_map(content).collect();
        let last = format!("{:?}", events.last());
        assert!(last.contains(end) && text == expected, "{end}: {events:?}");
        println!("{text:?}, then {last}");
    }

    // A pool: a slow replica (first token after 2 s) and a fast one. A stream whose first
    // token is late after 100 ms is hedged onto the other replica; the first to answer wins.
    let (slow, fast) = (FakeServer::start(), FakeServer::start());
    slow.push_n(
        8,
        Reply::sse([Part::delay_ms(2_000), Part::text("slow"), Part::done()]),
    );
    let mut pool = config.clone();
    let urls = [slow.base_url(), fast.base_url()];
    pool.request.endpoints = urls.iter().map(EndpointConfig::from).collect();
    pool.policy.pool.hedge = Some(HedgeConfig::after(ms(100)).max_extra_percent(100));
    let shared = Mutex::new(Shared::new(&pool, vllm_client_core::os_entropy()));
    let (started, mut hedged) = (Instant::now(), 0);
    for _ in 0..4 {
        let (_, events, report, _) = run(&pool, &shared, chat());
        assert!(
            matches!(events.last(), Some(StreamEvent::Done)),
            "{events:?}"
        );
        hedged += report.hedges;
    }
    let took = started.elapsed();
    assert!(took < ms(2_000), "every first token came within the hedge");
    println!("4 streams over a slow and a fast replica in {took:?}, {hedged} hedged");

    // A replica refusing connections is ejected (calls fail over); a `GET /health` readmits it.
    let (down, up) = (FakeServer::start(), FakeServer::start());
    down.set_refusing(true);
    let urls = [down.base_url(), up.base_url()];
    pool.request.endpoints = urls.iter().map(EndpointConfig::from).collect();
    pool.policy.pool.hedge = None;
    let ejection = EjectionConfig::default().consecutive_connect_failures(1);
    let ejection = ejection.durations(ms(100), ms(1_000)).health_probe(ms(500));
    pool.policy.pool.ejection = ejection;
    let shared = Mutex::new(Shared::new(&pool, vllm_client_core::os_entropy()));
    let status = || shared.lock().unwrap().endpoints(Instant::now()).remove(0);
    while status().times_ejected == 0 {
        assert!(run(&pool, &shared, json()).0.is_ok(), "failed over");
    }
    down.set_refusing(false);
    // The probe rides beside a call; one cut short (its call ended first) is due again.
    let mut probes = 0;
    while status().health != Health::Healthy {
        std::thread::sleep(ms(150));
        let (result, _, _, sent) = run(&pool, &shared, json());
        probes += sent;
        assert!(result.is_ok() && probes <= 10, "readmitted by a probe");
    }
    println!("the replica came back: readmitted after {probes} health probe(s)");
}
