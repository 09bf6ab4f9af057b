//! [`Turn`]: one call's wake-up when its turn for a concurrency slot comes, awaitable from
//! async code on any runtime and from a blocking thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

#[derive(Default)]
struct State {
    ready: bool,
    waker: Option<Waker>,
}

/// Set once the call's turn came; kept if it comes before the call waits, so it is never
/// missed.
#[derive(Default)]
pub(crate) struct Turn {
    state: Mutex<State>,
    cv: Condvar,
}

impl Turn {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn notify(&self) {
        let waker = {
            let mut s = self.lock();
            s.ready = true;
            s.waker.take()
        };
        self.cv.notify_one();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Resolves once the turn came.
    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait { turn: self }
    }

    /// Blocks until the turn came or `deadline`; whether it came.
    pub(crate) fn wait_blocking(&self, deadline: Option<Instant>) -> bool {
        let mut s = self.lock();
        while !s.ready {
            s = match deadline {
                None => self.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    match self.cv.wait_timeout(s, left) {
                        Ok((s, _)) => s,
                        Err(p) => p.into_inner().0,
                    }
                }
            };
        }
        s.ready = false;
        true
    }
}

pub(crate) struct Wait<'a> {
    turn: &'a Turn,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.turn.lock();
        if s.ready {
            s.ready = false;
            Poll::Ready(())
        } else {
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}
