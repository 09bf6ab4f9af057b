//! The Responses API (`POST /v1/responses`, `GET /v1/responses/{id}`,
//! `POST /v1/responses/{id}/cancel`): the request, the response object, and the typed,
//! numbered events of its stream.
//!
//! vLLM streams a response as named events (`event: response.output_text.delta` then one
//! `data:` line of JSON carrying the same `type` and a `sequence_number`), with no `[DONE]`:
//! the stream ends after `response.completed` (or `response.incomplete`, `response.failed`).
//! See [`ResponseStreamEvent`] and the decoder in [`crate::responses_stream`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{CompletionTokensDetails, PromptTokensDetails, Usage};
use crate::error::VllmError;

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

impl ResponsesRequest {
    /// The JSON body: typed fields, then `extra` merged over them.
    pub fn to_body(&self) -> Result<Value, VllmError> {
        super::params::body_with_extra(self, &self.extra)
    }
}

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

/// One event of a Responses stream, typed. Every event carries its `sequence_number` (vLLM
/// and OpenAI number them from 0; `None` when a server sends none).
///
/// A stream yields `Created`, then deltas and item events, then exactly one terminal item:
/// `Completed` or `Incomplete` (a success — `Incomplete` says why output stopped early), or an
/// error (`response.failed` and `error` events become [`VllmError::Api`]; a cut stream
/// [`VllmError::Truncated`]). Event types this enum does not name arrive as
/// [`Other`](Self::Other), so a server's new events never break a stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ResponseStreamEvent {
    /// `response.created`: the response, `in_progress` (or `queued`).
    Created {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The response so far.
        response: Box<Response>,
    },
    /// `response.in_progress` or `response.queued`.
    InProgress {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The response so far.
        response: Box<Response>,
    },
    /// `response.output_item.added`: an output item starts.
    OutputItemAdded {
        /// The event's number.
        sequence_number: Option<u64>,
        /// Its position in `output`.
        output_index: u32,
        /// The item as it starts.
        item: Box<OutputItem>,
    },
    /// `response.output_item.done`: an output item is complete.
    OutputItemDone {
        /// The event's number.
        sequence_number: Option<u64>,
        /// Its position in `output`.
        output_index: u32,
        /// The whole item (a function call with all its arguments).
        item: Box<OutputItem>,
    },
    /// `response.output_text.delta`: a piece of the answer's text.
    OutputTextDelta {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The message item it belongs to.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The content part it extends.
        content_index: u32,
        /// The text.
        delta: String,
        /// Log probabilities of its tokens, when asked for.
        logprobs: Option<Value>,
    },
    /// `response.output_text.done`: a text part is complete.
    OutputTextDone {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The message item.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The content part.
        content_index: u32,
        /// The whole text of the part.
        text: String,
    },
    /// `response.reasoning_text.delta` (or `response.reasoning_summary_text.delta`): a piece
    /// of the reasoning.
    ReasoningTextDelta {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The reasoning item.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The text.
        delta: String,
    },
    /// `response.reasoning_text.done` (or `response.reasoning_summary_text.done`).
    ReasoningTextDone {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The reasoning item.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The whole reasoning text of the part.
        text: String,
    },
    /// `response.function_call_arguments.delta`: a piece of a function call's arguments.
    FunctionCallArgumentsDelta {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The function call item.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The piece of JSON text.
        delta: String,
    },
    /// `response.function_call_arguments.done`: a function call's arguments are complete.
    FunctionCallArgumentsDone {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The function call item.
        item_id: String,
        /// Its position in `output`.
        output_index: u32,
        /// The function's name, when the server says it here.
        name: Option<String>,
        /// The whole arguments' JSON text.
        arguments: String,
    },
    /// `response.completed`: the response is complete (terminal).
    Completed {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The whole response, with its usage.
        response: Box<Response>,
    },
    /// `response.incomplete`: the response stopped early, e.g. at `max_output_tokens`
    /// (terminal; a success with less output, like a chat's `finish_reason: "length"`).
    Incomplete {
        /// The event's number.
        sequence_number: Option<u64>,
        /// The response; `incomplete_reason` says why.
        response: Box<Response>,
    },
    /// Any other event (`response.content_part.added`, web search, MCP, code interpreter, …),
    /// as received.
    Other {
        /// The event's number.
        sequence_number: Option<u64>,
        /// Its `type`.
        kind: String,
        /// The event as received.
        data: Value,
    },
}

