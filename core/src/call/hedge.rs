//! [`Hedge`]: the two attempts of a hedged first token, decided here and raced by the run
//! loop.
//!
//! ```text
//!   primary sent ──(no first token by the hedge delay; a hedge is in the bucket; another
//!        │          endpoint is healthy; a concurrency slot is free)──▶ backup started
//!        │                                                                   │
//!        ▼                                                                   ▼
//!   the first leg to hand out an event wins ───▶ the other is cancelled (connection closed)
//!   a leg that ends before any output ─────────▶ the other carries on alone
//! ```
//!
//! The run loop's part: start the primary [`Call`], make a [`Hedge`] for it, show it the
//! primary after each of its polls ([`observe`](Hedge::observe)); race the primary against
//! [`deadline`](Hedge::deadline); when that passes, ask [`start_backup`](Hedge::start_backup)
//! for the backup call and race both legs; report each leg's first step to
//! [`on_step`](Hedge::on_step), which says whether to deliver it and cancel the other, or to
//! wait for the other. See [`crate::policy::hedge`] for the policy.

use std::time::{Duration, Instant};

use super::{Call, CallSpec, Shared};
use crate::config::ClientConfig;
use crate::policy::clock::saturating_add;
use crate::pool::EndpointId;

/// One of the two attempts of a hedged call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// The call as it started.
    Primary,
    /// The second attempt, on another endpoint.
    Backup,
}

/// What to do with a leg's first step (an event for the caller, or its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeStep {
    /// Hand it to the caller; from now on only this leg runs. `cancel_other`: drop the other
    /// leg (closing its connection) before anything of it is seen.
    Deliver {
        /// Whether the other leg runs and must be cancelled.
        cancel_other: bool,
    },
    /// This leg ended before any output; the other runs on alone: wait for it.
    Wait,
}

/// The coordinator of a hedged first token (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Hedge {
    at: Option<Instant>,
    delay: Duration,
    avoid: Vec<EndpointId>,
    primary_sent: bool,
    primary_output: bool,
    backup: bool,
    decided: bool,
    alive: [bool; 2],
}

impl Hedge {
    /// A coordinator that never hedges.
    pub fn off() -> Hedge {
        Hedge {
            at: None,
            delay: Duration::ZERO,
            avoid: Vec::new(),
            primary_sent: false,
            primary_output: false,
            backup: false,
            decided: false,
            alive: [true, false],
        }
    }

    /// The coordinator for `primary`, just created at `now`: it hedges only streams of a
    /// client with several endpoints and a hedge policy, once the delay is known.
    pub fn new(primary: &Call, now: Instant, shared: &mut Shared) -> Hedge {
        let Some(cfg) = primary.policy.pool.hedge else {
            return Hedge::off();
        };
        if primary.stream.is_none() || shared.pool.len() < 2 {
            return Hedge::off();
        }
        shared.hedge.on_call(&cfg);
        match shared.hedge.delay(&cfg) {
            Some(delay) => Hedge {
                at: Some(saturating_add(now, delay)),
                delay,
                ..Hedge::off()
            },
            None => Hedge::off(),
        }
    }

    /// When to ask [`start_backup`](Self::start_backup) (`None`: never, or no more).
    pub fn deadline(&self) -> Option<Instant> {
        self.at.filter(|_| !self.backup && !self.decided)
    }

    /// Shows the coordinator the primary call as it stands (after each of its polls).
    pub fn observe(&mut self, primary: &Call) {
        self.primary_sent = primary.attempts > 0;
        self.primary_output = primary.output_started();
        if primary.tried.len() != self.avoid.len() {
            self.avoid = primary.tried.clone();
        }
        if primary.is_finished() {
            self.at = None;
        }
    }

