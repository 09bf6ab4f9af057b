//! Every scenario, written once, generic over the [`Harness`] of an adapter.
//!
//! Timings are small (tens to hundreds of milliseconds) and every bound on elapsed time is a
//! generous lower bound, or an upper bound with a wide margin: the machine is shared.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use vllm_client_core::client::Client;
use vllm_client_core::policy::{BreakerConfig, SlidingWindow};
use vllm_client_core::{StreamEvent, VllmError};
use vllm_testkit::server::{free_port_url, FakeServer, Framing, Part, Reply};

use crate::harness::Harness;

const CHAT: &str = "/v1/chat/completions";
/// Slack allowed on upper bounds of elapsed time.
const MARGIN: Duration = Duration::from_millis(1500);

fn hi() -> Value {
    json!([{"role": "user", "content": "hi"}])
}

fn client<H: Harness>(server: &FakeServer) -> Client<H::E> {
    H::builder(&server.base_url()).build()
}

pub(crate) fn chat<H: Harness>(
    c: &Client<H::E>,
) -> Result<vllm_client_core::api::ChatCompletionResponse, VllmError> {
    H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .send(),
    )
}

pub(crate) fn stream<H: Harness>(c: &Client<H::E>) -> Result<Vec<StreamEvent>, VllmError> {
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .stream(true)
            .send_stream(),
    )?;
    Ok(H::collect(s))
}

pub(crate) fn content(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Content(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

/// The last event, checking that it is the only terminal one.
pub(crate) fn terminal(events: &[StreamEvent]) -> &StreamEvent {
    let n = events.iter().filter(|e| e.is_terminal()).count();
    assert_eq!(n, 1, "exactly one terminal event: {events:?}");
    let last = events.last().expect("events");
    assert!(last.is_terminal(), "the terminal event is last: {events:?}");
    last
}

fn stream_error(events: &[StreamEvent]) -> &VllmError {
    match terminal(events) {
        StreamEvent::Error(e) => e,
        other => panic!("expected an error event, got {other:?} in {events:?}"),
    }
}

fn api_error(e: &VllmError) -> &vllm_client_core::ApiError {
    e.api_error()
        .unwrap_or_else(|| panic!("expected an API error, got {e:?}"))
}

fn chunk(delta: Value, finish: Option<&str>) -> Part {
    Part::event(&json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    }))
}

/// Time between the server's `i`-th and `i+1`-th requests.
fn gap(server: &FakeServer, i: usize) -> Duration {
    let r = server.requests();
    r[i + 1].received_at.duration_since(r[i].received_at)
}

// ----- chat and completions -----------------------------------------------------------------

pub fn chat_completion<H: Harness>() {
    let server = FakeServer::start();
    let r = chat::<H>(&client::<H>(&server)).expect("chat");
    assert_eq!(r.content.as_deref(), Some("Echo: hi"));
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    let seen = server.last_request().expect("a request");
    assert_eq!(seen.path, CHAT);
    assert_eq!(seen.json.as_ref().expect("json")["model"], "m");
}

pub fn chat_stream<H: Harness>() {
    let server = FakeServer::start();
    let events = stream::<H>(&client::<H>(&server)).expect("stream");
    assert!(matches!(terminal(&events), StreamEvent::Done), "{events:?}");
    assert_eq!(content(&events), "Echo: hi");
    let seen = server.last_request().expect("a request");
    assert_eq!(seen.json.as_ref().expect("json")["stream"], true);
}

/// A server that dies mid-answer: with `continue_cut_chats(true)` the stream goes on from the
/// text already handed out (here on the same server, the only one), and the caller reads the
/// whole text once and `Done`.
pub fn chat_cut_mid_answer_is_continued<H: Harness>() {
    let server = FakeServer::start();
    // A token delay, so that the first token reaches the caller before the cut (a cut before
    // any output is retried from the start).
    server.push(
        Reply::generate()
            .token_delay(Duration::from_millis(50))
            .cut_after_tokens(1),
    );
    // The next request is answered by the fake model, which continues a message as vLLM does.
    let c = H::builder(&server.base_url())
        .continue_cut_chats(true)
        .build();
    let events = stream::<H>(&c).expect("stream");
    assert!(matches!(terminal(&events), StreamEvent::Done), "{events:?}");
    assert_eq!(content(&events), "Echo: hi", "the text once, never twice");
    let r = server.requests();
    assert_eq!(r.len(), 2);
    let body = r[1].json.as_ref().expect("json");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Echo:"}])
    );
    assert_eq!(body["continue_final_message"], true);
    assert_eq!(body["add_generation_prompt"], false);
    // Off (the default): the cut is the stream's last event.
    server.push(
        Reply::generate()
            .token_delay(Duration::from_millis(50))
            .cut_after_tokens(1),
    );
    let events = stream::<H>(&client::<H>(&server)).expect("stream");
    assert!(
        matches!(stream_error(&events), VllmError::Truncated),
        "{events:?}"
    );
    assert_eq!(content(&events), "Echo:");
    assert_eq!(server.request_count(), 3);
}

pub fn completion<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let r = H::wait(
        c.completions
            .create()
            .model("m")
            .prompt("tell me")
            .max_tokens(1)
            .send(),
    )
    .expect("completion");
    assert!(r.content.as_deref().is_some_and(|t| !t.is_empty()), "{r:?}");
    assert_eq!(r.finish_reason.as_deref(), Some("length"));
    assert_eq!(
        server.last_request().expect("a request").path,
        "/v1/completions"
    );
}

pub fn completion_stream<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let plain =
        H::wait(c.completions.create().model("m").prompt("tell me").send()).expect("completion");
    let s = H::wait(
        c.completions
            .create()
            .model("m")
            .prompt("tell me")
            .stream(true)
            .send_stream(),
    )
    .expect("stream");
    let events = H::collect(s);
    assert!(matches!(terminal(&events), StreamEvent::Done));
    assert_eq!(Some(content(&events)), plain.content);
}

