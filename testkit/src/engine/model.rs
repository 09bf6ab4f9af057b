//! [`Engine`]: one vLLM replica's scheduler in virtual time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::{EngineConfig, FaultKind};
use super::request::{Output, RequestId, RequestSpec};

/// Counters over an engine's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Requests submitted (every [`Engine::submit`], rejected and lost ones included).
    pub submitted: u64,
    /// Requests that ran to their end.
    pub finished: u64,
    /// Requests aborted by [`Engine::abort`] before their end.
    pub aborted: u64,
    /// Requests rejected at submission.
    pub rejected: u64,
    /// Requests lost to a [`FaultKind::Down`] window.
    pub lost: u64,
    /// Preemptions (a sequence sent back to the waiting queue for want of KV cache).
    pub preemptions: u64,
    /// Engine steps run.
    pub steps: u64,
    /// Tokens prefilled (prompts, plus recomputed tokens after preemptions).
    pub prefill_tokens: u64,
    /// Tokens generated and handed out (aborted requests' tokens included).
    pub generated_tokens: u64,
    /// The longest the waiting queue has been.
    pub max_waiting: usize,
}

#[derive(Debug, Clone)]
struct Seq {
    id: RequestId,
    prompt: u32,
    max_tokens: u32,
    generated: u32,
    preemptions: u32,
}

