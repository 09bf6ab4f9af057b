//! `client.responses()`: the Responses API — `create()…send()` / `send_stream()`,
//! `retrieve(id)`, `cancel(id)`.

use serde_json::Value;

use super::options::option_setters;
use super::{CallOptions, CallSpec, Execute, ExecuteExt};
use crate::api::{InputItem, Response, ResponsesRequest, Tool};
use crate::request::{encode_path_segment, Operation, Route};
use crate::stream::StreamKind;

/// `client.responses()`.
#[derive(Debug, Clone)]
pub struct Responses<E> {
    exec: E,
    options: CallOptions,
}

impl<E: Execute> Responses<E> {
    pub(crate) fn new(exec: E, options: CallOptions) -> Self {
        Responses { exec, options }
    }

    /// Starts a request: set `model` and `input`, then `send()` or `send_stream()`.
    pub fn create(&self) -> ResponseBuilder<E> {
        ResponseBuilder {
            exec: self.exec.clone(),
            request: ResponsesRequest::default(),
            options: self.options.clone(),
        }
    }

    /// `GET /v1/responses/{id}`: a stored response (poll a `background` one until
    /// [`is_done`](Response::is_done)). A `GET`: retried like any idempotent read.
    pub fn retrieve(&self, id: &str) -> E::Output<Response> {
        let path = format!("/v1/responses/{}", encode_path_segment(id));
        let spec = CallSpec::get(Operation::RetrieveResponse)
            .with_route(Route::new(http::Method::GET, path))
            .with_options(&self.options);
        self.exec.execute(spec)
    }

    /// `POST /v1/responses/{id}/cancel`: stops a `background` response; the answer is the
    /// response, `cancelled`.
    pub fn cancel(&self, id: &str) -> E::Output<Response> {
        let path = format!("/v1/responses/{}/cancel", encode_path_segment(id));
        let spec = CallSpec::get(Operation::CancelResponse)
            .with_route(Route::new(http::Method::POST, path))
            .with_options(&self.options);
        self.exec.execute(spec)
    }

    /// Sends a request body of your own (any `impl Serialize`: your struct, async-openai's
    /// `CreateResponse`, a `json!` value); `"stream"` is set to `false` in it.
    pub fn send_json<B: serde::Serialize + ?Sized>(&self, body: &B) -> E::Output<Response> {
        let body = super::to_value(body).and_then(|mut v| {
            super::chat::object(&mut v)?.insert("stream".to_owned(), Value::Bool(false));
            Ok(v)
        });
        let spec = CallSpec::json(Operation::Responses, body).with_options(&self.options);
        self.exec.execute(spec)
    }
}

impl<E: ExecuteExt> Responses<E> {
    /// Sends a request body of your own as a stream (`"stream": true` is set in it).
    pub fn send_json_stream<B: serde::Serialize + ?Sized>(
        &self,
        body: &B,
    ) -> E::Output<E::Responses> {
        let spec = CallSpec::stream(
            Operation::Responses,
            StreamKind::Responses,
            super::to_value(body),
        )
        .with_options(&self.options);
        self.exec.execute_responses(spec)
    }
}

/// A Responses request being built. Unset parameters are not sent.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until .send() or .send_stream()"]
pub struct ResponseBuilder<E> {
    exec: E,
    request: ResponsesRequest,
    options: CallOptions,
}

