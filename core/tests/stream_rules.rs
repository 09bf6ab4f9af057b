//! One test per rule of the chat / completions stream decoder.

use vllm_client_core::api::ToolCallDelta;
use vllm_client_core::sse::SseLimits;
use vllm_client_core::stream::{PushReport, StreamDecoder};
use vllm_client_core::{StreamEvent, VllmError};

fn run(mut dec: StreamDecoder, chunks: &[&[u8]]) -> Vec<StreamEvent> {
    for c in chunks {
        dec.push(c);
    }
    dec.finish();
    std::iter::from_fn(|| dec.poll_event()).collect()
}

fn chat(body: &str) -> Vec<StreamEvent> {
    run(StreamDecoder::chat(), &[body.as_bytes()])
}

fn sse(chunks: &[&str]) -> String {
    chunks.iter().map(|c| format!("data: {c}\n\n")).collect()
}

fn content_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Content(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

fn kinds(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let d = format!("{e:?}");
            d.split(['(', ' ', '{']).next().unwrap().to_owned()
        })
        .collect()
}

const ROLE: &str = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#;

fn delta(d: &str) -> String {
    format!(
        r#"{{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{d},"logprobs":null,"finish_reason":null}}]}}"#
    )
}

fn finish(reason: &str) -> String {
    format!(
        r#"{{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":""}},"logprobs":null,"finish_reason":"{reason}","stop_reason":null}}]}}"#
    )
}

