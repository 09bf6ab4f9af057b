//! The fake server's answers to vLLM's other operations, in vLLM's shapes: the Responses API
//! (create — JSON or its typed, numbered event stream —, retrieve, cancel, background mode),
//! rerank (`/rerank`, `/v1/rerank`, `/v2/rerank`), score, classify, pooling, audio
//! transcriptions and translations (multipart; streamed too), and LoRA adapters.
//!
//! Everything is deterministic (scores from token overlap, labels from a hash), so tests can
//! assert exact answers. The [`Generate`] options of a scripted `Reply::generate()` shape the
//! Responses stream as they shape a chat stream: token delay, cut, stall, an error event, no
//! terminal event.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use super::model::{
    bad, base64, content_text, default_reply_text, embedding, fnv1a, ident, split_tokens, streamed,
    tool_arguments, BadRequest, Ident, ModelConfig, Resolved,
};
use super::reply::{EndAt, Ending, Generate, Part};

/// The most responses kept for `GET /v1/responses/{id}` (the oldest go first).
const MAX_STORED: usize = 1024;

/// What the fake server remembers between requests: stored responses and loaded adapters.
#[derive(Debug, Default)]
pub(crate) struct OpsState {
    responses: HashMap<String, Stored>,
    order: std::collections::VecDeque<String>,
    lora: BTreeSet<String>,
}

#[derive(Debug)]
struct Stored {
    /// The response object once complete.
    done: Value,
    background: bool,
    /// Retrievals before a background response shows as complete.
    pending_polls: u32,
    cancelled: bool,
    /// A streamed background response's whole event stream, for `GET
    /// /v1/responses/{id}?stream=true&starting_after=N` (vLLM keeps these events).
    events: Option<Vec<Part>>,
}

impl OpsState {
    fn store(&mut self, id: String, stored: Stored) {
        if self.responses.len() >= MAX_STORED {
            if let Some(old) = self.order.pop_front() {
                self.responses.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.responses.insert(id, stored);
    }

    /// The LoRA adapters loaded, by name (listed by `/v1/models`).
    pub(crate) fn lora_adapters(&self) -> Vec<String> {
        self.lora.iter().cloned().collect()
    }
}

// ----- the Responses API ------------------------------------------------------------------

/// The text of the last user turn of a Responses `input`, and whether the last item is a
/// function call's output (what the model then answers).
fn last_turn(input: &Value) -> (String, Option<String>) {
    match input {
        Value::String(s) => (s.clone(), None),
        Value::Array(items) => {
            if let Some(last) = items.last() {
                if last.get("type").and_then(Value::as_str) == Some("function_call_output") {
                    let out = last
                        .get("output")
                        .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_owned))
                        .unwrap_or_default();
                    return (String::new(), Some(out));
                }
            }
            let text = items
                .iter()
                .rev()
                .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
                .and_then(|i| i.get("content"))
                .map(|c| match c {
                    Value::Array(parts) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect(),
                    other => content_text(other),
                })
                .unwrap_or_default();
            (text, None)
        }
        _ => (String::new(), None),
    }
}

struct Plan {
    id: String,
    model: String,
    created: u64,
    input_tokens: usize,
    reasoning: Vec<String>,
    tokens: Vec<String>,
    /// A function call instead of text: (call id, name, arguments).
    call: Option<(String, String, String)>,
    incomplete: bool,
}

