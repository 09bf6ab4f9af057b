//! The seed page's "断路器模式" (circuit breaker) as configuration: a sliding window,
//! failure-rate threshold, minimum number of calls, a break, then a bounded number of probes.
//! Against the fake server it stages failures, shows the breaker failing fast, then closing
//! after a successful probe.
//!
//! ```text
//! cargo run --example circuit_breaker
//! ```

use std::time::Duration;

use tracing_subscriber::prelude::*;
use vllm_client::{json, BreakerConfig, SlidingWindow, VllmClient, VllmError};
use vllm_testkit::server::Reply;

mod support;

#[tokio::main]
async fn main() {
    let filter: tracing_subscriber::filter::Targets =
        "vllm_client_tokio=warn".parse().expect("a filter");
    tracing_subscriber::fmt()
        .with_target(false)
        .finish()
        .with(filter)
        .init();
    let target = support::target();
    // Open when half of the last 4 calls failed; fail fast for 500 ms, then probe once.
    let breaker = BreakerConfig {
        window: SlidingWindow::Count { size: 4 },
        minimum_calls: 4,
        failure_rate_threshold: 50,
        break_duration: Duration::from_millis(500),
        ..BreakerConfig::default()
    };
    let client = VllmClient::builder()
        .base_url(&target.base_url)
        .max_retries(0)
        .circuit_breaker(breaker)
        .build();

    let ask = || async {
        client
            .chat
            .completions()
            .create()
            .model(&target.model)
            .messages(json!([{"role": "user", "content": "ping"}]))
            .send()
            .await
    };

    if let Some(fake) = &target.fake {
        fake.push_n(4, Reply::vllm_error(503, "overloaded"));
    }
    for i in 1..=6 {
        match ask().await {
            Ok(r) => println!("call {i}: {}", r.content.unwrap_or_default()),
            Err(VllmError::CircuitOpen { retry_in }) => {
                println!("call {i}: failed fast, breaker open for another {retry_in:?}")
            }
            Err(e) => println!("call {i}: {e}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    match ask().await {
        Ok(r) => println!(
            "probe after the break: {} (breaker closed)",
            r.content.unwrap_or_default()
        ),
        Err(e) => println!("probe after the break failed: {e}"),
    }
}
