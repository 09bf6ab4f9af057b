//! The fake server's default behaviour: vLLM's shapes, endpoints, HTTP handling.

mod server_support;

use serde_json::{json, Value};
use server_support::{get, post, request, Client};
use vllm_testkit::server::{model, FakeServer, DEFAULT_MODEL};

fn chat_body(text: &str) -> Value {
    json!({"model": "Qwen/Qwen3-8B", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": text}
    ]})
}

#[test]
fn chat_non_stream_has_vllm_shape() {
    let server = FakeServer::start();
    let r = post(
        server.addr(),
        "/v1/chat/completions",
        &chat_body("Hello there"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "Qwen/Qwen3-8B");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Echo: Hello there");
    assert_eq!(choice["message"]["reasoning"], Value::Null);
    assert_eq!(choice["message"]["tool_calls"], json!([]));
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["stop_reason"], Value::Null);
    let usage = &v["usage"];
    assert_eq!(usage["completion_tokens"], 3);
    // system: 2 words + 2 markers; user: 2 words + 2 markers.
    assert_eq!(usage["prompt_tokens"], 8);
    assert_eq!(usage["total_tokens"], 11);
    assert_eq!(usage["prompt_tokens_details"], Value::Null);
    assert_eq!(
        model::split_tokens(&model::default_reply_text("Hello there")).len(),
        3
    );
}

#[test]
fn chat_max_tokens_caps_with_length() {
    let server = FakeServer::start();
    let mut body = chat_body("one two three four five");
    body["max_tokens"] = json!(2);
    let v = post(server.addr(), "/v1/chat/completions", &body).json();
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: one");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

#[test]
fn chat_stream_has_vllm_chunks_and_ends_with_done() {
    let server = FakeServer::start();
    let mut body = chat_body("héllo wörld");
    body["stream"] = json!(true);
    let r = post(server.addr(), "/v1/chat/completions", &body);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.complete);
    let data = r.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    // role chunk, 3 tokens, finish chunk; no usage without include_usage.
    assert_eq!(chunks.len(), 5);
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"]);
        assert_eq!(c["model"], "Qwen/Qwen3-8B");
        assert!(c.get("usage").is_none());
    }
    assert_eq!(
        chunks[0]["choices"][0],
        json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})
    );
    let text: String = chunks[1..4]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Echo: héllo wörld");
    assert_eq!(
        chunks[4]["choices"][0],
        json!({"index": 0, "delta": {"content": ""}, "logprobs": null, "finish_reason": "stop", "stop_reason": null})
    );
    // One event per HTTP chunk.
    assert_eq!(r.chunks.len(), data.len());
}

#[test]
fn chat_stream_usage_chunk_with_include_usage() {
    let server = FakeServer::start();
    let mut body = chat_body("a b c");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let data = post(server.addr(), "/v1/chat/completions", &body).sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert_eq!(usage["usage"]["prompt_tokens"], 9);
    assert_eq!(usage["usage"]["total_tokens"], 13);
}

#[test]
fn completions_plain_and_streamed() {
    let server = FakeServer::start();
    let v = post(
        server.addr(),
        "/v1/completions",
        &json!({"model": "m", "prompt": "once upon"}),
    )
    .json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "Echo: once upon");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 2);

    let r = post(
        server.addr(),
        "/v1/completions",
        &json!({"model": "m", "prompt": "x y", "stream": true, "max_tokens": 2}),
    );
    let data = r.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Echo: x");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
}

#[test]
fn models_embeddings_tokenize_health_version() {
    let server = FakeServer::builder().models(["a/one", "b/two"]).start();
    let v = get(server.addr(), "/v1/models").json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a/one", "b/two"]);

    let e1 = post(
        server.addr(),
        "/v1/embeddings",
        &json!({"model": "e", "input": ["hi", "yo"]}),
    )
    .json();
    let e2 = post(
        server.addr(),
        "/v1/embeddings",
        &json!({"model": "e", "input": "hi"}),
    )
    .json();
    assert_eq!(e1["object"], "list");
    assert_eq!(e1["data"].as_array().unwrap().len(), 2);
    assert_eq!(e1["data"][0]["embedding"], e2["data"][0]["embedding"]);
    assert_ne!(e1["data"][0]["embedding"], e1["data"][1]["embedding"]);
    assert_eq!(e2["data"][0]["embedding"].as_array().unwrap().len(), 16);

    let t = post(
        server.addr(),
        "/tokenize",
        &json!({"prompt": "Hello big world"}),
    )
    .json();
    assert_eq!(t["count"], 3);
    assert_eq!(t["max_model_len"], 8192);
    let d = post(
        server.addr(),
        "/detokenize",
        &json!({"tokens": t["tokens"]}),
    )
    .json();
    assert_eq!(d["prompt"], "Hello big world");
    let bad = post(server.addr(), "/detokenize", &json!({"tokens": [7]}));
    assert_eq!(bad.status, 400);

    let h = get(server.addr(), "/health");
    assert_eq!((h.status, h.body.len()), (200, 0));
    assert_eq!(
        get(server.addr(), "/version").json(),
        json!({"version": "0.11.0-fake"})
    );
    assert_eq!(FakeServer::start().requests().len(), 0);
    let default_models = get(FakeServer::start().addr(), "/v1/models").json();
    assert_eq!(default_models["data"][0]["id"], DEFAULT_MODEL);
}

#[test]
fn unknown_path_and_wrong_method() {
    let server = FakeServer::start();
    let r = get(server.addr(), "/v1/nope");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": {"message": "Not Found", "type": "NotFoundError", "param": null, "code": 404}})
    );
    let r = get(server.addr(), "/v1/chat/completions");
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["error"]["code"], 405);
}

