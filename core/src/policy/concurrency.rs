//! A concurrency limiter: at most `max` calls in flight, admitted first come, first served.
//!
//! ```text
//!   acquire() ── nobody waits and in_flight < max ──► Admitted(permit)   (in_flight += 1)
//!             └─ otherwise ─────────────────────────► Queued(waiter)     (joins the back)
//!
//!   release(permit) ── someone waits ──► the slot passes to the FRONT waiter (in_flight
//!                   │                   unchanged) and that waiter, only it, is to be woken
//!                   └─ nobody waits ───► in_flight −= 1
//!
//!   claim(waiter)  ── its slot was handed over ──► Some(permit)
//!                  └─ still waiting ─────────────► None
//!   leave(waiter)  ── a waiter gives up (deadline, cancel): out of the queue; a slot already
//!                     handed to it passes on to the next waiter
//! ```
//!
//! The semaphore users wrote by hand (`tokio::sync::Semaphore`) is fair; so is this: waiting
//! calls are admitted in arrival order, a new call never overtakes a waiting one (it queues
//! even when it could have raced a waking waiter for the slot), and one release wakes exactly
//! one waiter — [`poll_wake`](ConcurrencyLimiter::poll_wake) names it. A woken call claims the
//! slot that was handed to it; nobody can take it in between. Every operation is O(log n) in
//! the number of calls in flight or waiting, so 10 000 waiting calls cost 10 000 wake-ups, not
//! 10 000².
//!
//! The adapter holds the permit for the *whole* call — until a stream ends (`[DONE]`, an error)
//! or is dropped by the user — because a vLLM slot stays busy until then, and releases it on
//! every path, cancellation included. Permits are plain data (the core is pure, there is no
//! `Drop` magic): release each exactly once. A permit is not `Clone`; it carries the limiter's
//! id and its own id, so a permit from another limiter, or a second release, cannot corrupt
//! the count. `max = 0` admits nothing; [`ConcurrencyLimiter::unlimited`] admits `u32::MAX`. The limit can
//! change at any time ([`set_max`](ConcurrencyLimiter::set_max), driven by an
//! [`AdaptiveLimit`](super::AdaptiveLimit)): raising it wakes waiters, lowering it stops
//! admissions until enough calls end.

use std::collections::{BTreeSet, HashMap, VecDeque};
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

/// A call's place in the queue of a [`ConcurrencyLimiter`]. Adapters use it to wake exactly
/// the call that [`poll_wake`](ConcurrencyLimiter::poll_wake) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaiterId(u64);

