//! A real PostgreSQL server for the tests: Debian's PostgreSQL 15 (`scripts/setup-tools.sh` installs
//! it), a cluster made by `initdb` in a temporary directory, served on a free loopback port.
//!
//! PostgreSQL refuses to run as root, so as root the cluster belongs to `nobody` and its programs run
//! as `nobody`. [`shared`] is one server for the whole test process (each test takes its own database
//! from [`PgServer::database`]); it is killed when the process exits, or if the process dies first
//! (`PR_SET_PDEATHSIG`). [`PgServer::start`] is a server of the test's own, stopped on drop, for tests
//! that restart it.

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crow::storage::PgOptions;

use crate::common;

/// Where Debian installs PostgreSQL 15's programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The unprivileged user a root test process runs PostgreSQL as.
const NOBODY: u32 = 65534;

/// A PostgreSQL server with its cluster directory.
pub struct PgServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command that runs as `nobody` when the tests run as root.
fn command(program: &str) -> Command {
    let path = Path::new(BIN).join(program);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-tools.sh first (it installs Debian's postgresql)",
        path.display()
    );
    let mut c = Command::new(path);
    if running_as_root() {
        c.uid(NOBODY).gid(NOBODY);
    }
    c
}

impl PgServer {
    /// Makes a cluster and starts a server on it; it stops when dropped.
    pub fn start() -> PgServer {
        let dir = tempfile::Builder::new()
            .prefix("crow-pg-")
            .tempdir()
            .unwrap();
        if running_as_root() {
            chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let out = command("initdb")
            .args([
                "--auth=trust",
                "--username=crow",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .arg("--pgdata")
            .arg(data_dir(dir.path()))
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = PgServer {
            port: common::free_port(),
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    /// Starts the server process on the cluster (again, after [`PgServer::kill`]) and waits until it
    /// takes connections. After a kill the old server's backends may still hold its shared memory for a
    /// moment, and PostgreSQL refuses to start until they have gone: it is tried again.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut child = self.postgres().spawn().unwrap();
            loop {
                let ready = command("pg_isready")
                    .args(self.connection())
                    .stdout(Stdio::null())
                    .status()
                    .unwrap()
                    .success();
                if ready {
                    self.child = Some(child);
                    return;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                assert!(Instant::now() < deadline, "postgres did not start in 60 s");
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(Instant::now() < deadline, "postgres kept exiting at start");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn postgres(&self) -> Command {
        let mut c = command("postgres");
        c.arg("-D")
            .arg(data_dir(self.dir.path()))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            // Commits still reach the kernel before they are acknowledged (so a killed server loses
            // nothing acknowledged); only the flush to disk, which protects against a machine crash, is
            // skipped to keep the tests fast.
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        c
    }

    /// Kills the server at once (SIGKILL: a crash, not a shutdown); [`PgServer::spawn`] starts it again
    /// on the same cluster, which then recovers from its write-ahead log.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How the client programs (pg_isready, createdb) reach the server.
    fn connection(&self) -> [String; 6] {
        [
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "crow",
        ]
        .map(str::to_owned)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://crow@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database (a test's own), as crow's connection options.
    pub fn database(&self) -> PgOptions {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = command("createdb")
            .args(self.connection())
            .arg(&name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut options = PgOptions::new(self.url(&name));
        options.max_connections = 8;
        options
    }
}

fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The test process's shared server, started on first use.
pub fn shared() -> &'static PgServer {
    static SHARED: OnceLock<&'static PgServer> = OnceLock::new();
    SHARED.get_or_init(|| {
        // The death signal follows the thread that started the child, so a thread that never ends
        // starts it (test threads end with their test).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let server: &'static PgServer = Box::leak(Box::new(PgServer::start()));
            STOP_AT_EXIT
                .lock()
                .unwrap()
                .replace((server.child_pid(), server.dir.path().to_owned()));
            extern "C" fn stop_at_exit() {
                if let Some((pid, dir)) = STOP_AT_EXIT.lock().ok().and_then(|mut p| p.take()) {
                    // SAFETY: the pid is our child's; kill and waitpid have no other preconditions.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, std::ptr::null_mut(), 0);
                    }
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            // SAFETY: registers a plain function that only signals and reaps the child.
            unsafe { libc::atexit(stop_at_exit) };
            tx.send(server).unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("postgres did not start")
    })
}

/// The shared server's pid and directory: killed and removed when the test process exits.
static STOP_AT_EXIT: Mutex<Option<(i32, PathBuf)>> = Mutex::new(None);

impl PgServer {
    fn child_pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }
}
