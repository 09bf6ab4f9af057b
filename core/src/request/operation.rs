//! [`Operation`]: every API route the client calls, with its method, its path and the root it
//! lives under; [`Route`], a call's own method and path when its operation has no fixed one.

use http::Method;

use crate::error::VllmError;

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

    /// Refuses a path that cannot be part of a URL.
    pub(super) fn check(&self) -> Result<(), VllmError> {
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
