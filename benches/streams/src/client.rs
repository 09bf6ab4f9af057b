//! One client in its own process: open N concurrent streams through one client object, consume
//! every content event, check the text is complete, print one JSON line with what this process
//! spent.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use crate::measure;
use crate::wire::{Mode, REQUEST_BODY, TOKEN};

/// No stream may take longer than this (the paced ones take ~4 s).
const STREAM_LIMIT: Duration = Duration::from_secs(120);
/// Nor the whole run (10 000 queued calls behind a limit of 100 take a few seconds).
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// The clients measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Which {
    /// reqwest 0.13, `resp.chunk()` in a loop, counting bytes: the floor (no SSE, no JSON).
    Bytes,
    /// This workspace's tokio client, `vllm_client::VllmClient`, default settings.
    Ours,
    /// The same with `max_concurrency(100)`.
    OursLimited,
    /// The crate this one grew from: `vllm-client` 0.1.2 from crates.io.
    Origin,
    /// async-openai 0.43, `chat().create_stream(..)`.
    AsyncOpenai,
}

impl Which {
    pub const ALL: [Which; 5] = [
        Which::Bytes,
        Which::Ours,
        Which::OursLimited,
        Which::Origin,
        Which::AsyncOpenai,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Which::Bytes => "reqwest-bytes",
            Which::Ours => "ours",
            Which::OursLimited => "ours-mc100",
            Which::Origin => "origin",
            Which::AsyncOpenai => "async-openai",
        }
    }

    pub fn parse(s: &str) -> Option<Which> {
        Which::ALL.into_iter().find(|w| w.name() == s)
    }

    /// What the table calls it.
    pub fn label(self) -> &'static str {
        match self {
            Which::Bytes => "bare reqwest 0.13, bytes only (floor)",
            Which::Ours => "**vllm-client (this workspace)**",
            Which::OursLimited => "vllm-client, `max_concurrency(100)`",
            Which::Origin => "vllm-client 0.1.2 (origin crate)",
            Which::AsyncOpenai => "async-openai 0.43",
        }
    }
}

/// One stream's outcome: content events and content bytes (body bytes for the floor).
type Outcome = Result<(u64, u64), String>;

pub fn main(which: Which, mode: Mode, n: usize, base_url: &str) -> ! {
    measure::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    let report = rt.block_on(run(which, mode, n, base_url.trim_end_matches('/')));
    println!("{report}");
    let ok = report["failed"].as_u64() == Some(0);
    std::process::exit(if ok { 0 } else { 1 })
}

async fn run(which: Which, mode: Mode, n: usize, base_url: &str) -> serde_json::Value {
    let (u_start, s_start) = measure::cpu();
    let (outcomes, base, wall) = match which {
        Which::Bytes => {
            let http = reqwest::Client::new();
            let url = format!("{base_url}/chat/completions");
            drive(n, move || bytes_stream(http.clone(), url.clone())).await
        }
        Which::Ours | Which::OursLimited => {
            #[cfg(feature = "metrics")]
            let _handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .expect("a Prometheus recorder");
            let mut builder = vllm_client::VllmClient::builder().base_url(base_url);
            if which == Which::OursLimited {
                builder = builder.max_concurrency(100);
            }
            let client = builder.build();
            drive(n, move || ours_stream(client.clone())).await
        }
        Which::Origin => {
            let client = Arc::new(vllm_client_origin::VllmClient::new(base_url));
            drive(n, move || origin_stream(client.clone())).await
        }
        Which::AsyncOpenai => {
            let config = async_openai::config::OpenAIConfig::new()
                .with_api_base(base_url)
                .with_api_key("bench");
            let client = async_openai::Client::with_config(config);
            drive(n, move || async_openai_stream(client.clone())).await
        }
    };
    let (u_end, s_end) = measure::cpu();
    let peak_kb = measure::status_kb("VmHWM");

    let (want_events, want_bytes) = match which {
        Which::Bytes => (0, mode.body_bytes()),
        _ => (mode.tokens(), mode.content_bytes()),
    };
    let mut failed = 0u64;
    let mut first_error = String::new();
    let mut bytes = 0u64;
    for outcome in &outcomes {
        match outcome {
            Ok((e, b)) if *e == want_events && *b == want_bytes => bytes += b,
            Ok((e, b)) => {
                failed += 1;
                if first_error.is_empty() {
                    first_error = format!(
                        "incomplete: {e} events / {b} bytes, expected {want_events} / {want_bytes}"
                    );
                }
            }
            Err(e) => {
                failed += 1;
                if first_error.is_empty() {
                    first_error = e.clone();
                }
            }
        }
    }
    let streams_ok = outcomes.len() as u64 - failed;
    let (u_base, s_base) = base.cpu;
    json!({
        "client": which.name(),
        "mode": mode.name(),
        "n": n,
        "streams_ok": streams_ok,
        "failed": failed + (n as u64 - outcomes.len() as u64),
        "first_error": first_error,
        // Every stream complete: n × tokens content events, checked per stream above.
        "tokens": streams_ok * mode.tokens(),
        "bytes": bytes,
        // CPU spent from the client's construction (excluded) to the last stream's end.
        "cpu_user": u_end - u_base,
        "cpu_sys": s_end - s_base,
        // CPU of the whole process, runtime start and client construction included.
        "cpu_user_total": u_end,
        "cpu_sys_total": s_end,
        "cpu_user_setup": u_base - u_start,
        "cpu_sys_setup": s_base - s_start,
        "base_rss_kb": base.rss_kb,
        "max_rss_kb": peak_kb,
        "wall": wall,
    })
}

