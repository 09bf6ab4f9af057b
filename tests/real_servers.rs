//! The real-server suite: the client against real OpenAI-compatible servers on 127.0.0.1 —
//! llama.cpp's `llama-server` (a tiny random-weight model: the text is nonsense, the protocol
//! is real) and the LiteLLM proxy — on every adapter (tokio, async-std, blocking).
//!
//! ```text
//! scripts/real/run-tests.sh        # install if needed, start, test, stop
//! ```
//!
//! The servers are started by `scripts/real/start.sh`, which writes their base URLs and test
//! keys to an env file (`$VLLM_CLIENT_CACHE/run/env`, by default
//! `~/.cache/vllm-client-ci/run/env`; `VLLM_REAL_ENV_FILE` names another). Variables of the
//! same names in the environment win over the file. When a server is not there, each test
//! that needs it prints `SKIPPED` with the reason and passes — unless
//! `VLLM_REAL_SERVERS_REQUIRED=1` (as in CI), where it fails.
//!
//! What the servers really do (LiteLLM 1.108.5 without a database, llama.cpp from
//! llama-cpp-python 0.3.36) is written next to each test.

#![allow(dead_code)] // `harness` is shared with the conformance suite

#[path = "conformance/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;
use vllm_client_core::api::{EmbeddingRequest, RerankApi, RerankRequest, ResponseStreamEvent};
use vllm_client_core::client::{Client, Reported};
use vllm_client_core::http::Method;
use vllm_client_core::policy::GiveUpReason;
use vllm_client_core::{StreamEvent, VllmError};

use harness::Harness;

// ---------------------------------------------------------------------------------------
// Where the servers are.

/// The settings `scripts/real/start.sh` writes, overridden by the environment.
fn settings() -> &'static HashMap<String, String> {
    static S: OnceLock<HashMap<String, String>> = OnceLock::new();
    S.get_or_init(|| {
        let mut map = HashMap::new();
        if let Some(path) = env_file() {
            if let Ok(text) = std::fs::read_to_string(&path) {
                for line in text.lines() {
                    let line = line.trim();
                    if line.starts_with('#') {
                        continue;
                    }
                    if let Some((k, v)) = line.split_once('=') {
                        map.insert(k.trim().to_owned(), v.trim().to_owned());
                    }
                }
            }
        }
        for (k, v) in std::env::vars() {
            if k.starts_with("VLLM_REAL_") {
                map.insert(k, v);
            }
        }
        map
    })
}

fn env_file() -> Option<std::path::PathBuf> {
    if let Some(f) = std::env::var_os("VLLM_REAL_ENV_FILE") {
        return Some(f.into());
    }
    if let Some(d) = std::env::var_os("VLLM_REAL_RUN_DIR") {
        return Some(std::path::PathBuf::from(d).join("env"));
    }
    let cache = match std::env::var_os("VLLM_CLIENT_CACHE") {
        Some(c) => std::path::PathBuf::from(c),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".cache/vllm-client-ci"),
    };
    Some(cache.join("run/env"))
}

fn required() -> bool {
    matches!(
        std::env::var("VLLM_REAL_SERVERS_REQUIRED").as_deref(),
        Ok("1") | Ok("true")
    )
}

/// Says why a test did nothing, on the real stderr: the test harness captures `println!`
/// of passing tests, and a skip must be seen.
fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {why}");
}

/// A server under test: its base URL and, when it needs one, its key.
struct Target {
    url: String,
    key: Option<String>,
}

/// The server `url_var` names (with its key from `key_var`), or `None` after printing why
/// the test is skipped. With `VLLM_REAL_SERVERS_REQUIRED=1` a missing server is a failure.
fn target(test: &str, url_var: &str, key_var: Option<&str>) -> Option<Target> {
    let s = settings();
    let skip = |why: String| {
        assert!(
            !required(),
            "{test}: {why}; VLLM_REAL_SERVERS_REQUIRED=1, so this fails instead of skipping"
        );
        skipped(&format!(
            "{test}: {why} (start the servers with scripts/real/start.sh)"
        ));
        None
    };
    let url = match s.get(url_var).filter(|u| !u.is_empty()) {
        Some(u) => u.clone(),
        None => {
            let file = env_file().map(|p| p.display().to_string());
            return skip(format!(
                "{url_var} is not set and not in the env file {}",
                file.unwrap_or_else(|| "(none: no HOME)".into())
            ));
        }
    };
    let key = match key_var {
        Some(var) => match s.get(var).filter(|k| !k.is_empty()) {
            Some(k) => Some(k.clone()),
            None => return skip(format!("{var} is not set")),
        },
        None => None,
    };
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let reachable = authority
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if !reachable {
        return skip(format!("nothing listens at {url} ({url_var})"));
    }
    Some(Target { url, key })
}

fn llama(test: &str) -> Option<Target> {
    target(test, "VLLM_REAL_LLAMA_URL", None)
}
fn llama_auth(test: &str) -> Option<Target> {
    target(
        test,
        "VLLM_REAL_LLAMA_AUTH_URL",
        Some("VLLM_REAL_LLAMA_AUTH_KEY"),
    )
}
fn litellm(test: &str) -> Option<Target> {
    target(test, "VLLM_REAL_LITELLM_URL", Some("VLLM_REAL_LITELLM_KEY"))
}
fn litellm_keys(test: &str) -> Option<Target> {
    target(
        test,
        "VLLM_REAL_LITELLM_KEYS_URL",
        Some("VLLM_REAL_LITELLM_LIMITED_KEY"),
    )
}

