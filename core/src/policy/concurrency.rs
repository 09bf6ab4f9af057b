//! A concurrency limiter: at most `max` calls in flight.
//!
//! ```text
//!   try_acquire() ── in_flight < max ──► Some(permit)   (in_flight += 1)
//!                 └─ otherwise ────────► None
//!   release(permit) ── permit is ours and outstanding ──► in_flight −= 1, true
//!                   └─ foreign or already released ─────► nothing, false
//! ```
//!
//! The adapter holds the permit for the *whole* call — until a stream ends (`[DONE]`, an error)
//! or is dropped by the user — because a vLLM slot stays busy until then, and releases it on
//! every path, cancellation included. Permits are plain data (the core is pure, there is no
//! `Drop` magic): release each exactly once. A permit is not `Clone`; it carries the limiter's
//! id and its own id, so a permit from another limiter, or a second release, cannot corrupt
//! the count. `max = 0` admits nothing; [`ConcurrencyLimiter::unlimited`] admits `u32::MAX`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

// Distinguishes limiters so that a permit from one cannot be released in another.
static NEXT_LIMITER_ID: AtomicU64 = AtomicU64::new(1);

/// Permission to have one call in flight. Give it back with [`ConcurrencyLimiter::release`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a permit must be released exactly once"]
pub struct ConcurrencyPermit {
    limiter: u64,
    id: u64,
}

/// Bounds the number of calls in flight (see the module docs).
#[derive(Debug)]
pub struct ConcurrencyLimiter {
    id: u64,
    max: u32,
    outstanding: BTreeSet<u64>,
    next: u64,
}

impl ConcurrencyLimiter {
    /// At most `max` calls in flight.
    pub fn new(max: u32) -> Self {
        ConcurrencyLimiter {
            id: NEXT_LIMITER_ID.fetch_add(1, Ordering::Relaxed),
            max,
            outstanding: BTreeSet::new(),
            next: 0,
        }
    }

    /// No practical limit (`u32::MAX`).
    pub fn unlimited() -> Self {
        ConcurrencyLimiter::new(u32::MAX)
    }

    /// The limit.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> u32 {
        self.outstanding.len() as u32
    }

    /// Takes a slot if one is free.
    pub fn try_acquire(&mut self) -> Option<ConcurrencyPermit> {
        if self.in_flight() >= self.max {
            return None;
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        self.outstanding.insert(id);
        Some(ConcurrencyPermit {
            limiter: self.id,
            id,
        })
    }

    /// Gives a slot back. Returns `false` (and changes nothing) for a permit of another limiter
    /// or one already released.
    pub fn release(&mut self, permit: ConcurrencyPermit) -> bool {
        permit.limiter == self.id && self.outstanding.remove(&permit.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_releases() {
        let mut l = ConcurrencyLimiter::new(2);
        let a = l.try_acquire().unwrap();
        let b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        assert_eq!(l.in_flight(), 2);
        assert!(l.release(a));
        assert_eq!(l.in_flight(), 1);
        let c = l.try_acquire().unwrap();
        assert!(l.release(b));
        assert!(l.release(c));
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn foreign_permit_ignored() {
        let mut l1 = ConcurrencyLimiter::new(1);
        let mut l2 = ConcurrencyLimiter::new(1);
        let _p1 = l1.try_acquire().unwrap();
        let p2 = l2.try_acquire().unwrap();
        assert!(!l1.release(p2));
        assert_eq!(l1.in_flight(), 1);
        assert_eq!(l2.in_flight(), 1);
    }

    #[test]
    fn zero_admits_nothing() {
        let mut l = ConcurrencyLimiter::new(0);
        assert!(l.try_acquire().is_none());
        assert_eq!(ConcurrencyLimiter::unlimited().max(), u32::MAX);
    }
}
