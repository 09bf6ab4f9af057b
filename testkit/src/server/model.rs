//! The deterministic fake model behind the default endpoints, and vLLM's exact JSON shapes.
//!
//! Tokens are words: [`split_tokens`] cuts text before every whitespace run that follows a
//! non-whitespace character, so `"Echo: hi  there"` is `["Echo:", " hi", "  there"]` and the
//! tokens concatenate back to the text. The chat answer is [`default_reply_text`] of the last
//! user message; legacy completions answer the same for the prompt. Prompt token counts are
//! the word tokens of every message plus 2 per message (a role marker and an end marker, as
//! `/tokenize` shows them).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{json, Value};

use super::error_body::error_json;
use super::reply::{EndAt, Ending, Generate, Part};

/// Splits text into the fake model's tokens (words with their leading whitespace). The pieces
/// concatenate back to `text`; empty text has no tokens.
pub fn split_tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_ws = true;
    for (i, c) in text.char_indices() {
        let ws = c.is_whitespace();
        if ws && !prev_ws && i > start {
            out.push(&text[start..i]);
            start = i;
        }
        prev_ws = ws;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The default answer to a user message: `"Echo: <message>"`, or
/// `"Hello from the fake vLLM server."` when the message is empty or blank.
pub fn default_reply_text(last_user_message: &str) -> String {
    if last_user_message.trim().is_empty() {
        "Hello from the fake vLLM server.".to_string()
    } else {
        format!("Echo: {last_user_message}")
    }
}

/// Server-wide settings of the fake model.
#[derive(Clone, Debug)]
pub(crate) struct ModelConfig {
    pub models: Vec<String>,
    pub max_model_len: usize,
    pub embedding_dim: usize,
    pub version: String,
    pub api_key: Option<String>,
}

/// Token-string ⇄ id table behind `/tokenize` and `/detokenize` (ids are handed out on first
/// sight, from 1000 up; bounded).
#[derive(Debug, Default)]
pub(crate) struct Vocab {
    ids: HashMap<String, u32>,
    strs: Vec<String>,
}

const VOCAB_BASE: u32 = 1000;
const VOCAB_MAX: usize = 1 << 20;
/// Id used when the table is full.
const UNK_ID: u32 = 0;

impl Vocab {
    fn id(&mut self, tok: &str) -> u32 {
        if let Some(&id) = self.ids.get(tok) {
            return id;
        }
        if self.strs.len() >= VOCAB_MAX {
            return UNK_ID;
        }
        let id = VOCAB_BASE + self.strs.len() as u32;
        self.ids.insert(tok.to_string(), id);
        self.strs.push(tok.to_string());
        id
    }

    fn text(&self, id: u64) -> Option<&str> {
        if id == u64::from(UNK_ID) {
            return Some("<unk>");
        }
        let i = usize::try_from(id.checked_sub(u64::from(VOCAB_BASE))?).ok()?;
        self.strs.get(i).map(String::as_str)
    }
}

/// What the model decided to send: the engine adds `date`, `server` and framing headers.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub parts: Vec<Part>,
    pub streamed: bool,
    /// Extra wait before the head (non-streamed generation time).
    pub extra_delay: Duration,
}

/// A JSON answer.
pub(crate) fn json_resolved(status: u16, body: String) -> Resolved {
    Resolved::json(status, body)
}

impl Resolved {
    pub(crate) fn json(status: u16, body: String) -> Resolved {
        Resolved {
            status,
            content_type: Some("application/json"),
            parts: vec![Part::Bytes(Bytes::from(body))],
            streamed: false,
            extra_delay: Duration::ZERO,
        }
    }

    pub(crate) fn empty(status: u16) -> Resolved {
        Resolved {
            status,
            content_type: None,
            parts: Vec::new(),
            streamed: false,
            extra_delay: Duration::ZERO,
        }
    }

    pub(crate) fn error(status: u16, message: &str) -> Resolved {
        Resolved::json(status, error_json(status, message))
    }
}