fn client<H: Harness>(t: &Target) -> Client<H::E> {
    let b = H::builder(&t.url);
    match &t.key {
        Some(k) => b.api_key(k.clone()).build(),
        None => b.build(),
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// The tiny model never emits an end-of-text token, so every completion is exactly
/// `max_tokens` long: usage counts are exact.
const TINY: &str = "tiny-llama";
/// LiteLLM's mock deployment answers this, as one JSON answer or streamed in pieces.
const MOCK_TEXT: &str = "Hello from the LiteLLM mock.";
/// The mock behind the proxy with the rate-limited key.
const LIMITED_MOCK_TEXT: &str = "Hello from the rate-limited LiteLLM mock.";

fn chat<H: Harness>(
    c: &Client<H::E>,
    model: &str,
    max_tokens: u32,
) -> Reported<vllm_client_core::api::ChatCompletionResponse> {
    H::wait(
        c.chat
            .completions()
            .create()
            .model(model)
            .messages(json!([
                {"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": "Say hello in five words."}
            ]))
            .max_tokens(max_tokens)
            .send_with_report(),
    )
    .expect("send_with_report always reports")
}

fn stream<H: Harness>(c: &Client<H::E>, model: &str, max_tokens: u32) -> Vec<StreamEvent> {
    let s = H::wait(
        c.chat
            .completions()
            .create()
            .model(model)
            .messages(json!([{"role": "user", "content": "Count from one to ten in words."}]))
            .max_tokens(max_tokens)
            .include_usage(true)
            .send_stream(),
    )
    .unwrap_or_else(|e| panic!("stream request: {e}"));
    H::collect(s)
}

fn content(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Content(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

/// A stream that ended well: exactly one terminal event, `Done`, last; one usage event.
fn assert_clean_stream(events: &[StreamEvent]) -> vllm_client_core::api::Usage {
    let terminals = events.iter().filter(|e| e.is_terminal()).count();
    assert_eq!(terminals, 1, "exactly one terminal event: {events:?}");
    assert!(
        matches!(events.last(), Some(StreamEvent::Done)),
        "ends with Done: {events:?}"
    );
    let usages: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Usage(u) => Some(u.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(usages.len(), 1, "one usage event: {events:?}");
    usages[0].clone()
}

fn api_kind(e: &VllmError) -> Option<&str> {
    e.api_error().and_then(|a| a.kind.as_deref())
}

/// The proxy's rate-limited key allows one request per 2 s window; tests that use it take
/// turns, whatever the adapter.
fn limited_key_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------
// llama.cpp's llama-server.

/// A chat answer with exact usage: the prompt is counted, the completion is `max_tokens`.
pub fn llama_chat<H: Harness>() {
    let Some(t) = llama("llama_chat") else { return };
    let c = client::<H>(&t);
    let r = chat::<H>(&c, TINY, 8);
    assert_eq!(r.report.attempts, 1, "{}", r.report);
    let r = r.result.unwrap_or_else(|e| panic!("chat: {e}"));
    assert!(
        !r.content.as_deref().unwrap_or_default().is_empty(),
        "{r:?}"
    );
    assert_eq!(r.finish_reason.as_deref(), Some("length"), "{r:?}");
    let u = r.usage.expect("usage in a JSON answer");
    assert_eq!(u.completion_tokens, 8, "{u:?}");
    assert!(u.prompt_tokens > 5, "{u:?}");
    assert_eq!(u.total_tokens, u.prompt_tokens + u.completion_tokens);
}

/// A stream with `stream_options.include_usage`: text deltas, one usage event counting
/// exactly the tokens asked for, then `Done`.
pub fn llama_stream_with_usage<H: Harness>() {
    let Some(t) = llama("llama_stream_with_usage") else {
        return;
    };
    let c = client::<H>(&t);
    let events = stream::<H>(&c, TINY, 12);
    let usage = assert_clean_stream(&events);
    assert_eq!(usage.completion_tokens, 12, "{usage:?}");
    assert!(usage.prompt_tokens > 0, "{usage:?}");
    let text = content(&events);
    assert!(!text.is_empty(), "{events:?}");
    let deltas = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Content(_)))
        .count();
    assert!(deltas > 1, "streamed in pieces: {events:?}");
}

/// `GET /v1/models` lists the model under its `--alias`; `/health` (at the server's root,
/// not under `/v1`) answers.
pub fn llama_models_and_health<H: Harness>() {
    let Some(t) = llama("llama_models_and_health") else {
        return;
    };
    let c = client::<H>(&t);
    let models = H::wait(c.models()).unwrap_or_else(|e| panic!("models: {e}"));
    assert!(models.data.iter().any(|m| m.id == TINY), "{models:?}");
    H::wait(c.health()).unwrap_or_else(|e| panic!("health: {e}"));
}

/// The quickstart's flow (`examples/quickstart.rs`): the first listed model, a chat, a
/// streamed answer with its usage. Returns the first model, the chat's and the stream's text.
fn quickstart_flow<H: Harness>(t: &Target) -> (String, String, String) {
    let c = client::<H>(t);
    let model = H::wait(c.models()).expect("models").data[0].id.clone();
    let r = chat::<H>(&c, &model, 16).result.expect("chat");
    let chat_text = r.content.unwrap_or_default();
    let events = stream::<H>(&c, &model, 16);
    let usage = assert_clean_stream(&events);
    assert!(usage.completion_tokens > 0, "{usage:?}");
    (model, chat_text, content(&events))
}

pub fn llama_quickstart_flow<H: Harness>() {
    let Some(t) = llama("llama_quickstart_flow") else {
        return;
    };
    let (model, chat_text, streamed) = quickstart_flow::<H>(&t);
    assert_eq!(model, TINY);
    assert!(!chat_text.is_empty());
    assert!(!streamed.is_empty());
}

pub fn litellm_quickstart_flow<H: Harness>() {
    let Some(t) = litellm("litellm_quickstart_flow") else {
        return;
    };
    let (model, chat_text, streamed) = quickstart_flow::<H>(&t);
    assert_eq!(
        model, "mock-gpt",
        "LiteLLM lists its models in config order"
    );
    assert_eq!(chat_text, MOCK_TEXT);
    assert_eq!(streamed, MOCK_TEXT);
}

/// The legacy completions endpoint: a prompt, exactly `max_tokens` tokens back.
pub fn llama_completions<H: Harness>() {
    let Some(t) = llama("llama_completions") else {
        return;
    };
    let c = client::<H>(&t);
    let r = H::wait(
        c.completions
            .create()
            .model(TINY)
            .prompt("The capital of France is")
            .max_tokens(5)
            .send(),
    )
    .unwrap_or_else(|e| panic!("completions: {e}"));
    assert!(!r.content.unwrap_or_default().is_empty());
    assert_eq!(r.usage.expect("usage").completion_tokens, 5);
}

/// llama-server ignores the request's model name: the seed page's `Qwen/Qwen2.5-7B-Instruct`
/// is answered by whatever model it serves.
pub fn llama_accepts_any_model_name<H: Harness>() {
    let Some(t) = llama("llama_accepts_any_model_name") else {
        return;
    };
    let c = client::<H>(&t);
    let r = chat::<H>(&c, "Qwen/Qwen2.5-7B-Instruct", 4);
    let r = r.result.unwrap_or_else(|e| panic!("chat: {e}"));
    assert_eq!(r.usage.expect("usage").completion_tokens, 4);
}

/// `--api-key`: a wrong key is a 401 (`{"error":{"code":401,"type":"authentication_error"}}`),
/// not retried; the right key works; the key is never printed.
pub fn llama_api_key<H: Harness>() {
    let Some(t) = llama_auth("llama_api_key") else {
        return;
    };
    let key = t.key.clone().expect("a key");
    let wrong = H::builder(&t.url).api_key("sk-wrong-key-0000").build();
    let r = chat::<H>(&wrong, TINY, 4);
    let e = r.result.expect_err("a wrong key is refused");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(401), "{e}");
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(r.report.attempts, 1, "not retried: {}", r.report);
    assert_eq!(api_kind(&e), Some("authentication_error"), "{e:?}");

    let none = H::builder(&t.url).build();
    let e = H::wait(none.models()).expect_err("no key is refused");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(401), "{e}");

    let c = client::<H>(&t);
    let r = chat::<H>(&c, TINY, 4);
    let r = r
        .result
        .unwrap_or_else(|e| panic!("chat with the key: {e}"));
    assert_eq!(r.usage.expect("usage").completion_tokens, 4);
    let shown = format!("{c:?} {:?} {e:?} {e}", c.config());
    assert!(!shown.contains(&key), "the key leaked: {shown}");
}

// ---------------------------------------------------------------------------------------
// The LiteLLM proxy.

/// A mock deployment (`mock_response`) answers through LiteLLM's real HTTP stack.
pub fn litellm_chat<H: Harness>() {
    let Some(t) = litellm("litellm_chat") else {
        return;
    };
    let c = client::<H>(&t);
    let r = chat::<H>(&c, "mock-gpt", 16);
    assert_eq!(r.report.attempts, 1, "{}", r.report);
    let r = r.result.unwrap_or_else(|e| panic!("chat: {e}"));
    assert_eq!(r.content.as_deref(), Some(MOCK_TEXT));
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert!(r.usage.expect("usage").total_tokens > 0);
}

/// LiteLLM streams the mock in 3-character pieces and sends usage in a last chunk with
/// empty `choices`.
pub fn litellm_stream_with_usage<H: Harness>() {
    let Some(t) = litellm("litellm_stream_with_usage") else {
        return;
    };
    let c = client::<H>(&t);
    let events = stream::<H>(&c, "mock-gpt", 16);
    let usage = assert_clean_stream(&events);
    assert!(usage.total_tokens > 0, "{usage:?}");
    assert_eq!(content(&events), MOCK_TEXT, "{events:?}");
}

/// The proxy in front of llama-server: the same exact usage, through a gateway.
pub fn litellm_proxies_llama<H: Harness>() {
    let Some(t) = litellm("litellm_proxies_llama") else {
        return;
    };
    let c = client::<H>(&t);
    let r = chat::<H>(&c, TINY, 6);
    let r = r.result.unwrap_or_else(|e| panic!("chat via LiteLLM: {e}"));
    assert!(!r.content.unwrap_or_default().is_empty());
    assert_eq!(r.usage.expect("usage").completion_tokens, 6);
    let events = stream::<H>(&c, TINY, 6);
    let usage = assert_clean_stream(&events);
    assert_eq!(usage.completion_tokens, 6, "{events:?}");
}

pub fn litellm_models<H: Harness>() {
    let Some(t) = litellm("litellm_models") else {
        return;
    };
    let c = client::<H>(&t);
    let models = H::wait(c.models()).unwrap_or_else(|e| panic!("models: {e}"));
    let mut ids: Vec<&str> = models.data.iter().map(|m| m.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["mock-gpt", "mock-rpm1", "tiny-llama"]);
}

/// Without a database LiteLLM cannot look a key up: any key but the master key is a
/// **400** `{"error":{"message":"No connected db.","type":"no_db_connection"}}`, not a 401.
/// Not retried either way; the key is never printed.
pub fn litellm_wrong_key<H: Harness>() {
    let Some(t) = litellm("litellm_wrong_key") else {
        return;
    };
    let master = t.key.clone().expect("the master key");
    let c = H::builder(&t.url).api_key("sk-wrong-key-0000").build();
    let r = chat::<H>(&c, "mock-gpt", 4);
    let e = r.result.expect_err("a wrong key is refused");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    assert_eq!(api_kind(&e), Some("no_db_connection"), "{e:?}");
    assert!(!e.is_retryable());
    assert_eq!(r.report.attempts, 1, "{}", r.report);
    let shown = format!("{c:?} {e:?} {e} {:?}", client::<H>(&t));
    assert!(!shown.contains(&master), "the master key leaked: {shown}");
    assert!(
        !shown.contains("sk-wrong-key-0000"),
        "the key leaked: {shown}"
    );
}

/// An unknown model is a **400** `invalid_request_error` ("Invalid model name passed in
/// model=…") from LiteLLM, not a 404; not retried.
pub fn litellm_unknown_model<H: Harness>() {
    let Some(t) = litellm("litellm_unknown_model") else {
        return;
    };
    let c = client::<H>(&t);
    let r = chat::<H>(&c, "no-such-model-vllm-client", 4);
    let e = r.result.expect_err("an unknown model is refused");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    assert_eq!(api_kind(&e), Some("invalid_request_error"), "{e:?}");
    let msg = &e.api_error().expect("an API error").message;
    assert!(msg.contains("Invalid model name"), "{msg}");
    assert!(!e.is_retryable());
    assert_eq!(r.report.attempts, 1, "{}", r.report);
}

/// A deployment with `rpm: 1` (router pre-call check `enforce_model_rate_limits`): its 200
/// says `x-ratelimit-limit-requests: 1`, `x-ratelimit-remaining-requests: 0` (no reset);
/// past the quota, a 429 `throttling_error` whose hint LiteLLM sends only as
/// `llm_provider-retry-after: 60` (no plain `Retry-After`). With `max_retry_after` at 5 s the
/// client does not sleep a minute: it gives up at once, the hint in the error. The counter is
/// per minute and shared by every adapter, so a 200 is seen only by the first call of a
/// minute.
pub fn litellm_deployment_rpm<H: Harness>() {
    let Some(t) = litellm("litellm_deployment_rpm") else {
        return;
    };
    let c = H::builder(&t.url)
        .api_key(t.key.clone().expect("key"))
        .max_retry_after(Duration::from_secs(5))
        .build();
    for _ in 0..3 {
        let r = chat::<H>(&c, "mock-rpm1", 4);
        match r.result {
            Ok(_) => {
                let rl = r.report.rate_limit.expect("rate-limit headers on the 200");
                assert_eq!(rl.requests.limit, Some(1), "{rl:?}");
                assert_eq!(rl.requests.remaining, Some(0), "{rl:?}");
            }
            Err(e) => {
                assert_eq!(e.status().map(|s| s.as_u16()), Some(429), "{e}");
                assert_eq!(api_kind(&e), Some("throttling_error"), "{e:?}");
                assert!(e.is_retryable());
                assert_eq!(e.retry_after(), Some(Duration::from_secs(60)), "{e:?}");
                assert_eq!(r.report.attempts, 1, "{}", r.report);
                assert_eq!(
                    r.report.gave_up,
                    Some(GiveUpReason::HintBeyondCap {
                        hint: Duration::from_secs(60)
                    }),
                    "{}",
                    r.report
                );
                return;
            }
        }
    }
    panic!("no 429 from a deployment limited to 1 request per minute after 3 calls");
}

/// LiteLLM's own rate limiter (parallel request limiter v3) on a key limited to 1 request per
/// 2 s window: the 200 says `x-ratelimit-api_key-limit-requests: 1` and
/// `x-ratelimit-api_key-remaining-requests: 0`; the next request is a 429
/// `throttling_error` with `retry-after: 2` (plus `rate_limit_type: requests` and
/// `reset_at: <UTC time>`). The client sleeps exactly the hinted 2 s, once, and the retry
/// succeeds.
pub fn litellm_429_retried_after_the_hint<H: Harness>() {
    let Some(t) = litellm_keys("litellm_429_retried_after_the_hint") else {
        return;
    };
    let _turn = limited_key_lock();
    let c = client::<H>(&t);
    // Spend the window's one request (waiting out another test's window if need be).
    let first = chat::<H>(&c, "mock-gpt", 4);
    first
        .result
        .unwrap_or_else(|e| panic!("first call: {e} ({})", first.report));
    let rl = first
        .report
        .rate_limit
        .expect("LiteLLM's x-ratelimit-api_key-* headers on the 200");
    assert_eq!(rl.requests.limit, Some(1), "{rl:?}");
    assert_eq!(rl.requests.remaining, Some(0), "{rl:?}");

    let started = Instant::now();
    let r = chat::<H>(&c, "mock-gpt", 4);
    let elapsed = started.elapsed();
    let report = r.report;
    let answer = r
        .result
        .unwrap_or_else(|e| panic!("retried after the hint: {e} ({report})"));
    assert_eq!(answer.content.as_deref(), Some(LIMITED_MOCK_TEXT));
    assert_eq!(report.attempts, 2, "{report}");
    assert_eq!(report.retries.len(), 1, "{report:?}");
    let retry = &report.retries[0];
    assert!(retry.hinted, "the delay is the server's hint: {retry:?}");
    assert_eq!(retry.delay, Duration::from_secs(2), "{retry:?}");
    assert!(retry.cause.contains("429"), "{retry:?}");
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    // What the last response (the retry's 200) said: the new window's one request is spent.
    let rl = report.rate_limit.expect("the retry's rate-limit headers");
    assert_eq!(
        (rl.requests.limit, rl.requests.remaining),
        (Some(1), Some(0))
    );
}

/// With no retries left, the 429 itself: its hint and status, typed.
pub fn litellm_429_carries_the_hint<H: Harness>() {
    let Some(t) = litellm_keys("litellm_429_carries_the_hint") else {
        return;
    };
    let _turn = limited_key_lock();
    let c = client::<H>(&t);
    chat::<H>(&c, "mock-gpt", 4).result.expect("first call");
    let once = H::builder(&t.url)
        .api_key(t.key.clone().expect("key"))
        .max_retries(0)
        .build();
    let r = chat::<H>(&once, "mock-gpt", 4);
    let e = r.result.expect_err("the window's request is spent");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(429), "{e}");
    assert_eq!(api_kind(&e), Some("throttling_error"), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)), "{e:?}");
    assert!(e.is_retryable());
    assert!(
        e.api_error()
            .expect("api")
            .message
            .contains("Rate limit exceeded"),
        "{e}"
    );
    // LiteLLM's 429 carries `retry-after`, `rate_limit_type` and `reset_at`, but no
    // `x-ratelimit-*` headers.
    assert_eq!(e.rate_limit(), None, "{e:?}");
}

