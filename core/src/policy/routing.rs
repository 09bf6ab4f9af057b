//! Routing: which endpoint of a pool takes the next attempt.
//!
//! - **Power of two choices** (Finagle's default balancer, tower's `p2c`): draw two distinct
//!   endpoints at random, each with probability proportional to its weight, and take the one
//!   with the lower cost = (in flight + 1) × latency, where latency is a peak EWMA of the time
//!   to first token (streams) or to the response head (JSON calls). Two random choices avoid
//!   the herd that "always the least loaded" causes when many clients see the same numbers,
//!   and cost follows what vLLM shows under load: it never says 429, its queue just grows.
//! - **Affinity** (rendezvous hashing, highest random weight): a request with a session key
//!   goes to the same endpoint every time, so a multi-turn chat reuses that replica's prefix
//!   cache; the tie is abandoned when that endpoint has more than `bound` requests in flight
//!   beyond the least loaded one (AIBrix's rule of thumb: 8).
//!
//! - **Slow start** ([`SlowStartConfig`], Envoy's `slow_start_config`): the pool scales the
//!   weight of an endpoint that was just added or readmitted, so it is drawn less often while
//!   its share ramps up; the draw below sees the scaled weight.
//!
//! Everything here is a pure function of its inputs and a seeded [`Rng`].

use std::time::Duration;

use super::rng::Rng;
use super::slow_start::SlowStartConfig;

/// How endpoints are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoutingConfig {
    /// An affinity is abandoned when its endpoint has more than this many requests in flight
    /// beyond the least loaded eligible endpoint (default 8).
    pub affinity_bound: u32,
    /// Time constant of the latency estimate: how fast a slow spell is forgotten (default 10 s,
    /// as tower's peak EWMA).
    pub latency_decay: Duration,
    /// Derive a session key from each chat's conversation prefix (its messages up to and
    /// including the first user message), so that the turns of one conversation go to one
    /// replica (default off).
    pub affinity_from_prefix: bool,
    /// The ramp of an endpoint added at run time or readmitted after an ejection, in routing
    /// and in its adaptive limit (default: 3 s, linear, from 10 %).
    pub slow_start: SlowStartConfig,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            affinity_bound: 8,
            latency_decay: Duration::from_secs(10),
            affinity_from_prefix: false,
            slow_start: SlowStartConfig::default(),
        }
    }
}

impl RoutingConfig {
    /// Sets the slow start of new and readmitted endpoints ([`SlowStartConfig::off`] for none).
    pub fn slow_start(mut self, slow_start: SlowStartConfig) -> Self {
        self.slow_start = slow_start;
        self
    }
}

/// One endpoint that may take the attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The caller's name for it (returned by the choosers).
    pub index: usize,
    /// Its stable identity across processes (a hash of its URL), for rendezvous hashing.
    pub identity: u64,
    /// Its weight (0 is taken as 1).
    pub weight: u32,
    /// Requests in flight on it.
    pub in_flight: u32,
    /// Its latency estimate in seconds (unknown endpoints: the best known one).
    pub latency: f64,
}

impl Candidate {
    /// (in flight + 1) × latency.
    pub fn cost(&self) -> f64 {
        (f64::from(self.in_flight) + 1.0) * self.latency.max(0.0)
    }

    fn weight(&self) -> u64 {
        u64::from(self.weight.max(1))
    }
}

/// Power of two choices, weighted: the index of the chosen candidate (`None` when empty).
pub fn power_of_two(candidates: &[Candidate], rng: &mut Rng) -> Option<usize> {
    match candidates {
        [] => None,
        [only] => Some(only.index),
        _ => {
            let total: u64 = candidates.iter().map(Candidate::weight).sum();
            let a = draw(candidates, total, None, rng);
            let without_a = total - candidates[a].weight();
            let b = draw(candidates, without_a, Some(a), rng);
            let (ca, cb) = (&candidates[a], &candidates[b]);
            let pick = if cb.cost() < ca.cost() { cb } else { ca };
            Some(pick.index)
        }
    }
}

/// A weighted draw among `candidates` other than `skip`, whose weights sum to `total`.
fn draw(candidates: &[Candidate], total: u64, skip: Option<usize>, rng: &mut Rng) -> usize {
    let mut ticket = rng.below(total);
    for (i, c) in candidates.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        if ticket < c.weight() {
            return i;
        }
        ticket -= c.weight();
    }
    // Unreachable with consistent weights; the last eligible one is a safe answer.
    (0..candidates.len())
        .rev()
        .find(|i| Some(*i) != skip)
        .unwrap_or(0)
}

