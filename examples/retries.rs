//! The seed page's "重试策略" (retry strategies) without a single hand-written loop.
//!
//! `send_with_retry`, `retry_with_jitter`, `smart_retry` and `RobustClient::chat` become
//! configuration: which errors to retry (408/429/5xx but not 501, connect errors, timeouts
//! before output), capped exponential backoff with full jitter, `Retry-After` honoured, a
//! retry budget against retry storms. Against the fake server this example stages a 503, a
//! 429 with `retry-after-ms: 300` and a 400, and prints what the client did.
//!
//! ```text
//! cargo run --example retries
//! ```

use std::time::Duration;

use tracing_subscriber::prelude::*;
use vllm_client::{json, Jitter, VllmClient, VllmError};
use vllm_testkit::server::Reply;

mod support;

#[tokio::main]
async fn main() -> Result<(), VllmError> {
    // Logs each retry (attempt, delay, cause), as the page recommends.
    let filter: tracing_subscriber::filter::Targets =
        "vllm_client_tokio=info".parse().expect("a filter");
    tracing_subscriber::fmt()
        .with_target(false)
        .finish()
        .with(filter)
        .init();
    let target = support::target();

    let client = VllmClient::builder()
        .base_url(&target.base_url)
        .timeout_secs(60)
        .max_retries(3)
        .exponential_backoff(
            Duration::from_millis(100),
            Duration::from_secs(10),
            Jitter::Full,
        )
        .max_retry_after(Duration::from_secs(30))
        .build();

    if let Some(fake) = &target.fake {
        fake.push(Reply::vllm_error(503, "the engine is restarting"));
        fake.push(Reply::vllm_error(429, "slow down").header("retry-after-ms", "300"));
    }
    let reported = client
        .chat
        .completions()
        .create()
        .model(&target.model)
        .messages(json!([{"role": "user", "content": "Hello after two failures"}]))
        .send_with_report()
        .await?;
    let answer = reported.result?;
    println!("answer: {}", answer.content.unwrap_or_default());
    println!("attempts: {}", reported.report.attempts);
    for r in &reported.report.retries {
        println!(
            "  attempt {} failed ({}); waited {:?}{}",
            r.attempt,
            r.cause,
            r.delay,
            if r.hinted {
                " as the server asked"
            } else {
                " (jittered backoff)"
            }
        );
    }

    // A client error is not retried: one request, and the error says what was wrong.
    if let Some(fake) = &target.fake {
        fake.push(Reply::vllm_error(400, "temperature must be in [0, 2]"));
        let e = client
            .chat
            .completions()
            .create()
            .model(&target.model)
            .messages(json!([{"role": "user", "content": "x"}]))
            .temperature(9.0)
            .send()
            .await
            .unwrap_err();
        println!("not retried: {e} (retryable: {})", e.is_retryable());
    }
    Ok(())
}
