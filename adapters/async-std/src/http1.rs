//! [`Http1`]: the HTTP/1.1 backend under the adapter's surf client.
//!
//! surf's own backends are not used: async-h1's client (under `http_client::h1`) frames
//! response bodies wrongly in two cases — a body with neither `Content-Length` nor chunked
//! encoding, delimited by the server closing the connection (RFC 9112 §6.3 rule 8), is read as
//! empty, and a body that ends before its `Content-Length` is taken as complete — and its TLS
//! stack (async-tls 0.10, rustls 0.18, ring 0.16) is from 2020. This backend connects, does TLS
//! with the TLS feature chosen ([`crate::tls`]), writes the request, reads the response head
//! itself (bounded), and frames the body by RFC 9112 §6.3 with its own bounded chunked decoder
//! ([`crate::chunked`]). It only moves bytes: no retries, no timers (the core bounds every step
//! with its deadlines), one connection per request.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_std::net::TcpStream;
use futures_util::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, Cursor};
use http_client::{Config, Error, HttpClient, Request, Response};
use surf::http::url::Host;
use surf::http::{Body, Method, StatusCode};
use surf::Url;

use crate::chunked::Dechunk;
use crate::tls::Tls;

/// The largest response head read (status line and headers).
const MAX_HEAD: usize = 64 << 10;
/// The most header lines in a response head.
const MAX_HEADERS: usize = 128;
/// Bytes asked for per read of the head.
const HEAD_READ: usize = 8 << 10;
/// The most interim (1xx) responses skipped before the final one.
const MAX_INTERIM: usize = 16;

/// The status code as the server sent it, in the extensions of every response [`Http1`]
/// returns.
///
/// surf's `StatusCode` is an enum of the registered codes only: 499 (nginx's "client closed
/// request"), 529 (some gateways' "overloaded") or any private code has no variant. [`Http1`]
/// gives such a response its class's generic code (`400` for a 4xx, `500` for a 5xx, `200`,
/// `300`) in `status()`, and the real one here: `response.ext::<RawStatus>()`. The adapter
/// hands the core this one, so every status 100–599 reaches the core as the server sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStatus(pub u16);

/// surf's HTTP/1.1 backend for this adapter (plain TCP, or TLS for `https`).
///
/// The default client of [`AsyncStd`](crate::AsyncStd) runs on it. To bring your own surf
/// client (middleware), build it on this backend:
/// `surf::Client::with_http_client(Http1::new())`; surf's own backends read a body delimited by
/// the end of the connection as empty, do not notice a body shorter than its `Content-Length`,
/// and drop the status codes surf has no name for.
///
/// TLS is the one the crate's features chose ([`Http1::new`]); `Http1::with_rustls` and
/// `Http1::with_native_tls` take a configuration of your own (roots, client certificates).
///
/// Every request opens its own connection and sends `connection: close`; dropping the response
/// (or its body) closes the connection. No timer of its own: set none in the surf client
/// either, the core hands out every deadline. Of the [`Config`] given with
/// [`HttpClient::set_config`], `tcp_no_delay` is used.
#[derive(Clone)]
pub struct Http1 {
    config: Config,
    tls: Tls,
}

impl Http1 {
    /// A backend with `TCP_NODELAY` on and, for `https`, the TLS the crate's features chose:
    /// `native-tls` when it is on, otherwise rustls (ring with `rustls-ring`, otherwise
    /// aws-lc-rs) with the OS trust store. Without a TLS feature, an `https` URL is refused
    /// with an error naming the features.
    pub fn new() -> Self {
        Http1::with_tls(Tls::from_features())
    }

    /// A backend doing TLS with this rustls configuration (your roots, client certificate,
    /// crypto provider).
    #[cfg(any(feature = "rustls", feature = "rustls-ring"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "rustls", feature = "rustls-ring"))))]
    pub fn with_rustls(config: std::sync::Arc<vllm_client_tls::rustls::ClientConfig>) -> Self {
        Http1::with_tls(Tls::Rustls(futures_rustls::TlsConnector::from(config)))
    }