fn plan(body: &Value, index: usize, cfg: &ModelConfig, gen: &Generate) -> Result<Plan, BadRequest> {
    let input = body
        .get("input")
        .filter(|v| v.is_string() || v.is_array())
        .ok_or_else(|| bad("input: field required (a string or a list of items)"))?;
    let cap = match body.get("max_output_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .ok_or_else(|| bad("max_output_tokens must be a non-negative integer"))?,
        ),
    };
    let (user_text, tool_output) = last_turn(input);
    let who = ident("resp_", index, body, cfg);
    let id = body
        .get("request_id")
        .and_then(Value::as_str)
        .map_or(who.id, str::to_owned);
    let input_tokens = split_tokens(&input.to_string()).len();
    let tool = body
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .filter(|_| body.get("tool_choice").and_then(Value::as_str) != Some("none"));
    let call = match (tool, &tool_output) {
        (Some(t), None) if gen.text.is_none() => Some((
            format!("call_{:016x}", fnv1a(id.as_bytes())),
            t.get("name")
                .and_then(Value::as_str)
                .unwrap_or("tool")
                .to_owned(),
            tool_arguments(t.get("parameters"), &user_text),
        )),
        _ => None,
    };
    let text = gen.text.clone().unwrap_or_else(|| match &tool_output {
        Some(out) => format!("Tool said: {out}"),
        None => default_reply_text(&user_text),
    });
    let mut tokens: Vec<String> = split_tokens(&text).into_iter().map(str::to_owned).collect();
    let mut reasoning: Vec<String> = gen
        .reasoning
        .as_deref()
        .map(|r| split_tokens(r).into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    let mut incomplete = false;
    if let Some(cap) = cap {
        reasoning.truncate(cap);
        let room = cap - reasoning.len();
        if tokens.len() > room {
            tokens.truncate(room);
            incomplete = true;
        }
    }
    Ok(Plan {
        id,
        model: who.model,
        created: who.created,
        input_tokens,
        reasoning,
        tokens,
        call,
        incomplete,
    })
}

fn output_items(p: &Plan) -> Vec<Value> {
    let mut out = Vec::new();
    if !p.reasoning.is_empty() {
        out.push(
            json!({"id": format!("rs_{}", p.id), "type": "reasoning", "summary": [],
            "content": [{"type": "reasoning_text", "text": p.reasoning.concat()}],
            "encrypted_content": null, "status": null}),
        );
    }
    match &p.call {
        Some((call_id, name, args)) => out.push(json!({"id": format!("fc_{}", p.id),
            "type": "function_call", "call_id": call_id, "name": name, "arguments": args,
            "status": "completed"})),
        None => out.push(json!({"id": format!("msg_{}", p.id), "type": "message",
            "role": "assistant", "status": "completed", "content": [{"type": "output_text",
            "text": p.tokens.concat(), "annotations": [], "logprobs": null}]})),
    }
    out
}

fn response_object(p: &Plan, body: &Value, status: &str, output: Vec<Value>) -> Value {
    let output_tokens = p.reasoning.len() + if p.call.is_some() { 1 } else { p.tokens.len() };
    let done = matches!(status, "completed" | "incomplete");
    json!({
        "id": p.id, "created_at": p.created, "incomplete_details":
            if status == "incomplete" { json!({"reason": "max_output_tokens"}) } else { Value::Null },
        "instructions": body.get("instructions").cloned().unwrap_or(Value::Null),
        "metadata": null, "model": p.model, "object": "response", "output": output,
        "parallel_tool_calls": true, "temperature": 1.0, "tool_choice": "auto",
        "tools": body.get("tools").cloned().unwrap_or(json!([])), "top_p": 1.0,
        "background": body.get("background").and_then(Value::as_bool).unwrap_or(false),
        "max_output_tokens": body.get("max_output_tokens").cloned().unwrap_or(json!(8192)),
        "max_tool_calls": null, "previous_response_id": body.get("previous_response_id").cloned().unwrap_or(Value::Null),
        "prompt": null, "reasoning": null, "service_tier": "auto", "status": status,
        "text": null, "top_logprobs": null, "truncation": "disabled",
        "usage": if done { json!({"input_tokens": p.input_tokens, "input_tokens_details":
            {"cached_tokens": 0}, "output_tokens": output_tokens, "output_tokens_details":
            {"reasoning_tokens": p.reasoning.len(), "tool_output_tokens": 0},
            "total_tokens": p.input_tokens + output_tokens}) } else { Value::Null },
        "user": null
    })
}

/// `event: <type>` then its data line, as vLLM writes each event.
fn named(kind: &str, data: &Value) -> Part {
    Part::text(&format!("event: {kind}\ndata: {data}\n\n"))
}

