//! Test tools for vllm-client.
#![deny(missing_docs)]
pub mod sim;
