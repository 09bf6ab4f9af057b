//! Reading a server's load from its Prometheus `/metrics` text: how many requests wait, how
//! many run, how full the KV cache is — the gauges vLLM and llama.cpp's server expose.
//!
//! | gauge | vLLM | llama.cpp server |
//! |---|---|---|
//! | waiting | `vllm:num_requests_waiting` | `llamacpp:requests_deferred` |
//! | running | `vllm:num_requests_running` | `llamacpp:requests_processing` |
//! | KV cache in use (0–1) | `vllm:kv_cache_usage_perc` (older: `vllm:gpu_cache_usage_perc`) | `llamacpp:kv_cache_usage_ratio` |
//!
//! A server with several engines or models exposes one sample per label set: waiting and
//! running are summed (saturating), the KV usage is the highest. Values that are not finite
//! or are negative are skipped, and so is every other metric: what is reported is finite and
//! never negative.
//!
//! The parser is bounded and total: it reads at most [`MAX_INPUT`] bytes and lines of at most
//! [`MAX_LINE`] bytes (longer ones are skipped), never allocates per sample, and any input —
//! not UTF-8, truncated, hostile — gives a [`ServerLoad`] (possibly empty), never a panic.
//! What to do with it is the caller's: [`Saturation`] has the Kubernetes inference gateway's
//! thresholds (waiting > 5 or KV > 0.8), and a scrape older than its `stale_after` (200 ms)
//! should not be trusted.
//!
//! ```
//! use vllm_testkit::server_metrics::{ServerLoad, Saturation};
//!
//! let text = "# TYPE vllm:num_requests_waiting gauge\n\
//!             vllm:num_requests_waiting{model_name=\"m\"} 7.0\n\
//!             vllm:num_requests_running{model_name=\"m\"} 64.0\n\
//!             vllm:kv_cache_usage_perc{model_name=\"m\"} 0.42\n";
//! let load = ServerLoad::parse(text.as_bytes());
//! assert_eq!(load.waiting, Some(7.0));
//! assert_eq!(load.running, Some(64.0));
//! assert_eq!(load.kv_cache_usage, Some(0.42));
//! assert!(Saturation::default().is_saturated(&load));
//! ```

use std::time::Duration;

/// The most input read; the rest is ignored.
pub const MAX_INPUT: usize = 4 << 20;

/// The longest line read; longer lines are skipped.
pub const MAX_LINE: usize = 64 << 10;

/// A server's load, as its metrics said (`None`: the server does not expose that gauge).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServerLoad {
    /// Requests queued, not yet scheduled (summed over label sets).
    pub waiting: Option<f64>,
    /// Requests being processed (summed over label sets).
    pub running: Option<f64>,
    /// The KV cache's usage, 0 to 1 (the highest over label sets).
    pub kv_cache_usage: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gauge {
    Waiting,
    Running,
    KvCache,
}

fn gauge_of(name: &[u8]) -> Option<Gauge> {
    match name {
        b"vllm:num_requests_waiting" | b"llamacpp:requests_deferred" => Some(Gauge::Waiting),
        b"vllm:num_requests_running" | b"llamacpp:requests_processing" => Some(Gauge::Running),
        b"vllm:kv_cache_usage_perc"
        | b"vllm:gpu_cache_usage_perc"
        | b"llamacpp:kv_cache_usage_ratio" => Some(Gauge::KvCache),
        _ => None,
    }
}

impl ServerLoad {
    /// Parses Prometheus text exposition (format 0.0.4, also what OpenMetrics servers send).
    pub fn parse(text: &[u8]) -> ServerLoad {
        let text = &text[..text.len().min(MAX_INPUT)];
        let mut load = ServerLoad::default();
        for line in text.split(|b| *b == b'\n') {
            if line.len() > MAX_LINE {
                continue;
            }
            let line = trim(line);
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let Some((name, value)) = sample(line) else {
                continue;
            };
            let Some(gauge) = gauge_of(name) else {
                continue;
            };
            if !value.is_finite() || value < 0.0 {
                // NaN, ±Inf and negative counts mean nothing for a gauge of requests.
                continue;
            }
            let add = |sum: Option<f64>| Some((sum.unwrap_or(0.0) + value).min(f64::MAX));
            match gauge {
                Gauge::Waiting => load.waiting = add(load.waiting),
                Gauge::Running => load.running = add(load.running),
                Gauge::KvCache => {
                    load.kv_cache_usage = Some(load.kv_cache_usage.map_or(value, |v| v.max(value)))
                }
            }
        }
        load
    }

    /// Whether the metrics had any of the gauges.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_none() && self.running.is_none() && self.kv_cache_usage.is_none()
    }
}

/// When a server counts as saturated. Defaults: the Kubernetes inference gateway's saturation
/// detector (`pkg/epp/saturationdetector/config.go`): more than 5 waiting, or the KV cache
/// more than 80 % full; metrics older than 200 ms are stale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saturation {
    /// More requests waiting than this is saturated.
    pub max_waiting: f64,
    /// A KV cache fuller than this (0–1) is saturated.
    pub max_kv_cache_usage: f64,
    /// Metrics older than this should not be used.
    pub stale_after: Duration,
}