/// The proxy with the rate-limited key refuses other keys with LiteLLM's 401
/// `auth_error`, not retried.
pub fn litellm_custom_auth_401<H: Harness>() {
    let Some(t) = litellm_keys("litellm_custom_auth_401") else {
        return;
    };
    let c = H::builder(&t.url).api_key("sk-wrong-key-0000").build();
    let r = chat::<H>(&c, "mock-gpt", 4);
    let e = r.result.expect_err("refused");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(401), "{e}");
    assert_eq!(api_kind(&e), Some("auth_error"), "{e:?}");
    assert!(!e.is_retryable());
    assert_eq!(r.report.attempts, 1, "{}", r.report);
}

// ---------------------------------------------------------------------------------------
// The other operations: embeddings, rerank, the Responses API, the escape hatch.

fn llama_embed(test: &str) -> Option<Target> {
    target(test, "VLLM_REAL_LLAMA_EMBED_URL", None)
}
fn llama_rerank(test: &str) -> Option<Target> {
    target(test, "VLLM_REAL_LLAMA_RERANK_URL", None)
}

/// llama-server with `--embeddings`: the same vectors as JSON numbers and as base64 of
/// float32 values (it sends `"encoding_format": "base64"` on each item too).
pub fn llama_embeddings_base64<H: Harness>() {
    let Some(t) = llama_embed("llama_embeddings_base64") else {
        return;
    };
    let c = client::<H>(&t);
    let input = json!(["hello world", "the quick brown fox"]);
    let floats = H::wait(c.embeddings(EmbeddingRequest::new(TINY, input.clone())))
        .unwrap_or_else(|e| panic!("embeddings: {e}"));
    let b64 = H::wait(c.embeddings(EmbeddingRequest::new(TINY, input).base64()))
        .unwrap_or_else(|e| panic!("base64 embeddings: {e}"));
    assert_eq!(floats.data.len(), 2);
    assert_eq!(b64.data.len(), 2);
    for (a, b) in floats.data.iter().zip(&b64.data) {
        assert!(!a.embedding.is_empty());
        assert_eq!(a.embedding.len(), b.embedding.len());
        for (x, y) in a.embedding.iter().zip(&b.embedding) {
            assert!((x - y).abs() <= 1e-6 * x.abs().max(1.0), "{x} vs {y}");
        }
    }
    assert!(b64.usage.expect("usage").prompt_tokens > 0);
}

