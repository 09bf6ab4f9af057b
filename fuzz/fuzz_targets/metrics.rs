//! The Prometheus `/metrics` parser: no input panics, and what it reports is consistent —
//! finite, non-negative gauges; a line appended on its own is read and changes nothing else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vllm_testkit::server_metrics::{Saturation, ServerLoad};

fuzz_target!(|data: &[u8]| {
    let load = ServerLoad::parse(data);
    for v in [load.waiting, load.running, load.kv_cache_usage]
        .into_iter()
        .flatten()
    {
        assert!(v.is_finite() && v >= 0.0, "{v}");
    }
    let _ = Saturation::default().is_saturated(&load);
    // Appending a known gauge on its own line is always read (unless the input is at the
    // bound or ends inside an over-long line).
    if data.len() < 1 << 16 {
        let mut more = data.to_vec();
        more.extend_from_slice(b"\nvllm:num_requests_running 1\n");
        let again = ServerLoad::parse(&more);
        assert!(again.running.is_some());
        assert_eq!(
            again.waiting.map(f64::to_bits),
            load.waiting.map(f64::to_bits)
        );
    }
});
