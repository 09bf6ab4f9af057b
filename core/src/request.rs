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

use std::fmt;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Uri};

use crate::error::VllmError;

/// The user agent sent unless the caller sets another.
pub const USER_AGENT: &str = concat!("vllm-client-rust/", env!("CARGO_PKG_VERSION"));

/// An API key. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }
    /// The key itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
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

/// A parsed base URL: where `/v1/...` endpoints and root endpoints live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    api_root: String,
    server_root: String,
}

impl BaseUrl {
    /// Parses a base URL, tolerating a trailing slash and a missing `/v1`.
    pub fn parse(raw: &str) -> Result<BaseUrl, VllmError> {
        let bad = |why: &str| VllmError::InvalidRequest(format!("base URL {raw:?} {why}"));
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(bad("is empty"));
        }
        let uri: Uri = trimmed
            .parse()
            .map_err(|e| bad(&format!("is not a URL ({e})")))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            Some(other) => return Err(bad(&format!("has scheme {other:?}, not http or https"))),
            None => return Err(bad("has no scheme (expected http:// or https://)")),
        }
        let authority = uri.authority().ok_or_else(|| bad("has no host"))?.as_str();
        if authority.contains('@') {
            return Err(bad(
                "carries credentials; pass the API key with api_key() instead",
            ));
        }
        if uri.query().is_some() {
            return Err(bad("has a query string"));
        }
        let scheme = uri.scheme_str().unwrap_or("http");
        let path = uri.path().trim_end_matches('/');
        let (server_path, api_path) = match path.strip_suffix("/v1") {
            Some(prefix) => (prefix.to_owned(), path.to_owned()),
            None => (path.to_owned(), format!("{path}/v1")),
        };
        Ok(BaseUrl {
            api_root: format!("{scheme}://{authority}{api_path}"),
            server_root: format!("{scheme}://{authority}{server_path}"),
        })
    }

    /// Where `/v1/...` endpoints live, without a trailing slash.
    pub fn api_root(&self) -> &str {
        &self.api_root
    }

    /// Where root endpoints live, without a trailing slash.
    pub fn server_root(&self) -> &str {
        &self.server_root
    }

    /// The full URL of an operation.
    pub fn url(&self, operation: Operation) -> String {
        let root = if operation.under_v1() {
            &self.api_root
        } else {
            &self.server_root
        };
        format!("{root}{}", operation.path())
    }
}