pub fn other_endpoints<H: Harness>() {
    use vllm_client_core::api::{DetokenizeRequest, EmbeddingRequest, TokenizeRequest};
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let models = H::wait(c.models()).expect("models");
    assert_eq!(models.data[0].id, vllm_testkit::server::DEFAULT_MODEL);
    H::wait(c.health()).expect("health");
    assert_eq!(
        H::wait(c.version()).expect("version").version,
        "0.11.0-fake"
    );
    let e = H::wait(c.embeddings(EmbeddingRequest::new("m", "hello"))).expect("embeddings");
    assert_eq!(e.data.len(), 1);
    let t = H::wait(c.tokenize(TokenizeRequest::new("m", "hello world"))).expect("tokenize");
    assert_eq!(t.count as usize, t.tokens.len());
    let d = H::wait(c.detokenize(DetokenizeRequest::new("m", t.tokens))).expect("detokenize");
    assert!(d.prompt.contains("hello"), "{d:?}");
    let paths: Vec<_> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/v1/models",
            "/health",
            "/version",
            "/v1/embeddings",
            "/tokenize",
            "/detokenize"
        ]
    );
}

// ----- error shapes (REFERENCE §1) ----------------------------------------------------------

fn no_retry_error<H: Harness>(reply: Reply) -> VllmError {
    let server = FakeServer::start();
    server.push(reply);
    let c = H::builder(&server.base_url()).max_retries(0).build();
    let e = chat::<H>(&c).expect_err("an error");
    assert_eq!(server.request_count(), 1);
    e
}

pub fn error_nested<H: Harness>() {
    let e = no_retry_error::<H>(Reply::vllm_error(400, "max_tokens is too large"));
    let api = api_error(&e);
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(api.message, "max_tokens is too large");
    assert_eq!(api.kind.as_deref(), Some("BadRequestError"));
    assert_eq!(api.code.as_deref(), Some("400"));
}

pub fn error_flat<H: Harness>() {
    let body = json!({"object": "error", "message": "old style", "type": "BadRequestError", "param": null, "code": 400});
    let e = no_retry_error::<H>(Reply::json_status(400, &body));
    let api = api_error(&e);
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(api.message, "old style");
    assert_eq!(api.kind.as_deref(), Some("BadRequestError"));
}

pub fn error_string<H: Harness>() {
    let e = no_retry_error::<H>(Reply::json_status(401, &json!({"error": "Unauthorized"})));
    assert_eq!(e.status().map(|s| s.as_u16()), Some(401));
    assert_eq!(api_error(&e).message, "Unauthorized");
    assert!(!e.is_retryable());
}

pub fn error_empty_500<H: Harness>() {
    let e = no_retry_error::<H>(Reply::status(500));
    assert_eq!(e.status().map(|s| s.as_u16()), Some(500));
    assert!(!api_error(&e).message.is_empty());
    assert!(e.is_retryable());
}

pub fn error_html_page<H: Harness>() {
    let page = "<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>";
    let e = no_retry_error::<H>(Reply::html(502, page));
    assert_eq!(e.status().map(|s| s.as_u16()), Some(502));
    let text = e.to_string();
    assert!(text.len() < 2000, "bounded: {text}");
}

pub fn error_litellm_string_code<H: Harness>() {
    let e = no_retry_error::<H>(Reply::fixture("litellm_err_429").expect("fixture"));
    let api = api_error(&e);
    assert_eq!(e.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(api.kind.as_deref(), Some("throttling_error"));
    assert_eq!(api.code.as_deref(), Some("429"));
    assert!(api.message.contains("mock rate limit error"), "{api:?}");
}

pub fn error_fastapi_detail<H: Harness>() {
    let e = no_retry_error::<H>(Reply::fixture("llamacpp_err_404_path").expect("fixture"));
    assert_eq!(e.status().map(|s| s.as_u16()), Some(404));
    assert_eq!(api_error(&e).message, "Not Found");
}

// ----- retries ------------------------------------------------------------------------------

fn retry_after<H: Harness>(name: &str, value: String, at_least: Duration) {
    let server = FakeServer::start();
    server.push(Reply::vllm_error(429, "slow down").header(name, &value));
    let c = client::<H>(&server);
    let started = Instant::now();
    let rep = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .send_with_report(),
    )
    .expect("reported");
    let r = rep.result.expect("success after the wait");
    assert_eq!(r.content.as_deref(), Some("Echo: hi"));
    assert_eq!(server.request_count(), 2);
    assert!(
        gap(&server, 0) >= at_least,
        "waited {:?}, hint {name}: {value}",
        gap(&server, 0)
    );
    assert!(started.elapsed() >= at_least);
    assert_eq!(rep.report.retries.len(), 1);
    assert!(rep.report.retries[0].hinted, "{:?}", rep.report);
}

pub fn retry_after_seconds<H: Harness>() {
    retry_after::<H>("retry-after", "1".into(), Duration::from_millis(950));
}

pub fn retry_after_http_date<H: Harness>() {
    // Dates have whole seconds: two seconds ahead is a wait of more than one.
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    retry_after::<H>("retry-after", date, Duration::from_millis(900));
}

pub fn retry_after_ms<H: Harness>() {
    retry_after::<H>("retry-after-ms", "300".into(), Duration::from_millis(290));
}

pub fn retry_503_then_success<H: Harness>() {
    let server = FakeServer::start();
    server.push(Reply::vllm_error(503, "overloaded"));
    let r = chat::<H>(&client::<H>(&server)).expect("retried");
    assert_eq!(r.content.as_deref(), Some("Echo: hi"));
    assert_eq!(server.request_count(), 2);
}

pub fn no_retry_501_or_400<H: Harness>() {
    for status in [501, 400] {
        let server = FakeServer::start();
        server.push_n(3, Reply::vllm_error(status, "no"));
        let e = chat::<H>(&client::<H>(&server)).expect_err("not retried");
        assert_eq!(e.status().map(|s| s.as_u16()), Some(status));
        assert_eq!(
            server.request_count(),
            1,
            "status {status} must not be retried"
        );
    }
}

