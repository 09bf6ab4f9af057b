//! Retrieval for RAG: embed the documents and the question (as base64, decoded into the same
//! `Vec<f32>`), keep the nearest by cosine similarity, rerank them with a cross-encoder, and
//! answer from the best one — four calls, each under the client's retries, breaker and limits.
//!
//! ```text
//! cargo run --example rerank_rag
//! VLLM_BASE_URL=http://localhost:8000/v1 VLLM_MODEL=… RERANK_MODEL=… EMBED_MODEL=… cargo run --example rerank_rag
//! ```
//!
//! Without `VLLM_BASE_URL` it runs against the built-in fake vLLM server (whose reranker
//! scores by word overlap, and whose embeddings are deterministic).

use vllm_client::{json, EmbeddingRequest, RerankRequest, VllmClient, VllmError};

mod support;

const DOCUMENTS: [&str; 5] = [
    "The Eiffel Tower is in Paris and was finished in 1889.",
    "Paris is the capital of France and its largest city.",
    "Berlin is the capital of Germany.",
    "Croissants are a French pastry made of laminated dough.",
    "The Seine flows through Paris.",
];

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(f32::EPSILON)
}

#[tokio::main]
async fn main() -> Result<(), VllmError> {
    let target = support::target();
    // The key from VLLM_API_KEY / OPENAI_API_KEY when set; the URL the example picked.
    let client = VllmClient::builder()
        .from_env()
        .base_url(&target.base_url)
        .build();
    let model = |var: &str| std::env::var(var).unwrap_or_else(|_| target.model.clone());
    let question = "What is the capital of France?";

    // 1. Embed the documents and the question in one call, as base64.
    let mut inputs: Vec<&str> = DOCUMENTS.to_vec();
    inputs.push(question);
    let embedded = client
        .embeddings(EmbeddingRequest::new(model("EMBED_MODEL"), json!(inputs)).base64())
        .await?;
    let (docs, q) = embedded.data.split_at(DOCUMENTS.len());
    let mut nearest: Vec<(usize, f32)> = docs
        .iter()
        .map(|d| (d.index as usize, cosine(&d.embedding, &q[0].embedding)))
        .collect();
    nearest.sort_by(|a, b| b.1.total_cmp(&a.1));
    let candidates: Vec<&str> = nearest.iter().take(4).map(|(i, _)| DOCUMENTS[*i]).collect();
    println!("nearest by embedding: {candidates:?}");

    // 2. Rerank the candidates with a cross-encoder (POST /v1/rerank).
    let mut rerank = RerankRequest::new(model("RERANK_MODEL"), question, candidates.clone());
    rerank.top_n = Some(2);
    let ranked = client.rerank(rerank).await?;
    for r in &ranked.results {
        println!("  {:.3}  {}", r.relevance_score, candidates[r.index]);
    }
    let best = candidates[ranked.ranking()[0]];

    // 3. Answer from the best passage.
    let answer = client
        .chat
        .completions()
        .create()
        .model(model("VLLM_MODEL"))
        .messages(json!([
            {"role": "system", "content": format!("Answer from this passage only: {best}")},
            {"role": "user", "content": question}
        ]))
        .max_tokens(64)
        .send()
        .await?;
    println!("answer: {}", answer.content.unwrap_or_default());
    Ok(())
}
