//! The admit phase: before an attempt is routed, the call passes the client's limits in this
//! order — a concurrency slot (first come, first served; once per call), the server's announced
//! quota, the token rate limit (once per call), the request rate limit, the circuit breaker.
//! Each either lets the call through, makes it wait exactly until it may go, or ends it with a
//! clear error when that wait would pass its deadline.

use std::time::Instant;

use super::contract::{Action, WaitReason};
use super::observe::Limiter;
use super::{Call, Phase, Shared};
use crate::error::VllmError;
use crate::policy::{estimate_tokens, Admission, GiveUpReason, RateLimited, TimeoutKind};

impl Call {
    /// A concurrency slot, first come, first served: a new call queues behind every waiting
    /// one; a waiting call takes only the slot handed to it. `Some`: wait for it.
    pub(super) fn wait_for_slot(&mut self, now: Instant, shared: &mut Shared) -> Option<Action> {
        let Phase::WaitPermit { waiter } = self.phase else {
            return None;
        };
        self.woken = false;
        match shared.admit_slot(now, waiter) {
            None => self.phase = Phase::Admit,
            Some(Admission::Admitted(permit)) => {
                self.obs.admitted(now);
                self.slot = Some(permit);
                self.phase = Phase::Admit;
            }
            Some(Admission::Queued(w)) => {
                if waiter.is_none() {
                    self.obs.waiting(now, Limiter::Concurrency, None);
                }
                self.phase = Phase::WaitPermit { waiter: Some(w) };
                if self.past_deadline(now) {
                    self.report.timeout = Some(TimeoutKind::Deadline);
                    self.finish(now, Err(VllmError::Timeout));
                    return None;
                }
                return Some(self.permit_wait(w));
            }
        }
        None
    }

    pub(super) fn permit_wait(&self, waiter: crate::policy::WaiterId) -> Action {
        Action::Wait {
            until: self.deadline,
            waiter: Some(waiter),
            reason: WaitReason::Permit,
        }
    }

    /// Rate limits and breaker, then routing. `None`: the call moved on (to a wait, or its
    /// end); poll again.
    pub(super) fn admit(&mut self, now: Instant, shared: &mut Shared) -> Option<Action> {
        if self.past_deadline(now) {
            self.report.timeout = Some(TimeoutKind::Deadline);
            let e = self.last_error.take().unwrap_or(VllmError::Timeout);
            self.finish(now, Err(e));
            return None;
        }
        if let Some(gate) = shared.server_gate(now) {
            self.wait_for_server_quota(now, gate);
            return None;
        }
        if !self.charge_tokens(now, shared) {
            return None;
        }
        if let Some(checked) = shared.check_rate(now) {
            if checked.is_err() {
                self.refund_unsent_tokens(now, shared);
            }
            match checked {
                Ok(()) => {}
                Err(RateLimited::Wait { until }) => {
                    if self.deadline.is_some_and(|d| until >= d) {
                        let e = VllmError::RateLimited(format!(
                            "the next slot opens in {:?}, after the call's deadline",
                            until.saturating_duration_since(now)
                        ));
                        self.finish(now, Err(e));
                        return None;
                    }
                    self.obs.waiting(now, Limiter::ClientRate, Some(until));
                    self.phase = Phase::RateWait {
                        until,
                        server: false,
                    };
                    return None;
                }
                Err(RateLimited::Never { cost, burst }) => {
                    let e = VllmError::RateLimited(format!(
                        "a request costing {cost} can never fit a burst of {burst}"
                    ));
                    self.finish(now, Err(e));
                    return None;
                }
            }
        }
        match shared.breaker_permit(self.operation, now) {
            None => {}
            Some(Ok(permit)) => self.breaker_permit = Some(permit),
            Some(Err(rejected)) => {
                self.refund_unsent_tokens(now, shared);
                // A retry the breaker refuses ends the call with the last attempt's error.
                if self.last_error.is_some() {
                    self.report.gave_up = Some(GiveUpReason::CircuitOpen);
                }
                let e = self.last_error.take().unwrap_or(VllmError::CircuitOpen {
                    retry_in: rejected.retry_at.saturating_duration_since(now),
                });
                self.finish(now, Err(e));
                return None;
            }
        }
        self.route(now, shared)
    }

