//! The response object ([`Response`]): what `send()`, `retrieve` and `cancel` return and what
//! the lifecycle events carry — its output items, their content parts, and its usage.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::common::{CompletionTokensDetails, PromptTokensDetails, Usage};
use crate::error::VllmError;

/// Token counts of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponseUsage {
    /// Tokens of the input.
    #[serde(default)]
    pub input_tokens: u64,
    /// Tokens generated.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input plus output.
    #[serde(default)]
    pub total_tokens: u64,
    /// Details of the input tokens (`cached_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens_details: Option<PromptTokensDetails>,
    /// Details of the output tokens (`reasoning_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<CompletionTokensDetails>,
}

impl From<&ResponseUsage> for Usage {
    fn from(u: &ResponseUsage) -> Usage {
        Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.total_tokens,
            prompt_tokens_details: u.input_tokens_details.clone(),
            completion_tokens_details: u.output_tokens_details.clone(),
        }
    }
}

/// A response object: what `send()`, `retrieve` and `cancel` return, and what
/// `response.created`, `response.completed` and the other lifecycle events carry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Response {
    /// Its id (`resp_…`): for `retrieve`, `cancel` and `previous_response_id`.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// Unix time of creation.
    pub created_at: u64,
    /// `queued`, `in_progress`, `completed`, `incomplete`, `failed` or `cancelled`.
    pub status: String,
    /// The output items, in order.
    pub output: Vec<OutputItem>,
    /// Token counts, once known.
    pub usage: Option<ResponseUsage>,
    /// Why it is incomplete (`max_output_tokens`, `content_filter`), when it is.
    pub incomplete_reason: Option<String>,
    /// The error of a failed response (`{"code", "message"}`), as sent.
    pub error: Option<Value>,
    /// The object as received.
    pub raw: Value,
}

