//! The chat-chunk fast path against the serde path: for any input and any chunking, a decoder
//! with the fast scanner hands out exactly the events (and the model, and the activity report)
//! of a decoder that reads every chunk with serde.
//!
//! An input is a 4-byte header and a body. Header byte 0: bit 0 completions instead of chat,
//! bit 1 append `data: [DONE]`, bits 2–3 how the body is used:
//!
//! - 0: the body is the event stream itself;
//! - 1: each line of the body is one event's JSON;
//! - 2: each line is the `delta` of a vLLM chunk (`{"id":…,"choices":[{"index":0,"delta":LINE,…}]}`);
//! - 3: each line is the text between the quotes of a vLLM chunk's `delta.content` (escapes).
//!
//! Bytes 2–3 seed the split points (0: byte by byte); byte 1 is unused. In modes 1–3 a CR in a line becomes a
//! space, so that the line stays one SSE line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vllm_client_core::stream::{PushReport, StreamDecoder, StreamKind};

mod common;

const HEAD: &str = r#"{"id":"chatcmpl-f","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":"#;
const TAIL: &str = r#","logprobs":null,"finish_reason":null}]}"#;

fn body(mode: u8, done: bool, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 256);
    if mode == 0 {
        out.extend_from_slice(input);
    } else {
        for line in input.split(|&b| b == b'\n') {
            let line: Vec<u8> = line
                .iter()
                .map(|&b| if b == b'\r' { b' ' } else { b })
                .collect();
            out.extend_from_slice(b"data: ");
            match mode {
                1 => out.extend_from_slice(&line),
                2 => {
                    out.extend_from_slice(HEAD.as_bytes());
                    out.extend_from_slice(&line);
                    out.extend_from_slice(TAIL.as_bytes());
                }
                _ => {
                    out.extend_from_slice(HEAD.as_bytes());
                    out.extend_from_slice(br#"{"content":""#);
                    out.extend_from_slice(&line);
                    out.extend_from_slice(br#""}"#);
                    out.extend_from_slice(TAIL.as_bytes());
                }
            }
            out.extend_from_slice(b"\n\n");
        }
    }
    if done {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
    out
}

fn decode(
    kind: StreamKind,
    fast: bool,
    body: &[u8],
    cuts: &[usize],
) -> (Vec<String>, Option<String>, PushReport) {
    let mut dec = StreamDecoder::new(kind).with_fast_path(fast);
    let mut events = Vec::new();
    let mut report = PushReport::default();
    let mut model = None;
    let mut at = 0;
    for &c in cuts.iter().chain([&body.len()]) {
        report += dec.push(&body[at..c]);
        at = c;
        while let Some(e) = dec.poll_event() {
            events.push(format!("{e:?}"));
        }
        // The model is read as soon as its chunk is: the same moment on both paths.
        if model.is_none() {
            model = dec.model().map(str::to_owned);
        }
    }
    dec.finish();
    while let Some(e) = dec.poll_event() {
        events.push(format!("{e:?}"));
    }
    (events, model, report)
}

fuzz_target!(|input: &[u8]| {
    if input.len() < common::HEADER {
        return;
    }
    let (head, rest) = input.split_at(common::HEADER);
    let kind = if head[0] & 1 == 0 {
        StreamKind::Chat
    } else {
        StreamKind::Completions
    };
    let body = body((head[0] >> 2) & 3, head[0] & 2 != 0, rest);
    let cuts = common::cuts(u16::from_le_bytes([head[2], head[3]]), body.len());
    let serde = decode(kind, false, &body, &[]);
    assert_eq!(decode(kind, true, &body, &[]), serde);
    assert_eq!(decode(kind, true, &body, &cuts), serde);
});
