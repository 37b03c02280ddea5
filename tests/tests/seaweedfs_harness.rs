//! The SeaweedFS harness itself: it starts with the bucket, stores and lists
//! through boto3, and keeps its objects over a SIGKILL and restart, as the
//! object-storage tests (an S3 outage, say) rely on.

use sextant_tests::SeaweedFs;

#[test]
fn objects_survive_a_kill_and_restart() {
    let mut s3 = SeaweedFs::start();
    assert!(s3.endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(s3.list(""), Vec::<String>::new(), "a fresh bucket is empty");

    s3.put("q/metrics/b1.json", b"{}");
    s3.put("q/metrics/b1/index", b"index");
    s3.put("q/logs/x", b"x");
    // Sorted by bytes ('.' < '/'), not in SeaweedFS's directory-tree order.
    let keys = vec!["q/metrics/b1.json", "q/metrics/b1/index"];
    assert_eq!(s3.list("q/metrics/"), keys);

    s3.stop();
    assert!(!s3.is_running());
    s3.restart();
    assert_eq!(s3.list("q/metrics/"), keys);
    assert_eq!(s3.get("q/metrics/b1/index"), b"index");
    s3.delete("q/logs/x");
    assert_eq!(s3.list("q/logs/"), Vec::<String>::new());
}
