//! The chat-chunk fast path against serde: over generated chunks — vLLM's shape and every
//! variation the scanner must either read exactly as serde does or leave to it (field orders,
//! whitespace and line breaks, escapes of every kind, unknown fields of every JSON type,
//! nulls, wrong types, odd numbers, duplicate and escaped keys, tool calls, usage, errors,
//! several choices, broken JSON) — a decoder with the fast path hands out exactly the events,
//! model and activity report of one that reads every chunk with serde, for any chunking.

use proptest::prelude::*;
use vllm_client_core::stream::{PushReport, StreamDecoder, StreamKind};

/// Draws from a list of generated numbers; 0 once they run out (so shrinking to fewer numbers
/// gives simpler chunks).
struct Draw<'a>(std::slice::Iter<'a, u16>);

impl Draw<'_> {
    fn n(&mut self, below: u16) -> u16 {
        self.0.next().map_or(0, |v| v % below.max(1))
    }

    fn is(&mut self, one_in: u16) -> bool {
        self.n(one_in) == 0
    }
}

/// JSON whitespace, mostly none.
fn ws(d: &mut Draw<'_>) -> &'static str {
    ["", "", "", " ", "\t", "\n", "  \n "][usize::from(d.n(7))]
}

/// Characters text is made of: plain, multibyte, and those JSON must or may escape.
const CHARS: [char; 14] = [
    'a', ' ', 'é', '你', '😀', '"', '\\', '/', '\n', '\t', '\u{8}', '\u{1}', '\u{0}', '\u{2028}',
];

/// A JSON string of up to 6 characters, each written raw (when JSON allows it) or escaped in
/// one of its forms; now and then broken (a raw control character, an unknown escape, a lone
/// or reversed surrogate, a short `\u`).
fn string(d: &mut Draw<'_>) -> String {
    let mut s = String::from("\"");
    for _ in 0..d.n(7) {
        let c = CHARS[usize::from(d.n(CHARS.len() as u16))];
        let how = d.n(4);
        match c {
            '"' => s.push_str(["\\\"", "\\u0022"][usize::from(how % 2)]),
            '\\' => s.push_str(["\\\\", "\\u005c"][usize::from(how % 2)]),
            c if (c as u32) < 0x20 => match (c, how) {
                ('\n', 0) => s.push_str("\\n"),
                ('\t', 0) => s.push_str("\\t"),
                ('\u{8}', 0) => s.push_str("\\b"),
                (c, 3) if d.is(4) => s.push(c), // raw: serde refuses it
                (c, _) => s.push_str(&format!("\\u{:04x}", c as u32)),
            },
            '/' if how == 0 => s.push_str("\\/"),
            c if how == 0 => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    s.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => s.push(c),
        }
    }
    if d.is(25) {
        s.push_str(["\\x", "\\ud800", "\\udc00\\ud800", "\\u12", "\\ud83dx"][usize::from(d.n(5))]);
    }
    s.push('"');
    s
}

/// A number in JSON's grammar, or now and then one outside it.
fn number(d: &mut Draw<'_>) -> String {
    let good = [
        "0",
        "1",
        "42",
        "-0",
        "-7",
        "1.5",
        "0.25",
        "1e3",
        "2E-2",
        "-1.5e+10",
        "1760000000",
    ];
    let bad = ["01", "1.", "-", "1e", ".5", "+1", "0x1", "1.e5"];
    if d.is(20) {
        bad[usize::from(d.n(bad.len() as u16))].to_owned()
    } else {
        good[usize::from(d.n(good.len() as u16))].to_owned()
    }
}

/// Any JSON value (nested up to `depth`), for unknown fields.
fn value(d: &mut Draw<'_>, depth: u8) -> String {
    match d.n(if depth == 0 { 5 } else { 7 }) {
        0 => "null".into(),
        1 => ["true", "false"][usize::from(d.n(2))].into(),
        2 => number(d),
        3 | 4 => string(d),
        5 => {
            let items: Vec<String> = (0..d.n(3)).map(|_| value(d, depth - 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let items: Vec<String> = (0..d.n(3))
                .map(|_| format!("{}:{}", string(d), value(d, depth - 1)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
}

/// An object from `fields` (name, value), in a drawn order, with drawn whitespace, now and
/// then a field repeated, an unknown field added, a key escaped, or a trailing comma.
fn object(d: &mut Draw<'_>, mut fields: Vec<(String, String)>) -> String {
    if d.is(3) {
        fields.push((format!("\"x{}\"", d.n(3)), value(d, 2)));
    }
    for i in (1..fields.len()).rev() {
        fields.swap(i, usize::from(d.n(i as u16 + 1)));
    }
    if !fields.is_empty() && d.is(30) {
        let dup = fields[usize::from(d.n(fields.len() as u16))].clone();
        fields.push(dup);
    }
    if !fields.is_empty() && d.is(40) {
        let k = &mut fields[0].0;
        if k.len() > 3 {
            let c = k.as_bytes()[1];
            *k = format!("\"\\u{:04x}{}", c, &k[2..]);
        }
    }
    let mut s = format!("{{{}", ws(d));
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            s.push_str(&format!("{},{}", ws(d), ws(d)));
        }
        s.push_str(&format!("{k}{}:{}{v}", ws(d), ws(d)));
    }
    if !fields.is_empty() && d.is(40) {
        s.push(',');
    }
    s.push_str(&format!("{}}}", ws(d)));
    s
}

/// `null` or a string, now and then a number (a type serde refuses).
fn opt_string(d: &mut Draw<'_>) -> String {
    match d.n(12) {
        0 | 1 => "null".into(),
        2 => "\"\"".into(),
        3 if d.is(3) => number(d),
        _ => string(d),
    }
}

fn delta(d: &mut Draw<'_>) -> String {
    if d.is(20) {
        return ["null", "[]", "\"x\"", "[\"a\"]"][usize::from(d.n(4))].into();
    }
    let mut f = Vec::new();
    for name in ["content", "reasoning", "reasoning_content", "role"] {
        if d.n(3) != 0 {
            f.push((format!("\"{name}\""), opt_string(d)));
        }
    }
    if d.is(5) {
        let calls = match d.n(4) {
            0 => "null".to_owned(),
            1 => "[]".to_owned(),
            2 => "[ ]".to_owned(),
            _ => format!(
                r#"[{{"index":{},"id":"call-1","type":"function","function":{{"name":"f","arguments":{}}}}}]"#,
                d.n(2),
                string(d)
            ),
        };
        f.push(("\"tool_calls\"".into(), calls));
    }
    object(d, f)
}

fn index(d: &mut Draw<'_>) -> String {
    let odd = [
        "null",
        "-1",
        "-0",
        "1.0",
        "1e0",
        "01",
        "4294967295",
        "4294967296",
        "\"0\"",
        "99999999999",
    ];
    if d.is(8) {
        odd[usize::from(d.n(odd.len() as u16))].into()
    } else {
        d.n(3).to_string()
    }
}

fn choice(d: &mut Draw<'_>) -> String {
    let mut f = vec![("\"index\"".into(), index(d))];
    if d.n(4) != 0 {
        f.push(("\"delta\"".into(), delta(d)));
    }
    if d.is(3) {
        f.push(("\"text\"".into(), opt_string(d)));
    }
    let reason = ["null", "\"stop\"", "\"length\"", "\"\"", "\"tool_calls\""];
    f.push((
        "\"finish_reason\"".into(),
        reason[usize::from(d.n(5))].into(),
    ));
    f.push((
        "\"logprobs\"".into(),
        if d.is(6) { value(d, 3) } else { "null".into() },
    ));
    if d.is(3) {
        f.push(("\"stop_reason\"".into(), value(d, 1)));
    }
    object(d, f)
}

/// One chunk's JSON: vLLM's fields, then the variations.
fn chunk(d: &mut Draw<'_>) -> String {
    if d.is(40) {
        return [
            "{",
            "[]",
            "{\"choices\":[]} x",
            "not json",
            "{\"choices\":[{\"index\":0}",
        ][usize::from(d.n(5))]
        .into();
    }
    let mut f = vec![("\"id\"".into(), "\"chatcmpl-4f1c2b0e9a8d\"".into())];
    let object = [
        "\"chat.completion.chunk\"",
        "\"text_completion\"",
        "null",
        "\"error\"",
    ];
    f.push((
        "\"object\"".into(),
        object[usize::from(if d.is(25) { 3 } else { d.n(3) })].into(),
    ));
    f.push(("\"created\"".into(), number(d)));
    if d.n(4) != 0 {
        f.push(("\"model\"".into(), opt_string(d)));
    }
    let choices = match d.n(12) {
        0 => "null".to_owned(),
        1 => "[]".to_owned(),
        2 => format!("[{},{}]", choice(d), choice(d)),
        _ => format!("[{}{}{}]", ws(d), choice(d), ws(d)),
    };
    f.push(("\"choices\"".into(), choices));
    if d.is(6) {
        let usage = match d.n(3) {
            0 => "null".to_owned(),
            1 => r#"{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}"#.to_owned(),
            _ => r#"{"prompt_tokens":"x"}"#.to_owned(),
        };
        f.push(("\"usage\"".into(), usage));
    }
    if d.is(30) {
        f.push((
            "\"error\"".into(),
            ["null", r#"{"message":"boom","code":500}"#, "\"down\""][usize::from(d.n(3))].into(),
        ));
    }
    self::object(d, f)
}

/// A stream of drawn chunks (each as `data:` lines, split where the JSON has line breaks),
/// then `[DONE]` unless the draw says otherwise.
fn body(numbers: &[u16]) -> Vec<u8> {
    let mut d = Draw(numbers.iter());
    let mut out = String::new();
    for _ in 0..=d.n(5) {
        for line in chunk(&mut d).split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    if !d.is(5) {
        out.push_str("data: [DONE]\n\n");
    }
    out.into_bytes()
}

/// The layouts a stream repeats, each with `@` where a chunk's varying string goes: vLLM's
/// chat content, reasoning and completions text, llama.cpp's field order, spaced JSON.
const LAYOUTS: [&str; 6] = [
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":@},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"reasoning":@},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":@,"logprobs":null,"finish_reason":null,"stop_reason":null}]}"#,
    r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":@}}],"created":1,"id":"x","model":"m","system_fingerprint":"b1","object":"chat.completion.chunk"}"#,
    r#" { "choices" : [ { "index" : 1 , "delta" : { "reasoning_content" : @ , "role" : "assistant" } } ] } "#,
    r#"{"choices":[{"index":0,"delta":{"content":@,"reasoning":null}}],"usage":null}"#,
];

/// A stream of chunks of one layout whose varying string is drawn each time — now and then
/// broken in ways that move where the string ends (an unescaped quote, a trailing backslash,
/// the rest of the layout inside the string) — with now and then a chunk of another layout
/// or a finish chunk between them.
fn repeated(numbers: &[u16]) -> Vec<u8> {
    let mut d = Draw(numbers.iter());
    let layout = LAYOUTS[usize::from(d.n(LAYOUTS.len() as u16))];
    let mut out = String::new();
    for _ in 0..=d.n(12) {
        let hole = match d.n(16) {
            0 => "\"a\"b\"".to_owned(),
            1 => "\"a\\\"".to_owned(),
            2 => format!("\"{}\"", layout.split('@').nth(1).unwrap_or("")),
            3 => "\"x\"}],\"y\":\"".to_owned(),
            _ => string(&mut d),
        };
        let chunk = match d.n(20) {
            0 => chunk(&mut d),
            1 => layout.replace('@', "\"\"").replace("null}]", "\"stop\"}]"),
            2 => layout.replacen("\"m\"", "\"n\"", 1).replace('@', &hole),
            _ => layout.replace('@', &hole),
        };
        for line in chunk.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

fn decode(
    kind: StreamKind,
    fast: bool,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<String>, Option<String>, PushReport) {
    let mut dec = StreamDecoder::new(kind).with_fast_path(fast);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let (mut events, mut model, mut report) = (Vec::new(), None, PushReport::default());
    let mut at = 0;
    for c in cuts.into_iter().chain([input.len()]) {
        report += dec.push(&input[at..c]);
        at = c;
        events.extend(std::iter::from_fn(|| dec.poll_event()).map(|e| format!("{e:?}")));
        if model.is_none() {
            model = dec.model().map(str::to_owned);
        }
    }
    dec.finish();
    events.extend(std::iter::from_fn(|| dec.poll_event()).map(|e| format!("{e:?}")));
    (events, model, report)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    #[test]
    fn the_fast_path_hands_out_exactly_what_serde_does(
        numbers in prop::collection::vec(any::<u16>(), 0..400),
        cuts in prop::collection::vec(0usize..4000, 0..6),
        completions in any::<bool>(),
    ) {
        let input = body(&numbers);
        let kind = if completions { StreamKind::Completions } else { StreamKind::Chat };
        let serde = decode(kind, false, &input, &[]);
        prop_assert_eq!(&decode(kind, true, &input, &[]), &serde, "{}", String::from_utf8_lossy(&input));
        prop_assert_eq!(&decode(kind, true, &input, &cuts), &serde, "{}", String::from_utf8_lossy(&input));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// Chunks of one layout in a row are read by comparing bytes with the last one (see
    /// `stream::fast::Layout`): still exactly what serde reads.
    #[test]
    fn chunks_of_one_layout_give_what_serde_gives(
        numbers in prop::collection::vec(any::<u16>(), 0..300),
        cuts in prop::collection::vec(0usize..4000, 0..6),
        completions in any::<bool>(),
    ) {
        let input = repeated(&numbers);
        let kind = if completions { StreamKind::Completions } else { StreamKind::Chat };
        let serde = decode(kind, false, &input, &[]);
        prop_assert_eq!(&decode(kind, true, &input, &[]), &serde, "{}", String::from_utf8_lossy(&input));
        prop_assert_eq!(&decode(kind, true, &input, &cuts), &serde, "{}", String::from_utf8_lossy(&input));
    }
}

/// The generator reaches what it is meant to: plain vLLM chunks (read by the scanner, checked
/// in `stream::fast`'s unit tests), escapes, and every kind of failure serde reports.
#[test]
fn the_generator_covers_successes_and_every_failure() {
    let mut seen = [false; 5];
    for seed in 0u64..3_000 {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let numbers: Vec<u16> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u16
            })
            .collect();
        let (events, _, _) = decode(StreamKind::Chat, true, &body(&numbers), &[]);
        let last = events.last().cloned().unwrap_or_default();
        seen[0] |= events.iter().any(|e| e.starts_with("Content("));
        seen[1] |= last == "Done";
        seen[2] |= last.contains("Decode");
        seen[3] |= last.contains("Api(");
        seen[4] |= events.iter().any(|e| e.starts_with("Usage("));
    }
    assert_eq!(
        seen, [true; 5],
        "content, done, decode error, API error, usage"
    );
}
