//! [`Summary`]: a fleet run in a few numbers — TTFT percentiles, successes, errors by kind,
//! retries, and what the servers did (submissions, preemptions, aborts).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::model::EngineStats;
use super::record::RequestRecord;

/// The aggregate of a fleet run.
///
/// TTFT is measured as the caller sees it, from the arrival to the first `Content` event,
/// over every stream that received one (also streams that failed later). Percentiles are
/// nearest-rank.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Requests in the workload.
    pub requests: usize,
    /// Requests that succeeded.
    pub ok: usize,
    /// Failed requests by kind (`ResultKind`'s text, e.g. `timeout`, `http 503`,
    /// `timeout (mid-stream)`).
    pub errors: BTreeMap<String, usize>,
    /// Streams that received a first token.
    pub ttft_count: usize,
    /// TTFT median.
    pub ttft_p50: Option<Duration>,
    /// TTFT 90th percentile.
    pub ttft_p90: Option<Duration>,
    /// TTFT 99th percentile.
    pub ttft_p99: Option<Duration>,
    /// The longest TTFT.
    pub ttft_max: Option<Duration>,
    /// End-to-end latency median over successful requests.
    pub latency_p50: Option<Duration>,
    /// End-to-end latency 99th percentile over successful requests.
    pub latency_p99: Option<Duration>,
    /// Attempts over all calls.
    pub attempts: u64,
    /// Retries over all calls.
    pub retries: u64,
    /// Why the retry policy gave up, by reason (`Debug` text without fields).
    pub gave_up: BTreeMap<String, usize>,
    /// Requests the servers received (retries resubmit: duplicated prefill).
    pub server_submissions: u64,
    /// Requests the servers aborted because their client disconnected.
    pub server_aborts: u64,
    /// Preemptions over all replicas.
    pub preemptions: u64,
    /// Tokens prefilled over all replicas.
    pub prefill_tokens: u64,
    /// Tokens generated over all replicas (including those of aborted requests).
    pub generated_tokens: u64,
    /// Calls whose first attempt was sent before that of an earlier arrival of the same client
    /// (0 when each client's calls leave in arrival order: a FIFO limiter, or none).
    pub overtakes: usize,
    /// Successful calls whose text was not exactly what the engine produced (must be 0).
    pub text_mismatches: usize,
}

/// The nearest-rank percentile `p` (0–100) of sorted values.
pub fn percentile(sorted: &[Duration], p: u32) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (u64::from(p.min(100)) * n as u64).div_ceil(100).max(1) as usize;
    sorted.get(rank.min(n) - 1).copied()
}

/// Per client, in arrival order: calls first sent before the latest first send of an earlier
/// arrival (calls never sent are skipped).
fn overtakes(records: &[RequestRecord]) -> usize {
    let mut order: Vec<&RequestRecord> = records.iter().collect();
    order.sort_by_key(|r| (r.arrival.client, r.arrival.at));
    let mut n = 0;
    let mut latest: Option<(usize, Duration)> = None;
    for r in order {
        let Some(&sent) = r.sends.first() else {
            continue;
        };
        match latest {
            Some((c, t)) if c == r.arrival.client => {
                if sent < t {
                    n += 1;
                } else {
                    latest = Some((c, sent));
                }
            }
            _ => latest = Some((r.arrival.client, sent)),
        }
    }
    n
}

impl Summary {
    /// The summary of these records and engine counters.
    pub fn of(records: &[RequestRecord], engines: &[EngineStats]) -> Summary {
        let mut s = Summary {
            requests: records.len(),
            ..Summary::default()
        };
        let mut ttft: Vec<Duration> = records.iter().filter_map(|r| r.ttft()).collect();
        ttft.sort_unstable();
        let mut lat: Vec<Duration> = records
            .iter()
            .filter(|r| r.result.is_ok())
            .filter_map(|r| r.latency())
            .collect();
        lat.sort_unstable();
        for r in records {
            if r.result.is_ok() {
                s.ok += 1;
            } else {
                *s.errors.entry(r.result.to_string()).or_default() += 1;
            }
            if r.text_exact == Some(false) {
                s.text_mismatches += 1;
            }
            s.attempts += u64::from(r.attempts);
            s.retries += u64::from(r.retries);
            if let Some(g) = &r.gave_up {
                let name = format!("{g:?}");
                let name = name.split([' ', '{', '(']).next().unwrap_or("").to_owned();
                *s.gave_up.entry(name).or_default() += 1;
            }
        }
        s.overtakes = overtakes(records);
        s.ttft_count = ttft.len();
        s.ttft_p50 = percentile(&ttft, 50);
        s.ttft_p90 = percentile(&ttft, 90);
        s.ttft_p99 = percentile(&ttft, 99);
        s.ttft_max = ttft.last().copied();
        s.latency_p50 = percentile(&lat, 50);
        s.latency_p99 = percentile(&lat, 99);
        for e in engines {
            s.server_submissions += e.submitted;
            s.server_aborts += e.aborted;
            s.preemptions += e.preemptions;
            s.prefill_tokens += e.prefill_tokens;
            s.generated_tokens += e.generated_tokens;
        }
        s
    }

    /// Errors over all kinds.
    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    /// The header of [`table_row`](Self::table_row)'s Markdown table.
    pub fn table_header() -> String {
        "| variant | ok | errors | TTFT p50 | TTFT p99 | TTFT max | retries | server submissions | server aborts | overtakes |\n|---|---|---|---|---|---|---|---|---|---|".to_owned()
    }

    /// One Markdown table row for this summary.
    pub fn table_row(&self, label: &str) -> String {
        let errors = if self.errors.is_empty() {
            "0".to_owned()
        } else {
            let kinds: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            format!("{} ({})", self.error_count(), kinds.join(", "))
        };
        format!(
            "| {label} | {}/{} | {errors} | {} | {} | {} | {} | {} | {} | {} |",
            self.ok,
            self.requests,
            secs(self.ttft_p50),
            secs(self.ttft_p99),
            secs(self.ttft_max),
            self.retries,
            self.server_submissions,
            self.server_aborts,
            self.overtakes,
        )
    }
}

fn secs(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.2} s", d.as_secs_f64()),
        None => "–".to_owned(),
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} ok, {} errors {:?}, TTFT p50 {} p90 {} p99 {} max {}, {} retries, {} server submissions",
            self.ok,
            self.requests,
            self.error_count(),
            self.errors,
            secs(self.ttft_p50),
            secs(self.ttft_p90),
            secs(self.ttft_p99),
            secs(self.ttft_max),
            self.retries,
            self.server_submissions
        )
    }
}