/// `POST /v1/responses`.
pub(crate) fn create_response(
    body: &Value,
    index: usize,
    cfg: &ModelConfig,
    gen: &Generate,
    state: &std::sync::Mutex<OpsState>,
) -> Result<Resolved, BadRequest> {
    let p = plan(body, index, cfg, gen)?;
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("stream must be a boolean")),
    };
    let store = body.get("store").and_then(Value::as_bool).unwrap_or(true);
    let background = body
        .get("background")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if background && !store {
        return Err(bad("background can only be used when `store` is true"));
    }
    let status = if p.incomplete {
        "incomplete"
    } else {
        "completed"
    };
    let done = response_object(&p, body, status, output_items(&p));
    // A streamed background response: its events are kept whole (whatever cuts the stream
    // this request reads), so that a client can resume it.
    let events = (background && stream).then(|| {
        let whole = Generate {
            ending: Ending::Normal,
            ..gen.clone()
        };
        stream_events(&p, body, &whole, done.clone())
    });
    if store {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.store(
            p.id.clone(),
            Stored {
                done: done.clone(),
                background,
                pending_polls: if background && !stream { 1 } else { 0 },
                cancelled: false,
                events,
            },
        );
    }
    if background && !stream {
        return Ok(super::model::json_resolved(
            200,
            response_object(&p, body, "queued", Vec::new()).to_string(),
        ));
    }
    if !stream {
        let mut r = super::model::json_resolved(200, done.to_string());
        r.extra_delay = gen
            .token_delay
            .saturating_mul(u32::try_from(p.tokens.len()).unwrap_or(u32::MAX));
        return Ok(r);
    }
    Ok(streamed(stream_events(&p, body, gen, done)))
}

/// The typed, numbered events of a response, shaped by the [`Generate`] options.
fn stream_events(p: &Plan, body: &Value, gen: &Generate, done: Value) -> Vec<Part> {
    let mut seq = 0u64;
    let mut parts = Vec::new();
    let mut ev = |parts: &mut Vec<Part>, kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        seq += 1;
        parts.push(named(kind, &data));
    };
    let in_progress = response_object(p, body, "in_progress", Vec::new());
    ev(
        &mut parts,
        "response.created",
        json!({"response": in_progress}),
    );
    ev(
        &mut parts,
        "response.in_progress",
        json!({"response": in_progress}),
    );
    let items = output_items(p);
    let mut out_index = 0u32;
    if !p.reasoning.is_empty() {
        let item = &items[0];
        let id = item["id"].clone();
        ev(
            &mut parts,
            "response.output_item.added",
            json!({"output_index": out_index,
            "item": {"id": id, "type": "reasoning", "summary": [], "content": [], "status": "in_progress"}}),
        );
        for tok in &p.reasoning {
            parts.push(Part::Delay(gen.token_delay));
            ev(
                &mut parts,
                "response.reasoning_text.delta",
                json!({"item_id": id,
                "output_index": out_index, "content_index": 0, "delta": tok}),
            );
        }
        ev(
            &mut parts,
            "response.reasoning_text.done",
            json!({"item_id": id,
            "output_index": out_index, "content_index": 0, "text": p.reasoning.concat()}),
        );
        ev(
            &mut parts,
            "response.output_item.done",
            json!({"output_index": out_index, "item": item}),
        );
        out_index += 1;
    }
    let item = items.last().cloned().unwrap_or(Value::Null);
    let id = item["id"].clone();
    // The pieces: text tokens, or the call's arguments in a few slices.
    let pieces: Vec<String> = match &p.call {
        Some((_, _, args)) => {
            let chars: Vec<char> = args.chars().collect();
            chars.chunks(4).map(|c| c.iter().collect()).collect()
        }
        None => p.tokens.clone(),
    };
    let (added, delta_kind) = match &p.call {
        Some((call_id, name, _)) => (
            json!({"id": id, "type": "function_call", "call_id": call_id, "name": name,
                "arguments": "", "status": "in_progress"}),
            "response.function_call_arguments.delta",
        ),
        None => (
            json!({"id": id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}),
            "response.output_text.delta",
        ),
    };
    ev(
        &mut parts,
        "response.output_item.added",
        json!({"output_index": out_index, "item": added}),
    );
    if p.call.is_none() {
        ev(
            &mut parts,
            "response.content_part.added",
            json!({"item_id": id,
            "output_index": out_index, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []}}),
        );
    }
    let len = pieces.len();
    for i in 0..=len {
        if let Some((at, count, every)) = gen.keep_alives {
            if at.min(len) == i {
                for _ in 0..count {
                    parts.push(Part::keep_alive());
                    parts.push(Part::Delay(every));
                }
            }
        }
        match gen.ending_at(i, len) {
            Some(EndAt::Error(msg)) => {
                ev(
                    &mut parts,
                    "error",
                    json!({"code": "internal_error", "message": msg, "param": null}),
                );
                return parts;
            }
            Some(EndAt::Last(part)) => {
                parts.push(part);
                return parts;
            }
            None => {}
        }
        let Some(piece) = pieces.get(i) else {
            break;
        };
        parts.push(Part::Delay(gen.token_delay));
        let mut data = json!({"item_id": id, "output_index": out_index, "delta": piece});
        if p.call.is_none() {
            data["content_index"] = json!(0);
            data["logprobs"] = json!([]);
        }
        ev(&mut parts, delta_kind, data);
    }
    match &p.call {
        Some((_, name, args)) => ev(
            &mut parts,
            "response.function_call_arguments.done",
            json!({"item_id": id, "output_index": out_index, "name": name, "arguments": args}),
        ),
        None => {
            ev(
                &mut parts,
                "response.output_text.done",
                json!({"item_id": id,
                "output_index": out_index, "content_index": 0, "text": p.tokens.concat(), "logprobs": []}),
            );
            ev(
                &mut parts,
                "response.content_part.done",
                json!({"item_id": id,
                "output_index": out_index, "content_index": 0,
                "part": {"type": "output_text", "text": p.tokens.concat(), "annotations": []}}),
            );
        }
    }
    ev(
        &mut parts,
        "response.output_item.done",
        json!({"output_index": out_index, "item": item}),
    );
    if gen.ending != Ending::NoDone {
        let kind = if p.incomplete {
            "response.incomplete"
        } else {
            "response.completed"
        };
        ev(&mut parts, kind, json!({"response": done}));
    }
    parts
}

