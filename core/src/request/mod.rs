//! Building `http::Request<Bytes>`: base URL joining, authentication, content negotiation.
//!
//! Base URLs are accepted the way people write them:
//!
//! | given | API root (`/v1/...`) | server root (`/health`, `/version`, `/tokenize`, `/detokenize`) |
//! |---|---|---|
//! | `http://host:8000/v1` | `http://host:8000/v1` | `http://host:8000` |
//! | `http://host:8000/v1/` | `http://host:8000/v1` | `http://host:8000` |
//! | `http://host:8000` | `http://host:8000/v1` | `http://host:8000` |
//! | `http://gw/vllm/v1` | `http://gw/vllm/v1` | `http://gw/vllm` |
//!
//! A URL that cannot be used (no scheme, not http or https, no host, spaces) is reported by the
//! first request as [`VllmError::InvalidRequest`], so that building a client never fails.
//!
//! | file | holds |
//! |---|---|
//! | this one | [`RequestConfig`] and building a request from [`RequestParts`], [`ApiKey`], header checks |
//! | `base_url.rs` | [`BaseUrl`]: the table above, and the URL of an operation |
//! | `operation.rs` | [`Operation`] (method, path, root of every API route), [`Route`], [`encode_path_segment`] |
//! | `endpoint.rs` | [`EndpointConfig`]: one server of a pool |

mod base_url;
mod endpoint;
mod operation;
mod template;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Uri};

pub use base_url::BaseUrl;
pub use endpoint::EndpointConfig;
pub use operation::{encode_path_segment, Operation, Route};
pub use template::Template;

use crate::error::VllmError;

/// The user agent sent unless the caller sets another.
pub const USER_AGENT: &str = concat!("vllm-client-rust/", env!("CARGO_PKG_VERSION"));

/// An API key. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    key: String,
    /// `Bearer <key>`, marked sensitive, made once (each request's copy shares its bytes);
    /// `None` when the key has characters a header cannot carry.
    bearer: Option<HeaderValue>,
}

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        let key = key.into();
        let bearer = HeaderValue::from_str(&format!("Bearer {key}"))
            .ok()
            .filter(|v| check_header_value("authorization", v).is_ok())
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        ApiKey { key, bearer }
    }
    /// The key itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.key
    }
    /// The `Authorization` header's value, `None` when the key cannot be sent in a header.
    pub(crate) fn bearer(&self) -> Option<&HeaderValue> {
        self.bearer.as_ref()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The body of a request.
#[derive(Debug, Clone, Copy)]
pub enum RequestBody<'a> {
    /// None (a `GET`, or a `POST` without a body).
    Empty,
    /// A JSON document, sent as `application/json`.
    Json(&'a serde_json::Value),
    /// Bytes of the given `Content-Type` (multipart form data, raw bytes), sent as they are.
    Raw {
        /// The `Content-Type` header's value.
        content_type: &'a HeaderValue,
        /// The bytes.
        bytes: &'a Bytes,
    },
}

/// The parts of a request besides the client's configuration, for
/// [`RequestConfig::build_with`].
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The operation.
    pub operation: Operation,
    /// Its method and path when it has no fixed one.
    pub route: Option<&'a Route>,
    /// The body.
    pub body: RequestBody<'a>,
    /// Whether the answer is read as an event stream (`Accept: text/event-stream`).
    pub stream: bool,
    /// Headers of this request alone, added last (they replace the client's of the same
    /// name).
    pub headers: Option<&'a HeaderMap>,
}

/// What every request of a client shares: where to send it and how to authenticate.
#[derive(Debug, Clone)]
pub struct RequestConfig {
    /// The base URL as the user gave it (parsed per request, so that building never fails).
    pub base_url: String,
    /// Several servers instead of `base_url` (empty: `base_url` alone). See [`crate::pool`].
    pub endpoints: Vec<EndpointConfig>,
    /// The API key, sent as `Authorization: Bearer`.
    pub api_key: Option<ApiKey>,
    /// Headers added to every request (before the client's own).
    pub default_headers: HeaderMap,
    /// The `User-Agent`.
    pub user_agent: String,
    /// Set when the builder was given something unusable (a bad header); every request then
    /// fails with it.
    pub invalid: Option<String>,
    /// `gen_ai.provider.name` of the calls (default: `"vllm"`), e.g. `"openai"` for a
    /// LiteLLM route to OpenAI. An endpoint of a pool may name its own.
    pub provider_name: Option<String>,
}

impl Default for RequestConfig {
    fn default() -> Self {
        RequestConfig {
            base_url: "http://localhost:8000/v1".to_owned(),
            endpoints: Vec::new(),
            api_key: None,
            default_headers: HeaderMap::new(),
            user_agent: USER_AGENT.to_owned(),
            invalid: None,
            provider_name: None,
        }
    }
}

