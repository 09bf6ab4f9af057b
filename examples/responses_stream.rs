//! A Responses API stream: `POST /v1/responses` with `stream: true`, read as typed, numbered
//! events (`response.created`, `response.output_text.delta`, …, `response.completed`) with `?`
//! — a cut, a stall or a failed response ends the stream with one `Err`, never silently — then
//! the stored response fetched back by its id. Last, a background response whose stream is cut
//! mid-way (staged on the fake server): the client resumes it from its last numbered event —
//! the text arrives whole, once.
//!
//! ```text
//! cargo run --example responses_stream
//! VLLM_BASE_URL=http://localhost:8000/v1 VLLM_MODEL=… cargo run --example responses_stream
//! ```

use std::io::Write;

use futures::TryStreamExt;
use vllm_client::{ResponseStreamEvent, VllmClient, VllmError};

mod support;

#[tokio::main]
async fn main() -> Result<(), VllmError> {
    let target = support::target();
    let client = VllmClient::builder().base_url(&target.base_url).build();

    let mut stream = client
        .responses()
        .create()
        .model(&target.model)
        .instructions("Answer in one sentence.")
        .input("Why is the sky blue?")
        .max_output_tokens(128)
        .send_stream()
        .await?;
    let mut id = None;
    while let Some(event) = stream.try_next().await? {
        match event {
            ResponseStreamEvent::Created { response, .. } => id = Some(response.id),
            ResponseStreamEvent::OutputTextDelta { delta, .. } => {
                print!("{delta}");
                let _ = std::io::stdout().flush();
            }
            ResponseStreamEvent::Completed { response, .. } => {
                let usage = response.usage.unwrap_or_default();
                println!(
                    "\n[completed: {} input, {} output tokens; last event #{:?}]",
                    usage.input_tokens,
                    usage.output_tokens,
                    stream.cursor().last_sequence_number
                );
            }
            ResponseStreamEvent::Incomplete { response, .. } => {
                println!("\n[incomplete: {:?}]", response.incomplete_reason);
            }
            _ => {}
        }
    }
    // The server stored it (`store` is vLLM's default): fetch it back.
    if let Some(id) = id {
        let stored = client.responses().retrieve(&id).await?;
        println!("retrieved {id}: {:?}", stored.status);
    }

    // A background response (`background` needs `store`): the server keeps its events, so a
    // stream cut after its first tokens resumes where it stopped (`resume_streams`, on by
    // default for background responses). On the fake server the first read is cut.
    if let Some(fake) = &target.fake {
        fake.push_for(
            "/v1/responses",
            vllm_testkit::server::Reply::generate()
                .token_delay(std::time::Duration::from_millis(30))
                .cut_after_tokens(3),
        );
    }
    let mut stream = client
        .responses()
        .create()
        .model(&target.model)
        .input("Tell me a short story.")
        .background(true)
        .store(true)
        .send_stream()
        .await?;
    while let Some(event) = stream.try_next().await? {
        if let ResponseStreamEvent::OutputTextDelta { delta, .. } = event {
            print!("{delta}");
            let _ = std::io::stdout().flush();
        }
    }
    println!("\n[background stream read whole]");
    Ok(())
}