/// `GET /v1/responses/{id}`; with `?stream=true` (and `starting_after=N`), the rest of a
/// streamed background response's events, as vLLM serves them.
pub(crate) fn retrieve_response(
    id: &str,
    query: Option<&str>,
    state: &std::sync::Mutex<OpsState>,
) -> Resolved {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    let Some(stored) = st.responses.get_mut(id) else {
        return Resolved::error(404, &format!("Response with id '{id}' not found."));
    };
    let param = |name: &str| {
        query?
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    if param("stream") == Some("true") {
        let Some(events) = &stored.events else {
            return Resolved::error(
                400,
                "Cannot stream a response that was not created in the background with stream=true.",
            );
        };
        let after = match param("starting_after").map(str::parse::<u64>) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => return Resolved::error(400, "starting_after must be an integer."),
        };
        return streamed(events_after(events, after));
    }
    let body = if stored.cancelled {
        with_status(&stored.done, "cancelled")
    } else if stored.pending_polls > 0 {
        stored.pending_polls -= 1;
        with_status(&stored.done, "in_progress")
    } else {
        stored.done.clone()
    };
    super::model::json_resolved(200, body.to_string())
}

/// The events numbered above `after` (all of them for `None`), with the delays between them.
fn events_after(events: &[Part], after: Option<u64>) -> Vec<Part> {
    let Some(after) = after else {
        return events.to_vec();
    };
    let number = |bytes: &[u8]| {
        let text = std::str::from_utf8(bytes).ok()?;
        let data = text.split_once("data: ")?.1.trim_end();
        serde_json::from_str::<Value>(data).ok()?["sequence_number"].as_u64()
    };
    events
        .iter()
        .skip_while(|p| match p {
            Part::Bytes(b) => number(b).is_none_or(|n| n <= after),
            _ => true,
        })
        .cloned()
        .collect()
}

/// `POST /v1/responses/{id}/cancel`.
pub(crate) fn cancel_response(id: &str, state: &std::sync::Mutex<OpsState>) -> Resolved {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    let Some(stored) = st.responses.get_mut(id) else {
        return Resolved::error(404, &format!("Response with id '{id}' not found."));
    };
    if !stored.background {
        return Resolved::error(400, "Cannot cancel a synchronous response.");
    }
    stored.cancelled = true;
    super::model::json_resolved(200, with_status(&stored.done, "cancelled").to_string())
}

