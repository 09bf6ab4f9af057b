//! Shared by the examples: talk to `VLLM_BASE_URL` when it is set, else to the built-in fake
//! vLLM server (which the examples also use to stage the failures they demonstrate).
#![allow(dead_code)]

use vllm_testkit::server::FakeServer;

/// Where to send requests, and the fake server when we started one (keep it alive).
pub struct Target {
    /// The base URL.
    pub base_url: String,
    /// The fake server, when `VLLM_BASE_URL` is not set.
    pub fake: Option<FakeServer>,
    /// The model to ask for.
    pub model: String,
}

/// Reads `VLLM_BASE_URL` / `VLLM_MODEL`, or starts the fake server and says so in one line.
pub fn target() -> Target {
    match std::env::var("VLLM_BASE_URL") {
        Ok(url) if !url.trim().is_empty() => Target {
            base_url: url,
            fake: None,
            model: std::env::var("VLLM_MODEL").unwrap_or_default(),
        },
        _ => {
            let server = FakeServer::start();
            println!(
                "VLLM_BASE_URL is not set: using the built-in fake vLLM server at {}",
                server.base_url()
            );
            Target {
                base_url: server.base_url(),
                fake: Some(server),
                model: "fake/vllm-model".to_owned(),
            }
        }
    }
}
