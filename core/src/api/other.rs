//! The smaller endpoints: models, embeddings, tokenize, detokenize, health and version.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::Usage;

/// `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ModelList {
    /// The models the server serves.
    #[serde(default)]
    pub data: Vec<Model>,
}

/// One served model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Model {
    /// The name to pass as `model`.
    pub id: String,
    /// Who owns it.
    #[serde(default)]
    pub owned_by: Option<String>,
    /// The context length, when the server says (vLLM's `max_model_len`).
    #[serde(default)]
    pub max_model_len: Option<u64>,
    /// Everything the server sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /v1/embeddings`.
///
/// With `encoding_format: "base64"` the server sends each vector as base64 of its float32
/// values (little-endian): a third of the bytes of JSON numbers, and faster to read. The
/// answer is decoded into the same [`Embedding::embedding`] `Vec<f32>` either way, so the
/// choice is only about the wire ([`EmbeddingRequest::base64`]).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct EmbeddingRequest {
    /// The model.
    pub model: String,
    /// A string or an array of strings (or token ids).
    pub input: Value,
    /// `float` (default) or `base64` (see [`base64`](Self::base64)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    /// Truncate to this many dimensions (Matryoshka models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// Free-form fields merged in last.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EmbeddingRequest {
    /// An embedding request for `input` (a string or an array of strings).
    pub fn new(model: impl Into<String>, input: impl Into<Value>) -> Self {
        EmbeddingRequest {
            model: model.into(),
            input: input.into(),
            ..Default::default()
        }
    }

    /// Asks for the vectors as base64 (`encoding_format: "base64"`); they are decoded into
    /// the same `Vec<f32>`.
    pub fn base64(mut self) -> Self {
        self.encoding_format = Some("base64".to_owned());
        self
    }

    /// Truncates the vectors to `n` dimensions (Matryoshka models; others answer 400).
    pub fn dimensions(mut self, n: u32) -> Self {
        self.dimensions = Some(n);
        self
    }

    /// A field not typed here, merged into the body last.
    pub fn extra(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }
}

/// The answer of `/v1/embeddings`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct EmbeddingResponse {
    /// One embedding per input, in order.
    pub data: Vec<Embedding>,
    /// The model.
    #[serde(default)]
    pub model: String,
    /// Token counts.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// One embedding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Embedding {
    /// Which input it belongs to.
    #[serde(default)]
    pub index: u32,
    /// The vector: JSON numbers, or base64 of little-endian float32 values
    /// (`encoding_format: "base64"`), decoded.
    #[serde(deserialize_with = "floats_or_base64")]
    pub embedding: Vec<f32>,
}

/// A vector sent as JSON numbers or as base64 of little-endian float32 values.
pub(crate) fn floats_or_base64<'de, D>(d: D) -> Result<Vec<f32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Floats(Vec<f32>),
        Base64(String),
    }
    match Wire::deserialize(d)? {
        Wire::Floats(v) => Ok(v),
        Wire::Base64(s) => super::base64::decode_f32_le(&s).ok_or_else(|| {
            serde::de::Error::custom(
                "the embedding is a string, but not base64 of little-endian float32 values",
            )
        }),
    }
}

/// `POST /tokenize` (at the server's root, not under `/v1`).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct TokenizeRequest {
    /// The model whose tokenizer to use.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// The text.
    pub prompt: String,
    /// Whether to add special tokens (BOS, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_special_tokens: Option<bool>,
}

impl TokenizeRequest {
    /// Tokenize `prompt` with `model`'s tokenizer.
    pub fn new(model: impl Into<String>, prompt: impl Into<String>) -> Self {
        TokenizeRequest {
            model: model.into(),
            prompt: prompt.into(),
            add_special_tokens: None,
        }
    }
}

/// The answer of `/tokenize`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct TokenizeResponse {
    /// The token ids.
    pub tokens: Vec<u32>,
    /// How many.
    #[serde(default)]
    pub count: u64,
    /// The model's context length.
    #[serde(default)]
    pub max_model_len: Option<u64>,
}

/// `POST /detokenize`.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct DetokenizeRequest {
    /// The model whose tokenizer to use.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// The token ids.
    pub tokens: Vec<u32>,
}

impl DetokenizeRequest {
    /// Detokenize `tokens` with `model`'s tokenizer.
    pub fn new(model: impl Into<String>, tokens: Vec<u32>) -> Self {
        DetokenizeRequest {
            model: model.into(),
            tokens,
        }
    }
}

/// The answer of `/detokenize`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct DetokenizeResponse {
    /// The text.
    pub prompt: String,
}

/// The answer of `/version`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Version {
    /// The server's version string.
    pub version: String,
}
