//! The pure core of `vllm-client`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod policy;