    /// The server announced that its quota is spent until `gate`: wait for it instead of
    /// earning a 429 — within the deadline and the longest wait a hint may ask for.
    fn wait_for_server_quota(&mut self, now: Instant, gate: Instant) {
        let wait = gate.saturating_duration_since(now);
        let beyond_cap = wait > self.policy.retry.max_retry_after;
        if beyond_cap || self.deadline.is_some_and(|d| gate >= d) {
            let e = match self.last_error.take() {
                // A retry: the call ends with its last attempt's error, saying why.
                Some(e) => {
                    self.report.gave_up = Some(if beyond_cap {
                        GiveUpReason::HintBeyondCap { hint: wait }
                    } else {
                        GiveUpReason::HintBeyondDeadline { hint: wait }
                    });
                    e
                }
                None => VllmError::RateLimited(format!(
                    "the server's rate limit refills in {wait:?}, past the call's deadline or max_retry_after"
                )),
            };
            self.finish(now, Err(e));
            return;
        }
        self.obs.waiting(now, Limiter::ServerRate, Some(gate));
        self.phase = Phase::RateWait {
            until: gate,
            server: true,
        };
    }

    /// Charges the call's token estimate to the token rate limit, once, before its first
    /// attempt. `false`: the call now waits for it, or ended.
    fn charge_tokens(&mut self, now: Instant, shared: &mut Shared) -> bool {
        if self.tokens_charged.is_some() || !self.operation.counts_tokens() {
            return true;
        }
        let cost = estimate_tokens(self.meta.prompt_chars, self.meta.max_tokens);
        match shared.charge_tokens(now, cost) {
            None => true,
            Some(Ok(())) => {
                self.tokens_charged = Some(cost);
                true
            }
            Some(Err(RateLimited::Wait { until })) => {
                if self.deadline.is_some_and(|d| until >= d) {
                    let e = VllmError::RateLimited(format!(
                        "the token rate limit admits {cost} tokens in {:?}, after the call's deadline",
                        until.saturating_duration_since(now)
                    ));
                    self.finish(now, Err(e));
                    return false;
                }
                self.obs.waiting(now, Limiter::TokenRate, Some(until));
                self.phase = Phase::RateWait {
                    until,
                    server: false,
                };
                false
            }
            Some(Err(RateLimited::Never { cost, burst })) => {
                let e = VllmError::RateLimited(format!(
                    "a request estimated at {cost} tokens can never fit a limit of {burst} tokens per minute"
                ));
                self.finish(now, Err(e));
                false
            }
        }
    }

