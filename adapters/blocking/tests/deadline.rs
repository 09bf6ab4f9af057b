//! Blocking calls return at the core's deadlines: the overshoot is scheduling latency only
//! (documented margin: 50 ms; asserted here with a wide margin, since the machine is shared).

use std::time::{Duration, Instant};

use serde_json::json;
use vllm_client_blocking::VllmClient;
use vllm_client_core::StreamEvent;
use vllm_testkit::server::{FakeServer, Reply};

const SLACK: Duration = Duration::from_millis(500);

fn client(server: &FakeServer) -> VllmClient {
    VllmClient::builder()
        .base_url(server.base_url())
        .max_retries(0)
        .idle_timeout(Duration::from_millis(200))
        .first_token_timeout(Duration::from_millis(200))
        .build()
}

#[test]
fn a_head_that_never_comes() {
    let server = FakeServer::start();
    server.push(Reply::generate().delay(Duration::from_secs(20)));
    // A JSON call's head is bounded by the attempt timeout (first-token is for streams).
    let client = VllmClient::builder()
        .base_url(server.base_url())
        .max_retries(0)
        .timeout(Duration::from_millis(200))
        .build();
    let started = Instant::now();
    let e = client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "hi"}]))
        .send()
        .expect_err("timeout");
    let took = started.elapsed();
    assert!(e.is_timeout(), "{e:?}");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_millis(200) + SLACK, "{took:?}");
    eprintln!(
        "head deadline overshoot: {:?}",
        took - Duration::from_millis(200)
    );
    assert!(server.wait_for_disconnects(1, Duration::from_secs(5)));
}

#[test]
fn a_stream_that_goes_silent() {
    let server = FakeServer::start();
    server.push(
        Reply::generate()
            .reply_text("a b c")
            .stall_after_tokens(1, Duration::from_secs(20)),
    );
    let mut stream = client(&server)
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "hi"}]))
        .send_stream()
        .expect("stream");
    let mut last_data = Instant::now();
    let mut overshoot = None;
    for event in stream.by_ref() {
        match event {
            StreamEvent::Error(e) => {
                assert!(e.is_timeout(), "{e:?}");
                overshoot = Some(
                    last_data
                        .elapsed()
                        .saturating_sub(Duration::from_millis(200)),
                );
            }
            StreamEvent::Done => panic!("the stream stalled; Done is wrong"),
            _ => last_data = Instant::now(),
        }
    }
    let overshoot = overshoot.expect("a timeout");
    eprintln!("idle deadline overshoot: {overshoot:?}");
    assert!(overshoot < SLACK, "{overshoot:?}");
    drop(stream);
    assert!(server.wait_for_disconnects(1, Duration::from_secs(5)));
}
