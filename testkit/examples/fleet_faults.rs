//! The fault experiment of issue 22, in virtual time: 4 modelled vLLM replicas, one down for
//! 15 s, later another 4× slower for 15 s, 0.7× the fleet's capacity; round robin with a
//! semaphore per replica against the pool with `Concurrency::Auto`.
//!
//! ```text
//! cargo run --release -p vllm-testkit --example fleet_faults [seconds] [seed] [load] [processes]
//! ```

use std::time::Duration;

use vllm_testkit::engine::fault_experiment::{FaultReport, FaultSpec, FaultStrategy};

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(90);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    let load: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.7);
    let processes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let spec = FaultSpec {
        duration: Duration::from_secs(secs),
        seed,
        load,
        processes,
        ..FaultSpec::default()
    };
    println!(
        "{} client process(es); {} replicas; replica {} down in [{:?}, {:?}); replica {} {}× slower in [{:?}, {:?}); load {}× capacity ({:.1} req/s), {} requests, seed {seed}\n",
        spec.processes,
        spec.replicas,
        spec.down,
        spec.down_at,
        spec.down_at + spec.down_for,
        spec.slow,
        spec.slow_factor,
        spec.slow_at,
        spec.slow_at + spec.slow_for,
        spec.load,
        spec.load * spec.capacity(),
        spec.workload().len()
    );
    let rr = spec.run(&FaultStrategy::RoundRobin {
        semaphore: Some(64),
    });
    let pool = spec.run(&FaultStrategy::Pool(spec.pool_config()));
    println!("{}", FaultReport::header());
    println!(
        "{}",
        rr.row("round robin + semaphore 64 per replica (per process)", None)
    );
    println!("{}", pool.row("pool + Concurrency::Auto", Some(&rr)));
    println!();
    for (label, r) in [("round robin", &rr), ("pool", &pool)] {
        let w: Vec<String> = r
            .ttft_p50_windows
            .iter()
            .map(|(t, p)| {
                format!(
                    "{}s:{}",
                    t.as_secs(),
                    p.map_or("–".into(), |p| format!("{:.2}", p.as_secs_f64()))
                )
            })
            .collect();
        println!("{label}: TTFT p50 by arrival window: {}", w.join(" "));
        let s: Vec<String> = r
            .returning_share
            .iter()
            .map(|s| format!("{:.2}", s))
            .collect();
        println!(
            "{label}: the returning replica's share of attempts, second by second: {}",
            s.join(" ")
        );
    }
}