/// A JSON string literal.
pub(crate) fn js(s: &str) -> String {
    Value::from(s).to_string()
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// splitmix64: deterministic ids and embedding values.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

fn usage_json(prompt: usize, completion: usize) -> String {
    format!(
        r#"{{"prompt_tokens":{prompt},"total_tokens":{},"completion_tokens":{completion},"prompt_tokens_details":null}}"#,
        prompt + completion
    )
}

/// Text of a message's `content`: a string, or the `text` of its `{"type":"text"}` parts.
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Tokens of a chat conversation as `/tokenize` shows them.
fn message_tokens(messages: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        out.push(format!("<|{role}|>"));
        let text = m.get("content").map(content_text).unwrap_or_default();
        out.extend(split_tokens(&text).into_iter().map(str::to_string));
        out.push("<|end|>".to_string());
    }
    out
}

pub(crate) type BadRequest = (u16, String);

pub(crate) fn bad(msg: impl Into<String>) -> BadRequest {
    (400, msg.into())
}

/// `max_completion_tokens` / `max_tokens`: absent/null → `None`; non-negative integer → cap.
fn token_cap(body: &Value) -> Result<Option<usize>, BadRequest> {
    for key in ["max_completion_tokens", "max_tokens"] {
        match body.get(key) {
            None | Some(Value::Null) => continue,
            Some(v) => {
                return match v.as_u64() {
                    Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
                    None => Err(bad(format!("{key} must be a non-negative integer"))),
                };
            }
        }
    }
    Ok(None)
}

struct StreamOpts {
    stream: bool,
    include_usage: bool,
    continuous: bool,
}

fn stream_opts(body: &Value) -> Result<StreamOpts, BadRequest> {
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("stream must be a boolean")),
    };
    let so = body.get("stream_options");
    let flag = |k: &str| {
        so.and_then(|o| o.get(k))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    Ok(StreamOpts {
        stream,
        include_usage: flag("include_usage"),
        continuous: flag("continuous_usage_stats"),
    })
}

/// The generated answer after the cap.
struct Answer {
    tokens: Vec<String>,
    reasoning: Vec<String>,
    finish: &'static str,
    prompt_tokens: usize,
}

fn answer(
    text: &str,
    reasoning: Option<&str>,
    prompt_tokens: usize,
    cap: Option<usize>,
    cfg: &ModelConfig,
) -> Result<Answer, BadRequest> {
    if prompt_tokens.saturating_add(cap.unwrap_or(0)) > cfg.max_model_len {
        return Err(bad(format!(
            "This model's maximum context length is {} tokens. However, you requested {} tokens \
             ({} in the messages, {} in the completion). Please reduce the length of the \
             messages or completion.",
            cfg.max_model_len,
            prompt_tokens.saturating_add(cap.unwrap_or(0)),
            prompt_tokens,
            cap.unwrap_or(0)
        )));
    }
    let cap = cap.unwrap_or(cfg.max_model_len - prompt_tokens);
    let mut reasoning: Vec<String> = reasoning
        .map(|r| split_tokens(r).into_iter().map(str::to_string).collect())
        .unwrap_or_default();
    reasoning.truncate(cap);
    let room = cap - reasoning.len();
    let mut tokens: Vec<String> = split_tokens(text).into_iter().map(str::to_string).collect();
    let finish = if tokens.len() > room {
        tokens.truncate(room);
        "length"
    } else {
        "stop"
    };
    Ok(Answer {
        tokens,
        reasoning,
        finish,
        prompt_tokens,
    })
}

/// Request-derived identity of a response.
pub(crate) struct Ident {
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
}

pub(crate) fn ident(prefix: &str, index: usize, body: &Value, cfg: &ModelConfig) -> Ident {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| cfg.models.first().cloned())
        .unwrap_or_default();
    Ident {
        id: format!(
            "{prefix}{:016x}{:016x}",
            mix(index as u64),
            mix(!(index as u64))
        ),
        created: now_secs(),
        model,
    }
}

/// Which kind of stream is being built.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
}

