//! The result-shaped streams ([`ChunkStream`], [`ResponseStream`] and their blocking twins)
//! and derived executors: the core's `ExecuteExt`, for both modes. The view rule itself —
//! what each event becomes — is the core's (`vllm_client_core::client::views`).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{Stream, StreamExt};
use vllm_client_core::api::{Chunk, Response, ResponseStreamEvent};
use vllm_client_core::call::CallSpec;
use vllm_client_core::client::views::{ResultIter, ViewItem, ViewState, ViewStep};
use vllm_client_core::client::{Execute, ExecuteExt};
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::RateLimitSnapshot;
use vllm_client_core::responses_stream::ResponseCursor;
use vllm_client_core::VllmError;

use crate::async_loop::{BoxFuture, EventStream};
use crate::blocking_loop::EventIter;
use crate::exec::{AsyncExec, BlockingExec};
use crate::transport::{BlockingTransport, Transport};

/// A view of an [`EventStream`] as results (see the core's `views` for the rule).
pub struct Results<T> {
    inner: EventStream,
    state: ViewState<T>,
}

/// The whole chunks of a chat, completion or transcription stream:
/// `Stream<Item = Result<Chunk, VllmError>>`, for `?` and `TryStreamExt`.
///
/// Each chunk carries its `id`, `model`, `logprobs`, `finish_reason` and `usage`. After a
/// success the stream ends right after its last chunk; a failure (a cut, a stall, an in-band
/// error) is its last item, an `Err`. Dropping it closes the connection.
pub type ChunkStream = Results<Chunk>;

/// The typed, numbered events of a Responses stream:
/// `Stream<Item = Result<ResponseStreamEvent, VllmError>>`.
///
/// A success ends with `Completed` (or `Incomplete`) and then the end of the stream; a failure
/// (`response.failed`, an `error` event, a cut, a stall) is the last item, an `Err`. The
/// response's id and the last `sequence_number` seen are kept ([`cursor`](Results::cursor)).
pub type ResponseStream = Results<ResponseStreamEvent>;

impl<T> fmt::Debug for Results<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Results").finish_non_exhaustive()
    }
}

impl<T: ViewItem> Results<T> {
    pub(crate) fn new(inner: EventStream) -> Self {
        Results {
            inner,
            state: ViewState::new(),
        }
    }

    /// What the server's rate-limit headers said, as of the response that started the
    /// stream (see `EventStream::rate_limit`).
    pub fn rate_limit(&self) -> Option<&RateLimitSnapshot> {
        self.inner.rate_limit()
    }

    /// For a Responses stream: the response's id and the last `sequence_number` handed out.
    pub fn cursor(&self) -> &ResponseCursor {
        self.state.cursor()
    }
}

impl<T: ViewItem + Unpin> Stream for Results<T> {
    type Item = Result<T, VllmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.state.is_done() {
                return Poll::Ready(None);
            }
            match this.inner.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(this.state.on_end()),
                Poll::Ready(Some(ev)) => match this.state.on_event(ev) {
                    ViewStep::Item(item) => return Poll::Ready(Some(item)),
                    ViewStep::Skip => {}
                    ViewStep::End => return Poll::Ready(None),
                },
            }
        }
    }
}

impl Results<Chunk> {
    /// Collects choice 0's text until the end: `Ok` after a success, the error otherwise.
    pub async fn collect_content(mut self) -> Result<String, VllmError> {
        let mut text = String::new();
        while let Some(chunk) = self.next().await {
            if let Some(s) = chunk?.content() {
                text.push_str(s);
            }
        }
        Ok(text)
    }
}

impl Results<ResponseStreamEvent> {
    /// Collects the answer's text (`response.output_text.delta`s) until the end: `Ok` after
    /// `Completed` or `Incomplete`, the error otherwise.
    pub async fn collect_text(mut self) -> Result<String, VllmError> {
        let mut text = String::new();
        while let Some(ev) = self.next().await {
            if let Some(s) = ev?.text_delta() {
                text.push_str(s);
            }
        }
        Ok(text)
    }

    /// Reads to the end and returns the final response (`Completed` or `Incomplete`), or the
    /// error that ended the stream.
    pub async fn into_response(mut self) -> Result<Response, VllmError> {
        let mut last = None;
        while let Some(ev) = self.next().await {
            match ev? {
                ResponseStreamEvent::Completed { response, .. }
                | ResponseStreamEvent::Incomplete { response, .. } => last = Some(*response),
                _ => {}
            }
        }
        last.ok_or(VllmError::Truncated)
    }
}

/// The blocking twin of [`ChunkStream`]: `Iterator<Item = Result<Chunk, VllmError>>`.
pub type ChunkIter = ResultIter<EventIter, Chunk>;
/// The blocking twin of [`ResponseStream`]:
/// `Iterator<Item = Result<ResponseStreamEvent, VllmError>>`.
pub type ResponseIter = ResultIter<EventIter, ResponseStreamEvent>;

impl<T: Transport> ExecuteExt for AsyncExec<T> {
    type Chunks = ChunkStream;
    type Responses = ResponseStream;

    fn execute_chunks(&self, spec: CallSpec) -> BoxFuture<ChunkStream> {
        let start = self.execute_stream(spec);
        Box::pin(async move { start.await.map(Results::new) })
    }

    fn execute_responses(&self, spec: CallSpec) -> BoxFuture<ResponseStream> {
        let start = self.execute_stream(spec);
        Box::pin(async move { start.await.map(Results::new) })
    }

    fn derive(&self, config: ClientConfig) -> Self {
        crate::exec::Exec::derive(self, config)
    }
}

impl<T: BlockingTransport> ExecuteExt for BlockingExec<T> {
    type Chunks = ChunkIter;
    type Responses = ResponseIter;

    fn execute_chunks(&self, spec: CallSpec) -> Result<ChunkIter, VllmError> {
        self.execute_stream(spec).map(ResultIter::new)
    }

    fn execute_responses(&self, spec: CallSpec) -> Result<ResponseIter, VllmError> {
        self.execute_stream(spec).map(ResultIter::new)
    }

    fn derive(&self, config: ClientConfig) -> Self {
        crate::exec::Exec::derive(self, config)
    }
}