impl ResponseStreamEvent {
    /// The event's `sequence_number`.
    pub fn sequence_number(&self) -> Option<u64> {
        match self {
            ResponseStreamEvent::Created {
                sequence_number, ..
            }
            | ResponseStreamEvent::InProgress {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputItemAdded {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputItemDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputTextDelta {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputTextDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::ReasoningTextDelta {
                sequence_number, ..
            }
            | ResponseStreamEvent::ReasoningTextDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::FunctionCallArgumentsDelta {
                sequence_number, ..
            }
            | ResponseStreamEvent::FunctionCallArgumentsDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::Completed {
                sequence_number, ..
            }
            | ResponseStreamEvent::Incomplete {
                sequence_number, ..
            }
            | ResponseStreamEvent::Other {
                sequence_number, ..
            } => *sequence_number,
        }
    }

    /// The event's `type` as the server names it.
    pub fn kind(&self) -> &str {
        match self {
            ResponseStreamEvent::Created { .. } => "response.created",
            ResponseStreamEvent::InProgress { response, .. } if response.status == "queued" => {
                "response.queued"
            }
            ResponseStreamEvent::InProgress { .. } => "response.in_progress",
            ResponseStreamEvent::OutputItemAdded { .. } => "response.output_item.added",
            ResponseStreamEvent::OutputItemDone { .. } => "response.output_item.done",
            ResponseStreamEvent::OutputTextDelta { .. } => "response.output_text.delta",
            ResponseStreamEvent::OutputTextDone { .. } => "response.output_text.done",
            ResponseStreamEvent::ReasoningTextDelta { .. } => "response.reasoning_text.delta",
            ResponseStreamEvent::ReasoningTextDone { .. } => "response.reasoning_text.done",
            ResponseStreamEvent::FunctionCallArgumentsDelta { .. } => {
                "response.function_call_arguments.delta"
            }
            ResponseStreamEvent::FunctionCallArgumentsDone { .. } => {
                "response.function_call_arguments.done"
            }
            ResponseStreamEvent::Completed { .. } => "response.completed",
            ResponseStreamEvent::Incomplete { .. } => "response.incomplete",
            ResponseStreamEvent::Other { kind, .. } => kind,
        }
    }

    /// The piece of answer text, for an `OutputTextDelta`.
    pub fn text_delta(&self) -> Option<&str> {
        match self {
            ResponseStreamEvent::OutputTextDelta { delta, .. } => Some(delta),
            _ => None,
        }
    }

    /// The response a lifecycle event carries (`Created`, `InProgress`, `Completed`,
    /// `Incomplete`).
    pub fn response(&self) -> Option<&Response> {
        match self {
            ResponseStreamEvent::Created { response, .. }
            | ResponseStreamEvent::InProgress { response, .. }
            | ResponseStreamEvent::Completed { response, .. }
            | ResponseStreamEvent::Incomplete { response, .. } => Some(response),
            _ => None,
        }
    }

    /// Whether it ends the stream (`Completed`, `Incomplete`).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ResponseStreamEvent::Completed { .. } | ResponseStreamEvent::Incomplete { .. }
        )
    }

    /// Whether it carries generated output (text, reasoning or arguments deltas) — what a
    /// per-chunk timer measures.
    pub fn is_output(&self) -> bool {
        matches!(
            self,
            ResponseStreamEvent::OutputTextDelta { .. }
                | ResponseStreamEvent::ReasoningTextDelta { .. }
                | ResponseStreamEvent::FunctionCallArgumentsDelta { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
