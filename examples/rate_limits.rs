//! The seed page's "速率限制" (rate limiting) without a semaphore of your own: a concurrency
//! limit (a stream holds its slot until it ends or is dropped, because a vLLM slot is busy
//! until then) and a GCRA request-rate limit that waits exactly until the next slot.
//!
//! ```text
//! cargo run --example rate_limits
//! ```

use std::time::{Duration, Instant};

use vllm_client::{json, VllmClient};

mod support;

#[tokio::main]
async fn main() {
    let target = support::target();
    let client = VllmClient::builder()
        .base_url(&target.base_url)
        .max_concurrency(2)
        .rate_limit(5, Duration::from_secs(1), 2) // 5 requests/s, bursts of 2
        .build();
    let start = Instant::now();
    let calls = (0..6).map(|i| {
        let client = client.clone();
        let model = target.model.clone();
        tokio::spawn(async move {
            let r = client
                .chat
                .completions()
                .create()
                .model(model)
                .messages(json!([{"role": "user", "content": format!("request {i}")}]))
                .send()
                .await;
            (i, r.map(|r| r.content.unwrap_or_default()))
        })
    });
    for call in calls {
        let (i, r) = call.await.expect("task");
        println!("{:>6.0?} request {i}: {:?}", start.elapsed(), r);
    }
}
