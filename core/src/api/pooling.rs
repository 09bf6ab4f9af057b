//! Classification (`POST /classify`) and raw pooling (`POST /pooling`), vLLM's endpoints for
//! classifier and reward models and for any pooling model's hidden states.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::Usage;
use super::params::impl_to_body;

/// The body of `POST /classify`.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ClassifyRequest {
    /// The model (a sequence classifier).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// A string or a list of strings.
    pub input: Value,
    /// Truncate each input to this many tokens (-1: the model's maximum).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate_prompt_tokens: Option<i64>,
    /// Free-form fields merged into the body last.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl_to_body!(ClassifyRequest);

impl ClassifyRequest {
    /// Classifies `input` (a string or a list of strings) with `model`.
    pub fn new(model: impl Into<String>, input: impl Into<Value>) -> Self {
        ClassifyRequest {
            model: model.into(),
            input: input.into(),
            ..Default::default()
        }
    }
}

/// The answer of `/classify`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ClassifyResponse {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// The model.
    #[serde(default)]
    pub model: String,
    /// One result per input, by index.
    pub data: Vec<Classification>,
    /// Token counts.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// The classification of one input.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Classification {
    /// The input's index.
    #[serde(default)]
    pub index: usize,
    /// The most probable label, when the model names its labels.
    #[serde(default)]
    pub label: Option<String>,
    /// The probability of each class.
    #[serde(default)]
    pub probs: Vec<f64>,
    /// How many classes.
    #[serde(default)]
    pub num_classes: usize,
}

/// The body of `POST /pooling`: a pooling model's output for each input (`input`, or a chat's
/// `messages` through [`extra`](Self::extra)).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct PoolingRequest {
    /// The model.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// A string or a list of strings (or token ids).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub input: Value,
    /// The pooling task (`embed`, `classify`, `token_embed`, `token_classify`, …) when the
    /// model supports several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// `float` (default) or `base64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    /// Truncate each input to this many tokens (-1: the model's maximum).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate_prompt_tokens: Option<i64>,
    /// Free-form fields merged into the body last.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl_to_body!(PoolingRequest);

impl PoolingRequest {
    /// Pools `input` (a string or a list of strings) with `model`.
    pub fn new(model: impl Into<String>, input: impl Into<Value>) -> Self {
        PoolingRequest {
            model: model.into(),
            input: input.into(),
            ..Default::default()
        }
    }
}

/// The answer of `/pooling`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PoolingResponse {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// The model.
    #[serde(default)]
    pub model: String,
    /// One output per input, by index.
    pub data: Vec<PoolingData>,
    /// Token counts.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// The output for one input.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PoolingData {
    /// The input's index.
    #[serde(default)]
    pub index: usize,
    /// A vector, a matrix (one row per token), or base64 of little-endian float32 values.
    pub data: PoolingOutput,
}

/// A pooling model's output as the server sent it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum PoolingOutput {
    /// One vector.
    Vector(Vec<f32>),
    /// One row per token.
    Matrix(Vec<Vec<f32>>),
    /// Base64 of little-endian float32 values (`encoding_format: "base64"`), flattened.
    Base64(String),
}

impl PoolingOutput {
    /// Every value, row after row (base64 decoded). `None` for base64 that is not float32
    /// values.
    pub fn floats(&self) -> Option<Vec<f32>> {
        match self {
            PoolingOutput::Vector(v) => Some(v.clone()),
            PoolingOutput::Matrix(m) => Some(m.iter().flatten().copied().collect()),
            PoolingOutput::Base64(s) => super::base64::decode_f32_le(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classify_and_pooling_answers() {
        let c: ClassifyResponse = serde_json::from_value(json!({
            "id": "classify-1", "object": "list", "created": 1, "model": "m",
            "data": [{"index": 0, "label": "Positive", "probs": [0.1, 0.9], "num_classes": 2}],
            "usage": {"prompt_tokens": 3, "total_tokens": 3, "completion_tokens": 0}
        }))
        .unwrap();
        assert_eq!(c.data[0].label.as_deref(), Some("Positive"));
        assert_eq!(c.data[0].probs, vec![0.1, 0.9]);
        let p: PoolingResponse = serde_json::from_value(json!({
            "id": "pool-1", "model": "m", "data": [
                {"index": 0, "object": "pooling", "data": [1.0, 2.0]},
                {"index": 1, "object": "pooling", "data": [[1.0], [2.0]]},
                {"index": 2, "object": "pooling", "data": super::super::base64::encode(&1.5f32.to_le_bytes())}
            ]
        }))
        .unwrap();
        assert_eq!(p.data[0].data.floats().unwrap(), vec![1.0, 2.0]);
        assert!(matches!(p.data[1].data, PoolingOutput::Matrix(_)));
        assert_eq!(p.data[1].data.floats().unwrap(), vec![1.0, 2.0]);
        assert_eq!(p.data[2].data.floats().unwrap(), vec![1.5]);
    }
}