fn with_status(response: &Value, status: &str) -> Value {
    let mut r = response.clone();
    r["status"] = json!(status);
    if status != "completed" && status != "incomplete" {
        r["output"] = json!([]);
        r["usage"] = Value::Null;
    }
    r
}

// ----- rerank, score, classify, pooling ---------------------------------------------------

fn words(s: &str) -> BTreeSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// How relevant `doc` is to `query`: the share of the query's words it contains, in [0, 1].
pub fn relevance(query: &str, doc: &str) -> f64 {
    let q = words(query);
    if q.is_empty() {
        return 0.0;
    }
    let d = words(doc);
    q.intersection(&d).count() as f64 / q.len() as f64
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, BadRequest> {
    match v {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("{what}: every item must be a string")))
            })
            .collect(),
        _ => Err(bad(format!(
            "{what}: field required (a string or a non-empty list)"
        ))),
    }
}

fn tokens_of(texts: &[String]) -> usize {
    texts.iter().map(|t| split_tokens(t).len()).sum()
}

/// `POST /rerank`, `/v1/rerank`, `/v2/rerank`.
pub(crate) fn rerank(
    body: &Value,
    index: usize,
    cfg: &ModelConfig,
) -> Result<Resolved, BadRequest> {
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("query: field required (a string)"))?;
    let docs = strings(body.get("documents"), "documents")?;
    let top_n = body.get("top_n").and_then(Value::as_u64).unwrap_or(0) as usize;
    let mut results: Vec<(usize, f64)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (i, relevance(query, d)))
        .collect();
    results.sort_by(|a, b| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.0.cmp(&b.0))
    });
    if top_n > 0 {
        results.truncate(top_n);
    }
    let who = ident("rerank-", index, body, cfg);
    let tokens = tokens_of(&docs) + split_tokens(query).len() * docs.len();
    let results: Vec<Value> = results
        .into_iter()
        .map(|(i, s)| json!({"index": i, "document": {"text": docs[i], "multi_modal": null}, "relevance_score": s}))
        .collect();
    let json = json!({"id": who.id, "model": who.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}, "results": results});
    Ok(super::model::json_resolved(200, json.to_string()))
}

/// The answer of score, classify and pooling: `data` in a list object with its usage (`tokens`
/// prompt tokens, none generated).
fn list_answer(who: &Ident, data: Vec<Value>, tokens: usize) -> Resolved {
    let json = json!({"id": who.id, "object": "list", "created": who.created, "model": who.model,
        "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0,
        "prompt_tokens_details": null}});
    super::model::json_resolved(200, json.to_string())
}

/// `POST /score`, `/v1/score`.
pub(crate) fn score(body: &Value, index: usize, cfg: &ModelConfig) -> Result<Resolved, BadRequest> {
    let a = strings(body.get("text_1").or_else(|| body.get("queries")), "text_1")?;
    let b = strings(
        body.get("text_2").or_else(|| body.get("documents")),
        "text_2",
    )?;
    let pairs: Vec<(&String, &String)> = if a.len() == 1 {
        b.iter().map(|d| (&a[0], d)).collect()
    } else if a.len() == b.len() {
        a.iter().zip(b.iter()).collect()
    } else {
        return Err(bad("text_1 must be one text, or as many texts as text_2"));
    };
    let who = ident("score-", index, body, cfg);
    let tokens = tokens_of(&a) + tokens_of(&b);
    let data: Vec<Value> = pairs
        .iter()
        .enumerate()
        .map(|(i, (q, d))| json!({"index": i, "object": "score", "score": relevance(q, d)}))
        .collect();
    Ok(list_answer(&who, data, tokens))
}

