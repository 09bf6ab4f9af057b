//! `from_env()`: a client configured from environment variables, the way the OpenAI SDKs
//! read `OPENAI_BASE_URL` and `OPENAI_API_KEY`.

use std::fmt;

use super::{ClientBuilder, Execute};
use crate::request::ApiKey;

/// Where the base URL is read, first set (and non-empty) wins.
pub const BASE_URL_VARS: [&str; 2] = ["VLLM_BASE_URL", "OPENAI_BASE_URL"];
/// Where the API key is read, first set (and non-empty) wins.
pub const API_KEY_VARS: [&str; 2] = ["VLLM_API_KEY", "OPENAI_API_KEY"];

/// What the environment says: the base URL and the API key, each from the first of
/// [`BASE_URL_VARS`] / [`API_KEY_VARS`] that is set and not blank. Its `Debug` never shows
/// the key.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnvConfig {
    /// The base URL, and the variable it came from.
    pub base_url: Option<(String, &'static str)>,
    /// The API key, and the variable it came from.
    pub api_key: Option<(ApiKey, &'static str)>,
}

impl fmt::Debug for EnvConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|(_, var)| var))
            .finish()
    }
}

impl EnvConfig {
    /// Reads the process environment.
    pub fn from_env() -> EnvConfig {
        Self::read(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads variables through `lookup` (for tests, or another source of settings).
    pub fn read(lookup: impl Fn(&str) -> Option<String>) -> EnvConfig {
        let first = |names: [&'static str; 2]| {
            names.into_iter().find_map(|n| {
                lookup(n)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .map(|v| (v, n))
            })
        };
        EnvConfig {
            base_url: first(BASE_URL_VARS),
            api_key: first(API_KEY_VARS).map(|(k, n)| (ApiKey::new(k), n)),
        }
    }

    /// Applies what was found to `builder` (what was not found leaves it as it is).
    pub fn apply<E: Execute>(&self, mut builder: ClientBuilder<E>) -> ClientBuilder<E> {
        if let Some((url, _)) = &self.base_url {
            builder = builder.base_url(url.clone());
        }
        if let Some((key, _)) = &self.api_key {
            builder = builder.api_key(key.expose());
        }
        builder
    }
}

impl<E: Execute> ClientBuilder<E> {
    /// Sets the base URL and the API key from the environment: `VLLM_BASE_URL` (else
    /// `OPENAI_BASE_URL`) and `VLLM_API_KEY` (else `OPENAI_API_KEY`); an unset or blank
    /// variable leaves the setting as it is. Call it first and override after, or last to
    /// let the environment win.
    pub fn from_env(self) -> Self {
        EnvConfig::from_env().apply(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> EnvConfig {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvConfig::read(|n| map.get(n).cloned())
    }

    #[test]
    fn vllm_first_then_openai_blank_is_unset() {
        let e = env(&[
            ("VLLM_BASE_URL", "http://a/v1"),
            ("OPENAI_BASE_URL", "http://b/v1"),
            ("OPENAI_API_KEY", "sk-openai"),
        ]);
        assert_eq!(e.base_url, Some(("http://a/v1".into(), "VLLM_BASE_URL")));
        let (key, var) = e.api_key.clone().unwrap();
        assert_eq!((key.expose(), var), ("sk-openai", "OPENAI_API_KEY"));
        assert!(!format!("{e:?}").contains("sk-openai"));

        let e = env(&[("VLLM_BASE_URL", "  "), ("OPENAI_BASE_URL", "http://b/v1")]);
        assert_eq!(e.base_url, Some(("http://b/v1".into(), "OPENAI_BASE_URL")));
        assert_eq!(e.api_key, None);
        assert_eq!(env(&[]), EnvConfig::default());
    }
}
