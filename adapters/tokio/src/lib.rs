//! The tokio adapter of vllm-client.
#![deny(missing_docs)]
