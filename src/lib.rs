//! vllm_client facade.
#![deny(missing_docs)]
pub use serde_json::json;
