//! Several servers, one client: three in-process fake vLLM servers — one stalls before its
//! first token, one answers `503` with `Retry-After: 30`, one is fine and then killed — and
//! not a single user-visible error; then a server that dies mid-answer, and chats that go on
//! on the other server (`continue_cut_chats`).
//!
//! The seed page's answer is one client per URL, a round robin and a semaphore each; here it
//! is one builder call. Each attempt goes to the less loaded of two endpoints drawn at random
//! (cost: in flight × time to first token); failing endpoints are ejected and probed back; a
//! failed attempt moves to an endpoint the call has not tried, before any text reached you.
//!
//! ```text
//! cargo run --example fleet
//! ```

use std::time::Duration;

use futures::StreamExt;
use tracing_subscriber::prelude::*;
use vllm_client::{json, EndpointConfig, Health, StreamEvent, VllmClient, VllmError};
use vllm_testkit::server::{FakeServer, Reply};

#[tokio::main]
async fn main() -> Result<(), VllmError> {
    // Ejections and readmissions are logged as they happen.
    let filter: tracing_subscriber::filter::Targets =
        "vllm_client_runner=info".parse().expect("a filter");
    tracing_subscriber::fmt()
        .with_target(false)
        .finish()
        .with(filter)
        .init();
    let stalled = FakeServer::start();
    let busy = FakeServer::start();
    let fine = FakeServer::start();
    stalled.push_n(50, Reply::generate().delay(Duration::from_secs(30)));
    busy.push_n(
        50,
        Reply::vllm_error(503, "overloaded").header("retry-after", "30"),
    );

    let client = VllmClient::builder()
        .endpoints([
            EndpointConfig::new(stalled.base_url()),
            EndpointConfig::new(busy.base_url()),
            EndpointConfig::new(fine.base_url()).weight(2),
        ])
        .first_token_timeout(Duration::from_millis(500))
        .build();

    for i in 0..12 {
        let text = stream_text(&client, &format!("question {i}")).await?;
        println!("call {i:>2}: {text}");
    }

    // Kill the healthy server mid-run: the calls move to the others... which misbehave, so
    // bring the stalled one back to health first.
    stalled.clear_replies();
    fine.shutdown();
    for i in 12..20 {
        let answer = client
            .chat
            .completions()
            .create()
            .model("fake/vllm-model")
            .messages(json!([{"role": "user", "content": format!("question {i}")}]))
            .send()
            .await?;
        println!("call {i:>2}: {}", answer.content.unwrap_or_default());
    }

    println!("\nendpoint                    health   in flight    latency   ok  failed  why");
    for e in client.endpoints() {
        let health = match e.health {
            Health::Healthy => "healthy",
            Health::Ejected { .. } => "ejected",
            Health::Probing => "probing",
        };
        let why = match (e.health, e.reason) {
            (Health::Healthy, _) | (_, None) => String::new(),
            (_, Some(r)) => r.to_string(),
        };
        println!(
            "{:<27} {:<8} {:>9} {:>10.1?} {:>4} {:>7}  {why}",
            e.url,
            health,
            e.in_flight,
            e.latency.unwrap_or_default(),
            e.successes,
            e.failures
        );
    }

    // A server that dies mid-answer: with `continue_cut_chats`, the chat goes on on the other
    // server from the text you already have, and you read it whole, once.
    let dying = FakeServer::start();
    let steady = FakeServer::start();
    dying.push_n(
        20,
        Reply::generate()
            .token_delay(Duration::from_millis(20))
            .cut_after_tokens(2),
    );
    let client = VllmClient::builder()
        .endpoints([dying.base_url(), steady.base_url()])
        .continue_cut_chats(true)
        .build();
    println!();
    for i in 0..4 {
        let text = stream_text(&client, &format!("tell me about fleet {i}")).await?;
        println!("stream {i}: {text}");
    }
    println!(
        "the dying server took {} of the streams and cut them; each went on on the other",
        dying
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/chat/completions"))
            .count()
    );
    Ok(())
}

/// The text of a streamed chat answer to `prompt`, or the stream's error.
async fn stream_text(client: &VllmClient, prompt: &str) -> Result<String, VllmError> {
    let mut stream = client
        .chat
        .completions()
        .create()
        .model("fake/vllm-model")
        .messages(json!([{"role": "user", "content": prompt}]))
        .send_stream()
        .await?;
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event {
            StreamEvent::Content(delta) => text.push_str(&delta),
            StreamEvent::Error(e) => return Err(e),
            _ => {}
        }
    }
    Ok(text)
}
