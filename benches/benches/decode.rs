//! Decoding throughput, ours and peers side by side in one run.
//!
//! - `sse/*`: event-stream decoding alone (bytes to events with their data as text), on a
//!   ~20 MB vLLM-shaped chat stream fed in 1460-byte (one TCP segment) and 64-byte chunks, and
//!   on one 8 MiB `data:` line fed in 1460-byte chunks. Peers: `sse-stream` 0.3, `sseer` 0.3,
//!   `eventsource-stream` 0.2, each driven over an in-memory `futures::stream::iter` of `Bytes`
//!   with `futures::executor::block_on`.
//! - `chat/*`: bytes to content deltas. Ours is `StreamDecoder`, with its chat-chunk fast path
//!   (the default) and without it (every chunk read by serde, as before the fast path); the
//!   peer is what async-openai does: `eventsource-stream` plus `serde_json` into owned, typed
//!   chunk structs.
//!
//! Run: `cargo bench -p vllm-client-benches`. Every decoder's result is checked against the
//! generator's before timing.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::executor::block_on;
use futures::{pin_mut, StreamExt};
use serde::Deserialize;
use vllm_client_benches::{one_long_data_line, vllm_chat_stream};
use vllm_client_core::sse::{SseDecoder, SseItem};
use vllm_client_core::stream::StreamDecoder;
use vllm_client_core::StreamEvent;

const CHAT_BYTES: usize = 20_000_000;
const LONG_LINE: usize = 8 << 20;
/// Probe size for the long-line case: a decoder that takes longer than [`TOO_SLOW`] for one
/// pass over a line this long is reported, not measured on the 8 MiB line (a decoder that
/// rescans its pending line is quadratic there: minutes per pass).
const PROBE_LINE: usize = 512 << 10;
const TOO_SLOW: Duration = Duration::from_millis(50);

fn split(input: &[u8], size: usize) -> Vec<Bytes> {
    input.chunks(size).map(Bytes::copy_from_slice).collect()
}

fn byte_stream(
    chunks: &[Bytes],
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + use<'_> {
    futures::stream::iter(chunks.iter().cloned().map(Ok::<_, Infallible>))
}

// ---------- SSE decoding: each returns (events, total data bytes) ----------

fn ours_sse(chunks: &[Bytes]) -> (usize, usize) {
    let mut dec = SseDecoder::new();
    let (mut n, mut bytes) = (0, 0);
    let mut take = |dec: &mut SseDecoder| {
        while let Some(Ok(item)) = dec.poll() {
            if let SseItem::Event(e) = item {
                n += 1;
                bytes += e.data.len();
            }
        }
    };
    for c in chunks {
        dec.push(c);
        take(&mut dec);
    }
    dec.finish();
    take(&mut dec);
    (n, bytes)
}

fn sse_stream_peer(chunks: &[Bytes]) -> (usize, usize) {
    let s = sse_stream::SseByteStream::new(byte_stream(chunks));
    pin_mut!(s);
    block_on(async {
        let (mut n, mut bytes) = (0, 0);
        while let Some(ev) = s.next().await {
            if let Some(data) = ev.unwrap().data {
                n += 1;
                bytes += data.len();
            }
        }
        (n, bytes)
    })
}

fn sseer_peer(chunks: &[Bytes]) -> (usize, usize) {
    let s = sseer::EventStream::new(byte_stream(chunks));
    pin_mut!(s);
    block_on(async {
        let (mut n, mut bytes) = (0, 0);
        while let Some(ev) = s.next().await {
            let ev = ev.unwrap();
            n += 1;
            bytes += ev.data.len();
        }
        (n, bytes)
    })
}

fn eventsource_stream_peer(chunks: &[Bytes]) -> (usize, usize) {
    let s = eventsource_stream::EventStream::new(byte_stream(chunks));
    pin_mut!(s);
    block_on(async {
        let (mut n, mut bytes) = (0, 0);
        while let Some(ev) = s.next().await {
            let ev = ev.unwrap();
            n += 1;
            bytes += ev.data.len();
        }
        (n, bytes)
    })
}

type SseFn = fn(&[Bytes]) -> (usize, usize);

const SSE_IMPLS: [(&str, SseFn); 4] = [
    ("vllm-client", ours_sse),
    ("sse-stream", sse_stream_peer),
    ("sseer", sseer_peer),
    ("eventsource-stream", eventsource_stream_peer),
];

// ---------- chat: bytes to content deltas ----------

fn ours_chat(chunks: &[Bytes]) -> usize {
    chat_with(StreamDecoder::chat(), chunks)
}

