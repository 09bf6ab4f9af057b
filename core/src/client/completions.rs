//! `client.completions.create()…send()`: the legacy completions builder.

use std::sync::Arc;

use serde_json::Value;

use super::generation::{generation_methods, setter};
use super::{CallOptions, Execute, ExecuteExt};
use crate::api::{CompletionRequest, CompletionResponse};
use crate::request::Operation;
use crate::stream::StreamKind;

/// `client.completions`: the legacy text completion API.
#[derive(Debug, Clone)]
pub struct Completions<E> {
    exec: E,
    options: Arc<CallOptions>,
}

impl<E: Execute> Completions<E> {
    /// Wraps an executor.
    pub fn new(exec: E) -> Self {
        Self::with_options(exec, Arc::default())
    }

    pub(crate) fn with_options(exec: E, options: Arc<CallOptions>) -> Self {
        Completions { exec, options }
    }

    /// Starts a request; set `model` and `prompt`, then `send()` or `send_stream()`.
    pub fn create(&self) -> CompletionBuilder<E> {
        CompletionBuilder {
            exec: self.exec.clone(),
            request: CompletionRequest::default(),
            session: None,
            options: CallOptions::clone(&self.options),
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
    generation_methods!(Operation::Completions);

    /// The prompt: a string, an array of strings, or token ids.
    pub fn prompt(mut self, prompt: impl Into<Value>) -> Self {
        self.request.prompt = prompt.into();
        self
    }

    setter!(/// Echo the prompt.
        echo: bool => echo);
    setter!(/// Log probabilities per token.
        logprobs: u32 => logprobs);

    /// Sends and waits for the whole answer.
    pub fn send(mut self) -> E::Output<CompletionResponse> {
        self.request.sampling.stream = Some(false);
        self.exec.execute(self.json_spec())
    }

    /// Sends as a stream of [`StreamEvent`](crate::StreamEvent)s (`Content` carries the text).
    pub fn send_stream(mut self) -> E::Output<E::Stream> {
        let spec = self.stream_spec(StreamKind::Completions);
        self.exec.execute_stream(spec)
    }
}

impl<E: ExecuteExt> CompletionBuilder<E> {
    /// Sends as a stream of `Result<Chunk, VllmError>`, each chunk whole with its `text`,
    /// `logprobs` and `finish_reason` (see
    /// [`ChatCompletionBuilder::send_chunks`](super::ChatCompletionBuilder::send_chunks)).
    pub fn send_chunks(mut self) -> E::Output<E::Chunks> {
        let spec = self.stream_spec(StreamKind::CompletionsChunks);
        self.exec.execute_chunks(spec)
    }
}
