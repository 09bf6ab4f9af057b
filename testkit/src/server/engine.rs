//! The server's runtime side: accept loop, one task per connection, and the writer that turns
//! a [`Reply`] into bytes on the socket.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::http::{
    close_gracefully, head_bytes, Conn, FramingHeader, Gone, Limits, ParsedRequest, ReadError,
};
use super::model::{ModelConfig, Resolved, Vocab};
use super::record::RecordedRequest;
use super::reply::{Action, Body, Framing, Part, Reply, Split};
use super::routes;

/// Requests served on one connection before the server closes it.
const MAX_REQUESTS_PER_CONNECTION: usize = 100_000;
/// Requests kept in the record (later ones are counted, not stored).
pub(crate) const MAX_RECORDED: usize = 100_000;
/// A queued reply and its optional path filter.
#[derive(Debug)]
pub(crate) struct Scripted {
    pub path: Option<String>,
    pub reply: Reply,
}

/// Mutable state shared by the server's tasks and the test's handle.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub requests: Vec<RecordedRequest>,
    pub total_requests: usize,
    pub script: VecDeque<Scripted>,
    pub connections: u64,
    pub disconnects: usize,
    pub refuse_next: usize,
    pub reset_next: usize,
    pub refuse_all: bool,
    pub refused: usize,
    pub rejected: usize,
}

/// Everything the server's tasks share with the [`FakeServer`](super::FakeServer) handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: ModelConfig,
    pub limits: Limits,
    pub state: Mutex<State>,
    /// Notified whenever a request is recorded or a disconnect is noticed.
    pub changed: Condvar,
    pub vocab: Mutex<Vocab>,
    /// Stored responses and loaded LoRA adapters.
    pub ops: Mutex<super::ops::OpsState>,
    /// The engine model answering chat and completion requests, when on.
    pub batching: Option<Arc<super::batching::Batching>>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the request and picks the first queued reply whose filter matches it.
    fn record(&self, req: &ParsedRequest, connection_id: u64) -> (usize, Option<Reply>) {
        let mut st = self.lock();
        let pos = st
            .script
            .iter()
            .position(|s| s.path.as_deref().is_none_or(|p| p == req.path));
        let reply = pos.and_then(|i| st.script.remove(i)).map(|s| s.reply);
        let index = st.total_requests;
        st.total_requests += 1;
        if st.requests.len() < MAX_RECORDED {
            st.requests.push(RecordedRequest {
                index,
                connection_id,
                method: req.method.clone(),
                path: req.path.clone(),
                query: req.query.clone(),
                version: req.version.clone(),
                headers: req.headers.clone(),
                body: Bytes::copy_from_slice(&req.body),
                json: serde_json::from_slice(&req.body).ok(),
                received_at: Instant::now(),
                scripted: reply.is_some(),
                client_disconnected: false,
                disconnected_at: None,
            });
        }
        drop(st);
        self.changed.notify_all();
        (index, reply)
    }

    fn mark_disconnected(&self, index: usize) {
        let mut st = self.lock();
        st.disconnects += 1;
        if let Some(r) = st.requests.get_mut(index) {
            r.client_disconnected = true;
            r.disconnected_at = Some(Instant::now());
        }
        drop(st);
        self.changed.notify_all();
    }
}

/// Accepts until `shutdown` flips (or its sender is dropped).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => on_accept(stream, &shared),
                // E.g. too many open files: back off a little instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

fn on_accept(stream: TcpStream, shared: &Arc<Shared>) {
    let (id, fault) = {
        let mut st = shared.lock();
        let id = st.connections;
        st.connections += 1;
        let fault = if st.reset_next > 0 {
            st.reset_next -= 1;
            Some(true)
        } else if st.refuse_all || st.refuse_next > 0 {
            st.refuse_next = st.refuse_next.saturating_sub(1);
            Some(false)
        } else {
            None
        };
        if fault.is_some() {
            st.refused += 1;
        }
        (id, fault)
    };
    match fault {
        Some(true) => {
            let _ = stream.set_zero_linger();
            drop(stream);
        }
        Some(false) => drop(stream),
        None => {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_connection(Arc::clone(shared), stream, id));
        }
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, connection_id: u64) {
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
        limits: shared.limits,
    };
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let req = match conn.read_request().await {
            Ok(Some(req)) => req,
            Ok(None) | Err(ReadError::Closed) => return,
            Err(ReadError::Bad(status, msg)) => {
                shared.lock().rejected += 1;
                let resolved = Resolved::error(status, &msg);
                let head = head_bytes(
                    status,
                    None,
                    &[],
                    resolved.content_type,
                    &body_len(&resolved.parts),
                    true,
                );
                let mut bytes = head.into_bytes();
                for p in &resolved.parts {
                    if let Part::Bytes(b) = p {
                        bytes.extend_from_slice(b);
                    }
                }
                if conn.write(&bytes).await.is_ok() {
                    close_gracefully(&mut conn).await;
                }
                return;
            }
        };
        let (index, scripted) = shared.record(&req, connection_id);
        match answer(&mut conn, &shared, &req, index, scripted).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(Gone) => {
                shared.mark_disconnected(index);
                return;
            }
        }
    }
    close_gracefully(&mut conn).await;
}

fn body_len(parts: &[Part]) -> FramingHeader {
    FramingHeader::Length(
        parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len(),
                _ => 0,
            })
            .sum(),
    )
}

