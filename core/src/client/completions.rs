//! `client.completions.create()…send()`: the legacy completions builder.

use serde_json::Value;

use super::chat::setter;
use super::options::option_setters;
use super::{CallOptions, CallSpec, Execute, ExecuteExt};
use crate::api::{CompletionRequest, CompletionResponse, StreamOptions};
use crate::request::Operation;
use crate::stream::StreamKind;

/// `client.completions`: the legacy text completion API.
#[derive(Debug, Clone)]
pub struct Completions<E> {
    exec: E,
    options: CallOptions,
}

impl<E: Execute> Completions<E> {
    /// Wraps an executor.
    pub fn new(exec: E) -> Self {
        Self::with_options(exec, CallOptions::default())
    }

    pub(crate) fn with_options(exec: E, options: CallOptions) -> Self {
        Completions { exec, options }
    }

    /// Starts a request; set `model` and `prompt`, then `send()` or `send_stream()`.
    pub fn create(&self) -> CompletionBuilder<E> {
        CompletionBuilder {
            exec: self.exec.clone(),
            request: CompletionRequest::default(),
            session: None,
            options: self.options.clone(),
        }
    }
}

/// A completion request being built.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until .send() or .send_stream()"]
pub struct CompletionBuilder<E> {
    exec: E,
    request: CompletionRequest,
    session: Option<u64>,
    options: CallOptions,
}

impl<E: Execute> CompletionBuilder<E> {
    /// The model to use.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.request.model = model.into();
        self
    }

    /// The prompt: a string, an array of strings, or token ids.
    pub fn prompt(mut self, prompt: impl Into<Value>) -> Self {
        self.request.prompt = prompt.into();
        self
    }

    setter!(/// Sampling temperature.
        temperature: f32 => sampling.temperature);
    setter!(/// Upper bound of generated tokens.
        max_tokens: u32 => sampling.max_tokens);
    setter!(/// Nucleus sampling mass.
        top_p: f32 => sampling.top_p);
    setter!(/// Keep only the k most likely tokens (vLLM).
        top_k: i32 => sampling.top_k);
    setter!(/// Minimum relative probability (vLLM).
        min_p: f32 => sampling.min_p);
    setter!(/// Repetition penalty (vLLM).
        repetition_penalty: f32 => sampling.repetition_penalty);
    setter!(/// Presence penalty.
        presence_penalty: f32 => sampling.presence_penalty);
    setter!(/// Frequency penalty.
        frequency_penalty: f32 => sampling.frequency_penalty);
    setter!(/// Seed.
        seed: i64 => sampling.seed);
    setter!(/// Number of choices.
        n: u32 => sampling.n);
    setter!(/// Constrained output (vLLM).
        structured_outputs: Value => sampling.structured_outputs);
    setter!(/// Scheduling priority (vLLM).
        priority: i32 => sampling.priority);
    setter!(/// Echo the prompt.
        echo: bool => echo);
    setter!(/// Log probabilities per token.
        logprobs: u32 => logprobs);

    /// Stop strings.
    pub fn stop(mut self, stop: impl Into<Value>) -> Self {
        self.request.sampling.stop = Some(stop.into());
        self
    }

    /// Whether to stream.
    pub fn stream(mut self, stream: bool) -> Self {
        self.request.sampling.stream = Some(stream);
        self
    }

    /// Ask for a final usage chunk in a stream.
    pub fn include_usage(mut self, include: bool) -> Self {
        self.request
            .sampling
            .stream_options
            .get_or_insert_with(StreamOptions::default)
            .include_usage = Some(include);
        self
    }

    /// A session key: with several endpoints, every request with the same key goes to the
    /// same one (rendezvous hashing) while it is healthy and not overloaded, so that a
    /// multi-turn conversation reuses that replica's prefix cache. Not sent to the server.
    pub fn session(mut self, key: impl AsRef<str>) -> Self {
        self.session = Some(crate::policy::routing::stable_hash(key.as_ref().as_bytes()));
        self
    }

    /// Free-form fields merged last (a JSON object).
    pub fn extra(mut self, value: Value) -> Self {
        if let Value::Object(map) = value {
            self.request.extra.extend(map);
        }
        self
    }

    option_setters!();

    fn spec(&self, spec: CallSpec) -> CallSpec {
        let mut spec = spec.with_options(&self.options);
        spec.affinity = self.session;
        spec
    }

    /// Sends and waits for the whole answer.
    pub fn send(mut self) -> E::Output<CompletionResponse> {
        self.request.sampling.stream = Some(false);
        let spec = self.spec(CallSpec::json(
            Operation::Completions,
            self.request.to_body(),
        ));
        self.exec.execute(spec)
    }

    /// Sends as a stream of [`StreamEvent`](crate::StreamEvent)s (`Content` carries the text).
    pub fn send_stream(mut self) -> E::Output<E::Stream> {
        self.request.sampling.stream = Some(true);
        let spec = self.spec(CallSpec::stream(
            Operation::Completions,
            StreamKind::Completions,
            self.request.to_body(),
        ));
        self.exec.execute_stream(spec)
    }
}

impl<E: ExecuteExt> CompletionBuilder<E> {
    /// Sends as a stream of `Result<Chunk, VllmError>`, each chunk whole with its `text`,
    /// `logprobs` and `finish_reason` (see
    /// [`ChatCompletionBuilder::send_chunks`](super::ChatCompletionBuilder::send_chunks)).
    pub fn send_chunks(mut self) -> E::Output<E::Chunks> {
        self.request.sampling.stream = Some(true);
        let spec = self.spec(CallSpec::stream(
            Operation::Completions,
            StreamKind::CompletionsChunks,
            self.request.to_body(),
        ));
        self.exec.execute_chunks(spec)
    }
}
