//! [`BaseUrl`]: a base URL as people write it, parsed into the API root (`/v1/...`) and the
//! server root (`/health`, `/tokenize`, ...) — the table of accepted forms is in the
//! [module docs](super).

use bytes::Bytes;
use http::{Request, Uri};

use super::{Operation, Route};
use crate::error::VllmError;

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
    /// [`RequestConfig::build_with`](super::RequestConfig::build_with)), else
    /// [`url`](Self::url)`(operation)`. A pool sends each attempt to its endpoint with this.
    pub fn url_for(&self, operation: Operation, template: &Request<Bytes>) -> String {
        match template.extensions().get::<Route>() {
            Some(route) => format!("{}{}", self.server_root, route.path()),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
