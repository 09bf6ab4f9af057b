//! The overload experiment: 4 vLLM replicas (the testkit's engine model) offered 1.5× their
//! measured capacity for 180 s of virtual time, with and without a client-side
//! `max_concurrency(16)` and a first-token timeout.
//!
//! ```text
//! cargo run --release -p vllm-testkit --example fleet_overload [seconds] [seed]
//! ```

use std::time::Duration;

use vllm_testkit::engine::experiment::{overload_outcome, OverloadSpec};
use vllm_testkit::engine::{Summary, WakeOrder};

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(180);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    let base = OverloadSpec {
        duration: Duration::from_secs(secs),
        seed,
        ..OverloadSpec::default()
    };
    let capacity = base.capacity();
    let workload = base.workload();
    println!(
        "{} replicas × {} clients each; engine: max_num_seqs {}, KV {} tokens; prompts {:?}, outputs {:?} tokens",
        base.replicas,
        base.clients_per_replica,
        base.engine.max_num_seqs,
        base.engine.kv_capacity_tokens,
        base.prompt_tokens,
        base.max_tokens
    );
    println!(
        "measured capacity {capacity:.1} req/s; offered {:.1} req/s ({}×) for {secs} s: {} requests (seed {seed})\n",
        base.overload * capacity,
        base.overload,
        workload.len()
    );
    let ftt = Duration::from_secs(10);
    let random = WakeOrder::Random { seed };
    let oldest = WakeOrder::Named;
    let variants: Vec<(&str, Option<u32>, Option<Duration>, WakeOrder)> = vec![
        ("(a) no limit, default timeouts", None, None, oldest),
        (
            "(b) max_concurrency(16), default timeouts",
            Some(16),
            None,
            oldest,
        ),
        (
            "(b') as (b), every waiter woken at once, in random order",
            Some(16),
            None,
            random,
        ),
        ("(c) no limit, first_token 10 s", None, Some(ftt), oldest),
        (
            "(d) max_concurrency(16), first_token 10 s",
            Some(16),
            Some(ftt),
            oldest,
        ),
    ];
    println!("{}", Summary::table_header());
    let mut details = Vec::new();
    for (label, limit, first_token, wake_order) in variants {
        let spec = OverloadSpec {
            max_concurrency: limit,
            first_token_timeout: first_token,
            wake_order,
            ..base.clone()
        };
        let out = overload_outcome(&spec);
        println!("{}", out.summary.table_row(label));
        let max_waiting: Vec<usize> = out.engines.iter().map(|e| e.max_waiting).collect();
        details.push(format!(
            "{label}: TTFT p90 {:.2} s; preemptions {}; server-side TTFT p50 {:.2} s p99 {:.2} s; latency p50 {:.2} s p99 {:.2} s; gave up {:?}; prefill tokens {}; engine max waiting {:?}; virtual end {:.0} s; steps {}{}",
            secs_of(out.summary.ttft_p90),
            out.summary.preemptions,
            secs_of(server_ttft(&out, 50)),
            secs_of(server_ttft(&out, 99)),
            secs_of(out.summary.latency_p50),
            secs_of(out.summary.latency_p99),
            out.summary.gave_up,
            out.summary.prefill_tokens,
            max_waiting,
            out.elapsed.as_secs_f64(),
            out.steps,
            if out.step_limit_hit { " (STEP LIMIT)" } else { "" },
        ));
    }
    println!();
    for d in details {
        println!("{d}");
    }
}

fn server_ttft(out: &vllm_testkit::engine::FleetOutcome, p: u32) -> Option<Duration> {
    let mut v: Vec<Duration> = out.records.iter().filter_map(|r| r.server_ttft()).collect();
    v.sort_unstable();
    vllm_testkit::engine::summary::percentile(&v, p)
}

fn secs_of(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64())
}
