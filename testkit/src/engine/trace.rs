//! What a fleet run records besides its requests: every request sent to a replica
//! ([`SendRecord`], for the arrivals at a replica over time) and, when asked
//! ([`FleetSim::sample_every`](super::FleetSim::sample_every)), each client's concurrency limit
//! at regular instants ([`ClientSample`], for the sum of the clients' limits over time).

use std::time::Duration;

use vllm_client_core::call::Purpose;

/// One request sent to a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRecord {
    /// When (offset from the run's start).
    pub at: Duration,
    /// Which client sent it.
    pub client: usize,
    /// To which replica.
    pub replica: usize,
    /// What it was for (an attempt, a hedge, a health probe).
    pub purpose: Purpose,
}

/// A change of an endpoint's health in one client's pool.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointChangeRecord {
    /// Which client.
    pub client: usize,
    /// When (offset from the run's start).
    pub at: Duration,
    /// What changed.
    pub change: vllm_client_core::pool::EndpointChange,
}

/// One client's concurrency state at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSample {
    /// When (offset from the run's start).
    pub at: Duration,
    /// Which client.
    pub client: usize,
    /// Its concurrency limit in force (`None` without one).
    pub limit: Option<u32>,
    /// Calls holding a slot.
    pub in_flight: u32,
    /// Calls waiting for one.
    pub waiting: usize,
}

/// One replica's load at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSample {
    /// When (offset from the run's start).
    pub at: Duration,
    /// Which replica.
    pub replica: usize,
    /// Sequences it runs.
    pub running: usize,
    /// Requests in its waiting queue.
    pub waiting: usize,
}

/// Jain's fairness index of `values`: `(Σx)² / (n · Σx²)`, 1 when all are equal, `1/n` when
/// one has everything; 1 for an empty or all-zero list.
pub fn jain_index(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|x| x * x).sum();
    if n == 0.0 || squares <= 0.0 {
        return 1.0;
    }
    sum * sum / (n * squares)
}

/// The arrivals at `replica` over `[from, to)` (attempts and hedges, not health probes), and
/// their share of the arrivals at every replica over the same span.
pub fn arrivals(
    sends: &[SendRecord],
    replica: usize,
    from: Duration,
    to: Duration,
) -> (usize, f64) {
    let user = |s: &&SendRecord| s.purpose != Purpose::HealthProbe && s.at >= from && s.at < to;
    let all = sends.iter().filter(user).count();
    let mine = sends
        .iter()
        .filter(user)
        .filter(|s| s.replica == replica)
        .count();
    let share = if all == 0 {
        0.0
    } else {
        mine as f64 / all as f64
    };
    (mine, share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain() {
        assert_eq!(jain_index(&[]), 1.0);
        assert_eq!(jain_index(&[3.0, 3.0, 3.0]), 1.0);
        assert!((jain_index(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        assert!((jain_index(&[1.0, 2.0]) - 0.9).abs() < 1e-12);
    }

    #[test]
    fn shares() {
        let s = |at: u64, replica| SendRecord {
            at: Duration::from_millis(at),
            client: 0,
            replica,
            purpose: Purpose::Attempt,
        };
        let mut sends = vec![s(0, 0), s(10, 1), s(20, 1), s(30, 0), s(2000, 1)];
        sends.push(SendRecord {
            purpose: Purpose::HealthProbe,
            ..s(15, 1)
        });
        let (n, share) = arrivals(&sends, 1, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(n, 2);
        assert!((share - 0.5).abs() < 1e-12);
    }
}