    /// A backend doing TLS with this native-tls connector (e.g. with
    /// `add_root_certificate`).
    #[cfg(feature = "native-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "native-tls")))]
    pub fn with_native_tls(connector: async_native_tls::TlsConnector) -> Self {
        Http1::with_tls(Tls::Native(std::sync::Arc::new(connector)))
    }

    fn with_tls(tls: Tls) -> Self {
        Http1 {
            config: Config::new()
                .set_http_keep_alive(false)
                .set_tcp_no_delay(true)
                .set_timeout(None),
            tls,
        }
    }

    /// The TLS library this backend uses for `https`: `"rustls"`, `"native-tls"`, or `"none"`
    /// (no TLS feature).
    pub fn tls_backend(&self) -> &'static str {
        self.tls.name()
    }
}

impl Default for Http1 {
    fn default() -> Self {
        Http1::new()
    }
}

impl fmt::Debug for Http1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http1")
            .field("config", &self.config)
            .field("tls", &self.tls.name())
            .finish()
    }
}

/// A connection that could not be established: TCP connect or the TLS handshake failed.
/// The adapter reports it as a connect failure (`VllmError::Connect`).
#[derive(Debug)]
pub(crate) struct ConnectFailed(pub(crate) io::Error);

impl fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ConnectFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

fn connect_failed(e: io::Error) -> Error {
    Error::new(StatusCode::BadGateway, ConnectFailed(e))
}

#[http_client::async_trait]
impl HttpClient for Http1 {
    async fn send(&self, mut req: Request) -> Result<Response, Error> {
        let url = req.url().clone();
        let secure = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(Error::from_str(
                    StatusCode::BadRequest,
                    format!("unsupported URL scheme {other:?}"),
                ))
            }
        };
        if secure && !self.tls.is_available() {
            return Err(Error::from_str(StatusCode::BadRequest, crate::tls::NO_TLS));
        }
        req.insert_header("connection", "close");
        let head_only = req.method() == Method::Head;
        let tcp = connect(&url).await?;
        tcp.set_nodelay(self.config.tcp_no_delay)?;
        if secure {
            let stream = self.tls.connect(&url, tcp).await.map_err(connect_failed)?;
            Ok(exchange(stream, req, head_only).await?)
        } else {
            Ok(exchange(tcp, req, head_only).await?)
        }
    }

    fn set_config(&mut self, config: Config) -> http_client::http_types::Result<()> {
        self.config = config;
        Ok(())
    }

    fn config(&self) -> &Config {
        &self.config
    }
}

/// Opens a TCP connection to the URL's host (each of its addresses in turn).
async fn connect(url: &Url) -> io::Result<TcpStream> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the URL has no port"))?;
    match url.host() {
        Some(Host::Domain(name)) => TcpStream::connect((name, port)).await,
        Some(Host::Ipv4(ip)) => TcpStream::connect((ip, port)).await,
        Some(Host::Ipv6(ip)) => TcpStream::connect((ip, port)).await,
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the URL has no host",
        )),
    }
}

/// Writes the request, reads the response head, and frames the rest of the connection as the
/// response body.
async fn exchange<S>(mut conn: S, mut req: Request, head_only: bool) -> io::Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    let body = req.take_body();
    let length = body.len();
    conn.write_all(&request_head(&req, length)?).await?;
    match length {
        Some(_) => {
            futures_util::io::copy(body, &mut conn).await?;
        }
        None => write_chunked(body, &mut conn).await?,
    }
    conn.flush().await?;
    let (mut res, framing, early) = read_head(&mut conn, head_only).await?;
    // Body bytes that came with the head are read first.
    let rest = Cursor::new(early).chain(conn);
    let body = match framing {
        Framing::Empty => return Ok(res),
        Framing::Chunked => {
            Body::from_reader(BufReader::new(Dechunk::new(BufReader::new(rest))), None)
        }
        Framing::Length(n) => Body::from_reader(BufReader::new(Exact::new(rest, n)), Some(n)),
        Framing::UntilClose => Body::from_reader(BufReader::new(rest), None),
    };
    // `set_body` adds `content-type: application/octet-stream` when the server sent none;
    // the headers stay as the server sent them.
    let had_type = res.header("content-type").is_some();
    res.set_body(body);
    if !had_type {
        res.remove_header("content-type");
    }
    Ok(res)
}

