//! [`Driver`]: one call and its client, the part of the run loop that is the same for async
//! and blocking transports — ask the core what to do, report what happened, take the
//! client lock only when the call owes the shared state something.

use std::sync::Arc;
use std::time::Instant;

use vllm_client_core::call::log;
use vllm_client_core::call::{Action, Call, CallReport, CallSpec, Event};
use vllm_client_core::policy::WaiterId;

use crate::client::{emit, ClientState};
use crate::turn::Turn;

pub(crate) struct Driver {
    client: Arc<ClientState>,
    call: Call,
    /// Set when this call's turn for a slot came.
    pub(crate) turn: Arc<Turn>,
    waiter: Option<WaiterId>,
}

impl Driver {
    pub(crate) fn new(client: Arc<ClientState>, spec: CallSpec) -> Driver {
        let call = {
            let mut shared = client.lock();
            Call::new(client.config(), spec, Instant::now(), &mut shared)
        };
        Driver {
            client,
            call,
            turn: Arc::new(Turn::default()),
            waiter: None,
        }
    }

    pub(crate) fn report(&self) -> CallReport {
        self.call.report().clone()
    }

    /// What to do next. Reading and emitting a body need no lock; everything else takes it,
    /// and a call told to wait is registered before the lock is released.
    pub(crate) fn next(&mut self) -> Action {
        let now = Instant::now();
        let action = match self.call.poll_local(now) {
            Some(action) => {
                self.flush();
                action
            }
            None => {
                let mut shared = self.client.lock();
                let action = self.call.poll(now, &mut shared);
                if let Action::WaitForPermit { waiter, .. } = &action {
                    self.client.register(&shared, *waiter, self.turn.clone());
                    self.waiter = Some(*waiter);
                }
                action
            }
        };
        match &action {
            Action::Sleep { until, reason } => {
                emit(log::sleep_line(
                    reason,
                    until.saturating_duration_since(now),
                ));
            }
            Action::WaitForPermit { .. } => emit(log::wait_for_permit_line()),
            Action::Done(_) => self.forget_waiter(),
            _ => {}
        }
        action
    }

    /// Reports what happened; the lock is taken only if the call then owes the shared state.
    pub(crate) fn handle(&mut self, event: Event) {
        self.call.handle_local(Instant::now(), event);
        self.flush();
    }

    fn flush(&mut self) {
        if self.call.has_effects() {
            let mut shared = self.client.lock();
            self.call.flush(Instant::now(), &mut shared);
        }
    }

    fn forget_waiter(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.client.forget(waiter);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.call.is_finished() || self.call.has_effects() {
            let mut shared = self.client.lock();
            self.call.cancel(Instant::now(), &mut shared);
        }
        self.forget_waiter();
    }
}
