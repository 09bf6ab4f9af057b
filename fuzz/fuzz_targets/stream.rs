//! The stream decoder: no input panics, buffers stay within the limits, exactly one terminal
//! event ends every stream and nothing follows it, and any chunking gives the same events and
//! the same activity report as feeding the body whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vllm_client_core::sse::SseLimits;
use vllm_client_core::stream::{PushReport, StreamDecoder, StreamKind};

mod common;

fn decode(
    kind: StreamKind,
    limits: SseLimits,
    body: &[u8],
    cuts: &[usize],
) -> (Vec<String>, PushReport) {
    let mut dec = StreamDecoder::new(kind).with_limits(limits);
    let mut events = Vec::new();
    let mut report = PushReport::default();
    let mut at = 0;
    for &c in cuts.iter().chain([&body.len()]) {
        report += dec.push(&body[at..c]);
        at = c;
        // SSE buffers (2 × max_line + max_event) plus tool-call arguments (≤ max_event).
        assert!(dec.buffered_bytes() <= 2 * limits.max_line + 2 * limits.max_event);
        while let Some(e) = dec.poll_event() {
            events.push(e);
        }
    }
    dec.finish();
    while let Some(e) = dec.poll_event() {
        events.push(e);
    }
    assert_eq!(events.iter().filter(|e| e.is_terminal()).count(), 1);
    assert!(events.last().unwrap().is_terminal());
    // Nothing after the terminal event, whatever is pushed.
    assert_eq!(dec.push(b"data: [DONE]\n\n"), PushReport::default());
    dec.finish();
    assert!(dec.poll_event().is_none());
    (events.iter().map(|e| format!("{e:?}")).collect(), report)
}

fuzz_target!(|input: &[u8]| {
    if input.len() < common::HEADER {
        return;
    }
    let (head, body) = input.split_at(common::HEADER);
    let kind = if head[0] & 0x80 == 0 {
        StreamKind::Chat
    } else {
        StreamKind::Completions
    };
    let small = SseLimits::new(usize::from(head[0] & 0x7f) * 4, usize::from(head[1]) * 4);
    let cuts = common::cuts(u16::from_le_bytes([head[2], head[3]]), body.len());
    for limits in [SseLimits::default(), small] {
        assert_eq!(
            decode(kind, limits, body, &cuts),
            decode(kind, limits, body, &[])
        );
    }
});