/// Answers one request. `Ok(true)`: the connection may serve another request.
async fn answer(
    conn: &mut Conn,
    shared: &Shared,
    req: &ParsedRequest,
    index: usize,
    scripted: Option<Reply>,
) -> Result<bool, Gone> {
    if let (None, Some(batching)) = (&scripted, &shared.batching) {
        if req.method == "GET" && req.path == "/metrics" {
            let model_id = shared.cfg.models.first().map_or("", String::as_str);
            return super::batching::answer_metrics(conn, batching, req, model_id).await;
        }
        if let Some(er) = super::batching::engine_request(req) {
            if routes::unauthorized(req, &shared.cfg) {
                // Authentication comes first, as in front of a real engine.
            } else {
                let model_id = shared.cfg.models.first().map_or("", String::as_str);
                return super::batching::answer(conn, batching, req, er, model_id).await;
            }
        }
    }
    let reply = scripted.unwrap_or_else(Reply::generate);
    conn.pause(reply.head_delay).await?;
    match reply.action {
        Action::Close => {
            close_gracefully(conn).await;
            return Ok(false);
        }
        Action::Reset => {
            let _ = conn.stream.set_zero_linger();
            return Ok(false);
        }
        Action::Raw => {
            if let Body::Parts { parts, .. } = &reply.body {
                if write_body(conn, parts, false, &reply.split).await? {
                    close_gracefully(conn).await;
                }
            }
            return Ok(false);
        }
        Action::Respond => {}
    }

    let (status, content_type, parts, streamed) = match reply.body {
        Body::Generate(gen) => {
            let resolved = if routes::unauthorized(req, &shared.cfg) {
                routes::unauthorized_reply()
            } else {
                routes::respond(req, index, &shared.cfg, &shared.vocab, &gen, &shared.ops)
            };
            conn.pause(resolved.extra_delay).await?;
            (
                resolved.status,
                resolved.content_type,
                resolved.parts,
                resolved.streamed,
            )
        }
        Body::Parts { parts, streamed } => (reply.status, None, parts, streamed),
    };

    let user_len = reply
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>().ok());
    let user_te = reply
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"));
    let has_terminal = parts
        .iter()
        .any(|p| matches!(p, Part::Cut | Part::Reset | Part::Stall(_)));
    let no_body = matches!(status, 100..=199 | 204 | 304) || req.method == "HEAD";
    let total: usize = match body_len(&parts) {
        FramingHeader::Length(n) => n,
        _ => 0,
    };

    let (framing, chunked, mut keep) = if user_len.is_some() || user_te {
        // Manual framing: bytes go out raw; keep the connection only if it is surely intact.
        let intact = user_len == Some(Some(total)) && !user_te;
        (FramingHeader::None, false, intact)
    } else if no_body {
        (FramingHeader::None, false, true)
    } else {
        match reply.framing {
            // A server must not send chunked to an HTTP/1.0 client (RFC 9112 §6.1): its
            // stream is delimited by closing the connection.
            Framing::Auto if streamed && req.version == "HTTP/1.0" => {
                (FramingHeader::None, false, false)
            }
            Framing::Auto if streamed => (FramingHeader::Chunked, true, true),
            Framing::Chunked => (FramingHeader::Chunked, true, true),
            Framing::Auto | Framing::ContentLength => (FramingHeader::Length(total), false, true),
            Framing::UntilClose => (FramingHeader::None, false, false),
        }
    };
    keep = keep && !has_terminal && req.keep_alive && !reply.close_after;
    let close_header = !keep && !has_terminal;
    let head = head_bytes(
        status,
        reply.reason.as_deref(),
        &reply.headers,
        content_type,
        &framing,
        close_header,
    );
    conn.write(head.as_bytes()).await?;
    if no_body {
        if !keep {
            close_gracefully(conn).await;
        }
        return Ok(keep);
    }
    let complete = write_body(conn, &parts, chunked, &reply.split).await?;
    if !complete {
        return Ok(false);
    }
    if chunked {
        conn.write(b"0\r\n\r\n").await?;
    }
    if !keep {
        close_gracefully(conn).await;
    }
    Ok(keep)
}

/// Writes the parts. `Ok(true)`: all parts went out; `Ok(false)`: a cut, reset or stall ended
/// the connection (already closed or about to be dropped).
async fn write_body(
    conn: &mut Conn,
    parts: &[Part],
    chunked: bool,
    split: &Split,
) -> Result<bool, Gone> {
    let mut offset = 0usize;
    for part in parts {
        match part {
            Part::Bytes(bytes) => {
                let end = offset + bytes.len();
                let mut pos = offset;
                // Each iteration writes at least one byte, so it runs at most `bytes.len()` times.
                while pos < end {
                    let mut next = end;
                    if let Some(n) = split.every {
                        next = next.min((pos / n + 1).saturating_mul(n));
                    }
                    if let Some(&a) = split.at.iter().find(|&&a| a > pos) {
                        next = next.min(a);
                    }
                    let seg = &bytes[pos - offset..next - offset];
                    if chunked {
                        let mut frame = format!("{:x}\r\n", seg.len()).into_bytes();
                        frame.extend_from_slice(seg);
                        frame.extend_from_slice(b"\r\n");
                        conn.write(&frame).await?;
                    } else {
                        conn.write(seg).await?;
                    }
                    conn.pause(split.pace).await?;
                    pos = next;
                }
                offset = end;
            }
            Part::Delay(d) => conn.pause(*d).await?,
            Part::Cut => {
                close_gracefully(conn).await;
                return Ok(false);
            }
            Part::Reset => {
                let _ = conn.stream.set_zero_linger();
                return Ok(false);
            }
            Part::Stall(d) => {
                conn.pause(*d).await?;
                close_gracefully(conn).await;
                return Ok(false);
            }
        }
    }
    Ok(true)
}
