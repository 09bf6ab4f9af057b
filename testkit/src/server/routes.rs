//! The route table: the default answer of each method and path the fake server knows (the
//! fake model's in [`model`](super::model), the other operations' in `ops`), 405 for a known
//! path with another method, 404 for the rest — and vLLM's API key check in front of it.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::http::ParsedRequest;
use super::model::{
    chat, completions, detokenize, embeddings, js, models, tokenize, BadRequest, ModelConfig,
    Resolved, Vocab,
};
use super::ops::{self, OpsState};
use super::reply::{Generate, Part};

/// Whether this request lacks the configured API key (vLLM checks paths under `/v1` only).
pub(crate) fn unauthorized(req: &ParsedRequest, cfg: &ModelConfig) -> bool {
    let Some(key) = &cfg.api_key else {
        return false;
    };
    if !req.path.starts_with("/v1") {
        return false;
    }
    let expected = format!("Bearer {key}");
    req.header("authorization") != Some(expected.as_str())
}

/// vLLM's answer to a bad API key.
pub(crate) fn unauthorized_reply() -> Resolved {
    Resolved::json(401, r#"{"error":"Unauthorized"}"#.to_string())
}

/// The default behaviour for one request.
pub(crate) fn respond(
    req: &ParsedRequest,
    index: usize,
    cfg: &ModelConfig,
    vocab: &Mutex<Vocab>,
    gen: &Generate,
    ops_state: &Mutex<OpsState>,
) -> Resolved {
    let m = req.method.as_str();
    let path = req.path.as_str();
    let post_json = |f: &dyn Fn(&Value) -> Result<Resolved, BadRequest>| -> Resolved {
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Resolved::error(400, "the request body must be a JSON object"),
            Err(e) => return Resolved::error(400, &format!("JSON decode error: {e}")),
        };
        f(&body).unwrap_or_else(|(status, msg)| Resolved::error(status, &msg))
    };
    let lock_vocab = || vocab.lock().unwrap_or_else(|e| e.into_inner());
    match (m, path) {
        ("GET", "/health") => Resolved::empty(200),
        ("GET", "/ping") => Resolved::empty(200),
        ("GET", "/version") => {
            Resolved::json(200, format!(r#"{{"version":{}}}"#, js(&cfg.version)))
        }
        ("GET", "/metrics") => Resolved {
            status: 200,
            content_type: Some("text/plain; version=0.0.4; charset=utf-8"),
            parts: vec![Part::text(
                "# HELP vllm:num_requests_running Number of requests running.\n\
                 # TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 0.0\n",
            )],
            streamed: false,
            extra_delay: Duration::ZERO,
        },
        ("GET", "/v1/models") => {
            let lora = ops_state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .lora_adapters();
            models(cfg, &lora)
        }
        ("POST", "/v1/responses") => {
            post_json(&|b| ops::create_response(b, index, cfg, gen, ops_state))
        }
        ("GET", p) if response_id(p).is_some_and(|(_, cancel)| !cancel) => {
            let id = response_id(p).map_or("", |(id, _)| id);
            ops::retrieve_response(id, req.query.as_deref(), ops_state)
        }
        ("POST", p) if response_id(p).is_some_and(|(_, cancel)| cancel) => {
            ops::cancel_response(response_id(p).map_or("", |(id, _)| id), ops_state)
        }
        ("POST", "/rerank" | "/v1/rerank" | "/v2/rerank") => {
            post_json(&|b| ops::rerank(b, index, cfg))
        }
        ("POST", "/score" | "/v1/score") => post_json(&|b| ops::score(b, index, cfg)),
        ("POST", "/classify") => post_json(&|b| ops::classify(b, index, cfg)),
        ("POST", "/pooling") => post_json(&|b| ops::pooling(b, index, cfg)),
        ("POST", "/v1/audio/transcriptions" | "/v1/audio/translations") => ops::audio(
            req.header("content-type"),
            &req.body,
            index,
            cfg,
            gen,
            path.ends_with("translations"),
        )
        .unwrap_or_else(|(status, msg)| Resolved::error(status, &msg)),
        ("POST", "/v1/load_lora_adapter") => post_json(&|b| ops::load_lora(b, ops_state)),
        ("POST", "/v1/unload_lora_adapter") => post_json(&|b| ops::unload_lora(b, ops_state)),
        ("POST", "/v1/chat/completions") => post_json(&|b| chat(b, index, cfg, gen)),
        ("POST", "/v1/completions") => post_json(&|b| completions(b, index, cfg, gen)),
        ("POST", "/v1/embeddings") => post_json(&|b| embeddings(b, index, cfg)),
        ("POST", "/tokenize") => post_json(&|b| tokenize(b, cfg, &mut lock_vocab())),
        ("POST", "/detokenize") => post_json(&|b| detokenize(b, &lock_vocab())),
        (
            _,
            "/health"
            | "/ping"
            | "/version"
            | "/metrics"
            | "/v1/models"
            | "/v1/chat/completions"
            | "/v1/completions"
            | "/v1/embeddings"
            | "/tokenize"
            | "/detokenize"
            | "/v1/responses"
            | "/rerank"
            | "/v1/rerank"
            | "/v2/rerank"
            | "/score"
            | "/v1/score"
            | "/classify"
            | "/pooling"
            | "/v1/audio/transcriptions"
            | "/v1/audio/translations"
            | "/v1/load_lora_adapter"
            | "/v1/unload_lora_adapter",
        ) => Resolved::error(405, "Method Not Allowed"),
        _ => Resolved::error(404, "Not Found"),
    }
}

/// `/v1/responses/{id}` → `(id, false)`; `/v1/responses/{id}/cancel` → `(id, true)`.
fn response_id(path: &str) -> Option<(&str, bool)> {
    let rest = path.strip_prefix("/v1/responses/")?;
    match rest.strip_suffix("/cancel") {
        Some(id) if !id.is_empty() && !id.contains('/') => Some((id, true)),
        _ if !rest.is_empty() && !rest.contains('/') => Some((rest, false)),
        _ => None,
    }
}
