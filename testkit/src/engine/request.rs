//! What goes into the engine ([`RequestSpec`]) and what comes out ([`Output`]).

use std::fmt;

/// An engine's name for one submitted request (unique per engine, in submission order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req-{}", self.0)
    }
}

/// One generation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSpec {
    /// Prompt length in tokens (prefill cost, KV-cache footprint).
    pub prompt_tokens: u32,
    /// Tokens to generate: the model never stops early, so exactly this many are
    /// produced unless the request is aborted, preempted for good or lost. Must be at least 1.
    pub max_tokens: u32,
    /// Whether the client streams. The engine treats both alike; the flag is for the HTTP
    /// layer above it (the fleet simulator sends a stream's head at once, a JSON answer's
    /// head only when it is finished).
    pub stream: bool,
}

impl RequestSpec {
    /// A streamed request.
    pub fn stream(prompt_tokens: u32, max_tokens: u32) -> RequestSpec {
        RequestSpec {
            prompt_tokens,
            max_tokens,
            stream: true,
        }
    }

    /// A non-streamed request.
    pub fn json(prompt_tokens: u32, max_tokens: u32) -> RequestSpec {
        RequestSpec {
            prompt_tokens,
            max_tokens,
            stream: false,
        }
    }
}

/// What the engine produced for a request (see [`Engine::poll_output`](super::Engine::poll_output)).
///
/// A request that runs to its end yields `FirstToken`, then `max_tokens − 1` × `Token`, then
/// `Finished` (at the same instant as its last token). An aborted request yields nothing
/// more after [`abort`](super::Engine::abort).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The first generated token (at the end of the step that scheduled the request).
    FirstToken,
    /// One more generated token.
    Token,
    /// The request is complete; no more outputs follow.
    Finished {
        /// The prompt's tokens.
        prompt_tokens: u32,
        /// Tokens generated (= `max_tokens`).
        completion_tokens: u32,
        /// How often it was preempted (and recomputed).
        preemptions: u32,
    },
    /// The request can never run: `max_tokens` is 0, or prompt + `max_tokens` exceeds the KV
    /// cache (vLLM answers 400). Produced at submission.
    Rejected,
    /// The replica went down (see [`FaultKind::Down`](super::FaultKind::Down)): the
    /// connection breaks; no more outputs follow.
    Lost,
}

impl Output {
    /// Whether no more outputs follow for this request.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Output::Finished { .. } | Output::Rejected | Output::Lost
        )
    }

    /// Whether it carries a generated token.
    pub fn is_token(&self) -> bool {
        matches!(self, Output::FirstToken | Output::Token)
    }
}