impl Seq {
    /// KV-cache tokens it holds.
    fn tokens(&self) -> u64 {
        u64::from(self.prompt) + u64::from(self.generated)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Internal {
    // Order = priority at one instant: a step's tokens, then a crash, then the next step.
    StepEnd,
    Crash,
    StepStart,
}

/// One replica's engine: continuous batching, prefill cost, a KV cache with preemption, an
/// unbounded FIFO waiting queue, aborts, speed and faults. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    origin: Instant,
    clock: Instant,
    next_id: u64,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    step_end: Option<Instant>,
    pending_start: Option<Instant>,
    outputs: VecDeque<(RequestId, Output)>,
    stats: EngineStats,
}

impl Engine {
    /// An idle engine; `origin` is the instant fault windows are measured from (and the
    /// engine's clock at start).
    pub fn new(config: EngineConfig, origin: Instant) -> Engine {
        Engine {
            config,
            origin,
            clock: origin,
            next_id: 0,
            waiting: VecDeque::new(),
            running: Vec::new(),
            step_end: None,
            pending_start: None,
            outputs: VecDeque::new(),
            stats: EngineStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Requests waiting to be scheduled (vLLM's `num_requests_waiting`).
    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Requests running (vLLM's `num_requests_running`).
    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    /// KV-cache tokens held by the running sequences.
    pub fn kv_used_tokens(&self) -> u64 {
        self.running.iter().map(Seq::tokens).sum()
    }

    /// Tokens generated so far for `id`, if it is waiting or running.
    pub fn generated(&self, id: RequestId) -> Option<u32> {
        self.running
            .iter()
            .chain(self.waiting.iter())
            .find(|s| s.id == id)
            .map(|s| s.generated)
    }

    /// Whether a step is in progress (its end is the next event).
    pub fn in_step(&self) -> bool {
        self.step_end.is_some()
    }

    /// Whether the replica is down at `now` (a [`FaultKind::Down`] window covers it).
    pub fn is_down(&self, now: Instant) -> bool {
        self.window(now, |k| matches!(k, FaultKind::Down))
    }

    /// Whether the replica answers 503 at `now` (a [`FaultKind::Errors`] window covers it).
    pub fn is_failing(&self, now: Instant) -> bool {
        self.window(now, |k| matches!(k, FaultKind::Errors))
    }

    fn window(&self, now: Instant, pred: impl Fn(&FaultKind) -> bool) -> bool {
        let off = now.saturating_duration_since(self.origin);
        self.config
            .faults
            .iter()
            .any(|f| pred(&f.kind) && f.covers(off))
    }

    /// Submits a request at `now` (after [`settle`](Self::settle)ing to `now`). It joins the
    /// back of the waiting queue; an idle engine starts a step at `now`, whose batch is formed
    /// when `advance(now)` is next called (so requests submitted at one instant batch
    /// together; so do requests submitted at the instant a step ends, before `advance`). Rejected (max_tokens 0, or too big for the KV cache) and lost (the replica
    /// is down) requests get their terminal output at once.
    pub fn submit(&mut self, now: Instant, spec: RequestSpec) -> RequestId {
        self.settle(now);
        let now = self.clock;
        let id = RequestId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        self.stats.submitted += 1;
        if self.is_down(now) {
            self.stats.lost += 1;
            self.outputs.push_back((id, Output::Lost));
            return id;
        }
        let footprint = u64::from(spec.prompt_tokens) + u64::from(spec.max_tokens);
        if spec.max_tokens == 0 || footprint > self.config.kv_capacity_tokens {
            self.stats.rejected += 1;
            self.outputs.push_back((id, Output::Rejected));
            return id;
        }
        self.waiting.push_back(Seq {
            id,
            prompt: spec.prompt_tokens,
            max_tokens: spec.max_tokens,
            generated: 0,
            preemptions: 0,
        });
        self.stats.max_waiting = self.stats.max_waiting.max(self.waiting.len());
        if self.step_end.is_none() && self.pending_start.is_none() {
            self.pending_start = Some(now);
        }
        id
    }

    /// The client disconnected at `now`: the request leaves the waiting queue or the batch
    /// (its KV cache is free for the next step; a step in progress still takes its time),
    /// and no output of it is returned any more (queued ones are dropped). Returns whether
    /// the request was still waiting or running.
    pub fn abort(&mut self, now: Instant, id: RequestId) -> bool {
        self.settle(now);
        self.outputs.retain(|(r, _)| *r != id);
        let before = self.running.len() + self.waiting.len();
        self.running.retain(|s| s.id != id);
        self.waiting.retain(|s| s.id != id);
        let found = self.running.len() + self.waiting.len() < before;
        if found {
            self.stats.aborted += 1;
        }
        found
    }

    /// The next instant something happens (a step ends or starts, or a down window loses the
    /// requests in flight); `None` when idle.
    pub fn next_event_at(&self) -> Option<Instant> {
        self.next_internal().map(|(t, _)| t)
    }

    fn next_internal(&self) -> Option<(Instant, Internal)> {
        let mut best: Option<(Instant, Internal)> = None;
        let mut consider = |c: Option<(Instant, Internal)>| {
            if let Some(c) = c {
                if best.is_none_or(|b| c < b) {
                    best = Some(c);
                }
            }
        };
        consider(self.step_end.map(|t| (t, Internal::StepEnd)));
        consider(self.pending_start.map(|t| (t, Internal::StepStart)));
        if !self.running.is_empty() || !self.waiting.is_empty() {
            let clock_off = self.clock.saturating_duration_since(self.origin);
            let crash = self
                .config
                .faults
                .iter()
                .filter(|f| matches!(f.kind, FaultKind::Down) && f.from >= clock_off)
                .map(|f| f.from)
                .min();
            consider(
                crash.and_then(|off| self.origin.checked_add(off).map(|t| (t, Internal::Crash))),
            );
        }
        best
    }

    /// Runs everything that happens up to and including `now`: steps end (their tokens are
    /// queued for [`poll_output`](Self::poll_output)) and the next one starts at once at the
    /// same instant when there is work; a down window loses the requests in flight. A `now`
    /// earlier than one already seen is taken as the latest one.
    pub fn advance(&mut self, now: Instant) {
        self.run_until(now, true);
    }

    /// Like [`advance`](Self::advance), except that a step starting exactly at `now` is not
    /// formed yet: requests submitted at `now` after this still join it. [`submit`](Self::submit)
    /// and [`abort`](Self::abort) settle first.
    pub fn settle(&mut self, now: Instant) {
        self.run_until(now, false);
    }

    fn run_until(&mut self, now: Instant, form_at_now: bool) {
        // Bounded: each iteration moves the clock forward or consumes a pending start, and a
        // step has a positive duration (at least 1 ns).
        let mut guard = 0u32;
        while let Some((t, what)) = self.next_internal() {
            if t > now || guard > 1_000_000 {
                break;
            }
            if t == now && what == Internal::StepStart && !form_at_now {
                break;
            }
            guard += 1;
            self.clock = self.clock.max(t);
            match what {
                Internal::StepEnd => self.end_step(t),
                Internal::Crash => self.crash(),
                Internal::StepStart => self.start_step(t),
            }
        }
        self.clock = self.clock.max(now);
    }

    /// The next output, in the order produced.
    pub fn poll_output(&mut self) -> Option<(RequestId, Output)> {
        self.outputs.pop_front()
    }

    fn start_step(&mut self, t: Instant) {
        self.pending_start = None;
        let cap = self.config.kv_capacity_tokens;
        // Decoding needs one more slot per running sequence; preempt the newest until it fits.
        let mut used: u64 = self.running.iter().map(|s| s.tokens() + 1).sum();
        let mut preempted = Vec::new();
        while used > cap {
            let Some(mut s) = self.running.pop() else {
                break;
            };
            used = used.saturating_sub(s.tokens() + 1);
            s.preemptions += 1;
            self.stats.preemptions += 1;
            preempted.push(s);
        }
        // Newest popped first: pushing each to the front leaves the oldest first.
        for s in preempted {
            self.waiting.push_front(s);
        }
        // Admit from the front, FIFO, while there is a slot and room in the cache.
        let max = self.config.max_num_seqs.max(1) as usize;
        let mut prefill: u64 = 0;
        while self.running.len() < max {
            let Some(front) = self.waiting.front() else {
                break;
            };
            let need = front.tokens() + 1;
            if used + need > cap {
                break;
            }
            let Some(s) = self.waiting.pop_front() else {
                break;
            };
            used += need;
            prefill += s.tokens();
            self.running.push(s);
        }
        if self.running.is_empty() {
            return;
        }
        self.stats.steps += 1;
        self.stats.prefill_tokens += prefill;
        let c = &self.config;
        let raw = c
            .step_base
            .saturating_add(c.step_per_seq.saturating_mul(self.running.len() as u32))
            .saturating_add(mul_u64(c.prefill_per_token, prefill));
        let d = scale(raw, self.factor(t)).max(Duration::from_nanos(1));
        self.step_end = Some(self.clock.checked_add(d).unwrap_or(self.clock));
    }

    /// The step duration multiplier at `t`: slow windows over speed.
    fn factor(&self, t: Instant) -> f64 {
        let off = t.saturating_duration_since(self.origin);
        let mut k = 1.0;
        for f in &self.config.faults {
            if let FaultKind::Slow(s) = f.kind {
                if f.covers(off) && s.is_finite() && s > 0.0 {
                    k *= s;
                }
            }
        }
        let speed = self.config.speed;
        if speed.is_finite() && speed > 0.0 {
            k /= speed;
        }
        k
    }

    fn end_step(&mut self, t: Instant) {
        self.step_end = None;
        let mut i = 0;
        while i < self.running.len() {
            let s = &mut self.running[i];
            s.generated += 1;
            self.stats.generated_tokens += 1;
            let out = if s.generated == 1 {
                Output::FirstToken
            } else {
                Output::Token
            };
            self.outputs.push_back((s.id, out));
            if s.generated >= s.max_tokens {
                let s = self.running.remove(i);
                self.stats.finished += 1;
                self.outputs.push_back((
                    s.id,
                    Output::Finished {
                        prompt_tokens: s.prompt,
                        completion_tokens: s.generated,
                        preemptions: s.preemptions,
                    },
                ));
            } else {
                i += 1;
            }
        }
        if !self.running.is_empty() || !self.waiting.is_empty() {
            self.pending_start = Some(t);
        }
    }

    fn crash(&mut self) {
        self.step_end = None;
        self.pending_start = None;
        for s in self.running.drain(..).chain(self.waiting.drain(..)) {
            self.stats.lost += 1;
            self.outputs.push_back((s.id, Output::Lost));
        }
    }
}

fn mul_u64(d: Duration, n: u64) -> Duration {
    let nanos = d.as_nanos().saturating_mul(u128::from(n));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// `d × k` to the nanosecond (exact when `k` is 1).
fn scale(d: Duration, k: f64) -> Duration {
    if k == 1.0 || !k.is_finite() || k <= 0.0 {
        return d;
    }
    let nanos = (d.as_nanos() as f64 * k).round();
    if nanos >= u64::MAX as f64 {
        Duration::from_nanos(u64::MAX)
    } else {
        Duration::from_nanos(nanos as u64)
    }
}