#[test]
fn bad_json_and_missing_fields_are_400() {
    let server = FakeServer::start();
    let r = request(
        server.addr(),
        "POST",
        "/v1/chat/completions",
        &[],
        "{not json",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "BadRequestError");
    let r = post(
        server.addr(),
        "/v1/chat/completions",
        &json!({"model": "m"}),
    );
    assert_eq!(r.status, 400);
    let r = post(
        server.addr(),
        "/v1/chat/completions",
        &json!({"model": "m", "messages": [], "max_tokens": -1}),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn api_key_is_checked_under_v1_only() {
    let server = FakeServer::builder().api_key("sk-test").start();
    let body = chat_body("x").to_string();
    let r = request(server.addr(), "POST", "/v1/chat/completions", &[], &body);
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), json!({"error": "Unauthorized"}));
    let r = request(
        server.addr(),
        "POST",
        "/v1/chat/completions",
        &[("Authorization", "Bearer sk-wrong")],
        &body,
    );
    assert_eq!(r.status, 401);
    let r = request(
        server.addr(),
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-test")],
        &body,
    );
    assert_eq!(r.status, 200);
    assert_eq!(get(server.addr(), "/health").status, 200);
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let server = FakeServer::start();
    let mut c = Client::connect(server.addr());
    c.send("GET", "/health", &[], "");
    assert_eq!(c.read_response().unwrap().status, 200);
    let mut body = chat_body("again");
    body["stream"] = json!(true);
    c.send("POST", "/v1/chat/completions", &[], &body.to_string());
    let r = c.read_response().unwrap();
    assert_eq!(r.sse_data().last().unwrap(), "[DONE]");
    c.send("GET", "/version", &[("Connection", "close")], "");
    let r = c.read_response().unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.at_eof());

    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs
        .iter()
        .all(|r| r.connection_id == reqs[0].connection_id));
    assert_eq!(server.connection_count(), 1);
}

#[test]
fn requests_are_recorded() {
    let server = FakeServer::start();
    let body = chat_body("rec");
    let mut c = Client::connect(server.addr());
    c.send(
        "POST",
        "/v1/chat/completions?x=1",
        &[("X-Custom", "Yes"), ("X-Custom", "Twice")],
        &body.to_string(),
    );
    c.read_response().unwrap();
    // A chunked request body.
    c.send_raw(
        b"POST /tokenize HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n\
          5\r\n{\"pro\r\nf;ext=1\r\nmpt\": \"a b c\"} \r\n0\r\nx-trailer: 1\r\n\r\n",
    );
    let t = c.read_response().unwrap();
    assert_eq!(t.json()["count"], 3);

    assert_eq!(server.request_count(), 2);
    let reqs = server.requests();
    let r = &reqs[0];
    assert_eq!(
        (r.index, r.method.as_str(), r.path.as_str()),
        (0, "POST", "/v1/chat/completions")
    );
    assert_eq!(r.query.as_deref(), Some("x=1"));
    assert_eq!(r.header("x-custom"), Some("Yes"));
    assert_eq!(r.header_all("X-CUSTOM"), ["Yes", "Twice"]);
    assert_eq!(r.json.as_ref(), Some(&body));
    assert_eq!(r.body_text(), Some(body.to_string().as_str()));
    assert!(!r.scripted && !r.client_disconnected);
    assert!(reqs[1].received_at >= r.received_at);
    assert_eq!(reqs[1].body_text(), Some("{\"prompt\": \"a b c\"} "));
    assert_eq!(server.last_request().unwrap().path, "/tokenize");
}

#[test]
fn oversized_and_malformed_requests_are_rejected() {
    let server = FakeServer::builder()
        .max_body_bytes(1000)
        .max_head_bytes(2048)
        .start();
    let mut c = Client::connect(server.addr());
    c.send_raw(b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 5000\r\n\r\n");
    c.send_raw(&[b'x'; 5000]);
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], 413);
    assert!(c.at_eof());

    let mut c = Client::connect(server.addr());
    let huge = format!(
        "GET /health HTTP/1.1\r\nx-big: {}\r\n\r\n",
        "a".repeat(4000)
    );
    c.send_raw(huge.as_bytes());
    assert_eq!(c.read_response().unwrap().status, 431);

    let mut c = Client::connect(server.addr());
    c.send_raw(b"POST /tokenize HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1000\r\n");
    assert_eq!(c.read_response().unwrap().status, 413);

    for bad in [
        &b"NONSENSE\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST /tokenize HTTP/1.1\r\ncontent-length: abc\r\n\r\n",
        b"POST /tokenize HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut c = Client::connect(server.addr());
        c.send_raw(bad);
        let r = c.read_response().unwrap();
        assert!(r.status == 400 || r.status == 505, "{:?}", r.status);
    }
    assert_eq!(server.rejected_count(), 8);
    assert_eq!(server.request_count(), 0);
    // Still serving.
    assert_eq!(get(server.addr(), "/health").status, 200);
}

#[test]
fn expect_100_continue_is_answered() {
    let server = FakeServer::start();
    let mut c = Client::connect(server.addr());
    let body = r#"{"prompt": "x"}"#;
    c.send_raw(
        format!(
            "POST /tokenize HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let (status, _, _) = c.read_head().unwrap();
    assert_eq!(status, 100);
    c.send_raw(body.as_bytes());
    assert_eq!(c.read_response().unwrap().json()["count"], 1);
}
