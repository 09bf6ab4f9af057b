//! One test per rule of the WHATWG event-stream interpretation and of our limits.

use vllm_client_core::sse::{SseDecoder, SseError, SseEvent, SseItem, SseLimits};

/// Feeds `chunks`, finishes, and returns everything polled (an error once, at the end).
fn run_with(mut dec: SseDecoder, chunks: &[&[u8]]) -> Vec<Result<SseItem, SseError>> {
    for c in chunks {
        dec.push(c);
    }
    dec.finish();
    let mut out = Vec::new();
    while let Some(item) = dec.poll() {
        let stop = item.is_err();
        out.push(item);
        if stop {
            break;
        }
    }
    out
}

fn run(chunks: &[&[u8]]) -> Vec<Result<SseItem, SseError>> {
    run_with(SseDecoder::new(), chunks)
}

fn events(chunks: &[&[u8]]) -> Vec<SseEvent> {
    run(chunks)
        .into_iter()
        .filter_map(|i| match i {
            Ok(SseItem::Event(e)) => Some(e),
            _ => None,
        })
        .collect()
}

fn datas(chunks: &[&[u8]]) -> Vec<String> {
    events(chunks).into_iter().map(|e| e.data).collect()
}

#[test]
fn lf_line_ends() {
    assert_eq!(datas(&[b"data: a\n\ndata: b\n\n"]), ["a", "b"]);
}

#[test]
fn cr_line_ends() {
    assert_eq!(datas(&[b"data: a\r\rdata: b\r\r"]), ["a", "b"]);
}

#[test]
fn crlf_line_ends() {
    assert_eq!(datas(&[b"data: a\r\n\r\ndata: b\r\n\r\n"]), ["a", "b"]);
}

#[test]
fn mixed_line_ends() {
    assert_eq!(datas(&[b"data: a\r\ndata: b\rdata: c\n\r\n"]), ["a\nb\nc"]);
}

#[test]
fn crlf_split_between_chunks_is_one_line_end() {
    // Were the LF counted as a second line end, "data: a" would be dispatched alone.
    assert_eq!(
        datas(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]),
        ["a\nb"]
    );
}

#[test]
fn cr_at_chunk_end_followed_by_text_is_a_line_end() {
    assert_eq!(datas(&[b"data: a\r", b"data: b\r", b"\r"]), ["a\nb"]);
}

#[test]
fn cr_at_chunk_end_then_empty_chunk_then_lf() {
    assert_eq!(datas(&[b"data: a\r", b"", b"\n\n"]), ["a"]);
}

#[test]
fn leading_bom_is_stripped() {
    let e = events(&[b"\xEF\xBB\xBFdata: x\n\n"]);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].data, "x");
}

#[test]
fn leading_bom_split_across_chunks_is_stripped() {
    assert_eq!(datas(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]), ["x"]);
    assert_eq!(datas(&[b"\xEF\xBB", b"\xBF", b"data: x\n\n"]), ["x"]);
}

