//! The adaptive concurrency limit against fixed limits, in virtual time: 4 modelled vLLM
//! replicas (`max_num_seqs` 64 each), one client per replica, 2 048 closed-loop callers and
//! an open-loop overload at 1.5× capacity; the closed loop again with a first-token timeout;
//! then a slowed replica and its recovery.
//!
//! ```text
//! cargo run --release -p vllm-testkit --example adaptive_eval [seconds] [seed]
//! ```

use std::time::Duration;

use vllm_client_core::policy::AdaptiveConfig;
use vllm_testkit::engine::limits::{
    evaluate, mean_limit_of, recovered_at, LimitEval, LimitLoad, LimitRow, LimitStrategy,
};
use vllm_testkit::engine::{EngineConfig, Fault};

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(120);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    let spec = LimitEval {
        duration: Duration::from_secs(secs),
        seed,
        ..LimitEval::default()
    };
    let auto = LimitStrategy::Auto(AdaptiveConfig::default());
    println!(
        "{} replicas, max_num_seqs {}, KV {} tokens; prompts {:?}, outputs {:?} tokens; {} s of load, metrics over [{} s, {} s); seed {}\n",
        spec.replicas,
        spec.engine.max_num_seqs,
        spec.engine.kv_capacity_tokens,
        spec.prompt_tokens,
        spec.max_tokens,
        secs,
        spec.warmup.as_secs(),
        secs,
        seed
    );

    // Unloaded: 8 callers per replica, no limit.
    let (unloaded, _) = evaluate(
        &spec,
        &LimitLoad::Closed {
            callers: 8 * spec.replicas,
        },
        &LimitStrategy::None,
    );
    let unloaded_p99 = unloaded.server_ttft_p99.unwrap_or_default();
    println!(
        "unloaded (8 callers per replica, no limit): server TTFT p50 {:.3} s, p99 {:.3} s\n",
        unloaded.server_ttft_p50.unwrap_or_default().as_secs_f64(),
        unloaded_p99.as_secs_f64()
    );

    let sweep = [48u32, 56, 60, 64, 68, 72, 80, 96, 128];
    let loads = [
        (
            "2 048 closed-loop callers",
            LimitLoad::Closed { callers: 2048 },
        ),
        (
            "open loop at 1.5× capacity",
            LimitLoad::Open { overload: 1.5 },
        ),
    ];
    for (name, load) in loads {
        println!("### {name}\n");
        let mut best: Option<LimitRow> = None;
        let mut sweep_rows = Vec::new();
        for &n in &sweep {
            let (row, _) = evaluate(&spec, &load, &LimitStrategy::Fixed(n));
            sweep_rows.push(format!("{n}: {:.0}", row.goodput));
            if best.as_ref().is_none_or(|b| row.goodput > b.goodput) {
                best = Some(row);
            }
        }
        println!(
            "sweep of fixed limits (goodput, tokens/s): {}\n",
            sweep_rows.join(", ")
        );
        println!("{}", LimitRow::header());
        let fixed = [
            LimitStrategy::None,
            LimitStrategy::Fixed(16),
            LimitStrategy::Fixed(64),
            LimitStrategy::Fixed(256),
        ];
        for s in fixed {
            let (row, _) = evaluate(&spec, &load, &s);
            println!("{}", row.row());
        }
        let best = best.expect("a sweep row");
        let mut best_row = best.clone();
        best_row.label = format!("best fixed ({}, by the sweep)", best.label);
        println!("{}", best_row.row());
        let (row, _) = evaluate(&spec, &load, &auto);
        println!("{}", row.row());
        let p99 = row.server_ttft_p99.unwrap_or_default();
        let ttft_ok = p99 <= unloaded_p99 * 2;
        let share = row.goodput / best.goodput;
        println!(
            "\nAuto: server TTFT p99 {:.3} s vs 2 × unloaded {:.3} s: {}; goodput {:.1} % of the best fixed: {}\n",
            p99.as_secs_f64(),
            (unloaded_p99 * 2).as_secs_f64(),
            if ttft_ok { "MET" } else { "MISSED" },
            100.0 * share,
            if share >= 0.95 { "MET" } else { "MISSED" },
        );
    }

    // With a first-token timeout: a call the server keeps queued fails instead of waiting.
    println!("### 2 048 closed-loop callers, first_token_timeout 10 s\n");
    let ftt = LimitEval {
        first_token_timeout: Some(Duration::from_secs(10)),
        ..spec.clone()
    };
    println!("{}", LimitRow::header());
    for s in [
        LimitStrategy::None,
        LimitStrategy::Fixed(64),
        LimitStrategy::Fixed(256),
        auto.clone(),
    ] {
        let (row, _) = evaluate(&ftt, &LimitLoad::Closed { callers: 2048 }, &s);
        println!("{}", row.row());
    }
    println!();

    // Recovery: replica 0 three times slower in [60 s, 120 s), 2 048 callers for 180 s.
    println!("### a slowed replica and its recovery\n");
    let slow_from = Duration::from_secs(60);
    let slow_to = Duration::from_secs(120);
    let rec = LimitEval {
        duration: Duration::from_secs(180),
        engine_overrides: vec![(
            0,
            EngineConfig::default().with_fault(Fault::slow(slow_from, slow_to, 3.0)),
        )],
        ..spec.clone()
    };
    let (_, out) = evaluate(&rec, &LimitLoad::Closed { callers: 2048 }, &auto);
    let initial = AdaptiveConfig::default().initial;
    let prior = mean_limit_of(&out, 0, initial, Duration::from_secs(40), slow_from);
    let during = mean_limit_of(
        &out,
        0,
        initial,
        slow_from + Duration::from_secs(10),
        slow_to,
    );
    let at = recovered_at(&out, 0, initial, prior, 0.1, slow_to);
    let just_after = mean_limit_of(&out, 0, initial, slow_to, slow_to + Duration::from_secs(30));
    let after = mean_limit_of(
        &out,
        0,
        initial,
        slow_to + Duration::from_secs(30),
        rec.duration,
    );
    let others = mean_limit_of(&out, 1, initial, slow_from, slow_to);
    println!(
        "replica 0 ×3 slower in [60 s, 120 s): its limit averaged {prior:.1} over [40 s, 60 s), {during:.1} over [70 s, 120 s) (replica 1 meanwhile: {others:.1}), {just_after:.1} over [120 s, 150 s), {after:.1} over [150 s, 180 s)"
    );
    match at {
        Some(t) => {
            let took = t.saturating_sub(slow_to);
            println!(
                "back within 10 % of {prior:.1} {:.1} s after the replica recovered: {}",
                took.as_secs_f64(),
                if took <= Duration::from_secs(30) {
                    "MET"
                } else {
                    "MISSED"
                }
            );
        }
        None => println!("never back within 10 % of {prior:.1}: MISSED"),
    }
    println!("\nlimit of replica 0's client every 5 s:");
    let mut line = Vec::new();
    for t in (0..=180).step_by(5) {
        line.push(format!(
            "{t}s:{}",
            out.limit_at(0, Duration::from_secs(t), initial)
        ));
    }
    println!("{}", line.join(" "));
}
