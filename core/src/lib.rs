//! The pure core of `vllm-client`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod call;
pub mod client;
pub mod config;
pub mod error;
pub mod event;
pub mod policy;
pub mod request;

pub use error::{ApiError, VllmError};
pub use event::StreamEvent;
