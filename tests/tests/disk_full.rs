//! A full disk: ingest is refused with a retryable error that says so,
//! queries keep answering, nothing on disk is damaged, and ingest resumes by
//! itself once space is freed. The data directory lives on a small tmpfs
//! (mounting one needs root, as CI runs).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use sextant_tests::{Sextant, run_sextant, series};

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs for the disk-full test failed (it needs root)"
        );
        Self { _dir: dir, path }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes a file until the disk refuses more; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        if file.write_all(&block).is_err() {
            break;
        }
    }
    // Small writes until not even a byte fits.
    while file.write_all(&[0u8; 512]).is_ok() {}
    while file.write_all(&[0u8]).is_ok() {}
    path
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn remote_write(server: &Sextant, name: &str, t: i64) -> (u16, String) {
    let reply = server.remote_write(vec![series(&[("__name__", name)], &[(t, 1.0)])]);
    (reply.status, reply.body)
}

fn post_logs(server: &Sextant, message: &str, lines: usize) -> (u16, String) {
    let body: String = (0..lines)
        .map(|i| format!("{}\n", json!({"message": format!("{message} {i}"), "service": "diskfull", "padding": "p".repeat(200)})))
        .collect();
    let reply = server.post_path("/api/v1/logs", "application/x-ndjson", body.as_bytes());
    (reply.status, reply.body)
}

#[test]
fn a_full_disk_refuses_ingest_clearly_keeps_queries_and_recovers_by_itself() {
    let disk = SmallDisk::mount("48m");
    let data = disk.path.join("data");
    let server = Sextant::builder().data_dir(&data).start();
    let t0 = now_ms();
    assert_eq!(remote_write(&server, "before_full", t0).0, 204);
    assert_eq!(post_logs(&server, "before", 10).0, 200);
    server.get_until("/api/v1/logs/search?q=service:diskfull&start=0", |v| {
        v["total"] == 10
    });

    // Acknowledged, then the disk fills before the index commits them (every second).
    assert_eq!(post_logs(&server, "pending", 200).0, 200);
    let filler = fill(&disk.path);
    // Writes are refused with 503 and a reason: the metrics WAL and the log WAL.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut metrics_refused, mut logs_refused) = (None, None);
    let mut n = 0;
    while metrics_refused.is_none() || logs_refused.is_none() {
        assert!(
            Instant::now() < deadline,
            "writes kept succeeding on a full disk:\n{}",
            server.logs()
        );
        n += 1;
        let (status, body) = remote_write(&server, "during_full", t0 + n);
        if status != 204 {
            metrics_refused = Some((status, body));
        }
        let (status, body) = post_logs(&server, "during", 50);
        if status != 200 {
            logs_refused = Some((status, body));
        }
    }
    for (status, body) in [metrics_refused.unwrap(), logs_refused.unwrap()] {
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains("disk holding the data directory is full"),
            "{body}"
        );
    }
    // Queries still answer.
    let query = server.get("/api/v1/query?query=before_full").json();
    assert_eq!(
        query["data"]["result"].as_array().unwrap().len(),
        1,
        "{query}"
    );
    let search = server
        .get("/api/v1/logs/search?q=message:before&start=0")
        .json();
    assert!(search["total"].as_u64().unwrap() >= 10, "{search}");

    // Full for a while: the index's commits (every second) fail too.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        server.logs().contains("log index commit failed"),
        "the index never tried to commit on the full disk:\n{}",
        server.logs()
    );
    // Space comes back: ingest resumes with no restart.
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = remote_write(&server, "after_full", now_ms()).0;
        let logs = post_logs(&server, "after", 5).0;
        if metrics == 204 && logs == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ingest did not resume after space was freed ({metrics}, {logs}):\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.wait_for_query("after_full", |v| v.as_array().is_some_and(|r| r.len() == 1));
    server.get_until("/api/v1/logs/search?q=message:after&start=0", |v| {
        v["total"].as_u64().unwrap_or(0) >= 5
    });
    server.get_until("/api/v1/logs/search?q=message:pending&start=0", |v| {
        v["total"] == 200
    });
    assert!(
        server
            .logs()
            .contains("index writers rolled back after a failed commit")
    );

    // Nothing on disk is damaged, and what was acknowledged is there after a crash.
    let kept = server.kill_hard();
    let out = run_sextant(&["check-data", kept.data_dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Sextant::restart_on(&kept);
    server.wait_for_query("before_full", |v| {
        v.as_array().is_some_and(|r| r.len() == 1)
    });
    server.wait_for_query("after_full", |v| v.as_array().is_some_and(|r| r.len() == 1));
    let search = server
        .get("/api/v1/logs/search?q=message:after&start=0")
        .json();
    assert!(search["total"].as_u64().unwrap() >= 5, "{search}");
    let search = server
        .get("/api/v1/logs/search?q=message:pending&start=0")
        .json();
    assert_eq!(search["total"], 200, "{search}");
    drop(server);
    drop(kept);
}
