//! Benchmark helpers (shared input generators).