/// Builds the stream parts for chat or completions, applying the [`Generate`] options.
fn stream_parts(
    kind: Kind,
    who: &Ident,
    ans: &Answer,
    opts: &StreamOpts,
    gen: &Generate,
) -> Vec<Part> {
    let object = match kind {
        Kind::Chat => "chat.completion.chunk",
        Kind::Completion => "text_completion",
    };
    let prefix = format!(
        r#"{{"id":{},"object":"{object}","created":{},"model":{},"choices":["#,
        js(&who.id),
        who.created,
        js(&who.model)
    );
    let completed = std::cell::Cell::new(0usize);
    let cont_usage = |n: usize| {
        if opts.continuous {
            format!(r#","usage":{}"#, usage_json(ans.prompt_tokens, n))
        } else if kind == Kind::Completion {
            r#","usage":null"#.to_string()
        } else {
            String::new()
        }
    };
    let chat_chunk = |delta: &str, finish: Option<&str>, n: usize| -> Part {
        let tail = match finish {
            None => r#""finish_reason":null"#.to_string(),
            Some(f) => format!(r#""finish_reason":"{f}","stop_reason":null"#),
        };
        Part::data(&format!(
            r#"{prefix}{{"index":0,"delta":{delta},"logprobs":null,{tail}}}]{}}}"#,
            cont_usage(n)
        ))
    };
    let text_chunk = |text: &str, finish: Option<&str>, n: usize| -> Part {
        let f = finish.map_or("null".to_string(), |f| format!("\"{f}\""));
        Part::data(&format!(
            r#"{prefix}{{"index":0,"text":{},"logprobs":null,"finish_reason":{f},"stop_reason":null}}]{}}}"#,
            js(text),
            cont_usage(n)
        ))
    };

    let mut parts = Vec::new();
    if kind == Kind::Chat {
        parts.push(chat_chunk(r#"{"role":"assistant","content":""}"#, None, 0));
        for tok in &ans.reasoning {
            parts.push(Part::Delay(gen.token_delay));
            completed.set(completed.get() + 1);
            parts.push(chat_chunk(
                &format!(r#"{{"reasoning":{}}}"#, js(tok)),
                None,
                completed.get(),
            ));
        }
    }
    let len = ans.tokens.len();
    for i in 0..=len {
        if let Some((at, count, every)) = gen.keep_alives {
            if at.min(len) == i {
                for k in 0..count {
                    if k > 0 {
                        parts.push(Part::Delay(every));
                    }
                    parts.push(Part::keep_alive());
                }
                if count > 0 {
                    parts.push(Part::Delay(every));
                }
            }
        }
        match gen.ending_at(i, len) {
            Some(EndAt::Error(msg)) => {
                parts.push(Part::error_event(msg));
                parts.push(Part::done());
                return parts;
            }
            Some(EndAt::Last(part)) => {
                parts.push(part);
                return parts;
            }
            None => {}
        }
        if i == len {
            break;
        }
        parts.push(Part::Delay(gen.token_delay));
        completed.set(completed.get() + 1);
        let tok = &ans.tokens[i];
        parts.push(match kind {
            Kind::Chat => chat_chunk(
                &format!(r#"{{"content":{}}}"#, js(tok)),
                None,
                completed.get(),
            ),
            Kind::Completion => text_chunk(tok, None, completed.get()),
        });
    }
    let n = completed.get();
    parts.push(match kind {
        Kind::Chat => chat_chunk(r#"{"content":""}"#, Some(ans.finish), n),
        Kind::Completion => text_chunk("", Some(ans.finish), n),
    });
    if opts.include_usage {
        parts.push(Part::data(&format!(
            r#"{prefix}],"usage":{}}}"#,
            usage_json(ans.prompt_tokens, n)
        )));
    }
    if gen.ending != Ending::NoDone {
        parts.push(Part::done());
    }
    parts
}

pub(crate) fn streamed(parts: Vec<Part>) -> Resolved {
    Resolved {
        status: 200,
        content_type: Some("text/event-stream; charset=utf-8"),
        parts,
        streamed: true,
        extra_delay: Duration::ZERO,
    }
}

fn non_stream_delay(gen: &Generate, tokens: usize) -> Duration {
    gen.token_delay
        .saturating_mul(u32::try_from(tokens).unwrap_or(u32::MAX))
}

pub(crate) fn chat(
    body: &Value,
    index: usize,
    cfg: &ModelConfig,
    gen: &Generate,
) -> Result<Resolved, BadRequest> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("messages: field required (a list of messages)"))?;
    let cap = token_cap(body)?;
    let opts = stream_opts(body)?;
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default();
    let last = messages.last();
    let last_role = last.and_then(|m| m.get("role")).and_then(Value::as_str);
    let tool_answer = (last_role == Some("tool"))
        .then(|| last.and_then(|m| m.get("content")).map(content_text))
        .flatten();
    let text = gen.text.clone().unwrap_or_else(|| match &tool_answer {
        Some(out) => format!("Tool said: {out}"),
        None => default_reply_text(&last_user),
    });
    // vLLM's `continue_final_message`: the last (assistant) message is continued — here, what
    // follows it in the answer it starts (nothing when it starts another).
    let continued = body.get("continue_final_message") == Some(&Value::Bool(true))
        && last_role == Some("assistant");
    let text = match last.and_then(|m| m.get("content")).map(content_text) {
        Some(prefix) if continued => text
            .strip_prefix(prefix.as_str())
            .unwrap_or_default()
            .to_owned(),
        _ => text,
    };
    let prompt_tokens = message_tokens(messages).len();
    let who = ident("chatcmpl-", index, body, cfg);
    // With tools, a user's turn is answered by calling the first one (unless `tool_choice`
    // says "none", or a scripted text is given).
    let tool = body
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .and_then(|t| t.get("function"))
        .filter(|_| {
            body.get("tool_choice").and_then(Value::as_str) != Some("none")
                && last_role == Some("user")
                && gen.text.is_none()
        });
    if let Some(f) = tool {
        let name = f.get("name").and_then(Value::as_str).unwrap_or("tool");
        let args = tool_arguments(f.get("parameters"), &last_user);
        return Ok(tool_call_reply(&who, name, &args, prompt_tokens, &opts));
    }
    let ans = answer(&text, gen.reasoning.as_deref(), prompt_tokens, cap, cfg)?;
    if opts.stream {
        return Ok(streamed(stream_parts(Kind::Chat, &who, &ans, &opts, gen)));
    }
    let completion = ans.tokens.len() + ans.reasoning.len();
    let reasoning = if gen.reasoning.is_some() {
        js(&ans.reasoning.concat())
    } else {
        "null".to_string()
    };
    let json = format!(
        r#"{{"id":{},"object":"chat.completion","created":{},"model":{},"choices":[{{"index":0,"message":{{"role":"assistant","content":{},"refusal":null,"annotations":null,"audio":null,"function_call":null,"tool_calls":[],"reasoning":{}}},"logprobs":null,"finish_reason":"{}","stop_reason":null}}],"service_tier":null,"system_fingerprint":null,"usage":{},"prompt_logprobs":null,"prompt_token_ids":null,"kv_transfer_params":null}}"#,
        js(&who.id),
        who.created,
        js(&who.model),
        js(&ans.tokens.concat()),
        reasoning,
        ans.finish,
        usage_json(ans.prompt_tokens, completion)
    );
    let mut r = Resolved::json(200, json);
    r.extra_delay = non_stream_delay(gen, completion);
    Ok(r)
}

/// The arguments the fake model calls a tool with: each property of the tool's schema, the
/// user's text for strings, 1 for numbers, `true` for booleans.
pub(crate) fn tool_arguments(parameters: Option<&Value>, user_text: &str) -> String {
    let mut args = serde_json::Map::new();
    if let Some(props) = parameters
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object)
    {
        for (name, schema) in props {
            let v = match schema.get("type").and_then(Value::as_str) {
                Some("number" | "integer") => json!(1),
                Some("boolean") => json!(true),
                _ => Value::String(user_text.to_owned()),
            };
            args.insert(name.clone(), v);
        }
    }
    Value::Object(args).to_string()
}

/// A tool call, in vLLM's JSON or its stream (the id and name first, then the arguments in
/// pieces, then `finish_reason: "tool_calls"`).
fn tool_call_reply(
    who: &Ident,
    name: &str,
    args: &str,
    prompt_tokens: usize,
    opts: &StreamOpts,
) -> Resolved {
    let call_id = format!("chatcmpl-tool-{:016x}", fnv1a(who.id.as_bytes()));
    let completion = split_tokens(args).len().max(1);
    if !opts.stream {
        let json = serde_json::json!({"id": who.id, "object": "chat.completion",
            "created": who.created, "model": who.model, "choices": [{"index": 0, "message": {
            "role": "assistant", "content": null, "refusal": null, "annotations": null,
            "audio": null, "function_call": null, "tool_calls": [{"id": call_id, "type": "function",
            "function": {"name": name, "arguments": args}}], "reasoning": null},
            "logprobs": null, "finish_reason": "tool_calls", "stop_reason": null}],
            "usage": serde_json::from_str::<Value>(&usage_json(prompt_tokens, completion)).unwrap_or(Value::Null)});
        return Resolved::json(200, json.to_string());
    }
    let chunk = |delta: Value, finish: Value| {
        Part::data(
            &serde_json::json!({"id": who.id, "object": "chat.completion.chunk",
                "created": who.created, "model": who.model, "choices": [{"index": 0,
                "delta": delta, "logprobs": null, "finish_reason": finish}]})
            .to_string(),
        )
    };
    let mut parts = vec![chunk(
        serde_json::json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
            "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
        Value::Null,
    )];
    let chars: Vec<char> = args.chars().collect();
    for piece in chars.chunks(5) {
        let piece: String = piece.iter().collect();
        parts.push(chunk(
            serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            Value::Null,
        ));
    }
    parts.push(chunk(
        serde_json::json!({"content": ""}),
        Value::from("tool_calls"),
    ));
    if opts.include_usage {
        parts.push(Part::data(&format!(
            r#"{{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"choices":[],"usage":{}}}"#,
            js(&who.id),
            who.created,
            js(&who.model),
            usage_json(prompt_tokens, completion)
        )));
    }
    parts.push(Part::done());
    streamed(parts)
}

/// Default `max_tokens` of the legacy completions endpoint (as in OpenAI's API and vLLM).
const COMPLETIONS_DEFAULT_MAX_TOKENS: usize = 16;

pub(crate) fn completions(
    body: &Value,
    index: usize,
    cfg: &ModelConfig,
    gen: &Generate,
) -> Result<Resolved, BadRequest> {
    let prompt = match body.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if !items.is_empty() => match &items[0] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        _ => return Err(bad("prompt: field required (a string or a list)")),
    };
    let cap = token_cap(body)?.unwrap_or(COMPLETIONS_DEFAULT_MAX_TOKENS);
    let opts = stream_opts(body)?;
    let text = gen
        .text
        .clone()
        .unwrap_or_else(|| default_reply_text(&prompt));
    let prompt_tokens = split_tokens(&prompt).len();
    let ans = answer(&text, None, prompt_tokens, Some(cap), cfg)?;
    let who = ident("cmpl-", index, body, cfg);
    if opts.stream {
        return Ok(streamed(stream_parts(
            Kind::Completion,
            &who,
            &ans,
            &opts,
            gen,
        )));
    }
    let json = format!(
        r#"{{"id":{},"object":"text_completion","created":{},"model":{},"choices":[{{"index":0,"text":{},"logprobs":null,"finish_reason":"{}","stop_reason":null,"prompt_logprobs":null}}],"service_tier":null,"system_fingerprint":null,"usage":{},"kv_transfer_params":null}}"#,
        js(&who.id),
        who.created,
        js(&who.model),
        js(&ans.tokens.concat()),
        ans.finish,
        usage_json(ans.prompt_tokens, ans.tokens.len())
    );
    let mut r = Resolved::json(200, json);
    r.extra_delay = non_stream_delay(gen, ans.tokens.len());
    Ok(r)
}

const MAX_EMBEDDING_DIM: u64 = 4096;
const MAX_EMBEDDING_INPUTS: usize = 2048;

pub(crate) fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (k, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if k <= c.len() {
                out.push(char::from(T[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A deterministic unit vector for `text`.
pub(crate) fn embedding(text: &str, dim: usize) -> Vec<f32> {
    let seed = fnv1a(text.as_bytes());
    let mut v: Vec<f32> = (0..dim as u64)
        .map(|i| {
            let x = mix(seed ^ mix(i));
            // 24 random bits → [-1, 1).
            ((x >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

pub(crate) fn embeddings(
    body: &Value,
    index: usize,
    cfg: &ModelConfig,
) -> Result<Resolved, BadRequest> {
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.iter().all(Value::is_number) {
                vec![Value::Array(items.clone()).to_string()]
            } else {
                items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect()
            }
        }
        _ => return Err(bad("input: field required (a string or a non-empty list)")),
    };
    if inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(bad("too many inputs"));
    }
    let dim = match body.get("dimensions") {
        None | Some(Value::Null) => cfg.embedding_dim,
        Some(v) => match v.as_u64() {
            Some(d) if (1..=MAX_EMBEDDING_DIM).contains(&d) => d as usize,
            _ => return Err(bad("dimensions must be an integer between 1 and 4096")),
        },
    };
    let b64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let who = ident("embd-", index, body, cfg);
    let mut data = Vec::with_capacity(inputs.len());
    let mut prompt_tokens = 0;
    for (i, text) in inputs.iter().enumerate() {
        prompt_tokens += split_tokens(text).len();
        let v = embedding(text, dim);
        let emb = if b64 {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            js(&base64(&bytes))
        } else {
            Value::from(v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()).to_string()
        };
        data.push(format!(
            r#"{{"index":{i},"object":"embedding","embedding":{emb}}}"#
        ));
    }
    let json = format!(
        r#"{{"id":{},"object":"list","created":{},"model":{},"data":[{}],"usage":{}}}"#,
        js(&who.id),
        who.created,
        js(&who.model),
        data.join(","),
        usage_json(prompt_tokens, 0)
    );
    Ok(Resolved::json(200, json))
}

pub(crate) fn tokenize(
    body: &Value,
    cfg: &ModelConfig,
    vocab: &mut Vocab,
) -> Result<Resolved, BadRequest> {
    let toks: Vec<String> = if let Some(p) = body.get("prompt").and_then(Value::as_str) {
        split_tokens(p).into_iter().map(str::to_string).collect()
    } else if let Some(m) = body.get("messages").and_then(Value::as_array) {
        message_tokens(m)
    } else {
        return Err(bad("prompt or messages: field required"));
    };
    let ids: Vec<u32> = toks.iter().map(|t| vocab.id(t)).collect();
    let strs = if body.get("return_token_strs").and_then(Value::as_bool) == Some(true) {
        Value::from(toks.clone()).to_string()
    } else {
        "null".to_string()
    };
    let json = format!(
        r#"{{"count":{},"max_model_len":{},"tokens":{},"token_strs":{}}}"#,
        ids.len(),
        cfg.max_model_len,
        Value::from(ids),
        strs
    );
    Ok(Resolved::json(200, json))
}

pub(crate) fn detokenize(body: &Value, vocab: &Vocab) -> Result<Resolved, BadRequest> {
    let ids = body
        .get("tokens")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("tokens: field required (a list of token ids)"))?;
    let mut text = String::new();
    for id in ids {
        let piece = id
            .as_u64()
            .and_then(|id| vocab.text(id))
            .ok_or_else(|| bad(format!("token id {id} is out of vocabulary")))?;
        text.push_str(piece);
    }
    Ok(Resolved::json(
        200,
        format!(r#"{{"prompt":{}}}"#, js(&text)),
    ))
}

pub(crate) fn models(cfg: &ModelConfig, lora: &[String]) -> Resolved {
    let created = now_secs();
    let data: Vec<String> = cfg
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                r#"{{"id":{m},"object":"model","created":{created},"owned_by":"vllm","root":{m},"parent":null,"max_model_len":{},"permission":[{{"id":"modelperm-{:016x}","object":"model_permission","created":{created},"allow_create_engine":false,"allow_sampling":true,"allow_logprobs":true,"allow_search_indices":false,"allow_view":true,"allow_fine_tuning":false,"organization":"*","group":null,"is_blocking":false}}]}}"#,
                cfg.max_model_len,
                mix(i as u64),
                m = js(m),
            )
        })
        .collect();
    // Loaded LoRA adapters are served as models of their own, as vLLM lists them.
    let base = cfg.models.first().cloned().unwrap_or_default();
    let adapters = lora.iter().map(|name| {
        format!(
            r#"{{"id":{n},"object":"model","created":{created},"owned_by":"vllm","root":{n},"parent":{},"max_model_len":null,"permission":[]}}"#,
            js(&base),
            n = js(name),
        )
    });
    let data: Vec<String> = data.into_iter().chain(adapters).collect();
    Resolved::json(
        200,
        format!(r#"{{"object":"list","data":[{}]}}"#, data.join(",")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_concatenate_back() {
        for t in ["", "a", "Echo: hi  there ", " lead", "é ü 漢字\n\tx"] {
            assert_eq!(split_tokens(t).concat(), t);
        }
        assert_eq!(split_tokens("Echo: hi  there"), ["Echo:", " hi", "  there"]);
    }

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn embeddings_are_unit_and_deterministic() {
        let a = embedding("hello", 16);
        assert_eq!(a, embedding("hello", 16));
        assert_ne!(a, embedding("hellp", 16));
        let n: f32 = a.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-4);
    }

    #[test]
    fn tool_arguments_follow_the_schema() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}});
        let args: Value = serde_json::from_str(&tool_arguments(Some(&schema), "Paris")).unwrap();
        assert_eq!(args, json!({"city": "Paris", "days": 1}));
    }
}
