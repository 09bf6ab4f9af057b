//! The async-std adapter of vllm-client.
#![deny(missing_docs)]
