//! The seed page's "流式响应超时" (stream timeouts) without wrapping every `next()` in
//! `tokio::time::timeout`: the client has a time-to-first-token timeout (retried: nothing was
//! shown yet) and an idle timeout between data events (keep-alive comments do not reset it;
//! never retried once text was shown, so nothing is duplicated).
//!
//! ```text
//! cargo run --example stream_timeouts
//! ```

use std::time::Duration;

use futures::StreamExt;
use vllm_client::{json, StreamEvent, VllmClient};
use vllm_testkit::server::Reply;

mod support;

#[tokio::main]
async fn main() {
    let target = support::target();
    let client = VllmClient::builder()
        .base_url(&target.base_url)
        .first_token_timeout(Duration::from_secs(2))
        .idle_timeout(Duration::from_millis(500))
        .build();
    if let Some(fake) = &target.fake {
        // The first attempt queues too long; the retry answers, then stalls mid-stream while
        // sending keep-alive comments.
        fake.push(Reply::generate().delay(Duration::from_secs(5)));
        fake.push(
            Reply::generate()
                .keep_alives_after_tokens(3, 30, Duration::from_millis(100))
                .stall_after_tokens(3, Duration::from_secs(30)),
        );
    }
    let mut stream = match client
        .chat
        .completions()
        .create()
        .model(&target.model)
        .messages(json!([{"role": "user", "content": "a long answer please"}]))
        .send_stream()
        .await
    {
        Ok(s) => s,
        Err(e) => return println!("failed before any output: {e}"),
    };
    print!("stream: ");
    while let Some(event) = stream.next().await {
        match event {
            StreamEvent::Content(t) => print!("{t}"),
            StreamEvent::Done => println!("\n[done]"),
            StreamEvent::Error(e) => println!("\n[ended: {e}; not retried, nothing duplicated]"),
            _ => {}
        }
    }
}
