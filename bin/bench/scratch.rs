//! A benchmark's scratch data directory: a fresh one per run, removed once the stopped server's sled
//! has let go of it.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A fresh data directory under the system's temporary directory.
pub(crate) fn temp_dir(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "crow-bench-{what}-{}-{}",
        std::process::id(),
        crow::storage::now_ms()
    ))
}

/// Removes `dir` once no store holds it. The last handles of a stopped server's store may live a
/// moment longer in tasks being cancelled; sled must not lose its files under them (its final flush
/// then waits forever, and the benchmark never exits). Reopening succeeds only once the old handle is
/// gone; after about 10 s the directory is removed anyway.
pub(crate) async fn remove_when_released(dir: &Path) {
    for _ in 0..200 {
        if crow::storage::Store::open(dir).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Resident memory of this process, bytes (Linux).
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
