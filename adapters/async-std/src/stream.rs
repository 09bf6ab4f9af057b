//! [`EventStream`]: a streamed call as a `futures::Stream` of `StreamEvent`s.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{BoxStream, Stream, StreamExt};
use vllm_client_core::{StreamEvent, VllmError};

use crate::runner::{Runner, Step};

/// The events of a streamed call: `Content`, `Reasoning`, tool calls, `Usage`, … then exactly
/// one `Done` or `Error`, then the end.
///
/// Dropping it closes the connection (vLLM then aborts the generation) and frees the call's
/// concurrency slot.
pub struct EventStream {
    inner: BoxStream<'static, StreamEvent>,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// Drives the call until its first event: a failure before any output (after retries) is
    /// returned as the error.
    pub(crate) async fn start(mut runner: Runner) -> Result<EventStream, VllmError> {
        let first = match runner.step().await {
            Step::Emit(ev) => ev,
            Step::Done(Err(e)) => return Err(e),
            Step::Done(Ok(_)) => StreamEvent::Error(VllmError::Truncated),
        };
        let done = first.is_terminal();
        let rest = futures_util::stream::unfold((runner, done), |(mut runner, done)| async move {
            if done {
                return None;
            }
            match runner.step().await {
                Step::Emit(ev) => {
                    let done = ev.is_terminal();
                    Some((ev, (runner, done)))
                }
                Step::Done(_) => None,
            }
        });
        Ok(EventStream {
            inner: futures_util::stream::once(async move { first })
                .chain(rest)
                .boxed(),
        })
    }

    /// Collects the text of choice 0 until the end: `Ok` on `Done`, the error otherwise.
    pub async fn collect_content(mut self) -> Result<String, VllmError> {
        let mut text = String::new();
        while let Some(ev) = self.next().await {
            match ev {
                StreamEvent::Content(s) => text.push_str(&s),
                StreamEvent::Done => return Ok(text),
                StreamEvent::Error(e) => return Err(e),
                _ => {}
            }
        }
        Err(VllmError::Truncated)
    }
}

impl Stream for EventStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.inner.poll_next_unpin(cx)
    }
}
