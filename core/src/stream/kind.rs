//! [`StreamKind`]: which endpoint's stream a decoder reads, and into what.

/// Which endpoint's stream is decoded, and into what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamKind {
    /// `/v1/chat/completions` (and the streamed audio transcriptions and translations, which
    /// send the same chunks): `chat.completion.chunk` objects with `choices[].delta`, decoded
    /// into [`StreamEvent`](crate::StreamEvent)s (`Content`, `Reasoning`, tool calls, …).
    Chat,
    /// `/v1/completions`: `text_completion` objects with `choices[].text`, decoded into
    /// [`StreamEvent`](crate::StreamEvent)s.
    Completions,
    /// The same chunks as [`Chat`](Self::Chat), each handed out whole as
    /// [`StreamEvent::Chunk`](crate::StreamEvent::Chunk) (with its id, model and log
    /// probabilities), for the result-shaped view of a stream.
    ChatChunks,
    /// The same chunks as [`Completions`](Self::Completions), each handed out whole as
    /// [`StreamEvent::Chunk`](crate::StreamEvent::Chunk).
    CompletionsChunks,
    /// `/v1/responses`: typed, numbered events ([`crate::responses_stream`]), handed out as
    /// [`StreamEvent::Response`](crate::StreamEvent::Response).
    Responses,
}

impl StreamKind {
    /// Whether chunks are handed out whole ([`StreamEvent::Chunk`](crate::StreamEvent::Chunk)).
    pub fn is_chunks(self) -> bool {
        matches!(self, StreamKind::ChatChunks | StreamKind::CompletionsChunks)
    }

    /// Whether chunks carry `delta`s (chat) rather than `text` (completions).
    pub(crate) fn is_chat(self) -> bool {
        matches!(self, StreamKind::Chat | StreamKind::ChatChunks)
    }
}
