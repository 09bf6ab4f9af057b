//! A tiny raw HTTP/1.1 client over `std::net::TcpStream` for the fake server's own tests.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// Socket read timeout: no test may hang.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Status, reason phrase and headers of a response.
pub type Head = (u16, String, Vec<(String, String)>);

/// One parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// Decoded body.
    pub body: Vec<u8>,
    /// The data of each HTTP chunk, if the body was chunked.
    pub chunks: Vec<Vec<u8>>,
    /// Whether a chunked body ended with its terminating `0` chunk.
    pub complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// The `data:` payloads of the SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        sse_data(&self.text())
    }
}

/// `data:` payloads of an SSE text.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

/// A client connection that can carry several requests.
pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Client {
            reader: BufReader::new(s),
        }
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream().write_all(bytes).expect("write");
    }

    /// Sends a request with a `content-length` body (and `content-type: application/json`
    /// when there is a body).
    pub fn send(&mut self, method: &str, path: &str, extra_headers: &[(&str, &str)], body: &str) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
        for (k, v) in extra_headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.send_raw(req.as_bytes());
    }

    fn line(&mut self) -> io::Result<String> {
        let mut l = String::new();
        let n = self.reader.read_line(&mut l)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof"));
        }
        Ok(l.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Reads the status line and headers.
    pub fn read_head(&mut self) -> io::Result<Head> {
        let status_line = self.line()?;
        let mut it = status_line.splitn(3, ' ');
        let _version = it.next();
        let status = it
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        let reason = it.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let l = self.line()?;
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').expect("header line");
            headers.push((k.to_string(), v.trim().to_string()));
        }
        Ok((status, reason, headers))
    }

    /// Reads one whole response (content-length, chunked, or until close). A chunked body cut
    /// by the server gives `complete: false` instead of an error.
    pub fn read_response(&mut self) -> io::Result<Response> {
        let (status, reason, headers) = self.read_head()?;
        let mut r = Response {
            status,
            reason,
            headers,
            body: Vec::new(),
            chunks: Vec::new(),
            complete: true,
        };
        if let Some(len) = r.header("content-length") {
            let len: usize = len.parse().unwrap();
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body)?;
            r.body = body;
        } else if r
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            r.complete = false;
            for _ in 0..100_000 {
                let Ok(size_line) = self.line() else { break };
                let size = usize::from_str_radix(size_line.trim(), 16).expect("chunk size");
                if size == 0 {
                    let _ = self.line();
                    r.complete = true;
                    break;
                }
                let mut data = vec![0; size + 2];
                if self.reader.read_exact(&mut data).is_err() {
                    break;
                }
                data.truncate(size);
                r.body.extend_from_slice(&data);
                r.chunks.push(data);
            }
        } else if status != 204 && status != 304 {
            self.reader.read_to_end(&mut r.body)?;
        }
        Ok(r)
    }

    /// True if the server closed the connection (EOF or reset) within the read timeout.
    pub fn at_eof(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.reader.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut c = Client::connect(addr);
    c.send(method, path, headers, body);
    c.read_response().expect("response")
}

/// `POST path` with a JSON body on a fresh connection.
pub fn post(addr: SocketAddr, path: &str, body: &Value) -> Response {
    request(addr, "POST", path, &[], &body.to_string())
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], "")
}
