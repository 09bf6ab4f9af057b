//! Result-shaped views of a stream: the [`StreamEvent`]s of a call turned into
//! `Result<T, VllmError>` items that work with `?` and `TryStreamExt` — whole [`Chunk`]s of a
//! chat or completion stream, typed [`ResponseStreamEvent`]s of a Responses stream.
//!
//! The rule, the same for every view and every adapter (written once, here):
//!
//! | event | item |
//! |---|---|
//! | the view's own events (`Chunk`, `Response`) | `Some(Ok(item))` |
//! | `Done` | the end (`None`) |
//! | `Error(e)` | `Some(Err(e))`, then the end |
//! | the end of the events without a terminal one | `Some(Err(VllmError::Truncated))`, then the end |
//! | any other event | skipped |
//!
//! So a view never ends silently on a failure: an `Err` is its last item, and a success ends
//! with `None` right after the last `Ok` (for a Responses stream, that last `Ok` is
//! `Completed` or `Incomplete`).

use crate::api::{Chunk, ResponseStreamEvent};
use crate::error::VllmError;
use crate::event::StreamEvent;
use crate::responses_stream::ResponseCursor;

/// What one event becomes in a view.
#[derive(Debug)]
pub enum ViewStep<T> {
    /// An item to hand out.
    Item(Result<T, VllmError>),
    /// Nothing for this view.
    Skip,
    /// The view ends.
    End,
}

/// A type a view hands out, read from the call's events.
pub trait ViewItem: Sized {
    /// What `ev` becomes; `cursor` keeps a Responses stream's position.
    fn from_event(ev: StreamEvent, cursor: &mut ResponseCursor) -> Option<Self>;
}

impl ViewItem for Chunk {
    fn from_event(ev: StreamEvent, _cursor: &mut ResponseCursor) -> Option<Self> {
        match ev {
            StreamEvent::Chunk(c) => Some(*c),
            _ => None,
        }
    }
}

impl ViewItem for ResponseStreamEvent {
    fn from_event(ev: StreamEvent, cursor: &mut ResponseCursor) -> Option<Self> {
        match ev {
            StreamEvent::Response(r) => {
                if let Some(n) = r.sequence_number() {
                    cursor.last_sequence_number = Some(n);
                }
                if cursor.response_id.is_none() {
                    if let Some(resp) = r.response().filter(|resp| !resp.id.is_empty()) {
                        cursor.response_id = Some(resp.id.clone());
                    }
                }
                Some(*r)
            }
            _ => None,
        }
    }
}

/// The state of a view: whether it ended, and where a Responses stream is.
#[derive(Debug)]
pub struct ViewState<T> {
    done: bool,
    cursor: ResponseCursor,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<T> Default for ViewState<T> {
    fn default() -> Self {
        ViewState {
            done: false,
            cursor: ResponseCursor::default(),
            _item: std::marker::PhantomData,
        }
    }
}

impl<T: ViewItem> ViewState<T> {
    /// A view at its start.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether it ended (nothing more will come).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// For a Responses stream: its id and the last `sequence_number` handed out so far.
    pub fn cursor(&self) -> &ResponseCursor {
        &self.cursor
    }

    /// What the next event becomes (see the [module docs](self)).
    pub fn on_event(&mut self, ev: StreamEvent) -> ViewStep<T> {
        if self.done {
            return ViewStep::End;
        }
        match ev {
            StreamEvent::Done => {
                self.done = true;
                ViewStep::End
            }
            StreamEvent::Error(e) => {
                self.done = true;
                ViewStep::Item(Err(e))
            }
            other => match T::from_event(other, &mut self.cursor) {
                Some(item) => ViewStep::Item(Ok(item)),
                None => ViewStep::Skip,
            },
        }
    }

    /// The events ended: an `Err(Truncated)` when no terminal event came, once.
    pub fn on_end(&mut self) -> Option<Result<T, VllmError>> {
        if self.done {
            return None;
        }
        self.done = true;
        Some(Err(VllmError::Truncated))
    }

    /// The next item, pulling events from `next` (for iterators).
    pub fn pull(
        &mut self,
        mut next: impl FnMut() -> Option<StreamEvent>,
    ) -> Option<Result<T, VllmError>> {
        loop {
            if self.done {
                return None;
            }
            match next() {
                None => return self.on_end(),
                Some(ev) => match self.on_event(ev) {
                    ViewStep::Item(item) => return Some(item),
                    ViewStep::Skip => {}
                    ViewStep::End => return None,
                },
            }
        }
    }
}

/// A view over an iterator of events: the blocking client's result-shaped streams.
#[derive(Debug)]
pub struct ResultIter<I, T> {
    inner: I,
    state: ViewState<T>,
}

impl<I, T: ViewItem> ResultIter<I, T> {
    /// The view of `events`.
    pub fn new(events: I) -> Self {
        ResultIter {
            inner: events,
            state: ViewState::new(),
        }
    }

