//! The blocking adapter of vllm-client.
#![deny(missing_docs)]
