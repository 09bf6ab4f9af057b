//! Property tests of the stream decoder over generated vLLM chat streams: any chunking gives the
//! same events (and the same activity report) as feeding the body whole, and the events say
//! what the generated stream said.

use proptest::prelude::*;
use vllm_client_core::sse::SseLimits;
use vllm_client_core::stream::{PushReport, StreamDecoder};
use vllm_client_core::{StreamEvent, VllmError};

#[derive(Debug, Clone)]
enum Piece {
    Role,
    Content(String),
    Reasoning(String),
    ReasoningContent(String),
    Tool {
        index: u32,
        first: bool,
        args: String,
    },
    OtherChoice(String),
    Finish,
    Usage,
    KeepAlive,
    BlankData,
    OtherEventType,
    InBandError,
    NotJson,
}

const ALPHABET: [&str; 11] = ["a", "你", "好", "😀", " ", "\"", "\\", "\n", "é", "\r", "x"];

/// Up to 3 characters picked by `bits` (generating plain integers keeps 10 000 cases cheap in
/// a debug build; nested string strategies cost several times more).
fn text(bits: u16) -> String {
    let len = usize::from(bits % 4);
    (0..len)
        .map(|i| ALPHABET[usize::from((bits >> (2 + 4 * i)) % 11)])
        .collect()
}

fn piece() -> impl Strategy<Value = Piece> {
    (0u8..20, any::<u16>()).prop_map(|(kind, bits)| match kind {
        0 => Piece::Role,
        1..=6 => Piece::Content(text(bits)),
        7 | 8 => Piece::Reasoning(text(bits)),
        9 => Piece::ReasoningContent(text(bits)),
        10 | 11 => Piece::Tool {
            index: u32::from(bits & 1),
            first: bits & 2 != 0,
            args: text(bits >> 2),
        },
        12 => Piece::OtherChoice(text(bits)),
        13 => Piece::Finish,
        14 => Piece::Usage,
        15 | 16 => Piece::KeepAlive,
        17 => Piece::BlankData,
        18 => match bits % 3 {
            0 => Piece::OtherEventType,
            1 => Piece::InBandError,
            _ => Piece::NotJson,
        },
        _ => Piece::Content(text(bits)),
    })
}

fn q(t: &str) -> String {
    serde_json::to_string(t).unwrap()
}

fn delta(d: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{d},"logprobs":null,"finish_reason":null}}]}}"#
    )
}