#[test]
fn only_one_bom_is_stripped() {
    // The second BOM is part of the field name "\u{FEFF}data", an unknown field.
    assert!(datas(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"]).is_empty());
}

#[test]
fn bom_later_in_stream_is_not_stripped() {
    assert!(datas(&[b"data: a\n\n\xEF\xBB\xBFdata: x\n\n"]) == ["a"]);
}

#[test]
fn partial_bom_is_data() {
    // EF BB followed by something else: those bytes are text (U+FFFD), part of the field name.
    assert!(datas(&[b"\xEF\xBB", b"data: x\n\n"]).is_empty());
    // "\u{FFFD}: c" is a field named U+FFFD, not a comment.
    assert!(run(&[b"\xEF", b": c\n"]).is_empty());
}

#[test]
fn comments_are_reported_and_never_dispatch() {
    let items = run(&[b": keep-alive\n\n:\n\ndata: x\n:mid\n\n"]);
    assert_eq!(
        items,
        vec![
            Ok(SseItem::Comment(" keep-alive".into())),
            Ok(SseItem::Comment(String::new())),
            Ok(SseItem::Comment("mid".into())),
            Ok(SseItem::Event(SseEvent {
                event: None,
                data: "x".into(),
                id: None
            })),
        ]
    );
}

#[test]
fn field_without_colon_has_empty_value() {
    // "data" alone appends an empty line: the event's data is "".
    assert_eq!(datas(&[b"data\n\n"]), [""]);
    assert_eq!(datas(&[b"data\ndata\n\n"]), ["\n"]);
}

#[test]
fn exactly_one_leading_space_is_stripped() {
    assert_eq!(datas(&[b"data:x\n\n"]), ["x"]);
    assert_eq!(datas(&[b"data: x\n\n"]), ["x"]);
    assert_eq!(datas(&[b"data:  x\n\n"]), [" x"]);
    assert_eq!(datas(&[b"data: x \n\n"]), ["x "]);
    assert_eq!(datas(&[b"data:\tx\n\n"]), ["\tx"]);
}

#[test]
fn only_the_first_colon_separates() {
    assert_eq!(datas(&[b"data: a:b: c\n\n"]), ["a:b: c"]);
}

#[test]
fn data_lines_joined_with_lf_and_one_trailing_lf_removed() {
    assert_eq!(datas(&[b"data: a\ndata: b\n\n"]), ["a\nb"]);
    assert_eq!(datas(&[b"data: a\ndata:\n\n"]), ["a\n"]);
}

#[test]
fn empty_data_buffer_dispatches_nothing() {
    assert!(datas(&[b"\n\n\n"]).is_empty());
    assert!(datas(&[b"event: x\n\nid: 1\n\nretry: 5\n\n"]).is_empty());
    // The event type set in a block without data does not leak into the next event.
    let e = events(&[b"event: x\n\ndata: y\n\n"]);
    assert_eq!(e[0].event_type(), "message");
}

#[test]
fn event_type_defaults_to_message() {
    let e = events(&[b"data: x\n\nevent: ping\ndata: y\n\nevent:\ndata: z\n\n"]);
    assert_eq!(e[0].event, None);
    assert_eq!(e[0].event_type(), "message");
    assert_eq!(e[1].event.as_deref(), Some("ping"));
    assert_eq!(e[1].event_type(), "ping");
    // An empty event field is the default type.
    assert_eq!(e[2].event_type(), "message");
    // The type does not persist to the next event.
    let e = events(&[b"event: ping\ndata: y\n\ndata: z\n\n"]);
    assert_eq!(e[1].event_type(), "message");
}

#[test]
fn id_persists_across_events() {
    let e = events(&[b"id: 7\ndata: a\n\ndata: b\n\n"]);
    assert_eq!(e[0].id.as_deref(), Some("7"));
    assert_eq!(e[1].id.as_deref(), Some("7"));
}

#[test]
fn id_set_without_data_still_applies_later() {
    let e = events(&[b"id: 3\n\ndata: a\n\n"]);
    assert_eq!(e[0].id.as_deref(), Some("3"));
}

#[test]
fn id_with_nul_is_ignored() {
    let e = events(&[b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"]);
    assert_eq!(e[1].id.as_deref(), Some("1"));
}

#[test]
fn empty_id_resets() {
    let e = events(&[b"id: 1\ndata: a\n\nid\ndata: b\n\nid: 2\n\nid:\ndata: c\n\n"]);
    assert_eq!(e[0].id.as_deref(), Some("1"));
    assert_eq!(e[1].id, None);
    assert_eq!(e[2].id, None);
}

#[test]
fn seeded_last_event_id() {
    let mut d = SseDecoder::with_last_event_id("42");
    assert_eq!(d.last_event_id(), "42");
    d.push(b"data: a\n\n");
    match d.poll() {
        Some(Ok(SseItem::Event(e))) => assert_eq!(e.id.as_deref(), Some("42")),
        other => panic!("{other:?}"),
    }
    assert_eq!(SseDecoder::with_last_event_id("a\0b").last_event_id(), "");
}

#[test]
fn retry_only_when_all_ascii_digits() {
    let items =
        run(&[b"retry: 1500\nretry: 15x\nretry: -1\nretry:\nretry: 2 \nretry: \xd9\xa3\n\n"]);
    assert_eq!(items, vec![Ok(SseItem::Retry(1500))]);
    let mut d = SseDecoder::new();
    d.push(b"retry: 99999999999999999999999\n");
    assert_eq!(d.retry(), Some(u64::MAX));
}

#[test]
fn unknown_fields_are_ignored() {
    assert_eq!(datas(&[b"foo: bar\nData: no\ndata: yes\n\n"]), ["yes"]);
}

#[test]
fn incomplete_event_at_end_is_discarded() {
    assert_eq!(datas(&[b"data: a\n\ndata: b\n"]), ["a"]);
    assert_eq!(datas(&[b"data: a\n\ndata: b"]), ["a"]);
    // A last line without its line end is not even processed.
    let mut d = SseDecoder::new();
    d.push(b"data: a\n\nid: 9");
    d.finish();
    assert_eq!(d.last_event_id(), "");
    d.push(b"\n\ndata: late\n\n");
    assert!(matches!(d.poll(), Some(Ok(SseItem::Event(_)))));
    assert_eq!(d.poll(), None, "input after finish is ignored");
}

#[test]
fn invalid_utf8_is_replaced_never_an_error() {
    assert_eq!(datas(&[b"data: a\xffb\xc3\n\n"]), ["a\u{FFFD}b\u{FFFD}"]);
}

#[test]
fn utf8_character_split_across_chunks_survives() {
    let bytes = "data: 你好\n\n".as_bytes();
    for cut in 0..bytes.len() {
        assert_eq!(
            datas(&[&bytes[..cut], &bytes[cut..]]),
            ["你好"],
            "cut at {cut}"
        );
    }
}

#[test]
fn utf8_decoded_per_line_not_across_lines() {
    // E4 at the end of one line and BD A0 at the start of the next are three errors, not "你".
    assert_eq!(
        datas(&[b"data: \xe4\ndata: \xbd\xa0\n\n"]),
        ["\u{FFFD}\n\u{FFFD}\u{FFFD}"]
    );
}

#[test]
fn every_byte_split_gives_same_items() {
    let input: &[u8] =
        b"\xEF\xBB\xBF: hi\r\nid: 1\revent: e\ndata: \xe4\xbd\xa0\r\ndata\r\rdata: x\n\nretry: 9\n\n";
    let whole = run(&[input]);
    for i in 0..input.len() {
        for j in i..input.len() {
            assert_eq!(
                run(&[&input[..i], &input[i..j], &input[j..]]),
                whole,
                "{i} {j}"
            );
        }
    }
}

#[test]
fn default_limits_are_documented_values() {
    let l = SseLimits::default();
    assert_eq!(l.max_line, 16 * 1024 * 1024);
    assert_eq!(l.max_event, 32 * 1024 * 1024);
    assert_eq!(SseDecoder::new().limits(), l);
}

#[test]
fn line_limit_is_an_error_whole_or_split() {
    let limits = SseLimits::new(8, 1024);
    let ok = run_with(SseDecoder::new().with_limits(limits), &[b"data: 12\n\n"]);
    assert_eq!(ok.len(), 1);
    assert!(ok[0].is_ok());
    let whole = run_with(SseDecoder::new().with_limits(limits), &[b"data: 123\n\n"]);
    assert_eq!(whole, vec![Err(SseError::LineTooLong { limit: 8 })]);
    let split = run_with(
        SseDecoder::new().with_limits(limits),
        &[b"data", b": 1", b"23", b"\n\n"],
    );
    assert_eq!(split, whole);
    // An unterminated line is bounded too: memory never exceeds the limit.
    let mut d = SseDecoder::new().with_limits(limits);
    d.push(b"data: 12");
    assert_eq!(d.buffered_bytes(), 8);
    d.push(b"3");
    assert_eq!(d.buffered_bytes(), 0);
    assert_eq!(d.poll(), Some(Err(SseError::LineTooLong { limit: 8 })));
}

#[test]
fn event_limit_is_an_error() {
    let limits = SseLimits::new(100, 10);
    // "abcd\n" + "efgh\n" = 10 bytes: fits.
    let ok = run_with(
        SseDecoder::new().with_limits(limits),
        &[b"data: abcd\ndata: efgh\n\n"],
    );
    assert!(matches!(&ok[..], [Ok(SseItem::Event(_))]));
    let bad = run_with(
        SseDecoder::new().with_limits(limits),
        &[b"data: a\n\ndata: abcd\ndata: efghi\n\n"],
    );
    assert_eq!(bad.len(), 2);
    assert!(
        bad[0].is_ok(),
        "events before the error are still delivered"
    );
    assert_eq!(bad[1], Err(SseError::EventTooLarge { limit: 10 }));
}

#[test]
fn errors_are_sticky() {
    let mut d = SseDecoder::new().with_limits(SseLimits::new(4, 100));
    d.push(b"data: x\n\n");
    for _ in 0..3 {
        assert_eq!(d.poll(), Some(Err(SseError::LineTooLong { limit: 4 })));
    }
    d.push(b"\n\n: ok\n");
    d.finish();
    assert_eq!(d.poll(), Some(Err(SseError::LineTooLong { limit: 4 })));
    assert!(d.is_finished());
}

#[test]
fn long_partial_line_is_not_rescanned() {
    // One byte at a time over a 2 MiB line: quadratic rescanning would take minutes in debug.
    let mut d = SseDecoder::new();
    d.push(b"data: ");
    let chunk = [b'x'; 1];
    for _ in 0..(2 << 20) {
        d.push(&chunk);
    }
    d.push(b"\n\n");
    match d.poll() {
        Some(Ok(SseItem::Event(e))) => assert_eq!(e.data.len(), 2 << 20),
        other => panic!("{other:?}"),
    }
}

#[test]
fn large_events_are_exact_in_every_form() {
    // Events past the size where the decoder hands its buffer over instead of copying it.
    let big = "x".repeat(100_000);
    let cases: Vec<(Vec<u8>, String)> = vec![
        (format!("data: {big}\n\n").into_bytes(), big.clone()),
        (format!("data:{big}\n\n").into_bytes(), big.clone()),
        (
            format!("data: {big}\ndata: y\n\n").into_bytes(),
            format!("{big}\ny"),
        ),
        (
            format!("data: y\ndata: {big}\n\n").into_bytes(),
            format!("y\n{big}"),
        ),
        (
            [b"data: \xff".as_slice(), big.as_bytes(), b"\r\n\r\n"].concat(),
            format!("\u{FFFD}{big}"),
        ),
    ];
    for (input, want) in cases {
        for size in [input.len(), 1460, 7] {
            let chunks: Vec<&[u8]> = input.chunks(size).collect();
            let got = datas(&chunks);
            assert_eq!(got.len(), 1);
            assert!(got[0] == want, "chunk size {size}");
        }
    }
    // The decoder stays usable after handing a buffer over.
    assert_eq!(
        datas(&[format!("data: {big}\n\ndata: a\ndata: b\n\n").as_bytes()])[1],
        "a\nb"
    );
}
