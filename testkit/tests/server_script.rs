//! Scripted replies and faults of the fake server.

mod server_support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server_support::{get, post, sse_data, Client};
use vllm_testkit::server::{free_port_url, FakeServer, Framing, Part, Reply};

fn chat(stream: bool) -> Value {
    json!({"model": "m", "stream": stream,
           "messages": [{"role": "user", "content": "one two three four"}]})
}

#[test]
fn scripted_429_with_headers_then_default() {
    let server = FakeServer::start();
    let err = json!({"error": {"message": "slow down", "type": "RateLimitError", "param": null, "code": 429}});
    server.push(
        Reply::status(429)
            .header("retry-after-ms", "1500")
            .header("Retry-After", "2")
            .json(&err),
    );
    assert_eq!(server.pending_replies(), 1);
    let r = post(server.addr(), "/v1/chat/completions", &chat(false));
    assert_eq!((r.status, r.reason.as_str()), (429, "Too Many Requests"));
    assert_eq!(r.header("retry-after-ms"), Some("1500"));
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), err);
    // Queue consumed: the default answers again.
    assert_eq!(server.pending_replies(), 0);
    let r = post(server.addr(), "/v1/chat/completions", &chat(false));
    assert_eq!(r.status, 200);
    let reqs = server.requests();
    assert!(reqs[0].scripted && !reqs[1].scripted);
}

#[test]
fn push_for_only_matches_its_path_and_push_n_repeats() {
    let server = FakeServer::start();
    server.push_for("/v1/models", Reply::vllm_error(503, "warming up"));
    assert_eq!(get(server.addr(), "/health").status, 200);
    let r = get(server.addr(), "/v1/models");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["type"], "ServiceUnavailableError");
    server.push_n(2, Reply::status(502));
    assert_eq!(get(server.addr(), "/health").status, 502);
    assert_eq!(get(server.addr(), "/health").status, 502);
    assert_eq!(get(server.addr(), "/health").status, 200);
    server.push(Reply::status(500));
    server.clear_replies();
    assert_eq!(get(server.addr(), "/health").status, 200);
}

#[test]
fn empty_500_and_html_pages() {
    let server = FakeServer::start();
    server.push(Reply::status(500));
    server.push(Reply::html(502, "<html><body>Bad gateway</body></html>"));
    server.push(Reply::html(200, "<html>portal</html>"));
    let r = post(server.addr(), "/v1/chat/completions", &chat(false));
    assert_eq!((r.status, r.body.len()), (500, 0));
    assert_eq!(r.header("content-length"), Some("0"));
    let r = post(server.addr(), "/v1/chat/completions", &chat(false));
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.text().contains("Bad gateway"));
    let r = post(server.addr(), "/v1/chat/completions", &chat(false));
    assert_eq!((r.status, r.text().as_str()), (200, "<html>portal</html>"));
}

#[test]
fn delay_before_head() {
    let server = FakeServer::start();
    server.push(Reply::generate().delay(Duration::from_millis(300)));
    let start = Instant::now();
    let mut c = Client::connect(server.addr());
    c.send(
        "POST",
        "/v1/chat/completions",
        &[],
        &chat(false).to_string(),
    );
    let mut first = [0u8; 1];
    c.stream().read_exact(&mut first).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(first[0], b'H');
}

#[test]
fn token_delay_paces_the_stream() {
    let server = FakeServer::start();
    server.push(Reply::generate().token_delay(Duration::from_millis(60)));
    let start = Instant::now();
    let r = post(server.addr(), "/v1/chat/completions", &chat(true));
    // 5 content tokens ("Echo: one two three four").
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.sse_data().last().unwrap(), "[DONE]");
}

#[test]
fn split_inside_a_utf8_character() {
    let server = FakeServer::start();
    let body = "data: {\"x\":\"é漢\"}\n\n";
    let e_acute = body.find('é').unwrap();
    server.push(
        Reply::stream_bytes(body)
            .split_at([e_acute + 1, e_acute + 3])
            .pace(Duration::from_millis(50)),
    );
    let r = post(server.addr(), "/v1/chat/completions", &chat(true));
    assert_eq!(r.text(), body);
    assert_eq!(r.chunks.len(), 3);
    assert!(std::str::from_utf8(&r.chunks[0]).is_err());
    assert_eq!(r.chunks[0].len(), e_acute + 1);
    // The rest of 'é' and the first byte of '漢'.
    assert_eq!(r.chunks[1], [0xA9, 0xE6]);

    // Without chunk framing, with pauses: the split shows up as separate reads.
    server.push(
        Reply::stream_bytes(body)
            .framing(Framing::ContentLength)
            .split_at([e_acute + 1])
            .pace(Duration::from_millis(150)),
    );
    let mut c = Client::connect(server.addr());
    c.send("POST", "/v1/chat/completions", &[], &chat(true).to_string());
    let (status, _, headers) = c.read_head().unwrap();
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-length" && *v == body.len().to_string()));
    let mut got = Vec::new();
    let mut reads = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < body.len() {
        let n = std::io::Read::read(&mut c.reader, &mut buf).unwrap();
        assert!(n > 0);
        reads.push(n);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, body.as_bytes());
    assert_eq!(reads[0], e_acute + 1, "reads: {reads:?}");
}

