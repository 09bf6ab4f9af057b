//! [`EndpointConfig`]: one server of a pool — its base URL, weight, and its own key and
//! headers. Re-exported as [`crate::pool::EndpointConfig`].

use std::fmt;

use http::HeaderMap;

use super::{header_pair, ApiKey};

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
    /// the client fail with [`VllmError::InvalidRequest`](crate::VllmError::InvalidRequest) naming it).
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
