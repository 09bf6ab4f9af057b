//! [`CallSpec`]: what one call is — the operation (and its path when it has no fixed one), the
//! body (JSON, or raw bytes such as a multipart form), whether it streams, and the options of
//! this call alone.

use bytes::Bytes;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request};
use serde_json::Value;

use crate::client::CallOptions;
use crate::error::VllmError;
use crate::request::{
    BaseUrl, Operation, RequestBody, RequestConfig, RequestParts, Route, Template,
};
use crate::stream::StreamKind;

/// A body sent as it is, with its `Content-Type`: a multipart form (audio uploads), or any
/// bytes for `client.request(…)`.
#[derive(Debug, Clone)]
pub struct RawBody {
    /// The `Content-Type` header's value.
    pub content_type: HeaderValue,
    /// The bytes (shared: every attempt re-sends the same buffer).
    pub bytes: Bytes,
}

/// A call to make: which operation, with which body, read how.
#[derive(Debug, Clone)]
pub struct CallSpec {
    /// The operation (API route).
    pub operation: Operation,
    /// The JSON body (`None` for GET, or when [`raw_body`](Self::raw_body) is sent), or why
    /// it could not be built.
    pub body: Result<Option<Value>, VllmError>,
    /// `Some` for a streamed call.
    pub stream: Option<StreamKind>,
    /// A session key: calls with the same key go to the same endpoint of a pool while it is
    /// healthy and not overloaded (see [`crate::pool`]).
    pub affinity: Option<u64>,
    /// The method and path, for an operation without a fixed one (a response's id, a rerank
    /// API version, `client.request(…)`).
    pub route: Option<Route>,
    /// A body sent instead of the JSON one, as it is (a multipart form, raw bytes).
    pub raw_body: Option<RawBody>,
    /// Timeouts, retries, deadline and headers of this call alone (see [`CallOptions`]).
    pub options: CallOptions,
}

impl CallSpec {
    fn with_body(operation: Operation, body: Result<Option<Value>, VllmError>) -> Self {
        CallSpec {
            operation,
            body,
            stream: None,
            affinity: None,
            route: None,
            raw_body: None,
            options: CallOptions::default(),
        }
    }

    /// Sets the session key from a string (see [`affinity`](Self::affinity)).
    pub fn with_session(mut self, session: &str) -> Self {
        self.affinity = Some(crate::policy::routing::stable_hash(session.as_bytes()));
        self
    }

    /// Sets the method and path (see [`route`](Self::route)).
    pub fn with_route(mut self, route: Route) -> Self {
        self.route = Some(route);
        self
    }

    /// Sets this call's options (merged over any set before: see [`CallOptions::merged`]).
    pub fn with_options(mut self, options: &CallOptions) -> Self {
        self.options = std::mem::take(&mut self.options).merged(options);
        self
    }

    /// A call answered by one JSON document.
    pub fn json(operation: Operation, body: Result<Value, VllmError>) -> Self {
        Self::with_body(operation, body.map(Some))
    }

    /// A call without a body.
    pub fn get(operation: Operation) -> Self {
        Self::with_body(operation, Ok(None))
    }

    /// A call whose body is `bytes` of `content_type`, sent as they are (answered by one
    /// document; set [`stream`](Self::stream) to read an event stream).
    pub fn raw(operation: Operation, content_type: HeaderValue, bytes: Bytes) -> Self {
        let mut spec = Self::with_body(operation, Ok(None));
        spec.raw_body = Some(RawBody {
            content_type,
            bytes,
        });
        spec
    }

    /// A streamed call. The body always asks for a stream: `"stream": true` is set in it
    /// (whatever it said), so the request carries `Accept: text/event-stream` and the server
    /// is asked for what the call will read. A body that is not a JSON object is refused.
    pub fn stream(operation: Operation, kind: StreamKind, body: Result<Value, VllmError>) -> Self {
        let body = body.and_then(|mut v| match v.as_object_mut() {
            Some(object) => {
                object.insert("stream".to_owned(), Value::Bool(true));
                Ok(Some(v))
            }
            None => Err(VllmError::InvalidRequest(
                "the body of a stream request must be a JSON object".into(),
            )),
        });
        let mut spec = Self::with_body(operation, body);
        spec.stream = Some(kind);
        spec
    }

    /// The JSON body, when the call has one (for the prompt-size estimate, the model name in
    /// spans, session keys from the conversation).
    pub fn json_body(&self) -> Option<&Value> {
        match (&self.raw_body, &self.body) {
            (None, Ok(Some(v))) => Some(v),
            _ => None,
        }
    }

    /// The request, built once for the client's first endpoint (the driver re-sends it, and
    /// a pool re-targets it per attempt): its route or operation's URL, the body (raw bytes
    /// when given, else the JSON), `Accept: text/event-stream` for a streamed call (or a JSON
    /// body saying `"stream": true`), the client's headers, then this call's.
    pub fn build_request(&self, config: &RequestConfig) -> Result<Request<Bytes>, VllmError> {
        self.build_request_on(config, None)
    }

