//! A TCP load balancer for the cluster tests: forwards connections to the node it points at, can be
//! pointed elsewhere, and can cut every open connection (a camera's network dropping, a balancer
//! failing over).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running balancer; it stops when dropped.
pub struct Balancer {
    /// `http://127.0.0.1:PORT`, where clients connect.
    pub url: String,
    target: Arc<Mutex<SocketAddr>>,
    cuts: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

/// The socket address of a node URL `http://HOST:PORT`.
fn address(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

impl Balancer {
    /// A balancer on a free loopback port pointing at `node_url`.
    pub async fn start(node_url: &str) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let target = Arc::new(Mutex::new(address(node_url)));
        let (cuts, _) = watch::channel(0u64);
        let accept = {
            let (target, cuts) = (Arc::clone(&target), cuts.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let to = *target.lock().unwrap();
                    let mut cut = cuts.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut node) = TcpStream::connect(to).await else {
                            return; // the client sees its connection close
                        };
                        let mut client = client;
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut node) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        Balancer {
            url,
            target,
            cuts,
            accept,
        }
    }

    /// New connections go to `node_url`.
    pub fn point_to(&self, node_url: &str) {
        *self.target.lock().unwrap() = address(node_url);
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
