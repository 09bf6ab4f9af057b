//! The cost of one decision: a retry decision, a breaker admission (+ its record), a rate
//! limiter check, with peers side by side: `governor` (GCRA) for the limiter and `failsafe`
//! for the breaker.
//!
//! ```text
//! cargo bench -p vllm-client-benches --bench policy
//! ```

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, StatusCode};
use vllm_client_core::policy::{
    BreakerConfig, CircuitBreaker, Failure, Outcome, RateLimiter, RetryBudget, RetryBudgetConfig,
    RetryContext, RetryPolicy, Rng,
};

fn retry_decision(c: &mut Criterion) {
    let policy = RetryPolicy::default();
    let mut headers = HeaderMap::new();
    headers.insert("retry-after-ms", "1500".parse().unwrap());
    let hinted = Failure::Status {
        status: StatusCode::TOO_MANY_REQUESTS,
        headers,
    };
    let plain = Failure::Status {
        status: StatusCode::SERVICE_UNAVAILABLE,
        headers: HeaderMap::new(),
    };
    let start = Instant::now();
    let wall = SystemTime::now();
    let mut rng = Rng::new(7);
    let mut budget = RetryBudget::new(RetryBudgetConfig::default());
    let mut g = c.benchmark_group("retry_decision");
    g.bench_function("503_backoff_with_budget", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let now = start + Duration::from_millis(i);
            let ctx = RetryContext::new(1, now, wall);
            let d = policy.decide(black_box(&plain), &ctx, &mut rng, Some(&mut budget));
            budget.on_success(now);
            d
        })
    });
    g.bench_function("429_retry_after_ms", |b| {
        b.iter(|| {
            let ctx = RetryContext::new(1, start, wall);
            policy.decide(black_box(&hinted), &ctx, &mut rng, None)
        })
    });
    g.finish();
}

fn breaker_admission(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker_admit_and_record");
    let start = Instant::now();
    let mut ours = CircuitBreaker::new(BreakerConfig::default());
    g.bench_function("vllm_client", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let now = start + Duration::from_micros(i);
            let permit = ours.try_acquire(now).expect("closed");
            ours.record(
                now,
                permit,
                Outcome::Success {
                    ttfb: Duration::from_millis(5),
                },
            )
        })
    });
    let peer = failsafe::Config::new().build();
    g.bench_function("failsafe", |b| {
        use failsafe::CircuitBreaker as _;
        b.iter(|| {
            let r: Result<u32, failsafe::Error<()>> = peer.call(|| Ok::<u32, ()>(black_box(1)));
            r
        })
    });
    g.finish();
}

fn limiter_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_limiter_check");
    let start = Instant::now();
    // A high rate so that nearly every check admits, as on a healthy client.
    let mut ours = RateLimiter::new(1_000_000, Duration::from_secs(1), 1000);
    g.bench_function("vllm_client", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            ours.check(start + Duration::from_micros(i), 1)
        })
    });
    let quota = governor::Quota::per_second(NonZeroU32::new(1_000_000).unwrap())
        .allow_burst(NonZeroU32::new(1000).unwrap());
    let peer = governor::RateLimiter::direct(quota);
    g.bench_function("governor", |b| b.iter(|| peer.check()));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = retry_decision, breaker_admission, limiter_check }
criterion_main!(benches);
