//! Sextant's ingest: one module per protocol that brings data in.
//!
//! Each protocol has a documented config struct, a pure parser (bytes in, model
//! out, no I/O) and a listener whose run loop ends on the shutdown signal. A
//! listener writes through storage's writer interface only; this room knows no
//! file format and nothing about tantivy.
//!
//! Today the listeners bind, count what arrives, and drop it honestly (counted in
//! `sextant_listener_dropped_total`, answered 501 over HTTP and `UNIMPLEMENTED`
//! over gRPC) until their protocol's parser lands.

pub mod bulk;
pub mod forward;
pub mod limits;
pub mod logs;
pub mod logstash;
pub mod loki;
pub mod net;
pub mod otlp;
pub mod prom_proto;
pub mod prom_text;
pub mod remote_write;
pub mod scrape;
pub mod statsd;
pub mod syslog;
pub mod tenant;
pub mod udp;
mod wire;