/// `POST /classify`: two classes; the probability of `positive` from a hash of the text.
pub(crate) fn classify(
    body: &Value,
    index: usize,
    cfg: &ModelConfig,
) -> Result<Resolved, BadRequest> {
    let inputs = strings(body.get("input"), "input")?;
    let who = ident("classify-", index, body, cfg);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = (fnv1a(t.as_bytes()) % 1000) as f64 / 1000.0;
            let label = if p >= 0.5 { "positive" } else { "negative" };
            json!({"index": i, "label": label, "probs": [1.0 - p, p], "num_classes": 2})
        })
        .collect();
    let tokens = tokens_of(&inputs);
    Ok(list_answer(&who, data, tokens))
}

/// `POST /pooling`: the input's embedding (float or base64).
pub(crate) fn pooling(
    body: &Value,
    index: usize,
    cfg: &ModelConfig,
) -> Result<Resolved, BadRequest> {
    let inputs = strings(body.get("input"), "input")?;
    let b64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let who = ident("pool-", index, body, cfg);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = embedding(t, cfg.embedding_dim);
            let d = if b64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64(&bytes))
            } else {
                json!(v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>())
            };
            json!({"index": i, "object": "pooling", "data": d})
        })
        .collect();
    let tokens = tokens_of(&inputs);
    Ok(list_answer(&who, data, tokens))
}

// ----- audio --------------------------------------------------------------------------------

/// One field of a multipart form.
#[derive(Debug)]
pub(crate) struct FormField {
    pub name: String,
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

/// Parses a `multipart/form-data` body (RFC 7578) with the boundary of `content_type`.
pub(crate) fn parse_multipart(content_type: &str, body: &[u8]) -> Option<Vec<FormField>> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let mut fields = Vec::new();
    let mut rest = body;
    // Skip the preamble up to the first delimiter.
    let start = find(rest, delim.as_bytes())?;
    rest = &rest[start + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Some(fields);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        rest = &rest[head_end + 4..];
        let end = find(rest, format!("\r\n{delim}").as_bytes())?;
        let bytes = rest[..end].to_vec();
        rest = &rest[end + 2 + delim.len()..];
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
        let param = |key: &str| {
            disposition.split(';').map(str::trim).find_map(|p| {
                p.strip_prefix(key)
                    .and_then(|v| v.strip_prefix('='))
                    .map(|v| v.trim_matches('"').to_owned())
            })
        };
        fields.push(FormField {
            name: param("name")?,
            file_name: param("filename"),
            bytes,
        });
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `POST /v1/audio/transcriptions` and `/v1/audio/translations`. The "speech" is the file's
/// bytes read as UTF-8 text (a test sends text), else a description of the file.
pub(crate) fn audio(
    content_type: Option<&str>,
    body: &[u8],
    index: usize,
    cfg: &ModelConfig,
    gen: &Generate,
    translate: bool,
) -> Result<Resolved, BadRequest> {
    let ct = content_type.unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Err((400, "the request must be multipart/form-data".to_owned()));
    }
    let fields = parse_multipart(ct, body).ok_or_else(|| bad("malformed multipart body"))?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
    };
    let file = fields
        .iter()
        .find(|f| f.name == "file" && f.file_name.is_some())
        .ok_or_else(|| {
            (
                422,
                "Expected 'file' to be a file-like object, not 'str'.".to_owned(),
            )
        })?;
    let speech = match std::str::from_utf8(&file.bytes) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => format!("audio of {} bytes", file.bytes.len()),
    };
    let text = gen.text.clone().unwrap_or_else(|| {
        if translate {
            format!("Translation: {speech}")
        } else {
            speech
        }
    });
    let stream = field("stream").is_some_and(|s| s == "true");
    let format = field("response_format").unwrap_or_else(|| "json".to_owned());
    let model = field("model").unwrap_or_else(|| cfg.models.first().cloned().unwrap_or_default());
    let body_for_ident = json!({"model": model});
    let who = ident(
        if translate { "trsl-" } else { "trsc-" },
        index,
        &body_for_ident,
        cfg,
    );
    if stream {
        let object = if translate {
            "translation.chunk"
        } else {
            "transcription.chunk"
        };
        let chunk = |delta: Value, finish: Option<&str>| {
            Part::data(
                &json!({"id": who.id, "object": object, "created": who.created,
                "model": who.model, "choices": [{"delta": delta, "finish_reason": finish,
                "stop_reason": null}]})
                .to_string(),
            )
        };
        let mut parts = Vec::new();
        let toks = split_tokens(&text);
        let len = toks.len();
        for (i, tok) in toks.iter().enumerate() {
            if let Ending::CutAfter(n) = gen.ending {
                if n == i {
                    parts.push(Part::Cut);
                    return Ok(streamed(parts));
                }
            }
            parts.push(Part::Delay(gen.token_delay));
            parts.push(chunk(json!({"content": tok}), None));
        }
        if let Ending::CutAfter(n) = gen.ending {
            if n >= len {
                parts.push(Part::Cut);
                return Ok(streamed(parts));
            }
        }
        parts.push(chunk(json!({"content": ""}), Some("stop")));
        parts.push(Part::done());
        return Ok(streamed(parts));
    }
    let seconds = (file.bytes.len() / 16_000).max(1);
    let resolved = match format.as_str() {
        "json" => super::model::json_resolved(
            200,
            json!({"text": text, "usage": {"type": "duration", "seconds": seconds}}).to_string(),
        ),
        "verbose_json" => super::model::json_resolved(
            200,
            json!({"duration": format!("{seconds}.0"), "language": field("language").unwrap_or_else(|| "en".into()),
                "text": text, "segments": [{"id": 0, "avg_logprob": -0.1, "compression_ratio": 1.0,
                "end": seconds as f64, "no_speech_prob": 0.0, "seek": 0, "start": 0.0,
                "temperature": 0.0, "text": text, "tokens": []}], "words": null})
            .to_string(),
        ),
        "text" | "srt" | "vtt" => Resolved {
            status: 200,
            content_type: Some("text/plain; charset=utf-8"),
            parts: vec![Part::text(&text)],
            streamed: false,
            extra_delay: std::time::Duration::ZERO,
        },
        other => return Err(bad(format!("response_format {other:?} is not supported"))),
    };
    Ok(resolved)
}