/// llama-server with `--reranking`: `/v1/rerank` (and `/rerank`) order the documents (the
/// tiny model's scores are arbitrary but real); `top_n` is honoured; no document text comes
/// back (llama.cpp sends only index and score).
pub fn llama_rerank_orders_documents<H: Harness>() {
    let Some(t) = llama_rerank("llama_rerank_orders_documents") else {
        return;
    };
    let c = client::<H>(&t);
    let docs = ["Paris is in France", "Berlin is in Germany", "pie", "a b c"];
    let r = H::wait(c.rerank(RerankRequest::new(TINY, "capital of France", docs)))
        .unwrap_or_else(|e| panic!("rerank: {e}"));
    let mut order = r.ranking();
    assert_eq!(order.len(), docs.len(), "{r:?}");
    assert!(
        r.results.iter().all(|x| x.relevance_score.is_finite()),
        "{r:?}"
    );
    order.sort_unstable();
    assert_eq!(
        order,
        vec![0, 1, 2, 3],
        "a permutation of the documents: {r:?}"
    );
    let mut top = RerankRequest::new(TINY, "capital of France", docs);
    top.top_n = Some(2);
    let r2 = H::wait(c.rerank_at(RerankApi::Root, top)).unwrap_or_else(|e| panic!("rerank: {e}"));
    // (Scores of the tiny random model move with the batch a request is computed in, so
    // two calls need not agree: only the shape is checked.)
    assert_eq!(r2.results.len(), 2, "{r2:?}");
    let best = r2.ranking();
    assert!(
        best[0] != best[1] && best.iter().all(|&i| i < docs.len()),
        "{r2:?}"
    );
}

