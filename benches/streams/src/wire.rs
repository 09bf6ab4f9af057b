//! What the loopback server sends: vLLM-shaped chat completion chunks, and the modes.

/// One token's text. Every content delta of every mode is this.
pub const TOKEN: &str = "tok ";

/// The request body the bare reqwest client sends (the others build their own).
pub const REQUEST_BODY: &str =
    r#"{"model":"bench-model","messages":[{"role":"user","content":"hi"}],"stream":true}"#;

/// The role chunk vLLM sends first (empty content).
pub const ROLE_EVENT: &str = "data: {\"id\":\"chatcmpl-bench0123456789\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";

/// One token's chunk.
pub const TOKEN_EVENT: &str = "data: {\"id\":\"chatcmpl-bench0123456789\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok \"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";

/// The finish chunk, then the end of the stream.
pub const FINISH_EVENTS: &str = "data: {\"id\":\"chatcmpl-bench0123456789\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

/// How the server streams each answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 200 tokens, one event per write, 20 ms apart (vLLM decoding for one sequence).
    Paced,
    /// 200 000 tokens, 64 events per write, as fast as the socket takes them.
    Fast,
    /// 5 tokens, one event per write, no pacing (for the admission-queue benchmark).
    Short,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "paced" => Some(Mode::Paced),
            "fast" => Some(Mode::Fast),
            "short" => Some(Mode::Short),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Paced => "paced",
            Mode::Fast => "fast",
            Mode::Short => "short",
        }
    }

    /// Content tokens per answer.
    pub fn tokens(self) -> u64 {
        match self {
            Mode::Paced => 200,
            Mode::Fast => 200_000,
            Mode::Short => 5,
        }
    }

    /// Token events per write.
    pub fn events_per_write(self) -> usize {
        match self {
            Mode::Fast => 64,
            Mode::Paced | Mode::Short => 1,
        }
    }

    /// Delay between two token writes.
    pub fn pace(self) -> Option<std::time::Duration> {
        match self {
            Mode::Paced => Some(std::time::Duration::from_millis(20)),
            Mode::Fast | Mode::Short => None,
        }
    }

    /// Bytes of one answer's body (after de-chunking): what the bare client must count.
    pub fn body_bytes(self) -> u64 {
        (ROLE_EVENT.len() + FINISH_EVENTS.len()) as u64 + self.tokens() * TOKEN_EVENT.len() as u64
    }

    /// Bytes of one answer's text.
    pub fn content_bytes(self) -> u64 {
        self.tokens() * TOKEN.len() as u64
    }
}

/// `payload` framed as one HTTP/1.1 chunk.
pub fn http_chunk(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_event_carries_the_token() {
        assert!(TOKEN_EVENT.contains(&format!("\"content\":\"{TOKEN}\"")));
        assert_eq!(http_chunk(b"abc"), b"3\r\nabc\r\n");
        assert_eq!(
            Mode::Short.body_bytes(),
            (ROLE_EVENT.len() + 5 * TOKEN_EVENT.len() + FINISH_EVENTS.len()) as u64
        );
    }
}
