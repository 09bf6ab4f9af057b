//! A retry budget: a token bucket shared by all calls of one client, so that a struggling
//! server is not hit by a retry storm.
//!
//! Semantics follow the AWS SDKs' *standard* retry mode:
//!
//! | knob | default | meaning |
//! |---|---|---|
//! | `capacity` | 500 tokens | the bucket starts full and never holds more |
//! | `retry_cost` | 5 | withdrawn for each retry |
//! | `timeout_retry_cost` | 10 | withdrawn for a retry after a timeout |
//! | `success_reward` | 1 | deposited by each successful call |
//! | `refill_millis_per_sec` | 1000 (1 token/s) | slow time-based refill, so a budget drained during an outage recovers even without successes |
//!
//! Only retries withdraw; first attempts never touch the bucket. A retry that cannot withdraw
//! its cost is not made. Arithmetic is integer, in thousandths of a token ("milli-tokens"),
//! and the refill keeps the sub-milli-token remainder so frequent calls lose nothing.
//!
//! Invariants: tokens always in `[0, capacity]`; a `now` earlier than one already seen adds
//! nothing (it is treated as the last one) and never panics; the same instant twice refills
//! nothing the second time. [`RetryBudget::disabled`] never refuses.

use std::time::Instant;

use super::clock::{saturating_since, Monotonic};

