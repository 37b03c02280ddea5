//! Persisted metric blocks in-process, without peers: bytes per sample of
//! each block file, and how fast the blocks decode, on the same
//! node_exporter-shaped data as `tsdb --only disk` (which compares the
//! bytes with VictoriaMetrics and Prometheus).
//!
//! ```sh
//! scripts/setup-test-env >/dev/null        # Debian's node exporter
//! cargo build --release -p sextant-bench --bin blocks
//! target/release/blocks                     # 4 hosts x 4 hours
//! target/release/blocks --hosts 8 --rounds 20
//! ```
//!
//! Decoding is timed as a query sees it: every series of the first block
//! selected through `Tsdb::select` over the block's range (the head holds
//! none of it), best of `--rounds`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_bench::{NodeExporter, NodeWorkload, flag_value, free_port, say, scrape_batch};
use sextant_model::{MatchOp, Matcher, PromDuration};
use sextant_storage::tsdb::{BlockMeta, FsyncPolicy};
use sextant_storage::{Tsdb, TsdbConfig, TsdbStats};

const START_MS: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 7_200_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let hosts: usize = flag_value(&args, "--hosts").map_or(4, |n| n.parse().expect("--hosts"));
    let rounds: usize = flag_value(&args, "--rounds").map_or(10, |n| n.parse().expect("--rounds"));
    let exporter = NodeExporter::start(free_port());
    let learned = NodeWorkload::learn(&exporter.url, Duration::from_secs(3), 1);
    drop(exporter);
    let workload = learned.with_hosts(hosts);
    let scratch = tempfile::tempdir().expect("scratch dir");
    let dir = scratch.path();
    let db = Tsdb::open(
        dir,
        TsdbConfig {
            wal_fsync: FsyncPolicy::Interval,
            ..TsdbConfig::default()
        },
        PromDuration::from_secs(15 * 86_400),
        Arc::new(TsdbStats::default()),
    )
    .expect("open the metrics store");
    let labels = workload.labels();
    let mut stream = workload.scrapes(START_MS, 42);
    for _ in 0..4 * 240 {
        let (t, values) = stream.next_scrape();
        db.append(&scrape_batch(&labels, t, values))
            .expect("append");
    }
    db.maintain().expect("maintain");

    let mut blocks: Vec<(BlockMeta, std::path::PathBuf)> = std::fs::read_dir(dir.join("blocks"))
        .expect("blocks")
        .flatten()
        .map(|e| (meta(&e.path().join("meta.json")), e.path()))
        .collect();
    blocks.sort_by_key(|(m, _)| m.min_time);
    let samples: u64 = blocks.iter().map(|(m, _)| m.num_samples).sum();
    let mut by_file = std::collections::BTreeMap::<String, u64>::new();
    for (_, path) in &blocks {
        for entry in std::fs::read_dir(path).expect("block").flatten() {
            let len = entry.metadata().map_or(0, |m| m.len());
            *by_file
                .entry(entry.file_name().to_string_lossy().into_owned())
                .or_default() += len;
        }
    }
    let total: u64 = by_file.values().sum();
    say(&format!(
        "blocks: {} series, {} blocks, {samples} samples: {:.3} B/sample ({})",
        labels.len(),
        blocks.len(),
        total as f64 / samples.max(1) as f64,
        by_file
            .iter()
            .map(|(f, b)| format!("{f} {:.3}", *b as f64 / samples.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let (first, _) = blocks.first().expect("a block was cut");
    let all = [Matcher::new("job", MatchOp::Equal, "node").expect("matcher")];
    let mut best = Duration::MAX;
    let mut decoded = 0usize;
    for _ in 0..rounds {
        let started = Instant::now();
        let series = db
            .select(&all, first.min_time, first.max_time - 1)
            .expect("select");
        best = best.min(started.elapsed());
        decoded = series.iter().map(|s| s.samples.len()).sum();
    }
    assert_eq!(
        decoded as u64, first.num_samples,
        "the head holds none of it"
    );
    say(&format!(
        "decode: {decoded} samples of one block through Tsdb::select: {:.1} M samples/s (best of {rounds})",
        decoded as f64 / best.as_secs_f64() / 1e6
    ));
}

fn meta(path: &Path) -> BlockMeta {
    let text = std::fs::read_to_string(path).expect("meta.json");
    BlockMeta::from_json(&text).expect("meta.json parses")
}