/// llama-server serves the Responses API: a JSON response, and its stream — named events,
/// no `sequence_number` (llama.cpp numbers none), ending with `response.completed`.
pub fn llama_responses<H: Harness>() {
    let Some(t) = llama("llama_responses") else {
        return;
    };
    let c = client::<H>(&t);
    let r = H::wait(
        c.responses()
            .create()
            .model(TINY)
            .input("Say hello.")
            .max_output_tokens(6)
            .send(),
    )
    .unwrap_or_else(|e| panic!("responses: {e}"));
    assert_eq!(r.status, "completed", "{r:?}");
    assert!(!r.output_text().is_empty(), "{r:?}");
    assert_eq!(r.usage.as_ref().expect("usage").output_tokens, 6, "{r:?}");
    let s = H::wait(
        c.responses()
            .create()
            .model(TINY)
            .input("Say hello.")
            .max_output_tokens(6)
            .send_stream(),
    )
    .unwrap_or_else(|e| panic!("responses stream: {e}"));
    let events: Vec<ResponseStreamEvent> = H::collect_response_events(s)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("the stream failed: {e}"));
    let Some(ResponseStreamEvent::Completed { response, .. }) = events.last() else {
        panic!("ends with response.completed: {events:?}");
    };
    let text: String = events.iter().filter_map(|e| e.text_delta()).collect();
    assert_eq!(text, response.output_text());
    assert!(
        events.iter().filter(|e| e.text_delta().is_some()).count() > 1,
        "streamed in pieces: {events:?}"
    );
    assert!(
        matches!(events[0], ResponseStreamEvent::Created { .. }),
        "{events:?}"
    );
}

