//! The distributed runbook's lab cluster (docs/distributed.md) starts as written: the shell block that
//! exports the cluster's settings, starts nats-server and one crow node of each role, streams a camera
//! and counts the records runs in bash from the repository root, with `crow` and `nats-server` on the
//! PATH; its one substitution is the database URL (the test starts its own PostgreSQL). Fixed ports and
//! `/tmp/crow-lab`, as the docs say: `scripts/test.sh` runs it alone, after the other tests.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster_faults::private_postgres;
use crate::common::tool;

/// The database URL the runbook names, which the test replaces with its own.
const DOCS_DATABASE: &str = "postgres://crow@127.0.0.1:5432/crow";

/// The shell block of `page` that contains `marker`.
fn shell_block(page: &str, marker: &str) -> String {
    let mut block = Vec::new();
    let mut inside = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            if inside && block.iter().any(|l: &&str| l.contains(marker)) {
                return block.join("\n");
            }
            inside = line.trim() == "```sh" && !inside;
            block.clear();
            continue;
        }
        if inside {
            block.push(line);
        }
    }
    panic!("no shell block with {marker:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fixed ports and /tmp/crow-lab, as the runbook says: scripts/test.sh runs it alone"]
async fn the_runbooks_lab_cluster_starts_and_records_a_camera_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("docs/distributed.md")).unwrap();
    let block = shell_block(&page, "crow serve --role ingest");
    assert!(block.contains(DOCS_DATABASE), "{block}");
    let (database, _postgres) = tokio::task::spawn_blocking(private_postgres).await.unwrap();
    let script = block.replace(DOCS_DATABASE, &database);
    let _ = std::fs::remove_dir_all("/tmp/crow-lab");

    // The block, then the test's own wait: the api node counts the camera's records.
    let check = "until crow summary --org lab --server http://127.0.0.1:50063 --json \
                 | grep -q '\"cctv\":[1-9]'; do sleep 1; done\n\
                 crow summary --org lab --server http://127.0.0.1:50063";
    let crow_dir = Path::new(env!("CARGO_BIN_EXE_crow")).parent().unwrap();
    let path = format!(
        "{}:{}:{}",
        crow_dir.display(),
        tool("venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut bash = Command::new("bash");
    bash.args(["-c", &format!("set -euo pipefail\n{script}\n{check}\n")])
        .current_dir(root)
        .env("PATH", path)
        .env_remove("CROW_TOKEN")
        .stdout(Stdio::from(out.reopen().unwrap()))
        .stderr(Stdio::from(out.reopen().unwrap()));
    // Its own process group, so that the servers it leaves running stop with the test.
    // SAFETY: setpgid is async-signal-safe.
    unsafe {
        bash.pre_exec(|| {
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    let mut child = bash.spawn().unwrap();
    let group = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // SAFETY: signals the group the test made.
    unsafe {
        libc::kill(-group, libc::SIGTERM);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
    let printed = std::fs::read_to_string(out.path()).unwrap();
    let _ = std::fs::remove_dir_all("/tmp/crow-lab");
    let status =
        status.unwrap_or_else(|| panic!("the runbook did not finish in 240 s:\n{printed}"));
    assert!(
        status.success(),
        "the runbook failed ({status}):\n{printed}"
    );
    assert!(printed.contains("sent 20 frames"), "{printed}");
    let last = printed
        .lines()
        .rfind(|l| l.starts_with("organization lab:"))
        .unwrap_or_default();
    assert!(
        last.starts_with("organization lab:") && !last.contains("cctv 0"),
        "{printed}"
    );
}
