//! Text helpers for adapters' messages.
//!
//! The core has no logging dependency. What a call did reaches adapters as typed
//! [`Observation`](super::Observation)s (see [`observe`](super::observe)), which the shared
//! runner turns into `tracing` spans and structured events; this module only words an error
//! chain for a transport's error message.

/// An error with its causes, `"error sending request: connection refused"`, for
/// [`Event::TransportError`](super::Event::TransportError)'s message.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.ends_with(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_skips_repeated_causes() {
        let io = std::io::Error::other("refused");
        assert_eq!(error_chain(&io), "refused");
    }
}
