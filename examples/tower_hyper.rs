//! The client over a tower service: hyper-util's HTTP client with a `map_request` layer (the
//! body as `Full<Bytes>`), as a Rust service would build its HTTP stack. Every retry,
//! timeout, breaker and stream decision is still the client's.
//!
//! ```text
//! cargo run -p vllm-client-suite --example tower_hyper
//! VLLM_BASE_URL=http://localhost:8000/v1 cargo run -p vllm-client-suite --example tower_hyper
//! ```
//!
//! For `https`, build the hyper-util client on a TLS connector (e.g. `hyper-rustls`).

use std::io::Write;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::ServiceBuilder;
use vllm_client::{json, StreamEvent, StreamExt, VllmError};

mod support;

#[tokio::main]
async fn main() -> Result<(), VllmError> {
    let target = support::target();

    // Your stack: any layers (tracing, auth, proxies) in front of hyper-util's client. No
    // retry or timeout layer: the client's own are enforced on top.
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let service = ServiceBuilder::new()
        .map_request(|request: http::Request<Bytes>| request.map(Full::new))
        .service(hyper);

    let mut builder = vllm_client::tower::VllmClient::builder()
        .base_url(&target.base_url)
        .timeout_secs(120)
        .http_client(service);
    if let Ok(key) = std::env::var("VLLM_API_KEY") {
        builder = builder.api_key(key);
    }
    let client = builder.build();

    let model = match target.model.as_str() {
        m if !m.trim().is_empty() => m.to_owned(),
        _ => client
            .models()
            .await?
            .data
            .first()
            .map(|m| m.id.clone())
            .ok_or_else(|| VllmError::InvalidRequest("the server lists no models".into()))?,
    };

    let answer = client
        .chat
        .completions()
        .create()
        .model(&model)
        .messages(json!([{"role": "user", "content": "Say hello in five words."}]))
        .max_tokens(64)
        .send()
        .await?;
    println!(
        "chat over tower + hyper-util: {}",
        answer.content.unwrap_or_default()
    );

    let mut stream = client
        .chat
        .completions()
        .create()
        .model(&model)
        .messages(json!([{"role": "user", "content": "Count to five."}]))
        .max_tokens(64)
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
