//! Does the pool put more streams on the replica that dies than its share? The fault scenario
//! (`fleet_faults`) with round robin and with the pool, over eight seeds: the dying replica's
//! share of the streams running on the fleet just before it dies (the engines' own counters,
//! every 250 ms), and averaged over the 10 s before — against the streams cut when it dies.
//!
//! ```text
//! cargo run --release -p vllm-testkit --example fleet_faults_share [processes]
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use vllm_testkit::engine::fault_experiment::{FaultReport, FaultSpec, FaultStrategy};

/// The dying replica's running streams and the fleet's at the last sample before it dies,
/// and its mean share over the 10 s before.
fn share(spec: &FaultSpec, r: &FaultReport) -> (usize, usize, f64) {
    let last = spec.down_at.saturating_sub(Duration::from_millis(250));
    let from = spec.down_at.saturating_sub(Duration::from_secs(10));
    let (mut mine, mut all) = (0, 0);
    let mut window: BTreeMap<Duration, (usize, usize)> = BTreeMap::new();
    for s in &r.outcome.replica_samples {
        if s.at == last {
            all += s.running;
            if s.replica == spec.down {
                mine += s.running;
            }
        }
        if s.at >= from && s.at < spec.down_at {
            let e = window.entry(s.at).or_default();
            e.1 += s.running;
            if s.replica == spec.down {
                e.0 += s.running;
            }
        }
    }
    let shares: Vec<f64> = window
        .values()
        .filter(|(_, a)| *a > 0)
        .map(|(m, a)| *m as f64 / *a as f64)
        .collect();
    let mean = shares.iter().sum::<f64>() / shares.len().max(1) as f64;
    (mine, all, mean)
}

fn main() {
    let processes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4);
    println!("{processes} client process(es); the replica that dies: its running streams / the fleet's just before, its mean share over the 10 s before\n");
    println!("| seed | setup | errors | running on it / all | share | mean share |");
    println!("|---|---|---|---|---|---|");
    for seed in [42u64, 1, 2, 3, 7, 11, 13, 17] {
        let spec = FaultSpec {
            seed,
            processes,
            ..FaultSpec::default()
        };
        let setups = [
            (
                "round robin",
                FaultStrategy::RoundRobin {
                    semaphore: Some(64),
                },
            ),
            ("pool", FaultStrategy::Pool(spec.pool_config())),
        ];
        for (name, strategy) in setups {
            let r = spec.run(&strategy);
            let (mine, all, mean) = share(&spec, &r);
            println!(
                "| {seed} | {name} | {} | {mine} / {all} | {:.3} | {mean:.3} |",
                r.summary.error_count(),
                mine as f64 / all.max(1) as f64
            );
        }
    }
}