impl WaiterId {
    /// The number behind the id (unique per limiter, increasing in arrival order).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// The answer of [`ConcurrencyLimiter::acquire`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a permit must be released, a waiter must claim or leave"]
pub enum Admission {
    /// A slot was free and nobody was waiting.
    Admitted(ConcurrencyPermit),
    /// The call waits at the back of the queue.
    Queued(WaiterId),
}

/// Bounds the number of calls in flight, first come, first served (see the module docs).
#[derive(Debug)]
pub struct ConcurrencyLimiter {
    id: u64,
    max: u32,
    /// Permits handed out and not released (claimed or not).
    outstanding: BTreeSet<u64>,
    next: u64,
    /// Waiters in arrival order (a waiter's id is its arrival number). Ordered, so that leaving
    /// from the middle of a long queue is O(log n).
    queue: BTreeSet<u64>,
    /// Slots handed to a waiter that has not claimed them yet.
    handed: HashMap<u64, u64>,
    /// Waiters to wake, each once, in the order their slots were handed over.
    wakes: VecDeque<WaiterId>,
    next_waiter: u64,
}

impl ConcurrencyLimiter {
    /// At most `max` calls in flight.
    pub fn new(max: u32) -> Self {
        ConcurrencyLimiter {
            id: NEXT_LIMITER_ID.fetch_add(1, Ordering::Relaxed),
            max,
            outstanding: BTreeSet::new(),
            next: 0,
            queue: BTreeSet::new(),
            handed: HashMap::new(),
            wakes: VecDeque::new(),
            next_waiter: 0,
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

    /// Changes the limit. Raising it hands the new slots to the front waiters at once (each is
    /// reported by [`poll_wake`](Self::poll_wake), first come, first served); lowering it
    /// admits nobody until the calls in flight drop below the new limit (a call in flight is
    /// never revoked). `max = 0` admits nothing.
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
        while self.in_flight() < self.max {
            let Some(waiter) = self.queue.pop_first() else {
                break;
            };
            let permit = self.issue();
            self.handed.insert(waiter, permit.id);
            self.wakes.push_back(WaiterId(waiter));
        }
    }

    /// Calls in flight (slots handed to a waiter that has not claimed them yet included).
    pub fn in_flight(&self) -> u32 {
        self.outstanding.len() as u32
    }

    /// Calls waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Asks for a slot on behalf of a new call: admitted at once only when nobody is waiting
    /// and a slot is free; otherwise the call joins the back of the queue.
    pub fn acquire(&mut self) -> Admission {
        match self.try_acquire() {
            Some(permit) => Admission::Admitted(permit),
            None => {
                let id = self.next_waiter;
                self.next_waiter = self.next_waiter.wrapping_add(1);
                self.queue.insert(id);
                Admission::Queued(WaiterId(id))
            }
        }
    }

    /// Takes a slot if one is free and nobody is waiting for it (never overtakes a waiter).
    pub fn try_acquire(&mut self) -> Option<ConcurrencyPermit> {
        if !self.queue.is_empty() || self.in_flight() >= self.max {
            return None;
        }
        Some(self.issue())
    }

    /// The permit handed to `waiter`, once its turn has come; `None` while it still waits (or
    /// for a waiter this limiter does not know).
    pub fn claim(&mut self, waiter: WaiterId) -> Option<ConcurrencyPermit> {
        let id = self.handed.remove(&waiter.0)?;
        Some(ConcurrencyPermit {
            limiter: self.id,
            id,
        })
    }

    /// `waiter` stops waiting (its deadline passed, its call was cancelled). A slot already
    /// handed to it passes on to the next waiter, so nobody loses a turn. Idempotent.
    pub fn leave(&mut self, waiter: WaiterId) {
        self.queue.remove(&waiter.0);
        if let Some(id) = self.handed.remove(&waiter.0) {
            self.pass_on(id);
        }
    }

    /// Gives a slot back: to the first waiter if there is one, else to the pool. Returns
    /// `false` (and changes nothing) for a permit of another limiter or one already released.
    pub fn release(&mut self, permit: ConcurrencyPermit) -> bool {
        if permit.limiter != self.id || !self.outstanding.contains(&permit.id) {
            return false;
        }
        self.pass_on(permit.id);
        true
    }

    /// The next waiter whose slot was handed over and who must be woken to claim it. Each
    /// hand-over is reported once.
    pub fn poll_wake(&mut self) -> Option<WaiterId> {
        self.wakes.pop_front()
    }

    fn issue(&mut self) -> ConcurrencyPermit {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        self.outstanding.insert(id);
        ConcurrencyPermit {
            limiter: self.id,
            id,
        }
    }

    /// The slot of permit `id` goes to the front waiter, or back to the pool. A limit lowered
    /// below the calls in flight frees slots instead of handing them over.
    fn pass_on(&mut self, id: u64) {
        if self.in_flight() <= self.max {
            if let Some(waiter) = self.queue.pop_first() {
                self.handed.insert(waiter, id);
                self.wakes.push_back(WaiterId(waiter));
                return;
            }
        }
        self.outstanding.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: Admission) -> ConcurrencyPermit {
        match a {
            Admission::Admitted(p) => p,
            Admission::Queued(w) => panic!("queued as {w:?}"),
        }
    }

    fn queued(a: Admission) -> WaiterId {
        match a {
            Admission::Queued(w) => w,
            Admission::Admitted(p) => panic!("admitted with {p:?}"),
        }
    }

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

    #[test]
    fn first_come_first_served() {
        let mut l = ConcurrencyLimiter::new(1);
        let p = admitted(l.acquire());
        let w1 = queued(l.acquire());
        let w2 = queued(l.acquire());
        assert_eq!(l.waiting(), 2);
        assert!(l.claim(w1).is_none(), "not its turn yet");
        assert!(l.release(p));
        // The slot went to w1, and only w1 is woken; a newcomer queues behind w2.
        assert_eq!(l.poll_wake(), Some(w1));
        assert_eq!(l.poll_wake(), None);
        assert_eq!(l.in_flight(), 1);
        assert!(l.try_acquire().is_none());
        let w3 = queued(l.acquire());
        assert!(l.claim(w2).is_none());
        let p1 = l.claim(w1).unwrap();
        assert!(l.claim(w1).is_none(), "claimed once");
        assert!(l.release(p1));
        assert_eq!(l.poll_wake(), Some(w2));
        let p2 = l.claim(w2).unwrap();
        assert!(l.release(p2));
        assert_eq!(l.poll_wake(), Some(w3));
        let p3 = l.claim(w3).unwrap();
        assert!(l.release(p3));
        assert_eq!(l.in_flight(), 0);
        assert_eq!(l.waiting(), 0);
    }

    #[test]
    fn a_waiter_that_leaves_loses_nobody_their_turn() {
        let mut l = ConcurrencyLimiter::new(1);
        let p = admitted(l.acquire());
        let w1 = queued(l.acquire());
        let w2 = queued(l.acquire());
        let w3 = queued(l.acquire());
        // w2 leaves from the middle of the queue.
        l.leave(w2);
        assert!(l.release(p));
        assert_eq!(l.poll_wake(), Some(w1));
        // w1's deadline passes after its slot was handed over, before it claimed it: the slot
        // passes on to w3 (w2 already left).
        l.leave(w1);
        assert_eq!(l.poll_wake(), Some(w3));
        assert_eq!(l.in_flight(), 1);
        let p3 = l.claim(w3).unwrap();
        l.leave(w3); // after claiming: nothing to pass on
        assert_eq!(l.in_flight(), 1);
        assert!(l.release(p3));
        assert_eq!(l.in_flight(), 0);
        assert_eq!(l.poll_wake(), None);
    }

    #[test]
    fn raising_the_limit_wakes_waiters_in_order_lowering_stops_admissions() {
        let mut l = ConcurrencyLimiter::new(1);
        let p = admitted(l.acquire());
        let w1 = queued(l.acquire());
        let w2 = queued(l.acquire());
        let w3 = queued(l.acquire());
        l.set_max(3);
        assert_eq!(l.poll_wake(), Some(w1));
        assert_eq!(l.poll_wake(), Some(w2));
        assert_eq!(l.poll_wake(), None);
        assert_eq!(l.in_flight(), 3);
        let p1 = l.claim(w1).unwrap();
        let p2 = l.claim(w2).unwrap();
        // Lowered below the calls in flight: releases free slots, nobody is admitted until
        // in-flight is below the limit again.
        l.set_max(1);
        assert!(l.release(p));
        assert_eq!(l.poll_wake(), None);
        assert!(l.release(p1));
        assert_eq!(l.poll_wake(), None);
        assert_eq!(l.in_flight(), 1);
        assert!(l.release(p2));
        assert_eq!(l.poll_wake(), Some(w3));
        let p3 = l.claim(w3).unwrap();
        assert_eq!(l.in_flight(), 1);
        assert!(l.release(p3));
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn double_release_is_ignored() {
        let mut l = ConcurrencyLimiter::new(1);
        let p = admitted(l.acquire());
        let same = ConcurrencyPermit {
            limiter: p.limiter,
            id: p.id,
        };
        assert!(l.release(p));
        assert!(!l.release(same));
        assert_eq!(l.in_flight(), 0);
    }
}
