//! [`Template`]: a call's request as the call keeps it until its last attempt.
//!
//! A call keeps its request for retries, hedges and resumes, and a stream keeps it for its
//! whole life. Its headers are mostly the client's (default headers, `User-Agent`, the key),
//! the same for every call: a header map of its own was the largest allocation an open stream
//! held besides its connection (over 600 bytes for three headers). So a template holds the
//! client's headers shared, built once per client, and only what is the call's own: its
//! `Content-Type`, whether it streams (`Accept`), and the headers given for this call alone.
//! Each attempt's request gets the whole map, in the order a request was always built in.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request};

/// A call's request without the headers every call of its client shares.
#[derive(Debug, Clone)]
pub struct Template {
    /// Method, URL, body, a route in its extensions; its headers are the call's own only
    /// (usually none, and an empty map allocates nothing).
    request: Request<Bytes>,
    /// The client's headers: default headers, `User-Agent`, `Authorization`.
    client: Arc<HeaderMap>,
    /// Whether the body is JSON (`Content-Type: application/json`; a raw body's type is
    /// among the call's own headers).
    json: bool,
    stream: bool,
}

impl Template {
    /// A template of `request` (whose headers are the call's own), sent with the `client`'s
    /// headers, the JSON `Content-Type` when `json`, and the `Accept` of a stream or of a
    /// JSON answer.
    pub(crate) fn new(
        request: Request<Bytes>,
        client: Arc<HeaderMap>,
        json: bool,
        stream: bool,
    ) -> Template {
        Template {
            request,
            client,
            json,
            stream,
        }
    }

    /// The same request with another body (of the same type).
    pub fn with_body(&self, body: Bytes) -> Template {
        let r = &self.request;
        let mut request = Request::new(body);
        *request.method_mut() = r.method().clone();
        *request.uri_mut() = r.uri().clone();
        *request.version_mut() = r.version();
        *request.headers_mut() = r.headers().clone();
        *request.extensions_mut() = r.extensions().clone();
        Template {
            request,
            client: self.client.clone(),
            json: self.json,
            stream: self.stream,
        }
    }

    /// The request without the client's headers: its method, URL, body and route.
    pub fn request(&self) -> &Request<Bytes> {
        &self.request
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        self.request.body()
    }

    /// Every header of the request: the client's, `Content-Type`, `Accept`, then the call's
    /// own, which replace the others of the same name.
    pub fn headers(&self) -> HeaderMap {
        let own = self.request.headers();
        // Sized once: a clone of the client's map would be full, and grow at the next insert.
        let mut headers = HeaderMap::with_capacity(self.client.len() + 2 + own.len());
        for (name, value) in self.client.iter() {
            headers.append(name.clone(), value.clone());
        }
        if self.json {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(if self.stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        if !own.is_empty() {
            for name in own.keys() {
                headers.remove(name);
            }
            for (name, value) in own {
                headers.append(name.clone(), value.clone());
            }
        }
        headers
    }

    /// The whole request, its extensions (a route) kept.
    pub fn into_request(self) -> Request<Bytes> {
        let headers = self.headers();
        let mut req = self.request;
        *req.headers_mut() = headers;
        req
    }

    /// The whole request (the body is shared `Bytes`; extensions are not copied).
    pub fn to_request(&self) -> Request<Bytes> {
        let r = &self.request;
        let mut req = Request::new(r.body().clone());
        *req.method_mut() = r.method().clone();
        *req.uri_mut() = r.uri().clone();
        *req.version_mut() = r.version();
        *req.headers_mut() = self.headers();
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{AUTHORIZATION, USER_AGENT};

    fn client() -> Arc<HeaderMap> {
        let mut h = HeaderMap::new();
        h.append("x-team", HeaderValue::from_static("a"));
        h.append(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(USER_AGENT, HeaderValue::from_static("ua"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        Arc::new(h)
    }

    #[test]
    fn the_request_has_the_clients_headers_then_its_own() {
        let mut own = Request::post("http://h/v1/chat/completions")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        own.headers_mut()
            .append("x-team", HeaderValue::from_static("b"));
        own.headers_mut()
            .append("x-team", HeaderValue::from_static("c"));
        let t = Template::new(own, client(), true, true);
        let r = t.to_request();
        assert_eq!(r.method(), http::Method::POST);
        assert_eq!(r.uri(), "http://h/v1/chat/completions");
        assert_eq!(r.body().as_ref(), b"{}");
        let h = r.headers();
        // The call's content type replaces a default one; its own headers replace the
        // client's of the same name, every value kept.
        assert_eq!(h[CONTENT_TYPE], "application/json");
        assert_eq!(h[ACCEPT], "text/event-stream");
        assert_eq!(h[USER_AGENT], "ua");
        assert_eq!(h[AUTHORIZATION], "Bearer k");
        let team: Vec<_> = h.get_all("x-team").iter().collect();
        assert_eq!(team, ["b", "c"]);
        assert_eq!(h.len(), 6);
    }

    #[test]
    fn without_a_body_type_the_clients_is_kept_and_accept_says_json() {
        let own = Request::get("http://h/v1/models")
            .body(Bytes::new())
            .unwrap();
        let t = Template::new(own, client(), false, false);
        let h = t.headers();
        assert_eq!(h[CONTENT_TYPE], "text/plain");
        assert_eq!(h[ACCEPT], "application/json");
        // Nothing of the call's own is allocated for none.
        assert_eq!(t.request().headers().capacity(), 0);
    }
}