/// Statuses outside the registered list reach the core as responses, as the server sent them:
/// nginx's 499 and a gateway's 529 are answers (not retried, `VllmError::Api` with the status,
/// the body's message), never transport failures; `x-should-retry: true` makes a 529 a retry.
pub fn unregistered_statuses_499_and_529<H: Harness>() {
    for (status, reason) in [(499, "Client Closed Request"), (529, "Site Is Overloaded")] {
        let server = FakeServer::start();
        let body =
            json!({"error": {"message": format!("status {status}"), "type": "overloaded_error"}});
        server.push_n(3, Reply::json_status(status, &body).reason(reason));
        let e = chat::<H>(&client::<H>(&server)).expect_err("an answer, not retried");
        assert_eq!(e.status().map(|s| s.as_u16()), Some(status), "{e:?}");
        assert!(!e.is_connect(), "{status} is an answer: {e:?}");
        assert_eq!(api_error(&e).message, format!("status {status}"));
        assert_eq!(server.request_count(), 1, "{status} is not retried");
    }
    let server = FakeServer::start();
    server.push(
        Reply::json_status(529, &json!({"error": {"message": "overloaded"}}))
            .header("x-should-retry", "true"),
    );
    server.push(Reply::generate().reply_text("after 529"));
    let answer = chat::<H>(&client::<H>(&server)).expect("retried as the server asked");
    assert_eq!(answer.content.as_deref(), Some("after 529"));
    assert_eq!(server.request_count(), 2);
}

/// Interim responses (103 Early Hints) before the final one are skipped: the core sees the
/// final response.
pub fn interim_103_before_the_answer<H: Harness>() {
    let server = FakeServer::start();
    let body = json!({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hinted"}, "finish_reason": "stop"}]})
    .to_string();
    let wire = format!(
        "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n\
         HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    server.push(Reply::raw(wire.into_bytes()));
    let answer = chat::<H>(&client::<H>(&server)).expect("the final response");
    assert_eq!(answer.content.as_deref(), Some("hinted"));
    assert_eq!(server.request_count(), 1);
}

pub fn connection_refused<H: Harness>() {
    let c = H::builder(&free_port_url()).max_retries(2).build();
    let rep = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .send_with_report(),
    )
    .expect("reported");
    let e = rep.result.expect_err("refused");
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(rep.report.attempts, 3, "{:?}", rep.report);
}

pub fn slow_first_token_retried<H: Harness>() {
    let server = FakeServer::start();
    server.push(Reply::generate().delay(Duration::from_millis(1500)));
    let c = H::builder(&server.base_url())
        .first_token_timeout(Duration::from_millis(300))
        .retry_first_token_timeout(true)
        .build();
    let events = stream::<H>(&c).expect("second attempt");
    assert!(matches!(terminal(&events), StreamEvent::Done), "{events:?}");
    assert_eq!(content(&events), "Echo: hi");
    assert_eq!(server.request_count(), 2);
}

// ----- streams --------------------------------------------------------------------------------

pub fn stall_with_keep_alives_hits_idle_timeout<H: Harness>() {
    let server = FakeServer::start();
    server.push(
        Reply::generate()
            .reply_text("one two three four")
            .keep_alives_after_tokens(2, 40, Duration::from_millis(50)),
    );
    let c = H::builder(&server.base_url())
        .idle_timeout(Duration::from_millis(400))
        .build();
    let started = Instant::now();
    let events = stream::<H>(&c).expect("stream");
    let e = stream_error(&events);
    assert!(e.is_timeout(), "{e:?}");
    assert_eq!(content(&events), "one two", "no duplicated text");
    assert!(started.elapsed() < Duration::from_millis(400) + MARGIN);
    assert_eq!(server.request_count(), 1, "not retried after output");
}

pub fn silent_stall_times_out_and_disconnects<H: Harness>() {
    let server = FakeServer::start();
    server.push(
        Reply::generate()
            .reply_text("one two three")
            .stall_after_tokens(1, Duration::from_secs(20)),
    );
    let c = H::builder(&server.base_url())
        .idle_timeout(Duration::from_millis(300))
        .build();
    let started = Instant::now();
    let events = stream::<H>(&c).expect("stream");
    assert!(stream_error(&events).is_timeout(), "{events:?}");
    assert!(started.elapsed() < Duration::from_millis(300) + MARGIN);
    assert_eq!(content(&events), "one");
    // The abandoned connection is closed, so vLLM would stop generating.
    assert!(
        server.wait_for_disconnects(1, Duration::from_secs(5)),
        "the server saw no disconnect"
    );
}

pub fn in_band_error_event<H: Harness>() {
    let server = FakeServer::start();
    // The pause makes sure the text reached the caller before the error: an error decoded
    // in the same read as the text, before any output, may be retried instead.
    server.push(Reply::sse([
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "a"}), None),
        chunk(json!({"content": " b"}), None),
        Part::delay_ms(150),
        Part::error_event("engine died"),
        Part::done(),
    ]));
    let events = stream::<H>(&client::<H>(&server)).expect("stream");
    let e = stream_error(&events);
    let api = api_error(e);
    assert!(api.message.contains("engine died"), "{api:?}");
    assert!(api.in_stream);
    assert_eq!(content(&events), "a b");
    assert_eq!(server.request_count(), 1);
}

pub fn cut_before_done<H: Harness>() {
    let server = FakeServer::start();
    server.push(Reply::generate().reply_text("a b c d").cut_after_tokens(2));
    let events = stream::<H>(&client::<H>(&server)).expect("stream");
    let e = stream_error(&events);
    assert!(
        e.is_truncated() || matches!(e, VllmError::Transport { .. }),
        "{e:?}"
    );
    assert_eq!(content(&events), "a b");
}

