//! The engine model behind the fake server ([`FakeServerBuilder::engine`](super::FakeServerBuilder::engine)):
//! chat and completion requests that no scripted reply answers are submitted to a
//! [`crate::engine::Engine`] running in real time, so that loopback tests see vLLM's queueing —
//! a stream's head at once, its first token when the request is scheduled, tokens at the
//! engine's steps, a disconnect aborting the request.
//!
//! The prompt's length is estimated as the request body's bytes / 4 (at least 1 token);
//! `max_tokens` (or `max_completion_tokens`) is honoured, default 16. Every request generates
//! exactly that many tokens `t0 t1 …` (finish reason `length`). A request the engine rejects
//! (it can never fit the KV cache) is answered 400; one lost to a down window is reset.
//! `GET /metrics` shows the engine's gauges under vLLM's names (`vllm:num_requests_running`,
//! `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc`, `vllm:num_preemptions_total`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Notify};

use super::http::{close_gracefully, head_bytes, Conn, FramingHeader, Gone, ParsedRequest};
use crate::engine::{Engine, EngineConfig, EngineStats, Output, RequestId, RequestSpec};

/// The engine and where its outputs go.
#[derive(Debug)]
pub(crate) struct Batching {
    inner: Mutex<Inner>,
    /// Wakes the stepping task after a submission or an abort.
    wake: Notify,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    routes: HashMap<RequestId, mpsc::UnboundedSender<Output>>,
}

impl Inner {
    fn route(&mut self) {
        while let Some((id, out)) = self.engine.poll_output() {
            if let Some(tx) = self.routes.get(&id) {
                // The receiver may be gone (the connection ended): nothing to do.
                let _ = tx.send(out);
            }
            if out.is_terminal() {
                self.routes.remove(&id);
            }
        }
    }
}

/// What a request asks the engine for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineRequest {
    spec: RequestSpec,
    chat: bool,
}

