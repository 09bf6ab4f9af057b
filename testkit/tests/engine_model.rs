//! The vLLM engine model's exact timelines, and the fleet simulator's smoke tests.

use std::time::{Duration, Instant};

use vllm_testkit::engine::{Engine, EngineConfig, Fault, Output, RequestId, RequestSpec};

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs the engine through every event up to `until` (offset), returning each output with its
/// offset in microseconds.
fn run_until(e: &mut Engine, t0: Instant, until: Duration) -> Vec<(u64, u64, Output)> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let Some(t) = e.next_event_at() else { break };
        if t > t0 + until {
            break;
        }
        e.advance(t);
        while let Some((id, o)) = e.poll_output() {
            out.push((t.duration_since(t0).as_micros() as u64, id.0, o));
        }
    }
    e.advance(t0 + until);
    while let Some((id, o)) = e.poll_output() {
        out.push((until.as_micros() as u64, id.0, o));
    }
    out
}

fn fin(prompt: u32, completion: u32, preemptions: u32) -> Output {
    Output::Finished {
        prompt_tokens: prompt,
        completion_tokens: completion,
        preemptions,
    }
}

#[test]
fn one_request_pays_prefill_then_one_token_per_step() {
    let t0 = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), t0);
    let id = e.submit(t0, RequestSpec::stream(100, 3));
    assert_eq!(id, RequestId(0));
    // Nothing before the batch is formed.
    assert_eq!(e.next_event_at(), Some(t0));
    assert_eq!(e.num_waiting(), 1);
    e.advance(t0);
    assert_eq!((e.num_waiting(), e.num_running()), (0, 1));
    // 15 ms + 0.25 ms × 1 + 0.1 ms × 100 prompt tokens.
    assert_eq!(e.next_event_at(), Some(t0 + us(25_250)));
    let out = run_until(&mut e, t0, ms(1000));
    assert_eq!(
        out,
        vec![
            (25_250, 0, Output::FirstToken),
            (40_500, 0, Output::Token),
            (55_750, 0, Output::Token),
            (55_750, 0, fin(100, 3, 0)),
        ]
    );
    assert_eq!(e.next_event_at(), None);
    let s = e.stats();
    assert_eq!(
        (s.submitted, s.finished, s.steps, s.prefill_tokens),
        (1, 1, 3, 100)
    );
    assert_eq!(s.generated_tokens, 3);
}

#[test]
fn two_requests_at_one_instant_batch_together() {
    let t0 = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), t0);
    e.submit(t0, RequestSpec::stream(100, 2));
    e.submit(t0, RequestSpec::json(200, 2));
    let out = run_until(&mut e, t0, ms(1000));
    // Step 1: 15 + 0.25 × 2 + 0.1 × 300 = 45.5 ms; step 2: 15.5 ms.
    assert_eq!(
        out,
        vec![
            (45_500, 0, Output::FirstToken),
            (45_500, 1, Output::FirstToken),
            (61_000, 0, Output::Token),
            (61_000, 0, fin(100, 2, 0)),
            (61_000, 1, Output::Token),
            (61_000, 1, fin(200, 2, 0)),
        ]
    );
}

#[test]
fn a_newcomer_joins_at_the_next_step_and_its_prefill_slows_everyone() {
    let t0 = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), t0);
    e.submit(t0, RequestSpec::stream(100, 3));
    e.advance(t0);
    // Arrives mid-step: waits for the step boundary at 25.25 ms.
    e.submit(t0 + ms(10), RequestSpec::stream(400, 1));
    assert_eq!(e.num_waiting(), 1);
    let out = run_until(&mut e, t0, ms(1000));
    assert_eq!(
        out,
        vec![
            (25_250, 0, Output::FirstToken),
            // 15 + 0.25 × 2 + 0.1 × 400 = 55.5 ms: request 0's token waits for 1's prefill.
            (80_750, 0, Output::Token),
            (80_750, 1, Output::FirstToken),
            (80_750, 1, fin(400, 1, 0)),
            (96_000, 0, Output::Token),
            (96_000, 0, fin(100, 3, 0)),
        ]
    );
}

