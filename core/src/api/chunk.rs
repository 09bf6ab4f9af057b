//! [`Chunk`]: one whole chunk of a chat completion, completion or transcription stream, as
//! the result-shaped stream (`send_chunks()`) yields it — with its id, model and log
//! probabilities, which the [`StreamEvent`](crate::StreamEvent) view leaves out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::Usage;

/// One `chat.completion.chunk` (or `text_completion` chunk, or `transcription.chunk`) as the
/// server sent it. Unknown fields are ignored; every field a server may leave out is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Chunk {
    /// The completion's id (the same on every chunk of a stream).
    pub id: String,
    /// `chat.completion.chunk`, `text_completion`, `transcription.chunk`, …
    pub object: String,
    /// Unix time of creation.
    pub created: u64,
    /// The model that answers.
    pub model: String,
    /// The choices this chunk extends (empty on a usage-only chunk).
    #[serde(deserialize_with = "null_as_default")]
    pub choices: Vec<ChunkChoice>,
    /// Token counts (a last chunk with `choices: []` when the request asked for
    /// `include_usage`; on every chunk with vLLM's `continuous_usage_stats`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The system fingerprint, when the server sends one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
}

/// One choice of a [`Chunk`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ChunkChoice {
    /// The choice's index (0 unless the request set `n > 1`).
    pub index: u32,
    /// What a chat (or transcription) chunk adds to the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<ChunkDelta>,
    /// What a completions chunk adds to the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Log probabilities of this chunk's tokens, when the request asked for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<ChoiceLogprobs>,
    /// Why the choice stopped, on its last chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// The stop string or token id that ended it (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<Value>,
}

/// What a chat chunk adds to its choice's message. Fragments of tool calls come as they
/// were sent (`id` and name on an index's first fragment, pieces of the arguments after).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ChunkDelta {
    /// `assistant`, on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A piece of the text (`null` or absent when there is none; llama.cpp starts with
    /// `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A piece of the reasoning (vLLM since early 2026).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// A piece of the reasoning under its older name (vLLM until late 2025).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool-call fragments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallChunk>>,
    /// A piece of a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

impl ChunkDelta {
    /// The reasoning piece under either name (`reasoning` first).
    pub fn reasoning(&self) -> Option<&str> {
        self.reasoning
            .as_deref()
            .or(self.reasoning_content.as_deref())
            .filter(|s| !s.is_empty())
    }
}

/// A fragment of a streamed tool call, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ToolCallChunk {
    /// Which tool call of the choice it extends.
    pub index: u32,
    /// The call's id, on its first fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, on its first fragment.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The function's name and a piece of its arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallChunk>,
}

/// The function part of a [`ToolCallChunk`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct FunctionCallChunk {
    /// The function's name, on the first fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A piece of the arguments' JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Log probabilities of a choice's tokens: `content` for chat streams (OpenAI's shape), the
/// parallel arrays for completions streams.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ChoiceLogprobs {
    /// Chat: one entry per token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<TokenLogprob>>,
    /// Chat: the refusal's tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Vec<TokenLogprob>>,
    /// Completions: the tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<String>>,
    /// Completions: each token's log probability (`null` for a prompt's first token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_logprobs: Option<Vec<Option<f64>>>,
    /// Completions: the most likely alternatives at each position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<Vec<Option<BTreeMap<String, f64>>>>,
    /// Completions: each token's offset in the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_offset: Option<Vec<u64>>,
}

/// One token and its log probability (chat).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TokenLogprob {
    /// The token.
    pub token: String,
    /// Its log probability (vLLM sends `-9999.0` for `-inf`).
    pub logprob: f64,
    /// Its UTF-8 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
    /// The most likely alternatives at this position.
    pub top_logprobs: Vec<TopLogprob>,
}

/// An alternative token at a position.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TopLogprob {
    /// The token.
    pub token: String,
    /// Its log probability.
    pub logprob: f64,
    /// Its UTF-8 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
}

impl Chunk {
    /// The first choice (index 0, or the first listed).
    pub fn first_choice(&self) -> Option<&ChunkChoice> {
        self.choices
            .iter()
            .find(|c| c.index == 0)
            .or(self.choices.first())
    }

    /// The text choice 0 adds: its delta's `content` (chat, transcription) or its `text`
    /// (completions). `None` when it adds none.
    pub fn content(&self) -> Option<&str> {
        let c = self.first_choice()?;
        c.delta
            .as_ref()
            .and_then(|d| d.content.as_deref())
            .or(c.text.as_deref())
            .filter(|s| !s.is_empty())
    }

    /// The reasoning choice 0 adds (`reasoning`, or `reasoning_content`).
    pub fn reasoning(&self) -> Option<&str> {
        self.first_choice()?.delta.as_ref()?.reasoning()
    }

    /// Why choice 0 stopped, on its last chunk.
    pub fn finish_reason(&self) -> Option<&str> {
        self.first_choice()?.finish_reason.as_deref()
    }
}

/// `null` read as the type's default (servers send `"choices": null`).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vllm_chunks_with_logprobs() {
        let c: Chunk = serde_json::from_str(
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"m",
            "choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[{"token":"Hi",
            "logprob":-0.25,"bytes":[72,105],"top_logprobs":[{"token":"Hi","logprob":-0.25},
            {"token":"Hello","logprob":-1.5}]}]},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert_eq!((c.id.as_str(), c.model.as_str()), ("chatcmpl-1", "m"));
        assert_eq!(c.content(), Some("Hi"));
        let lp = c.choices[0]
            .logprobs
            .as_ref()
            .unwrap()
            .content
            .as_ref()
            .unwrap();
        assert_eq!(lp[0].logprob, -0.25);
        assert_eq!(lp[0].top_logprobs[1].token, "Hello");
    }

    #[test]
    fn completions_and_usage_chunks() {
        let c: Chunk = serde_json::from_str(
            r#"{"id":"cmpl-1","object":"text_completion","model":"m","choices":[{"index":0,
            "text":"ab","logprobs":{"tokens":["a","b"],"token_logprobs":[-0.1,null],
            "top_logprobs":[{"a":-0.1},null],"text_offset":[0,1]},"finish_reason":"length"}]}"#,
        )
        .unwrap();
        assert_eq!(c.content(), Some("ab"));
        assert_eq!(c.finish_reason(), Some("length"));
        let lp = c.choices[0].logprobs.as_ref().unwrap();
        assert_eq!(lp.token_logprobs.as_ref().unwrap()[1], None);
        let u: Chunk = serde_json::from_str(
            r#"{"id":"x","choices":null,"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        )
        .unwrap();
        assert!(u.choices.is_empty());
        assert_eq!(u.usage.as_ref().unwrap().total_tokens, 3);
        assert_eq!(u.content(), None);
    }

    #[test]
    fn reasoning_under_both_names() {
        for key in ["reasoning", "reasoning_content"] {
            let c: Chunk = serde_json::from_value(serde_json::json!({
                "choices": [{"index": 0, "delta": {key: "think"}}]
            }))
            .unwrap();
            assert_eq!(c.reasoning(), Some("think"));
        }
    }
}