const MILLI: u64 = 1000;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Configuration of a [`RetryBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudgetConfig {
    /// Maximum (and initial) tokens. Default 500.
    pub capacity: u32,
    /// Cost of a retry. Default 5.
    pub retry_cost: u32,
    /// Cost of a retry after a timeout. Default 10.
    pub timeout_retry_cost: u32,
    /// Tokens deposited per successful call. Default 1.
    pub success_reward: u32,
    /// Time-based refill in thousandths of a token per second. Default 1000 (1 token/s);
    /// 0 disables the refill.
    pub refill_millis_per_sec: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            capacity: 500,
            retry_cost: 5,
            timeout_retry_cost: 10,
            success_reward: 1,
            refill_millis_per_sec: 1000,
        }
    }
}

/// A token bucket limiting retries (see the module docs).
#[derive(Debug, Clone)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    enabled: bool,
    milli: u64,
    // Leftover (elapsed_ns · rate) below one milli-token, in units of milli-tokens · 1e-9.
    remainder: u128,
    clock: Monotonic,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(RetryBudgetConfig::default())
    }
}

impl RetryBudget {
    /// A full bucket with the given configuration.
    pub fn new(config: RetryBudgetConfig) -> Self {
        RetryBudget {
            config,
            enabled: true,
            milli: u64::from(config.capacity) * MILLI,
            remainder: 0,
            clock: Monotonic::new(),
        }
    }

    /// A budget that never refuses a retry (unlimited).
    pub fn disabled() -> Self {
        RetryBudget {
            enabled: false,
            ..RetryBudget::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    /// Whether the budget can refuse retries at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The cost of a retry; `after_timeout` selects the timeout cost.
    pub fn retry_cost(&self, after_timeout: bool) -> u32 {
        if after_timeout {
            self.config.timeout_retry_cost
        } else {
            self.config.retry_cost
        }
    }

    /// Whole tokens available at `now` (refill included; nothing is changed).
    pub fn tokens(&self, now: Instant) -> u32 {
        let (milli, _) = self.refilled(self.clock.peek(now));
        (milli / MILLI) as u32
    }

    /// Withdraws `cost` tokens if available and returns whether it did. On `false` nothing is
    /// withdrawn. A disabled budget always returns `true`.
    pub fn try_withdraw(&mut self, now: Instant, cost: u32) -> bool {
        if !self.enabled {
            return true;
        }
        self.refill(now);
        let cost = u64::from(cost) * MILLI;
        if self.milli >= cost {
            self.milli -= cost;
            true
        } else {
            false
        }
    }

    /// Records a successful call: deposits `success_reward`, up to the capacity.
    pub fn on_success(&mut self, now: Instant) {
        self.refill(now);
        let reward = u64::from(self.config.success_reward) * MILLI;
        self.milli = self.milli.saturating_add(reward).min(self.cap_milli());
    }

    fn cap_milli(&self) -> u64 {
        u64::from(self.config.capacity) * MILLI
    }

    fn refill(&mut self, now: Instant) {
        let now = self.clock.peek(now);
        let (milli, remainder) = self.refilled(now);
        self.milli = milli;
        self.remainder = remainder;
        self.clock.observe(now);
    }

    /// (milli-tokens, remainder) after refilling up to `now` (already clamped).
    fn refilled(&self, now: Instant) -> (u64, u128) {
        let cap = self.cap_milli();
        let last = match self.clock.last() {
            Some(l) => l,
            None => return (self.milli.min(cap), self.remainder),
        };
        let elapsed = saturating_since(now, last).as_nanos();
        let acc = elapsed
            .saturating_mul(u128::from(self.config.refill_millis_per_sec))
            .saturating_add(self.remainder);
        let added = acc / NANOS_PER_SEC;
        let milli = u128::from(self.milli).saturating_add(added);
        if milli >= u128::from(cap) {
            // A full bucket banks no fractional refill.
            (cap, 0)
        } else {
            (milli as u64, acc % NANOS_PER_SEC)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn starts_full_and_withdraws() {
        let t0 = Instant::now();
        let mut b = RetryBudget::default();
        assert_eq!(b.tokens(t0), 500);
        assert!(b.try_withdraw(t0, 5));
        assert_eq!(b.tokens(t0), 495);
        assert_eq!(b.retry_cost(false), 5);
        assert_eq!(b.retry_cost(true), 10);
    }

    #[test]
    fn exhausts_and_refuses_without_change() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(RetryBudgetConfig {
            refill_millis_per_sec: 0,
            ..Default::default()
        });
        for _ in 0..50 {
            assert!(b.try_withdraw(t0, 10));
        }
        assert_eq!(b.tokens(t0), 0);
        assert!(!b.try_withdraw(t0, 5));
        assert_eq!(b.tokens(t0), 0);
        b.on_success(t0);
        assert_eq!(b.tokens(t0), 1);
        assert!(!b.try_withdraw(t0, 5));
        assert_eq!(b.tokens(t0), 1);
    }

    #[test]
    fn success_capped() {
        let t0 = Instant::now();
        let mut b = RetryBudget::default();
        b.on_success(t0);
        assert_eq!(b.tokens(t0), 500);
    }

    #[test]
    fn refills_over_time_and_not_backwards() {
        let t0 = Instant::now();
        let mut b = RetryBudget::default();
        assert!(b.try_withdraw(t0, 100));
        assert_eq!(b.tokens(t0 + secs(10)), 410);
        assert!(b.try_withdraw(t0 + secs(10), 0));
        assert_eq!(b.tokens(t0 + secs(10)), 410);
        // Earlier time: treated as t0+10 s, adds nothing.
        assert_eq!(b.tokens(t0), 410);
        assert!(b.try_withdraw(t0, 0));
        assert_eq!(b.tokens(t0 + secs(10)), 410);
        assert_eq!(b.tokens(t0 + secs(1_000_000)), 500);
    }

    #[test]
    fn fractional_refill_is_not_lost() {
        let t0 = Instant::now();
        let mut b = RetryBudget::default();
        assert!(b.try_withdraw(t0, 10));
        // 1000 steps of 1 ms = 1 s = 1 token, even though each step adds 1 milli-token.
        for i in 1..=1000 {
            assert!(b.try_withdraw(t0 + Duration::from_millis(i), 0));
        }
        assert_eq!(b.tokens(t0 + secs(1)), 491);
        // Sub-milli steps too.
        let mut b = RetryBudget::default();
        assert!(b.try_withdraw(t0, 10));
        for i in 1..=2000u64 {
            b.try_withdraw(t0 + Duration::from_micros(500 * i), 0);
        }
        assert_eq!(b.tokens(t0 + secs(1)), 491);
    }

    #[test]
    fn disabled_never_refuses() {
        let t0 = Instant::now();
        let mut b = RetryBudget::disabled();
        for _ in 0..10_000 {
            assert!(b.try_withdraw(t0, u32::MAX));
        }
        assert!(!b.is_enabled());
    }

    #[test]
    fn huge_time_jump_does_not_panic() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(RetryBudgetConfig {
            refill_millis_per_sec: u32::MAX,
            capacity: u32::MAX,
            ..Default::default()
        });
        assert!(b.try_withdraw(t0, u32::MAX));
        let far = super::super::clock::saturating_add(t0, Duration::MAX);
        assert_eq!(b.tokens(far), u32::MAX);
    }
}