// ----- LoRA ---------------------------------------------------------------------------------

/// The string field `field` of `body`, or vLLM's 400 for a missing field.
fn required_str<'a>(body: &'a Value, field: &str) -> Result<&'a str, BadRequest> {
    body.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{field}: field required")))
}

/// `POST /v1/load_lora_adapter`.
pub(crate) fn load_lora(
    body: &Value,
    state: &std::sync::Mutex<OpsState>,
) -> Result<Resolved, BadRequest> {
    let name = required_str(body, "lora_name")?;
    required_str(body, "lora_path")?;
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    let inplace = body.get("load_inplace").and_then(Value::as_bool) == Some(true);
    if st.lora.contains(name) && !inplace {
        return Err(bad(format!("The lora adapter '{name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.")));
    }
    st.lora.insert(name.to_owned());
    Ok(text_reply(&format!(
        "Success: LoRA adapter '{name}' added successfully."
    )))
}

/// `POST /v1/unload_lora_adapter`.
pub(crate) fn unload_lora(
    body: &Value,
    state: &std::sync::Mutex<OpsState>,
) -> Result<Resolved, BadRequest> {
    let name = required_str(body, "lora_name")?;
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    if !st.lora.remove(name) {
        return Err((404, format!("The lora adapter '{name}' cannot be found.")));
    }
    Ok(text_reply(&format!(
        "Success: LoRA adapter '{name}' removed successfully."
    )))
}

fn text_reply(text: &str) -> Resolved {
    Resolved {
        status: 200,
        content_type: Some("text/plain; charset=utf-8"),
        parts: vec![Part::text(text)],
        streamed: false,
        extra_delay: std::time::Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_round_trip() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nhi\r\nthere\r\n--b--\r\n";
        let f = parse_multipart("multipart/form-data; boundary=b", body).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, "model");
        assert_eq!(f[1].file_name.as_deref(), Some("a.wav"));
        assert_eq!(f[1].bytes, b"hi\r\nthere");
        assert!(parse_multipart("multipart/form-data; boundary=x", body).is_none());
    }

    #[test]
    fn relevance_is_word_overlap() {
        assert_eq!(
            relevance("capital of France", "Paris is the capital of France"),
            1.0
        );
        assert!(relevance("capital of France", "Berlin") == 0.0);
    }
}
