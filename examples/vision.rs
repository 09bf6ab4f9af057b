//! A vision message: text and an image in one user turn, the image sent inline as a `data:`
//! URL (or by `https://` URL) with typed content parts — the JSON vLLM's multimodal models
//! read, without writing it by hand.
//!
//! ```text
//! cargo run --example vision
//! VLLM_BASE_URL=http://localhost:8000/v1 VLLM_MODEL=Qwen/Qwen2.5-VL-3B-Instruct IMAGE=cat.png cargo run --example vision
//! ```

use vllm_client::{ContentPart, Message, VllmClient, VllmError};

mod support;

/// A 1×1 red PNG, when no `IMAGE` is given.
const RED_PIXEL: [u8; 69] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

#[tokio::main]
async fn main() -> Result<(), VllmError> {
    let target = support::target();
    let client = VllmClient::builder().base_url(&target.base_url).build();

    let image = match std::env::var("IMAGE") {
        Ok(path) => std::fs::read(&path)
            .map_err(|e| VllmError::InvalidRequest(format!("cannot read {path}: {e}")))?,
        Err(_) => RED_PIXEL.to_vec(),
    };
    let messages = vec![
        Message::system("Describe images in one sentence."),
        Message::user(vec![
            ContentPart::text("What is in this picture?"),
            ContentPart::image_data("image/png", &image),
        ]),
    ];
    let response = client
        .chat
        .completions()
        .create()
        .model(&target.model)
        .messages(messages)
        .max_tokens(64)
        .send()
        .await?;
    println!("{}", response.content.unwrap_or_default());
    Ok(())
}
