//! The fake server with the engine model behind it (`FakeServerBuilder::engine`).

mod server_support;

use std::time::{Duration, Instant};

use serde_json::json;
use server_support::{get, post, Client};
use vllm_testkit::engine::EngineConfig;
use vllm_testkit::server::FakeServer;
use vllm_testkit::server_metrics::ServerLoad;

fn engine(max_num_seqs: u32) -> EngineConfig {
    EngineConfig {
        max_num_seqs,
        step_base: Duration::from_millis(5),
        ..EngineConfig::default()
    }
}

#[test]
fn json_and_stream_answers_from_the_engine() {
    let server = FakeServer::builder().engine(engine(4)).start();
    let r = post(
        server.addr(),
        "/v1/chat/completions",
        &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "t0 t1 t2 ");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    let r = post(
        server.addr(),
        "/v1/completions",
        &json!({"model": "m", "prompt": "hi", "max_tokens": 2, "stream": true}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let data = r.sse_data();
    assert_eq!(data.len(), 4, "{data:?}");
    let texts: Vec<String> = data[..2]
        .iter()
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["choices"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(texts, ["t0 ", "t1 "]);
    assert_eq!(data[3], "[DONE]");
    let stats = server.engine_stats().expect("an engine");
    assert_eq!((stats.submitted, stats.finished), (2, 2));
    // Requests the engine does not serve keep their defaults.
    let r = post(
        server.addr(),
        "/v1/embeddings",
        &json!({"model": "m", "input": "x"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(server.engine_stats().map(|s| s.submitted), Some(2));
}

#[test]
fn a_request_that_cannot_fit_is_a_400() {
    let server = FakeServer::builder()
        .engine(EngineConfig {
            kv_capacity_tokens: 100,
            ..engine(4)
        })
        .start();
    let r = post(
        server.addr(),
        "/v1/chat/completions",
        &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 500}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], 400);
    assert_eq!(server.engine_stats().map(|s| s.rejected), Some(1));
}

#[test]
fn a_disconnect_aborts_the_queued_request() {
    let server = FakeServer::builder().engine(engine(1)).start();
    // One long request holds the only slot; a second one queues, then its client leaves.
    let mut long = Client::connect(server.addr());
    long.send(
        "POST",
        "/v1/chat/completions",
        &[],
        &json!({"model": "m", "messages": [], "max_tokens": 4000, "stream": true}).to_string(),
    );
    let head = long.read_head().expect("the head at once");
    assert_eq!(head.0, 200);
    let mut queued = Client::connect(server.addr());
    queued.send(
        "POST",
        "/v1/chat/completions",
        &[],
        &json!({"model": "m", "messages": [], "max_tokens": 4, "stream": true}).to_string(),
    );
    assert_eq!(queued.read_head().expect("the head at once").0, 200);
    drop(queued);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.engine_stats().map_or(0, |s| s.aborted) < 1 {
        assert!(
            Instant::now() < deadline,
            "the queued request was not aborted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = server.engine_stats().expect("an engine");
    assert_eq!(stats.max_waiting, 1);
    assert_eq!(stats.finished, 0);
    // The engine's gauges, as vLLM's /metrics shows them, read back by the client's parser.
    let m = get(server.addr(), "/metrics");
    assert_eq!(m.status, 200);
    let load = ServerLoad::parse(m.text().as_bytes());
    assert_eq!(load.running, Some(1.0));
    assert_eq!(load.waiting, Some(0.0));
    assert!(
        load.kv_cache_usage.is_some_and(|k| k > 0.0 && k < 1.0),
        "{load:?}"
    );
}
