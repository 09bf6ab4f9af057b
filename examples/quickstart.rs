//! Quickstart: a chat, a streamed answer and the token usage.
//!
//! With `VLLM_BASE_URL` set (and `VLLM_API_KEY`, `VLLM_MODEL` when needed) it talks to that
//! server — vLLM, LiteLLM, llama.cpp's server, any OpenAI-compatible one. Otherwise it starts
//! the built-in fake vLLM server on 127.0.0.1 and says so.
//!
//! ```text
//! cargo run --example quickstart
//! VLLM_BASE_URL=http://localhost:8000/v1 cargo run --example quickstart
//! ```

use std::io::Write;

use vllm_client::{json, StreamEvent, StreamExt, VllmClient, VllmError};

mod support;

#[tokio::main]
async fn main() -> Result<(), VllmError> {
    // Keeps the fake server alive for the whole run when we use it.
    let target = support::target();

    let mut builder = VllmClient::builder()
        .base_url(&target.base_url)
        .timeout_secs(120);
    if let Ok(key) = std::env::var("VLLM_API_KEY") {
        builder = builder.api_key(key);
    }
    let client = builder.build();

    let model = match target.model.as_str() {
        m if !m.trim().is_empty() => m.to_owned(),
        _ => {
            let models = client.models().await?;
            models
                .data
                .first()
                .map(|m| m.id.clone())
                .ok_or_else(|| VllmError::InvalidRequest("the server lists no models".into()))?
        }
    };
    println!("model: {model}");

    // 1. A chat: retried on 429/5xx/timeouts with jittered backoff and Retry-After, built in.
    let response = client
        .chat
        .completions()
        .create()
        .model(&model)
        .messages(json!([
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Say hello in five words."}
        ]))
        .max_tokens(64)
        .send()
        .await?;
    println!("chat: {}", response.content.as_deref().unwrap_or_default());

    // 2. A streamed answer, with usage at the end.
    let mut stream = client
        .chat
        .completions()
        .create()
        .model(&model)
        .messages(json!([{"role": "user", "content": "Count from one to ten in words."}]))
        .max_tokens(64)
        .include_usage(true)
        .send_stream()
        .await?;
    print!("stream: ");
    let mut usage = None;
    while let Some(event) = stream.next().await {
        match event {
            StreamEvent::Content(text) => {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
            StreamEvent::Usage(u) => usage = Some(u),
            StreamEvent::Done => break,
            StreamEvent::Error(e) => return Err(e),
            _ => {}
        }
    }
    println!();
    match usage.or(response.usage) {
        Some(u) => println!(
            "usage: {} prompt + {} completion = {} tokens",
            u.prompt_tokens, u.completion_tokens, u.total_tokens
        ),
        None => println!("usage: the server sent none"),
    }
    Ok(())
}
