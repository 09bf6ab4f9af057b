//! [`Http1`]: the HTTP/1.1 backend under the adapter's surf client.
//!
//! surf's own backend (`http_client::h1`, i.e. async-h1's client) frames response bodies
//! wrongly in two cases: a body with neither `Content-Length` nor chunked encoding, delimited by
//! the server closing the connection (RFC 9112 §6.3 rule 8), is read as empty; and a body that
//! ends before its `Content-Length` is taken as complete. This backend connects, writes the
//! request with async-h1's encoder, reads the response head itself and frames the body by RFC
//! 9112 §6.3, reusing async-h1's decoder for chunked bodies. It only moves bytes: no retries,
//! no timers (the core bounds every step with its deadlines), one connection per request.

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

/// The largest response head read (status line and headers).
const MAX_HEAD: usize = 64 << 10;
/// The most header lines in a response head.
const MAX_HEADERS: usize = 128;
/// Bytes asked for per read of the head.
const HEAD_READ: usize = 8 << 10;

/// surf's HTTP/1.1 backend for this adapter (plain TCP, or TLS with rustls for `https`).
///
/// The default client of [`AsyncStd`](crate::AsyncStd) runs on it. To bring your own surf
/// client (middleware, TLS roots), build it on this backend:
/// `surf::Client::with_http_client(Http1::new())`; surf's default backend reads a body
/// delimited by the end of the connection as empty and does not notice a body shorter than its
/// `Content-Length`.
///
/// Every request opens its own connection and sends `connection: close`; dropping the response
/// (or its body) closes the connection. No timer of its own: set none in the surf client
/// either, the core hands out every deadline. Of the [`Config`] given with
/// [`HttpClient::set_config`], `tcp_no_delay` and `tls_config` are used.
#[derive(Clone)]
pub struct Http1 {
    config: Config,
    tls: async_tls::TlsConnector,
}

impl Http1 {
    /// A backend with `TCP_NODELAY` on and rustls with the webpki roots for `https`.
    pub fn new() -> Self {
        Http1 {
            config: Config::new()
                .set_http_keep_alive(false)
                .set_tcp_no_delay(true)
                .set_timeout(None),
            tls: async_tls::TlsConnector::default(),
        }
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
            .finish_non_exhaustive()
    }
}

#[http_client::async_trait]
impl HttpClient for Http1 {
    async fn send(&self, mut req: Request) -> Result<Response, Error> {
        let url = req.url().clone();
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(Error::from_str(
                    StatusCode::BadRequest,
                    format!("unsupported URL scheme {other:?}"),
                ))
            }
        };
        req.insert_header("connection", "close");
        let head_only = req.method() == Method::Head;
        let tcp = connect(&url).await?;
        tcp.set_nodelay(self.config.tcp_no_delay)?;
        if tls {
            let host = url.host_str().unwrap_or_default();
            let stream = self.tls.connect(host, tcp).await?;
            Ok(exchange(stream, req, head_only).await?)
        } else {
            Ok(exchange(tcp, req, head_only).await?)
        }
    }

    fn set_config(&mut self, config: Config) -> http_client::http_types::Result<()> {
        self.tls = match config.tls_config.clone() {
            Some(tls) => tls.into(),
            None => async_tls::TlsConnector::default(),
        };
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
async fn exchange<S>(mut conn: S, req: Request, head_only: bool) -> io::Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    let mut encoder = async_h1::client::Encoder::new(req);
    futures_util::io::copy(&mut encoder, &mut conn).await?;
    conn.flush().await?;
    let (mut res, framing, early) = read_head(&mut conn, head_only).await?;
    // Body bytes that came with the head are read first.
    let rest = Cursor::new(early).chain(conn);
    let body = match framing {
        Framing::Empty => return Ok(res),
        Framing::Chunked => dechunk(rest).await?,
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

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body: a response to `HEAD`, 1xx, 204, 304.
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

/// Reads until the end of the response head; returns the response (empty body), its framing,
/// and the body bytes read along with the head.
async fn read_head<S: AsyncRead + Unpin>(
    conn: &mut S,
    head_only: bool,
) -> io::Result<(Response, Framing, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; HEAD_READ];
    // Each round reads at least one byte and the head is bounded by MAX_HEAD.
    loop {
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
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Response::new(&mut headers);
        match head.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
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
}

/// The parsed head as surf's response, and how its body is framed.
fn response(head: &httparse::Response<'_, '_>, head_only: bool) -> io::Result<(Response, Framing)> {
    let code = head.code.unwrap_or_default();
    let status = StatusCode::try_from(code)
        .map_err(|_| invalid(format!("status {code} is unknown to surf")))?;
    let mut res = Response::new(status);
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

/// A chunked body decoded by async-h1's decoder, reached through its public `decode` with a
/// minimal head in front of the body bytes.
async fn dechunk<R>(body: R) -> io::Result<Body>
where
    R: AsyncRead + Unpin + Send + Sync + 'static,
{
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    let mut res = async_h1::client::decode(Cursor::new(HEAD).chain(body))
        .await
        .map_err(|e| invalid(e.to_string()))?;
    Ok(res.take_body())
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
        async_std::task::block_on(async {
            let wire = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhello".to_vec();
            let (res, framing, early) = read_head(&mut Cursor::new(wire), false)
                .await
                .expect("head");
            assert_eq!(framing, Framing::UntilClose);
            assert_eq!(early, b"hello");
            assert_eq!(res.status(), StatusCode::Ok);
        });
    }
}