/// The request line and headers: `Host` first (from the URL unless given), then the request's
/// headers, then the framing of a body of `length` bytes (`None`: chunked).
fn request_head(req: &Request, length: Option<usize>) -> io::Result<Vec<u8>> {
    use std::io::Write;
    let url = req.url();
    let mut head = Vec::with_capacity(256);
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    write!(head, "{} {target} HTTP/1.1\r\n", req.method())?;
    if req.header("host").is_none() {
        let host = url
            .host_str()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the URL has no host"))?;
        match url.port() {
            Some(port) => write!(head, "host: {host}:{port}\r\n")?,
            None => write!(head, "host: {host}\r\n")?,
        }
    }
    for (name, values) in req.iter() {
        let framing = name.as_str().eq_ignore_ascii_case("content-length")
            || name.as_str().eq_ignore_ascii_case("transfer-encoding");
        if framing {
            continue;
        }
        for value in values.iter() {
            write!(head, "{name}: {value}\r\n")?;
        }
    }
    let bodiless = matches!(req.method(), Method::Get | Method::Head | Method::Options);
    match length {
        Some(0) if bodiless => {}
        Some(n) => write!(head, "content-length: {n}\r\n")?,
        None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    head.extend_from_slice(b"\r\n");
    Ok(head)
}

/// Sends a body of unknown length with chunked transfer coding.
async fn write_chunked<R, W>(mut body: R, conn: &mut W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = body.read(&mut buf).await?;
        if n == 0 {
            return conn.write_all(b"0\r\n\r\n").await;
        }
        conn.write_all(format!("{n:x}\r\n").as_bytes()).await?;
        conn.write_all(&buf[..n]).await?;
        conn.write_all(b"\r\n").await?;
    }
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body: a response to `HEAD`, 101, 204, 304.
    Empty,
    /// `Transfer-Encoding` whose final coding is `chunked`.
    Chunked,
    /// `Content-Length: n`; fewer bytes before the connection closes is an error.
    Length(usize),
    /// Neither, or a `Transfer-Encoding` not ending in `chunked`: until the connection closes.
    UntilClose,
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Reads until the end of the final response head, skipping interim (1xx) responses other
/// than 101 as RFC 9110 §15.2 asks; returns the response (empty body), its framing, and the
/// body bytes read along with the head.
async fn read_head<S: AsyncRead + Unpin>(
    conn: &mut S,
    head_only: bool,
) -> io::Result<(Response, Framing, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; HEAD_READ];
    let mut interim = 0;
    // Each round parses what is buffered, or reads at least one byte; every head is bounded
    // by MAX_HEAD and their number by MAX_INTERIM.
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut head = httparse::Response::new(&mut headers);
            match head.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let code = head.code.unwrap_or_default();
                    if (100..200).contains(&code) && code != 101 {
                        interim += 1;
                        if interim > MAX_INTERIM {
                            return Err(invalid(format!(
                                "more than {MAX_INTERIM} interim (1xx) responses"
                            )));
                        }
                        buf.drain(..len);
                        continue;
                    }
                    let (res, framing) = response(&head, head_only)?;
                    return Ok((res, framing, buf.split_off(len)));
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => {
                    return Err(invalid(format!(
                        "the response head is larger than {MAX_HEAD} bytes"
                    )))
                }
                Err(e) => return Err(invalid(format!("malformed response head: {e}"))),
            }
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            let message = if buf.is_empty() {
                "the connection closed before a response"
            } else {
                "the connection closed inside the response head"
            };
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, message));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// surf's name for `code`: the code itself when surf knows it, otherwise its class's generic
/// code (see [`RawStatus`]).
fn surf_status(code: u16) -> io::Result<StatusCode> {
    if let Ok(status) = StatusCode::try_from(code) {
        return Ok(status);
    }
    Ok(match code {
        100..=199 => StatusCode::Continue,
        200..=299 => StatusCode::Ok,
        300..=399 => StatusCode::MultipleChoice,
        400..=499 => StatusCode::BadRequest,
        500..=599 => StatusCode::InternalServerError,
        _ => return Err(invalid(format!("invalid status code {code} (not 100–599)"))),
    })
}

