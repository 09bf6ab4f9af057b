//! The Prometheus `/metrics` parser on arbitrary input: never panics, reports only finite,
//! non-negative gauges, and reads a gauge line appended on its own without changing the rest.

use proptest::prelude::*;
use vllm_testkit::server_metrics::{Saturation, ServerLoad};

fn metricish() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just("vllm:num_requests_waiting".to_owned()),
        Just("vllm:num_requests_running".to_owned()),
        Just("vllm:kv_cache_usage_perc".to_owned()),
        Just("llamacpp:requests_deferred".to_owned()),
        Just("# TYPE x gauge".to_owned()),
        "[a-z:_]{0,12}",
    ]
    .prop_flat_map(|name| {
        (
            Just(name),
            prop::option::of("\\{[a-z]{0,3}=\"[^\"\\n]{0,6}\"\\}"),
            prop_oneof![
                any::<f64>().prop_map(|v| v.to_string()),
                Just("NaN".to_owned()),
                Just("+Inf".to_owned()),
                Just("-1".to_owned()),
                "[0-9.e+-]{0,8}",
            ],
        )
    })
    .prop_map(|(name, labels, value)| format!("{name}{} {value}", labels.unwrap_or_default()));
    prop::collection::vec(line, 0..20).prop_map(|lines| lines.join("\n").into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bytes_give_finite_non_negative_gauges(data in prop_oneof![metricish(), prop::collection::vec(any::<u8>(), 0..512)]) {
        let load = ServerLoad::parse(&data);
        for v in [load.waiting, load.running, load.kv_cache_usage].into_iter().flatten() {
            prop_assert!(v.is_finite() && v >= 0.0, "{v}");
        }
        let _ = Saturation::default().is_saturated(&load);
        let mut more = data.clone();
        more.extend_from_slice(b"\nvllm:num_requests_running 1\n");
        let again = ServerLoad::parse(&more);
        prop_assert!(again.running.is_some());
        prop_assert_eq!(again.waiting.map(f64::to_bits), load.waiting.map(f64::to_bits));
        prop_assert_eq!(again.kv_cache_usage.map(f64::to_bits), load.kv_cache_usage.map(f64::to_bits));
    }
}