pub fn clean_end_without_done<H: Harness>() {
    let server = FakeServer::start();
    server.push(Reply::generate().reply_text("a b").without_done());
    let events = stream::<H>(&client::<H>(&server)).expect("stream");
    assert!(stream_error(&events).is_truncated(), "{events:?}");
}

pub fn utf8_split_inside_characters<H: Harness>() {
    let server = FakeServer::start();
    server.push(
        Reply::sse([
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "你好"}), None),
            chunk(json!({"content": "，世界"}), None),
            chunk(json!({"content": ""}), Some("stop")),
            Part::done(),
        ])
        .split_every(1)
        .pace(Duration::from_micros(200)),
    );
    let events = stream::<H>(&client::<H>(&server)).expect("stream");
    assert!(matches!(terminal(&events), StreamEvent::Done));
    assert_eq!(content(&events), "你好，世界");
}

pub fn tool_call_arguments_assembled<H: Harness>() {
    let server = FakeServer::start();
    let mut parts = vec![chunk(
        json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}]}),
        None,
    )];
    for piece in ["{\"ci", "ty\": \"Par", "is\", \"unit", "\": \"°C\"", "}"] {
        parts.push(chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            None,
        ));
    }
    parts.push(chunk(json!({}), Some("tool_calls")));
    parts.push(Part::done());
    server.push(Reply::sse(parts).split_every(7));
    let events = stream::<H>(&client::<H>(&server)).expect("stream");
    assert!(matches!(terminal(&events), StreamEvent::Done));
    let calls: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCall(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 1, "{events:?}");
    assert_eq!(calls[0].id, "call_1");
    assert_eq!(calls[0].function.name, "get_weather");
    let args: Value = serde_json::from_str(&calls[0].function.arguments).expect("JSON arguments");
    assert_eq!(args, json!({"city": "Paris", "unit": "°C"}));
}

pub fn reasoning_both_field_names<H: Harness>() {
    let server = FakeServer::start();
    server.push(Reply::sse([
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"reasoning": "new "}), None),
        chunk(json!({"reasoning_content": "old"}), None),
        chunk(json!({"content": "answer"}), None),
        chunk(json!({"content": ""}), Some("stop")),
        Part::done(),
    ]));
    let c = client::<H>(&server);
    let events = stream::<H>(&c).expect("stream");
    let reasoning: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Reasoning(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasoning, "new old");
    assert_eq!(content(&events), "answer");
    // Non-streamed: `reasoning`, and `reasoning_content` from older servers.
    server.push(Reply::generate().reasoning("thinking hard"));
    assert_eq!(
        chat::<H>(&c).expect("chat").reasoning.as_deref(),
        Some("thinking hard")
    );
    let old = json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok",
        "reasoning_content": "legacy"}, "finish_reason": "stop"}]});
    server.push(Reply::json_status(200, &old));
    assert_eq!(
        chat::<H>(&c).expect("chat").reasoning.as_deref(),
        Some("legacy")
    );
}

pub fn usage_when_asked<H: Harness>() {
    let server = FakeServer::start();
    let c = client::<H>(&server);
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .include_usage(true)
            .send_stream(),
    )
    .expect("stream");
    let events = H::collect(s);
    assert!(matches!(terminal(&events), StreamEvent::Done));
    let usage = events
        .iter()
        .find_map(|e| match e {
            StreamEvent::Usage(u) => Some(u.clone()),
            _ => None,
        })
        .expect("a usage event");
    assert!(usage.completion_tokens > 0, "{usage:?}");
    let seen = server.last_request().expect("a request");
    assert_eq!(
        seen.json.as_ref().expect("json")["stream_options"]["include_usage"],
        true
    );
}

pub fn drop_closes_connection<H: Harness>() {
    let server = FakeServer::start();
    server.push(
        Reply::generate()
            .reply_text(&"word ".repeat(200))
            .token_delay(Duration::from_millis(20)),
    );
    let c = client::<H>(&server);
    let mut s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .stream(true)
            .send_stream(),
    )
    .expect("stream");
    let first = H::next(&mut s).expect("an event");
    assert!(!first.is_terminal());
    drop(s);
    assert!(
        server.wait_for_disconnects(1, Duration::from_secs(5)),
        "the server saw no disconnect"
    );
    assert!(server.requests()[0].client_disconnected);
}

// ----- breaker and limits ---------------------------------------------------------------------

pub fn breaker_opens_rejects_probes_and_closes<H: Harness>() {
    let server = FakeServer::start();
    let cfg = BreakerConfig {
        window: SlidingWindow::Count { size: 4 },
        minimum_calls: 2,
        failure_rate_threshold: 50,
        break_duration: Duration::from_millis(400),
        ..BreakerConfig::default()
    };
    let c = H::builder(&server.base_url())
        .max_retries(0)
        .circuit_breaker(cfg)
        .build();
    server.push_n(2, Reply::vllm_error(500, "down"));
    for _ in 0..2 {
        assert_eq!(
            chat::<H>(&c).expect_err("500").status().map(|s| s.as_u16()),
            Some(500)
        );
    }
    // Open: rejected at once, no request reaches the server.
    let started = Instant::now();
    let e = chat::<H>(&c).expect_err("open");
    assert!(matches!(e, VllmError::CircuitOpen { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "rejected fast"
    );
    assert_eq!(server.request_count(), 2);
    // After the break: a probe goes through, succeeds, and the breaker closes.
    std::thread::sleep(Duration::from_millis(500));
    chat::<H>(&c).expect("probe");
    chat::<H>(&c).expect("closed");
    chat::<H>(&c).expect("closed");
    assert_eq!(server.request_count(), 5);
}

pub fn rate_limit_spaces_calls<H: Harness>() {
    let server = FakeServer::start();
    let c = H::builder(&server.base_url())
        .rate_limit(1, Duration::from_millis(400), 1)
        .build();
    chat::<H>(&c).expect("first");
    chat::<H>(&c).expect("second");
    assert!(
        gap(&server, 0) >= Duration::from_millis(350),
        "gap {:?}",
        gap(&server, 0)
    );
}

pub fn concurrency_permit_held_for_the_stream<H: Harness>() {
    let server = FakeServer::start();
    server.push(
        Reply::generate()
            .reply_text(&"word ".repeat(200))
            .token_delay(Duration::from_millis(20)),
    );
    let c = H::builder(&server.base_url()).max_concurrency(1).build();
    let mut s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .stream(true)
            .send_stream(),
    )
    .expect("stream");
    assert!(!H::next(&mut s).expect("an event").is_terminal());
    let c2 = c.clone();
    let second = std::thread::spawn(move || chat::<H>(&c2).map(|r| r.content));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.request_count(),
        1,
        "the second call waits for the slot"
    );
    let dropped_at = Instant::now();
    drop(s);
    let content = second.join().expect("thread").expect("second call");
    assert_eq!(content.as_deref(), Some("Echo: hi"));
    assert!(server.requests()[1].received_at >= dropped_at);
}

