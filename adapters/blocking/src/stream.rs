//! [`EventIter`]: a streamed call as an `Iterator` of `StreamEvent`s.

use std::fmt;

use vllm_client_core::{StreamEvent, VllmError};

use crate::runner::{Runner, Step};

/// The events of a streamed call: `Content`, `Reasoning`, tool calls, `Usage`, … then exactly
/// one `Done` or `Error`, then the end (`None`).
///
/// Each `next()` blocks at most until the core's next deadline (time to first token, idle
/// between data events, attempt, overall) plus a small margin; see the crate docs.
/// Dropping it closes the connection (vLLM then aborts the generation) and frees the call's
/// concurrency slot.
pub struct EventIter {
    runner: Runner,
    first: Option<StreamEvent>,
    done: bool,
}

impl fmt::Debug for EventIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventIter")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl EventIter {
    /// Drives the call until its first event: a failure before any output (after retries) is
    /// returned as the error.
    pub(crate) fn start(mut runner: Runner) -> Result<EventIter, VllmError> {
        let first = match runner.step() {
            Step::Emit(ev) => ev,
            Step::Done(Err(e)) => return Err(e),
            Step::Done(Ok(_)) => StreamEvent::Error(VllmError::Truncated),
        };
        Ok(EventIter {
            runner,
            first: Some(first),
            done: false,
        })
    }

    /// Collects the text of choice 0 until the end: `Ok` on `Done`, the error otherwise.
    pub fn collect_content(self) -> Result<String, VllmError> {
        let mut text = String::new();
        for ev in self {
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

impl Iterator for EventIter {
    type Item = StreamEvent;

    fn next(&mut self) -> Option<StreamEvent> {
        if self.done {
            return None;
        }
        let ev = match self.first.take() {
            Some(ev) => ev,
            None => match self.runner.step() {
                Step::Emit(ev) => ev,
                Step::Done(_) => {
                    self.done = true;
                    return None;
                }
            },
        };
        self.done = ev.is_terminal();
        Some(ev)
    }
}
