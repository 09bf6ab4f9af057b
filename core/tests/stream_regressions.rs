//! Regression tests for the bug classes peer clients shipped in stream decoding (text lost at
//! a split UTF-8 character, a stream without `[DONE]` taken as a success, an in-band error
//! dropped, a keep-alive taken for data).

use vllm_client_core::stream::StreamDecoder;
use vllm_client_core::{StreamEvent, VllmError};

fn drain(dec: &mut StreamDecoder) -> Vec<StreamEvent> {
    std::iter::from_fn(|| dec.poll_event()).collect()
}

fn content_chunk(text: &str) -> String {
    format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}}}}]}}\n\n",
        serde_json::to_string(text).unwrap()
    )
}

/// Bug class 10: UTF-8 decoded per network chunk turned "你好" into "���好".
#[test]
fn bug10_chinese_split_inside_a_character() {
    let body = format!("{}data: [DONE]\n\n", content_chunk("你好"));
    let bytes = body.as_bytes();
    let start = body.find('你').unwrap();
    for cut in [start + 1, start + 2, start + 4, start + 5] {
        let mut dec = StreamDecoder::chat();
        dec.push(&bytes[..cut]);
        dec.push(&bytes[cut..]);
        dec.finish();
        let ev = drain(&mut dec);
        assert!(
            matches!(&ev[..], [StreamEvent::Content(s), StreamEvent::Done] if s == "你好"),
            "cut {cut}: {ev:?}"
        );
    }
    // And one byte at a time.
    let mut dec = StreamDecoder::chat();
    for b in bytes {
        dec.push(std::slice::from_ref(b));
    }
    assert!(
        matches!(&drain(&mut dec)[..], [StreamEvent::Content(s), StreamEvent::Done] if s == "你好")
    );
}

/// Bug class 11: a truncated stream reported as success.
#[test]
fn bug11_truncated_stream_is_an_error_not_success() {
    let mut dec = StreamDecoder::chat();
    dec.push(content_chunk("partial answer").as_bytes());
    dec.finish();
    let ev = drain(&mut dec);
    assert!(
        matches!(ev.last(), Some(StreamEvent::Error(VllmError::Truncated))),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| matches!(e, StreamEvent::Done)));
    // Cut in the middle of the [DONE] event itself.
    let mut dec = StreamDecoder::chat();
    dec.push(b"data: [DONE]");
    dec.finish();
    assert!(matches!(
        &drain(&mut dec)[..],
        [StreamEvent::Error(VllmError::Truncated)]
    ));
}

/// Bug class 11: an in-band `{"error":…}` event reported as success because `[DONE]` follows.
#[test]
fn bug11_in_band_error_is_an_error_not_success() {
    let mut dec = StreamDecoder::chat();
    dec.push(content_chunk("Hel").as_bytes());
    dec.push(b"data: {\"error\": {\"message\": \"engine died\", \"type\": \"InternalServerError\", \"param\": null, \"code\": 500}}\n\ndata: [DONE]\n\n");
    dec.finish();
    let ev = drain(&mut dec);
    assert_eq!(ev.len(), 2, "{ev:?}");
    match &ev[1] {
        StreamEvent::Error(e @ VllmError::Api(api)) => {
            assert_eq!(api.message, "engine died");
            assert!(e.is_retryable());
        }
        e => panic!("{e:?}"),
    }
}

/// Bug class 9: after a terminal error the stream yields nothing more — no hot loop of errors,
/// whatever the caller keeps pushing or polling.
#[test]
fn bug9_nothing_after_a_terminal_error() {
    let mut dec = StreamDecoder::chat();
    dec.push(b"data: not json\n\n");
    assert!(matches!(
        dec.poll_event(),
        Some(StreamEvent::Error(VllmError::Decode { .. }))
    ));
    for _ in 0..1000 {
        assert!(dec.poll_event().is_none());
        let r = dec.push(content_chunk("more").as_bytes());
        assert_eq!(r.data_events, 0);
        dec.push(b"data: still not json\n\n");
        dec.finish();
    }
    assert!(dec.poll_event().is_none());
    assert!(dec.is_finished());

    // The same after Truncated and after Done.
    let mut dec = StreamDecoder::chat();
    dec.finish();
    dec.finish();
    assert_eq!(drain(&mut dec).len(), 1);
    dec.push(b"data: [DONE]\n\n");
    assert!(dec.poll_event().is_none());
}

/// Bug class 12: keep-alive comments reported apart from data events, so an idle timer reset
/// only by data fires on a stalled generation.
#[test]
fn bug12_keep_alives_are_reported_apart_from_data_events() {
    let mut dec = StreamDecoder::chat();
    // A stalled generation: the server only sends keep-alives.
    for _ in 0..100 {
        let r = dec.push(b": keep-alive\n\n");
        assert_eq!(r.data_events, 0);
        assert_eq!(r.comments, 1);
        assert!(!r.has_data());
    }
    assert!(dec.poll_event().is_none());
    // A keep-alive and a data event in one chunk.
    let r = dec.push(format!(": ping\n\n{}", content_chunk("x")).as_bytes());
    assert_eq!((r.data_events, r.comments), (1, 1));
    // A keep-alive split across chunks counts once, when its line completes.
    assert_eq!(dec.push(b": pi").comments, 0);
    assert_eq!(dec.push(b"ng\n").comments, 1);
}
