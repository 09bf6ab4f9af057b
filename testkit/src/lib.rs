//! Test tools for vllm-client.
#![deny(missing_docs)]
