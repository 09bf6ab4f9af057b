//! Benchmark helpers: deterministic inputs shaped like what vLLM sends.

/// Words of the generated answer: mostly short ASCII pieces, some multibyte text and some
/// characters JSON must escape, as a tokenizer's deltas are.
const PIECES: &[&str] = &[
    "The",
    " answer",
    " is",
    " 42",
    ".",
    " Let",
    " me",
    " explain",
    ":",
    " first",
    ",",
    " the",
    " model",
    " reads",
    " tokens",
    " 你好",
    "世界",
    " café",
    " naïve",
    " 😀",
    "\n",
    "\n\n",
    " \"quoted\"",
    " back\\slash",
    "\t",
    " résumé",
    " Grüße",
    " дом",
    " 東京",
    "-",
    " x",
];

/// A tiny deterministic generator, so every run measures the same bytes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A streamed vLLM chat completion of about `target` bytes: a role chunk, some reasoning
/// deltas, many short content deltas (1–3 pieces each), a finish chunk, a usage chunk and
/// `[DONE]`, each as `data: {…}\n\n` with the exact field layout of vLLM's server.
/// Also returns the concatenated content, to check decoders against.
pub fn vllm_chat_stream(target: usize) -> (Vec<u8>, String) {
    let mut rng = Lcg(0x5eed);
    let head = r#"{"id":"chatcmpl-4f1c2b0e9a8d4c7fb6e5d4c3b2a19087","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":"#;
    let tail = r#","logprobs":null,"finish_reason":null}]}"#;
    let mut out = String::with_capacity(target + 4096);
    let mut content = String::new();
    let event = |out: &mut String, delta: &str| {
        out.push_str("data: ");
        out.push_str(head);
        out.push_str(delta);
        out.push_str(tail);
        out.push_str("\n\n");
    };
    event(&mut out, r#"{"role":"assistant","content":""}"#);
    for _ in 0..200 {
        let p = PIECES[rng.next() as usize % PIECES.len()];
        event(&mut out, &format!(r#"{{"reasoning":{}}}"#, json_str(p)));
    }
    while out.len() < target {
        let mut text = String::new();
        for _ in 0..=(rng.next() % 3) {
            text.push_str(PIECES[rng.next() as usize % PIECES.len()]);
        }
        event(&mut out, &format!(r#"{{"content":{}}}"#, json_str(&text)));
        content.push_str(&text);
    }
    out.push_str(r#"data: {"id":"chatcmpl-4f1c2b0e9a8d4c7fb6e5d4c3b2a19087","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}"#);
    out.push_str("\n\n");
    out.push_str(r#"data: {"id":"chatcmpl-4f1c2b0e9a8d4c7fb6e5d4c3b2a19087","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen3-8B","choices":[],"usage":{"prompt_tokens":12,"total_tokens":90000,"completion_tokens":89988}}"#);
    out.push_str("\n\ndata: [DONE]\n\n");
    (out.into_bytes(), content)
}

/// One `data:` line of `len` bytes of text (no line end inside), then the blank line.
pub fn one_long_data_line(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    out.extend_from_slice(b"data: ");
    let pattern = b"The quick brown fox jumps over the lazy dog. ";
    while out.len() < len + 6 {
        out.extend_from_slice(pattern);
    }
    out.truncate(len + 6);
    out.extend_from_slice(b"\n\n");
    out
}