/// `client.request(…)`: llama-server's own `/tokenize` and `/detokenize` (their bodies are
/// llama.cpp's, `content` rather than vLLM's `prompt`), under the client's policies.
pub fn llama_tokenize_through_the_escape_hatch<H: Harness>() {
    let Some(t) = llama("llama_tokenize_through_the_escape_hatch") else {
        return;
    };
    let c = client::<H>(&t);
    let tokens: serde_json::Value = H::wait(
        c.request(Method::POST, "/tokenize")
            .json(&json!({"content": "hello world"}))
            .send(),
    )
    .unwrap_or_else(|e| panic!("tokenize: {e}"));
    let ids = tokens["tokens"].as_array().expect("tokens").clone();
    assert!(!ids.is_empty(), "{tokens}");
    let text: serde_json::Value = H::wait(
        c.request(Method::POST, "/detokenize")
            .json(&json!({"tokens": ids}))
            .send(),
    )
    .unwrap_or_else(|e| panic!("detokenize: {e}"));
    assert!(
        text["content"]
            .as_str()
            .is_some_and(|s| s.contains("hello world")),
        "{text}"
    );
}

/// LiteLLM's `/v1/responses`: the mock deployment answers as a response object; routed to
/// llama-server, the stream comes through LiteLLM (plain `data:` events, no `event:` lines).
/// LiteLLM 1.108.5 cannot stream a mock deployment's response: it sends an in-band
/// `{"error": …}` then `[DONE]` with status 200 — an error, never a silent success.
pub fn litellm_responses<H: Harness>() {
    let Some(t) = litellm("litellm_responses") else {
        return;
    };
    let c = client::<H>(&t);
    let r = H::wait(c.responses().create().model("mock-gpt").input("hi").send())
        .unwrap_or_else(|e| panic!("responses: {e}"));
    assert_eq!(r.output_text(), MOCK_TEXT, "{r:?}");
    let s = H::wait(
        c.responses()
            .create()
            .model("tiny-llama")
            .input("hi")
            .max_output_tokens(4)
            .send_stream(),
    )
    .unwrap_or_else(|e| panic!("responses stream: {e}"));
    let events = H::collect_response_events(s);
    assert!(
        matches!(
            events.last(),
            Some(Ok(ResponseStreamEvent::Completed { .. }))
        ),
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| e.is_err()).count(),
        0,
        "{events:?}"
    );
    let failed = H::wait(
        c.responses()
            .create()
            .model("mock-gpt")
            .input("hi")
            .max_retries(0)
            .send_stream(),
    );
    match failed {
        Err(e) => assert!(e.to_string().contains("stream"), "{e}"),
        Ok(s) => {
            let events = H::collect_response_events(s);
            assert!(matches!(events.last(), Some(Err(_))), "{events:?}");
        }
    }
}