impl Response {
    /// Reads a response object. Anything but a JSON object is a decode error; missing
    /// fields take their defaults (servers differ in what they send while in progress).
    pub fn from_json(raw: Value) -> Result<Response, VllmError> {
        let Some(obj) = raw.as_object() else {
            return Err(VllmError::decode(
                "not a response object",
                raw.to_string().as_bytes(),
            ));
        };
        let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let output = match obj.get("output") {
            Some(Value::Array(items)) => items.iter().map(OutputItem::from_json).collect(),
            _ => Vec::new(),
        };
        let usage = match obj.get("usage") {
            Some(u @ Value::Object(_)) => serde_json::from_value(u.clone()).ok(),
            _ => None,
        };
        Ok(Response {
            id: text("id"),
            model: text("model"),
            created_at: obj.get("created_at").and_then(Value::as_u64).unwrap_or(0),
            status: text("status"),
            output,
            usage,
            incomplete_reason: obj
                .get("incomplete_details")
                .and_then(|d| d.get("reason"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            error: obj.get("error").filter(|e| !e.is_null()).cloned(),
            raw,
        })
    }

    /// The text of every `output_text` part of every message item, concatenated (the
    /// `output_text` of the OpenAI SDKs).
    pub fn output_text(&self) -> String {
        let mut s = String::new();
        for item in &self.output {
            if let OutputItem::Message { content, .. } = item {
                for part in content {
                    if let OutputContent::Text { text, .. } = part {
                        s.push_str(text);
                    }
                }
            }
        }
        s
    }

    /// The reasoning text of every reasoning item, concatenated.
    pub fn reasoning_text(&self) -> String {
        self.output
            .iter()
            .filter_map(|i| match i {
                OutputItem::Reasoning { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The function calls the model made, in order.
    pub fn function_calls(&self) -> impl Iterator<Item = &OutputItem> {
        self.output
            .iter()
            .filter(|i| matches!(i, OutputItem::FunctionCall { .. }))
    }

    /// Whether it is done (`completed`, `incomplete`, `failed` or `cancelled`): a background
    /// response polled with `retrieve` is done when this says so.
    pub fn is_done(&self) -> bool {
        matches!(
            self.status.as_str(),
            "completed" | "incomplete" | "failed" | "cancelled"
        )
    }
}

/// One item of a response's `output`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OutputItem {
    /// An assistant message.
    Message {
        /// The item's id.
        id: String,
        /// `assistant`.
        role: String,
        /// Its parts: text, refusals.
        content: Vec<OutputContent>,
        /// The item as received.
        raw: Value,
    },
    /// Reasoning.
    Reasoning {
        /// The item's id.
        id: String,
        /// The reasoning text (its `content` parts, else its `summary` parts, joined).
        text: String,
        /// The item as received.
        raw: Value,
    },
    /// A call of a function tool.
    FunctionCall {
        /// The item's id.
        id: String,
        /// The id to answer with a `function_call_output` item.
        call_id: String,
        /// The function.
        name: String,
        /// The arguments, a JSON document as text (possibly invalid).
        arguments: String,
        /// The item as received.
        raw: Value,
    },
    /// Any other item (web search, MCP, code interpreter, …), as received.
    Other {
        /// Its `type`.
        kind: String,
        /// The item as received.
        raw: Value,
    },
}

impl OutputItem {
    /// Reads an output item; an unknown type is kept as [`Other`](Self::Other).
    pub fn from_json(v: &Value) -> OutputItem {
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let kind = text("type");
        match kind.as_str() {
            "message" => OutputItem::Message {
                id: text("id"),
                role: v
                    .get("role")
                    .and_then(Value::as_str)
                    .unwrap_or("assistant")
                    .to_owned(),
                content: v
                    .get("content")
                    .and_then(Value::as_array)
                    .map(|parts| parts.iter().map(OutputContent::from_json).collect())
                    .unwrap_or_default(),
                raw: v.clone(),
            },
            "reasoning" => {
                let join = |k: &str| -> String {
                    v.get(k)
                        .and_then(Value::as_array)
                        .map(|parts| {
                            parts
                                .iter()
                                .filter_map(|p| p.get("text").and_then(Value::as_str))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let content = join("content");
                OutputItem::Reasoning {
                    id: text("id"),
                    text: if content.is_empty() {
                        join("summary")
                    } else {
                        content
                    },
                    raw: v.clone(),
                }
            }
            "function_call" => OutputItem::FunctionCall {
                id: text("id"),
                call_id: text("call_id"),
                name: text("name"),
                arguments: text("arguments"),
                raw: v.clone(),
            },
            _ => OutputItem::Other {
                kind,
                raw: v.clone(),
            },
        }
    }

    /// The item as received.
    pub fn raw(&self) -> &Value {
        match self {
            OutputItem::Message { raw, .. }
            | OutputItem::Reasoning { raw, .. }
            | OutputItem::FunctionCall { raw, .. }
            | OutputItem::Other { raw, .. } => raw,
        }
    }
}

/// A part of an output message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OutputContent {
    /// `output_text`.
    Text {
        /// The text.
        text: String,
        /// Its log probabilities, when asked for (`include: ["message.output_text.logprobs"]`).
        logprobs: Option<Value>,
    },
    /// `refusal`.
    Refusal(String),
    /// Anything else, as received.
    Other(Value),
}

impl OutputContent {
    fn from_json(v: &Value) -> OutputContent {
        match v.get("type").and_then(Value::as_str) {
            Some("output_text") => OutputContent::Text {
                text: v
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                logprobs: v.get("logprobs").filter(|l| !l.is_null()).cloned(),
            },
            Some("refusal") => OutputContent::Refusal(
                v.get("refusal")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ),
            _ => OutputContent::Other(v.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::InputItem;
    use serde_json::json;

    #[test]
    fn reads_a_completed_response() {
        let raw = json!({
            "id": "resp_1", "object": "response", "created_at": 7, "model": "m",
            "status": "completed",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [],
                 "content": [{"type": "reasoning_text", "text": "think"}]},
                {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                 "content": [{"type": "output_text", "text": "Hel", "annotations": []},
                             {"type": "output_text", "text": "lo", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1",
                 "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "web_search_call", "id": "ws_1"}
            ],
            "usage": {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 1}}
        });
        let r = Response::from_json(raw).unwrap();
        assert_eq!(r.output_text(), "Hello");
        assert_eq!(r.reasoning_text(), "think");
        assert!(r.is_done());
        let calls: Vec<_> = r.function_calls().collect();
        assert!(
            matches!(calls[0], OutputItem::FunctionCall { name, call_id, .. }
            if name == "get_weather" && call_id == "call_1")
        );
        assert!(
            matches!(&r.output[3], OutputItem::Other { kind, .. } if kind == "web_search_call")
        );
        let u = Usage::from(r.usage.as_ref().unwrap());
        assert_eq!((u.prompt_tokens, u.completion_tokens), (3, 5));
        let input = InputItem::from_output(calls[0]);
        assert_eq!(serde_json::to_value(input).unwrap()["call_id"], "call_1");
    }

    #[test]
    fn incomplete_and_not_a_response() {
        let r = Response::from_json(json!({"id": "r", "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"}, "output": []}))
        .unwrap();
        assert_eq!(r.incomplete_reason.as_deref(), Some("max_output_tokens"));
        assert!(Response::from_json(json!([1])).is_err());
    }
}
