//! The chunk mode of the stream decoder (the result-shaped view): whole chunks with their id,
//! model and log probabilities; the same guarantees as the event mode (one terminal event,
//! never a silent success), split invariance, and the same text as the event mode.

use proptest::prelude::*;
use vllm_client_core::stream::{StreamDecoder, StreamKind};
use vllm_client_core::{StreamEvent, VllmError};

fn chunk(content: &str, finish: Option<&str>) -> String {
    let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
    format!(
        "data: {{\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":3,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"logprobs\":{{\"content\":[{{\"token\":\"t\",\"logprob\":-1.0,\"top_logprobs\":[]}}]}},\"finish_reason\":{finish}}}]}}\n\n",
        serde_json::to_string(content).unwrap()
    )
}

fn run(kind: StreamKind, body: &[u8], cuts: &[usize]) -> Vec<StreamEvent> {
    let mut dec = StreamDecoder::new(kind);
    let mut at = 0;
    let mut out = Vec::new();
    for &c in cuts.iter().chain([&body.len()]) {
        let c = c.clamp(at, body.len());
        dec.push(&body[at..c]);
        at = c;
        out.extend(std::iter::from_fn(|| dec.poll_event()));
    }
    dec.finish();
    out.extend(std::iter::from_fn(|| dec.poll_event()));
    assert_eq!(out.iter().filter(|e| e.is_terminal()).count(), 1);
    assert!(out.last().unwrap().is_terminal());
    out
}

fn chunk_text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Chunk(c) => c.content().map(str::to_owned),
            _ => None,
        })
        .collect()
}

fn event_text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Content(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn chunks_are_whole_with_their_metadata() {
    let body = format!(
        "{}{}data: [DONE]\n\n",
        chunk("Hi", None),
        chunk("", Some("stop"))
    );
    let events = run(StreamKind::ChatChunks, body.as_bytes(), &[]);
    assert_eq!(events.len(), 3);
    let StreamEvent::Chunk(c) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (c.id.as_str(), c.model.as_str(), c.created),
        ("chatcmpl-7", "m", 3)
    );
    let lp = c.choices[0]
        .logprobs
        .as_ref()
        .unwrap()
        .content
        .as_ref()
        .unwrap();
    assert_eq!(lp[0].logprob, -1.0);
    assert!(matches!(events[2], StreamEvent::Done));
}

#[test]
fn failures_end_chunk_streams_too() {
    for (tail, want) in [
        ("", "truncated"),
        (
            "data: {\"error\": {\"message\": \"boom\", \"code\": 500}}\n\ndata: [DONE]\n\n",
            "boom",
        ),
        ("data: nope\n\n", "not JSON"),
    ] {
        let body = format!("{}{tail}", chunk("a", None));
        let events = run(StreamKind::ChatChunks, body.as_bytes(), &[]);
        let StreamEvent::Error(e) = events.last().unwrap() else {
            panic!("{events:?}")
        };
        match want {
            "truncated" => assert!(matches!(e, VllmError::Truncated)),
            needle => assert!(e.to_string().contains(needle), "{e}"),
        }
        assert_eq!(chunk_text(&events), "a");
    }
}

#[test]
fn a_json_answer_becomes_one_chunk() {
    let mut dec = StreamDecoder::new(StreamKind::ChatChunks);
    dec.push_document(br#"{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}]}"#);
    let events: Vec<_> = std::iter::from_fn(|| dec.poll_event()).collect();
    assert_eq!(chunk_text(&events), "whole");
    assert!(matches!(events.last(), Some(StreamEvent::Done)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn split_invariant_and_the_same_text_as_the_event_mode(
        texts in proptest::collection::vec("[a-z你😀 \"\\\\]{0,3}", 0..8),
        done in any::<bool>(),
        mut cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut body: String = texts.iter().map(|t| chunk(t, None)).collect();
        body.push_str(&chunk("", Some("stop")));
        if done {
            body.push_str("data: [DONE]\n\n");
        }
        let bytes = body.as_bytes();
        for c in &mut cuts {
            *c %= bytes.len() + 1;
        }
        cuts.sort_unstable();
        let whole = run(StreamKind::ChatChunks, bytes, &[]);
        let split = run(StreamKind::ChatChunks, bytes, &cuts);
        prop_assert_eq!(format!("{whole:?}"), format!("{split:?}"));
        let events = run(StreamKind::Chat, bytes, &cuts);
        prop_assert_eq!(chunk_text(&whole), event_text(&events));
        prop_assert_eq!(chunk_text(&whole), texts.concat());
        prop_assert_eq!(matches!(whole.last(), Some(StreamEvent::Done)), done);
    }
}