impl Batching {
    pub(crate) fn new(config: EngineConfig) -> Batching {
        Batching {
            inner: Mutex::new(Inner {
                engine: Engine::new(config, Instant::now()),
                routes: HashMap::new(),
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engine's counters.
    pub(crate) fn stats(&self) -> EngineStats {
        *self.lock().engine.stats()
    }

    /// The engine's gauges as vLLM's `/metrics` shows them (Prometheus text).
    pub(crate) fn metrics_text(&self, model: &str) -> String {
        let inner = self.lock();
        let e = &inner.engine;
        let kv = e.kv_used_tokens() as f64 / e.config().kv_capacity_tokens.max(1) as f64;
        let label = format!(
            "{{engine=\"0\",model_name={}}}",
            serde_json::Value::from(model)
        );
        format!(
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n\
             # TYPE vllm:num_requests_running gauge\n\
             vllm:num_requests_running{label} {}\n\
             # HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n\
             # TYPE vllm:num_requests_waiting gauge\n\
             vllm:num_requests_waiting{label} {}\n\
             # HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n\
             # TYPE vllm:kv_cache_usage_perc gauge\n\
             vllm:kv_cache_usage_perc{label} {kv}\n\
             # HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.\n\
             # TYPE vllm:num_preemptions_total counter\n\
             vllm:num_preemptions_total{label} {}\n",
            e.num_running(),
            e.num_waiting(),
            e.stats().preemptions,
        )
    }

    fn submit(&self, spec: RequestSpec) -> (RequestId, mpsc::UnboundedReceiver<Output>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        let id = inner.engine.submit(Instant::now(), spec);
        inner.routes.insert(id, tx);
        inner.route();
        drop(inner);
        self.wake.notify_one();
        (id, rx)
    }

    fn abort(&self, id: RequestId) {
        let mut inner = self.lock();
        inner.engine.abort(Instant::now(), id);
        inner.routes.remove(&id);
        drop(inner);
        self.wake.notify_one();
    }

    /// Steps the engine in real time, for as long as the server runs.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            let next = {
                let mut inner = self.lock();
                inner.engine.advance(Instant::now());
                inner.route();
                inner.engine.next_event_at()
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

/// Answers `GET /metrics` with the engine's gauges.
pub(crate) async fn answer_metrics(
    conn: &mut Conn,
    batching: &Batching,
    req: &ParsedRequest,
    model: &str,
) -> Result<bool, Gone> {
    let body = batching.metrics_text(model);
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    write_whole(conn, 200, content_type, &body, req.keep_alive).await
}

/// Writes a whole answer, its length known, then closes the connection unless it is kept
/// alive. `Ok(keep)`: the connection may serve another request.
async fn write_whole(
    conn: &mut Conn,
    status: u16,
    content_type: &str,
    body: &str,
    keep: bool,
) -> Result<bool, Gone> {
    let head = head_bytes(
        status,
        None,
        &[],
        Some(content_type),
        &FramingHeader::Length(body.len()),
        !keep,
    );
    conn.write(head.as_bytes()).await?;
    conn.write(body.as_bytes()).await?;
    if !keep {
        close_gracefully(conn).await;
    }
    Ok(keep)
}

/// The engine request a chat or completion call makes, or `None` for other paths.
pub(crate) fn engine_request(req: &ParsedRequest) -> Option<EngineRequest> {
    if req.method != "POST" {
        return None;
    }
    let path = req.path.split('?').next().unwrap_or("");
    let chat = if path.ends_with("/chat/completions") {
        true
    } else if path.ends_with("/completions") {
        false
    } else {
        return None;
    };
    let body: serde_json::Value = serde_json::from_slice(&req.body).ok()?;
    let stream = body
        .get("stream")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let max_tokens = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(|v| v.as_u64())
        .map_or(16, |n| n.min(u64::from(u32::MAX)) as u32);
    let prompt_tokens = ((req.body.len() / 4).max(1)).min(u32::MAX as usize) as u32;
    Some(EngineRequest {
        spec: RequestSpec {
            prompt_tokens,
            max_tokens,
            stream,
        },
        chat,
    })
}

/// The next output of the request, or `Gone` when the client disconnects first (bytes it
/// sends meanwhile are kept for the next request).
async fn next_output(
    conn: &mut Conn,
    rx: &mut mpsc::UnboundedReceiver<Output>,
) -> Result<Option<Output>, Gone> {
    let mut tmp = [0u8; 4096];
    // Each round either returns or reads at least one byte; bounded by the body limit.
    loop {
        tokio::select! {
            out = rx.recv() => return Ok(out),
            r = conn.stream.read(&mut tmp) => match r {
                Ok(0) | Err(_) => return Err(Gone),
                Ok(n) => {
                    if conn.buf.len() > conn.limits.max_head.saturating_add(conn.limits.max_body) {
                        return Err(Gone);
                    }
                    conn.buf.extend_from_slice(&tmp[..n]);
                }
            },
        }
    }
}

fn token(k: u32) -> String {
    format!("t{k} ")
}

fn usage(prompt: u32, completion: u32) -> String {
    format!(
        r#"{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{}}}"#,
        u64::from(prompt) + u64::from(completion)
    )
}

fn chunk(id: RequestId, chat: bool, model: &str, delta: &str, tail: &str) -> String {
    let text = serde_json::Value::from(delta);
    let choice = if chat {
        if delta.is_empty() {
            r#"{"index":0,"delta":{},"finish_reason":"length"}"#.to_owned()
        } else {
            format!(r#"{{"index":0,"delta":{{"content":{text}}},"finish_reason":null}}"#)
        }
    } else if delta.is_empty() {
        r#"{"index":0,"text":"","finish_reason":"length"}"#.to_owned()
    } else {
        format!(r#"{{"index":0,"text":{text},"finish_reason":null}}"#)
    };
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    format!(
        "data: {{\"id\":\"cmpl-engine-{}\",\"object\":\"{object}\",\"created\":0,\"model\":{},\"choices\":[{choice}]{tail}}}\n\n",
        id.0,
        serde_json::Value::from(model)
    )
}

async fn write_chunk(conn: &mut Conn, bytes: &[u8]) -> Result<(), Gone> {
    let mut frame = format!("{:x}\r\n", bytes.len()).into_bytes();
    frame.extend_from_slice(bytes);
    frame.extend_from_slice(b"\r\n");
    conn.write(&frame).await
}

/// Answers `req` from the engine. `Ok(true)`: the connection may serve another request.
pub(crate) async fn answer(
    conn: &mut Conn,
    batching: &Batching,
    req: &ParsedRequest,
    er: EngineRequest,
    model: &str,
) -> Result<bool, Gone> {
    let (id, mut rx) = batching.submit(er.spec);
    let result = serve(conn, &mut rx, req, er, id, model).await;
    if result.is_err() {
        // The client went away: vLLM aborts the request and frees its slot.
        batching.abort(id);
    }
    result
}

async fn serve(
    conn: &mut Conn,
    rx: &mut mpsc::UnboundedReceiver<Output>,
    req: &ParsedRequest,
    er: EngineRequest,
    id: RequestId,
    model: &str,
) -> Result<bool, Gone> {
    let keep = req.keep_alive;
    // A rejection comes at submission, before anything is sent.
    if let Ok(Output::Rejected) = rx.try_recv() {
        let body = r#"{"object":"error","message":"the request does not fit the KV cache","type":"BadRequestError","param":null,"code":400}"#;
        return write_whole(conn, 400, "application/json", body, keep).await;
    }
    let mut k = 0u32;
    if er.spec.stream {
        let head = head_bytes(
            200,
            None,
            &[],
            Some("text/event-stream"),
            &FramingHeader::Chunked,
            !keep,
        );
        conn.write(head.as_bytes()).await?;
        loop {
            match next_output(conn, rx).await? {
                Some(Output::FirstToken | Output::Token) => {
                    let c = chunk(id, er.chat, model, &token(k), "");
                    k += 1;
                    write_chunk(conn, c.as_bytes()).await?;
                }
                Some(Output::Finished {
                    prompt_tokens,
                    completion_tokens,
                    ..
                }) => {
                    let tail = format!(",\"usage\":{}", usage(prompt_tokens, completion_tokens));
                    let mut end = chunk(id, er.chat, model, "", &tail);
                    end.push_str("data: [DONE]\n\n");
                    write_chunk(conn, end.as_bytes()).await?;
                    conn.write(b"0\r\n\r\n").await?;
                    break;
                }
                Some(Output::Rejected | Output::Lost) | None => {
                    let _ = conn.stream.set_zero_linger();
                    return Ok(false);
                }
            }
        }
    } else {
        let mut text = String::new();
        let (prompt, completion) = loop {
            match next_output(conn, rx).await? {
                Some(Output::FirstToken | Output::Token) => {
                    text.push_str(&token(k));
                    k += 1;
                }
                Some(Output::Finished {
                    prompt_tokens,
                    completion_tokens,
                    ..
                }) => break (prompt_tokens, completion_tokens),
                Some(Output::Rejected | Output::Lost) | None => {
                    let _ = conn.stream.set_zero_linger();
                    return Ok(false);
                }
            }
        };
        let text = serde_json::Value::from(text);
        let choice = if er.chat {
            format!(
                r#"{{"index":0,"message":{{"role":"assistant","content":{text}}},"finish_reason":"length"}}"#
            )
        } else {
            format!(r#"{{"index":0,"text":{text},"finish_reason":"length"}}"#)
        };
        let object = if er.chat {
            "chat.completion"
        } else {
            "text_completion"
        };
        let body = format!(
            r#"{{"id":"cmpl-engine-{}","object":"{object}","created":0,"model":{},"choices":[{choice}],"usage":{}}}"#,
            id.0,
            serde_json::Value::from(model),
            usage(prompt, completion)
        );
        return write_whole(conn, 200, "application/json", &body, keep).await;
    }
    if !keep {
        close_gracefully(conn).await;
    }
    Ok(keep)
}
