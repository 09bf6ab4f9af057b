//! The chat-chunk fast path: a scanner for the one shape vLLM (and the servers that copy it)
//! sends hundreds of times per answer, reading `choices[0]`'s `index`, `delta.content`,
//! `delta.reasoning`, `delta.reasoning_content`, `text` and `finish_reason`, and the chunk's
//! `model`, straight from the event's bytes.
//!
//! The rule that makes it safe: [`scan`] answers only when it is sure that `serde_json` would
//! read the same text into the same values; whenever it is not, it answers `None` and the
//! caller reads the chunk with serde as before. So it never has to get an unusual chunk right,
//! only to notice it. It answers `None` for:
//!
//! - anything that is not one JSON object with only JSON whitespace around it;
//! - an `error` field, an `object` of `"error"` (the error paths stay serde's);
//! - a non-null `usage`, `tool_calls` other than `null` or `[]`, more than one choice;
//! - a duplicate known field (serde rejects it), a key holding an escape or a control
//!   character (serde would unescape it);
//! - a known field of a type serde would reject (`"content": 5`, `"index": -1`, `"index": 1.0`,
//!   `"index": 07`, an index above `u32::MAX`, an object or array where a struct is expected —
//!   serde also reads a struct from an array);
//! - in a string it keeps: a raw control character, an unknown escape, a lone or reversed
//!   surrogate; in a string it skips: a raw control character, an unknown escape, `\u`
//!   without four hex digits (serde does not check surrogates there either);
//! - a number it skips that is not JSON's grammar (`01`, `1.`, `-`, `1e`);
//! - unknown values nested deeper than [`json::MAX_SKIP_DEPTH`] (far below serde's limit of 128).
//!
//! Unknown fields of any other JSON value are skipped after checking their syntax exactly as
//! serde does when it ignores a value (`IgnoredAny`), so a chunk serde would refuse is never
//! accepted here. `fuzz/fuzz_targets/stream_fast.rs` checks all of this against serde on
//! arbitrary input, and `core/tests/stream_fast.rs` on generated chunks.

use super::wire::{Choice, Delta, Text};
use smallvec::SmallVec;

mod json;

use json::{has_key, special};

/// What the scanner read from a chunk.
#[derive(Debug)]
pub(super) struct Fast<'a> {
    /// The chunk's `model`.
    pub(super) model: Option<Text<'a>>,
    /// Its one choice (`None`: no choices, `"choices": []` or `null`).
    pub(super) choice: Option<Choice<'a>>,
}

/// The keys of an object the scanner reads, each written as it appears in vLLM's chunks
/// (quotes and colon included), in vLLM's order: the field at position `n` is first compared
/// with the `n`-th key as a whole, so a chunk in vLLM's layout needs no key scanning at all.
/// Any other layout is read too, key by key (the order is only a guess).
type Keys = [&'static [u8]];

/// A field's key: its index in the object's [`Keys`], or [`UNKNOWN`].
const UNKNOWN: usize = usize::MAX;

const TOP: &Keys = &[
    b"\"id\":",
    b"\"object\":",
    b"\"created\":",
    b"\"model\":",
    b"\"choices\":",
    b"\"usage\":",
    b"\"error\":",
];
const CHOICE: &Keys = &[
    b"\"index\":",
    b"\"delta\":",
    b"\"logprobs\":",
    b"\"finish_reason\":",
    b"\"text\":",
];
const DELTA: &Keys = &[
    b"\"content\":",
    b"\"reasoning\":",
    b"\"reasoning_content\":",
    b"\"tool_calls\":",
];

/// The string of a chunk that varies from chunk to chunk of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Content,
    Reasoning,
    ReasoningContent,
    Text,
}

/// The layout of the last chunk the scanner read, when it is the common one: one choice whose
/// only text is one string (`delta.content`, `delta.reasoning`, `delta.reasoning_content` or
/// `text`), no `finish_reason`. The chunks of one answer differ in that string alone (vLLM
/// repeats `id`, `object`, `created`, `model`, `index`, `logprobs: null` and
/// `finish_reason: null` verbatim), so the next chunk is read by comparing its bytes before
/// and after the string with this one's and scanning only the string.
///
/// Why that gives exactly what a full scan gives: the scanner's state when it reaches the
/// string depends only on the bytes before it (it never looks past a token), so identical bytes
/// bring it to the string in the same state; the string is then scanned as always and must end
/// at the same place relative to the end of the chunk; what follows is the same bytes again,
/// read in the same state, since nothing after the string depends on its value. The result is
/// the last chunk's, with the new string. The chunk's `model` is handed over as `None`: the
/// decoder kept the last chunk's `model` already (or it had none), and takes the first one only.
/// The bytes of a layout kept inline (a vLLM chunk is about 200 bytes around its text).
const LAYOUT_INLINE: usize = 256;