/// `Concurrency::Auto`: a 503 carrying `Retry-After` halves the adaptive limit (2 → 1), so a
/// second call waits for the first stream's slot, as behind `max_concurrency(1)`.
pub fn adaptive_limit_halves_on_a_hinted_503<H: Harness>() {
    let server = FakeServer::start();
    server.push(Reply::vllm_error(503, "overloaded").header("retry-after", "0"));
    server.push(
        Reply::generate()
            .reply_text(&"word ".repeat(200))
            .token_delay(Duration::from_millis(20)),
    );
    let c = H::builder(&server.base_url())
        .max_retries(0)
        .max_concurrency(vllm_client_core::config::Concurrency::Auto {
            min: 1,
            max: 8,
            initial: 2,
        })
        .build();
    let e = chat::<H>(&c).expect_err("the 503");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(503), "{e:?}");
    let mut s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .stream(true)
            .send_stream(),
    )
    .expect("stream");
    assert!(!H::next(&mut s).expect("an event").is_terminal());
    let c2 = c.clone();
    let second = std::thread::spawn(move || chat::<H>(&c2).map(|r| r.content));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.request_count(),
        2,
        "with the limit cut to 1, the third call waits for the stream's slot"
    );
    let dropped_at = Instant::now();
    drop(s);
    let content = second.join().expect("thread").expect("second call");
    assert_eq!(content.as_deref(), Some("Echo: hi"));
    assert!(server.requests()[2].received_at >= dropped_at);
}

/// The engine model behind the server (one sequence at a time): a second stream queues in
/// the server until the first ends — its head at once, its first token only then — unless
/// the client's limit keeps it in the client.
pub fn engine_queues_behind_a_full_batch<H: Harness>() {
    fn streamed<H: Harness>(
        c: &Client<H::E>,
        max_tokens: u32,
    ) -> <H::E as vllm_client_core::client::Execute>::Stream {
        H::wait(
            c.chat
                .completions()
                .create()
                .model("m")
                .messages(hi())
                .extra(json!({"max_tokens": max_tokens}))
                .send_stream(),
        )
        .expect("stream")
    }
    for limit in [None, Some(1u32)] {
        let engine = vllm_testkit::engine::EngineConfig {
            max_num_seqs: 1,
            step_base: Duration::from_millis(20),
            ..Default::default()
        };
        let server = FakeServer::builder().engine(engine).start();
        let mut b = H::builder(&server.base_url());
        if let Some(n) = limit {
            b = b.max_concurrency(n);
        }
        let c = b.build();
        let mut first = streamed::<H>(&c, 40);
        assert!(
            matches!(H::next(&mut first), Some(StreamEvent::Content(t)) if t == "t0 "),
            "the first stream runs"
        );
        let c2 = c.clone();
        let second = std::thread::spawn(move || {
            let mut s = streamed::<H>(&c2, 3);
            let first_event = H::next(&mut s);
            let at = Instant::now();
            let mut events: Vec<StreamEvent> = first_event.into_iter().collect();
            events.extend(H::collect(s));
            (events, at)
        });
        std::thread::sleep(Duration::from_millis(60));
        let rest = H::collect(first);
        let first_done = Instant::now();
        let expected: String = (1..40).map(|k| format!("t{k} ")).collect();
        assert_eq!(content(&rest), expected);
        assert!(matches!(rest.last(), Some(StreamEvent::Done)), "{rest:?}");
        let (events, first_token_at) = second.join().expect("thread");
        assert_eq!(content(&events), "t0 t1 t2 ");
        let stats = server.engine_stats().expect("an engine");
        assert_eq!((stats.submitted, stats.finished), (2, 2));
        let received = server.requests()[1].received_at;
        match limit {
            None => {
                // Sent at once, queued in the server behind the first stream's remaining
                // ~37 steps of 20 ms: its head came at once, its first token much later.
                assert!(received + Duration::from_millis(400) < first_done);
                assert!(
                    first_token_at.duration_since(received) >= Duration::from_millis(400),
                    "{:?}",
                    first_token_at.duration_since(received)
                );
            }
            // Held by the client until the first stream ended: the server never queued it.
            Some(_) => assert!(received + Duration::from_millis(300) >= first_done),
        }
    }
}

pub fn total_deadline_bounds_everything<H: Harness>() {
    let server = FakeServer::start();
    // Every attempt fails slowly, and backoff would go on: the deadline ends it all.
    server.push_n(
        10,
        Reply::vllm_error(503, "busy").delay(Duration::from_millis(150)),
    );
    let deadline = Duration::from_millis(700);
    let c = H::builder(&server.base_url())
        .max_retries(10)
        .exponential_backoff(
            Duration::from_millis(100),
            Duration::from_millis(200),
            vllm_client_core::policy::Jitter::None,
        )
        .total_timeout(deadline)
        .build();
    let started = Instant::now();
    let e = chat::<H>(&c).expect_err("deadline");
    let took = started.elapsed();
    assert!(took <= deadline + MARGIN, "took {took:?}");
    assert!(e.is_timeout() || e.status().is_some(), "{e:?}");
    // A stall past the deadline: a head that never comes.
    server.clear_replies();
    server.push(Reply::generate().delay(Duration::from_secs(10)));
    let started = Instant::now();
    let e = chat::<H>(&c).expect_err("deadline");
    assert!(e.is_timeout(), "{e:?}");
    assert!(
        started.elapsed() <= deadline + MARGIN,
        "took {:?}",
        started.elapsed()
    );
}