impl<E: Execute> ResponseBuilder<E> {
    /// The model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.request.model = model.into();
        self
    }

    /// The input: a string, `json!([...])` items, or typed [`InputItem`]s.
    pub fn input(mut self, input: impl IntoInput) -> Self {
        self.request.input = input.into_input();
        self
    }

    /// A system (developer) message put before the input.
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.request.instructions = Some(text.into());
        self
    }

    /// Upper bound of generated tokens (a response that reaches it ends `incomplete`).
    pub fn max_output_tokens(mut self, n: u32) -> Self {
        self.request.max_output_tokens = Some(n);
        self
    }

    /// Sampling temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.request.temperature = Some(t);
        self
    }

    /// Nucleus sampling mass.
    pub fn top_p(mut self, p: f32) -> Self {
        self.request.top_p = Some(p);
        self
    }

    /// Keep only the k most likely tokens (vLLM).
    pub fn top_k(mut self, k: i32) -> Self {
        self.request.top_k = Some(k);
        self
    }

    /// Adds a function tool (sent in the Responses API's flat form).
    pub fn tool(mut self, tool: &Tool) -> Self {
        self.request
            .tools
            .get_or_insert_with(Vec::new)
            .push(tool.to_responses_tool());
        self
    }

    /// Tools as JSON (`{"type": "function", "name", …}`, or built-in tools the server knows).
    pub fn tools(mut self, tools: Vec<Value>) -> Self {
        self.request.tools = Some(tools);
        self
    }

    /// `json!("auto")`, `json!("required")`, or `json!({"type": "function", "name": …})`.
    pub fn tool_choice(mut self, choice: impl Into<Value>) -> Self {
        self.request.tool_choice = Some(choice.into());
        self
    }

    /// The response this one continues (the server stored it: `store`).
    pub fn previous_response_id(mut self, id: impl Into<String>) -> Self {
        self.request.previous_response_id = Some(id.into());
        self
    }

    /// Whether the server keeps the response for `retrieve` (vLLM's default: yes).
    pub fn store(mut self, store: bool) -> Self {
        self.request.store = Some(store);
        self
    }

    /// Run in the background: `send()` returns the response `queued` at once; poll it with
    /// `retrieve(id)` and stop it with `cancel(id)`.
    pub fn background(mut self, background: bool) -> Self {
        self.request.background = Some(background);
        self
    }

    /// `json!({"effort": "low"})` for reasoning models.
    pub fn reasoning(mut self, reasoning: Value) -> Self {
        self.request.reasoning = Some(reasoning);
        self
    }

    /// `json!({"format": {"type": "json_schema", "name", "schema"}})` for structured output.
    pub fn text(mut self, text: Value) -> Self {
        self.request.text = Some(text);
        self
    }

    /// Extra output to include (`"message.output_text.logprobs"`, …).
    pub fn include(mut self, what: impl Into<String>) -> Self {
        self.request
            .include
            .get_or_insert_with(Vec::new)
            .push(what.into());
        self
    }

    /// The response's id (vLLM's `request_id`).
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request.request_id = Some(id.into());
        self
    }

    /// Free-form fields merged into the body last (a JSON object; anything else is ignored).
    pub fn extra(mut self, value: Value) -> Self {
        if let Value::Object(map) = value {
            self.request.extra.extend(map);
        }
        self
    }

    /// The request as it stands.
    pub fn request(&self) -> &ResponsesRequest {
        &self.request
    }

    option_setters!();

    /// Creates the response and waits for it (with `background(true)`: for the response
    /// `queued`).
    pub fn send(mut self) -> E::Output<Response> {
        self.request.stream = Some(false);
        let spec = CallSpec::json(Operation::Responses, self.request.to_body())
            .with_options(&self.options);
        self.exec.execute(spec)
    }
}

impl<E: ExecuteExt> ResponseBuilder<E> {
    /// Creates the response as a stream of `Result<ResponseStreamEvent, VllmError>`: the
    /// typed, numbered events, ending with `Completed` or `Incomplete` then the end of the
    /// stream — or with one `Err` (`response.failed`, an `error` event, a cut, a stall), never
    /// a silent end. Retried only before any event reached you.
    pub fn send_stream(mut self) -> E::Output<E::Responses> {
        self.request.stream = Some(true);
        let spec = CallSpec::stream(
            Operation::Responses,
            StreamKind::Responses,
            self.request.to_body(),
        )
        .with_options(&self.options);
        self.exec.execute_responses(spec)
    }
}

/// What `.input(…)` accepts: a string, a JSON value, or typed [`InputItem`]s.
pub trait IntoInput {
    /// The input as JSON.
    fn into_input(self) -> Value;
}

impl IntoInput for &str {
    fn into_input(self) -> Value {
        Value::String(self.to_owned())
    }
}

impl IntoInput for String {
    fn into_input(self) -> Value {
        Value::String(self)
    }
}

impl IntoInput for Value {
    fn into_input(self) -> Value {
        self
    }
}

impl IntoInput for Vec<InputItem> {
    fn into_input(self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Array(Vec::new()))
    }
}
