//! The body of `POST /v1/responses` ([`ResponsesRequest`]) and the items of its `input`
//! ([`InputItem`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::OutputItem;
use crate::api::params::impl_to_body;

/// The body of `POST /v1/responses`. Unset fields are not sent; anything not typed here goes
/// through [`extra`](Self::extra), merged last.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ResponsesRequest {
    /// The model.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// A string, or a list of input items (messages, function call outputs, earlier output
    /// items).
    pub input: Value,
    /// A system (developer) message put first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Upper bound of generated tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Keep only the k most likely tokens (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    /// Tools the model may call (`{"type": "function", "name", "parameters", …}`, flat).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// `auto`, `none`, `required`, or a named function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Whether several tools may be called in one turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// The response this one continues (the server must have stored it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    /// Whether the server keeps the response for `GET /v1/responses/{id}` (vLLM's default:
    /// true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Run in the background: the answer is the response `queued`; poll it with
    /// `retrieve`, stop it with `cancel` (needs `store`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
    /// Whether to stream (set by `send_stream()`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// `{"effort": "low" | "medium" | "high"}` for reasoning models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Value>,
    /// `{"format": {"type": "json_schema", …}}` for structured output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
    /// Extra output to include (`"message.output_text.logprobs"`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// Alternatives per position with logprobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// Key-value pairs stored with the response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// An id of the end user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The response's id (vLLM: `request_id`, default `resp_<uuid>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Scheduling priority (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Free-form fields merged into the body last.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl_to_body!(ResponsesRequest);

/// An item of a Responses request's `input`, for callers who prefer types to `json!`.
///
/// ```
/// use vllm_client_core::api::InputItem;
///
/// let items = vec![
///     InputItem::message("system", "Be brief."),
///     InputItem::message("user", "What is the weather in Paris?"),
///     InputItem::function_call_output("call_1", r#"{"temp": 21}"#),
/// ];
/// let v = serde_json::to_value(&items).unwrap();
/// assert_eq!(v[2]["type"], "function_call_output");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum InputItem {
    /// A message: `{"role", "content"}` (content a string, or a list of content parts).
    Message {
        /// `user`, `assistant`, `system` or `developer`.
        role: String,
        /// A string, or parts (`{"type": "input_text", "text"}`, `{"type": "input_image",
        /// "image_url"}`, …).
        content: Value,
    },
    /// Anything else as JSON: a function call's output, an output item of an earlier
    /// response (`function_call`, `reasoning`, `message`).
    Item(Value),
}

impl InputItem {
    /// A message with text content.
    pub fn message(role: impl Into<String>, text: impl Into<String>) -> InputItem {
        InputItem::Message {
            role: role.into(),
            content: Value::String(text.into()),
        }
    }

    /// The output of the function call `call_id`, for the turn after the model called it.
    pub fn function_call_output(call_id: impl Into<String>, output: impl Into<String>) -> Self {
        InputItem::Item(serde_json::json!({
            "type": "function_call_output",
            "call_id": call_id.into(),
            "output": output.into(),
        }))
    }

    /// An output item of an earlier response, sent back as input (a `function_call` before
    /// its output, in a stateless tool-calling loop).
    pub fn from_output(item: &OutputItem) -> InputItem {
        InputItem::Item(item.raw().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_body_merges_extra_last() {
        let mut r = ResponsesRequest {
            model: "m".into(),
            input: json!("hi"),
            max_output_tokens: Some(5),
            ..Default::default()
        };
        r.extra.insert("max_output_tokens".into(), json!(9));
        let b = r.to_body().unwrap();
        assert_eq!(b["max_output_tokens"], 9);
        assert_eq!(b["input"], "hi");
        assert!(b.get("store").is_none());
    }
}