#[derive(Debug, Default)]
#[repr(C)]
pub(super) struct Layout {
    slot: Option<Slot>,
    index: Option<u32>,
    /// Whether the chunk had a `delta` object.
    delta: bool,
    /// Where the closing quote starts in `bytes`.
    split: usize,
    /// The bytes before the string and its opening quote, then its closing quote and the bytes
    /// after it; empty when the last chunk had no such layout. Inline up to a vLLM chunk's
    /// usual size: compared on every chunk, they then follow the decoder's other fields
    /// instead of sitting in an allocation of their own (one cache miss fewer per chunk).
    bytes: SmallVec<[u8; LAYOUT_INLINE]>,
}

impl Layout {
    /// What the chunk `text` holds if it has the last chunk's layout.
    #[inline]
    fn reuse<'a>(&self, text: &'a str) -> Option<Fast<'a>> {
        let slot = self.slot?;
        let (before, after) = self.bytes.split_at(self.split);
        let b = text.as_bytes();
        if b.len() < self.bytes.len() || !b.starts_with(before) || !b.ends_with(after) {
            return None;
        }
        let mut s = Scanner {
            text,
            b,
            i: before.len() - 1,
            hole: None,
        };
        let value = Text(s.string()?);
        if s.i != b.len() - after.len() + 1 {
            return None;
        }
        let mut choice = Choice {
            index: self.index,
            delta: self.delta.then(Delta::default),
            ..Choice::default()
        };
        match (slot, &mut choice.delta) {
            (Slot::Content, Some(d)) => d.content = Some(value),
            (Slot::Reasoning, Some(d)) => d.reasoning = Some(value),
            (Slot::ReasoningContent, Some(d)) => d.reasoning_content = Some(value),
            (Slot::Text, _) => choice.text = Some(value),
            _ => return None,
        }
        Some(Fast {
            model: None,
            choice: Some(choice),
        })
    }

    /// Keeps `text`'s layout, if it has the common one, for the next chunk.
    fn keep(&mut self, text: &str, fast: &Fast<'_>, hole: Option<(Slot, usize, usize)>) {
        self.slot = None;
        let (Some(c), Some((slot, open, close))) = (&fast.choice, hole) else {
            return;
        };
        let texts = [
            c.delta.as_ref().map_or(0, |d| {
                usize::from(d.content.is_some())
                    + usize::from(d.reasoning.is_some())
                    + usize::from(d.reasoning_content.is_some())
            }),
            usize::from(c.text.is_some()),
        ];
        if texts[0] + texts[1] != 1 || c.finish_reason.is_some() {
            return;
        }
        let b = text.as_bytes();
        self.bytes.clear();
        self.bytes.extend_from_slice(&b[..=open]);
        self.split = self.bytes.len();
        self.bytes.extend_from_slice(&b[close..]);
        self.slot = Some(slot);
        self.index = c.index;
        self.delta = c.delta.is_some();
    }
}

/// Reads `text` if it is a chunk of the common shape (see the [module docs](self)); `None`
/// leaves it to serde. `layout` is the last chunk's (see [`Layout`]), updated.
pub(super) fn scan<'a>(text: &'a str, layout: &mut Layout) -> Option<Fast<'a>> {
    if let Some(fast) = layout.reuse(text) {
        return Some(fast);
    }
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: 0,
        hole: None,
    };
    let mut fast = Fast {
        model: None,
        choice: None,
    };
    let read = s.object(TOP, |s, key| {
        match key {
            1 => {
                let mut object = None;
                s.opt_text(&mut object)?;
                if object.is_some_and(|o| o.0 == "error") {
                    return None;
                }
            }
            3 => s.opt_text(&mut fast.model)?,
            4 => s.choices(&mut fast.choice)?,
            5 => s.null()?,
            6 => return None,
            _ => s.skip(1)?,
        }
        Some(())
    });
    s.ws();
    if read.is_none() || s.i != s.b.len() {
        layout.slot = None;
        return None;
    }
    layout.keep(text, &fast, s.hole);
    Some(fast)
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    /// The last text string read (of a slot that varies per chunk): its slot, where its
    /// opening quote is and where its closing quote is.
    hole: Option<(Slot, usize, usize)>,
}

