//! The sliding window the failure and slow-call rates are computed over: the last `size` calls
//! with running totals, or the last `length` in time buckets. Separate from the state machine
//! because it only counts; it knows nothing of states, permits or probes.

use std::collections::VecDeque;
use std::time::Instant;

use super::SlidingWindow;
use crate::policy::clock::saturating_since;

/// Window counts at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowMetrics {
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window.
    pub slow: u64,
}

impl WindowMetrics {
    fn add(&mut self, o: WindowMetrics) {
        self.calls += o.calls;
        self.failures += o.failures;
        self.slow += o.slow;
    }
}

#[derive(Debug, Clone)]
pub(super) enum Window {
    Count {
        size: usize,
        calls: VecDeque<(bool, bool)>,
        // Running totals of `calls`, so that a record costs O(1) instead of a window scan.
        totals: WindowMetrics,
    },
    Time(Buckets),
}

/// A time window: counts per bucket of time.
#[derive(Debug, Clone)]
pub(super) struct Buckets {
    bucket_nanos: u128,
    buckets: u64,
    // (epoch, counts), oldest first, only non-empty buckets.
    data: VecDeque<(u64, WindowMetrics)>,
}

impl Buckets {
    /// The bucket `now` falls in, counted from `origin`.
    fn epoch(&self, origin: Instant, now: Instant) -> u64 {
        let nanos = saturating_since(now, origin).as_nanos() / self.bucket_nanos;
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// Whether bucket `b` is still in the window at bucket `e`.
    fn live(&self, b: u64, e: u64) -> bool {
        b.saturating_add(self.buckets) > e
    }

    fn record(&mut self, origin: Instant, now: Instant, m: WindowMetrics) {
        let e = self.epoch(origin, now);
        while let Some(&(b, _)) = self.data.front() {
            if self.live(b, e) {
                break;
            }
            self.data.pop_front();
        }
        match self.data.back_mut() {
            Some((b, acc)) if *b == e => acc.add(m),
            _ => self.data.push_back((e, m)),
        }
    }

    fn metrics(&self, origin: Instant, now: Instant) -> WindowMetrics {
        let e = self.epoch(origin, now);
        let mut m = WindowMetrics::default();
        for (b, acc) in &self.data {
            if self.live(*b, e) {
                m.add(*acc);
            }
        }
        m
    }
}

impl Window {
    pub(super) fn new(w: SlidingWindow) -> Self {
        match w {
            SlidingWindow::Count { size } => Window::Count {
                size: size.max(1) as usize,
                calls: VecDeque::new(),
                totals: WindowMetrics::default(),
            },
            SlidingWindow::Time { length, buckets } => {
                let buckets = u64::from(buckets.max(1));
                Window::Time(Buckets {
                    bucket_nanos: (length.as_nanos() / u128::from(buckets)).max(1),
                    buckets,
                    data: VecDeque::new(),
                })
            }
        }
    }

    pub(super) fn clear(&mut self) {
        match self {
            Window::Count { calls, totals, .. } => {
                calls.clear();
                *totals = WindowMetrics::default();
            }
            Window::Time(t) => t.data.clear(),
        }
    }

    pub(super) fn record(&mut self, origin: Instant, now: Instant, failed: bool, slow: bool) {
        let one = WindowMetrics {
            calls: 1,
            failures: u64::from(failed),
            slow: u64::from(slow),
        };
        match self {
            Window::Count {
                size,
                calls,
                totals,
            } => {
                if calls.len() >= *size {
                    if let Some((f, s)) = calls.pop_front() {
                        totals.calls -= 1;
                        totals.failures -= u64::from(f);
                        totals.slow -= u64::from(s);
                    }
                }
                calls.push_back((failed, slow));
                totals.add(one);
            }
            Window::Time(t) => t.record(origin, now, one),
        }
    }

    pub(super) fn metrics(&self, origin: Instant, now: Instant) -> WindowMetrics {
        match self {
            Window::Count { totals, .. } => *totals,
            Window::Time(t) => t.metrics(origin, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::tests::{call, ms, FAIL};
    use super::super::{BreakerConfig, BreakerState, CircuitBreaker, SlidingWindow};

    #[test]
    fn time_window_forgets_old_calls() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig {
            window: SlidingWindow::Time {
                length: Duration::from_secs(10),
                buckets: 10,
            },
            minimum_calls: 4,
            ..Default::default()
        });
        for _ in 0..3 {
            call(&mut b, t0, FAIL);
        }
        assert_eq!(b.metrics(t0).calls, 3);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.metrics(t1).calls, 0);
        call(&mut b, t1, FAIL);
        assert_eq!(b.state(t1), BreakerState::Closed);
        for _ in 0..3 {
            call(&mut b, t1 + ms(500), FAIL);
        }
        assert_eq!(b.state(t1 + ms(500)), BreakerState::Open);
    }
}
