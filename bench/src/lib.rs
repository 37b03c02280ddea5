//! Side-by-side benchmarks: Sextant against the peer it replaces (Prometheus,
//! Alertmanager, node_exporter, statsd_exporter), measured in one run on one
//! machine and reported as ratios.
//!
//! Each benchmark lives under `bench/` with the command that reproduces it.
//! Timed assertions never appear in tests; performance claims live here.
