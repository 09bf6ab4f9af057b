//! The timeout taxonomy and deadline arithmetic.
//!
//! ```text
//!  total (overall deadline) ├───────────────────────────────────────────────────────────┤
//!  attempt 1   ├── connect ──┼── first_token ──┼─ idle ─┼─ idle ─┤ sleep ├ attempt 2 …
//!              (TCP+TLS)      (head … 1st data)  (between DATA events)
//! ```
//!
//! | knob | default | what it bounds |
//! |---|---|---|
//! | `connect` | 10 s | establishing the connection (TCP + TLS) |
//! | `first_token` | none | from sending the request to the first data event (vLLM signals overload by queueing, so a long wait here is the overload signal) |
//! | `idle` | 60 s | between two *data* events of a stream; SSE keep-alive comments do **not** reset it |
//! | `attempt` | 600 s | one whole attempt, head and body (the seed page's `timeout_secs`) |
//! | `total` | none | the overall deadline over all attempts and all backoff sleeps |
//!
//! No timer is ever armed past the overall deadline: [`clamp_to_deadline`] and [`Timeouts::arm`]
//! bound every timer by it, and [`earliest`] / [`earliest_timer`] pick the one that fires first.
//! When a clamped timer fires at the deadline the adapter reports [`TimeoutKind::Deadline`],
//! which is never retried.

use std::time::{Duration, Instant};

use super::clock::saturating_add;

/// Which timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// The connection could not be established in time.
    Connect,
    /// No data event arrived in time after the request was sent.
    FirstToken,
    /// Too long between two data events.
    Idle,
    /// The whole attempt took too long.
    Attempt,
    /// The overall deadline over all attempts passed. Never retried.
    Deadline,
}

/// Every timeout of a call; `None` disables that timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connection establishment. Default 10 s.
    pub connect: Option<Duration>,
    /// Request sent → first data event. Default none.
    pub first_token: Option<Duration>,
    /// Between two data events (keep-alive comments do not count). Default 60 s.
    pub idle: Option<Duration>,
    /// One whole attempt. Default 600 s.
    pub attempt: Option<Duration>,
    /// All attempts and sleeps together. Default none.
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Some(Duration::from_secs(10)),
            first_token: None,
            idle: Some(Duration::from_secs(60)),
            attempt: Some(Duration::from_secs(600)),
            total: None,
        }
    }
}

impl Timeouts {
    /// No timers at all.
    pub fn none() -> Self {
        Timeouts {
            connect: None,
            first_token: None,
            idle: None,
            attempt: None,
            total: None,
        }
    }

    /// The overall deadline of a call that starts at `start`, if `total` is set.
    pub fn deadline_from(&self, start: Instant) -> Option<Instant> {
        self.total.map(|t| saturating_add(start, t))
    }

    /// The timeout of the given kind (`Deadline` maps to `total`).
    pub fn get(&self, kind: TimeoutKind) -> Option<Duration> {
        match kind {
            TimeoutKind::Connect => self.connect,
            TimeoutKind::FirstToken => self.first_token,
            TimeoutKind::Idle => self.idle,
            TimeoutKind::Attempt => self.attempt,
            TimeoutKind::Deadline => self.total,
        }
    }

    /// Arms the timer of `kind` starting at `from`, clamped to `deadline`.
    ///
    /// Returns the instant it fires and the kind to report: when the deadline comes first (or at
    /// the same instant) the kind is [`TimeoutKind::Deadline`]. `None` when neither is set.
    pub fn arm(
        &self,
        kind: TimeoutKind,
        from: Instant,
        deadline: Option<Instant>,
    ) -> Option<(Instant, TimeoutKind)> {
        let own = self.get(kind).map(|d| (saturating_add(from, d), kind));
        earliest_timer([deadline.map(|d| (d, TimeoutKind::Deadline)), own])
    }
}

/// Where an exchange's body stands, for [`Timeouts::body_deadline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyClock {
    /// A stream before its first data event: it may be queued, not stalled.
    AwaitingFirstData,
    /// Data flows (or a non-stream body): idle counts from this instant, the last data event
    /// or chunk.
    LastActivity(Instant),
}

impl Timeouts {
    /// The deadline for a response head of an attempt sent at `start`: the attempt timer, the
    /// first-token timer (streams: the head is part of the wait for the first token) and the
    /// overall deadline, whichever comes first.
    pub fn head_deadline(
        &self,
        start: Instant,
        stream: bool,
        overall: Option<Instant>,
    ) -> Option<(Instant, TimeoutKind)> {
        earliest_timer([
            self.arm(TimeoutKind::Attempt, start, overall),
            stream
                .then(|| self.arm(TimeoutKind::FirstToken, start, overall))
                .flatten(),
            overall.map(|d| (d, TimeoutKind::Deadline)),
        ])
    }