    /// The events underneath (e.g. for their `rate_limit()`).
    pub fn get_ref(&self) -> &I {
        &self.inner
    }

    /// For a Responses stream: its id and the last `sequence_number` handed out so far.
    pub fn cursor(&self) -> &ResponseCursor {
        self.state.cursor()
    }
}

impl<I: Iterator<Item = StreamEvent>, T: ViewItem> Iterator for ResultIter<I, T> {
    type Item = Result<T, VllmError>;

    fn next(&mut self) -> Option<Self::Item> {
        let inner = &mut self.inner;
        self.state.pull(|| inner.next())
    }
}

impl<I: Iterator<Item = StreamEvent>> ResultIter<I, Chunk> {
    /// Collects choice 0's text until the end: `Ok` after a success, the error otherwise.
    pub fn collect_content(self) -> Result<String, VllmError> {
        let mut text = String::new();
        for chunk in self {
            if let Some(s) = chunk?.content() {
                text.push_str(s);
            }
        }
        Ok(text)
    }
}

impl<I: Iterator<Item = StreamEvent>> ResultIter<I, ResponseStreamEvent> {
    /// Collects the answer's text (`response.output_text.delta`s) until the end: `Ok` after
    /// `Completed` or `Incomplete`, the error otherwise.
    pub fn collect_text(self) -> Result<String, VllmError> {
        let mut text = String::new();
        for ev in self {
            if let Some(s) = ev?.text_delta() {
                text.push_str(s);
            }
        }
        Ok(text)
    }

    /// Reads to the end and returns the final response (`Completed` or `Incomplete`), or
    /// the error that ended the stream.
    pub fn into_response(self) -> Result<crate::api::Response, VllmError> {
        let mut last = None;
        for ev in self {
            match ev? {
                ResponseStreamEvent::Completed { response, .. }
                | ResponseStreamEvent::Incomplete { response, .. } => last = Some(*response),
                _ => {}
            }
        }
        last.ok_or(VllmError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str) -> StreamEvent {
        let c: Chunk = serde_json::from_value(serde_json::json!({
            "id": "c", "choices": [{"index": 0, "delta": {"content": text}}]
        }))
        .unwrap();
        StreamEvent::Chunk(Box::new(c))
    }

    #[test]
    fn done_ends_error_is_last_and_nothing_follows() {
        let ok: Vec<_> = ResultIter::<_, Chunk>::new(
            vec![
                chunk("a"),
                StreamEvent::Content("skipped".into()),
                chunk("b"),
                StreamEvent::Done,
                chunk("x"),
            ]
            .into_iter(),
        )
        .collect();
        assert_eq!(ok.len(), 2);
        assert!(ok.iter().all(Result::is_ok));

        let failed: Vec<_> = ResultIter::<_, Chunk>::new(
            vec![
                chunk("a"),
                StreamEvent::Error(VllmError::Timeout),
                chunk("x"),
            ]
            .into_iter(),
        )
        .collect();
        assert_eq!(failed.len(), 2);
        assert!(matches!(failed[1], Err(VllmError::Timeout)));

        // Events that end without a terminal one: never a silent success.
        let cut: Vec<_> = ResultIter::<_, Chunk>::new(vec![chunk("a")].into_iter()).collect();
        assert!(matches!(cut.last(), Some(Err(VllmError::Truncated))));
        let mut empty = ResultIter::<_, Chunk>::new(std::iter::empty());
        assert!(matches!(empty.next(), Some(Err(VllmError::Truncated))));
        assert!(empty.next().is_none());
    }

    #[test]
    fn responses_view_keeps_the_cursor() {
        let mut dec = crate::stream::StreamDecoder::responses();
        dec.push(b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"output\":[]}}\n\n");
        dec.push(b"data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"m\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n");
        dec.push(b"data: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"output\":[]}}\n\n");
        let events: Vec<StreamEvent> = std::iter::from_fn(|| dec.poll_event()).collect();
        let mut view = ResultIter::<_, ResponseStreamEvent>::new(events.into_iter());
        let items: Vec<_> = view.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(items.len(), 3);
        assert!(items[2].is_terminal());
        assert_eq!(view.cursor().response_id.as_deref(), Some("resp_1"));
        assert_eq!(view.cursor().last_sequence_number, Some(2));
    }
}