/// The parsed head as surf's response, and how its body is framed.
fn response(head: &httparse::Response<'_, '_>, head_only: bool) -> io::Result<(Response, Framing)> {
    let code = head.code.unwrap_or_default();
    let mut res = Response::new(surf_status(code)?);
    res.ext_mut().insert(RawStatus(code));
    let mut length: Option<usize> = None;
    let mut codings: Vec<String> = Vec::new();
    for h in head.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            // Repeated or comma-separated values must agree (RFC 9110 §8.6).
            for v in String::from_utf8_lossy(h.value).split(',') {
                let v = v.trim();
                let n = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<usize>().ok())
                    .flatten()
                    .ok_or_else(|| invalid(format!("invalid content-length {v:?}")))?;
                if length.is_some_and(|l| l != n) {
                    return Err(invalid("conflicting content-length values"));
                }
                length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            codings.extend(
                String::from_utf8_lossy(h.value)
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty()),
            );
        }
        // Values that are not ASCII cannot be carried by surf; the core would drop them too.
        if let Ok(value) = surf::http::headers::HeaderValue::from_bytes(h.value.to_vec()) {
            res.append_header(h.name, value);
        }
    }
    let framing = if head_only || matches!(code, 100..=199 | 204 | 304) {
        Framing::Empty
    } else if !codings.is_empty() {
        // Transfer-Encoding overrides Content-Length.
        if codings.last().is_some_and(|c| c == "chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok((res, framing))
}

/// Reads exactly `len` bytes of `inner`: the end of `inner` before that is an error.
struct Exact<R> {
    inner: R,
    len: usize,
    left: usize,
}

impl<R> Exact<R> {
    fn new(inner: R, len: usize) -> Self {
        Exact {
            inner,
            len,
            left: len,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Exact<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.left == 0 || buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let want = this.left.min(buf.len());
        match Pin::new(&mut this.inner).poll_read(cx, &mut buf[..want]) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the connection closed after {} of {} body bytes (content-length)",
                    this.len - this.left,
                    this.len
                ),
            ))),
            Poll::Ready(Ok(n)) => {
                this.left -= n;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(head: &str) -> io::Result<Framing> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        assert!(parsed.parse(head.as_bytes()).expect("head").is_complete());
        response(&parsed, false).map(|(_, f)| f)
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let f = |h: &str| frame(&format!("HTTP/1.1 200 OK\r\n{h}\r\n")).expect("framing");
        assert_eq!(f(""), Framing::UntilClose);
        assert_eq!(f("content-length: 12\r\n"), Framing::Length(12));
        assert_eq!(
            f("content-length: 12\r\ncontent-length: 12\r\n"),
            Framing::Length(12)
        );
        assert_eq!(f("transfer-encoding: chunked\r\n"), Framing::Chunked);
        assert_eq!(f("Transfer-Encoding: gzip, Chunked\r\n"), Framing::Chunked);
        assert_eq!(f("transfer-encoding: gzip\r\n"), Framing::UntilClose);
        assert_eq!(
            f("transfer-encoding: chunked\r\ncontent-length: 3\r\n"),
            Framing::Chunked
        );
        let empty = frame("HTTP/1.1 204 No Content\r\ncontent-length: 3\r\n\r\n");
        assert_eq!(empty.expect("204"), Framing::Empty);
        for bad in ["content-length: +3\r\n", "content-length: 3, 4\r\n"] {
            assert!(
                frame(&format!("HTTP/1.1 200 OK\r\n{bad}\r\n")).is_err(),
                "{bad}"
            );
        }
    }

    fn head_of(wire: &[u8]) -> io::Result<(Response, Framing, Vec<u8>)> {
        async_std::task::block_on(read_head(&mut Cursor::new(wire.to_vec()), false))
    }

    #[test]
    fn every_status_from_100_to_599_is_kept() {
        for code in [
            200u16, 201, 299, 308, 399, 404, 418, 429, 499, 500, 503, 529, 599,
        ] {
            let wire = format!("HTTP/1.1 {code} Whatever\r\ncontent-length: 0\r\n\r\n");
            let (res, _, _) = head_of(wire.as_bytes()).expect("head");
            assert_eq!(
                res.ext().get::<RawStatus>(),
                Some(&RawStatus(code)),
                "{code}"
            );
            assert_eq!(
                u16::from(res.status()) / 100,
                code / 100,
                "{code}: its class"
            );
        }
        for code in [600u16, 999] {
            let wire = format!("HTTP/1.1 {code} Nope\r\n\r\n");
            let e = head_of(wire.as_bytes()).expect_err("out of range");
            assert!(e.to_string().contains(&code.to_string()), "{e}");
        }
    }

    #[test]
    fn interim_responses_are_skipped() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
                     HTTP/1.1 529 Overloaded\r\ncontent-length: 2\r\n\r\nhi";
        let (res, framing, early) = head_of(wire).expect("head");
        assert_eq!(res.ext().get::<RawStatus>(), Some(&RawStatus(529)));
        assert!(
            res.header("link").is_none(),
            "the interim head's headers are dropped"
        );
        assert_eq!(framing, Framing::Length(2));
        assert_eq!(early, b"hi");
        let endless = b"HTTP/1.1 102 Processing\r\n\r\n".repeat(MAX_INTERIM + 1);
        let e = head_of(&endless).expect_err("bounded");
        assert!(e.to_string().contains("interim"), "{e}");
    }

    #[test]
    fn request_head_carries_host_and_framing() {
        let url = Url::parse("http://127.0.0.1:8000/v1/chat/completions?x=1").expect("url");
        let mut req = Request::new(Method::Post, url);
        req.insert_header("authorization", "Bearer k");
        req.insert_header("content-length", "999");
        let head = String::from_utf8(request_head(&req, Some(5)).expect("head")).expect("ascii");
        assert!(
            head.starts_with("POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8000\r\n")
        );
        assert!(head.contains("authorization: Bearer k\r\n"));
        assert!(head.contains("content-length: 5\r\n") && !head.contains("999"));
        assert!(head.ends_with("\r\n\r\n"));
        let head = String::from_utf8(request_head(&req, None).expect("head")).expect("ascii");
        assert!(head.contains("transfer-encoding: chunked\r\n"));
        let get = Request::new(Method::Get, Url::parse("https://h/v1/models").expect("url"));
        let head = String::from_utf8(request_head(&get, Some(0)).expect("head")).expect("ascii");
        assert_eq!(head, "GET /v1/models HTTP/1.1\r\nhost: h\r\n\r\n");
    }

    #[test]
    fn chunked_request_body() {
        async_std::task::block_on(async {
            let mut out = Vec::new();
            write_chunked(Cursor::new(b"hello".to_vec()), &mut out)
                .await
                .expect("write");
            assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
        });
    }

    #[test]
    fn short_body_is_an_error() {
        async_std::task::block_on(async {
            let mut body = Exact::new(Cursor::new(b"abc".to_vec()), 5);
            let mut out = Vec::new();
            let e = body.read_to_end(&mut out).await.expect_err("short");
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
            assert_eq!(out, b"abc");
            let mut body = Exact::new(Cursor::new(b"abcdef".to_vec()), 5);
            out.clear();
            body.read_to_end(&mut out).await.expect("exact");
            assert_eq!(out, b"abcde");
        });
    }

    #[test]
    fn until_close_body_with_head_in_one_read() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhello";
        let (res, framing, early) = head_of(wire).expect("head");
        assert_eq!(framing, Framing::UntilClose);
        assert_eq!(early, b"hello");
        assert_eq!(res.status(), StatusCode::Ok);
    }
}
