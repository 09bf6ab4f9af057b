//! Rerank (`/v1/rerank`, `/rerank`, `/v2/rerank`: the Jina and Cohere shape) and score
//! (`/score`, `/v1/score`), served by vLLM for cross-encoder and embedding models, by
//! llama.cpp's server with `--reranking`, and by LiteLLM.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::Usage;
use super::params::impl_to_body;

/// Which path a rerank request goes to. vLLM serves all three with the same body;
/// llama.cpp's server serves [`Root`](Self::Root) and [`V1`](Self::V1); Cohere-compatible
/// gateways [`V2`](Self::V2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RerankApi {
    /// `/v1/rerank` (Jina's API; the default).
    #[default]
    V1,
    /// `/v2/rerank` (Cohere's v2 API).
    V2,
    /// `/rerank`.
    Root,
}

impl RerankApi {
    /// The path, relative to the server root.
    pub fn path(self) -> &'static str {
        match self {
            RerankApi::V1 => "/v1/rerank",
            RerankApi::V2 => "/v2/rerank",
            RerankApi::Root => "/rerank",
        }
    }
}

/// The body of a rerank request: a query and the documents to order by relevance to it.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct RerankRequest {
    /// The model (a cross-encoder or reranker).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// The query: a string (or vLLM's multimodal content).
    pub query: Value,
    /// The documents: strings (or vLLM's multimodal content).
    pub documents: Value,
    /// Return only the best `n` (all when unset or 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_n: Option<u32>,
    /// Whether the results carry the documents' text (Cohere, Jina; vLLM always does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_documents: Option<bool>,
    /// Truncate each pair to this many tokens (vLLM; -1: the model's maximum).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate_prompt_tokens: Option<i64>,
    /// Scheduling priority (vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Free-form fields merged into the body last.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl_to_body!(RerankRequest);

impl RerankRequest {
    /// Rerank `documents` for `query` with `model`.
    pub fn new<I, S>(model: impl Into<String>, query: impl Into<String>, documents: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RerankRequest {
            model: model.into(),
            query: Value::String(query.into()),
            documents: Value::Array(
                documents
                    .into_iter()
                    .map(|d| Value::String(d.into()))
                    .collect(),
            ),
            ..Default::default()
        }
    }
}

/// The answer of a rerank request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct RerankResponse {
    /// Its id (not every server sends one).
    #[serde(default)]
    pub id: String,
    /// The model.
    #[serde(default)]
    pub model: String,
    /// The documents by relevance, most relevant first, each with its index in the request.
    pub results: Vec<RerankResult>,
    /// Token counts (`prompt_tokens` / `total_tokens`), when sent.
    #[serde(default)]
    pub usage: Option<Usage>,
}

impl RerankResponse {
    /// The indices of the request's documents, most relevant first.
    pub fn ranking(&self) -> Vec<usize> {
        let mut r: Vec<&RerankResult> = self.results.iter().collect();
        // Servers send them sorted; sort anyway (stable, NaN last) so this never lies.
        r.sort_by(|a, b| {
            b.relevance_score
                .partial_cmp(&a.relevance_score)
                .unwrap_or_else(|| a.relevance_score.is_nan().cmp(&b.relevance_score.is_nan()))
        });
        r.iter().map(|x| x.index).collect()
    }
}

/// One reranked document.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct RerankResult {
    /// Its index in the request's `documents`.
    pub index: usize,
    /// How relevant it is (higher is more relevant; its scale depends on the model).
    pub relevance_score: f64,
    /// The document, when the server returns it.
    #[serde(default)]
    pub document: Option<RerankDocument>,
}

/// A document as a rerank result returns it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct RerankDocument {
    /// Its text.
    #[serde(default)]
    pub text: Option<String>,
}

/// The body of `POST /score`: scores of `text_1` against each of `text_2` (one to one, one
/// to many, or many to many pairwise). vLLM reads the newer `queries`/`documents` names too;
/// `text_1`/`text_2` are what every version accepts.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ScoreRequest {
    /// The model.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// A string or a list of strings.
    pub text_1: Value,
    /// A string or a list of strings.
    pub text_2: Value,
    /// Truncate each pair to this many tokens (-1: the model's maximum).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate_prompt_tokens: Option<i64>,
    /// Free-form fields merged into the body last.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl_to_body!(ScoreRequest);

impl ScoreRequest {
    /// Scores `text_1` against `text_2` with `model`.
    pub fn new(
        model: impl Into<String>,
        text_1: impl Into<Value>,
        text_2: impl Into<Value>,
    ) -> Self {
        ScoreRequest {
            model: model.into(),
            text_1: text_1.into(),
            text_2: text_2.into(),
            ..Default::default()
        }
    }
}

/// The answer of `/score`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ScoreResponse {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// The model.
    #[serde(default)]
    pub model: String,
    /// One score per pair, by index.
    pub data: Vec<ScoreData>,
    /// Token counts.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// One score.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ScoreData {
    /// The pair's index.
    #[serde(default)]
    pub index: usize,
    /// The score.
    pub score: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rerank_shapes_of_vllm_and_llama_cpp() {
        let vllm: RerankResponse = serde_json::from_value(json!({
            "id": "rerank-1", "model": "m", "usage": {"prompt_tokens": 9, "total_tokens": 9},
            "results": [{"index": 1, "document": {"text": "b", "multi_modal": null}, "relevance_score": 0.9},
                        {"index": 0, "document": {"text": "a"}, "relevance_score": 0.1}]
        }))
        .unwrap();
        assert_eq!(vllm.ranking(), vec![1, 0]);
        assert_eq!(
            vllm.results[0].document.as_ref().unwrap().text.as_deref(),
            Some("b")
        );
        let llama: RerankResponse = serde_json::from_value(json!({
            "model": "m", "object": "list", "usage": {"prompt_tokens": 4, "total_tokens": 4},
            "results": [{"index": 0, "relevance_score": -2.5}, {"index": 1, "relevance_score": 3.0}]
        }))
        .unwrap();
        assert_eq!(llama.ranking(), vec![1, 0]);
        assert!(llama.results[0].document.is_none());
    }

    #[test]
    fn request_bodies() {
        let mut r = RerankRequest::new("m", "q", ["a", "b"]);
        r.top_n = Some(1);
        let b = r.to_body().unwrap();
        assert_eq!(
            b,
            json!({"model": "m", "query": "q", "documents": ["a", "b"], "top_n": 1})
        );
        let s = ScoreRequest::new("m", "q", json!(["a", "b"]))
            .to_body()
            .unwrap();
        assert_eq!(s["text_2"], json!(["a", "b"]));
    }
}
