//! The Responses stream decoder: its rules, one by one, and properties over generated
//! streams — any chunking gives the same events and report as the body whole; exactly one
//! terminal event, last; never a silent success; no event handed out twice; the text handed
//! out is the text the stream carried.

use proptest::prelude::*;
use vllm_client_core::api::ResponseStreamEvent;
use vllm_client_core::sse::SseLimits;
use vllm_client_core::stream::{PushReport, StreamDecoder};
use vllm_client_core::{StreamEvent, VllmError};

fn response(status: &str) -> String {
    format!(
        r#"{{"id":"resp_1","object":"response","model":"m","status":"{status}","output":[],"usage":{{"input_tokens":2,"output_tokens":3,"total_tokens":5}}}}"#
    )
}

fn ev(kind: &str, seq: u64, fields: &str) -> String {
    let sep = if fields.is_empty() { "" } else { "," };
    format!(
        "event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":{seq}{sep}{fields}}}\n\n"
    )
}

fn delta(seq: u64, text: &str) -> String {
    ev(
        "response.output_text.delta",
        seq,
        &format!(
            r#""item_id":"msg_1","output_index":0,"content_index":0,"delta":{}"#,
            serde_json::to_string(text).unwrap()
        ),
    )
}

fn decode(body: &[u8]) -> Vec<StreamEvent> {
    let mut dec = StreamDecoder::responses();
    dec.push(body);
    dec.finish();
    std::iter::from_fn(|| dec.poll_event()).collect()
}

fn typed(events: &[StreamEvent]) -> Vec<&ResponseStreamEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Response(r) => Some(&**r),
            _ => None,
        })
        .collect()
}

fn text(events: &[StreamEvent]) -> String {
    typed(events)
        .iter()
        .filter_map(|e| e.text_delta())
        .collect()
}