/// Rendezvous (highest random weight) hashing: the candidate `key` belongs to. Adding or
/// removing an endpoint moves only the keys that belonged to it.
pub fn rendezvous(candidates: &[Candidate], key: u64) -> Option<usize> {
    candidates
        .iter()
        .map(|c| {
            // Weighted HRW: score = −w / ln(u), u uniform in (0, 1) from the hash.
            let h = mix(key ^ mix(c.identity));
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            (c.weight() as f64 / -u.ln(), c.index)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, i)| i)
}

/// Rendezvous for `key` while its endpoint is not overloaded beyond `bound`; power of two
/// choices otherwise (and without a key).
pub fn choose(
    candidates: &[Candidate],
    key: Option<u64>,
    bound: u32,
    rng: &mut Rng,
) -> Option<usize> {
    if let Some(key) = key {
        let least = candidates.iter().map(|c| c.in_flight).min()?;
        let sticky = rendezvous(candidates, key)?;
        let load = candidates
            .iter()
            .find(|c| c.index == sticky)
            .map_or(0, |c| c.in_flight);
        if load <= least.saturating_add(bound) {
            return Some(sticky);
        }
    }
    power_of_two(candidates, rng)
}

/// SplitMix64's finaliser: a good 64-bit mixer.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of bytes (FNV-1a, then mixed): the same in every process and build,
/// unlike `std`'s randomly keyed hasher.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(index: usize, weight: u32, in_flight: u32, latency: f64) -> Candidate {
        Candidate {
            index,
            identity: stable_hash(format!("http://10.0.0.{index}:8000/v1").as_bytes()),
            weight,
            in_flight,
            latency,
        }
    }

    #[test]
    fn the_cheaper_of_two_wins() {
        let cands = [c(0, 1, 0, 3.0), c(1, 1, 0, 1.0)];
        for seed in 0..50 {
            assert_eq!(power_of_two(&cands, &mut Rng::new(seed)), Some(1));
        }
        // Load counts: 5 in flight at 1 s costs more than 0 in flight at 3 s.
        let cands = [c(0, 1, 0, 3.0), c(1, 1, 5, 1.0)];
        assert_eq!(power_of_two(&cands, &mut Rng::new(7)), Some(0));
    }

    #[test]
    fn the_costliest_of_three_is_never_chosen_and_weights_bias_the_draw() {
        let cands = [c(0, 1, 0, 1.0), c(1, 1, 0, 1.0), c(2, 1, 0, 9.0)];
        let mut counts = [0u32; 3];
        let mut rng = Rng::new(3);
        for _ in 0..3000 {
            counts[power_of_two(&cands, &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0);
        // Equal cost: the heavier endpoint is drawn (and so chosen) more often.
        let cands = [c(0, 3, 0, 1.0), c(1, 1, 0, 1.0), c(2, 1, 0, 1.0)];
        let mut counts = [0u32; 3];
        for _ in 0..3000 {
            counts[power_of_two(&cands, &mut rng).unwrap()] += 1;
        }
        assert!(counts[0] > counts[1] + counts[2], "{counts:?}");
    }

    #[test]
    fn rendezvous_is_sticky_and_moves_only_the_removed_keys() {
        let all = [c(0, 1, 0, 1.0), c(1, 1, 0, 1.0), c(2, 1, 0, 1.0)];
        let without_1 = [all[0], all[2]];
        let mut per = [0u32; 3];
        for key in 0..3000u64 {
            let k = mix(key);
            let owner = rendezvous(&all, k).unwrap();
            per[owner] += 1;
            assert_eq!(rendezvous(&all, k), Some(owner), "deterministic");
            if owner != 1 {
                assert_eq!(rendezvous(&without_1, k), Some(owner), "key {key} moved");
            }
        }
        assert!(per.iter().all(|&n| n > 800), "balanced: {per:?}");
    }

    #[test]
    fn affinity_gives_way_to_a_bounded_overload() {
        let key = 42;
        let base = [c(0, 1, 0, 1.0), c(1, 1, 0, 1.0), c(2, 1, 0, 1.0)];
        let owner = rendezvous(&base, key).unwrap();
        let mut loaded = base;
        loaded[owner].in_flight = 8;
        assert_eq!(choose(&loaded, Some(key), 8, &mut Rng::new(1)), Some(owner));
        loaded[owner].in_flight = 9;
        for seed in 0..20 {
            assert_ne!(
                choose(&loaded, Some(key), 8, &mut Rng::new(seed)),
                Some(owner)
            );
        }
    }

    #[test]
    fn empty_and_single() {
        assert_eq!(power_of_two(&[], &mut Rng::new(1)), None);
        assert_eq!(choose(&[], Some(1), 8, &mut Rng::new(1)), None);
        assert_eq!(
            power_of_two(&[c(4, 0, 9, f64::NAN)], &mut Rng::new(1)),
            Some(4)
        );
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash(b"abc"), stable_hash(b"abc"));
        assert_ne!(stable_hash(b"abc"), stable_hash(b"abd"));
    }
}
