//! `POST /v1/completions`: the legacy text completion endpoint.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::Usage;
use super::params::{impl_to_body, SamplingParams};
use crate::error::VllmError;

/// The body of a completion request.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct CompletionRequest {
    /// The model to use.
    pub model: String,
    /// The prompt: a string, an array of strings, or token ids.
    pub prompt: Value,
    /// Sampling and vLLM extras.
    #[serde(flatten)]
    pub sampling: SamplingParams,
    /// Echo the prompt in the output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
    /// Text appended after the completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Number of log probabilities per token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// Free-form fields merged into the body last.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl_to_body!(CompletionRequest);

impl CompletionRequest {
    /// Whether the request asks for a stream.
    pub fn is_stream(&self) -> bool {
        self.sampling.stream == Some(true)
    }
}

/// A completion, with the first choice's text lifted to the top.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CompletionResponse {
    /// The completion's id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// The text of the first choice.
    pub content: Option<String>,
    /// Why the first choice stopped.
    pub finish_reason: Option<String>,
    /// Every choice's text, by index.
    pub choices: Vec<CompletionChoice>,
    /// Token counts.
    pub usage: Option<Usage>,
    /// The response as received.
    pub raw: Value,
}

/// One choice of a completion.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct CompletionChoice {
    /// Its index.
    #[serde(default)]
    pub index: u32,
    /// The text.
    #[serde(default)]
    pub text: String,
    /// Why it stopped.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    choices: Vec<CompletionChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

impl CompletionResponse {
    /// Reads a completion from its JSON. A body of another shape is a decode error.
    pub fn from_json(raw: Value) -> Result<Self, VllmError> {
        let w: Wire = serde_json::from_value(raw.clone()).map_err(|e| {
            VllmError::decode(format!("not a completion: {e}"), raw.to_string().as_bytes())
        })?;
        let first = w
            .choices
            .iter()
            .find(|c| c.index == 0)
            .or(w.choices.first());
        Ok(CompletionResponse {
            id: w.id,
            model: w.model,
            content: first.map(|c| c.text.clone()),
            finish_reason: first.and_then(|c| c.finish_reason.clone()),
            usage: w.usage,
            choices: w.choices,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_completion() {
        let r = CompletionResponse::from_json(json!({"id":"c","model":"m","choices":[{"index":0,"text":"hi","logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})).unwrap();
        assert_eq!(r.content.as_deref(), Some("hi"));
        assert_eq!(r.finish_reason.as_deref(), Some("length"));
        assert_eq!(r.usage.unwrap().total_tokens, 2);
    }

    #[test]
    fn wrong_shape() {
        assert!(CompletionResponse::from_json(json!([1])).is_err());
    }
}
