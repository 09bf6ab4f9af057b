//! Wire types for every endpoint of vLLM's OpenAI-compatible server.

mod chat;
mod common;
mod completions;
mod other;
mod params;

pub use chat::{ChatChoice, ChatCompletionRequest, ChatCompletionResponse, IntoMessages, Message};
pub use common::{
    CompletionTokensDetails, FunctionCall, PromptTokensDetails, ToolCall, ToolCallDelta, Usage,
};
pub use completions::{CompletionChoice, CompletionRequest, CompletionResponse};
pub use other::{
    DetokenizeRequest, DetokenizeResponse, Embedding, EmbeddingRequest, EmbeddingResponse, Model,
    ModelList, TokenizeRequest, TokenizeResponse, Version,
};
pub use params::{SamplingParams, StreamOptions};
