//! [`Workload`]: who sends what when — a list of [`Arrival`]s, written by hand or drawn from a
//! seeded Poisson process ([`PoissonSpec`]).

use std::time::Duration;

use super::rng::SplitMix64;

/// One request of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// When the caller makes the call (offset from the run's start).
    pub at: Duration,
    /// Which client makes it (index into the fleet's clients).
    pub client: usize,
    /// Prompt length in tokens.
    pub prompt_tokens: u32,
    /// Tokens to generate.
    pub max_tokens: u32,
    /// Whether it streams.
    pub stream: bool,
}

/// A list of arrivals, sorted by time (stable: equal times keep their order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// The arrivals, in time order.
    pub arrivals: Vec<Arrival>,
}

/// A seeded Poisson workload: arrivals at `rate_per_sec` on average for `duration`, each to a
/// uniformly drawn client, with prompt and output lengths uniform in their (inclusive) ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoissonSpec {
    /// The seed: the same spec gives the same workload.
    pub seed: u64,
    /// Mean arrivals per second (over all clients). Not finite or ≤ 0: no arrivals.
    pub rate_per_sec: f64,
    /// Arrivals happen in `[0, duration)`.
    pub duration: Duration,
    /// Clients to spread the arrivals over (at least 1).
    pub clients: usize,
    /// Prompt tokens, `(min, max)` inclusive.
    pub prompt_tokens: (u32, u32),
    /// Output tokens, `(min, max)` inclusive.
    pub max_tokens: (u32, u32),
    /// The share of streamed requests, in `[0, 1]` (1: all stream).
    pub stream_share: f64,
}

impl Default for PoissonSpec {
    /// 10 requests/s for 60 s to one client; prompts 100–700 tokens, outputs 50–350, all
    /// streamed; seed 1.
    fn default() -> Self {
        PoissonSpec {
            seed: 1,
            rate_per_sec: 10.0,
            duration: Duration::from_secs(60),
            clients: 1,
            prompt_tokens: (100, 700),
            max_tokens: (50, 350),
            stream_share: 1.0,
        }
    }
}

impl Workload {
    /// A workload of these arrivals (sorted by time, stably).
    pub fn new(mut arrivals: Vec<Arrival>) -> Workload {
        arrivals.sort_by_key(|a| a.at);
        Workload { arrivals }
    }

    /// A seeded Poisson workload (see [`PoissonSpec`]).
    pub fn poisson(spec: PoissonSpec) -> Workload {
        let mut rng = SplitMix64::new(spec.seed);
        let mut arrivals = Vec::new();
        if !(spec.rate_per_sec.is_finite() && spec.rate_per_sec > 0.0) {
            return Workload { arrivals };
        }
        let clients = spec.clients.max(1);
        let end = spec.duration.as_secs_f64();
        let mut t = 0.0f64;
        // Bounded: t grows by a positive amount each time, almost surely; cap the count too.
        while arrivals.len() < 10_000_000 {
            t += rng.exp(spec.rate_per_sec);
            if t >= end {
                break;
            }
            let client = (rng.next_u64() % clients as u64) as usize;
            let prompt_tokens = rng.range_u32(spec.prompt_tokens.0, spec.prompt_tokens.1);
            let max_tokens = rng.range_u32(spec.max_tokens.0, spec.max_tokens.1);
            let stream = rng.next_f64() < spec.stream_share;
            arrivals.push(Arrival {
                at: Duration::from_nanos((t * 1e9) as u64),
                client,
                prompt_tokens,
                max_tokens,
                stream,
            });
        }
        Workload { arrivals }
    }

    /// How many arrivals.
    pub fn len(&self) -> usize {
        self.arrivals.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.arrivals.is_empty()
    }
}

/// A closed-loop workload: `callers` callers, each making one call at a time and the next one
/// `think` after the previous one ended, until `duration` has passed (no call starts after
/// it; calls in progress then run to their end). Caller `k` uses client `k % clients` of the
/// fleet and starts at `k × stagger`. Prompt and output lengths are uniform in their
/// (inclusive) ranges, drawn from `seed` in the order calls start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedLoop {
    /// The seed of the lengths and of the stream/JSON draw.
    pub seed: u64,
    /// How many callers.
    pub callers: usize,
    /// Calls start in `[0, duration)`.
    pub duration: Duration,
    /// Between the end of a caller's call and its next call.
    pub think: Duration,
    /// Between the first calls of two consecutive callers.
    pub stagger: Duration,
    /// Prompt tokens, `(min, max)` inclusive.
    pub prompt_tokens: (u32, u32),
    /// Output tokens, `(min, max)` inclusive.
    pub max_tokens: (u32, u32),
    /// The share of streamed calls, in `[0, 1]`.
    pub stream_share: f64,
}

impl Default for ClosedLoop {
    /// 64 callers for 60 s, no think time, 1 ms stagger; prompts 100–700 tokens, outputs
    /// 50–350, all streamed; seed 1.
    fn default() -> Self {
        ClosedLoop {
            seed: 1,
            callers: 64,
            duration: Duration::from_secs(60),
            think: Duration::ZERO,
            stagger: Duration::from_millis(1),
            prompt_tokens: (100, 700),
            max_tokens: (50, 350),
            stream_share: 1.0,
        }
    }
}

impl ClosedLoop {
    /// The next call of `caller` at `at` (lengths drawn from `rng`).
    pub(crate) fn arrival(&self, rng: &mut SplitMix64, caller: usize, at: Duration) -> Arrival {
        Arrival {
            at,
            client: caller,
            prompt_tokens: rng.range_u32(self.prompt_tokens.0, self.prompt_tokens.1),
            max_tokens: rng.range_u32(self.max_tokens.0, self.max_tokens.1),
            stream: rng.next_f64() < self.stream_share,
        }
    }
}