// ----- secrets --------------------------------------------------------------------------------

pub fn api_key_sent_never_printed<H: Harness>() {
    let key = "sk-conformance-secret-1234";
    let server = FakeServer::builder().api_key(key).start();
    let c = H::builder(&server.base_url()).api_key(key).build();
    chat::<H>(&c).expect("authorised");
    let seen = server.last_request().expect("a request");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {key}").as_str())
    );
    assert!(
        !format!("{c:?}").contains(key),
        "Debug of the client shows the key"
    );

    let wrong = "sk-wrong-key-5678";
    let c = H::builder(&server.base_url())
        .max_retries(0)
        .build()
        .with_api_key(wrong);
    let e = chat::<H>(&c).expect_err("unauthorised");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(401));
    for text in [format!("{e}"), format!("{e:?}"), format!("{c:?}")] {
        assert!(!text.contains(wrong), "the key leaks: {text}");
    }
}

// ----- body framing (RFC 9112 §6.3) -----------------------------------------------------------

/// A complete streamed answer: role, content in three events, finish, `[DONE]`.
fn sse_answer(text: &[&str]) -> Vec<Part> {
    let mut parts = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    for t in text {
        parts.push(chunk(json!({"content": t}), None));
    }
    parts.push(chunk(json!({"content": ""}), Some("stop")));
    parts.push(Part::done());
    parts
}

/// The bytes of these parts, in order (delays and cuts left out).
fn bytes_of(parts: &[Part]) -> Vec<u8> {
    parts
        .iter()
        .flat_map(|p| match p {
            Part::Bytes(b) => b.to_vec(),
            _ => Vec::new(),
        })
        .collect()
}

pub fn close_delimited_stream<H: Harness>() {
    // Neither `content-length` nor chunked: the body ends when the server closes the
    // connection, as llama.cpp's server and several proxies send streams.
    let server = FakeServer::start();
    server.push(
        Reply::sse(sse_answer(&["one", " two", " three"]))
            .framing(Framing::UntilClose)
            .pace(Duration::from_millis(5)),
    );
    let events = stream::<H>(&client::<H>(&server)).expect("stream");
    assert!(matches!(terminal(&events), StreamEvent::Done), "{events:?}");
    assert_eq!(content(&events), "one two three");
    assert_eq!(server.request_count(), 1);
}

pub fn close_delimited_json<H: Harness>() {
    let server = FakeServer::start();
    server.push(Reply::generate().framing(Framing::UntilClose));
    let r = chat::<H>(&client::<H>(&server)).expect("chat");
    assert_eq!(r.content.as_deref(), Some("Echo: hi"));
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert_eq!(server.request_count(), 1);
}

pub fn short_body_json_retried<H: Harness>() {
    // `content-length: N`, N/2 bytes, then a clean close: a transport failure, retried.
    let server = FakeServer::start();
    let body = json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "never seen"},
        "finish_reason": "stop"}]})
    .to_string();
    let half = body.as_bytes()[..body.len() / 2].to_vec();
    let short = Reply::status(200)
        .header("content-type", "application/json")
        .header("content-length", &body.len().to_string())
        .body(half);
    server.push(short.clone());
    // Without retries, the failure shows: the transport's, not a body that is not JSON.
    let c = H::builder(&server.base_url()).max_retries(0).build();
    let e = chat::<H>(&c).expect_err("a short body");
    assert!(matches!(e, VllmError::Transport { .. }), "{e:?}");
    assert_eq!(server.request_count(), 1);

    let server = FakeServer::start();
    server.push(short);
    let c = client::<H>(&server);
    let rep = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .send_with_report(),
    )
    .expect("reported");
    let r = rep.result.expect("the retry succeeds");
    assert_eq!(r.content.as_deref(), Some("Echo: hi"));
    assert_eq!(server.request_count(), 2);
    assert_eq!(rep.report.attempts, 2, "{:?}", rep.report);
}

pub fn short_body_stream_retried<H: Harness>() {
    // The cut falls inside the first event: nothing reached the caller, so it is retried.
    let first = chunk(
        json!({"role": "assistant", "content": "x".repeat(400)}),
        None,
    );
    let mut parts = vec![first];
    parts.extend(sse_answer(&["never"]));
    let body = bytes_of(&parts);
    let half = body.len() / 2;
    assert!(
        half < bytes_of(&parts[..1]).len(),
        "the cut is inside the first event"
    );
    // `content-length` counts every part; the cut stops after the first half.
    let short = Reply::sse([
        Part::bytes(body[..half].to_vec()),
        Part::Cut,
        Part::bytes(body[half..].to_vec()),
    ])
    .framing(Framing::ContentLength);

    // Without retries: a failure before any output (the core reports a stream cut inside an
    // event as truncated).
    let server = FakeServer::start();
    server.push(short.clone());
    let c = H::builder(&server.base_url()).max_retries(0).build();
    let e = stream::<H>(&c).expect_err("a short body");
    assert!(
        e.is_truncated() || matches!(e, VllmError::Transport { .. }),
        "{e:?}"
    );
    assert_eq!(server.request_count(), 1);

    let server = FakeServer::start();
    server.push(short);
    let events = stream::<H>(&client::<H>(&server)).expect("stream");
    assert!(matches!(terminal(&events), StreamEvent::Done), "{events:?}");
    assert_eq!(content(&events), "Echo: hi");
    assert_eq!(server.request_count(), 2);
}

