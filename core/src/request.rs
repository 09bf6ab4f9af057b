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

    /// The URL a request built as `template` goes to on this base: its [`Route`]'s path on
    /// this server root when it has one (kept in the request's extensions by
    /// [`RequestConfig::build_with`]), else [`url`](Self::url)`(operation)`. A pool sends each
    /// attempt to its endpoint with this.
    pub fn url_for(&self, operation: Operation, template: &Request<Bytes>) -> String {
        match template.extensions().get::<Route>() {
            Some(route) => format!("{}{}", self.server_root, route.path),
            None => self.url(operation),
        }
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
///
/// The operation names the call for observability (`gen_ai.operation.name`), for a breaker per
/// operation and for the token rate limit; operations whose path is not fixed (a response's
/// id, a rerank path, [`Custom`](Self::Custom)) get it from a [`Route`] on the call.
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
    /// `POST /v1/responses`
    Responses,
    /// `GET /v1/responses/{id}` (the id comes in the call's [`Route`])
    RetrieveResponse,
    /// `POST /v1/responses/{id}/cancel` (the id comes in the call's [`Route`])
    CancelResponse,
    /// `POST /v1/rerank` (or `/rerank`, `/v2/rerank` through a [`Route`])
    Rerank,
    /// `POST /score` (or `/v1/score` through a [`Route`])
    Score,
    /// `POST /classify`
    Classify,
    /// `POST /pooling`
    Pooling,
    /// `POST /v1/audio/transcriptions` (multipart)
    Transcriptions,
    /// `POST /v1/audio/translations` (multipart)
    Translations,
    /// `POST /v1/load_lora_adapter`
    LoadLoraAdapter,
    /// `POST /v1/unload_lora_adapter`
    UnloadLoraAdapter,
    /// Any other method and path: `client.request(method, path)` (given by the call's
    /// [`Route`]).
    Custom,
}

impl Operation {
    /// The path below its root (see [`under_v1`](Self::under_v1)). For operations whose
    /// path is not fixed, the common one (`RetrieveResponse` and `CancelResponse`: the
    /// collection, `/responses`; `Custom`: `""`, the root); a call gives the real one in its
    /// [`Route`].
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
            Operation::Responses | Operation::RetrieveResponse | Operation::CancelResponse => {
                "/responses"
            }
            Operation::Rerank => "/rerank",
            Operation::Score => "/score",
            Operation::Classify => "/classify",
            Operation::Pooling => "/pooling",
            Operation::Transcriptions => "/audio/transcriptions",
            Operation::Translations => "/audio/translations",
            Operation::LoadLoraAdapter => "/load_lora_adapter",
            Operation::UnloadLoraAdapter => "/unload_lora_adapter",
            Operation::Custom => "",
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
                | Operation::Responses
                | Operation::RetrieveResponse
                | Operation::CancelResponse
                | Operation::Rerank
                | Operation::Transcriptions
                | Operation::Translations
                | Operation::LoadLoraAdapter
                | Operation::UnloadLoraAdapter
        )
    }

    /// The HTTP method (`Custom`: `POST`; its [`Route`] says which).
    pub fn method(self) -> Method {
        match self {
            Operation::Models
            | Operation::Health
            | Operation::Version
            | Operation::RetrieveResponse => Method::GET,
            _ => Method::POST,
        }
    }

    /// Whether the call generates or reads tokens a token rate limit should charge for, and
    /// whose answer reports a `usage` (chat, completions, embeddings, responses, rerank,
    /// score, classify, pooling, audio).
    pub fn counts_tokens(self) -> bool {
        matches!(
            self,
            Operation::ChatCompletions
                | Operation::Completions
                | Operation::Embeddings
                | Operation::Responses
                | Operation::Rerank
                | Operation::Score
                | Operation::Classify
                | Operation::Pooling
        )
    }
}

