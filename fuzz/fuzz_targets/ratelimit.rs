//! The rate-limit header parser: no header value panics or overflows, and every wait it
//! reports is one of the resets it read.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use vllm_client_core::policy::RateLimitSnapshot;

const NAMES: [&str; 14] = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-reset",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    // Each value is prefixed by a byte choosing its header name.
    for piece in data.split(|b| *b == b'\n') {
        let Some((&which, value)) = piece.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[which as usize % NAMES.len()]);
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }
    let received = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_631_242);
    if let Some(s) = RateLimitSnapshot::parse(&headers, received) {
        if let Some(w) = s.wait() {
            assert!(Some(w) == s.requests.reset || Some(w) == s.tokens.reset);
        }
    }
});