#[test]
fn vllm_chat_stream_in_order() {
    let body = sse(&[
        ROLE,
        &delta(r#"{"reasoning":"Let me think"}"#),
        &delta(r#"{"content":"Hello"}"#),
        &finish("stop"),
        r#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"total_tokens":40,"completion_tokens":28}}"#,
        "[DONE]",
    ]);
    let ev = chat(&body);
    assert_eq!(
        kinds(&ev),
        ["Reasoning", "Content", "Finish", "Usage", "Done"]
    );
    assert!(matches!(&ev[0], StreamEvent::Reasoning(r) if r == "Let me think"));
    assert!(matches!(&ev[1], StreamEvent::Content(c) if c == "Hello"));
    assert!(matches!(&ev[2], StreamEvent::Finish { index: 0, reason } if reason == "stop"));
    match &ev[3] {
        StreamEvent::Usage(u) => {
            assert_eq!(
                (u.prompt_tokens, u.completion_tokens, u.total_tokens),
                (12, 28, 40)
            )
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn role_only_first_chunk_and_empty_content_produce_nothing() {
    let ev = chat(&sse(&[
        r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#,
        ROLE,
        &delta(r#"{"content":""}"#),
        "[DONE]",
    ]));
    assert_eq!(kinds(&ev), ["Done"]);
}

#[test]
fn null_content_is_tolerated() {
    let ev = chat(&sse(&[
        r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}]}"#,
        &delta(r#"{"content":"x","reasoning":null,"tool_calls":null}"#),
        "[DONE]",
    ]));
    assert_eq!(kinds(&ev), ["Content", "Done"]);
}

#[test]
fn spaces_after_colons_and_extra_fields_are_tolerated() {
    let ev = chat(&sse(&[
        r#"{"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": " sing"}, "logprobs": null, "finish_reason": null, "extra": [1, {"a": null}]}], "timings": {"x": 1.5}}"#,
        "[DONE]",
    ]));
    assert_eq!(content_of(&ev), " sing");
}

#[test]
fn json_escapes_are_decoded() {
    let ev = chat(&sse(&[
        &delta(r#"{"content":"a\"b\n\u4f60\ud83d\ude00"}"#),
        "[DONE]",
    ]));
    assert_eq!(content_of(&ev), "a\"b\n你😀");
}

#[test]
fn reasoning_falls_back_to_reasoning_content_never_both() {
    let ev = chat(&sse(&[
        &delta(r#"{"reasoning_content":"old"}"#),
        &delta(r#"{"reasoning":"new","reasoning_content":"new"}"#),
        &delta(r#"{"reasoning":"","reasoning_content":"fallback"}"#),
        "[DONE]",
    ]));
    let r: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Reasoning(r) => Some(r.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(r, ["old", "new", "fallback"]);
}

#[test]
fn other_choices_are_choice_content() {
    let ev = chat(&sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}"#,
        r#"{"choices":[{"index":1,"delta":{},"finish_reason":"length"}]}"#,
        "[DONE]",
    ]));
    assert!(matches!(&ev[0], StreamEvent::Content(c) if c == "a"));
    assert!(matches!(&ev[1], StreamEvent::ChoiceContent { index: 1, text } if text == "b"));
    assert!(matches!(&ev[2], StreamEvent::Finish { index: 1, reason } if reason == "length"));
}

fn tool(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> String {
    let mut f = serde_json::json!({"arguments": args});
    if let Some(n) = name {
        f["name"] = n.into();
    }
    let mut t = serde_json::json!({"index": index, "function": f});
    if let Some(id) = id {
        t["id"] = id.into();
        t["type"] = "function".into();
    }
    delta(&serde_json::json!({ "tool_calls": [t] }).to_string())
}

#[test]
fn tool_call_deltas_stream_and_complete_calls_accumulate_per_index() {
    let ev = chat(&sse(&[
        ROLE,
        &tool(0, Some("call-a"), Some("get_weather"), ""),
        &tool(1, Some("call-b"), Some("get_time"), "{\"tz\""),
        &tool(0, None, None, "{\"city\":"),
        &tool(0, None, None, "\"Paris\"}"),
        &tool(1, None, None, ":\"UTC\"}"),
        &finish("tool_calls"),
        "[DONE]",
    ]));
    assert_eq!(
        kinds(&ev),
        [
            "ToolCallDelta",
            "ToolCallDelta",
            "ToolCallDelta",
            "ToolCallDelta",
            "ToolCallDelta",
            "ToolCall",
            "ToolCall",
            "Finish",
            "Done"
        ]
    );
    match &ev[0] {
        StreamEvent::ToolCallDelta(d) => assert_eq!(
            &**d,
            &ToolCallDelta::new(
                0,
                0,
                Some("call-a".into()),
                Some("get_weather".into()),
                String::new()
            )
        ),
        e => panic!("{e:?}"),
    }
    match (&ev[5], &ev[6]) {
        (StreamEvent::ToolCall(a), StreamEvent::ToolCall(b)) => {
            assert_eq!((a.index, a.id.as_str()), (0, "call-a"));
            assert_eq!(a.function.name, "get_weather");
            assert_eq!(a.function.arguments, "{\"city\":\"Paris\"}");
            assert_eq!(a.kind, "function");
            assert_eq!(a.arguments_json().unwrap()["city"], "Paris");
            assert_eq!((b.index, b.id.as_str()), (1, "call-b"));
            assert_eq!(b.function.arguments, "{\"tz\":\"UTC\"}");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn tool_calls_never_finished_are_emitted_at_done() {
    let ev = chat(&sse(&[&tool(0, Some("x"), Some("f"), "{}"), "[DONE]"]));
    assert_eq!(kinds(&ev), ["ToolCallDelta", "ToolCall", "Done"]);
}

#[test]
fn tool_calls_are_not_emitted_when_the_stream_fails() {
    let ev = chat(&sse(&[&tool(0, Some("x"), Some("f"), "{")]));
    assert_eq!(kinds(&ev), ["ToolCallDelta", "Error"]);
}

#[test]
fn tool_call_accumulation_is_bounded() {
    // 64 bytes of overhead + id + name + arguments must stay under max_event.
    let limits = SseLimits::new(4096, 400);
    let args = "0123456789".repeat(12);
    let chunks = sse(&[
        &tool(0, Some("id"), Some("f"), &args), // 64 + 2 + 1 + 120 = 187
        &tool(0, None, None, &args),            // 307
        &tool(0, None, None, &args),            // 427 > 400
        &tool(0, None, None, &args),
        "[DONE]",
    ]);
    let ev = run(
        StreamDecoder::chat().with_limits(limits),
        &[chunks.as_bytes()],
    );
    assert_eq!(
        kinds(&ev),
        ["ToolCallDelta", "ToolCallDelta", "Error"],
        "{ev:?}"
    );
    assert!(
        matches!(&ev[2], StreamEvent::Error(VllmError::StreamLimit(m)) if m.contains("tool-call"))
    );
}

#[test]
fn usage_on_any_chunk() {
    let ev = chat(&sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
        r#"{"choices":[],"usage":null}"#,
        "[DONE]",
    ]));
    assert_eq!(kinds(&ev), ["Content", "Usage", "Done"]);
}

#[test]
fn legacy_completions_text() {
    let body = sse(&[
        r#"{"object":"text_completion","choices":[{"index":0,"text":"Hel","logprobs":null,"finish_reason":null}]}"#,
        r#"{"object":"text_completion","choices":[{"index":0,"text":"lo","finish_reason":null},{"index":1,"text":"Yo"}]}"#,
        r#"{"object":"text_completion","choices":[{"index":0,"text":"","finish_reason":"length"}]}"#,
        "[DONE]",
    ]);
    let ev = run(StreamDecoder::completions(), &[body.as_bytes()]);
    assert_eq!(
        kinds(&ev),
        ["Content", "Content", "ChoiceContent", "Finish", "Done"]
    );
    assert_eq!(content_of(&ev), "Hello");
    // The chat decoder reads `delta`, not `text`.
    let ev = chat(&body);
    assert_eq!(kinds(&ev), ["Finish", "Done"]);
}

#[test]
fn done_ends_the_stream() {
    let ev = chat(&sse(&["[DONE]", &delta(r#"{"content":"late"}"#)]));
    assert_eq!(kinds(&ev), ["Done"]);
}

#[test]
fn in_band_error_is_terminal_although_done_follows() {
    let ev = chat(&sse(&[
        &delta(r#"{"content":"partial"}"#),
        r#"{"error": {"message": "boom", "type": "InternalServerError", "param": null, "code": 500}}"#,
        "[DONE]",
    ]));
    assert_eq!(kinds(&ev), ["Content", "Error"]);
    match &ev[1] {
        StreamEvent::Error(VllmError::Api(api)) => {
            assert_eq!(api.message, "boom");
            assert!(api.in_stream);
            assert_eq!(api.code.as_deref(), Some("500"));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn in_band_error_shapes() {
    for body in [
        r#"{"error":"Unauthorized"}"#,
        r#"{"object":"error","message":"old shape","type":"X","code":400}"#,
        r#"{"error":{"message":"odd","code":1},"choices":"not a list"}"#,
    ] {
        let ev = chat(&sse(&[body, "[DONE]"]));
        assert!(
            matches!(&ev[..], [StreamEvent::Error(VllmError::Api(_))]),
            "{body}: {ev:?}"
        );
    }
}

#[test]
fn end_without_done_is_truncated() {
    let ev = chat(&sse(&[&delta(r#"{"content":"a"}"#)]));
    assert!(matches!(
        &ev[..],
        [
            StreamEvent::Content(_),
            StreamEvent::Error(VllmError::Truncated)
        ]
    ));
    // An empty body too.
    assert!(matches!(
        &chat("")[..],
        [StreamEvent::Error(VllmError::Truncated)]
    ));
    // [DONE] without its blank line was never dispatched.
    assert!(matches!(
        &chat("data: [DONE]\n")[..],
        [StreamEvent::Error(VllmError::Truncated)]
    ));
}

#[test]
fn non_json_data_is_a_decode_error_with_bounded_snippet() {
    let junk = format!("<html>{}</html>", "x".repeat(10_000));
    let ev = chat(&sse(&[&junk, "[DONE]"]));
    match &ev[..] {
        [StreamEvent::Error(VllmError::Decode { snippet, message })] => {
            assert!(snippet.starts_with("<html>"));
            assert!(snippet.len() < 600);
            assert!(message.contains("not JSON"), "{message}");
        }
        e => panic!("{e:?}"),
    }
    // Valid JSON of the wrong shape is a decode error too.
    let ev = chat(&sse(&["42", "[DONE]"]));
    assert!(matches!(
        &ev[..],
        [StreamEvent::Error(VllmError::Decode { .. })]
    ));
}

#[test]
fn sse_limits_become_stream_limit_errors() {
    let dec = StreamDecoder::chat().with_limits(SseLimits::new(64, 1024));
    let ev = run(dec, &[sse(&[&delta(r#"{"content":"a"}"#)]).as_bytes()]);
    assert!(matches!(
        &ev[..],
        [StreamEvent::Error(VllmError::StreamLimit(_))]
    ));
}

#[test]
fn other_event_types_are_ignored() {
    let body = format!(
        "event: ping\ndata: {{}}\n\nevent: message\ndata: {}\n\nevent: metrics\ndata: not json\n\ndata: [DONE]\n\n",
        delta(r#"{"content":"a"}"#)
    );
    let ev = chat(&body);
    assert_eq!(kinds(&ev), ["Content", "Done"]);
}

#[test]
fn push_reports_data_events_and_keep_alives_separately() {
    let mut dec = StreamDecoder::chat();
    assert_eq!(
        dec.push(b": ping\n\n: ping\n\n"),
        PushReport {
            data_events: 0,
            comments: 2
        }
    );
    let r = dec.push(sse(&[&delta(r#"{"content":"a"}"#), ROLE]).as_bytes());
    assert_eq!(
        r,
        PushReport {
            data_events: 2,
            comments: 0
        }
    );
    assert!(r.has_data());
    // Blank data is a keep-alive, not progress.
    assert_eq!(
        dec.push(b"data:\n\ndata: \n\n"),
        PushReport {
            data_events: 0,
            comments: 2
        }
    );
    assert_eq!(dec.push(b"data: [DONE]\n\n").data_events, 1);
    assert_eq!(
        dec.push(b": ping\n\ndata: {}\n\n"),
        PushReport::default(),
        "nothing counts after the terminal event"
    );
}

#[test]
fn is_finished_after_terminal_event_polled() {
    let mut dec = StreamDecoder::chat();
    dec.push(b"data: [DONE]\n\n");
    assert!(dec.is_terminated());
    assert!(!dec.is_finished());
    assert!(matches!(dec.poll_event(), Some(StreamEvent::Done)));
    assert!(dec.is_finished());
}

#[test]
fn crlf_and_bom_and_comments_in_chat_stream() {
    let body = format!(
        "\u{FEFF}: hello\r\ndata: {}\r\n\r\ndata: [DONE]\r\n\r\n",
        delta(r#"{"content":"ok"}"#)
    );
    assert_eq!(content_of(&chat(&body)), "ok");
}

#[test]
fn decoder_does_not_accumulate_content() {
    let mut dec = StreamDecoder::chat();
    let one = sse(&[&delta(r#"{"content":"0123456789"}"#)]);
    for _ in 0..1000 {
        dec.push(one.as_bytes());
        while dec.poll_event().is_some() {}
    }
    assert_eq!(dec.buffered_bytes(), 0);
}