impl RequestConfig {
    /// Builds the request for `operation` with an optional JSON body. The body is built once;
    /// retries re-send it by cheap clone of its `Bytes`. `Accept` asks for an event stream
    /// when the body says `"stream": true`.
    pub fn build(
        &self,
        operation: Operation,
        body: Option<&serde_json::Value>,
    ) -> Result<Request<Bytes>, VllmError> {
        let stream = body
            .and_then(|b| b.get("stream"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        self.build_with(RequestParts {
            operation,
            route: None,
            body: body.map_or(RequestBody::Empty, RequestBody::Json),
            stream,
            headers: None,
        })
    }

    /// Builds a request from its parts: the URL (the [`Route`]'s path on the server root, or
    /// the operation's), the body and its `Content-Type`, `Accept`, the client's headers, the
    /// `User-Agent`, the key, then the request's own headers. A route is kept in the
    /// request's extensions, so that a pool sends each attempt to the same path on its own
    /// endpoint ([`BaseUrl::url_for`]).
    pub fn build_with(&self, parts: RequestParts<'_>) -> Result<Request<Bytes>, VllmError> {
        if let Some(why) = &self.invalid {
            return Err(VllmError::InvalidRequest(why.clone()));
        }
        let base = BaseUrl::parse(self.first_url())?;
        self.build_on(&base, parts)
    }

    /// The URL requests are built for: the first endpoint's (the pool sends each attempt to
    /// its own), else the base URL.
    pub fn first_url(&self) -> &str {
        self.endpoints.first().map_or(&self.base_url, |e| &e.url)
    }

    /// As [`build_with`](Self::build_with), on `base` already parsed from
    /// [`first_url`](Self::first_url) (a client parses it once, not per call).
    pub fn build_on(
        &self,
        base: &BaseUrl,
        parts: RequestParts<'_>,
    ) -> Result<Request<Bytes>, VllmError> {
        let t = self.template_on(base, parts, || self.client_headers().map(Arc::new))?;
        Ok(t.into_request())
    }

    /// The headers every request of the client carries: the default headers, the
    /// `User-Agent`, and `Authorization` when there is a key. A client builds them once; each
    /// call's [`Template`] shares them.
    pub fn client_headers(&self) -> Result<HeaderMap, VllmError> {
        if let Some(why) = &self.invalid {
            return Err(VllmError::InvalidRequest(why.clone()));
        }
        let mut headers = HeaderMap::with_capacity(self.default_headers.len() + 2);
        for (name, value) in &self.default_headers {
            check_header_value(name.as_str(), value)?;
            headers.append(name.clone(), value.clone());
        }
        // The default is a static string: no copy per client.
        let ua = if self.user_agent == USER_AGENT {
            Ok(HeaderValue::from_static(USER_AGENT))
        } else {
            HeaderValue::from_str(&self.user_agent)
        }
        .map_err(|_| VllmError::InvalidRequest("the user agent is not a valid header".into()))?;
        check_header_value("user-agent", &ua)?;
        headers.insert(http::header::USER_AGENT, ua);
        if let Some(key) = &self.api_key {
            let v = key.bearer().ok_or_else(|| {
                VllmError::InvalidRequest("the API key has characters a header cannot carry".into())
            })?;
            headers.insert(AUTHORIZATION, v.clone());
        }
        Ok(headers)
    }

    /// Whether `other` gives its requests the same [`client_headers`](Self::client_headers).
    pub(crate) fn same_headers(&self, other: &RequestConfig) -> bool {
        self.invalid == other.invalid
            && self.user_agent == other.user_agent
            && self.api_key.as_ref().map(ApiKey::expose)
                == other.api_key.as_ref().map(ApiKey::expose)
            && self.default_headers == other.default_headers
    }

    /// The call's [`Template`] on `base`, sharing the `client`'s headers (asked for after
    /// the URL and the body are built, so that their errors come first).
    pub(crate) fn template_on(
        &self,
        base: &BaseUrl,
        parts: RequestParts<'_>,
        client: impl FnOnce() -> Result<Arc<HeaderMap>, VllmError>,
    ) -> Result<Template, VllmError> {
        if let Some(why) = &self.invalid {
            return Err(VllmError::InvalidRequest(why.clone()));
        }
        let (method, url) = match parts.route {
            Some(route) => {
                route.check()?;
                let url = format!("{}{}", base.server_root(), route.path());
                let url = Uri::try_from(url).map_err(|e| {
                    VllmError::InvalidRequest(format!("cannot build the request: {e}"))
                })?;
                (route.method().clone(), url)
            }
            None => (parts.operation.method(), base.uri(parts.operation)?),
        };
        let (body, raw_type) = match parts.body {
            RequestBody::Empty => (Bytes::new(), None),
            RequestBody::Json(v) => {
                let mut json = serde_json::to_vec(v).map_err(|e| {
                    VllmError::InvalidRequest(format!("cannot serialize the body: {e}"))
                })?;
                // Serializing doubles the buffer as it grows: a call keeps its body until its
                // end, and a long prompt would hold up to twice its size.
                json.shrink_to_fit();
                (Bytes::from(json), None)
            }
            RequestBody::Raw {
                content_type,
                bytes,
            } => (bytes.clone(), Some(content_type)),
        };
        let json = matches!(parts.body, RequestBody::Json(_));
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .body(body)
            .map_err(|e| VllmError::InvalidRequest(format!("cannot build the request: {e}")))?;
        if let Some(route) = parts.route {
            req.extensions_mut().insert(route.clone());
        }
        let client = client()?;
        // The call's own headers, kept apart from the client's: a raw body's type, then the
        // headers given for this call, which replace the others of the same names.
        if let Some(ct) = raw_type {
            req.headers_mut().insert(CONTENT_TYPE, ct.clone());
        }
        if let Some(own) = parts.headers {
            let headers = req.headers_mut();
            for name in own.keys() {
                headers.remove(name);
            }
            for (name, value) in own {
                check_header_value(name.as_str(), value)?;
                let mut value = value.clone();
                if is_secret_header(name) {
                    value.set_sensitive(true);
                }
                headers.append(name.clone(), value);
            }
        }
        Ok(Template::new(req, client, json, parts.stream))
    }
}

/// Whether a header carries a credential (its value is marked sensitive and never shown).
pub fn is_secret_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "api-key" | "x-api-key"
    )
}

