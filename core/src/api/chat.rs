//! `POST /v1/chat/completions`: the request with every parameter vLLM understands, and the
//! response reduced to what callers use (`content`, `reasoning`, `tool_calls`, `usage`) with the
//! raw JSON kept for the rest.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{ToolCall, Usage};
use super::messages::Message;
use super::params::{impl_to_body, SamplingParams};
use crate::error::VllmError;

/// What `.messages(…)` accepts: a JSON array (`json!([...])`) or typed [`Message`]s.
pub trait IntoMessages {
    /// The messages as a JSON array.
    fn into_messages(self) -> Value;
}

impl IntoMessages for Value {
    fn into_messages(self) -> Value {
        self
    }
}

impl IntoMessages for Vec<Message> {
    fn into_messages(self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Array(Vec::new()))
    }
}

impl IntoMessages for &[Message] {
    fn into_messages(self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Array(Vec::new()))
    }
}

impl<const N: usize> IntoMessages for [Message; N] {
    fn into_messages(self) -> Value {
        serde_json::to_value(&self[..]).unwrap_or(Value::Array(Vec::new()))
    }
}

/// The body of a chat completion request.
///
/// Every field is optional except `model` and `messages`; unset fields are not sent, so the
/// server's defaults apply. Anything not typed here goes through [`extra`](Self::extra), merged
/// last (it overrides typed fields of the same name).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ChatCompletionRequest {
    /// The model to use (as `/v1/models` lists it).
    pub model: String,
    /// The conversation, a JSON array of messages.
    pub messages: Value,
    /// Sampling and vLLM extras shared with completions.
    #[serde(flatten)]
    pub sampling: SamplingParams,
    /// Upper bound of generated tokens (OpenAI's newer name for `max_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Tools the model may call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    /// `auto`, `none`, `required` or a named function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Whether the model may call several tools in one turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// `{"type": "json_object"}` or `{"type": "json_schema", …}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Whether to return log probabilities of the output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// How many alternatives per position to return with `logprobs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// Keyword arguments for the chat template (e.g. `{"enable_thinking": false}` for Qwen3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_template_kwargs: Option<Value>,
    /// Whether to add the generation prompt (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_generation_prompt: Option<bool>,
    /// Continue the final assistant message instead of starting a new one (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_final_message: Option<bool>,
    /// `low`, `medium` or `high` for reasoning models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Whether to include the reasoning text in the response (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_reasoning: Option<bool>,
    /// Free-form fields merged into the body last.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl_to_body!(ChatCompletionRequest);

impl ChatCompletionRequest {
    /// Whether the request asks for a stream.
    pub fn is_stream(&self) -> bool {
        self.sampling.stream == Some(true)
    }
}

/// A chat completion, as `.send()` returns it.
///
/// The fields of the first choice are lifted to the top (`content`, `reasoning`, `tool_calls`,
/// `finish_reason`) because that is what nearly every caller reads; all choices are in
/// [`choices`](Self::choices) and the untouched JSON in [`raw`](Self::raw).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChatCompletionResponse {
    /// The completion's id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// Unix time of creation.
    pub created: u64,
    /// The text of the first choice.
    pub content: Option<String>,
    /// The reasoning text of the first choice (`reasoning`, or `reasoning_content`).
    pub reasoning: Option<String>,
    /// The tool calls of the first choice.
    pub tool_calls: Vec<ToolCall>,
    /// Why the first choice stopped.
    pub finish_reason: Option<String>,
    /// Token counts.
    pub usage: Option<Usage>,
    /// Every choice.
    pub choices: Vec<ChatChoice>,
    /// The response as received.
    pub raw: Value,
}

/// One choice of a chat completion.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChatChoice {
    /// Its index.
    pub index: u32,
    /// The text.
    pub content: Option<String>,
    /// The reasoning text.
    pub reasoning: Option<String>,
    /// The tool calls.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish_reason: Option<String>,
}

impl ChatCompletionResponse {
    /// The first choice's message as the next assistant turn of the conversation: its text
    /// and its tool calls, ready to push onto the messages before the tools' answers.
    ///
    /// ```
    /// use vllm_client_core::api::{ChatCompletionResponse, Message, Role};
    ///
    /// let r = ChatCompletionResponse::from_json(serde_json::json!({"choices": [{"index": 0,
    ///     "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
    ///     "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
    ///     "finish_reason": "tool_calls"}]})).unwrap();
    /// let turn = r.to_message();
    /// assert_eq!(turn.role, Role::Assistant);
    /// assert_eq!(turn.tool_calls[0].id, "call_1");
    /// let answer = Message::tool(&turn.tool_calls[0].id, "21 C");
    /// # let _ = answer;
    /// ```
    pub fn to_message(&self) -> Message {
        Message::assistant_with_tool_calls(self.content.clone(), self.tool_calls.clone())
    }

    /// The first choice's text read as JSON into `T` — the typed result of a structured
    /// output (`response_format` with a JSON schema, or vLLM's `structured_outputs`). No text,
    /// or text that is not a `T`, is a [`VllmError::Decode`] with a snippet of the text.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, VllmError> {
        let text = self.content.as_deref().ok_or_else(|| {
            VllmError::decode(
                "the answer has no text to parse (it may have called a tool instead)",
                b"",
            )
        })?;
        // Some models wrap JSON in a Markdown fence despite the format; take what is inside.
        let body = strip_fence(text);
        serde_json::from_str(body).map_err(|e| {
            VllmError::decode(
                format!("the answer is not a {}: {e}", std::any::type_name::<T>()),
                text.as_bytes(),
            )
        })
    }
}

