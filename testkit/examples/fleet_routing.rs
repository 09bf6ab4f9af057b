//! The routing experiment: 3 vLLM replicas (the testkit's engine model), one 3× slower, one
//! down for the middle third of the run; one client with all three as endpoints against one
//! client per replica dealt round robin, over the same arrivals.
//!
//! ```text
//! cargo run --release -p vllm-testkit --example fleet_routing [seconds] [seed] [load]
//! ```

use std::time::Duration;

use vllm_testkit::engine::routing_experiment::{compare, RoutingSpec};
use vllm_testkit::engine::Summary;

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(120);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    let load: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.4);
    for ftt in [Some(Duration::from_secs(10)), None] {
        let spec = RoutingSpec {
            duration: Duration::from_secs(secs),
            seed,
            first_token_timeout: ftt,
            load,
            ..RoutingSpec::default()
        };
        println!(
            "{} replicas (replica 1 {}× slower, replica 2 down for the middle third), load {}× nominal capacity, {secs} s, {} requests, seed {seed}, first-token timeout {ftt:?}\n",
            spec.replicas,
            spec.slow_factor,
            spec.load,
            spec.workload().len()
        );
        let [rr, pool] = compare(&spec);
        println!("{}", Summary::table_header());
        println!("{}", rr.table_row("round robin, one client per replica"));
        println!("{}", pool.table_row("one client, endpoints([...])"));
        println!();
    }
}