/// Every operation (API route) the client calls: a method and a path below the API root or
/// the server root. Not to be confused with an *endpoint* of a pool, a server
/// ([`crate::pool::EndpointId`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/completions`
    Completions,
    /// `GET /v1/models`
    Models,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /tokenize`
    Tokenize,
    /// `POST /detokenize`
    Detokenize,
    /// `GET /health`
    Health,
    /// `GET /version`
    Version,
}

impl Operation {
    /// The path below its root.
    pub fn path(self) -> &'static str {
        match self {
            Operation::ChatCompletions => "/chat/completions",
            Operation::Completions => "/completions",
            Operation::Models => "/models",
            Operation::Embeddings => "/embeddings",
            Operation::Tokenize => "/tokenize",
            Operation::Detokenize => "/detokenize",
            Operation::Health => "/health",
            Operation::Version => "/version",
        }
    }

    /// Whether it lives under `/v1` (the others live at the server's root).
    pub fn under_v1(self) -> bool {
        matches!(
            self,
            Operation::ChatCompletions
                | Operation::Completions
                | Operation::Models
                | Operation::Embeddings
        )
    }

    /// The HTTP method.
    pub fn method(self) -> Method {
        match self {
            Operation::Models | Operation::Health | Operation::Version => Method::GET,
            _ => Method::POST,
        }
    }
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
        }
    }
}

impl RequestConfig {
    /// Builds the request for `operation` with an optional JSON body. The body is built once;
    /// retries re-send it by cheap clone of its `Bytes`.
    pub fn build(
        &self,
        operation: Operation,
        body: Option<&serde_json::Value>,
    ) -> Result<Request<Bytes>, VllmError> {
        if let Some(why) = &self.invalid {
            return Err(VllmError::InvalidRequest(why.clone()));
        }
        // With several endpoints the pool sends each attempt to its own; the first one's URL
        // builds the request.
        let base_url = self.endpoints.first().map_or(&self.base_url, |e| &e.url);
        let base = BaseUrl::parse(base_url)?;
        let stream = body
            .and_then(|b| b.get("stream"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let body = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| {
                VllmError::InvalidRequest(format!("cannot serialize the body: {e}"))
            })?),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(operation.method())
            .uri(base.url(operation))
            .body(body)
            .map_err(|e| VllmError::InvalidRequest(format!("cannot build the request: {e}")))?;
        let headers = req.headers_mut();
        for (name, value) in &self.default_headers {
            check_header_value(name.as_str(), value)?;
            headers.append(name.clone(), value.clone());
        }
        if operation.method() == Method::POST {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        let ua = HeaderValue::from_str(&self.user_agent).map_err(|_| {
            VllmError::InvalidRequest("the user agent is not a valid header".into())
        })?;
        check_header_value("user-agent", &ua)?;
        headers.insert(http::header::USER_AGENT, ua);
        if let Some(key) = &self.api_key {
            let mut v =
                HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                    VllmError::InvalidRequest(
                        "the API key has characters a header cannot carry".into(),
                    )
                })?;
            v.set_sensitive(true);
            check_header_value("authorization", &v).map_err(|_| {
                VllmError::InvalidRequest("the API key has characters a header cannot carry".into())
            })?;
            headers.insert(AUTHORIZATION, v);
        }
        Ok(req)
    }
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

/// One server of a pool: its base URL and, optionally, a weight, an API key and headers of its
/// own (they replace the client's for requests sent to it).
#[derive(Clone)]
pub struct EndpointConfig {
    /// The base URL, written as for [`ClientBuilder::base_url`](crate::client::ClientBuilder::base_url).
    pub url: String,
    /// Its share of the traffic relative to the others (default 1; 0 is taken as 1).
    pub weight: u32,
    /// Its own API key (default: the client's).
    pub api_key: Option<ApiKey>,
    /// Headers added to requests sent to it, after the client's.
    pub headers: HeaderMap,
    pub(crate) invalid: Option<String>,
}

impl fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may be secrets: only their names are shown.
        f.debug_struct("EndpointConfig")
            .field("url", &self.url)
            .field("weight", &self.weight)
            .field("api_key", &self.api_key)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EndpointConfig {
    /// An endpoint at `url`, weight 1, with the client's key and headers.
    pub fn new(url: impl Into<String>) -> Self {
        EndpointConfig {
            url: url.into(),
            weight: 1,
            api_key: None,
            headers: HeaderMap::new(),
            invalid: None,
        }
    }

    /// Its share of the traffic relative to the others.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Its own API key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key));
        self
    }

    /// A header for requests sent to it (visible ASCII only; a bad one makes every request of
    /// the client fail with [`VllmError::InvalidRequest`] naming it).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match header_pair(name, value) {
            Ok((n, v)) => {
                self.headers.insert(n, v);
            }
            Err(e) => self.invalid = Some(e.to_string()),
        }
        self
    }
}

impl From<&str> for EndpointConfig {
    fn from(url: &str) -> Self {
        EndpointConfig::new(url)
    }
}

impl From<String> for EndpointConfig {
    fn from(url: String) -> Self {
        EndpointConfig::new(url)
    }
}

impl From<&String> for EndpointConfig {
    fn from(url: &String) -> Self {
        EndpointConfig::new(url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base_url_forms() {
        for (given, api, root) in [
            ("http://h:8000/v1", "http://h:8000/v1", "http://h:8000"),
            ("http://h:8000/v1/", "http://h:8000/v1", "http://h:8000"),
            ("http://h:8000", "http://h:8000/v1", "http://h:8000"),
            ("http://h:8000/", "http://h:8000/v1", "http://h:8000"),
            (
                "https://gw/vllm/v1",
                "https://gw/vllm/v1",
                "https://gw/vllm",
            ),
            ("https://gw/vllm", "https://gw/vllm/v1", "https://gw/vllm"),
            (" http://h/v1 ", "http://h/v1", "http://h"),
        ] {
            let b = BaseUrl::parse(given).unwrap();
            assert_eq!((b.api_root(), b.server_root()), (api, root), "{given}");
        }
    }

    #[test]
    fn endpoints_find_their_root() {
        let b = BaseUrl::parse("http://h:8000/v1").unwrap();
        assert_eq!(
            b.url(Operation::ChatCompletions),
            "http://h:8000/v1/chat/completions"
        );
        assert_eq!(b.url(Operation::Models), "http://h:8000/v1/models");
        assert_eq!(b.url(Operation::Embeddings), "http://h:8000/v1/embeddings");
        assert_eq!(
            b.url(Operation::Completions),
            "http://h:8000/v1/completions"
        );
        assert_eq!(b.url(Operation::Health), "http://h:8000/health");
        assert_eq!(b.url(Operation::Version), "http://h:8000/version");
        assert_eq!(b.url(Operation::Tokenize), "http://h:8000/tokenize");
        assert_eq!(b.url(Operation::Detokenize), "http://h:8000/detokenize");
    }

    #[test]
    fn bad_base_urls_are_clear_errors() {
        for bad in [
            "",
            "localhost:8000",
            "ftp://h/v1",
            "http://",
            "not a url",
            "http://u:p@h/v1",
            "/v1",
        ] {
            let e = BaseUrl::parse(bad).unwrap_err();
            assert!(matches!(e, VllmError::InvalidRequest(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains("base URL"), "{e}");
        }
    }

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