#[test]
fn split_every_byte() {
    let server = FakeServer::start();
    server.push(Reply::generate().split_every(1));
    let r = post(server.addr(), "/v1/chat/completions", &chat(true));
    assert!(r.chunks.iter().all(|c| c.len() == 1));
    assert_eq!(r.chunks.len(), r.body.len());
    assert_eq!(r.sse_data().last().unwrap(), "[DONE]");
}

#[test]
fn cut_before_done() {
    let server = FakeServer::start();
    server.push(Reply::generate().cut_after_tokens(2));
    let mut c = Client::connect(server.addr());
    c.send("POST", "/v1/chat/completions", &[], &chat(true).to_string());
    let r = c.read_response().unwrap();
    assert!(!r.complete, "no terminating chunk after a cut");
    let data = r.sse_data();
    // role chunk + 2 tokens, nothing else.
    assert_eq!(data.len(), 3);
    assert!(!data.contains(&"[DONE]".to_string()));
    assert!(c.at_eof());
}

#[test]
fn hand_made_sse_with_keep_alive_error_event_and_done() {
    let server = FakeServer::start();
    server.push(Reply::sse([
        Part::keep_alive(),
        Part::event(&json!({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})),
        Part::delay_ms(20),
        Part::error_event("engine died"),
        Part::done(),
    ]));
    let r = post(server.addr(), "/v1/chat/completions", &chat(true));
    assert!(r.complete);
    let text = r.text();
    assert!(text.starts_with(": keep-alive\n\n"));
    let data = sse_data(&text);
    let err: Value = serde_json::from_str(&data[1]).unwrap();
    assert_eq!(
        err,
        json!({"error": {"message": "engine died", "type": "InternalServerError", "param": null, "code": 500}})
    );
    assert_eq!(data[2], "[DONE]");
}

#[test]
fn generated_stream_endings() {
    let server = FakeServer::start();
    server.push(Reply::generate().error_after_tokens(1, "oops"));
    let data = post(server.addr(), "/v1/chat/completions", &chat(true)).sse_data();
    assert_eq!(data.len(), 4);
    assert!(data[2].contains("\"oops\""));
    assert_eq!(data[3], "[DONE]");

    server.push(Reply::generate().without_done());
    let r = post(server.addr(), "/v1/chat/completions", &chat(true));
    assert!(r.complete);
    assert!(!r.sse_data().contains(&"[DONE]".to_string()));

    server.push(
        Reply::generate()
            .reply_text("ünïcode ok")
            .keep_alives_after_tokens(1, 2, Duration::from_millis(10)),
    );
    let r = post(server.addr(), "/v1/chat/completions", &chat(true));
    assert_eq!(r.text().matches(": keep-alive\n\n").count(), 2);
    let content: String = r
        .sse_data()
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "ünïcode ok");

    server.push(Reply::generate().reasoning("think hard").reply_text("done"));
    let v = post(server.addr(), "/v1/chat/completions", &chat(false)).json();
    assert_eq!(v["choices"][0]["message"]["reasoning"], "think hard");
    assert_eq!(v["choices"][0]["message"]["content"], "done");
}

#[test]
fn stall_then_client_disconnect_is_detected() {
    let server = FakeServer::start();
    server.push(Reply::generate().stall_after_tokens(1, Duration::from_secs(30)));
    let mut c = Client::connect(server.addr());
    c.send("POST", "/v1/chat/completions", &[], &chat(true).to_string());
    let (status, _, _) = c.read_head().unwrap();
    assert_eq!(status, 200);
    assert!(server.wait_for_requests(1, Duration::from_secs(5)));
    assert_eq!(server.disconnects(), 0);
    drop(c);
    assert!(server.wait_for_disconnects(1, Duration::from_secs(5)));
    let r = &server.requests()[0];
    assert!(r.client_disconnected);
    assert!(r.disconnected_at.unwrap() >= r.received_at);
}

