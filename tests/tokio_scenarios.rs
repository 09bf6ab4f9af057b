//! The policy scenarios of the simulator (`testkit/tests/sim_scenarios.rs`), through the tokio
//! client against the fake server on loopback. Real time is noisy here, so waits are checked
//! with generous upper margins and exact lower bounds.

use std::time::{Duration, Instant};

use futures::StreamExt;
use vllm_client::{json, BreakerConfig, Jitter, SlidingWindow, StreamEvent, VllmClient, VllmError};
use vllm_testkit::server::{FakeServer, Reply};

async fn chat(client: &VllmClient) -> vllm_client::Reported<vllm_client::ChatCompletionResponse> {
    client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "one two three four"}]))
        .send_with_report()
        .await
        .unwrap()
}

#[tokio::test]
async fn retry_after_ms_is_slept_exactly_once() {
    let server = FakeServer::start();
    server.push(Reply::vllm_error(429, "slow down").header("retry-after-ms", "1500"));
    let client = VllmClient::new(&server.base_url());
    let t0 = Instant::now();
    let r = chat(&client).await;
    let elapsed = t0.elapsed();
    assert!(r.result.is_ok());
    assert_eq!(r.report.attempts, 2);
    assert_eq!(r.report.retries.len(), 1);
    assert_eq!(r.report.retries[0].delay, Duration::from_millis(1500));
    assert!(r.report.retries[0].hinted);
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    let reqs = server.requests();
    let gap = reqs[1].received_at - reqs[0].received_at;
    assert!(gap >= Duration::from_millis(1450), "{gap:?}");
}

#[tokio::test]
async fn retry_after_beyond_the_deadline_fails_at_once_with_the_hint() {
    let server = FakeServer::start();
    server.push(Reply::vllm_error(503, "busy").header("retry-after", "30"));
    let client = VllmClient::builder()
        .base_url(server.base_url())
        .total_timeout(Duration::from_secs(10))
        .build();
    let t0 = Instant::now();
    let r = chat(&client).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "no wait at all");
    let e = r.result.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 503);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(r.report.attempts, 1);
}

#[tokio::test]
async fn three_503s_with_two_retries() {
    let server = FakeServer::start();
    server.push_n(3, Reply::vllm_error(503, "overloaded"));
    let client = VllmClient::builder()
        .base_url(server.base_url())
        .max_retries(2)
        .exponential_backoff(
            Duration::from_millis(50),
            Duration::from_secs(1),
            Jitter::Full,
        )
        .build();
    let r = chat(&client).await;
    let e = r.result.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 503);
    assert_eq!(r.report.attempts, 3);
    assert_eq!(server.request_count(), 3);
    let delays: Vec<Duration> = r.report.retries.iter().map(|x| x.delay).collect();
    assert!(delays[0] < Duration::from_millis(50), "{delays:?}");
    assert!(delays[1] < Duration::from_millis(100), "{delays:?}");
}

#[tokio::test]
async fn breaker_opens_probes_once_and_closes() {
    let server = FakeServer::start();
    let cfg = BreakerConfig {
        window: SlidingWindow::Count { size: 3 },
        minimum_calls: 3,
        break_duration: Duration::from_millis(300),
        ..BreakerConfig::default()
    };
    let client = VllmClient::builder()
        .base_url(server.base_url())
        .max_retries(0)
        .circuit_breaker(cfg)
        .build();
    server.push_n(3, Reply::vllm_error(500, "boom"));
    for _ in 0..3 {
        assert_eq!(
            chat(&client)
                .await
                .result
                .unwrap_err()
                .status()
                .unwrap()
                .as_u16(),
            500
        );
    }
    let e = chat(&client).await.result.unwrap_err();
    match e {
        VllmError::CircuitOpen { retry_in } => assert!(retry_in <= Duration::from_millis(300)),
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    assert_eq!(server.request_count(), 3, "rejected without a request");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(chat(&client).await.result.is_ok(), "the probe");
    assert!(chat(&client).await.result.is_ok(), "closed again");
    assert_eq!(server.request_count(), 5);
}

async fn stream_events(client: &VllmClient) -> Result<Vec<StreamEvent>, VllmError> {
    let s = client
        .chat
        .completions()
        .create()
        .model("m")
        .messages(json!([{"role": "user", "content": "one two three four"}]))
        .send_stream()
        .await?;
    Ok(tokio::time::timeout(Duration::from_secs(10), s.collect())
        .await
        .expect("the stream must end"))
}

#[tokio::test]
async fn stall_after_first_content_is_an_idle_timeout_without_retry() {
    let server = FakeServer::start();
    server.push(Reply::generate().stall_after_tokens(1, Duration::from_secs(10)));
    let client = VllmClient::builder()
        .base_url(server.base_url())
        .idle_timeout(Duration::from_millis(300))
        .build();
    let events = stream_events(&client).await.unwrap();
    assert!(matches!(events.first(), Some(StreamEvent::Content(t)) if t == "Echo:"));
    assert!(matches!(
        events.last(),
        Some(StreamEvent::Error(VllmError::Timeout))
    ));
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn keep_alives_during_a_stall_do_not_keep_it_alive() {
    let server = FakeServer::start();
    server.push(
        Reply::generate()
            .keep_alives_after_tokens(1, 100, Duration::from_millis(50))
            .stall_after_tokens(1, Duration::from_secs(10)),
    );
    let client = VllmClient::builder()
        .base_url(server.base_url())
        .idle_timeout(Duration::from_millis(400))
        .build();
    let t0 = Instant::now();
    let events = stream_events(&client).await.unwrap();
    assert!(matches!(
        events.last(),
        Some(StreamEvent::Error(VllmError::Timeout))
    ));
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn slow_first_token_is_retried_when_opted_in() {
    let server = FakeServer::start();
    server.push(Reply::generate().delay(Duration::from_secs(3)));
    let client = VllmClient::builder()
        .base_url(server.base_url())
        .first_token_timeout(Duration::from_millis(300))
        .retry_first_token_timeout(true)
        .exponential_backoff(
            Duration::from_millis(1),
            Duration::from_millis(5),
            Jitter::Full,
        )
        .build();
    let events = stream_events(&client).await.unwrap();
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Content(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Echo: one two three four");
    assert!(matches!(events.last(), Some(StreamEvent::Done)));
    assert_eq!(server.request_count(), 2);
}