/// Parses `name: value` pairs into a header map, for builders that take strings.
pub fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), VllmError> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| VllmError::InvalidRequest(format!("invalid header name {name:?}")))?;
    let v = HeaderValue::from_str(value)
        .map_err(|_| VllmError::InvalidRequest(format!("invalid value for header {name:?}")))?;
    check_header_value(n.as_str(), &v)?;
    Ok((n, v))
}

/// Whether every HTTP client can carry `value`: visible ASCII, spaces and tabs only.
///
/// HTTP allows other bytes ("obs-text"), but HTTP clients disagree about them (surf refuses
/// non-ASCII values, others send them raw), so a header one adapter sends and another refuses
/// would make the same program behave differently per runtime. It is refused when the client
/// is built, with the header's name (never its value, which may be a secret).
pub fn check_header_value(name: &str, value: &HeaderValue) -> Result<(), VllmError> {
    let ok = value
        .as_bytes()
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(VllmError::InvalidRequest(format!(
            "the value of header {name:?} has characters other than visible ASCII, which HTTP clients refuse"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT, CONTENT_TYPE};
    use http::Method;
    use serde_json::json;

    #[test]
    fn request_headers_and_body() {
        let cfg = RequestConfig {
            base_url: "http://127.0.0.1:1/v1".into(),
            api_key: Some(ApiKey::new("sk-secret")),
            ..Default::default()
        };
        let body = json!({"model": "m", "stream": true});
        let r = cfg.build(Operation::ChatCompletions, Some(&body)).unwrap();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri(), "http://127.0.0.1:1/v1/chat/completions");
        assert_eq!(r.headers()[AUTHORIZATION], "Bearer sk-secret");
        assert!(r.headers()[AUTHORIZATION].is_sensitive());
        assert_eq!(r.headers()[ACCEPT], "text/event-stream");
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert!(r.headers()[http::header::USER_AGENT]
            .to_str()
            .unwrap()
            .starts_with("vllm-client-rust/"));
        let sent: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(sent, body);
        let g = cfg.build(Operation::Health, None).unwrap();
        assert_eq!(g.method(), Method::GET);
        assert!(g.body().is_empty());
        assert!(!g.headers().contains_key(CONTENT_TYPE));
    }

    #[test]
    fn secrets_never_print() {
        let cfg = RequestConfig {
            api_key: Some(ApiKey::new("sk-secret")),
            ..Default::default()
        };
        assert!(!format!("{cfg:?}").contains("sk-secret"));
        assert!(!format!("{}", ApiKey::new("sk-secret")).contains("sk-secret"));
        let r = cfg.build(Operation::Models, None).unwrap();
        assert!(!format!("{r:?}").contains("sk-secret"));
    }

    #[test]
    fn bad_api_key_characters() {
        let cfg = RequestConfig {
            api_key: Some(ApiKey::new("sk\nsecret")),
            ..Default::default()
        };
        let e = cfg.build(Operation::Models, None).unwrap_err();
        assert!(!e.to_string().contains("secret"));
    }
}