// ----- queued streams, first-token and idle timers (outside-bugs 1, queued-requests 2 and 3) --

pub fn first_token_timer_replaces_idle_before_the_first_token<H: Harness>() {
    let server = FakeServer::start();
    // The head at once, then only keep-alive comments for 500 ms, then tokens.
    let mut parts = Vec::new();
    for _ in 0..5 {
        parts.push(Part::keep_alive());
        parts.push(Part::delay_ms(100));
    }
    parts.extend([
        chunk(json!({"content": "a"}), None),
        chunk(json!({"content": "b"}), Some("stop")),
        Part::done(),
    ]);
    server.push(Reply::sse(parts));
    let c = H::builder(&server.base_url())
        .first_token_timeout(Duration::from_millis(800))
        .idle_timeout(Duration::from_millis(300))
        .build();
    let events = stream::<H>(&c).expect("one attempt");
    assert!(matches!(terminal(&events), StreamEvent::Done), "{events:?}");
    assert_eq!(content(&events), "ab");
    assert_eq!(server.request_count(), 1);
}

pub fn queued_stream_outlives_the_idle_timer<H: Harness>() {
    // The defaults' shape (idle on, no first-token timeout), scaled down: the first token
    // comes 900 ms after the head, idle is 300 ms. A queued stream is not a stalled one.
    let server = FakeServer::start();
    server.push(Reply::sse([
        Part::delay_ms(900),
        chunk(json!({"content": "late"}), Some("stop")),
        Part::done(),
    ]));
    let c = H::builder(&server.base_url())
        .idle_timeout(Duration::from_millis(300))
        .build();
    let events = stream::<H>(&c).expect("one attempt");
    assert!(matches!(terminal(&events), StreamEvent::Done), "{events:?}");
    assert_eq!(content(&events), "late");
    assert_eq!(server.request_count(), 1, "not retried, not re-queued");
}

pub fn first_token_timeout_not_retried_on_one_server<H: Harness>() {
    let server = FakeServer::start();
    server.push(Reply::generate().delay(Duration::from_millis(1500)));
    let c = H::builder(&server.base_url())
        .first_token_timeout(Duration::from_millis(300))
        .build();
    let started = Instant::now();
    let e = stream::<H>(&c).expect_err("timed out");
    assert!(e.is_timeout(), "{e:?}");
    assert!(started.elapsed() < Duration::from_millis(300) + MARGIN);
    assert_eq!(
        server.request_count(),
        1,
        "a retry would queue again at the back"
    );
}

// ----- a server that ignores `stream: true` (outside-bugs 3) ----------------------------------

pub fn json_answer_to_a_stream_request<H: Harness>() {
    let server = FakeServer::start();
    server.push(Reply::json_status(
        200,
        &json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "whole answer", "reasoning_content": "hmm"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        }),
    ));
    let c = client::<H>(&server);
    let events = stream::<H>(&c).expect("events");
    assert!(matches!(terminal(&events), StreamEvent::Done), "{events:?}");
    assert_eq!(content(&events), "whole answer");
    assert!(events
        .iter()
        .any(|e| matches!(e, StreamEvent::Reasoning(r) if r == "hmm")));
    assert!(events
        .iter()
        .any(|e| matches!(e, StreamEvent::Usage(u) if u.total_tokens == 5)));
    assert_eq!(server.request_count(), 1, "not retried");
    let sent = server.requests()[0].json.clone().expect("a JSON body");
    assert_eq!(sent["stream"], json!(true));
}

pub fn html_answer_to_a_stream_request<H: Harness>() {
    let server = FakeServer::start();
    server.push(Reply::html(
        200,
        "<html><body>Sign in to the gateway</body></html>",
    ));
    let c = client::<H>(&server);
    let e = stream::<H>(&c).expect_err("not an event stream");
    match &e {
        VllmError::Decode { snippet, .. } => assert!(snippet.contains("Sign in"), "{snippet}"),
        other => panic!("expected Decode, got {other:?}"),
    }
    assert!(!e.is_retryable());
    assert_eq!(server.request_count(), 1, "not retried");
}

// ----- requests the transport cannot carry (outside-bugs 6) -----------------------------------

pub fn non_ascii_header_is_refused_not_retried<H: Harness>() {
    let server = FakeServer::start();
    let c = H::builder(&server.base_url())
        .default_header("x-team", "équipe")
        .build();
    let e = chat::<H>(&c).expect_err("refused");
    assert!(matches!(e, VllmError::InvalidRequest(_)), "{e:?}");
    assert!(e.to_string().contains("x-team"), "{e}");
    assert!(
        !e.to_string().contains("équipe"),
        "the value is not printed: {e}"
    );
    assert_eq!(server.request_count(), 0, "nothing sent, nothing retried");
}

// ----- one connection lifecycle (outside-bugs 7) ----------------------------------------------

pub fn terminal_event_closes_the_connection<H: Harness>() {
    let server = FakeServer::start();
    // `[DONE]`, then the server keeps the response open.
    server.push(Reply::sse([
        chunk(json!({"content": "a"}), Some("stop")),
        Part::done(),
        Part::Stall(Duration::from_secs(20)),
    ]));
    let c = client::<H>(&server);
    let mut s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .stream(true)
            .send_stream(),
    )
    .expect("stream");
    let mut events = Vec::new();
    while let Some(ev) = H::next(&mut s) {
        let end = ev.is_terminal();
        events.push(ev);
        if end {
            break;
        }
    }
    assert!(
        matches!(events.last(), Some(StreamEvent::Done)),
        "{events:?}"
    );
    // The caller still holds the stream: the connection is closed anyway.
    assert!(
        server.wait_for_disconnects(1, Duration::from_secs(5)),
        "the connection stayed open after the terminal event"
    );
    drop(s);
}

// ----- first come, first served (queued-requests 1) -------------------------------------------

