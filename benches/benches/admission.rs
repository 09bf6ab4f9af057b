//! Admission of many waiting calls under `max_concurrency(1)`: N calls queue, then each call
//! that ends hands its slot to the next. The core wakes exactly one waiter per release
//! (`Shared::poll_wake`), so the cost per call must stay flat as N grows (linear in N), where
//! waking every waiter on every release (the old adapters' `notify_waiters`) was quadratic.
//! The peer is tokio's FIFO `Semaphore` (one permit, N tasks queued on it), measured in the
//! same run.
//!
//! ```text
//! cargo bench -p vllm-client-benches --bench admission
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vllm_client_core::call::{Action, Call, Event, Shared};
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::ClientConfig;
use vllm_client_core::request::Operation;

/// Queues `n` calls behind one slot, then ends them one by one, each end waking the next.
/// Returns how many calls were admitted (all of them).
fn drive(n: usize) -> usize {
    let mut config = ClientConfig::default();
    config.policy.max_concurrency = Some(1);
    let mut shared = Shared::new(&config, 1);
    let now = Instant::now();
    let mut calls: Vec<Call> = (0..n)
        .map(|_| Call::new(&config, CallSpec::get(Operation::Models), now, &mut shared))
        .collect();
    let mut waiting = HashMap::with_capacity(n);
    let mut active = None;
    // The production path: the shared state only when the call needs it.
    for (i, call) in calls.iter_mut().enumerate() {
        match call.poll_with(now, || &mut shared) {
            Action::Send { .. } => active = Some(i),
            Action::Wait {
                waiter: Some(waiter),
                ..
            } => {
                waiting.insert(waiter, i);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut admitted = 0;
    while let Some(i) = active.take() {
        admitted += 1;
        calls[i].cancel(now, &mut shared);
        if let Some(w) = shared.poll_wake() {
            let j = waiting[&w];
            calls[j].handle(now, Event::PermitReleased);
            match calls[j].poll_with(now, || &mut shared) {
                Action::Send { .. } => active = Some(j),
                other => panic!("the woken call was not admitted: {other:?}"),
            }
        }
    }
    admitted
}

/// The same with tokio's FIFO semaphore: `n` tasks queue on one permit.
fn tokio_semaphore(rt: &tokio::runtime::Runtime, n: usize) -> usize {
    rt.block_on(async move {
        let sem = Arc::new(tokio::sync::Semaphore::new(1));
        let hold = sem.clone().acquire_owned().await.expect("open");
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let sem = sem.clone();
                tokio::spawn(async move {
                    let _p = sem.acquire().await.expect("open");
                })
            })
            .collect();
        tokio::task::yield_now().await;
        drop(hold);
        let mut done = 0;
        for t in tasks {
            t.await.expect("task");
            done += 1;
        }
        done
    })
}

fn admission(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("admission");
    g.sample_size(10);
    for n in [1_000usize, 10_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("core_fifo", n), &n, |b, &n| {
            b.iter(|| black_box(drive(n)))
        });
        g.bench_with_input(BenchmarkId::new("tokio_semaphore", n), &n, |b, &n| {
            b.iter(|| black_box(tokio_semaphore(&rt, n)))
        });
    }
    g.finish();
}

criterion_group!(benches, admission);
criterion_main!(benches);