/// The JSON (or raw text) of a piece; keep-alives are written directly.
fn payload(p: &Piece) -> String {
    match p {
        Piece::Role => delta(r#"{"role":"assistant","content":""}"#),
        Piece::Content(t) => delta(&format!(r#"{{"content":{}}}"#, q(t))),
        Piece::Reasoning(t) => delta(&format!(r#"{{"reasoning":{}}}"#, q(t))),
        Piece::ReasoningContent(t) => {
            delta(&format!(r#"{{"reasoning_content":{},"content":null}}"#, q(t)))
        }
        Piece::Tool { index, first, args } => {
            let head = if *first {
                format!(r#""id":"call-{index}","type":"function","#)
            } else {
                String::new()
            };
            let name = if *first { r#""name":"f","# } else { "" };
            delta(&format!(
                r#"{{"tool_calls":[{{"index":{index},{head}"function":{{{name}"arguments":{}}}}}]}}"#,
                q(args)
            ))
        }
        Piece::OtherChoice(t) => format!(
            r#"{{"object":"chat.completion.chunk","choices":[{{"index":1,"delta":{{"content":{}}}}}]}}"#,
            q(t)
        ),
        Piece::Finish => {
            r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_owned()
        }
        Piece::Usage => {
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#.to_owned()
        }
        Piece::InBandError => {
            r#"{"error":{"message":"boom","type":"InternalServerError","param":null,"code":500}}"#.to_owned()
        }
        Piece::NotJson => "{not json".to_owned(),
        Piece::KeepAlive | Piece::BlankData | Piece::OtherEventType => unreachable!(),
    }
}

/// Writes the stream: `style` picks the line end, compact or pretty JSON (pretty JSON broken
/// over several `data:` lines, which SSE joins with LF), and spaces after `data:`.
fn body(pieces: &[Piece], done: bool, style: u8) -> Vec<u8> {
    let eol = ["\n", "\r\n", "\r"][usize::from(style % 3)];
    let pretty = style & 4 != 0;
    let space = if style & 8 != 0 { "" } else { " " };
    let mut out = String::new();
    if style & 16 != 0 {
        out.push('\u{FEFF}');
    }
    let event = |out: &mut String, data: &str| {
        for line in data.split('\n') {
            out.push_str(&format!("data:{space}{line}{eol}"));
        }
        out.push_str(eol);
    };
    for p in pieces {
        match p {
            Piece::KeepAlive => out.push_str(&format!(": keep-alive{eol}{eol}")),
            Piece::BlankData => out.push_str(&format!("data:{eol}{eol}")),
            Piece::OtherEventType => out.push_str(&format!("event: ping{eol}data: x{eol}{eol}")),
            p => {
                let text = payload(p);
                // JSON may break lines between tokens; `,"` never occurs inside the generated
                // strings (no commas in their alphabet), so this splits only between tokens.
                let text = if pretty {
                    text.replace(",\"", ",\n \"")
                } else {
                    text
                };
                event(&mut out, &text);
            }
        }
    }
    if done {
        event(&mut out, "[DONE]");
    }
    out.into_bytes()
}

fn decode(limits: SseLimits, input: &[u8], cuts: &[usize]) -> (Vec<String>, PushReport) {
    let mut dec = StreamDecoder::chat().with_limits(limits);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut events = Vec::new();
    let mut report = PushReport::default();
    let mut at = 0;
    for c in cuts.into_iter().chain([input.len()]) {
        report += dec.push(&input[at..c]);
        at = c;
        assert!(dec.buffered_bytes() <= 2 * limits.max_line + 2 * limits.max_event);
        events.extend(std::iter::from_fn(|| dec.poll_event()).map(|e| format!("{e:?}")));
    }
    dec.finish();
    events.extend(std::iter::from_fn(|| dec.poll_event()).map(|e| format!("{e:?}")));
    assert!(dec.is_finished());
    (events, report)
}

fn stream() -> impl Strategy<Value = (Vec<Piece>, bool, u8)> {
    (prop::collection::vec(piece(), 0..8), any::<bool>(), 0u8..32)
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..4000, 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn any_split_gives_the_same_events((pieces, done, style) in stream(), cuts in cuts()) {
        let input = body(&pieces, done, style);
        let limits = SseLimits::default();
        prop_assert_eq!(decode(limits, &input, &cuts), decode(limits, &input, &[]));
    }

    #[test]
    fn any_split_gives_the_same_events_under_small_limits(
        (pieces, done, style) in stream(),
        cuts in cuts(),
        max_line in 0usize..300,
        max_event in 0usize..600,
    ) {
        let input = body(&pieces, done, style);
        let limits = SseLimits::new(max_line, max_event);
        prop_assert_eq!(decode(limits, &input, &cuts), decode(limits, &input, &[]));
    }

    #[test]
    fn events_say_what_the_stream_said((pieces, done, style) in stream(), cuts in cuts()) {
        let input = body(&pieces, done, style);
        let mut dec = StreamDecoder::chat();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut at = 0;
        let mut report = PushReport::default();
        for c in cuts.into_iter().chain([input.len()]) {
            report += dec.push(&input[at..c]);
            at = c;
        }
        dec.finish();
        let events: Vec<StreamEvent> = std::iter::from_fn(|| dec.poll_event()).collect();

        // Everything up to the first failing piece is delivered, in order.
        let fail = pieces.iter().position(|p| matches!(p, Piece::InBandError | Piece::NotJson));
        let live = &pieces[..fail.unwrap_or(pieces.len())];
        let want: String = live.iter().filter_map(|p| match p { Piece::Content(t) => Some(t.as_str()), _ => None }).collect();
        let got: String = events.iter().filter_map(|e| match e { StreamEvent::Content(t) => Some(t.as_str()), _ => None }).collect();
        prop_assert_eq!(got, want);
        let want_r: String = live.iter().filter_map(|p| match p {
            Piece::Reasoning(t) | Piece::ReasoningContent(t) => Some(t.as_str()), _ => None
        }).collect();
        let got_r: String = events.iter().filter_map(|e| match e { StreamEvent::Reasoning(t) => Some(t.as_str()), _ => None }).collect();
        prop_assert_eq!(got_r, want_r);

        // Exactly one terminal event, last, and it is the right one.
        prop_assert_eq!(events.iter().filter(|e| e.is_terminal()).count(), 1);
        let last = events.last().unwrap();
        match fail.map(|i| &pieces[i]) {
            Some(Piece::InBandError) => prop_assert!(matches!(last, StreamEvent::Error(VllmError::Api(_)))),
            Some(_) => prop_assert!(matches!(last, StreamEvent::Error(VllmError::Decode { .. })), "{:?}", last),
            None if done => prop_assert!(matches!(last, StreamEvent::Done)),
            None => prop_assert!(matches!(last, StreamEvent::Error(VllmError::Truncated))),
        }

        // Keep-alives never count as data; every data event up to the terminal one does.
        let data_pieces = live.iter().filter(|p| !matches!(p, Piece::KeepAlive | Piece::BlankData | Piece::OtherEventType)).count();
        let want_data = data_pieces + usize::from(fail.is_some() || done);
        prop_assert_eq!(report.data_events, want_data);
        let keep_alives = live.iter().filter(|p| matches!(p, Piece::KeepAlive | Piece::BlankData)).count();
        prop_assert_eq!(report.comments, keep_alives);

        // Tool-call arguments of choice 0 arrive whole, per index.
        if fail.is_none() {
            for index in 0..2u32 {
                let want: String = live.iter().filter_map(|p| match p {
                    Piece::Tool { index: i, args, .. } if *i == index => Some(args.as_str()), _ => None
                }).collect();
                let got: String = events.iter().filter_map(|e| match e {
                    StreamEvent::ToolCall(c) if c.index == index => Some(c.function.arguments.as_str()), _ => None
                }).collect();
                if done {
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}
