//! [`Owed`]: what a call owes the client's shared state — the vocabulary a
//! [`Call`](super::Call) and [`Shared`](super::Shared) talk in, the way quinn-proto's
//! connections talk to their endpoint through events.
//!
//! A call never reaches into the shared state to settle what happened: it queues `Owed`
//! items while it reads a body (no lock needed), and [`Shared::apply`](super::Shared::apply)
//! pays them the next time the call holds the shared state. What the call must *ask* the shared
//! state before it acts (a concurrency slot, a rate-limit slot, a breaker permit, an endpoint,
//! the retry budget) are [`Shared`](super::Shared)'s own methods, called during `poll`.

use std::time::{Duration, Instant};

use crate::policy::{BreakerPermit, ConcurrencyPermit, LimitSample, Outcome, Verdict, WaiterId};
use crate::pool::{EndpointId, Ticket};
use crate::request::Operation;

/// One thing a call owes the shared state.
#[derive(Debug)]
#[non_exhaustive]
pub enum Owed {
    /// A breaker permit comes back with the attempt's outcome.
    Breaker {
        /// When the outcome was known.
        at: Instant,
        /// The operation (for a breaker per operation).
        operation: Operation,
        /// The permit taken at admission.
        permit: BreakerPermit,
        /// What the attempt said (the breaker column of the failure table).
        outcome: Outcome,
    },
    /// A call succeeded: the retry budget earns its reward.
    BudgetReward {
        /// When.
        at: Instant,
    },
    /// What an attempt said about its endpoint (the ejection column of the failure table),
    /// with its latency sample when it had one.
    Verdict {
        /// When.
        at: Instant,
        /// The attempt's hold on its endpoint.
        ticket: Ticket,
        /// What it said.
        verdict: Verdict,
        /// Its time to first token (or to the head of a JSON answer, or to a timer).
        sample: Option<Duration>,
    },
    /// An attempt no longer occupies its endpoint.
    Release {
        /// The attempt's hold on its endpoint.
        ticket: Ticket,
    },
    /// A sample for the adaptive concurrency limit (a first token, or a loss).
    LimitSample {
        /// When.
        at: Instant,
        /// What.
        sample: LimitSample,
        /// The endpoint of the attempt (for a limit per endpoint).
        endpoint: Option<EndpointId>,
    },
    /// The token rate limit's estimate corrected: charge (> 0) or refund (< 0).
    Tokens {
        /// When.
        at: Instant,
        /// How many tokens.
        delta: i64,
    },
    /// The server said its quota is spent until then: new calls wait for it.
    RateGate {
        /// Until when.
        until: Instant,
    },
    /// A stream's time to first token, for the hedge delay's percentile.
    FirstToken {
        /// From sending the request to its first data event.
        ttft: Duration,
    },
    /// The call left the queue for a concurrency slot (a slot handed to it passes on).
    LeaveQueue {
        /// Its place in the queue.
        waiter: WaiterId,
    },
    /// A concurrency slot is free again.
    ReleaseSlot {
        /// The slot.
        permit: ConcurrencyPermit,
    },
}

/// What a call owes, in order: the first few inline (most calls owe one or two things at a
/// time, and a call that never allocates for them admits faster), the rest spilled.
// `repr(C)`, `spill` first: `is_empty` (every poll) reads one cache line, not two.
#[derive(Debug, Default)]
#[repr(C)]
pub(super) struct OwedQueue {
    spill: Vec<Owed>,
    inline: [Option<Owed>; 4],
}

impl OwedQueue {
    pub(super) fn push(&mut self, owed: Owed) {
        match self.inline.iter_mut().find(|s| s.is_none()) {
            Some(slot) if self.spill.is_empty() => *slot = Some(owed),
            _ => self.spill.push(owed),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.inline[0].is_none() && self.spill.is_empty()
    }

    /// Everything owed, oldest first; the queue is left empty.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Owed> + '_ {
        let inline = self.inline.iter_mut().filter_map(Option::take);
        inline.chain(self.spill.drain(..))
    }
}

#[cfg(test)]
mod tests {
    use super::{Owed, OwedQueue};
    use std::time::Instant;

    #[test]
    fn owed_items_come_out_in_order_whatever_their_number() {
        let t = Instant::now();
        let at = |n: u64| t + std::time::Duration::from_millis(n);
        let mut q = OwedQueue::default();
        assert!(q.is_empty());
        for n in 0..5 {
            q.push(Owed::BudgetReward { at: at(n) });
        }
        assert!(!q.is_empty());
        let out: Vec<_> = q
            .drain()
            .map(|o| match o {
                Owed::BudgetReward { at } => at,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(out, (0..5).map(at).collect::<Vec<_>>());
        assert!(q.is_empty());
        q.push(Owed::BudgetReward { at: at(9) });
        assert_eq!(q.drain().count(), 1);
    }
}
