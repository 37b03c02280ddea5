//! Memory per head series inside the engine, without HTTP or a peer: the RSS
//! growth of this process per series as node_exporter-shaped scrapes arrive,
//! and the heap bytes live at that moment (what the head holds, without what
//! the allocator keeps of freed memory).
//!
//! ```sh
//! cargo build --release -p sextant-bench && target/release/head_memory [HOSTS]
//! ```
//!
//! Each host's scrape is appended as one batch, as the scrape loop appends
//! one target's scrape. Label strings come from the workload and are shared
//! with the head (as interned symbols would be), so the figure is the head's
//! own structures and chunks. Prometheus has no in-process equivalent; `tsdb`
//! compares both over remote write.

use std::alloc::{GlobalAlloc, Layout};
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sextant_bench::{NodeExporter, NodeWorkload, rss_bytes, scrape_batch};
use sextant_model::PromDuration;
use sextant_storage::{Tsdb, TsdbConfig, TsdbStats};

/// The system allocator, counting the bytes it has handed out and not had back.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// A global allocator can only be written as `unsafe` code.
// SAFETY: every call is forwarded to `System` with the caller's arguments;
// the counter is only arithmetic beside it.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which is `System`'s.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc` and `alloc`.
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    let per_host = labels.len() / hosts.max(1);
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
    let base_live = LIVE.load(Ordering::Relaxed);
    let mut stream = workload.scrapes(1_700_000_000_000, 5);
    let mut out = std::io::stdout().lock();
    for scrape in 1..=480 {
        let (t, values) = stream.next_scrape();
        for (labels, values) in labels.chunks(per_host).zip(values.chunks(per_host)) {
            db.append(&scrape_batch(labels, t, values)).expect("append");
        }
        if [1, 40, 120, 240, 480].contains(&scrape) {
            let series = labels.len() as f64;
            let rss = rss_bytes(pid).saturating_sub(base) as f64 / series;
            let live = LIVE.load(Ordering::Relaxed).saturating_sub(base_live) as f64 / series;
            let _ = writeln!(
                out,
                "{} series, {scrape} samples each: {rss:.0} B RSS, {live:.0} B live heap per head series",
                labels.len()
            );
        }
    }
    drop(db);
    let _ = std::fs::remove_dir_all(dir);
}