    /// At the hedge deadline: the backup call, when a hedge is allowed now — the primary was
    /// sent and has no output, a hedge is in the bucket, another endpoint is healthy, a
    /// concurrency slot is free without queueing, and the retry budget pays for it. `None`
    /// otherwise (then [`deadline`](Self::deadline) says whether to ask again).
    pub fn start_backup(
        &mut self,
        now: Instant,
        config: &ClientConfig,
        spec: CallSpec,
        shared: &mut Shared,
    ) -> Option<Call> {
        let at = self.deadline()?;
        if now < at {
            return None;
        }
        if self.primary_output {
            self.at = None;
            return None;
        }
        if !self.primary_sent {
            // Still waiting for a slot or the rate limiter: the first token is not late yet.
            self.at = Some(saturating_add(now, self.delay));
            return None;
        }
        // The limit in force (an adaptive one moves), not the configured one.
        let slot_free = match &shared.concurrency {
            Some(limiter) => limiter.in_flight() < limiter.max() && limiter.waiting() == 0,
            None => true,
        };
        let budget_ok = match shared.budget.as_ref() {
            Some(b) => b.tokens(now) >= b.retry_cost(true),
            None => true,
        };
        // One decision per call: a hedge refused now is not asked again.
        self.at = None;
        if !slot_free || !budget_ok || !shared.pool.can_fail_over(now, &self.avoid) {
            return None;
        }
        if !shared.hedge.try_spend() {
            return None;
        }
        if let Some(b) = shared.budget.as_mut() {
            let cost = b.retry_cost(true);
            b.try_withdraw(now, cost);
        }
        let mut backup = Call::new(config, spec, now, shared);
        // One attempt, elsewhere: retries are the primary's business.
        backup.policy.retry.max_retries = 0;
        backup.tried = self.avoid.clone();
        backup.hedge_leg = true;
        self.backup = true;
        self.alive = [true, true];
        Some(backup)
    }

    /// A leg's first step: `output` when it is an event for the caller, `false` when the leg
    /// ended (`Done`) before any.
    pub fn on_step(&mut self, leg: Leg, output: bool) -> HedgeStep {
        let i = leg as usize;
        let other = 1 - i;
        if self.decided {
            return HedgeStep::Deliver {
                cancel_other: false,
            };
        }
        if output {
            self.decided = true;
            let cancel_other = self.alive[other];
            self.alive[other] = false;
            return HedgeStep::Deliver { cancel_other };
        }
        self.alive[i] = false;
        if self.alive[other] {
            HedgeStep::Wait
        } else {
            self.decided = true;
            HedgeStep::Deliver {
                cancel_other: false,
            }
        }
    }

    /// Whether a backup was started.
    pub fn hedged(&self) -> bool {
        self.backup
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Action, Event, ResponseHead};
    use crate::policy::HedgeConfig;
    use crate::request::Operation;
    use crate::stream::StreamKind;
    use std::time::SystemTime;

    fn config(n: usize) -> ClientConfig {
        let mut c = ClientConfig::default();
        c.request.endpoints = (0..n)
            .map(|i| format!("http://10.0.0.{i}:8000/v1").into())
            .collect();
        c.policy.pool.hedge =
            Some(HedgeConfig::after(Duration::from_millis(200)).max_extra_percent(100));
        c.policy.seed = Some(1);
        c
    }

    fn spec() -> CallSpec {
        CallSpec::stream(
            Operation::ChatCompletions,
            StreamKind::Chat,
            Ok(serde_json::json!({"model": "m", "messages": []})),
        )
    }

    fn host(action: &Action) -> String {
        match action {
            Action::Send { request, .. } => request.uri().host().unwrap_or("").to_owned(),
            other => panic!("expected a send, got {other:?}"),
        }
    }

    /// A primary that was sent at `t0` and is waiting for its first token.
    fn sent_primary(c: &ClientConfig, t0: Instant, shared: &mut Shared) -> (Call, Hedge, String) {
        let mut call = Call::new(c, spec(), t0, shared);
        let mut hedge = Hedge::new(&call, t0, shared);
        let sent = call.poll(t0, shared);
        let h = host(&sent);
        hedge.observe(&call);
        (call, hedge, h)
    }

