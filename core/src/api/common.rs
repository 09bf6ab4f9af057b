//! Types shared by several endpoints: token usage, tool calls, finish reasons.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Token counts of a call. vLLM sends them in non-streamed responses, and in a stream when the
/// request asks for `stream_options.include_usage` (a final chunk with `choices: []`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Prompt plus completion.
    #[serde(default)]
    pub total_tokens: u64,
    /// Details of the prompt tokens (e.g. `cached_tokens`), when the server sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Details of the completion tokens (e.g. `reasoning_tokens`), when the server sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

/// Details of the prompt tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PromptTokensDetails {
    /// Prompt tokens served from the prefix cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
}

/// Details of the completion tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CompletionTokensDetails {
    /// Tokens spent on reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

/// A complete tool call: in a non-streamed message, or assembled from a stream's fragments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The position of this call among the choice's tool calls (not sent back in an
    /// assistant message).
    #[serde(default, skip_serializing)]
    pub index: u32,
    /// The call's id (`chatcmpl-tool-…`), echoed back in the `tool` message that answers it.
    #[serde(default)]
    pub id: String,
    /// Always `function` today.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_owned()
}

impl ToolCall {
    /// The arguments parsed as JSON.
    pub fn arguments_json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.function.arguments)
    }
}

/// The function a tool call names and its arguments, a JSON document as text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    #[serde(default)]
    pub name: String,
    /// The arguments, as the JSON text the model produced (possibly invalid JSON).
    #[serde(default)]
    pub arguments: String,
}

/// A fragment of a streamed tool call. The first fragment of an index carries `id` and `name`;
/// later ones carry only pieces of `arguments`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolCallDelta {
    /// The choice this fragment belongs to.
    pub choice: u32,
    /// Which tool call of the choice it extends.
    pub index: u32,
    /// The call's id, on its first fragment.
    pub id: Option<String>,
    /// The function's name, on its first fragment.
    pub name: Option<String>,
    /// A piece of the arguments text (may be empty).
    pub arguments: String,
}

impl ToolCallDelta {
    /// A fragment.
    pub fn new(
        choice: u32,
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    ) -> Self {
        ToolCallDelta {
            choice,
            index,
            id,
            name,
            arguments,
        }
    }
}
