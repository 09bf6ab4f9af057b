//! [`BaseUrl`]: a base URL as people write it, parsed into the API root (`/v1/...`) and the
//! server root (`/health`, `/tokenize`, ...) — the table of accepted forms is in the
//! [module docs](super).

use std::sync::OnceLock;

use bytes::Bytes;
use http::{Request, Uri};

use super::{Operation, Route};
use crate::error::VllmError;

/// A parsed base URL: where `/v1/...` endpoints and root endpoints live.
#[derive(Clone)]
pub struct BaseUrl {
    api_root: String,
    server_root: String,
    /// Each fixed operation's URL, parsed the first time it is asked for: a client's calls
    /// then share its bytes instead of formatting and parsing a URL each.
    uris: [OnceLock<Uri>; CACHED_OPERATIONS],
}

/// The operations whose URL is cached: every one up to [`Operation::Custom`], the last.
const CACHED_OPERATIONS: usize = Operation::Custom as usize + 1;

impl PartialEq for BaseUrl {
    fn eq(&self, other: &Self) -> bool {
        self.api_root == other.api_root && self.server_root == other.server_root
    }
}

impl Eq for BaseUrl {}

impl std::fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseUrl")
            .field("api_root", &self.api_root)
            .field("server_root", &self.server_root)
            .finish_non_exhaustive()
    }
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
            uris: std::array::from_fn(|_| OnceLock::new()),
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

    /// [`url_for`](Self::url_for), parsed; an operation's own URL is parsed once per base.
    pub fn uri_for(
        &self,
        operation: Operation,
        template: &Request<Bytes>,
    ) -> Result<Uri, VllmError> {
        match template.extensions().get::<Route>() {
            // A route's path is the call's own: parsed each time, not cached.
            Some(_) => parse_uri(self.url_for(operation, template)),
            None => self.uri(operation),
        }
    }

    /// The full URL of an operation, parsed (once per base: later calls share its bytes).
    pub fn uri(&self, operation: Operation) -> Result<Uri, VllmError> {
        let Some(cell) = self.uris.get(operation as usize) else {
            return parse_uri(self.url(operation));
        };
        if let Some(uri) = cell.get() {
            return Ok(uri.clone());
        }
        let uri = parse_uri(self.url(operation))?;
        Ok(cell.get_or_init(|| uri).clone())
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

fn parse_uri(url: String) -> Result<Uri, VllmError> {
    Uri::try_from(url).map_err(|e| VllmError::InvalidRequest(format!("cannot build the URL: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operations_uri_is_parsed_once_and_shared() {
        let b = BaseUrl::parse("http://h:8000").unwrap();
        let first = b.uri(Operation::ChatCompletions).unwrap();
        let again = b.uri(Operation::ChatCompletions).unwrap();
        assert_eq!(first, "http://h:8000/v1/chat/completions");
        assert_eq!(again, first);
        // The same bytes, not a second parse.
        assert_eq!(first.path().as_ptr(), again.path().as_ptr());
        assert_eq!(b.uri(Operation::Health).unwrap(), "http://h:8000/health");
        assert_eq!(
            format!("{b:?}"),
            r#"BaseUrl { api_root: "http://h:8000/v1", server_root: "http://h:8000", .. }"#
        );
        assert_eq!(b.clone(), b);
    }

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