/// The text inside a Markdown code fence (```` ```json … ``` ````), or the text itself.
fn strip_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let Some(rest) = rest.strip_suffix("```") else {
        return t;
    };
    // Drop the info string (`json`) on the opening line.
    match rest.find('\n') {
        Some(nl) => rest[nl + 1..].trim(),
        None => rest.trim(),
    }
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    created: u64,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    index: u32,
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireMessage {
    content: Option<String>,
    reasoning: Option<String>,
    reasoning_content: Option<String>,
    tool_calls: Option<Vec<ToolCall>>,
}

impl ChatCompletionResponse {
    /// Reads a chat completion from its JSON. A body of another shape is a decode error.
    pub fn from_json(raw: Value) -> Result<Self, VllmError> {
        let wire: WireResponse = serde_json::from_value(raw.clone()).map_err(|e| {
            VllmError::decode(
                format!("not a chat completion: {e}"),
                raw.to_string().as_bytes(),
            )
        })?;
        let choices: Vec<ChatChoice> = wire
            .choices
            .into_iter()
            .map(|c| ChatChoice {
                index: c.index,
                content: c.message.content,
                reasoning: c.message.reasoning.or(c.message.reasoning_content),
                tool_calls: c.message.tool_calls.unwrap_or_default(),
                finish_reason: c.finish_reason,
            })
            .collect();
        let first = choices.iter().find(|c| c.index == 0).or(choices.first());
        Ok(ChatCompletionResponse {
            id: wire.id,
            model: wire.model,
            created: wire.created,
            content: first.and_then(|c| c.content.clone()),
            reasoning: first.and_then(|c| c.reasoning.clone()),
            tool_calls: first.map(|c| c.tool_calls.clone()).unwrap_or_default(),
            finish_reason: first.and_then(|c| c.finish_reason.clone()),
            usage: wire.usage,
            choices,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_fields_then_extra_wins() {
        let mut r = ChatCompletionRequest {
            model: "m".into(),
            messages: json!([{"role": "user", "content": "hi"}]),
            ..Default::default()
        };
        r.sampling.temperature = Some(0.5);
        r.sampling.top_k = Some(20);
        r.extra.insert("temperature".into(), json!(0.9));
        r.extra.insert("guided_choice".into(), json!(["a"]));
        let b = r.to_body().unwrap();
        assert_eq!(b["temperature"], json!(0.9));
        assert_eq!(b["top_k"], json!(20));
        assert_eq!(b["guided_choice"], json!(["a"]));
        assert!(b.get("max_tokens").is_none(), "unset fields are not sent");
    }

    #[test]
    fn response_reads_reasoning_under_both_names() {
        for key in ["reasoning", "reasoning_content"] {
            let raw = json!({"id":"x","model":"m","created":1,"choices":[{"index":0,"message":{"role":"assistant","content":"hi",key:"think"},"finish_reason":"stop"}]});
            let r = ChatCompletionResponse::from_json(raw).unwrap();
            assert_eq!(r.reasoning.as_deref(), Some("think"));
            assert_eq!(r.content.as_deref(), Some("hi"));
        }
        let raw = json!({"choices":[{"index":0,"message":{"content":"a","reasoning":"new","reasoning_content":"old"}}]});
        let r = ChatCompletionResponse::from_json(raw).unwrap();
        assert_eq!(r.reasoning.as_deref(), Some("new"));
    }

    #[test]
    fn response_tool_calls_and_usage() {
        let raw = json!({"id":"x","model":"m","created":1,"choices":[{"index":0,"message":{"role":"assistant","content":null,
            "tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":2}}});
        let r = ChatCompletionResponse::from_json(raw).unwrap();
        assert_eq!(r.content, None);
        assert_eq!(r.tool_calls[0].function.name, "get_weather");
        assert_eq!(r.tool_calls[0].arguments_json().unwrap()["city"], "Paris");
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        let u = r.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (3, 4, 7)
        );
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, Some(2));
    }

    #[test]
    fn parse_structured_output_and_the_next_turn() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct City {
            name: String,
            population: u64,
        }
        let raw = json!({"choices":[{"index":0,"message":{"role":"assistant",
            "content":"{\"name\":\"Paris\",\"population\":2100000}"},"finish_reason":"stop"}]});
        let r = ChatCompletionResponse::from_json(raw).unwrap();
        assert_eq!(
            r.parse::<City>().unwrap(),
            City {
                name: "Paris".into(),
                population: 2_100_000
            }
        );
        let fenced = json!({"choices":[{"index":0,"message":{"content":
            "```json\n{\"name\":\"Oslo\",\"population\":1}\n```"}}]});
        let r = ChatCompletionResponse::from_json(fenced).unwrap();
        assert_eq!(r.parse::<City>().unwrap().name, "Oslo");
        let wrong = json!({"choices":[{"index":0,"message":{"content":"{\"name\":3}"}}]});
        let e = ChatCompletionResponse::from_json(wrong)
            .unwrap()
            .parse::<City>()
            .unwrap_err();
        assert!(matches!(e, VllmError::Decode { .. }), "{e}");
        let none = json!({"choices":[{"index":0,"message":{"content":null}}]});
        assert!(ChatCompletionResponse::from_json(none)
            .unwrap()
            .parse::<City>()
            .is_err());
        let turn = ChatCompletionResponse::from_json(
            json!({"choices":[{"index":0,"message":{"content":"hi"}}]}),
        )
        .unwrap()
        .to_message();
        assert_eq!(
            serde_json::to_value(turn).unwrap(),
            json!({"role": "assistant", "content": "hi"})
        );
    }

    #[test]
    fn wrong_shape_is_a_decode_error() {
        let e = ChatCompletionResponse::from_json(json!({"hello": "world"})).unwrap_err();
        assert!(matches!(e, VllmError::Decode { .. }), "{e:?}");
        assert!(e.to_string().contains("hello"));
    }
}
