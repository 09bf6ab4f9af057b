//! `client.chat.completions().create()…send()`: the chat request builder, written once for
//! every adapter.

use std::sync::Arc;

use serde_json::Value;

use super::generation::{generation_methods, setter};
use super::{CallOptions, CallSpec, Execute, ExecuteExt};
use crate::api::{ChatCompletionRequest, ChatCompletionResponse, IntoMessages, IntoTools, Tool};
use crate::request::Operation;
use crate::stream::StreamKind;

/// `client.chat`: the chat API.
#[derive(Debug, Clone)]
pub struct Chat<E> {
    exec: E,
    options: Arc<CallOptions>,
}

impl<E: Execute> Chat<E> {
    /// Wraps an executor.
    pub fn new(exec: E) -> Self {
        Self::with_options(exec, Arc::default())
    }

    pub(crate) fn with_options(exec: E, options: Arc<CallOptions>) -> Self {
        Chat { exec, options }
    }

    /// `client.chat.completions()`.
    pub fn completions(&self) -> ChatCompletions<E> {
        ChatCompletions {
            exec: self.exec.clone(),
            options: self.options.clone(),
        }
    }
}

/// `client.chat.completions()`: creates chat completion requests.
#[derive(Debug, Clone)]
pub struct ChatCompletions<E> {
    exec: E,
    options: Arc<CallOptions>,
}

impl<E: Execute> ChatCompletions<E> {
    /// Starts a request; set `model` and `messages`, then `send()` or `send_stream()`.
    pub fn create(&self) -> ChatCompletionBuilder<E> {
        ChatCompletionBuilder {
            exec: self.exec.clone(),
            request: ChatCompletionRequest::default(),
            session: None,
            options: CallOptions::clone(&self.options),
        }
    }

    /// Sends a request body of your own — any `impl Serialize` that serializes to a chat
    /// completion request (your own struct, async-openai's `CreateChatCompletionRequest`, a
    /// `json!` value) — and reads the answer. `"stream"` is set to `false` in it. Same
    /// policies as `create()…send()`.
    pub fn send_json<B: serde::Serialize + ?Sized>(
        &self,
        body: &B,
    ) -> E::Output<ChatCompletionResponse> {
        let body = super::to_value(body).and_then(|mut v| {
            object(&mut v)?.insert("stream".to_owned(), Value::Bool(false));
            Ok(v)
        });
        let spec = CallSpec::json(Operation::ChatCompletions, body).with_options(&self.options);
        self.exec.execute(spec)
    }

    /// Sends a request body of your own as a stream of [`StreamEvent`](crate::StreamEvent)s
    /// (`"stream": true` is set in it).
    pub fn send_json_stream<B: serde::Serialize + ?Sized>(&self, body: &B) -> E::Output<E::Stream> {
        let spec = CallSpec::stream(
            Operation::ChatCompletions,
            StreamKind::Chat,
            super::to_value(body),
        )
        .with_options(&self.options);
        self.exec.execute_stream(spec)
    }
}

/// The body as a JSON object, or why it is not one.
pub(crate) fn object(
    v: &mut Value,
) -> Result<&mut serde_json::Map<String, Value>, crate::error::VllmError> {
    v.as_object_mut().ok_or_else(|| {
        crate::error::VllmError::InvalidRequest("the request body must be a JSON object".into())
    })
}

/// A chat completion request being built. Setters take and return `self`; unset parameters are
/// not sent, so the server's defaults apply.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until .send() or .send_stream()"]
pub struct ChatCompletionBuilder<E> {
    exec: E,
    request: ChatCompletionRequest,
    session: Option<u64>,
    options: CallOptions,
}

impl<E: Execute> ChatCompletionBuilder<E> {
    generation_methods!(Operation::ChatCompletions);

    /// The conversation: `json!([{"role": "user", "content": "…"}])` or a `Vec<Message>`.
    pub fn messages(mut self, messages: impl IntoMessages) -> Self {
        self.request.messages = messages.into_messages();
        self
    }

    /// Appends one typed message.
    pub fn message(mut self, message: crate::api::Message) -> Self {
        let v = serde_json::to_value(message).unwrap_or(Value::Null);
        match &mut self.request.messages {
            Value::Array(a) => a.push(v),
            other => *other = Value::Array(vec![v]),
        }
        self
    }

