//! Many clients, one fleet, in virtual time: 50 independent clients (each a pool over the same
//! 16 modelled vLLM replicas with `Concurrency::Auto`) under steady load, overload, a slow
//! replica and a replica that returns — fairness, the sum of the limits against the fleet's
//! batch capacity, the herd at a returning replica, and goodput against fixed limits.
//!
//! ```text
//! cargo run --release -p vllm-testkit --example many_clients [seconds] [seed] [clients] [replicas]
//! ```

use std::time::Duration;

use vllm_testkit::engine::many_clients::{ManyClients, ManyReport, Scenario, Strategy};

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(120);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let replicas: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let only: Option<String> = args.next();
    let spec = ManyClients {
        clients,
        replicas,
        duration: Duration::from_secs(secs),
        warmup: Duration::from_secs(secs / 4),
        seed,
        ..ManyClients::default()
    };
    println!(
        "{clients} clients × {replicas} replicas (batch capacity {}), capacity {:.1} req/s, {secs} s, metrics from {:?}, seed {seed}\n",
        replicas as u32 * spec.engine.max_num_seqs,
        spec.capacity(),
        spec.warmup
    );
    println!("{}", ManyReport::header());
    let scenarios = [
        Scenario::Steady,
        Scenario::Overload,
        Scenario::SlowReplica,
        Scenario::ReplicaReturns,
    ];
    for scenario in scenarios {
        if only
            .as_deref()
            .is_some_and(|o| !scenario.label().starts_with(o))
        {
            continue;
        }
        let auto = spec.run(scenario, &Strategy::auto());
        println!("{}", auto.row(scenario.label(), "Auto"));
        if matches!(scenario, Scenario::Steady | Scenario::Overload) {
            let mut best: Option<(u32, ManyReport)> = None;
            for n in [8u32, 16, 20, 24, 32] {
                let r = spec.run(scenario, &Strategy::Fixed(n));
                println!("{}", r.row(scenario.label(), &format!("fixed {n}")));
                if best.as_ref().is_none_or(|(_, b)| r.goodput > b.goodput) {
                    best = Some((n, r));
                }
            }
            if let Some((n, b)) = best {
                println!(
                    "| {} | Auto / best fixed ({n}) | | | {:.1} % | | | | | | |",
                    scenario.label(),
                    100.0 * auto.goodput / b.goodput.max(1e-9)
                );
            }
        }
    }
}