    /// Gives the token estimate back when no attempt of the call was sent.
    fn refund_unsent_tokens(&mut self, now: Instant, shared: &mut Shared) {
        if self.attempts > 0 {
            return;
        }
        if let Some(cost) = self.tokens_charged.take() {
            shared.refund_tokens(now, cost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{chat_json, head, ms, Wire};
    use super::super::{Action, Event, WaitReason};
    use crate::config::{ClientConfig, RateLimit};
    use crate::error::VllmError;
    use crate::policy::BreakerConfig;

    const OK: &str = r#"{"choices":[]}"#;

    #[test]
    fn slots_go_first_come_first_served() {
        let mut c = ClientConfig::default();
        c.policy.max_concurrency = Some(1);
        let mut w = Wire::new(c);
        let (mut a, mut b, mut d) = (
            w.call(chat_json()),
            w.call(chat_json()),
            w.call(chat_json()),
        );
        let sent = w.send(&mut a, 0);
        let Action::Wait {
            waiter: Some(wb),
            reason: WaitReason::Permit,
            ..
        } = w.next(&mut b, 0)
        else {
            panic!("b waits for a slot")
        };
        let Action::Wait {
            waiter: Some(wd), ..
        } = w.next(&mut d, 0)
        else {
            panic!("d waits for a slot")
        };
        assert!(wb < wd);
        // `a` ends: its slot goes to `b`, which waited longest, and to nobody else.
        let json = head(200, "application/json", &[]);
        let (_, end) = w.answer(&mut a, 10, sent, json, &[OK], true);
        assert!(matches!(end, Action::Done(Ok(_))), "{end:?}");
        assert_eq!(w.shared.poll_wake(), Some(wb));
        assert_eq!(w.shared.poll_wake(), None);
        // A wake-up `d` was not named for is harmless: it waits again.
        w.handle(&mut d, 10, Event::PermitReleased);
        assert!(matches!(
            w.next(&mut d, 10),
            Action::Wait {
                waiter: Some(_),
                ..
            }
        ));
        w.handle(&mut b, 10, Event::PermitReleased);
        assert!(matches!(w.next(&mut b, 10), Action::Send { .. }));
    }

    #[test]
    fn a_rate_limited_call_waits_exactly_until_its_slot_or_fails_past_its_deadline() {
        let mut c = ClientConfig::default();
        c.policy.rate_limit = Some(RateLimit {
            requests: 1,
            per: ms(1000),
            burst: 1,
        });
        let mut w = Wire::new(c.clone());
        let mut a = w.call(chat_json());
        w.send(&mut a, 0);
        let mut b = w.call(chat_json());
        match w.next(&mut b, 0) {
            Action::Wait {
                until: Some(u),
                reason: WaitReason::RateLimit,
                ..
            } => assert_eq!(u, w.at(1000)),
            other => panic!("expected a wait, got {other:?}"),
        }
        w.handle(&mut b, 1000, Event::Timeout);
        assert!(matches!(w.next(&mut b, 1000), Action::Send { .. }));

        // With a deadline before the slot opens: refused at once.
        c.policy.timeouts.total = Some(ms(500));
        let mut w = Wire::new(c);
        let mut a = w.call(chat_json());
        w.send(&mut a, 0);
        let mut b = w.call(chat_json());
        let end = w.next(&mut b, 0);
        assert!(
            matches!(end, Action::Done(Err(VllmError::RateLimited(_)))),
            "{end:?}"
        );
    }

    #[test]
    fn an_open_breaker_ends_the_call_without_sending() {
        let mut c = ClientConfig::default();
        c.policy.breaker = Some(BreakerConfig::default());
        let mut w = Wire::new(c);
        let t0 = w.t0;
        if let Some(b) = w.shared.breaker_mut() {
            b.force_open(t0);
        }
        let mut a = w.call(chat_json());
        let end = w.next(&mut a, 0);
        assert!(
            matches!(end, Action::Done(Err(VllmError::CircuitOpen { .. }))),
            "{end:?}"
        );
        assert_eq!(a.report().attempts, 0);
    }

    #[test]
    fn a_spent_server_quota_holds_the_next_call_until_it_refills() {
        let mut w = Wire::new(ClientConfig::default());
        let mut a = w.call(chat_json());
        let sent = w.send(&mut a, 0);
        let spent = head(
            200,
            "application/json",
            &[
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "2s"),
            ],
        );
        let (_, end) = w.answer(&mut a, 0, sent, spent, &[OK], true);
        assert!(matches!(end, Action::Done(Ok(_))));
        let mut b = w.call(chat_json());
        match w.next(&mut b, 0) {
            Action::Wait {
                until: Some(u),
                reason: WaitReason::ServerRateLimit,
                ..
            } => assert_eq!(u, w.at(2000)),
            other => panic!("expected a wait for the quota, got {other:?}"),
        }
        w.handle(&mut b, 2000, Event::Timeout);
        assert!(matches!(w.next(&mut b, 2000), Action::Send { .. }));
    }
}