    #[test]
    fn the_backup_goes_elsewhere_at_the_delay_and_the_first_output_wins() {
        let c = config(3);
        let t0 = Instant::now();
        let mut shared = Shared::for_client(&c, 1);
        let (_primary, mut hedge, primary_host) = sent_primary(&c, t0, &mut shared);
        assert_eq!(hedge.deadline(), Some(t0 + Duration::from_millis(200)));
        assert!(hedge
            .start_backup(t0 + Duration::from_millis(199), &c, spec(), &mut shared)
            .is_none());
        let mut backup = hedge
            .start_backup(t0 + Duration::from_millis(200), &c, spec(), &mut shared)
            .expect("a backup");
        let backup_host = host(&backup.poll(t0 + Duration::from_millis(200), &mut shared));
        assert_ne!(
            backup_host, primary_host,
            "the backup avoids the primary's endpoint"
        );
        assert_eq!(hedge.deadline(), None, "one hedge per call");
        assert_eq!(
            hedge.on_step(Leg::Backup, true),
            HedgeStep::Deliver { cancel_other: true }
        );
        assert_eq!(shared.hedge_counts().0, 1);
    }

    #[test]
    fn a_leg_that_fails_before_output_leaves_the_other_to_finish() {
        let c = config(2);
        let t0 = Instant::now();
        let mut shared = Shared::for_client(&c, 1);
        let (_p, mut hedge, _) = sent_primary(&c, t0, &mut shared);
        hedge
            .start_backup(t0 + Duration::from_secs(1), &c, spec(), &mut shared)
            .expect("a backup");
        assert_eq!(hedge.on_step(Leg::Primary, false), HedgeStep::Wait);
        assert_eq!(
            hedge.on_step(Leg::Backup, false),
            HedgeStep::Deliver {
                cancel_other: false
            }
        );
    }

    #[test]
    fn never_after_output_nor_without_another_endpoint_nor_for_json() {
        let t0 = Instant::now();
        // Output already reached the caller.
        let c = config(2);
        let mut shared = Shared::for_client(&c, 1);
        let (mut primary, mut hedge, _) = sent_primary(&c, t0, &mut shared);
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "text/event-stream".parse().unwrap());
        let head = ResponseHead::new(http::StatusCode::OK, headers, SystemTime::now());
        primary.handle(t0, Event::Response(head), &mut shared);
        let chunk = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
        primary.handle(t0, Event::Chunk(chunk.into()), &mut shared);
        assert!(matches!(primary.poll(t0, &mut shared), Action::Emit(_)));
        hedge.observe(&primary);
        assert!(hedge
            .start_backup(t0 + Duration::from_secs(1), &c, spec(), &mut shared)
            .is_none());
        // One endpoint: nothing to hedge to.
        let c1 = config(1);
        let mut shared = Shared::for_client(&c1, 1);
        let call = Call::new(&c1, spec(), t0, &mut shared);
        assert_eq!(Hedge::new(&call, t0, &mut shared).deadline(), None);
        // A JSON call.
        let mut shared = Shared::for_client(&c, 1);
        let json = CallSpec::json(Operation::ChatCompletions, Ok(serde_json::json!({})));
        let call = Call::new(&c, json, t0, &mut shared);
        assert_eq!(Hedge::new(&call, t0, &mut shared).deadline(), None);
    }

    #[test]
    fn the_bucket_bounds_hedges() {
        let mut c = config(2);
        c.policy.pool.hedge = Some(HedgeConfig::after(Duration::from_millis(10)));
        let t0 = Instant::now();
        let mut shared = Shared::for_client(&c, 1);
        let mut hedges = 0;
        for i in 0..400u64 {
            let now = t0 + Duration::from_secs(i);
            let (mut primary, mut hedge, _) = sent_primary(&c, now, &mut shared);
            if let Some(mut b) =
                hedge.start_backup(now + Duration::from_secs(1), &c, spec(), &mut shared)
            {
                hedges += 1;
                b.cancel(now, &mut shared);
            }
            primary.cancel(now, &mut shared);
        }
        assert!(
            hedges <= 400 * 5 / 100,
            "{hedges} hedges for 400 calls at 5 %"
        );
        assert!(hedges >= 400 * 5 / 100 - 1, "{hedges}");
    }
}
