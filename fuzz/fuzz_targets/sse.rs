//! The SSE decoder: no input panics, buffers stay within the limits, and any chunking gives
//! the same items as feeding the body whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vllm_client_core::sse::{SseDecoder, SseError, SseItem, SseLimits};

mod common;

fn decode(limits: SseLimits, body: &[u8], cuts: &[usize]) -> Vec<Result<SseItem, SseError>> {
    let mut dec = SseDecoder::new().with_limits(limits);
    let mut out = Vec::new();
    let mut at = 0;
    for &c in cuts.iter().chain([&body.len()]) {
        dec.push(&body[at..c]);
        at = c;
        // Pending line ≤ max_line, data ≤ max_event, event type ≤ max_line.
        assert!(dec.buffered_bytes() <= 2 * limits.max_line + limits.max_event);
        while let Some(Ok(item)) = dec.poll() {
            out.push(Ok(item));
        }
    }
    dec.finish();
    while let Some(item) = dec.poll() {
        let err = item.is_err();
        out.push(item);
        if err {
            // Sticky: the same error again.
            assert_eq!(dec.poll(), out.last().cloned());
            break;
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    if input.len() < common::HEADER {
        return;
    }
    let (head, body) = input.split_at(common::HEADER);
    let small = SseLimits::new(usize::from(head[0] % 64), usize::from(head[1]));
    let cuts = common::cuts(u16::from_le_bytes([head[2], head[3]]), body.len());
    for limits in [SseLimits::default(), small] {
        assert_eq!(decode(limits, body, &cuts), decode(limits, body, &[]));
    }
});
