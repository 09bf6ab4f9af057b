//! A chat completion, then a streamed one, with the tokio client.
//!
//! ```text
//! cargo run --example tokio_chat                                   # against a built-in fake server
//! VLLM_BASE_URL=http://localhost:8000/v1 VLLM_MODEL=Qwen/Qwen2.5-7B-Instruct cargo run --example tokio_chat
//! ```

use std::io::Write;

use futures::StreamExt;
use vllm_client::{json, StreamEvent, VllmClient, VllmError};
use vllm_testkit::server::FakeServer;

#[tokio::main]
async fn main() -> Result<(), VllmError> {
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
        .messages(json!([{"role": "user", "content": "Hello from tokio!"}]))
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
