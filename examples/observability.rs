//! See what the client does: `tracing` spans and events, and the GenAI and resilience metrics
//! scraped from a Prometheus exporter.
//!
//! ```text
//! cargo run -p vllm-client-suite --example observability
//! ```
//!
//! Everything runs on 127.0.0.1: the testkit's fake vLLM server, and a Prometheus exporter
//! (`metrics-exporter-prometheus`) listening on a free loopback port. The client makes a chat
//! call, a stream, a call that is retried after a 503 and one that fails with a 400; then the
//! example scrapes `/metrics` once, prints the client's metrics and exits.
//!
//! In your own program: enable the `metrics` feature of `vllm-client` (or `opentelemetry`),
//! install any `metrics` exporter, and a `tracing` subscriber for the spans.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use futures::StreamExt;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use vllm_client::observability::{self, DURATION_BUCKETS, TOKEN_BUCKETS};
use vllm_client::{json, Jitter, StreamEvent, VllmClient, VllmError};
use vllm_testkit::server::{FakeServer, Reply};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Spans and events to stderr (RUST_LOG=debug shows every attempt).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    // A Prometheus exporter on a free loopback port, with the GenAI conventions' buckets.
    let addr: SocketAddr = {
        let probe = TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?
    };
    let mut prometheus = PrometheusBuilder::new().with_http_listener(addr);
    for name in [
        observability::OPERATION_DURATION,
        observability::TIME_TO_FIRST_CHUNK,
        observability::TIME_PER_OUTPUT_CHUNK,
        observability::LIMITER_WAIT,
    ] {
        prometheus =
            prometheus.set_buckets_for_metric(Matcher::Full(name.into()), &DURATION_BUCKETS)?;
    }
    prometheus = prometheus.set_buckets_for_metric(
        Matcher::Full(observability::TOKEN_USAGE.into()),
        &TOKEN_BUCKETS,
    )?;
    prometheus.install()?;

    let server = FakeServer::start();
    let client = VllmClient::builder()
        .base_url(server.base_url())
        .exponential_backoff(
            Duration::from_millis(50),
            Duration::from_millis(200),
            Jitter::Full,
        )
        .timeout(Duration::from_secs(10))
        .build();
    let model = "fake/vllm-model";
    let chat = |text: &'static str| {
        client
            .chat
            .completions()
            .create()
            .model(model)
            .messages(json!([{"role": "user", "content": text}]))
    };

    let answer = chat("Hello!").send().await?;
    println!("chat: {}", answer.content.unwrap_or_default());

    let mut stream = chat("Tell me a short story")
        .include_usage(true)
        .send_stream()
        .await?;
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event {
            StreamEvent::Content(t) => text.push_str(&t),
            StreamEvent::Done => break,
            StreamEvent::Error(e) => return Err(e.into()),
            _ => {}
        }
    }
    println!("stream: {text}");

    server.push(Reply::vllm_error(503, "overloaded"));
    let retried = chat("Retry me").send_with_report().await?;
    println!("retried call: {}", retried.report);

    server.push(Reply::vllm_error(400, "bad request"));
    let failed: Result<_, VllmError> = chat("Fail me").send().await;
    println!(
        "failed call: {}",
        failed.err().map(|e| e.to_string()).unwrap_or_default()
    );

    // Scrape the exporter once, as Prometheus would, and print the client's metrics.
    let body = tokio::task::spawn_blocking(move || scrape(addr)).await??;
    println!("\n--- scraped from http://{addr}/metrics (buckets left out) ---");
    for line in body.lines().filter(|l| {
        let l = l
            .trim_start_matches("# HELP ")
            .trim_start_matches("# TYPE ");
        (l.starts_with("gen_ai_") || l.starts_with("vllm_client_")) && !l.contains("_bucket{")
    }) {
        println!("{line}");
    }
    Ok(())
}

/// `GET /metrics` over a plain loopback TCP connection.
fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut last = None;
    // The listener starts in the background: give it a moment.
    for _ in 0..50 {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.write_all(
                    b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                )?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                return Ok(out);
            }
            Err(e) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no listener")))
}
