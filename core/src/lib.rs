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
pub mod sse;
pub mod stream;

pub use error::{ApiError, VllmError};
pub use event::StreamEvent;
pub use sse::{SseDecoder, SseError, SseEvent, SseItem, SseLimits};
pub use stream::{PushReport, StreamDecoder, StreamKind};
