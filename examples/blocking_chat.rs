//! A chat completion, then a streamed one, with the blocking client (ureq, no async runtime).
//!
//! ```text
//! cargo run -p vllm-client-suite --example blocking_chat  # against a built-in fake server
//! VLLM_BASE_URL=http://localhost:8000/v1 VLLM_MODEL=Qwen/Qwen2.5-7B-Instruct cargo run -p vllm-client-suite --example blocking_chat
//! ```
//!
//! In an application, enable the facade's `blocking` feature and write
//! `vllm_client::blocking::VllmClient`: the same type as `vllm_client_blocking::VllmClient`
//! used here (so that the example runs without extra flags).

use std::io::Write;
use std::time::Duration;

use vllm_client::{json, StreamEvent, VllmError};
use vllm_client_blocking::VllmClient;
use vllm_testkit::server::FakeServer;

fn main() -> Result<(), VllmError> {
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
    // Every `next()` of a stream returns within the idle timeout (plus a few ms), even when
    // the server stalls.
    let client = VllmClient::builder()
        .base_url(&base_url)
        .timeout_secs(120)
        .idle_timeout(Duration::from_secs(30))
        .build();

    let response = client
        .chat
        .completions()
        .create()
        .model(&model)
        .messages(json!([{"role": "user", "content": "Hello from blocking code!"}]))
        .send()?;
    println!("chat: {}", response.content.unwrap_or_default());

    let stream = client
        .chat
        .completions()
        .create()
        .model(&model)
        .messages(json!([{"role": "user", "content": "Tell me a short story"}]))
        .send_stream()?;
    print!("stream: ");
    for event in stream {
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