struct Baseline {
    cpu: (f64, f64),
    rss_kb: u64,
}

/// Spawn `n` streams at once on the runtime and wait for all of them (bounded in time).
async fn drive<F, Fut>(n: usize, open: F) -> (Vec<Outcome>, Baseline, f64)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let base = Baseline {
        cpu: measure::cpu(),
        rss_kb: measure::status_kb("VmRSS"),
    };
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let stream = open();
        set.spawn(async move {
            match tokio::time::timeout(STREAM_LIMIT, stream).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("stream not done after {STREAM_LIMIT:?}")),
            }
        });
    }
    let mut outcomes = Vec::with_capacity(n);
    let all = async {
        while let Some(joined) = set.join_next().await {
            outcomes.push(joined.unwrap_or_else(|e| Err(format!("task: {e}"))));
        }
    };
    let _ = tokio::time::timeout(RUN_LIMIT, all).await;
    set.abort_all();
    (outcomes, base, start.elapsed().as_secs_f64())
}

async fn bytes_stream(http: reqwest::Client, url: String) -> Outcome {
    let mut resp = http
        .post(url)
        .header("content-type", "application/json")
        .body(REQUEST_BODY)
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let mut bytes = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("body: {e}"))? {
        bytes += chunk.len() as u64;
    }
    Ok((0, bytes))
}

async fn ours_stream(client: vllm_client::VllmClient) -> Outcome {
    use vllm_client::StreamEvent;
    let mut stream = client
        .chat
        .completions()
        .create()
        .model("bench-model")
        .messages(json!([{"role": "user", "content": "hi"}]))
        .stream(true)
        .send_stream()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let (mut events, mut bytes) = (0u64, 0u64);
    while let Some(event) = stream.next().await {
        match event {
            StreamEvent::Content(text) => {
                debug_assert_eq!(text, TOKEN);
                events += 1;
                bytes += text.len() as u64;
            }
            StreamEvent::Done => return Ok((events, bytes)),
            StreamEvent::Error(e) => return Err(format!("stream: {e}")),
            _ => {}
        }
    }
    Err("stream ended without Done".into())
}

async fn origin_stream(client: Arc<vllm_client_origin::VllmClient>) -> Outcome {
    use vllm_client_origin::StreamEvent;
    let mut stream = client
        .chat
        .completions()
        .create()
        .model("bench-model")
        .messages(json!([{"role": "user", "content": "hi"}]))
        .stream(true)
        .send_stream()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let (mut events, mut bytes) = (0u64, 0u64);
    while let Some(event) = stream.next().await {
        match event {
            StreamEvent::Content(text) => {
                debug_assert_eq!(text, TOKEN);
                events += 1;
                bytes += text.len() as u64;
            }
            StreamEvent::Done => return Ok((events, bytes)),
            StreamEvent::Error(e) => return Err(format!("stream: {e}")),
            _ => {}
        }
    }
    Err("stream ended without Done".into())
}

async fn async_openai_stream(
    client: async_openai::Client<async_openai::config::OpenAIConfig>,
) -> Outcome {
    use async_openai::types::chat::{
        ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
    };
    let message = ChatCompletionRequestUserMessageArgs::default()
        .content("hi")
        .build()
        .map_err(|e| e.to_string())?;
    let request = CreateChatCompletionRequestArgs::default()
        .model("bench-model")
        .messages([message.into()])
        .build()
        .map_err(|e| e.to_string())?;
    let mut stream = client
        .chat()
        .create_stream(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let (mut events, mut bytes) = (0u64, 0u64);
    // async-openai ends the stream at `[DONE]` (no terminal item).
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("stream: {e}"))?;
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content {
                if !text.is_empty() {
                    debug_assert_eq!(text, TOKEN);
                    events += 1;
                    bytes += text.len() as u64;
                }
            }
        }
    }
    Ok((events, bytes))
}