    /// The deadline for the next body chunk of an attempt sent at `start`.
    ///
    /// Before a stream's first data event only the first-token timer (when set), the attempt
    /// timer and the overall deadline run — never the idle timer: vLLM sends a stream's head at
    /// once and its first token only when the request is scheduled, so a quiet stream before
    /// its first token is *queued*, not stalled. After the first data event, idle counts from
    /// the last data event (keep-alive comments do not reset it). A non-streamed body (and an
    /// error body) is idle-timed from the head and then from each chunk.
    pub fn body_deadline(
        &self,
        start: Instant,
        clock: BodyClock,
        overall: Option<Instant>,
    ) -> Option<(Instant, TimeoutKind)> {
        // Asked once per streamed chunk: one pass over the three timers (on a tie the deadline
        // is reported, then the attempt timer), each sum computed once.
        let (kind, from) = match clock {
            BodyClock::AwaitingFirstData => (TimeoutKind::FirstToken, start),
            BodyClock::LastActivity(at) => (TimeoutKind::Idle, at),
        };
        earliest_timer([
            overall.map(|d| (d, TimeoutKind::Deadline)),
            self.attempt
                .map(|d| (saturating_add(start, d), TimeoutKind::Attempt)),
            self.get(kind).map(|d| (saturating_add(from, d), kind)),
        ])
    }
}

/// The earliest of several optional instants; `None` if all are `None`.
pub fn earliest<I: IntoIterator<Item = Option<Instant>>>(instants: I) -> Option<Instant> {
    instants.into_iter().flatten().min()
}

/// The earliest of several optional timers; on a tie the first listed wins (list the deadline
/// first so that it is reported as such).
pub fn earliest_timer<I>(timers: I) -> Option<(Instant, TimeoutKind)>
where
    I: IntoIterator<Item = Option<(Instant, TimeoutKind)>>,
{
    let mut best: Option<(Instant, TimeoutKind)> = None;
    for t in timers.into_iter().flatten() {
        if best.is_none_or(|b| t.0 < b.0) {
            best = Some(t);
        }
    }
    best
}

/// Bounds a timer by the overall deadline: never later than `deadline`.
///
/// With no timer but a deadline, the deadline itself is the timer.
pub fn clamp_to_deadline(timer: Option<Instant>, deadline: Option<Instant>) -> Option<Instant> {
    earliest([timer, deadline])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let t = Timeouts::default();
        assert_eq!(t.connect, Some(Duration::from_secs(10)));
        assert_eq!(t.first_token, None);
        assert_eq!(t.idle, Some(Duration::from_secs(60)));
        assert_eq!(t.attempt, Some(Duration::from_secs(600)));
        assert_eq!(t.total, None);
    }

    #[test]
    fn earliest_and_clamp() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(earliest([None, Some(t1), Some(t0)]), Some(t0));
        assert_eq!(earliest([None, None]), None);
        assert_eq!(clamp_to_deadline(Some(t1), Some(t0)), Some(t0));
        assert_eq!(clamp_to_deadline(Some(t0), Some(t1)), Some(t0));
        assert_eq!(clamp_to_deadline(None, Some(t1)), Some(t1));
        assert_eq!(clamp_to_deadline(Some(t1), None), Some(t1));
    }

    #[test]
    fn arm_reports_deadline_when_it_comes_first() {
        let t0 = Instant::now();
        let t = Timeouts::default();
        let dl = t0 + Duration::from_secs(5);
        assert_eq!(
            t.arm(TimeoutKind::Connect, t0, Some(dl)),
            Some((dl, TimeoutKind::Deadline))
        );
        assert_eq!(
            t.arm(TimeoutKind::Connect, t0, None),
            Some((t0 + Duration::from_secs(10), TimeoutKind::Connect))
        );
        let dl = t0 + Duration::from_secs(10);
        assert_eq!(
            t.arm(TimeoutKind::Connect, t0, Some(dl)),
            Some((dl, TimeoutKind::Deadline))
        );
        assert_eq!(t.arm(TimeoutKind::FirstToken, t0, None), None);
    }

    #[test]
    fn huge_timeouts_do_not_panic() {
        let t0 = Instant::now();
        let t = Timeouts {
            total: Some(Duration::MAX),
            attempt: Some(Duration::MAX),
            ..Timeouts::default()
        };
        assert!(t.deadline_from(t0).unwrap() > t0);
        assert!(t
            .arm(TimeoutKind::Attempt, t0, t.deadline_from(t0))
            .is_some());
    }
}
