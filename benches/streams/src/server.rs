//! The loopback SSE server: a hand-written HTTP/1.1 server on tokio, run in its own process
//! so that its CPU is not counted against any client.
//!
//! Every POST is answered with a `text/event-stream` body in chunked transfer encoding, shaped
//! as vLLM shapes it (role chunk, content chunks, finish chunk, `[DONE]`); connections are kept
//! alive unless the request says `Connection: close`. It binds 127.0.0.1 only, prints its port
//! on the first line of stdout, and exits when its stdin closes (the parent ended) or after
//! `MAX_LIFETIME`, whichever comes first.

use std::io::Write as _;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::wire::{http_chunk, Mode, FINISH_EVENTS, ROLE_EVENT, TOKEN_EVENT};

/// The server never outlives this, whatever happens to its parent.
const MAX_LIFETIME: Duration = Duration::from_secs(900);
/// A request head larger than this is refused (the connection is closed).
const MAX_HEAD: usize = 64 * 1024;

const RESPONSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";

struct Frames {
    role: Vec<u8>,
    tokens: Vec<u8>,
    finish: Vec<u8>,
}

impl Frames {
    fn new(mode: Mode) -> Frames {
        let mut last = http_chunk(FINISH_EVENTS.as_bytes());
        last.extend_from_slice(b"0\r\n\r\n");
        Frames {
            role: http_chunk(ROLE_EVENT.as_bytes()),
            tokens: http_chunk(TOKEN_EVENT.repeat(mode.events_per_write()).as_bytes()),
            finish: last,
        }
    }
}

pub fn main(mode: Mode) -> ! {
    crate::measure::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    rt.block_on(async move {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind 127.0.0.1");
        let listener = socket.listen(8192).expect("listen");
        let port = listener.local_addr().expect("local addr").port();
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{port}").expect("stdout");
            out.flush().expect("stdout");
        }
        let frames: &'static Frames = Box::leak(Box::new(Frames::new(mode)));
        // Exit when the parent closes our stdin (or dies).
        tokio::spawn(async {
            let mut stdin = tokio::io::stdin();
            let mut sink = [0u8; 64];
            while let Ok(n) = stdin.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
            std::process::exit(0);
        });
        let accept = async {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(connection(stream, mode, frames));
                    }
                    // Out of descriptors or a reset before accept: wait a little, go on.
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        };
        let _ = tokio::time::timeout(MAX_LIFETIME, accept).await;
    });
    std::process::exit(0)
}

async fn connection(mut stream: TcpStream, mode: Mode, frames: &'static Frames) {
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    loop {
        // The request head.
        let head_end = loop {
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > MAX_HEAD {
                return;
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let mut content_length = 0usize;
        let mut close = false;
        for line in head.split("\r\n") {
            if let Some(v) = line.strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("connection:") {
                close = v.contains("close");
            } else if line.starts_with("transfer-encoding:") {
                // Every client here sends a sized JSON body; a chunked one is not supported.
                return;
            }
        }
        // The request body (read and ignored).
        while buf.len() < head_end + content_length {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        buf.drain(..head_end + content_length);

        if respond(&mut stream, mode, frames).await.is_err() {
            return;
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

async fn respond(stream: &mut TcpStream, mode: Mode, frames: &Frames) -> std::io::Result<()> {
    stream.write_all(RESPONSE_HEAD).await?;
    stream.write_all(&frames.role).await?;
    let writes = mode.tokens() / mode.events_per_write() as u64;
    match mode.pace() {
        Some(pace) => {
            let mut ticks = tokio::time::interval(pace);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate
            for _ in 0..writes {
                ticks.tick().await;
                stream.write_all(&frames.tokens).await?;
            }
        }
        None => {
            for _ in 0..writes {
                stream.write_all(&frames.tokens).await?;
            }
        }
    }
    stream.write_all(&frames.finish).await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
