//! The Responses stream decoder: no input panics, exactly one terminal event ends every
//! stream and nothing follows it, no sequence number is handed out twice or out of order, and
//! any chunking gives the same events and activity report as feeding the body whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vllm_client_core::sse::SseLimits;
use vllm_client_core::stream::{PushReport, StreamDecoder};
use vllm_client_core::StreamEvent;

mod common;

fn decode(limits: SseLimits, body: &[u8], cuts: &[usize]) -> (Vec<String>, PushReport) {
    let mut dec = StreamDecoder::responses().with_limits(limits);
    let mut events = Vec::new();
    let mut report = PushReport::default();
    let mut at = 0;
    for &c in cuts.iter().chain([&body.len()]) {
        report += dec.push(&body[at..c]);
        at = c;
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
    // Done only right after a terminal response event (never a silent success).
    if matches!(events.last(), Some(StreamEvent::Done)) {
        let before = &events[events.len() - 2];
        assert!(matches!(before, StreamEvent::Response(r) if r.is_terminal()));
    }
    let numbers: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Response(r) => r.sequence_number(),
            _ => None,
        })
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        dec.push(b"data: {\"type\":\"response.completed\"}\n\n"),
        PushReport::default()
    );
    dec.finish();
    assert!(dec.poll_event().is_none());
    (events.iter().map(|e| format!("{e:?}")).collect(), report)
}

fuzz_target!(|input: &[u8]| {
    if input.len() < common::HEADER {
        return;
    }
    let (head, body) = input.split_at(common::HEADER);
    let small = SseLimits::new(usize::from(head[0]) * 4, usize::from(head[1]) * 4);
    let cuts = common::cuts(u16::from_le_bytes([head[2], head[3]]), body.len());
    for limits in [SseLimits::default(), small] {
        assert_eq!(decode(limits, body, &cuts), decode(limits, body, &[]));
    }
});