/// The same decoder with its chat-chunk fast path off: every chunk read by serde (what the
/// decoder did before the fast path).
fn ours_chat_serde(chunks: &[Bytes]) -> usize {
    chat_with(StreamDecoder::chat().with_fast_path(false), chunks)
}

fn chat_with(mut dec: StreamDecoder, chunks: &[Bytes]) -> usize {
    let mut content = 0;
    let mut take = |dec: &mut StreamDecoder| {
        while let Some(ev) = dec.poll_event() {
            match ev {
                StreamEvent::Content(s) => content += s.len(),
                StreamEvent::Error(e) => panic!("{e}"),
                _ => {}
            }
        }
    };
    for c in chunks {
        dec.push(c);
        take(&mut dec);
    }
    dec.finish();
    take(&mut dec);
    content
}

// The shape async-openai deserializes every chunk into (CreateChatCompletionStreamResponse).
#[allow(dead_code)]
#[derive(Deserialize)]
struct ChatChunk {
    id: String,
    choices: Vec<ChatChoiceStream>,
    created: u32,
    model: String,
    service_tier: Option<String>,
    system_fingerprint: Option<String>,
    object: String,
    usage: Option<CompletionUsage>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct ChatChoiceStream {
    index: u32,
    delta: StreamDelta,
    finish_reason: Option<String>,
    logprobs: Option<serde_json::Value>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct StreamDelta {
    content: Option<String>,
    tool_calls: Option<Vec<serde_json::Value>>,
    role: Option<String>,
    refusal: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct CompletionUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

fn eventsource_serde_chat(chunks: &[Bytes]) -> usize {
    let s = eventsource_stream::EventStream::new(byte_stream(chunks));
    pin_mut!(s);
    block_on(async {
        let mut content = 0;
        while let Some(ev) = s.next().await {
            let ev = ev.unwrap();
            if ev.data == "[DONE]" {
                break;
            }
            let chunk: ChatChunk = serde_json::from_str(&ev.data).unwrap();
            for choice in chunk.choices {
                if let Some(c) = choice.delta.content {
                    content += c.len();
                }
            }
        }
        content
    })
}

fn bench(c: &mut Criterion) {
    let (chat, content) = vllm_chat_stream(CHAT_BYTES);
    let long = one_long_data_line(LONG_LINE);
    let chat_events = chat.windows(2).filter(|w| w == b"\n\n").count();

    // SSE decoding on the chat stream, two chunk sizes.
    for size in [1460usize, 64] {
        let chunks = split(&chat, size);
        let mut g = c.benchmark_group(format!("sse/chat-20MB/{size}B-chunks"));
        g.throughput(Throughput::Bytes(chat.len() as u64));
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        let want = ours_sse(&chunks);
        assert_eq!(want.0, chat_events);
        for (name, f) in SSE_IMPLS {
            assert_eq!(f(&chunks), want, "{name}");
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| black_box(f(black_box(&chunks))))
            });
        }
        g.finish();
    }

    // One 8 MiB data line in 1460-byte chunks.
    {
        let chunks = split(&long, 1460);
        let mut g = c.benchmark_group("sse/one-8MiB-line/1460B-chunks");
        g.throughput(Throughput::Bytes(long.len() as u64));
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        let probe = split(&one_long_data_line(PROBE_LINE), 1460);
        for (name, f) in SSE_IMPLS {
            let t = Instant::now();
            let got = f(&probe);
            let once = t.elapsed();
            assert_eq!(got, (1, PROBE_LINE), "{name}");
            if once > TOO_SLOW {
                println!(
                    "sse/one-8MiB-line/1460B-chunks/{name}: one pass over a 512 KiB line took \
                     {once:?} ({:.1} MB/s); not measured on 8 MiB",
                    PROBE_LINE as f64 / once.as_secs_f64() / 1e6
                );
                continue;
            }
            assert_eq!(f(&chunks), (1, LONG_LINE), "{name}");
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| black_box(f(black_box(&chunks))))
            });
        }
        g.finish();
    }

    // Bytes to content deltas.
    for size in [1460usize, 64] {
        let chunks = split(&chat, size);
        let mut g = c.benchmark_group(format!("chat/chat-20MB/{size}B-chunks"));
        g.throughput(Throughput::Bytes(chat.len() as u64));
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        type ChatFn = fn(&[Bytes]) -> usize;
        let impls: [(&str, ChatFn); 3] = [
            ("vllm-client StreamDecoder", ours_chat),
            ("vllm-client StreamDecoder, serde only", ours_chat_serde),
            ("eventsource-stream + serde_json", eventsource_serde_chat),
        ];
        for (name, f) in impls {
            assert_eq!(f(&chunks), content.len(), "{name}");
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| black_box(f(black_box(&chunks))))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
