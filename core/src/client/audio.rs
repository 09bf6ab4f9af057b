//! `client.audio()`: speech to text — transcriptions and translations, uploaded as a
//! multipart form, answered as one document or streamed as chat-like chunks.

use bytes::Bytes;

use super::options::option_setters;
use super::{CallOptions, CallSpec, Execute, ExecuteExt};
use crate::api::{AudioRequest, Transcription};
use crate::error::VllmError;
use crate::request::Operation;
use crate::stream::StreamKind;

/// An entry point of [`Audio`]: `name(model, file, file_name, content_type)` starts an
/// [`AudioBuilder`] uploading `file` to `operation`. Transcription and translation take the
/// same upload and differ only in their operation.
macro_rules! upload {
    ($(#[$doc:meta])* $name:ident => $operation:expr) => {
        $(#[$doc])*
        pub fn $name(
            &self,
            model: impl Into<String>,
            file: impl Into<Bytes>,
            file_name: &str,
            content_type: &str,
        ) -> AudioBuilder<E> {
            AudioBuilder {
                exec: self.exec.clone(),
                operation: $operation,
                request: AudioRequest::new(model, file, file_name, content_type),
                options: self.options.clone(),
            }
        }
    };
}

/// `client.audio()`.
#[derive(Debug, Clone)]
pub struct Audio<E> {
    exec: E,
    options: CallOptions,
}

impl<E: Execute> Audio<E> {
    pub(crate) fn new(exec: E, options: CallOptions) -> Self {
        Audio { exec, options }
    }

    upload!(
        /// `POST /v1/audio/transcriptions`: the speech in `file` as text, in its language.
        /// `file_name` (`"speech.wav"`) tells the server the format when `content_type` does
        /// not.
        transcription => Operation::Transcriptions
    );

    upload!(
        /// `POST /v1/audio/translations`: the speech in `file` translated to English text.
        translation => Operation::Translations
    );
}

/// A transcription or translation being built. The upload is built once (the file's bytes are
/// shared, not copied per attempt) and re-sent by every retry.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until .send() or .send_stream()"]
pub struct AudioBuilder<E> {
    exec: E,
    operation: Operation,
    request: AudioRequest,
    options: CallOptions,
}

impl<E: Execute> AudioBuilder<E> {
    /// The spoken language (ISO-639-1), when known: faster and more accurate.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.request.language = Some(language.into());
        self
    }

    /// Text to guide the style, or the previous segment's transcript.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.request.prompt = Some(prompt.into());
        self
    }

    /// `json` (default) or `verbose_json` for [`send`](Self::send); `text`, `srt` or `vtt`
    /// for [`send_text`](Self::send_text).
    pub fn response_format(mut self, format: impl Into<String>) -> Self {
        self.request.response_format = Some(format.into());
        self
    }

    /// Sampling temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.request.temperature = Some(t);
        self
    }

    /// `word` and/or `segment` timestamps (with `verbose_json`).
    pub fn timestamp_granularity(mut self, granularity: impl Into<String>) -> Self {
        self.request
            .timestamp_granularities
            .push(granularity.into());
        self
    }

    /// Another form field (vLLM's `seed`, `top_p`, `to_language`, …), sent as text.
    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.fields.push((name.into(), value.into()));
        self
    }

    /// The request as it stands.
    pub fn request(&self) -> &AudioRequest {
        &self.request
    }

    option_setters!();

    fn spec(&self, stream: Option<StreamKind>) -> CallSpec {
        let (content_type, body) = self.request.to_form(stream.is_some()).finish();
        let mut spec =
            CallSpec::raw(self.operation, content_type, body).with_options(&self.options);
        spec.stream = stream;
        spec
    }

    /// Uploads and waits for the text (`json` or `verbose_json`).
    pub fn send(self) -> E::Output<Transcription> {
        let spec = if self.request.wants_text() {
            let mut spec = self.spec(None);
            spec.body = Err(VllmError::InvalidRequest(
                "a text, srt or vtt answer is plain text: use send_text()".into(),
            ));
            spec
        } else {
            self.spec(None)
        };
        self.exec.execute(spec)
    }

    /// Uploads and waits for the answer as text (`text`, `srt` or `vtt` formats; with `json`
    /// the JSON document as text).
    pub fn send_text(self) -> E::Output<String> {
        self.exec.execute(self.spec(None))
    }

    /// Uploads and streams the text as [`StreamEvent::Content`](crate::StreamEvent) events
    /// (vLLM sends chat-like chunks, then `[DONE]`).
    pub fn send_stream(self) -> E::Output<E::Stream> {
        self.exec.execute_stream(self.spec(Some(StreamKind::Chat)))
    }
}

impl<E: ExecuteExt> AudioBuilder<E> {
    /// Uploads and streams whole chunks as `Result<Chunk, VllmError>`.
    pub fn send_chunks(self) -> E::Output<E::Chunks> {
        self.exec
            .execute_chunks(self.spec(Some(StreamKind::ChatChunks)))
    }
}
