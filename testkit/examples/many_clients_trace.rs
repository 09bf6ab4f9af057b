//! One many-clients scenario (50 clients × 16 replicas, `Concurrency::Auto`) as a time series:
//! every 5 s up to 120 s, the sum of the clients' limits in force, of their calls in flight
//! and waiting, and the replicas' running and waiting requests — how the sum of the limits
//! gets where it does (BENCHMARKS.md, "Many clients, one fleet").
//!
//! ```text
//! cargo run --release -p vllm-testkit --example many_clients_trace [steady|overload|slow|returns]
//! ```

use std::collections::BTreeMap;

use vllm_testkit::engine::many_clients::{ManyClients, ManyReport, Scenario, Strategy};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "overload".into());
    let scenario = match which.as_str() {
        "steady" => Scenario::Steady,
        "slow" => Scenario::SlowReplica,
        "returns" => Scenario::ReplicaReturns,
        _ => Scenario::Overload,
    };
    let spec = ManyClients::default();
    let r = spec.run(scenario, &Strategy::auto());
    // (Σ limits, Σ in flight, Σ waiting in the clients, running, waiting in the servers)
    let mut by: BTreeMap<u128, (u32, u32, usize, usize, usize)> = BTreeMap::new();
    for s in &r.outcome.samples {
        let e = by.entry(s.at.as_millis()).or_default();
        e.0 += s.limit.unwrap_or(0);
        e.1 += s.in_flight;
        e.2 += s.waiting;
    }
    for s in &r.outcome.replica_samples {
        let e = by.entry(s.at.as_millis()).or_default();
        e.3 += s.running;
        e.4 += s.waiting;
    }
    println!("{}\n", scenario.label());
    println!("| t | Σ limits | Σ in flight | Σ waiting (clients) | running (servers) | waiting (servers) |");
    println!("|---|---|---|---|---|---|");
    for (ms, v) in by
        .iter()
        .filter(|(ms, _)| *ms % 5000 == 0 && **ms <= 120_000)
    {
        println!(
            "| {:.0} s | {} | {} | {} | {} | {} |",
            *ms as f64 / 1000.0,
            v.0,
            v.1,
            v.2,
            v.3,
            v.4
        );
    }
    println!("\n{}", ManyReport::header());
    println!("{}", r.row(scenario.label(), "Auto"));
}
