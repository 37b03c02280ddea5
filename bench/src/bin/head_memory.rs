//! Memory per head series inside the engine, without HTTP or a peer: the RSS
//! growth of this process per series as node_exporter-shaped scrapes arrive.
//!
//! ```sh
//! cargo build --release -p sextant-bench && target/release/head_memory [HOSTS]
//! ```
//!
//! Label strings come from the workload and are shared with the head (as
//! interned symbols would be), so the figure is the head's own structures and
//! chunks. Prometheus has no in-process equivalent; `tsdb` compares both over
//! remote write.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use sextant_bench::{NodeExporter, NodeWorkload, rss_bytes, scrape_batch};
use sextant_model::PromDuration;
use sextant_storage::{Tsdb, TsdbConfig, TsdbStats};

fn main() {
    let hosts = std::env::args()
        .nth(1)
        .and_then(|h| h.parse().ok())
        .unwrap_or(200);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let exporter = NodeExporter::start(port);
    let workload = NodeWorkload::learn(&exporter.url, Duration::from_secs(1), hosts);
    drop(exporter);
    let labels = workload.labels();
    let dir = std::env::temp_dir().join(format!("sextant-head-memory-{}", std::process::id()));
    let db = Tsdb::open(
        &dir,
        TsdbConfig::default(),
        PromDuration::from_secs(86_400),
        Arc::new(TsdbStats::default()),
    )
    .expect("open");
    let pid = std::process::id();
    let base = rss_bytes(pid);
    let mut stream = workload.scrapes(1_700_000_000_000, 5);
    let mut out = std::io::stdout().lock();
    for scrape in 1..=240 {
        let (t, values) = stream.next_scrape();
        let batch = scrape_batch(&labels, t, values);
        db.append(&batch).expect("append");
        drop(batch);
        if [1, 40, 120, 240].contains(&scrape) {
            let per_series = rss_bytes(pid).saturating_sub(base) as f64 / labels.len() as f64;
            let _ = writeln!(
                out,
                "{} series, {scrape} samples each: {per_series:.0} B per head series",
                labels.len()
            );
        }
    }
    drop(db);
    let _ = std::fs::remove_dir_all(dir);
}
