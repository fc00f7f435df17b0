//! Serving the gRPC API (`crow.v1.IngestService`, `InteractionService`, `CatalogService`,
//! `AnalysisService`).

use std::future::Future;
use std::net::SocketAddr;

use crow_grpc_api::auth::Authenticator;
use crow_grpc_api::proto::analysis_service_server::AnalysisServiceServer;
use crow_grpc_api::proto::catalog_service_server::CatalogServiceServer;
use crow_grpc_api::proto::ingest_service_server::IngestServiceServer;
use crow_grpc_api::proto::interaction_service_server::InteractionServiceServer;
use crow_grpc_api::{
    max_stream_message_bytes, name_message_limit, AnalysisApi, CatalogApi, IngestApi,
    InteractionApi,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;

use crate::Pipeline;

/// A gRPC server running on a background task.
pub struct RunningServer {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningServer {
    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting calls and waits for in-flight calls to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Stops the server at once, without letting calls finish (as a crash would).
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves `pipeline` on a background task, authenticating calls with `auth`.
pub async fn spawn(
    pipeline: Pipeline,
    addr: SocketAddr,
    auth: Authenticator,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_on(pipeline, listener, auth, async {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        local_addr,
        shutdown: Some(tx),
        task,
    })
}

/// Accepted connections with `TCP_NODELAY`: a unary response goes out as several small writes (headers,
/// message, trailers), and without it Nagle's algorithm holds the last one back until the client's delayed
/// ACK, adding ~40 ms to every call.
fn incoming(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt as _;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        if let Err(e) = conn.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        Ok(conn)
    })
}

/// Sets the health of every crow service and of the server as a whole ("").
async fn set_health(health: &tonic_health::server::HealthReporter, status: ServingStatus) {
    for name in SERVICE_NAMES.iter().chain([&""]) {
        health.set_service_status(*name, status).await;
    }
}

/// The fully qualified names of crow's services (as health and reflection report them).
pub const SERVICE_NAMES: [&str; 4] = [
    "crow.v1.IngestService",
    "crow.v1.InteractionService",
    "crow.v1.CatalogService",
    "crow.v1.AnalysisService",
];

/// Serves `pipeline` on `listener` until `shutdown` completes. Every service sits behind `auth`'s
/// interceptor (token, and the gateway key on internal routes); handlers check the organization.
pub async fn serve_on(
    pipeline: Pipeline,
    listener: TcpListener,
    auth: Authenticator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let limits = pipeline.config().limits.clone();
    let max_message = max_stream_message_bytes(limits.max_frame_bytes);
    let interactions = InteractionApi::new(pipeline.clone());
    let catalog = CatalogApi::new(pipeline.clone());
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let analysis = AnalysisApi::new(pipeline.clone(), closing);
    // The standard health service: every crow service (and "", the server) is SERVING once the
    // pipeline is up, which it is by the time this runs; NOT_SERVING from the moment shutdown begins.
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::Serving).await;
    // Server reflection, so that grpcurl-style tools and dynamic clients need no .proto files.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crow_grpc_api::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("crow's own descriptor set is valid");
    // Long-lived streams (pattern subscriptions) are told to end when shutdown begins, so that the
    // graceful shutdown below does not wait for them forever.
    let shutdown = async move {
        shutdown.await;
        set_health(&health, ServingStatus::NotServing).await;
        let _ = closing_tx.send(true);
    };
    let ingest =
        IngestServiceServer::new(IngestApi::new(pipeline)).max_decoding_message_size(max_message);
    // HTTP/2's default 64 KiB window is smaller than one camera frame: every frame would wait for window
    // updates while the server is busy. A window of a few frames lets the client stay ahead; credits still
    // bound how many frames the server takes in.
    let window = u32::try_from(max_message.saturating_mul(2)).unwrap_or(u32::MAX);
    tonic::transport::Server::builder()
        .initial_stream_window_size(window)
        .initial_connection_window_size(window.saturating_mul(2))
        // tonic refuses an oversize unary request with OUT_OF_RANGE; crow answers RESOURCE_EXHAUSTED
        // naming the setting (the frame stream does the same itself).
        .layer(tower::util::MapResponseLayer::new(name_message_limit))
        // Probes and discovery need no token (they reveal the public contract and liveness only).
        .add_service(health_service)
        .add_service(reflection)
        .add_service(InterceptedService::new(
            ingest,
            auth.interceptor(auth.ingest_is_internal()),
        ))
        .add_service(InterceptedService::new(
            InteractionServiceServer::new(interactions)
                .max_decoding_message_size(limits.max_message_bytes),
            auth.interceptor(false),
        ))
        .add_service(InterceptedService::new(
            CatalogServiceServer::new(catalog).max_decoding_message_size(limits.max_message_bytes),
            auth.interceptor(false),
        ))
        .add_service(InterceptedService::new(
            AnalysisServiceServer::new(analysis)
                .max_decoding_message_size(limits.max_message_bytes),
            auth.interceptor(false),
        ))
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
}
