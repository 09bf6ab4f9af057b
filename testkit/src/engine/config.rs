//! [`EngineConfig`]: the engine's capacity and speed, and its [`Fault`] timeline.

use std::time::Duration;

/// What a replica is like: batch size, KV-cache size, step costs, speed, faults.
///
/// Defaults ([`EngineConfig::default`]):
///
/// | field | default | meaning |
/// |---|---|---|
/// | `max_num_seqs` | 64 | sequences decoded together (vLLM's own default is 256; smaller here so that a few hundred requests saturate a replica) |
/// | `kv_capacity_tokens` | 65 536 | prompt + generated tokens the running sequences may hold |
/// | `step_base` | 15 ms | fixed cost of one engine step |
/// | `step_per_seq` | 0.25 ms | added per running sequence |
/// | `prefill_per_token` | 0.1 ms | added per prompt (or recomputed) token of each sequence the step schedules |
/// | `speed` | 1.0 | every step takes `1 / speed` as long |
/// | `faults` | none | see [`Fault`] |
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// The most sequences running at once (vLLM's `max_num_seqs`). `0` is taken as 1.
    pub max_num_seqs: u32,
    /// How many tokens (prompt + generated, over all running sequences) the KV cache holds.
    pub kv_capacity_tokens: u64,
    /// The fixed part of a step's duration.
    pub step_base: Duration,
    /// The part of a step's duration per running sequence.
    pub step_per_seq: Duration,
    /// Prefill cost per token, added to the step that schedules a sequence (its prompt, plus
    /// its generated tokens when it is recomputed after a preemption).
    pub prefill_per_token: Duration,
    /// The replica's speed: a step takes its computed duration divided by this. Values that
    /// are not finite and positive are taken as 1.0.
    pub speed: f64,
    /// Faults on the replica's timeline.
    pub faults: Vec<Fault>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_num_seqs: 64,
            kv_capacity_tokens: 65_536,
            step_base: Duration::from_millis(15),
            step_per_seq: Duration::from_micros(250),
            prefill_per_token: Duration::from_micros(100),
            speed: 1.0,
            faults: Vec::new(),
        }
    }
}

impl EngineConfig {
    /// Adds a fault.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Sets the speed factor.
    pub fn with_speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }
}

/// A fault on a replica's timeline, active from `from` (inclusive) to `to` (exclusive), both
/// offsets from the engine's origin (the instant given to [`Engine::new`](super::Engine::new)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    /// When it starts (offset from the origin).
    pub from: Duration,
    /// When it ends (offset from the origin, exclusive).
    pub to: Duration,
    /// What it does.
    pub kind: FaultKind,
}

/// What a [`Fault`] does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// Every step that *starts* in the window takes `k` times as long (several overlapping
    /// slow windows multiply). Values that are not finite and positive are ignored.
    Slow(f64),
    /// The replica is down: at the window's start every request in flight is lost
    /// ([`Output::Lost`](super::Output::Lost): the connection breaks), and during it every
    /// connection is refused (a request submitted anyway is lost at once).
    Down,
    /// The HTTP layer answers every new request with 503 (the engine keeps serving the
    /// requests it has). The engine itself does not act on it: see
    /// [`Engine::is_failing`](super::Engine::is_failing).
    Errors,
}

impl Fault {
    /// A slow window: steps starting in `[from, to)` take `k` times as long.
    pub fn slow(from: Duration, to: Duration, k: f64) -> Fault {
        Fault {
            from,
            to,
            kind: FaultKind::Slow(k),
        }
    }

    /// The replica is down (connection refused) in `[from, to)`.
    pub fn down(from: Duration, to: Duration) -> Fault {
        Fault {
            from,
            to,
            kind: FaultKind::Down,
        }
    }

    /// The replica answers 503 in `[from, to)`.
    pub fn errors(from: Duration, to: Duration) -> Fault {
        Fault {
            from,
            to,
            kind: FaultKind::Errors,
        }
    }

    /// Whether the window covers `offset`.
    pub fn covers(&self, offset: Duration) -> bool {
        self.from <= offset && offset < self.to
    }
}