macro_rules! real {
    ($($scenario:ident),* $(,)?) => {
        mod tokio {
            $( #[test] fn $scenario() { crate::$scenario::<crate::harness::TokioH>() } )*
        }
        mod async_std {
            $( #[test] fn $scenario() { crate::$scenario::<crate::harness::AsyncStdH>() } )*
        }
        mod blocking {
            $( #[test] fn $scenario() { crate::$scenario::<crate::harness::BlockingH>() } )*
        }
    };
}

real! {
    llama_chat,
    llama_stream_with_usage,
    llama_models_and_health,
    llama_quickstart_flow,
    llama_completions,
    llama_accepts_any_model_name,
    llama_api_key,
    litellm_chat,
    litellm_stream_with_usage,
    litellm_quickstart_flow,
    litellm_proxies_llama,
    litellm_models,
    litellm_wrong_key,
    litellm_unknown_model,
    litellm_deployment_rpm,
    litellm_429_retried_after_the_hint,
    litellm_429_carries_the_hint,
    litellm_custom_auth_401,
    llama_embeddings_base64,
    llama_rerank_orders_documents,
    llama_responses,
    llama_tokenize_through_the_escape_hatch,
    litellm_responses,
}

// ---------------------------------------------------------------------------------------
// The seed page's code, unchanged, against `http://localhost:8000/v1` (llama-server).

/// The seed page's "处理超时" block and its complete example ("完整示例"), verbatim: they
/// hard-code `http://localhost:8000/v1` and a Qwen model name, which llama-server ignores.
#[rustfmt::skip]
mod seed {
    pub mod timeout_block {
        use vllm_client::{VllmClient, json, VllmError};
        pub async fn chat_with_timeout(prompt: &str) -> Result<String, VllmError> {
            let client = VllmClient::new("http://localhost:8000/v1")
                .timeout_secs(60);
            let result = client
                .chat
                .completions()
                .create()
                .model("Qwen/Qwen2.5-7B-Instruct")
                .messages(json!([{"role": "user", "content": prompt}]))
                .send()
                .await;
            match result {
                Ok(response) => Ok(response.content.unwrap_or_default()),
                Err(VllmError::Timeout) => {
                    eprintln!("请求在 60 秒后超时");
                    Err(VllmError::Timeout)
                }
                Err(e) => Err(e),
            }
        }
    }

    pub mod complete_example {
        use vllm_client::{VllmClient, json, VllmError};
        use std::time::Duration;
        use tokio::time::sleep;
        pub struct RobustClient {
            client: VllmClient,
            max_retries: u32,
            base_backoff_ms: u64,
            max_backoff_ms: u64,
        }
        impl RobustClient {
            pub fn new(base_url: &str, timeout_secs: u64) -> Self {
                Self {
                    client: VllmClient::builder()
                        .base_url(base_url)
                        .timeout_secs(timeout_secs)
                        .build(),
                    max_retries: 3,
                    base_backoff_ms: 100,
                    max_backoff_ms: 10_000,
                }
            }
            pub async fn chat(&self, prompt: &str) -> Result<String, VllmError> {
                let mut attempts = 0;
                loop {
                    match self.send_request(prompt).await {
                        Ok(response) => return Ok(response),
                        Err(e) if self.should_retry(&e, attempts) => {
                            attempts += 1;
                            let delay = self.calculate_backoff(attempts);
                            eprintln!("第 {} 次重试,等待 {:?}: {}", attempts, delay, e);
                            sleep(delay).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            async fn send_request(&self, prompt: &str) -> Result<String, VllmError> {
                self.client
                    .chat
                    .completions()
                    .create()
                    .model("Qwen/Qwen2.5-7B-Instruct")
                    .messages(json!([{"role": "user", "content": prompt}]))
                    .send()
                    .await
                    .map(|r| r.content.unwrap_or_default())
            }
            fn should_retry(&self, error: &VllmError, attempts: u32) -> bool {
                attempts < self.max_retries && error.is_retryable()
            }
            fn calculate_backoff(&self, attempt: u32) -> Duration {
                let delay = self.base_backoff_ms * 2u64.pow(attempt);
                Duration::from_millis(delay.min(self.max_backoff_ms))
            }
        }
        #[tokio::main]
        pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
            let client = RobustClient::new("http://localhost:8000/v1", 300);
            match client.chat("你好!").await {
                Ok(response) => println!("响应: {}", response),
                Err(e) => eprintln!("重试后仍然失败: {}", e),
            }
            Ok(())
        }
    }
}

/// The page hard-codes port 8000: these run only when the llama-server under test is there.
fn seed_server(test: &str) -> bool {
    let Some(t) = llama(test) else { return false };
    let on_8000 = t.url.trim_end_matches('/') == "http://127.0.0.1:8000/v1";
    if !on_8000 {
        assert!(
            !required(),
            "{test}: the seed page needs llama-server on port 8000"
        );
        println!(
            "SKIPPED {test}: the seed page's code talks to localhost:8000, not {}",
            t.url
        );
    }
    on_8000
}

#[test]
fn seed_complete_example_against_localhost_8000() {
    if !seed_server("seed_complete_example_against_localhost_8000") {
        return;
    }
    // The page's main() prints and returns Ok whatever happens; run it as it is…
    seed::complete_example::main().expect("the page's main");
    // …and check what it printed: the answer to "你好!" (a Chinese prompt, sent as bytes the
    // tiny vocabulary only knows through byte fallback).
    let rt = ::tokio::runtime::Runtime::new().expect("runtime");
    let answer = rt
        .block_on(
            seed::complete_example::RobustClient::new("http://localhost:8000/v1", 300)
                .chat("你好!"),
        )
        .unwrap_or_else(|e| panic!("the seed page's RobustClient: {e}"));
    assert!(!answer.is_empty());
}

#[test]
fn seed_chat_with_timeout_against_localhost_8000() {
    if !seed_server("seed_chat_with_timeout_against_localhost_8000") {
        return;
    }
    let rt = ::tokio::runtime::Runtime::new().expect("runtime");
    let answer = rt
        .block_on(seed::timeout_block::chat_with_timeout("Hello!"))
        .unwrap_or_else(|e| panic!("chat_with_timeout: {e}"));
    assert!(!answer.is_empty());
}

// ---------------------------------------------------------------------------------------
// A fleet: three llama-server replicas (start.sh --fleet), one killed mid-run and restarted.

/// The fleet's base URLs, or `None` after printing why the test is skipped.
fn fleet(test: &str) -> Option<Vec<String>> {
    let first = target(test, "VLLM_REAL_FLEET_URLS", None)?;
    let urls: Vec<String> = first.url.split_whitespace().map(str::to_owned).collect();
    if urls.len() != 3 {
        assert!(!required(), "{test}: expected 3 fleet URLs, got {urls:?}");
        skipped(&format!("{test}: expected 3 fleet URLs, got {urls:?}"));
        return None;
    }
    Some(urls)
}

/// `scripts/real/replica.sh <verb> <n>`.
fn replica(verb: &str, n: usize) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/real/replica.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg(verb)
        .arg(n.to_string())
        .status()
        .expect("bash runs");
    assert!(status.success(), "replica.sh {verb} {n} failed");
}

/// One fleet test at a time: they kill and restart replicas.
fn fleet_lock() -> std::sync::MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|p| p.into_inner())
}

/// `scripts/real/replica.sh url <n>`.
fn replica_url(n: usize) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/real/replica.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg("url")
        .arg(n.to_string())
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "replica.sh url {n} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A replica killed mid-run is ejected without a failed call, probed with `GET /health`
/// (llama-server answers 503 while it loads its model) and back in rotation within 5 s of
/// answering again — with the default configuration.
fn fleet_replica_killed_mid_run<H: Harness>() {
    use vllm_client_core::policy::Health;
    let Some(urls) = fleet("fleet_replica_killed_mid_run") else {
        return;
    };
    let _one_at_a_time = fleet_lock();
    let c = H::builder("http://unused.invalid/v1")
        .endpoints(urls.iter().cloned())
        .build();
    let call = || {
        let events = stream::<H>(&c, TINY, 8);
        assert_clean_stream(&events);
        assert!(!content(&events).is_empty(), "{events:?}");
    };
    for _ in 0..6 {
        call();
    }
    // Kill the replica routing prefers (the lowest latency), so that calls keep going to it.
    let victim = c
        .endpoints()
        .iter()
        .min_by_key(|e| e.latency.unwrap_or(Duration::MAX))
        .map(|e| e.id.index())
        .expect("three endpoints");
    replica("kill", victim + 1);
    let mut calls = 0;
    while c.endpoints()[victim].health == Health::Healthy {
        call(); // no user-visible error: the failed attempts fail over before any output
        calls += 1;
        assert!(
            calls < 100,
            "the killed replica was never ejected: {:?}",
            c.endpoints()
        );
    }
    let s = &c.endpoints()[victim];
    assert!(matches!(s.health, Health::Ejected { .. }), "{s:?}");
    assert!(s.next_probe.is_some(), "the next probe is shown: {s:?}");
    // Restarted: `replica.sh start` returns once its /health answers 200.
    replica("start", victim + 1);
    let answering = Instant::now();
    while c.endpoints()[victim].health != Health::Healthy {
        call();
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            answering.elapsed() < Duration::from_secs(5),
            "not back in rotation within 5 s of answering again: {:?}",
            c.endpoints()
        );
    }
    eprintln!(
        "fleet_replica_killed_mid_run: back in rotation {:.2} s after it answered again",
        answering.elapsed().as_secs_f64()
    );
    // It serves again (after its slow start).
    let before = c.endpoints()[victim].successes;
    let started = Instant::now();
    while c.endpoints()[victim].successes == before {
        call();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            c.endpoints()
        );
    }
}

/// A fourth replica started and added at run time takes calls; a replica removed while it
/// streams finishes that stream and takes no new call; no call fails.
fn fleet_endpoints_change_at_run_time<H: Harness>()
where
    H::E: vllm_client_core::client::ManageEndpoints,
{
    let Some(urls) = fleet("fleet_endpoints_change_at_run_time") else {
        return;
    };
    let _one_at_a_time = fleet_lock();
    let c = H::builder("http://unused.invalid/v1")
        .endpoints(urls.iter().cloned())
        .build();
    let call = || {
        let events = stream::<H>(&c, TINY, 8);
        assert_clean_stream(&events);
    };
    for _ in 0..4 {
        call();
    }
    // The spare replica starts (replica.sh returns once it answers) and is added.
    replica("start", 4);
    let spare = replica_url(4);
    let stop_spare = Stop(4);
    let mut list: Vec<String> = urls.clone();
    list.push(spare.clone());
    let update = c.set_endpoints(list.clone()).expect("a valid list");
    assert_eq!(update.added.len(), 1, "{update:?}");
    let added = update.added[0];
    let started = Instant::now();
    while c
        .endpoints()
        .iter()
        .find(|e| e.id == added)
        .expect("listed")
        .successes
        == 0
    {
        call();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the added replica took no call: {:?}",
            c.endpoints()
        );
    }
    // A stream held open while its replica is removed: it ends cleanly there.
    let held = H::wait(
        c.chat
            .completions()
            .create()
            .model(TINY)
            .messages(json!([{"role": "user", "content": "Count to twenty."}]))
            .max_tokens(40)
            .include_usage(true)
            .send_stream(),
    )
    .expect("a stream");
    let busy = c
        .endpoints()
        .into_iter()
        .find(|e| e.in_flight > 0)
        .expect("the held stream's endpoint");
    let keep: Vec<String> = list.iter().filter(|u| **u != busy.url).cloned().collect();
    let update = c.set_endpoints(keep).expect("a valid list");
    assert_eq!(update.draining, vec![busy.id], "{update:?}");
    for _ in 0..6 {
        call();
        assert!(
            c.endpoints()
                .iter()
                .all(|e| e.id != busy.id || (e.draining && e.in_flight <= 1)),
            "a drained replica took a new call: {:?}",
            c.endpoints()
        );
    }
    let events = H::collect(held);
    assert_clean_stream(&events);
    assert!(
        c.endpoints().iter().all(|e| e.id != busy.id),
        "gone once its stream ended: {:?}",
        c.endpoints()
    );
    for _ in 0..4 {
        call();
    }
    drop(stop_spare);
}

/// Stops a spare replica when the test ends, failed or not.
struct Stop(usize);

impl Drop for Stop {
    fn drop(&mut self) {
        replica("stop", self.0);
    }
}

mod fleet_tests {
    #[test]
    fn tokio() {
        crate::fleet_replica_killed_mid_run::<crate::harness::TokioH>()
    }
    #[test]
    fn async_std() {
        crate::fleet_replica_killed_mid_run::<crate::harness::AsyncStdH>()
    }
    #[test]
    fn blocking() {
        crate::fleet_replica_killed_mid_run::<crate::harness::BlockingH>()
    }
    #[test]
    fn tokio_endpoints_change() {
        crate::fleet_endpoints_change_at_run_time::<crate::harness::TokioH>()
    }
    #[test]
    fn async_std_endpoints_change() {
        crate::fleet_endpoints_change_at_run_time::<crate::harness::AsyncStdH>()
    }
    #[test]
    fn blocking_endpoints_change() {
        crate::fleet_endpoints_change_at_run_time::<crate::harness::BlockingH>()
    }
}