#[test]
fn a_whole_stream_in_vllms_framing() {
    let body = [
        ev("response.created", 0, &format!(r#""response":{}"#, response("in_progress"))),
        ev("response.in_progress", 1, &format!(r#""response":{}"#, response("in_progress"))),
        ev(
            "response.output_item.added",
            2,
            r#""output_index":0,"item":{"id":"msg_1","type":"message","role":"assistant","content":[]}"#,
        ),
        ev(
            "response.reasoning_text.delta",
            3,
            r#""item_id":"rs_1","output_index":0,"content_index":0,"delta":"hm""#,
        ),
        delta(4, "Hel"),
        delta(5, "lo"),
        ev(
            "response.function_call_arguments.delta",
            6,
            r#""item_id":"fc_1","output_index":1,"delta":"{\"a\"""#,
        ),
        ev(
            "response.function_call_arguments.done",
            7,
            r#""item_id":"fc_1","output_index":1,"name":"f","arguments":"{\"a\":1}""#,
        ),
        ev("response.web_search_call.searching", 8, r#""item_id":"ws","output_index":2"#),
        ev("response.completed", 9, &format!(r#""response":{}"#, response("completed"))),
    ]
    .concat();
    let events = decode(body.as_bytes());
    assert!(
        matches!(events.last(), Some(StreamEvent::Done)),
        "{events:?}"
    );
    let t = typed(&events);
    assert_eq!(t.len(), 10);
    assert!(matches!(t[0], ResponseStreamEvent::Created { .. }));
    assert!(matches!(t[3], ResponseStreamEvent::ReasoningTextDelta { delta, .. } if delta == "hm"));
    assert_eq!(text(&events), "Hello");
    assert!(
        matches!(t[7], ResponseStreamEvent::FunctionCallArgumentsDone { name: Some(n), arguments, .. }
        if n == "f" && arguments == "{\"a\":1}")
    );
    assert!(
        matches!(t[8], ResponseStreamEvent::Other { kind, .. } if kind == "response.web_search_call.searching")
    );
    let ResponseStreamEvent::Completed { response, .. } = t[9] else {
        panic!("{:?}", t[9])
    };
    assert_eq!(response.usage.as_ref().unwrap().output_tokens, 3);
    let numbers: Vec<_> = t.iter().map(|e| e.sequence_number().unwrap()).collect();
    assert_eq!(numbers, (0..10).collect::<Vec<_>>());
}

#[test]
fn the_cursor_keeps_the_id_and_the_last_number() {
    let mut dec = StreamDecoder::responses();
    assert_eq!(dec.response_cursor().unwrap().last_sequence_number, None);
    dec.push(
        ev(
            "response.created",
            0,
            &format!(r#""response":{}"#, response("in_progress")),
        )
        .as_bytes(),
    );
    dec.push(delta(1, "a").as_bytes());
    let c = dec.response_cursor().unwrap();
    assert_eq!(c.response_id.as_deref(), Some("resp_1"));
    assert_eq!(c.last_sequence_number, Some(1));
    assert_eq!(dec.model(), Some("m"));
    assert!(StreamDecoder::chat().response_cursor().is_none());
}

#[test]
fn replayed_events_are_dropped() {
    let body = [
        delta(0, "a"),
        delta(1, "b"),
        delta(1, "b"),
        delta(0, "a"),
        delta(2, "c"),
        ev(
            "response.completed",
            3,
            &format!(r#""response":{}"#, response("completed")),
        ),
    ]
    .concat();
    let mut dec = StreamDecoder::responses();
    dec.push(body.as_bytes());
    assert_eq!(dec.response_cursor().unwrap().replayed, 2);
    let events: Vec<_> = std::iter::from_fn(|| dec.poll_event()).collect();
    assert_eq!(text(&events), "abc");
}

#[test]
fn endings_that_are_not_a_success() {
    let start = delta(0, "x");
    for (tail, check) in [
        // Cut: the body ends.
        ("", "truncated"),
        // A chat-style [DONE] without a terminal event.
        ("data: [DONE]\n\n", "truncated"),
        (
            "event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":1,\"response\":{\"id\":\"r\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"oom\"}}}\n\n",
            "oom",
        ),
        (
            "event: error\ndata: {\"type\":\"error\",\"sequence_number\":1,\"code\":\"bad\",\"message\":\"went wrong\",\"param\":null}\n\n",
            "went wrong",
        ),
        ("data: {\"error\": {\"message\": \"flat\", \"code\": 500}}\n\n", "flat"),
        ("data: not json\n\n", "not JSON"),
        ("data: {\"no\": \"type\"}\n\n", "without a type"),
        (
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":1}\n\n",
            "without its response",
        ),
    ] {
        let events = decode(format!("{start}{tail}").as_bytes());
        let last = events.last().unwrap();
        let StreamEvent::Error(e) = last else {
            panic!("{tail:?}: expected an error, got {events:?}")
        };
        let shown = format!("{e}");
        match check {
            "truncated" => assert!(matches!(e, VllmError::Truncated), "{tail:?}: {e:?}"),
            needle => assert!(shown.contains(needle), "{tail:?}: {shown}"),
        }
        assert_eq!(events.iter().filter(|e| e.is_terminal()).count(), 1);
        assert_eq!(text(&events), "x", "the text before the failure, once");
    }
}

#[test]
fn incomplete_is_a_success_and_nothing_follows_a_terminal_event() {
    let body = [
        delta(0, "a"),
        ev(
            "response.incomplete",
            1,
            &format!(r#""response":{}"#, response("incomplete")),
        ),
        delta(2, "late"),
    ]
    .concat();
    let mut dec = StreamDecoder::responses();
    dec.push(body.as_bytes());
    assert_eq!(dec.push(delta(3, "more").as_bytes()), PushReport::default());
    dec.finish();
    let events: Vec<_> = std::iter::from_fn(|| dec.poll_event()).collect();
    assert!(matches!(events.last(), Some(StreamEvent::Done)));
    assert_eq!(text(&events), "a");
    assert!(dec.is_finished());
}

#[test]
fn keep_alives_are_not_data_and_limits_hold() {
    let mut dec = StreamDecoder::responses();
    let r = dec.push(b": ping\n\ndata: \n\n");
    assert_eq!((r.data_events, r.comments), (0, 2));
    let r = dec.push(delta(0, "a").as_bytes());
    assert_eq!((r.data_events, r.comments), (1, 0));
    let mut small = StreamDecoder::responses().with_limits(SseLimits::new(64, 64));
    small.push(delta(0, &"x".repeat(200)).as_bytes());
    small.finish();
    let events: Vec<_> = std::iter::from_fn(|| small.poll_event()).collect();
    assert!(matches!(
        events.last(),
        Some(StreamEvent::Error(VllmError::StreamLimit(_)))
    ));
}

#[test]
fn a_json_answer_to_a_stream_request() {
    let doc = r#"{"id":"resp_9","object":"response","model":"m","status":"completed","output":[{"type":"message","id":"msg","role":"assistant","content":[{"type":"output_text","text":"whole"}]}]}"#;
    let mut dec = StreamDecoder::responses();
    dec.push_document(doc.as_bytes());
    let events: Vec<_> = std::iter::from_fn(|| dec.poll_event()).collect();
    assert_eq!(text(&events), "whole");
    assert!(matches!(events.last(), Some(StreamEvent::Done)));
    let mut dec = StreamDecoder::responses();
    dec.push_document(br#"{"id":"r","status":"in_progress","output":[]}"#);
    assert!(matches!(
        dec.poll_event(),
        Some(StreamEvent::Error(VllmError::Decode { .. }))
    ));
    let mut dec = StreamDecoder::responses();
    dec.push_document(br#"{"error":{"message":"nope","code":400}}"#);
    assert!(matches!(
        dec.poll_event(),
        Some(StreamEvent::Error(VllmError::Api(_)))
    ));
}

// ----- properties ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Piece {
    Delta(String),
    Reasoning(String),
    Args(String),
    Other,
    KeepAlive,
    Replay,
    NoSequence(String),
}

const ALPHABET: [&str; 9] = ["a", "你", "😀", " ", "\"", "\\", "\n", "é", "\r"];

fn small_text(bits: u16) -> String {
    let len = usize::from(bits % 4);
    (0..len)
        .map(|i| ALPHABET[usize::from((bits >> (2 + 4 * i)) % 9)])
        .collect()
}

fn piece() -> impl Strategy<Value = Piece> {
    (0u8..12, any::<u16>()).prop_map(|(k, bits)| match k {
        0..=4 => Piece::Delta(small_text(bits)),
        5 => Piece::Reasoning(small_text(bits)),
        6 => Piece::Args(small_text(bits)),
        7 => Piece::Other,
        8 => Piece::KeepAlive,
        9 => Piece::Replay,
        10 => Piece::NoSequence(small_text(bits)),
        _ => Piece::Delta(small_text(bits)),
    })
}

#[derive(Debug, Clone, Copy)]
enum End {
    Completed,
    Incomplete,
    Failed,
    Error,
    Cut,
    Done,
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        3 => Just(End::Completed),
        1 => Just(End::Incomplete),
        1 => Just(End::Failed),
        1 => Just(End::Error),
        2 => Just(End::Cut),
        1 => Just(End::Done),
    ]
}

/// The body, and the text a correct decoder hands out.
fn body(pieces: &[Piece], end: End) -> (String, String) {
    let mut out = ev(
        "response.created",
        0,
        &format!(r#""response":{}"#, response("in_progress")),
    );
    let mut seq = 1u64;
    let mut text = String::new();
    let q = |t: &str| serde_json::to_string(t).unwrap();
    for p in pieces {
        match p {
            Piece::Delta(t) => {
                out.push_str(&delta(seq, t));
                text.push_str(t);
                seq += 1;
            }
            Piece::Reasoning(t) => {
                out.push_str(&ev(
                    "response.reasoning_text.delta",
                    seq,
                    &format!(r#""item_id":"rs","output_index":0,"delta":{}"#, q(t)),
                ));
                seq += 1;
            }
            Piece::Args(t) => {
                out.push_str(&ev(
                    "response.function_call_arguments.delta",
                    seq,
                    &format!(r#""item_id":"fc","output_index":1,"delta":{}"#, q(t)),
                ));
                seq += 1;
            }
            Piece::Other => {
                out.push_str(&ev(
                    "response.content_part.added",
                    seq,
                    r#""part":{"type":"output_text","text":""}"#,
                ));
                seq += 1;
            }
            Piece::KeepAlive => out.push_str(": keep-alive\n\n"),
            // An event the server sends again: dropped.
            Piece::Replay => out.push_str(&delta(seq - 1, "REPLAYED")),
            // No number: handed out, never compared.
            Piece::NoSequence(t) => {
                out.push_str(&format!(
                    "data: {{\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"delta\":{}}}\n\n",
                    q(t)
                ));
                text.push_str(t);
            }
        }
    }
    match end {
        End::Completed => out.push_str(&ev(
            "response.completed",
            seq,
            &format!(r#""response":{}"#, response("completed")),
        )),
        End::Incomplete => out.push_str(&ev(
            "response.incomplete",
            seq,
            &format!(r#""response":{}"#, response("incomplete")),
        )),
        End::Failed => out.push_str(&ev(
            "response.failed",
            seq,
            r#""response":{"id":"r","status":"failed","error":{"code":"e","message":"m"}}"#,
        )),
        End::Error => out.push_str(&ev(
            "error",
            seq,
            r#""code":"e","message":"m","param":null"#,
        )),
        End::Cut => {}
        End::Done => out.push_str("data: [DONE]\n\n"),
    }
    (out, text)
}

fn run(body: &[u8], cuts: &[usize]) -> (Vec<String>, PushReport, String) {
    let mut dec = StreamDecoder::responses();
    let mut events = Vec::new();
    let mut report = PushReport::default();
    let mut at = 0;
    for &c in cuts.iter().chain([&body.len()]) {
        let c = c.clamp(at, body.len());
        report += dec.push(&body[at..c]);
        at = c;
        while let Some(e) = dec.poll_event() {
            events.push(e);
        }
    }
    dec.finish();
    while let Some(e) = dec.poll_event() {
        events.push(e);
    }
    let text = text(&events);
    // Exactly one terminal event, and it is last.
    assert_eq!(
        events.iter().filter(|e| e.is_terminal()).count(),
        1,
        "{events:?}"
    );
    assert!(events.last().unwrap().is_terminal());
    // Nothing after it, whatever comes.
    assert_eq!(
        dec.push(delta(999, "late").as_bytes()),
        PushReport::default()
    );
    assert!(dec.poll_event().is_none());
    // Numbers strictly increase among the events handed out.
    let numbers: Vec<u64> = typed(&events)
        .iter()
        .filter_map(|e| e.sequence_number())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    (
        events.iter().map(|e| format!("{e:?}")).collect(),
        report,
        text,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_split_gives_the_same_events(
        pieces in proptest::collection::vec(piece(), 0..12),
        end in end(),
        mut cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let (body, expected_text) = body(&pieces, end);
        let bytes = body.as_bytes();
        for c in &mut cuts {
            *c %= bytes.len() + 1;
        }
        cuts.sort_unstable();
        let whole = run(bytes, &[]);
        let split = run(bytes, &cuts);
        let byte_by_byte = run(bytes, &(1..bytes.len()).collect::<Vec<_>>());
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(&whole, &byte_by_byte);
        // The text is what the stream carried, each piece once (replays dropped).
        prop_assert_eq!(&whole.2, &expected_text);
        // Never a silent success: only a terminal response event ends with Done.
        let succeeded = whole.0.last().is_some_and(|l| l == "Done");
        prop_assert_eq!(succeeded, matches!(end, End::Completed | End::Incomplete));
    }
}
