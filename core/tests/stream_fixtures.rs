//! The decoders over streams captured from real servers (LiteLLM, llama-cpp-python, llama.cpp's
//! llama-server): see `fixtures/` (copied from the project's shared captures).

use vllm_client_core::stream::StreamDecoder;
use vllm_client_core::{StreamEvent, VllmError};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The HTTP/1.1 chunks of a `.rawchunked` capture, as the network delivered them.
fn http_chunks(raw: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&rest[..eol]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        rest = &rest[eol + 2..];
        if size == 0 {
            return out;
        }
        out.push(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n");
        rest = &rest[size + 2..];
    }
}

struct Summary {
    content: String,
    finishes: Vec<String>,
    total_tokens: Option<u64>,
    events: Vec<StreamEvent>,
}

fn decode(mut dec: StreamDecoder, chunks: &[&[u8]]) -> Summary {
    for c in chunks {
        dec.push(c);
    }
    dec.finish();
    let events: Vec<_> = std::iter::from_fn(|| dec.poll_event()).collect();
    let mut s = Summary {
        content: String::new(),
        finishes: vec![],
        total_tokens: None,
        events: vec![],
    };
    for e in &events {
        match e {
            StreamEvent::Content(t) => s.content.push_str(t),
            StreamEvent::Finish { reason, .. } => s.finishes.push(reason.clone()),
            StreamEvent::Usage(u) => s.total_tokens = Some(u.total_tokens),
            _ => {}
        }
    }
    s.events = events;
    s
}

fn assert_done(s: &Summary) {
    assert!(
        matches!(s.events.last(), Some(StreamEvent::Done)),
        "{:?}",
        s.events.last()
    );
    assert_eq!(s.events.iter().filter(|e| e.is_terminal()).count(), 1);
}

/// Whole, in its real HTTP chunks where captured, and one byte at a time: same result.
fn check(name: &str, new: fn() -> StreamDecoder, content: &str, finish: &str, total: Option<u64>) {
    let body = fixture(&format!("{name}.body"));
    let one_byte: Vec<&[u8]> = body.chunks(1).collect();
    for s in [decode(new(), &[&body]), decode(new(), &one_byte)] {
        assert_eq!(s.content, content, "{name}");
        assert_eq!(s.finishes, [finish], "{name}");
        assert_eq!(s.total_tokens, total, "{name}");
        assert_done(&s);
    }
}

#[test]
fn litellm_chat() {
    let want = "Hello from the LiteLLM mock backend.";
    check(
        "litellm_chat_stream",
        StreamDecoder::chat,
        want,
        "stop",
        None,
    );
    check(
        "litellm_chat_stream_stop",
        StreamDecoder::chat,
        want,
        "stop",
        None,
    );
    check(
        "litellm_chat_stream_usage",
        StreamDecoder::chat,
        want,
        "stop",
        Some(18),
    );
    // LiteLLM sends (zero) usage on every completions chunk.
    check(
        "litellm_completions_stream",
        StreamDecoder::completions,
        want,
        "stop",
        Some(0),
    );
}

#[test]
fn llamacpp_python_chat() {
    let want = " sing run hot with take three five slow";
    check(
        "llamacpp_chat_stream",
        StreamDecoder::chat,
        want,
        "length",
        None,
    );
    check(
        "llamacpp_chat_stream_stop",
        StreamDecoder::chat,
        " sing run hot with take three five ",
        "stop",
        None,
    );
    check(
        "llamacpp_chat_stream_usage",
        StreamDecoder::chat,
        " sing run hot",
        "length",
        None,
    );
    check(
        "llamacpp_completions_stream",
        StreamDecoder::completions,
        " any no world at token seven",
        "length",
        None,
    );
}

#[test]
fn llama_server_chat() {
    let want = " sing run hot with take three five slow";
    check(
        "llamaserver_chat_stream",
        StreamDecoder::chat,
        want,
        "length",
        None,
    );
    check(
        "llamaserver_chat_stream_stop",
        StreamDecoder::chat,
        " sing run hot with take three five ",
        "stop",
        None,
    );
    check(
        "llamaserver_chat_stream_usage",
        StreamDecoder::chat,
        " sing run hot",
        "length",
        Some(34),
    );
    check(
        "llamaserver_completions_stream",
        StreamDecoder::completions,
        " any no world at token seven",
        "length",
        Some(13),
    );
}

#[test]
fn real_http_chunks_of_all_three_servers() {
    for (name, want) in [
        (
            "litellm_chat_stream",
            "Hello from the LiteLLM mock backend.",
        ),
        ("llamacpp_chat_stream", " sing run hot with"), // a shorter capture than the .body
        ("llamaserver_chat_stream", " sing run hot with"),
    ] {
        let raw = fixture(&format!("{name}.rawchunked"));
        let chunks = http_chunks(&raw);
        assert!(chunks.len() > 1, "{name}");
        let s = decode(StreamDecoder::chat(), &chunks);
        assert_eq!(s.content, want, "{name}");
        assert_done(&s);
    }
}

#[test]
fn llamacpp_python_context_overflow_is_an_empty_200_body_so_truncated() {
    let body = fixture("llamacpp_err_context_overflow_stream.body");
    assert!(body.is_empty());
    let s = decode(StreamDecoder::chat(), &[&body]);
    assert!(matches!(
        &s.events[..],
        [StreamEvent::Error(VllmError::Truncated)]
    ));
}

#[test]
fn litellm_context_overflow_stream_is_a_normal_completion() {
    let s = decode(
        StreamDecoder::completions(),
        &[&fixture("litellm_err_context_overflow_stream.body")],
    );
    assert_eq!(s.content, "Hello from the LiteLLM mock backend.");
    assert_done(&s);
}

#[test]
fn json_error_bodies_fed_as_a_stream_are_never_success() {
    // These came with a non-2xx status, which the call driver handles before any stream
    // decoding; should such a body reach the decoder anyway, it is not a successful stream.
    for name in [
        "litellm_err_stream_error_model",
        "llamaserver_err_context_overflow_stream",
    ] {
        let s = decode(StreamDecoder::chat(), &[&fixture(&format!("{name}.body"))]);
        assert!(
            matches!(&s.events[..], [StreamEvent::Error(VllmError::Truncated)]),
            "{name}"
        );
    }
}
