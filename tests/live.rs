//! The non-fault checks against a real server: chat, stream, completions, models, usage and a
//! 4xx error. They run when `VLLM_BASE_URL` is set (with `VLLM_API_KEY` and `VLLM_MODEL` when
//! needed) and print `SKIPPED` otherwise:
//!
//! ```text
//! VLLM_BASE_URL=http://localhost:8000/v1 cargo test --test live -- --nocapture
//! ```

use futures::StreamExt;
use vllm_client::{json, StreamEvent, VllmClient};

struct Live {
    client: VllmClient,
    model: String,
}

async fn live(test: &str) -> Option<Live> {
    let url = match std::env::var("VLLM_BASE_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            println!("SKIPPED {test}: VLLM_BASE_URL is not set");
            return None;
        }
    };
    let mut b = VllmClient::builder().base_url(url).timeout_secs(300);
    if let Ok(k) = std::env::var("VLLM_API_KEY") {
        b = b.api_key(k);
    }
    let client = b.build();
    let model = match std::env::var("VLLM_MODEL") {
        Ok(m) if !m.trim().is_empty() => m,
        _ => client.models().await.expect("GET /v1/models").data[0]
            .id
            .clone(),
    };
    Some(Live { client, model })
}

#[tokio::test]
async fn live_models() {
    let Some(l) = live("live_models").await else {
        return;
    };
    let models = l.client.models().await.unwrap();
    assert!(models.data.iter().any(|m| m.id == l.model));
}

#[tokio::test]
async fn live_chat_with_usage() {
    let Some(l) = live("live_chat_with_usage").await else {
        return;
    };
    let r = l
        .client
        .chat
        .completions()
        .create()
        .model(&l.model)
        .messages(json!([{"role": "user", "content": "Reply with the word: pong"}]))
        .max_tokens(32)
        .temperature(0.0)
        .send()
        .await
        .unwrap();
    assert!(r.content.is_some() || r.reasoning.is_some());
    let u = r.usage.expect("usage in a non-streamed response");
    assert!(u.prompt_tokens > 0 && u.total_tokens >= u.prompt_tokens);
}

#[tokio::test]
async fn live_stream_ends_with_done_and_usage() {
    let Some(l) = live("live_stream_ends_with_done_and_usage").await else {
        return;
    };
    let events: Vec<StreamEvent> = l
        .client
        .chat
        .completions()
        .create()
        .model(&l.model)
        .messages(json!([{"role": "user", "content": "Count to five."}]))
        .max_tokens(48)
        .include_usage(true)
        .send_stream()
        .await
        .unwrap()
        .collect()
        .await;
    assert!(
        matches!(events.last(), Some(StreamEvent::Done)),
        "{events:?}"
    );
    assert!(events.iter().any(|e| matches!(e, StreamEvent::Usage(_))));
    assert!(events
        .iter()
        .any(|e| matches!(e, StreamEvent::Content(_) | StreamEvent::Reasoning(_))));
}

#[tokio::test]
async fn live_completions() {
    let Some(l) = live("live_completions").await else {
        return;
    };
    let r = l
        .client
        .completions
        .create()
        .model(&l.model)
        .prompt("The capital of France is")
        .max_tokens(8)
        .send()
        .await
        .unwrap();
    assert!(r.content.is_some());
}

#[tokio::test]
async fn live_4xx_error_is_typed() {
    let Some(l) = live("live_4xx_error_is_typed").await else {
        return;
    };
    let e = l
        .client
        .chat
        .completions()
        .create()
        .model("this-model-does-not-exist-vllm-client-test")
        .messages(json!([{"role": "user", "content": "hi"}]))
        .send()
        .await
        .unwrap_err();
    let status = e.status().expect("an HTTP status").as_u16();
    assert!((400..500).contains(&status), "{e}");
    assert!(!e.is_retryable());
}