#[test]
fn dropping_a_slow_stream_is_detected() {
    let server = FakeServer::start();
    server.push(Reply::generate().token_delay(Duration::from_millis(100)));
    let mut c = Client::connect(server.addr());
    c.send("POST", "/v1/chat/completions", &[], &chat(true).to_string());
    c.read_head().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    drop(c);
    assert!(server.wait_for_disconnects(1, Duration::from_secs(5)));
    assert!(server.requests()[0].client_disconnected);
}

#[test]
fn close_and_reset_without_response() {
    let server = FakeServer::start();
    server.push(Reply::close());
    let mut c = Client::connect(server.addr());
    c.send("GET", "/health", &[], "");
    let mut buf = Vec::new();
    assert_eq!(c.reader.read_to_end(&mut buf).unwrap(), 0);

    server.push(Reply::reset().delay_ms(20));
    let mut c = Client::connect(server.addr());
    c.send("GET", "/health", &[], "");
    let e = c.reader.read_to_end(&mut buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset);
    assert_eq!(server.request_count(), 2);
}

#[test]
fn refused_connections_and_free_port() {
    let server = FakeServer::start();
    server.refuse_connections(1);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    server.reset_connections(1);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"GET /health HTTP/1.1\r\n\r\n");
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    assert_eq!(server.refused_count(), 2);
    server.set_refusing(true);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    server.set_refusing(false);
    assert_eq!(get(server.addr(), "/health").status, 200);
    assert_eq!(server.request_count(), 1);

    let url = free_port_url();
    let addr = url
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix("/v1"))
        .unwrap();
    let e = TcpStream::connect(addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn raw_bytes_and_manual_framing() {
    let server = FakeServer::start();
    server.push(Reply::raw("HTTP/1.1 200 OK\r\nx-raw: 1\r\n\r\nhello"));
    let mut c = Client::connect(server.addr());
    c.send("GET", "/health", &[], "");
    let r = c.read_response().unwrap();
    assert_eq!((r.header("x-raw"), r.text().as_str()), (Some("1"), "hello"));

    // A body shorter than its content-length: the server closes after it.
    server.push(
        Reply::status(200)
            .header("content-length", "100")
            .body("short"),
    );
    let mut c = Client::connect(server.addr());
    c.send("GET", "/health", &[], "");
    let (status, _, _) = c.read_head().unwrap();
    assert_eq!(status, 200);
    let mut rest = Vec::new();
    c.reader.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"short");

    // Body until close.
    server.push(Reply::text(200, "until close").framing(Framing::UntilClose));
    let r = get(server.addr(), "/health");
    assert_eq!(r.text(), "until close");
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn drop_is_prompt_even_with_a_stalled_connection() {
    let server = FakeServer::start();
    server.push(Reply::sse([Part::Stall(Duration::from_secs(600))]));
    let mut c = Client::connect(server.addr());
    c.send("POST", "/v1/chat/completions", &[], &chat(true).to_string());
    c.read_head().unwrap();
    let start = Instant::now();
    drop(server);
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(c.at_eof());
}

#[test]
fn usable_from_inside_a_tokio_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = FakeServer::start();
        let addr = server.addr();
        let r = tokio::task::spawn_blocking(move || get(addr, "/health").status)
            .await
            .unwrap();
        assert_eq!(r, 200);
        drop(server);
    });
}

#[test]
fn replays_real_server_captures() {
    let server = FakeServer::start();
    server.push(Reply::fixture("litellm_err_429").unwrap());
    let r = get(server.addr(), "/v1/models");
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "429");
    assert!(r.header("x-litellm-call-id").is_some());

    server.push(Reply::fixture("llamaserver_chat_stream").unwrap());
    let r = post(server.addr(), "/v1/chat/completions", &chat(true));
    assert_eq!(r.header("server"), Some("llama.cpp"));
    assert!(r.complete);
    assert!(r.chunks.len() > 1);
    // llama-server packs several events into one chunk.
    assert!(r.chunks.len() < r.sse_data().len());
    assert_eq!(r.sse_data().last().unwrap(), "[DONE]");

    // A streamed context overflow from llama-cpp-python: 200 with an empty chunked body.
    server.push(Reply::fixture("llamacpp_err_context_overflow_stream").unwrap());
    let r = post(server.addr(), "/v1/chat/completions", &chat(true));
    assert_eq!((r.status, r.body.len(), r.complete), (200, 0, true));

    assert!(Reply::fixture("../secret").is_err());
    assert!(Reply::fixture("no_such_capture").is_err());
}