    /// As [`build_request`](Self::build_request), on the client's base URL already parsed
    /// (`None`: parse it).
    pub fn build_request_on(
        &self,
        config: &RequestConfig,
        base: Option<&BaseUrl>,
    ) -> Result<Request<Bytes>, VllmError> {
        let parts = self.parts()?;
        match base {
            Some(base) => config.build_on(base, parts),
            None => config.build_with(parts),
        }
    }

    /// The call's [`Template`] on the client's base URL, sharing the `client`'s headers.
    pub(crate) fn build_template_on(
        &self,
        config: &RequestConfig,
        base: Option<&BaseUrl>,
        client: impl FnOnce() -> Result<Arc<HeaderMap>, VllmError>,
    ) -> Result<Template, VllmError> {
        let parts = self.parts()?;
        match base {
            Some(base) => config.template_on(base, parts, client),
            None => {
                if let Some(why) = &config.invalid {
                    return Err(VllmError::InvalidRequest(why.clone()));
                }
                let base = BaseUrl::parse(config.first_url())?;
                config.template_on(&base, parts, client)
            }
        }
    }

    fn parts(&self) -> Result<RequestParts<'_>, VllmError> {
        let json = self.body.as_ref().map_err(Clone::clone)?;
        if let Some(why) = &self.options.invalid {
            return Err(VllmError::InvalidRequest(why.clone()));
        }
        let body = match (&self.raw_body, json) {
            (Some(raw), _) => RequestBody::Raw {
                content_type: &raw.content_type,
                bytes: &raw.bytes,
            },
            (None, Some(v)) => RequestBody::Json(v),
            (None, None) => RequestBody::Empty,
        };
        let stream = self.stream.is_some()
            || json
                .as_ref()
                .and_then(|b| b.get("stream"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
        Ok(RequestParts {
            operation: self.operation,
            route: self.route.as_ref(),
            body,
            stream,
            headers: (!self.options.headers.is_empty()).then_some(&self.options.headers),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use serde_json::json;

    fn config() -> RequestConfig {
        RequestConfig {
            base_url: "http://h:8000/v1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_route_sets_method_and_path_on_the_server_root() {
        let spec = CallSpec::get(Operation::RetrieveResponse)
            .with_route(Route::new(Method::GET, "/v1/responses/resp_1"));
        let r = spec.build_request(&config()).unwrap();
        assert_eq!(r.method(), Method::GET);
        assert_eq!(r.uri(), "http://h:8000/v1/responses/resp_1");
        assert_eq!(
            r.extensions().get::<Route>().unwrap().path(),
            "/v1/responses/resp_1"
        );
        let bad = CallSpec::get(Operation::Custom).with_route(Route::new(Method::GET, "/a b"));
        assert!(matches!(
            bad.build_request(&config()),
            Err(VllmError::InvalidRequest(_))
        ));
        let other_host =
            CallSpec::get(Operation::Custom).with_route(Route::new(Method::GET, "//evil/x"));
        assert!(other_host.build_request(&config()).is_err());
    }

    #[test]
    fn raw_bodies_keep_their_type_and_streams_ask_for_events() {
        let mut spec = CallSpec::raw(
            Operation::Transcriptions,
            HeaderValue::from_static("multipart/form-data; boundary=x"),
            Bytes::from_static(b"--x--\r\n"),
        );
        let r = spec.build_request(&config()).unwrap();
        assert_eq!(r.uri(), "http://h:8000/v1/audio/transcriptions");
        assert_eq!(
            r.headers()[http::header::CONTENT_TYPE],
            "multipart/form-data; boundary=x"
        );
        assert_eq!(r.headers()[http::header::ACCEPT], "application/json");
        assert_eq!(&r.body()[..], b"--x--\r\n");
        spec.stream = Some(StreamKind::Chat);
        let r = spec.build_request(&config()).unwrap();
        assert_eq!(r.headers()[http::header::ACCEPT], "text/event-stream");
        assert!(spec.json_body().is_none());
    }

    #[test]
    fn options_headers_go_last_and_bad_ones_fail_the_call() {
        let cfg = RequestConfig {
            default_headers: {
                let mut h = http::HeaderMap::new();
                h.insert("x-tenant", HeaderValue::from_static("client"));
                h
            },
            ..config()
        };
        let o = CallOptions::new()
            .header("x-tenant", "request")
            .idempotency_key("k");
        let spec =
            CallSpec::json(Operation::ChatCompletions, Ok(json!({"model": "m"}))).with_options(&o);
        let r = spec.build_request(&cfg).unwrap();
        assert_eq!(r.headers().get_all("x-tenant").iter().count(), 1);
        assert_eq!(r.headers()["x-tenant"], "request");
        assert_eq!(r.headers()["idempotency-key"], "k");
        let bad = CallSpec::get(Operation::Models)
            .with_options(&CallOptions::new().header("x", "\u{e9}"));
        assert!(matches!(
            bad.build_request(&cfg),
            Err(VllmError::InvalidRequest(_))
        ));
    }
}