#[test]
fn requests_beyond_max_num_seqs_wait_in_fifo_order() {
    let t0 = Instant::now();
    let cfg = EngineConfig {
        max_num_seqs: 2,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(cfg, t0);
    for _ in 0..3 {
        e.submit(t0, RequestSpec::stream(0, 2));
    }
    e.advance(t0);
    assert_eq!((e.num_running(), e.num_waiting()), (2, 1));
    let out = run_until(&mut e, t0, ms(1000));
    assert_eq!(
        out,
        vec![
            (15_500, 0, Output::FirstToken),
            (15_500, 1, Output::FirstToken),
            (31_000, 0, Output::Token),
            (31_000, 0, fin(0, 2, 0)),
            (31_000, 1, Output::Token),
            (31_000, 1, fin(0, 2, 0)),
            (46_250, 2, Output::FirstToken),
            (61_500, 2, Output::Token),
            (61_500, 2, fin(0, 2, 0)),
        ]
    );
    assert_eq!(e.stats().max_waiting, 3);
}

#[test]
fn the_newest_sequence_is_preempted_at_kv_capacity_and_recomputed() {
    let t0 = Instant::now();
    let cfg = EngineConfig {
        kv_capacity_tokens: 10,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(cfg, t0);
    e.submit(t0, RequestSpec::stream(4, 4));
    e.submit(t0, RequestSpec::stream(4, 4));
    let out = run_until(&mut e, t0, ms(1000));
    assert_eq!(
        out,
        vec![
            // Both fit for the first step (5 + 5 ≤ 10): 15 + 0.5 + 0.8 ms.
            (16_300, 0, Output::FirstToken),
            (16_300, 1, Output::FirstToken),
            // Step 2 needs 6 + 6 > 10: request 1 is preempted and waits; 0 runs alone.
            (31_550, 0, Output::Token),
            (46_800, 0, Output::Token),
            (62_050, 0, Output::Token),
            (62_050, 0, fin(4, 4, 0)),
            // Rescheduled: prefill of 4 prompt + 1 generated tokens, 15 + 0.25 + 0.5 ms.
            (77_800, 1, Output::Token),
            (93_050, 1, Output::Token),
            (108_300, 1, Output::Token),
            (108_300, 1, fin(4, 4, 1)),
        ]
    );
    let s = e.stats();
    assert_eq!(
        (s.preemptions, s.prefill_tokens, s.generated_tokens),
        (1, 13, 8)
    );
}

#[test]
fn a_preempted_sequence_goes_to_the_front_of_the_queue() {
    let t0 = Instant::now();
    let cfg = EngineConfig {
        kv_capacity_tokens: 10,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(cfg, t0);
    e.submit(t0, RequestSpec::stream(4, 4));
    e.submit(t0, RequestSpec::stream(4, 4));
    e.advance(t0);
    // Arrives during step 1, before the preemption of request 1 at its end.
    e.submit(t0 + ms(1), RequestSpec::stream(1, 1));
    let out = run_until(&mut e, t0, ms(1000));
    // Request 2 would fit next to 0 (2 tokens), but 1 is at the queue's front and does not:
    // head-of-line blocking keeps 2 waiting until 0 finishes at 62.05 ms; then 1 and 2 are
    // scheduled together (prefill 5 + 1 tokens: 15 + 0.5 + 0.6 = 16.1 ms).
    let of = |id: u64| -> Vec<(u64, Output)> {
        out.iter()
            .filter(|o| o.1 == id)
            .map(|o| (o.0, o.2))
            .collect()
    };
    assert_eq!(
        of(2),
        vec![(78_150, Output::FirstToken), (78_150, fin(1, 1, 0))]
    );
    assert_eq!(of(1)[1], (78_150, Output::Token));
    assert_eq!(of(0).last(), Some(&(62_050, fin(4, 4, 0))));
}

#[test]
fn abort_frees_the_slot_at_the_next_step() {
    let t0 = Instant::now();
    let cfg = EngineConfig {
        max_num_seqs: 1,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(cfg, t0);
    let a = e.submit(t0, RequestSpec::stream(0, 10));
    e.submit(t0, RequestSpec::stream(0, 1));
    let c = e.submit(t0, RequestSpec::stream(0, 1));
    let mut out = run_until(&mut e, t0, ms(20));
    assert_eq!(out, vec![(15_250, 0, Output::FirstToken)]);
    // A disconnect mid-step: the step still ends at 30.5 ms, without a token for `a`.
    assert!(e.abort(t0 + ms(20), a));
    assert!(
        e.abort(t0 + ms(20), c),
        "a waiting request can be aborted too"
    );
    assert!(!e.abort(t0 + ms(20), a), "only once");
    assert!(!e.abort(t0 + ms(20), RequestId(99)));
    out = run_until(&mut e, t0, ms(1000));
    assert_eq!(
        out,
        vec![(45_750, 1, Output::FirstToken), (45_750, 1, fin(0, 1, 0))]
    );
    assert_eq!(e.stats().aborted, 2);
}

#[test]
fn abort_drops_outputs_not_yet_polled() {
    let t0 = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), t0);
    let a = e.submit(t0, RequestSpec::stream(0, 50));
    e.advance(t0);
    e.advance(t0 + ms(100));
    assert!(e.abort(t0 + ms(100), a));
    assert_eq!(e.poll_output(), None);
}

#[test]
fn slow_windows_and_speed_scale_steps() {
    let t0 = Instant::now();
    let cfg = EngineConfig::default().with_fault(Fault::slow(ms(0), ms(20), 2.0));
    let mut e = Engine::new(cfg, t0);
    e.submit(t0, RequestSpec::stream(0, 2));
    let out = run_until(&mut e, t0, ms(1000));
    // Step 1 starts in the window (×2), step 2 at 30.5 ms after it.
    assert_eq!(
        out,
        vec![
            (30_500, 0, Output::FirstToken),
            (45_750, 0, Output::Token),
            (45_750, 0, fin(0, 2, 0)),
        ]
    );

    let mut fast = Engine::new(EngineConfig::default().with_speed(2.0), t0);
    fast.submit(t0, RequestSpec::stream(0, 1));
    let out = run_until(&mut fast, t0, ms(1000));
    assert_eq!(out[0], (7_625, 0, Output::FirstToken));
}

#[test]
fn a_down_window_loses_everything_in_flight_and_refuses_new_requests() {
    let t0 = Instant::now();
    let cfg = EngineConfig::default()
        .with_fault(Fault::down(ms(10), ms(50)))
        .with_fault(Fault::errors(ms(60), ms(70)));
    let mut e = Engine::new(cfg, t0);
    e.submit(t0, RequestSpec::stream(0, 5));
    e.submit(t0, RequestSpec::stream(0, 5));
    let out = run_until(&mut e, t0, ms(20));
    assert_eq!(
        out,
        vec![(10_000, 0, Output::Lost), (10_000, 1, Output::Lost)]
    );
    assert!(e.is_down(t0 + ms(20)) && !e.is_down(t0 + ms(50)));
    e.submit(t0 + ms(20), RequestSpec::stream(0, 1));
    assert_eq!(e.poll_output(), Some((RequestId(2), Output::Lost)));
    e.submit(t0 + ms(50), RequestSpec::stream(0, 1));
    let out = run_until(&mut e, t0, ms(1000));
    assert_eq!(
        out,
        vec![(65_250, 3, Output::FirstToken), (65_250, 3, fin(0, 1, 0))]
    );
    assert!(e.is_failing(t0 + ms(60)) && !e.is_failing(t0 + ms(70)));
    assert_eq!(e.stats().lost, 3);
}

#[test]
fn impossible_requests_are_rejected_at_once() {
    let t0 = Instant::now();
    let cfg = EngineConfig {
        kv_capacity_tokens: 100,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(cfg, t0);
    e.submit(t0, RequestSpec::stream(10, 0));
    e.submit(t0, RequestSpec::stream(90, 11));
    e.submit(t0, RequestSpec::stream(90, 10));
    assert_eq!(e.poll_output(), Some((RequestId(0), Output::Rejected)));
    assert_eq!(e.poll_output(), Some((RequestId(1), Output::Rejected)));
    assert_eq!(e.poll_output(), None);
    let out = run_until(&mut e, t0, ms(10_000));
    assert_eq!(out.last().map(|o| o.2), Some(fin(90, 10, 0)));
}

// ---------------------------------------------------------------------------------------------
// The fleet simulator
// ---------------------------------------------------------------------------------------------

mod fleet {
    use std::time::Duration;

    use vllm_client_core::config::ClientConfig;
    use vllm_client_core::policy::GiveUpReason;
    use vllm_testkit::engine::fleet::expected_text;
    use vllm_testkit::engine::{
        Arrival, ClientSetup, EngineConfig, ErrorKind, Fault, FleetSim, PoissonSpec, ResultKind,
        Workload,
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn one(at: Duration, prompt: u32, max: u32, stream: bool) -> Arrival {
        Arrival {
            at,
            client: 0,
            prompt_tokens: prompt,
            max_tokens: max,
            stream,
        }
    }

    fn fleet(engine: EngineConfig, config: ClientConfig) -> FleetSim {
        FleetSim::new(vec![engine], vec![ClientSetup::new(config, 0, 7)]).keep_text(true)
    }

    #[test]
    fn one_stream_gets_its_tokens_at_the_engines_instants() {
        let sim = fleet(EngineConfig::default(), ClientConfig::default());
        let out = sim.run(&Workload::new(vec![one(ms(0), 100, 3, true)]));
        let r = &out.records[0];
        assert_eq!(r.result, ResultKind::Ok);
        assert_eq!(r.sends, vec![ms(0)]);
        assert_eq!(r.first_token, Some(Duration::from_micros(25_250)));
        assert_eq!(r.end, Some(Duration::from_micros(55_750)));
        assert_eq!(r.text.as_deref(), Some("t0 t1 t2 "));
        assert_eq!(
            (r.tokens_received, r.text_exact, r.attempts),
            (3, Some(true), 1)
        );
        assert_eq!(out.summary.server_submissions, 1);
        assert!(!out.step_limit_hit);
    }

    #[test]
    fn a_json_call_gets_its_head_when_the_engine_finishes() {
        let sim = fleet(EngineConfig::default(), ClientConfig::default());
        let out = sim.run(&Workload::new(vec![one(ms(5), 100, 3, false)]));
        let r = &out.records[0];
        assert_eq!(r.result, ResultKind::Ok);
        assert_eq!(r.first_token, None);
        assert_eq!(r.end, Some(ms(5) + Duration::from_micros(55_750)));
        assert_eq!(r.text.as_deref(), Some("t0 t1 t2 "));
        assert_eq!(r.text_exact, Some(true));
    }

    #[test]
    fn a_request_too_big_for_the_cache_is_a_400_and_not_retried() {
        let engine = EngineConfig {
            kv_capacity_tokens: 100,
            ..EngineConfig::default()
        };
        let out = fleet(engine, ClientConfig::default()).run(&Workload::new(vec![one(
            ms(0),
            100,
            10,
            true,
        )]));
        assert_eq!(
            out.records[0].result,
            ResultKind::Failed(ErrorKind::Status(400))
        );
        assert_eq!(out.records[0].attempts, 1);
    }

    fn poisson(rate: f64, secs: u64, seed: u64) -> Workload {
        Workload::poisson(PoissonSpec {
            seed,
            rate_per_sec: rate,
            duration: Duration::from_secs(secs),
            clients: 1,
            prompt_tokens: (100, 700),
            max_tokens: (20, 120),
            stream_share: 0.8,
        })
    }

    #[test]
    fn under_load_ttft_grows_and_no_text_is_lost() {
        let light =
            fleet(EngineConfig::default(), ClientConfig::default()).run(&poisson(2.0, 30, 3));
        let heavy =
            fleet(EngineConfig::default(), ClientConfig::default()).run(&poisson(40.0, 30, 3));
        for out in [&light, &heavy] {
            assert!(!out.step_limit_hit);
            assert_eq!(out.summary.ok, out.summary.requests, "{}", out.summary);
            assert_eq!(out.summary.text_mismatches, 0);
            for r in &out.records {
                assert_eq!(r.text_exact, Some(true));
                let n = r.arrival.max_tokens;
                assert_eq!(r.text.as_deref(), Some(expected_text(n).as_str()));
                if r.arrival.stream {
                    assert_eq!(r.tokens_received, n);
                }
            }
        }
        let (l, h) = (
            light.summary.ttft_p50.unwrap(),
            heavy.summary.ttft_p50.unwrap(),
        );
        assert!(
            l < ms(100),
            "light load: TTFT is about one prefill step, got {l:?}"
        );
        assert!(h > l * 10, "heavy load queues: {l:?} vs {h:?}");
        assert!(heavy.engines[0].max_waiting > 10);
    }

    #[test]
    fn preemptions_keep_every_token_exactly_once() {
        let engine = EngineConfig {
            kv_capacity_tokens: 4_000,
            ..EngineConfig::default()
        };
        let out = fleet(engine, ClientConfig::default()).run(&poisson(6.0, 20, 5));
        assert!(out.summary.preemptions > 0, "{:?}", out.engines[0]);
        assert_eq!(out.summary.ok, out.summary.requests, "{}", out.summary);
        assert_eq!(out.summary.text_mismatches, 0);
        assert!(out.records.iter().all(|r| r.text_exact == Some(true)));
    }

    #[test]
    fn a_first_token_timeout_aborts_on_the_server_and_by_default_does_not_resubmit() {
        // The default: a first-token timeout against the one server is not retried (a retry
        // would queue again at the back); the request is aborted on the server once.
        let mut config = ClientConfig::default();
        config.policy.timeouts.first_token = Some(Duration::from_secs(2));
        let out = fleet(EngineConfig::default(), config).run(&poisson(40.0, 20, 3));
        let s = &out.summary;
        assert!(s.server_aborts > 0 && s.error_count() > 0, "{s}");
        assert_eq!(s.retries, 0, "{s}");
        assert_eq!(s.server_submissions, s.requests as u64, "{s}");
        assert!(out.records.iter().all(|r| r.sends.len() <= 1));
        let gave_up: Vec<_> = out.records.iter().filter_map(|r| r.gave_up).collect();
        assert_eq!(gave_up.len(), s.error_count(), "{s}");
        assert!(gave_up
            .iter()
            .all(|g| *g == GiveUpReason::FirstTokenTimeout));
    }

    #[test]
    fn an_opted_in_first_token_retry_aborts_on_the_server_and_resubmits() {
        let mut config = ClientConfig::default();
        config.policy.timeouts.first_token = Some(Duration::from_secs(2));
        config.policy.retry.retry_first_token_timeout = true;
        let out = fleet(EngineConfig::default(), config).run(&poisson(40.0, 20, 3));
        let s = &out.summary;
        assert!(s.retries > 0 && s.server_aborts > 0, "{s}");
        assert!(s.server_submissions > s.requests as u64);
        assert_eq!(s.text_mismatches, 0);
        // Every server-side TTFT of a success is within the first-token timeout.
        for r in out
            .records
            .iter()
            .filter(|r| r.result.is_ok() && r.arrival.stream)
        {
            assert!(r.server_ttft().unwrap() <= Duration::from_secs(2));
        }
    }

    #[test]
    fn faults_are_seen_as_connect_errors_and_503s_and_retried() {
        let engine = EngineConfig::default()
            .with_fault(Fault::down(ms(100), ms(300)))
            .with_fault(Fault::errors(ms(1000), ms(1200)));
        let arrivals = vec![
            one(ms(0), 100, 50, true),    // in flight when the replica goes down
            one(ms(150), 100, 5, true),   // refused, then retried after the window
            one(ms(1100), 100, 5, false), // 503, then retried
        ];
        let out = fleet(engine, ClientConfig::default()).run(&Workload::new(arrivals));
        let r = &out.records;
        assert_eq!(
            r[0].result,
            ResultKind::FailedMidStream(ErrorKind::Truncated)
        );
        assert!(r[0].tokens_received > 0);
        assert!(r[1].result.is_ok() && r[1].attempts >= 2, "{:?}", r[1]);
        assert!(r[2].result.is_ok() && r[2].attempts >= 2, "{:?}", r[2]);
        assert_eq!(out.engines[0].lost, 1);
    }

    #[test]
    fn a_client_limit_queues_calls_client_side() {
        let mut config = ClientConfig::default();
        config.policy.max_concurrency = Some(2);
        let arrivals: Vec<Arrival> = (0..5).map(|_| one(ms(0), 0, 3, true)).collect();
        let out = fleet(EngineConfig::default(), config).run(&Workload::new(arrivals));
        assert_eq!(out.summary.ok, 5);
        let mut first_sends: Vec<Duration> = out.records.iter().map(|r| r.sends[0]).collect();
        first_sends.sort();
        // Two at once; each later call is sent when an earlier one ended.
        assert_eq!(first_sends[0], ms(0));
        assert_eq!(first_sends[1], ms(0));
        let ends: Vec<Duration> = out.records.iter().filter_map(|r| r.end).collect();
        for s in &first_sends[2..] {
            assert!(ends.contains(s), "sent at {s:?}, ends {ends:?}");
        }
        assert!(out.engines[0].max_waiting <= 2);
    }
}

// ---------------------------------------------------------------------------------------------
// The overload experiment
// ---------------------------------------------------------------------------------------------

mod overload {
    use std::time::Duration;

    use vllm_testkit::engine::experiment::{overload, overload_outcome, OverloadSpec};
    use vllm_testkit::engine::WakeOrder;

    fn short() -> OverloadSpec {
        OverloadSpec {
            duration: Duration::from_secs(20),
            ..OverloadSpec::default()
        }
    }

    #[test]
    fn the_experiment_is_deterministic() {
        assert_eq!(overload(&short()), overload(&short()));
    }

    #[test]
    fn a_client_limit_moves_the_queue_from_the_servers_to_the_clients() {
        let a = overload_outcome(&short());
        let b = overload_outcome(&OverloadSpec {
            max_concurrency: Some(16),
            ..short()
        });
        for out in [&a, &b] {
            assert!(!out.step_limit_hit);
            assert_eq!(out.summary.text_mismatches, 0);
            assert_eq!(
                out.summary.overtakes, 0,
                "oldest waiter first: FIFO per client"
            );
        }
        // Overloaded: the servers' queues grow without a limit…
        assert!(
            a.engines.iter().all(|e| e.max_waiting > 30),
            "{:?}",
            a.engines
        );
        // …and stay short with 4 clients × 16 = max_num_seqs per replica.
        assert!(
            b.engines.iter().all(|e| e.max_waiting <= 8),
            "{:?}",
            b.engines
        );
        assert!(
            a.summary.ttft_p50 > Some(Duration::from_secs(2)),
            "{}",
            a.summary
        );
        assert!(
            b.summary.ttft_p50 > Some(Duration::from_secs(2)),
            "{}",
            b.summary
        );
    }

    #[test]
    fn a_first_token_timeout_sheds_and_resubmits_but_not_behind_a_client_limit() {
        let ft = Some(Duration::from_secs(5));
        let c = overload(&OverloadSpec {
            first_token_timeout: ft,
            retry_first_token_timeout: true,
            ..short()
        });
        assert!(c.retries > 0 && c.error_count() > 0, "{c}");
        assert!(c.server_submissions > c.requests as u64, "{c}");
        // The first-token timer starts with the attempt, after the permit: a call queued in
        // its client never trips it.
        let d = overload(&OverloadSpec {
            first_token_timeout: ft,
            max_concurrency: Some(16),
            ..short()
        });
        assert_eq!((d.retries, d.error_count()), (0, 0), "{d}");
    }

    #[test]
    fn waking_every_waiter_in_random_order_cannot_break_first_come_first_served() {
        // An adapter that woke every waiter and let them race would reorder admissions with a
        // racy limiter (measured before the FIFO limiter: 93 % of calls overtook an earlier
        // one). The core hands a freed slot to the oldest waiter, so the race changes nothing.
        let r = overload(&OverloadSpec {
            max_concurrency: Some(16),
            wake_order: WakeOrder::Random { seed: 9 },
            ..short()
        });
        assert_eq!(r.overtakes, 0, "{r}");
        assert_eq!(r.text_mismatches, 0);
        let named = overload(&OverloadSpec {
            max_concurrency: Some(16),
            ..short()
        });
        assert_eq!(
            r.ttft_p99, named.ttft_p99,
            "the same admissions: {r}\n{named}"
        );
    }
}
