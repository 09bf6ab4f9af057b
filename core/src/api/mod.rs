//! Wire types for every endpoint of vLLM's OpenAI-compatible server.

mod common;

pub use common::{
    CompletionTokensDetails, FunctionCall, PromptTokensDetails, ToolCall, ToolCallDelta, Usage,
};