    setter!(/// Upper bound of generated tokens (the newer OpenAI name).
        max_completion_tokens: u32 => max_completion_tokens);
    setter!(/// Lower bound of generated tokens (vLLM).
        min_tokens: u32 => sampling.min_tokens);
    setter!(/// Stop token ids (vLLM).
        stop_token_ids: Vec<u32> => sampling.stop_token_ids);
    setter!(/// Keep generating past end-of-sequence (vLLM).
        ignore_eos: bool => sampling.ignore_eos);
    setter!(/// Whether special tokens are removed from the output (vLLM).
        skip_special_tokens: bool => sampling.skip_special_tokens);
    setter!(/// Token id → bias, as JSON.
        logit_bias: Value => sampling.logit_bias);
    setter!(/// An id of the end user.
        user: String => sampling.user);
    setter!(/// A request id the server logs (vLLM).
        request_id: String => sampling.request_id);
    /// The answer's format: `json!({"type": "json_object"})`, or a typed
    /// [`ResponseFormat`](crate::api::ResponseFormat) (a JSON schema; with the `schemars`
    /// feature, `ResponseFormat::for_type::<T>()`).
    /// Read the answer with `response.parse::<T>()`.
    pub fn response_format(mut self, format: impl Into<Value>) -> Self {
        self.request.response_format = Some(format.into());
        self
    }

    /// Asks for JSON following the schema `schemars` derives for `T` (feature `schemars`):
    /// `response_format` with that schema (vLLM enforces it while decoding). Read the answer
    /// with `response.parse::<T>()`.
    #[cfg(feature = "schemars")]
    pub fn json_schema_for<T: schemars::JsonSchema>(self) -> Self {
        self.response_format(crate::api::ResponseFormat::for_type::<T>())
    }

    /// Tools the model may call: `json!([...])` or typed [`Tool`]s.
    pub fn tools(mut self, tools: impl IntoTools) -> Self {
        self.request.tools = Some(tools.into_tools());
        self
    }

    /// Adds one typed tool.
    pub fn tool(mut self, tool: Tool) -> Self {
        let v = Value::from(tool);
        match &mut self.request.tools {
            Some(Value::Array(a)) => a.push(v),
            other => *other = Some(Value::Array(vec![v])),
        }
        self
    }

    /// `json!("auto")`, or a typed [`ToolChoice`](crate::api::ToolChoice) (`None`, `Auto`,
    /// `Required`, `Function(name)`).
    pub fn tool_choice(mut self, choice: impl Into<Value>) -> Self {
        self.request.tool_choice = Some(choice.into());
        self
    }
    setter!(/// Whether several tools may be called in one turn.
        parallel_tool_calls: bool => parallel_tool_calls);
    setter!(/// Whether to return log probabilities.
        logprobs: bool => logprobs);
    setter!(/// Alternatives per position with `logprobs`.
        top_logprobs: u32 => top_logprobs);
    setter!(/// Chat template arguments, e.g. `json!({"enable_thinking": false})` for Qwen3.
        chat_template_kwargs: Value => chat_template_kwargs);
    setter!(/// `low`, `medium` or `high` for reasoning models.
        reasoning_effort: String => reasoning_effort);
    setter!(/// Whether the reasoning text is returned (vLLM).
        include_reasoning: bool => include_reasoning);

    /// The request as it stands.
    pub fn request(&self) -> &ChatCompletionRequest {
        &self.request
    }

    /// Sends the request and waits for the whole answer (retrying as the client's policy says).
    pub fn send(mut self) -> E::Output<ChatCompletionResponse> {
        if self.request.is_stream() {
            // `.send()` returns one response: a streamed body would be decoded as one anyway.
            self.request.sampling.stream = Some(false);
        }
        self.exec.execute(self.json_spec())
    }

    /// Like [`send`](Self::send), but always succeeds with the result and a
    /// [`CallReport`](crate::call::CallReport): how many attempts were made and why each retry
    /// happened (when retries are spent, `result` is the last attempt's own error).
    pub fn send_with_report(mut self) -> E::Output<super::Reported<ChatCompletionResponse>> {
        self.request.sampling.stream = Some(false);
        self.exec.execute_reported(self.json_spec())
    }

    /// Sends the request as a stream of [`StreamEvent`](crate::StreamEvent)s. Fails if the call
    /// fails before any output (after retries); later failures arrive as a final
    /// `StreamEvent::Error`.
    pub fn send_stream(mut self) -> E::Output<E::Stream> {
        let spec = self.stream_spec(StreamKind::Chat);
        self.exec.execute_stream(spec)
    }
}

impl<E: ExecuteExt> ChatCompletionBuilder<E> {
    /// Sends the request as a stream of `Result<Chunk, VllmError>`: each chunk whole, with its
    /// `id`, `model`, `logprobs`, `finish_reason` and `usage` — the shape of async-openai's
    /// streams, for `?` and `TryStreamExt`. Same guarantees as
    /// [`send_stream`](Self::send_stream): retried only before any chunk reached you; a cut,
    /// stalled or failed stream ends with one `Err`, a finished one with the end of the
    /// stream right after its last chunk.
    pub fn send_chunks(mut self) -> E::Output<E::Chunks> {
        let spec = self.stream_spec(StreamKind::ChatChunks);
        self.exec.execute_chunks(spec)
    }
}