impl<'a> Scanner<'a> {
    /// An object whose fields go to `field` with the index of their key in `keys` (or
    /// [`UNKNOWN`]), after the colon and any whitespace; `field` reads the value. A known key
    /// seen twice is left to serde (which refuses it).
    #[inline]
    fn object<F>(&mut self, keys: &Keys, mut field: F) -> Option<()>
    where
        F: FnMut(&mut Self, usize) -> Option<()>,
    {
        self.eat(b'{')?;
        if self.peek_ws()? == b'}' {
            self.i += 1;
            return Some(());
        }
        let mut seen = 0u32;
        let mut n = 0;
        loop {
            let key = match keys.get(n) {
                Some(k) if has_key(self.b, self.i, k) => {
                    self.i += k.len();
                    n
                }
                _ => {
                    let key = self.key()?;
                    self.eat(b':')?;
                    keys.iter()
                        .position(|k| k.get(1..k.len() - 2) == Some(key))
                        .unwrap_or(UNKNOWN)
                }
            };
            if key != UNKNOWN {
                let bit = 1 << key;
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
            }
            n += 1;
            self.peek_ws()?;
            field(self, key)?;
            match self.peek_ws()? {
                b',' => {
                    self.i += 1;
                    self.peek_ws()?;
                }
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A key (at its opening quote) with no escape and no control character, without its
    /// quotes.
    #[inline]
    fn key(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let end = special(self.b, start);
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.i = end + 1;
        self.b.get(start..end)
    }

    /// `"choices"`: `null`, `[]` or one choice (into `out`).
    #[inline]
    fn choices(&mut self, out: &mut Option<Choice<'a>>) -> Option<()> {
        if self.lit(b"null") {
            return Some(());
        }
        self.eat(b'[')?;
        if self.peek_ws()? == b']' {
            self.i += 1;
            return Some(());
        }
        self.choice(out.insert(Choice::default()))?;
        // A second choice (`n > 1` in one chunk) is left to serde.
        self.eat(b']')
    }

    #[inline]
    fn choice(&mut self, c: &mut Choice<'a>) -> Option<()> {
        self.object(CHOICE, |s, key| {
            match key {
                0 => c.index = s.opt_index()?,
                1 => s.delta(&mut c.delta)?,
                3 => s.opt_text(&mut c.finish_reason)?,
                4 => s.slot_text(Slot::Text, &mut c.text)?,
                _ => s.skip(3)?,
            }
            Some(())
        })
    }

    /// `"delta"`: `null`, or an object without tool calls (into `out`).
    #[inline]
    fn delta(&mut self, out: &mut Option<Delta<'a>>) -> Option<()> {
        if self.lit(b"null") {
            return Some(());
        }
        let d = out.insert(Delta::default());
        self.object(DELTA, |s, key| {
            match key {
                0 => s.slot_text(Slot::Content, &mut d.content)?,
                1 => s.slot_text(Slot::Reasoning, &mut d.reasoning)?,
                2 => s.slot_text(Slot::ReasoningContent, &mut d.reasoning_content)?,
                3 => {
                    // `null` and `[]` say nothing; fragments are serde's.
                    if !s.lit(b"null") {
                        s.eat(b'[')?;
                        s.eat(b']')?;
                    }
                }
                _ => s.skip(4)?,
            }
            Some(())
        })
    }

    /// `null` or a `u32` written as serde reads one: digits, no sign, no leading zero, no
    /// fraction or exponent.
    #[inline]
    fn opt_index(&mut self) -> Option<Option<u32>> {
        if self.lit(b"null") {
            return Some(None);
        }
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            v = v * 10 + u64::from(d - b'0');
            self.i += 1;
            if self.i - start > 10 {
                return None;
            }
        }
        let digits = self.i - start;
        if digits == 0 || (digits > 1 && self.b[start] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        u32::try_from(v).ok().map(Some)
    }

    /// `null` or a string, into `out`.
    #[inline]
    fn opt_text(&mut self, out: &mut Option<Text<'a>>) -> Option<()> {
        match self.peek()? {
            b'"' => *out = Some(Text(self.string()?)),
            b'n' if self.lit(b"null") => *out = None,
            _ => return None,
        }
        Some(())
    }

    /// `null` or a string of `slot` into `out`, noting where a string was.
    #[inline]
    fn slot_text(&mut self, slot: Slot, out: &mut Option<Text<'a>>) -> Option<()> {
        let open = self.i;
        self.opt_text(out)?;
        if out.is_some() {
            self.hole = Some((slot, open, self.i - 1));
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// A chunk read on its own (no earlier layout).
    fn scan1(text: &str) -> Option<Fast<'_>> {
        scan(text, &mut Layout::default())
    }

    /// vLLM's chunk around a delta.
    fn vllm(delta: &str, finish: &str) -> String {
        format!(
            r#"{{"id":"chatcmpl-4f1c2b0e9a8d","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen3-8B","choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]}}"#
        )
    }

    fn content(f: &Fast<'_>) -> Option<String> {
        let d = f.choice.as_ref()?.delta.as_ref()?;
        d.content.as_ref().map(|t| t.0.clone().into_owned())
    }

    #[test]
    fn reads_vllms_chunks_and_borrows_plain_text() {
        let text = vllm(r#"{"content":"Hello"}"#, "null");
        let f = scan1(&text).expect("the common shape");
        assert_eq!(f.model.as_ref().map(|m| &*m.0), Some("Qwen/Qwen3-8B"));
        let c = f.choice.as_ref().unwrap();
        assert_eq!(c.index, Some(0));
        assert!(c.finish_reason.is_none());
        assert!(matches!(
            c.delta.as_ref().unwrap().content,
            Some(Text(Cow::Borrowed("Hello")))
        ));
        // The role chunk, the finish chunk, reasoning, llama.cpp's nulls, completions' text.
        for text in [
            vllm(r#"{"role":"assistant","content":""}"#, "null"),
            vllm(r#"{}"#, r#""stop""#),
            vllm(r#"{"reasoning":"hm"}"#, "null"),
            vllm(r#"{"reasoning_content":"hm","content":null}"#, "null"),
            vllm(r#"{"content":"x","tool_calls":[]}"#, "null"),
            r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" the","logprobs":null,"finish_reason":null,"stop_reason":null}]}"#.to_owned(),
            r#"{"choices":[],"usage":null}"#.to_owned(),
            r#" { "choices" : [ { "index" : 0 , "delta" : { "content" : "a" } } ] } "#.to_owned(),
        ] {
            assert!(scan1(&text).is_some(), "{text}");
        }
    }

    #[test]
    fn decodes_every_escape_as_serde_does() {
        let raw = r#""a\"b\\c\/d\be\ff\ng\rh\ti\u00e9\u4f60\ud83d\ude00\u0000""#;
        let text = vllm(&format!(r#"{{"content":{raw}}}"#), "null");
        let want: String = serde_json::from_str(raw).unwrap();
        assert_eq!(content(&scan1(&text).unwrap()).unwrap(), want);
    }

    #[test]
    fn leaves_what_it_is_not_sure_of_to_serde() {
        let reject = [
            // Not one object.
            "",
            "[]",
            r#"{"choices":[]} x"#,
            "\u{c}{}",
            r#"{"choices":[],}"#,
            r#"{"choices":[] "model":"m"}"#,
            // Errors, usage, tool calls, several choices.
            r#"{"error":null}"#,
            r#"{"object":"error","message":"boom"}"#,
            r#"{"object":"err\u006fr"}"#,
            r#"{"usage":{"prompt_tokens":1}}"#,
            &vllm(r#"{"tool_calls":[{"index":0}]}"#, "null"),
            r#"{"choices":[{"index":0},{"index":1}]}"#,
            // Duplicates and escaped keys.
            r#"{"model":"a","model":"b"}"#,
            &vllm(r#"{"content":"a","content":"b"}"#, "null"),
            r#"{"cho\u0069ces":[]}"#,
            // Types serde refuses or reads otherwise.
            &vllm(r#"{"content":5}"#, "null"),
            &vllm(r#"["a"]"#, "null"),
            r#"{"choices":[{"index":-0}]}"#,
            r#"{"choices":[{"index":1.0}]}"#,
            r#"{"choices":[{"index":1e0}]}"#,
            r#"{"choices":[{"index":01}]}"#,
            r#"{"choices":[{"index":4294967296}]}"#,
            r#"{"choices":[{"index":"0"}]}"#,
            r#"{"choices":{}}"#,
            // Strings: control characters, bad escapes, lone surrogates.
            &vllm("{\"content\":\"a\u{1}\"}", "null"),
            &vllm(r#"{"content":"\x"}"#, "null"),
            &vllm(r#"{"content":"\ud800"}"#, "null"),
            &vllm(r#"{"content":"\ud800\u0041"}"#, "null"),
            &vllm(r#"{"content":"\udc00"}"#, "null"),
            &vllm(r#"{"content":"\u12"}"#, "null"),
            r#"{"id":"a\qb","choices":[]}"#,
            r#"{"id":"\u12x4","choices":[]}"#,
            // Numbers outside JSON's grammar.
            r#"{"created":01}"#,
            r#"{"created":1.}"#,
            r#"{"created":-}"#,
            r#"{"created":1e}"#,
            r#"{"created":+1}"#,
            r#"{"created":.5}"#,
            // Literals that are not.
            r#"{"x":nul}"#,
            r#"{"x":True}"#,
        ];
        for text in reject {
            assert!(scan1(text).is_none(), "{text}");
        }
    }

    #[test]
    fn skips_unknown_values_serde_accepts() {
        let accept = [
            r#"{"created":-0.5e+10,"x":[1,[2,{"a":"\ud800"}],{}],"y":true,"z":false,"w":{}}"#,
            r#"{"id":"\u12aB","choices":null}"#,
            r#"{"system_fingerprint":null,"prompt_token_ids":[1,2,3]}"#,
            &vllm(
                r#"{"content":"a"}"#,
                r#""stop","stop_reason":128001,"token_ids":[9]"#,
            ),
        ];
        for text in accept {
            assert!(scan1(text).is_some(), "{text}");
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok());
        }
        // Nesting beyond the skip depth is serde's to read.
        let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(40), "]".repeat(40));
        assert!(scan1(&deep).is_none());
        let shallow = format!(r#"{{"x":{}{}}}"#, "[".repeat(20), "]".repeat(20));
        assert!(scan1(&shallow).is_some());
    }

    #[test]
    fn the_next_chunk_of_a_layout_is_read_by_comparing_bytes() {
        let mut layout = Layout::default();
        let first = vllm(r#"{"content":"Hello"}"#, "null");
        assert!(scan(&first, &mut layout).is_some());
        // The same layout with another string (escapes too): read from the kept layout.
        for next in [r#""tok ""#, r#""a\"b\\ \u00e9""#, r#""""#] {
            let text = vllm(&format!(r#"{{"content":{next}}}"#), "null");
            let f = layout.reuse(&text).expect("same layout");
            assert!(f.model.is_none());
            let want: String = serde_json::from_str(next).unwrap();
            assert_eq!(content(&f).unwrap(), want);
            assert_eq!(content(&scan(&text, &mut layout).unwrap()).unwrap(), want);
        }
        // Not the layout: a string that ends early, one that runs on, another model, the
        // finish chunk (which is not kept), a chunk with two texts.
        for other in [
            vllm(r#"{"content":"a"b"}"#, "null"),
            vllm(r#"{"content":"a\"}"#, "null"),
            vllm(r#"{"content":"x"}"#, "null").replace("Qwen", "Owen"),
            vllm(r#"{"content":""}"#, r#""stop""#),
        ] {
            assert!(layout.reuse(&other).is_none(), "{other}");
        }
        assert!(scan(&vllm(r#"{"content":""}"#, r#""stop""#), &mut layout).is_some());
        assert!(layout.reuse(&vllm(r#"{"content":"x"}"#, "null")).is_none());
        let two = vllm(r#"{"reasoning":"r","content":"c"}"#, "null");
        assert!(scan(&two, &mut layout).is_some());
        assert!(layout.reuse(&two).is_none());
    }

    proptest::proptest! {
        /// Any text serde_json writes into vLLM's chunk is read by the scanner (never left to
        /// serde) and comes out as the same text, as content, reasoning or completions text.
        #[test]
        fn reads_any_text_serde_writes(text in ".{0,40}", field in 0usize..3) {
            let q = serde_json::to_string(&text).unwrap();
            let chunk = match field {
                0 => vllm(&format!(r#"{{"content":{q}}}"#), "null"),
                1 => vllm(&format!(r#"{{"reasoning":{q}}}"#), "null"),
                _ => format!(r#"{{"object":"text_completion","choices":[{{"index":0,"text":{q}}}]}}"#),
            };
            let f = scan1(&chunk).expect("the common shape");
            let c = f.choice.unwrap();
            let got = match field {
                0 => c.delta.unwrap().content,
                1 => c.delta.unwrap().reasoning,
                _ => c.text,
            };
            proptest::prop_assert_eq!(got.map(|t| t.0.into_owned()), Some(text));
        }
    }
}
