//! Sextant's web UI: the TypeScript front end (logs, traces, metrics, alerts,
//! correlation) and this crate, which embeds its built assets in the binary so
//! that no other process serves them.
//!
//! This room holds presentation only. It calls Sextant's public HTTP APIs like
//! any other client and has no back door into storage or query.