pub fn concurrency_slots_first_come_first_served<H: Harness>() {
    let server = FakeServer::start();
    server.push(
        Reply::generate()
            .reply_text("hold the slot for a while")
            .token_delay(Duration::from_millis(150)),
    );
    let c = H::builder(&server.base_url()).max_concurrency(1).build();
    let ask = |c: Client<H::E>, who: &'static str| {
        std::thread::spawn(move || {
            H::wait(
                c.chat
                    .completions()
                    .create()
                    .model("m")
                    .messages(json!([{"role": "user", "content": who}]))
                    .send(),
            )
        })
    };
    let holder = {
        let c = c.clone();
        std::thread::spawn(move || stream::<H>(&c))
    };
    assert!(server.wait_for_requests(1, Duration::from_secs(5)));
    // Five calls queue, in this order, while the slot is held.
    let mut waiting = Vec::new();
    for who in ["w1", "w2", "w3", "w4", "w5"] {
        waiting.push(ask(c.clone(), who));
        std::thread::sleep(Duration::from_millis(60));
    }
    let events = holder.join().expect("holder").expect("stream");
    assert!(matches!(terminal(&events), StreamEvent::Done), "{events:?}");
    for w in waiting {
        w.join().expect("waiter").expect("answered");
    }
    let order: Vec<String> = server.requests()[1..]
        .iter()
        .map(|r| {
            r.json.as_ref().expect("json")["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        order,
        ["w1", "w2", "w3", "w4", "w5"],
        "admitted in arrival order"
    );
}

// ----- rate-limit headers ---------------------------------------------------------------------

pub fn spent_server_quota_paces_the_next_call<H: Harness>() {
    let server = FakeServer::start();
    server.push(
        Reply::generate()
            .header("x-ratelimit-remaining-requests", "0")
            .header("x-ratelimit-reset-requests", "400ms"),
    );
    let c = client::<H>(&server);
    let rep = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .send_with_report(),
    )
    .expect("reported");
    assert!(rep.result.is_ok());
    let snapshot = rep.report.rate_limit.expect("the headers were read");
    assert_eq!(snapshot.requests.remaining, Some(0));
    // The next call waits for the refill instead of earning a 429.
    chat::<H>(&c).expect("second call");
    assert!(
        gap(&server, 0) >= Duration::from_millis(380),
        "{:?}",
        gap(&server, 0)
    );
    assert!(gap(&server, 0) < Duration::from_millis(400) + MARGIN);
}

pub fn rate_limit_headers_on_a_429<H: Harness>() {
    let server = FakeServer::start();
    server.push(
        Reply::vllm_error(429, "slow down")
            .header("x-ratelimit-limit-tokens", "1000")
            .header("x-ratelimit-remaining-tokens", "0")
            .header("x-ratelimit-reset-tokens", "6m0s"),
    );
    let c = H::builder(&server.base_url()).max_retries(0).build();
    let e = chat::<H>(&c).expect_err("429");
    let snapshot = e.rate_limit().expect("on the error");
    assert_eq!(snapshot.tokens.limit, Some(1000));
    assert_eq!(snapshot.tokens.reset, Some(Duration::from_secs(360)));
}

pub fn rate_limit_snapshot_on_a_stream<H: Harness>() {
    let server = FakeServer::start();
    server.push(
        Reply::generate()
            .header("x-ratelimit-limit-tokens", "1000")
            .header("x-ratelimit-remaining-tokens", "900")
            .header("x-ratelimit-reset-tokens", "6s"),
    );
    let c = client::<H>(&server);
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .send_stream(),
    )
    .expect("a stream");
    // Available as soon as the stream started, before any event is read.
    let snapshot = H::rate_limit(&s).expect("the head's rate-limit headers");
    assert_eq!(snapshot.tokens.limit, Some(1000));
    assert_eq!(snapshot.tokens.remaining, Some(900));
    assert_eq!(snapshot.tokens.reset, Some(Duration::from_secs(6)));
    assert!(matches!(terminal(&H::collect(s)), StreamEvent::Done));
    // A server that sends none (vLLM itself): no snapshot.
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model("m")
            .messages(hi())
            .send_stream(),
    )
    .expect("a stream");
    assert_eq!(H::rate_limit(&s), None);
}

/// `rate_limit_tokens`: an estimate (prompt characters / 4 + `max_tokens`) is charged before
/// each call; a failed call without reported usage keeps it, a reported usage refunds the rest.
pub fn token_rate_limit_paces_and_refunds<H: Harness>() {
    let server = FakeServer::start();
    server.push(Reply::vllm_error(400, "no"));
    // 6000 tokens a minute: 100 a second, a bucket of 6000.
    let c = H::builder(&server.base_url())
        .rate_limit_tokens(6000)
        .max_retries(0)
        .build();
    let call = |max_tokens: u32| {
        H::wait(
            c.chat
                .completions()
                .create()
                .model("m")
                .messages(hi())
                .max_tokens(max_tokens)
                .send(),
        )
    };
    // A: 1 + 5000 charged; it fails with no usage: the estimate stands (999 left).
    call(5000).expect_err("400");
    // B: 1 + 1039 = 1040 charged: 41 tokens short, it waits ≈ 410 ms.
    call(1039).expect("B");
    assert!(
        gap(&server, 0) >= Duration::from_millis(380),
        "{:?}",
        gap(&server, 0)
    );
    assert!(gap(&server, 0) < Duration::from_millis(410) + MARGIN);
    // B used a few tokens, not 1040: the rest came back, so C (1040 again) goes almost at
    // once instead of waiting 10.4 s for a full refill.
    call(1039).expect("C");
    assert!(
        gap(&server, 1) < Duration::from_millis(200) + MARGIN,
        "{:?}",
        gap(&server, 1)
    );
    // An estimate above a minute's worth is refused at once, without a request.
    let e = call(6000).expect_err("too big");
    assert!(matches!(e, VllmError::RateLimited(_)), "{e:?}");
    assert_eq!(server.request_count(), 3);
}

pub use crate::pool::*;
