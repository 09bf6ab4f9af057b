//! Metric names, units and bucket boundaries the runner records, and the value it uses for
//! `gen_ai.provider.name`.
//!
//! Metrics are off by default and cost nothing then. The `metrics` feature records through the
//! [`metrics`](https://docs.rs/metrics) facade (install any exporter, e.g.
//! `metrics-exporter-prometheus`); the `opentelemetry` feature records through the
//! OpenTelemetry metrics API with the conventions' explicit bucket boundaries (install a
//! `MeterProvider` with `opentelemetry::global::set_meter_provider` **before** building the
//! client: its instruments are created when the client is built). Both may be on at once.
//!
//! The `metrics` facade carries no bucket hints: with a Prometheus exporter, pass
//! [`DURATION_BUCKETS`] and [`TOKEN_BUCKETS`] to
//! `PrometheusBuilder::set_buckets_for_metric` to get the conventions' buckets.
//!
//! | metric | kind | unit | attributes |
//! |---|---|---|---|
//! | [`OPERATION_DURATION`] | histogram | `s` | common, `error.type` on failure |
//! | [`TOKEN_USAGE`] | histogram | `{token}` | common, `gen_ai.token.type` = `input` / `output` |
//! | [`TIME_TO_FIRST_CHUNK`] | histogram | `s` | common (streams) |
//! | [`TIME_PER_OUTPUT_CHUNK`] | histogram | `s` | common (streams, each data event after the first) |
//! | [`ATTEMPTS`] | counter | `{attempt}` | operation, request model, server, `error.type` on failure, `http.response.status_code` when a head arrived |
//! | [`RETRIES`] | counter | `{retry}` | operation, request model, server, `error.type` (the cause), `vllm_client.retry.hinted` |
//! | [`TIMEOUTS`] | counter | `{timeout}` | operation, request model, server, `vllm_client.timeout.kind` |
//! | [`LIMITER_WAIT`] | histogram | `s` | operation, request model, server, `vllm_client.limiter` |
//! | [`BREAKER_TRANSITIONS`] | counter | `{transition}` | `vllm_client.breaker.scope`, `vllm_client.breaker.from`, `vllm_client.breaker.to` |
//! | [`BREAKER_STATE`] | gauge | `1` | `vllm_client.breaker.scope` (0 closed, 1 half-open, 2 open) |
//! | [`CONCURRENCY_IN_FLIGHT`] | gauge | `{call}` | — |
//! | [`CONCURRENCY_WAITING`] | gauge | `{call}` | — |
//!
//! "Common" attributes: `gen_ai.operation.name`, `gen_ai.provider.name` (= [`PROVIDER_NAME`]),
//! `gen_ai.request.model`, `gen_ai.response.model` (when the server named it), `server.address`,
//! `server.port`.
//!
//! The adaptive concurrency limit: [`CONCURRENCY_LIMIT`].

/// `gen_ai.client.operation.duration`: a call, from its start to its end (all attempts and
/// waits; a stream until its terminal event).
pub const OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// `gen_ai.client.token.usage`: the tokens the server reported (`usage`), by `gen_ai.token.type`.
pub const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// `gen_ai.client.operation.time_to_first_chunk`: from a stream call's start to its first data
/// event.
pub const TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
/// `gen_ai.client.operation.time_per_output_chunk`: between two data events of a stream, as
/// they arrived (the time their chunk was read; events of one chunk 0 apart), however late the
/// caller asks for them (one sample per data event after the first).
pub const TIME_PER_OUTPUT_CHUNK: &str = "gen_ai.client.operation.time_per_output_chunk";
/// `vllm_client.attempts`: requests sent (each attempt, when it ends).
pub const ATTEMPTS: &str = "vllm_client.attempts";
/// `vllm_client.retries`: retries, by cause.
pub const RETRIES: &str = "vllm_client.retries";
/// `vllm_client.timeouts`: timers that fired, by kind.
pub const TIMEOUTS: &str = "vllm_client.timeouts";
/// `vllm_client.limiter.wait.duration`: time a call waited for a limiter, by limiter.
pub const LIMITER_WAIT: &str = "vllm_client.limiter.wait.duration";
/// `vllm_client.breaker.transitions`: circuit-breaker state changes.
pub const BREAKER_TRANSITIONS: &str = "vllm_client.breaker.transitions";
/// `vllm_client.breaker.state`: the breaker's state after its last change (0 closed,
/// 1 half-open, 2 open).
pub const BREAKER_STATE: &str = "vllm_client.breaker.state";
/// `vllm_client.concurrency.in_flight`: calls holding a concurrency slot.
pub const CONCURRENCY_IN_FLIGHT: &str = "vllm_client.concurrency.in_flight";
/// `vllm_client.concurrency.waiting`: calls waiting for a concurrency slot.
pub const CONCURRENCY_WAITING: &str = "vllm_client.concurrency.waiting";
/// `vllm_client.endpoint.ejections`: endpoints of a pool taken out of rotation, by
/// `server.address`, `server.port` and `vllm_client.endpoint.reason`.
pub const ENDPOINT_EJECTIONS: &str = "vllm_client.endpoint.ejections";
/// `vllm_client.hedges`: hedged first tokens, by `vllm_client.hedge.event` (`started`,
/// `primary_won`, `backup_won`).
pub const HEDGES: &str = "vllm_client.hedges";
/// `vllm_client.concurrency.limit`: the adaptive concurrency limit in force, after each
/// change.
pub const CONCURRENCY_LIMIT: &str = "vllm_client.concurrency.limit";

/// The value of `gen_ai.provider.name`. The conventions define none for vLLM and allow a
/// custom one; every OpenAI-compatible server this client talks to is reported as `"vllm"`.
pub const PROVIDER_NAME: &str = "vllm";

/// The conventions' bucket boundaries for durations, in seconds: 0.01 … 81.92, ×2.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// The conventions' bucket boundaries for token counts: 1, 4, 16 … 67 108 864, ×4.
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_conventions() {
        for w in DURATION_BUCKETS.windows(2) {
            assert!((w[1] / w[0] - 2.0).abs() < 1e-9);
        }
        for w in TOKEN_BUCKETS.windows(2) {
            assert_eq!(w[1], w[0] * 4.0);
        }
        assert_eq!(DURATION_BUCKETS[13], 81.92);
        assert_eq!(TOKEN_BUCKETS[13], 67_108_864.0);
    }
}
