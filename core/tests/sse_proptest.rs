//! Property tests of the SSE decoder: any chunking of any input gives the same items as feeding
//! it whole, and those items are what a naive reading of the WHATWG algorithm gives.

use proptest::prelude::*;
use vllm_client_core::sse::{SseDecoder, SseError, SseEvent, SseItem, SseLimits};

/// Pieces that exercise every rule: line ends, BOMs, fields, comments, multibyte and broken
/// UTF-8, NUL, digits.
const PIECES: &[&[u8]] = &[
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"\xEF\xBB\xBF",
    b"\xEF",
    b"\xBB",
    b"data",
    b"data:",
    b"data: ",
    b"event:",
    b"event: ping",
    b"id:",
    b"id: 7",
    b"\0",
    b"retry:",
    b"retry: 12",
    b":",
    b": keep-alive",
    b" ",
    b"x",
    b"[DONE]",
    "你好".as_bytes(),
    b"\xe4\xbd",
    b"\xa0",
    b"\xff",
    b"1",
    b"{\"a\":1}",
];

fn soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|v| v.concat())
}

fn splits() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..1000, 0..8)
}

/// Items and the (single) error, after feeding `chunks` and finishing.
fn decode(limits: SseLimits, input: &[u8], cuts: &[usize]) -> Vec<Result<SseItem, SseError>> {
    let mut dec = SseDecoder::new().with_limits(limits);
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|c| c % (input.len() + 1))
        .collect::<Vec<_>>();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts.into_iter().chain([input.len()]) {
        dec.push(&input[at..c]);
        at = c;
        assert!(dec.buffered_bytes() <= limits.max_line * 2 + limits.max_event);
        // Poll as we go, as a driver does: interleaving must not change anything.
        while let Some(Ok(item)) = dec.poll() {
            out.push(Ok(item));
        }
    }
    dec.finish();
    while let Some(item) = dec.poll() {
        let stop = item.is_err();
        out.push(item);
        if stop {
            break;
        }
    }
    out
}

/// The WHATWG algorithm read literally: decode the whole stream, strip one BOM, split lines,
/// interpret fields, drop the unterminated tail.
fn oracle(input: &[u8]) -> Vec<SseItem> {
    let text = String::from_utf8_lossy(input);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    let mut lines = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut cur));
            }
            '\n' => lines.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let (mut data, mut event, mut id) = (String::new(), String::new(), String::new());
    let mut out = Vec::new();
    for line in lines {
        if line.is_empty() {
            if data.is_empty() {
                event.clear();
                continue;
            }
            data.pop();
            out.push(SseItem::Event(SseEvent {
                event: (!event.is_empty()).then(|| event.clone()),
                data: std::mem::take(&mut data),
                id: (!id.is_empty()).then(|| id.clone()),
            }));
            event.clear();
        } else if let Some(c) = line.strip_prefix(':') {
            out.push(SseItem::Comment(c.to_owned()));
        } else {
            let (name, value) = match line.split_once(':') {
                Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match name {
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "event" => event = value.to_owned(),
                "id" if !value.contains('\0') => id = value.to_owned(),
                "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    let ms = value.bytes().fold(0u64, |a, d| {
                        a.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                    });
                    out.push(SseItem::Retry(ms));
                }
                _ => {}
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn any_split_gives_the_same_items(input in soup(), cuts in splits()) {
        let limits = SseLimits::default();
        prop_assert_eq!(decode(limits, &input, &cuts), decode(limits, &input, &[]));
    }

    #[test]
    fn items_match_the_standard_read_literally(input in soup(), cuts in splits()) {
        let got = decode(SseLimits::default(), &input, &cuts);
        let want: Vec<_> = oracle(&input).into_iter().map(Ok).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn any_split_gives_the_same_items_and_errors_under_small_limits(
        input in soup(),
        cuts in splits(),
        max_line in 0usize..24,
        max_event in 0usize..48,
    ) {
        let limits = SseLimits::new(max_line, max_event);
        prop_assert_eq!(decode(limits, &input, &cuts), decode(limits, &input, &[]));
    }
}