impl Default for Saturation {
    fn default() -> Self {
        Saturation {
            max_waiting: 5.0,
            max_kv_cache_usage: 0.8,
            stale_after: Duration::from_millis(200),
        }
    }
}

impl Saturation {
    /// Whether `load` is beyond either threshold (a gauge the server lacks counts as fine).
    pub fn is_saturated(&self, load: &ServerLoad) -> bool {
        load.waiting.is_some_and(|w| w > self.max_waiting)
            || load
                .kv_cache_usage
                .is_some_and(|k| k > self.max_kv_cache_usage)
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

/// `name{labels} value [timestamp]` → (name, value).
fn sample(line: &[u8]) -> Option<(&[u8], f64)> {
    let name_end = line
        .iter()
        .position(|b| matches!(b, b'{' | b' ' | b'\t'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    if rest.first() == Some(&b'{') {
        rest = after_labels(rest)?;
    }
    let rest = trim(rest);
    let value_end = rest
        .iter()
        .position(|b| matches!(b, b' ' | b'\t'))
        .unwrap_or(rest.len());
    let value = parse_value(&rest[..value_end])?;
    Some((name, value))
}

/// Skips `{…}` (label values are quoted and may contain `\"`, `\\` and `}`); returns what
/// follows, or `None` when the braces do not close.
fn after_labels(s: &[u8]) -> Option<&[u8]> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, b) in s.iter().enumerate().skip(1) {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if *b == b'\\' {
                escaped = true;
            } else if *b == b'"' {
                in_quotes = false;
            }
        } else if *b == b'"' {
            in_quotes = true;
        } else if *b == b'}' {
            return Some(&s[i + 1..]);
        }
    }
    None
}

fn parse_value(v: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(v).ok()?;
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if s.len() <= 64 => s.parse::<f64>().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VLLM: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 64.0
vllm:num_requests_running{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 60.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 3.0
vllm:num_requests_waiting{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 1.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.75
vllm:num_preemptions_total{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 12.0
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="m"} 0.0
"#;

    #[test]
    fn vllm_sums_running_and_waiting_and_takes_the_fullest_cache() {
        let load = ServerLoad::parse(VLLM.as_bytes());
        assert_eq!(load.running, Some(124.0));
        assert_eq!(load.waiting, Some(4.0));
        assert_eq!(load.kv_cache_usage, Some(0.75));
        assert!(!Saturation::default().is_saturated(&load));
    }

    #[test]
    fn llama_cpp_names() {
        let text = "llamacpp:requests_processing 2\r\nllamacpp:requests_deferred 9\r\nllamacpp:kv_cache_usage_ratio 0.125\r\n";
        let load = ServerLoad::parse(text.as_bytes());
        assert_eq!(load.running, Some(2.0));
        assert_eq!(load.waiting, Some(9.0));
        assert_eq!(load.kv_cache_usage, Some(0.125));
        assert!(Saturation::default().is_saturated(&load));
    }

    #[test]
    fn older_vllm_cache_name_and_timestamps() {
        let load = ServerLoad::parse(b"vllm:gpu_cache_usage_perc{m=\"a\"} 0.9 1700000000000\n");
        assert_eq!(load.kv_cache_usage, Some(0.9));
        assert!(Saturation::default().is_saturated(&load));
    }

    #[test]
    fn tricky_labels_and_values() {
        let text = concat!(
            "vllm:num_requests_waiting{model_name=\"a}b\\\"c\",x=\"\\\\\"} 2\n",
            "vllm:num_requests_waiting{model_name=\"unterminated} 5\n",
            "vllm:num_requests_waiting NaN\n",
            "vllm:num_requests_waiting +Inf\n",
            "vllm:num_requests_waiting -1\n",
            "vllm:num_requests_running 1e308\n",
            "vllm:num_requests_running 1e308\n",
            "vllm:num_requests_waiting not-a-number\n",
            "vllm:num_requests_waiting\n",
            "  vllm:num_requests_running   3  \n",
            "{} 4\n",
        );
        let load = ServerLoad::parse(text.as_bytes());
        assert_eq!(load.waiting, Some(2.0));
        assert_eq!(load.running, Some(f64::MAX), "saturates");
        assert_eq!(load.kv_cache_usage, None);
    }

    #[test]
    fn nothing_known_is_empty_and_bounds_hold() {
        assert!(ServerLoad::parse(b"").is_empty());
        assert!(ServerLoad::parse(b"\xff\xfe garbage {{{ \"\n").is_empty());
        let mut long = b"vllm:num_requests_waiting{a=\"".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE));
        long.extend_from_slice(b"\"} 1\nvllm:num_requests_running 1\n");
        let load = ServerLoad::parse(&long);
        assert_eq!(load.waiting, None, "the over-long line is skipped");
        assert_eq!(load.running, Some(1.0));
        assert!(!Saturation::default().is_saturated(&ServerLoad::default()));
    }
}