/// A call's method and path when its [`Operation`] has no fixed one: a response's id, a
/// rerank API version, or anything through `client.request(method, path)`.
///
/// The path is relative to the **server root** (the base URL without its `/v1`), so it is
/// written as the server's documentation writes it: `/v1/responses/resp_1`, `/v2/rerank`,
/// `/metrics`. It may carry a query (`/v1/responses/resp_1?stream=true`). With several
/// endpoints each attempt goes to the same path on its own endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    method: Method,
    path: String,
}

impl Route {
    /// `method` on `path` (relative to the server root; a leading `/` is added if missing).
    /// A path that cannot be part of a URL (spaces, control characters, a fragment, a scheme)
    /// is refused when the request is built, with [`VllmError::InvalidRequest`].
    pub fn new(method: Method, path: impl Into<String>) -> Route {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        Route { method, path }
    }

    /// `method` on `/v1` + `path` (a path below the API root, as [`Operation::path`]).
    pub fn api(method: Method, path: &str) -> Route {
        Route::new(method, format!("/v1{path}"))
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path, relative to the server root.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn check(&self) -> Result<(), VllmError> {
        let p = &self.path;
        let bad = |why: &str| VllmError::InvalidRequest(format!("the path {p:?} {why}"));
        if p.starts_with("//") {
            return Err(bad("would name another host"));
        }
        if p.contains('#') {
            return Err(bad("has a fragment"));
        }
        if p.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b >= 0x80)
        {
            return Err(bad(
                "has spaces, control or non-ASCII characters (percent-encode them)",
            ));
        }
        Ok(())
    }
}

/// Percent-encodes `segment` for one path segment (RFC 3986 `pchar` minus `%`: unreserved
/// characters and `!$&'()*+,;=:@` are kept), so that an id such as a response id can never
/// change the path it is put into.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b':'
            | b'@' => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
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
        // With several endpoints the pool sends each attempt to its own; the first one's URL
        // builds the request.
        let base_url = self.endpoints.first().map_or(&self.base_url, |e| &e.url);
        let base = BaseUrl::parse(base_url)?;
        let (method, url) = match parts.route {
            Some(route) => {
                route.check()?;
                (
                    route.method.clone(),
                    format!("{}{}", base.server_root(), route.path),
                )
            }
            None => (parts.operation.method(), base.url(parts.operation)),
        };
        let (body, content_type) = match parts.body {
            RequestBody::Empty => (Bytes::new(), None),
            RequestBody::Json(v) => (
                Bytes::from(serde_json::to_vec(v).map_err(|e| {
                    VllmError::InvalidRequest(format!("cannot serialize the body: {e}"))
                })?),
                Some(HeaderValue::from_static("application/json")),
            ),
            RequestBody::Raw {
                content_type,
                bytes,
            } => (bytes.clone(), Some(content_type.clone())),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .body(body)
            .map_err(|e| VllmError::InvalidRequest(format!("cannot build the request: {e}")))?;
        if let Some(route) = parts.route {
            req.extensions_mut().insert(route.clone());
        }
        let headers = req.headers_mut();
        for (name, value) in &self.default_headers {
            check_header_value(name.as_str(), value)?;
            headers.append(name.clone(), value.clone());
        }
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, ct);
        }
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(if parts.stream {
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
        if let Some(own) = parts.headers {
            // Replace the client's headers of the same names, then add every value given.
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
        Ok(req)
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
    /// Its `gen_ai.provider.name` (default: the client's).
    pub provider_name: Option<String>,
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
            .field("provider_name", &self.provider_name)
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
            provider_name: None,
            invalid: None,
        }
    }

    /// Its `gen_ai.provider.name` in spans and metrics, when it differs from the client's
    /// (a gateway route to another provider: `"openai"`, `"anthropic"`, …).
    pub fn provider_name(mut self, name: impl Into<String>) -> Self {
        self.provider_name = Some(name.into());
        self
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
