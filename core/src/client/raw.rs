//! `client.request(method, path)`: any endpoint, with a JSON or raw body, under the client's
//! policies — so that a new server endpoint never forces a user off the client.

use bytes::Bytes;
use http::{HeaderValue, Method};
use serde_json::Value;

use super::options::option_setters;
use super::{CallOptions, CallSpec, Decode, Execute, ExecuteExt};
use crate::error::VllmError;
use crate::request::{Operation, Route};
use crate::stream::StreamKind;

/// A request to any path, being built: see [`Client::request`](super::Client::request).
///
/// It is retried like every call (connect errors, timeouts, 408/429/5xx, `Retry-After`, the
/// budget, the breaker) — also when its method is not idempotent, as the typed operations
/// are: send an [`idempotency_key`](Self::idempotency_key) where a duplicate would hurt, or
/// `.max_retries(0)`.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until .send() or .send_stream()"]
pub struct RequestBuilder<E> {
    exec: E,
    route: Route,
    body: Result<Option<Value>, VllmError>,
    raw: Option<(HeaderValue, Bytes)>,
    options: CallOptions,
}

impl<E: Execute> RequestBuilder<E> {
    pub(crate) fn new(exec: E, options: CallOptions, method: Method, path: &str) -> Self {
        RequestBuilder {
            exec,
            route: Route::new(method, path),
            body: Ok(None),
            raw: None,
            options,
        }
    }

    /// A JSON body: anything `Serialize` (sent as `application/json`).
    pub fn json<B: serde::Serialize + ?Sized>(mut self, body: &B) -> Self {
        self.body = super::to_value(body).map(Some);
        self.raw = None;
        self
    }

    /// A body of raw bytes with its `Content-Type` (a content type a header cannot carry
    /// makes the call fail with [`VllmError::InvalidRequest`]).
    pub fn body(mut self, content_type: &str, bytes: impl Into<Bytes>) -> Self {
        match HeaderValue::from_str(content_type) {
            Ok(ct) => {
                self.raw = Some((ct, bytes.into()));
                self.body = Ok(None);
            }
            Err(_) => {
                self.body = Err(VllmError::InvalidRequest(format!(
                    "the content type {content_type:?} cannot be sent as a header"
                )))
            }
        }
        self
    }

    /// A multipart form (see [`Multipart`](crate::api::Multipart)).
    pub fn multipart(self, form: crate::api::Multipart) -> Self {
        let (content_type, bytes) = form.finish();
        let mut s = self;
        s.raw = Some((content_type, bytes));
        s.body = Ok(None);
        s
    }

    option_setters!();

    fn spec(&self, stream: Option<StreamKind>) -> CallSpec {
        let mut spec = match &self.raw {
            Some((ct, bytes)) => {
                let mut spec = CallSpec::raw(Operation::Custom, ct.clone(), bytes.clone());
                if let Err(e) = &self.body {
                    spec.body = Err(e.clone());
                }
                spec
            }
            None => match (&self.body, stream) {
                (Ok(Some(v)), Some(kind)) => {
                    CallSpec::stream(Operation::Custom, kind, Ok(v.clone()))
                }
                (body, _) => {
                    let mut spec = CallSpec::get(Operation::Custom);
                    spec.body = body.clone();
                    spec
                }
            },
        };
        spec.stream = stream;
        spec.with_route(self.route.clone())
            .with_options(&self.options)
    }

    /// Sends and reads the answer as `T`: `serde_json::Value`, `String`, `bytes::Bytes`,
    /// [`Json<YourType>`](super::Json), or any typed answer of this crate. A non-2xx answer
    /// is a [`VllmError::Api`] as for every operation.
    pub fn send<T: Decode + Send + 'static>(self) -> E::Output<T> {
        self.exec.execute(self.spec(None))
    }

    /// Sends and reads the answer as a stream of chat-like chunks, decoded into
    /// [`StreamEvent`](crate::StreamEvent)s (a JSON body gets `"stream": true`).
    pub fn send_stream(self) -> E::Output<E::Stream> {
        self.exec.execute_stream(self.spec(Some(StreamKind::Chat)))
    }
}

impl<E: ExecuteExt> RequestBuilder<E> {
    /// Sends and reads the answer as whole chunks (`Result<Chunk, VllmError>`).
    pub fn send_chunks(self) -> E::Output<E::Chunks> {
        self.exec
            .execute_chunks(self.spec(Some(StreamKind::ChatChunks)))
    }

    /// Sends and reads the answer as a Responses stream (typed, numbered events).
    pub fn send_responses_stream(self) -> E::Output<E::Responses> {
        self.exec
            .execute_responses(self.spec(Some(StreamKind::Responses)))
    }
}
