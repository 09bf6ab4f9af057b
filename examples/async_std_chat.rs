//! A chat completion, then a streamed one, with the async-std client (surf).
//!
//! ```text
//! cargo run -p vllm-client-suite --example async_std_chat  # against a built-in fake server
//! VLLM_BASE_URL=http://localhost:8000/v1 VLLM_MODEL=Qwen/Qwen2.5-7B-Instruct cargo run -p vllm-client-suite --example async_std_chat
//! ```
//!
//! In an application, enable the facade's `async-std` feature and write
//! `vllm_client::async_std::VllmClient`: the same type as `vllm_client_async_std::VllmClient`
//! used here (so that the example runs without extra flags).

use std::io::Write;

use futures::StreamExt;
use vllm_client::{json, StreamEvent, VllmError};
use vllm_client_async_std::VllmClient;
use vllm_testkit::server::FakeServer;

fn main() -> Result<(), VllmError> {
    async_std::task::block_on(run())
}

async fn run() -> Result<(), VllmError> {
    // With no server given, start the testkit's fake vLLM server in this process.
    let (base_url, _fake) = match std::env::var("VLLM_BASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = FakeServer::start();
            eprintln!(
                "VLLM_BASE_URL not set: using a fake vLLM server at {}",
                server.base_url()
            );
            (server.base_url(), Some(server))
        }
    };
    let model = std::env::var("VLLM_MODEL").unwrap_or_else(|_| "fake/vllm-model".into());
    let client = VllmClient::new(&base_url).timeout_secs(120);

    let response = client
        .chat
        .completions()
        .create()
        .model(&model)
        .messages(json!([{"role": "user", "content": "Hello from async-std!"}]))
        .send()
        .await?;
    println!("chat: {}", response.content.unwrap_or_default());

    let mut stream = client
        .chat
        .completions()
        .create()
        .model(&model)
        .messages(json!([{"role": "user", "content": "Tell me a short story"}]))
        .send_stream()
        .await?;
    print!("stream: ");
    while let Some(event) = stream.next().await {
        match event {
            StreamEvent::Content(text) => {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
            StreamEvent::Done => break,
            StreamEvent::Error(e) => return Err(e),
            _ => {}
        }
    }
    println!();
    Ok(())
}
