//! Sampling parameters and vLLM extras shared by chat completions and completions, and the
//! `to_body()` of every request with `extra` fields.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::VllmError;

/// `stream_options`: ask for usage in the stream's last chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StreamOptions {
    /// Send a final chunk with `choices: []` and `usage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Put cumulative usage on every chunk (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuous_usage_stats: Option<bool>,
}

/// Sampling parameters and vLLM extras. Unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SamplingParams {
    /// Whether to stream the answer as server-sent events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Options of the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Keep only the k most likely tokens (vLLM; -1 disables).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    /// Minimum probability relative to the most likely token (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    /// Upper bound of generated tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Lower bound of generated tokens (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tokens: Option<u32>,
    /// Stop strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Value>,
    /// Stop token ids (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_token_ids: Option<Vec<u32>>,
    /// Number of choices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Seed for reproducible sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Penalty on tokens already present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    /// Penalty proportional to a token's frequency so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// Multiplicative repetition penalty (vLLM; 1.0 is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f32>,
    /// Keep generating past end-of-sequence (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_eos: Option<bool>,
    /// Whether special tokens are removed from the output (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_special_tokens: Option<bool>,
    /// Constrain the output: `{"json": schema}`, `{"regex": …}`, `{"choice": […]}` or
    /// `{"grammar": …}` (vLLM ≥ 0.12; replaces the removed `guided_*` fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_outputs: Option<Value>,
    /// Scheduling priority; lower runs earlier when the server uses priority scheduling (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Token id → bias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<Value>,
    /// An id of the end user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A request id the server logs (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Serializes `typed` and merges `extra` over it.
pub(crate) fn body_with_extra<T: Serialize>(
    typed: &T,
    extra: &Map<String, Value>,
) -> Result<Value, VllmError> {
    let mut v = serde_json::to_value(typed)
        .map_err(|e| VllmError::InvalidRequest(format!("cannot serialize the request: {e}")))?;
    if let Value::Object(map) = &mut v {
        for (k, val) in extra {
            map.insert(k.clone(), val.clone());
        }
    }
    Ok(v)
}

/// Gives each request type named (one with an `extra: Map<String, Value>` field) its
/// `to_body()`: the typed fields serialized, then `extra` merged over them.
macro_rules! impl_to_body {
    ($($request:ty),+ $(,)?) => {$(
        impl $request {
            /// The JSON body: typed fields, then `extra` merged over them.
            pub fn to_body(&self) -> Result<serde_json::Value, crate::error::VllmError> {
                crate::api::params::body_with_extra(self, &self.extra)
            }
        }
    )+};
}
pub(crate) use impl_to_body;
