//! A tool-calling loop: typed tool definitions, the model's tool calls turned into the next
//! assistant turn with `to_message()`, each call answered with a `tool` message, until the
//! model answers in text. Every turn goes through the client's retries and limits.
//!
//! ```text
//! cargo run --example tool_loop
//! VLLM_BASE_URL=http://localhost:8000/v1 VLLM_MODEL=… cargo run --example tool_loop
//! ```
//!
//! (vLLM needs `--enable-auto-tool-choice --tool-call-parser …` for tool calls.) The built-in
//! fake server calls the first tool for a user's turn and answers a tool's result in text.

use vllm_client::{json, Message, Tool, ToolChoice, VllmClient, VllmError};

mod support;

/// The tool, implemented here.
fn get_weather(city: &str) -> String {
    json!({"city": city, "temperature_c": 21, "sky": "clear"}).to_string()
}

#[tokio::main]
async fn main() -> Result<(), VllmError> {
    let target = support::target();
    let client = VllmClient::builder().base_url(&target.base_url).build();
    let tools = vec![Tool::function(
        "get_weather",
        "The current weather in a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )];
    let mut messages = vec![
        Message::system("Use get_weather for weather questions."),
        Message::user("Paris"),
    ];
    for turn in 1..=4 {
        let response = client
            .chat
            .completions()
            .create()
            .model(&target.model)
            .messages(messages.clone())
            .tools(tools.clone())
            .tool_choice(ToolChoice::Auto)
            .send()
            .await?;
        if response.tool_calls.is_empty() {
            println!(
                "answer after {turn} turn(s): {}",
                response.content.unwrap_or_default()
            );
            return Ok(());
        }
        // The assistant's turn, tool calls included, then one answer per call.
        messages.push(response.to_message());
        for call in &response.tool_calls {
            let args = call.arguments_json().map_err(|e| {
                VllmError::decode(
                    format!("tool arguments are not JSON: {e}"),
                    call.function.arguments.as_bytes(),
                )
            })?;
            let city = args["city"].as_str().unwrap_or("nowhere");
            println!("the model calls {}({city})", call.function.name);
            messages.push(Message::tool(&call.id, get_weather(city)));
        }
    }
    Err(VllmError::InvalidRequest("no answer after 4 turns".into()))
}
