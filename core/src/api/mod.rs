//! Wire types for every endpoint of vLLM's OpenAI-compatible server.

mod audio;
pub mod base64;
mod chat;
mod chunk;
mod common;
mod completions;
mod messages;
mod multipart;
mod other;
mod params;
mod pooling;
mod responses;
mod scoring;

pub use audio::{
    AudioRequest, LoadLoraAdapterRequest, Transcription, TranscriptionSegment, TranscriptionWord,
    UnloadLoraAdapterRequest,
};
pub use chat::{ChatChoice, ChatCompletionRequest, ChatCompletionResponse, IntoMessages};
pub use chunk::{
    ChoiceLogprobs, Chunk, ChunkChoice, ChunkDelta, FunctionCallChunk, TokenLogprob, ToolCallChunk,
    TopLogprob,
};
pub use common::{
    CompletionTokensDetails, FunctionCall, PromptTokensDetails, ToolCall, ToolCallDelta, Usage,
};
pub use completions::{CompletionChoice, CompletionRequest, CompletionResponse};
pub use messages::{
    data_url, Content, ContentPart, FunctionDefinition, ImageUrl, InputAudio, IntoTools, MediaUrl,
    Message, ResponseFormat, Role, Tool, ToolChoice,
};
pub use multipart::Multipart;
pub use other::{
    DetokenizeRequest, DetokenizeResponse, Embedding, EmbeddingRequest, EmbeddingResponse, Model,
    ModelList, TokenizeRequest, TokenizeResponse, Version,
};
pub use params::{SamplingParams, StreamOptions};
pub use pooling::{
    Classification, ClassifyRequest, ClassifyResponse, PoolingData, PoolingOutput, PoolingRequest,
    PoolingResponse,
};
pub use responses::{
    InputItem, OutputContent, OutputItem, Response, ResponseStreamEvent, ResponseUsage,
    ResponsesRequest,
};
pub use scoring::{
    RerankApi, RerankDocument, RerankRequest, RerankResponse, RerankResult, ScoreData,
    ScoreRequest, ScoreResponse,
};
