//! Serving the gRPC API (`crow.v1.IngestService`, `InteractionService`, `CatalogService`,
//! `CameraService`, `AnalysisService`), the standard health service, server reflection (v1 and v1alpha),
//! and on the same port the HTTP/JSON API, its OpenAPI document and the web dashboard
//! ([`crow_grpc_api::http`]), in plaintext or TLS.
//!
//! One listener, one router: the gRPC services are routes of an axum router (as tonic builds them)
//! merged with the HTTP routes, served by tonic's server with HTTP/1.1 accepted beside HTTP/2, so
//! that its TLS, HTTP/2 window sizes and graceful drain apply to both. A request with content type
//! `application/grpc` to an unknown path gets gRPC's `UNIMPLEMENTED`; any other unknown path a JSON 404.
//!
//! A server can come up before its pipeline ([`Startup`]): health and reflection answer at once, health
//! says `NOT_SERVING` and crow's services answer `UNAVAILABLE` while sled opens and models load, and
//! everything turns `SERVING` once [`Startup::ready`] hands over the pipeline. Shutdown turns health
//! `NOT_SERVING` first, then ends open frame streams (after acknowledging the frames they took) and
//! pattern subscriptions, so that the graceful drain of connections completes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use crow_grpc_api::auth::{AuthInterceptor, Authenticator};
use crow_grpc_api::http::{HttpApi, HttpOptions, Services as HttpServices};
use crow_grpc_api::proto::analysis_service_server::AnalysisServiceServer;
use crow_grpc_api::proto::camera_service_server::CameraServiceServer;
use crow_grpc_api::proto::catalog_service_server::CatalogServiceServer;
use crow_grpc_api::proto::ingest_service_server::IngestServiceServer;
use crow_grpc_api::proto::interaction_service_server::InteractionServiceServer;
use crow_grpc_api::{
    max_stream_message_bytes, name_message_limit, AnalysisApi, CameraApi, CatalogApi, IngestApi,
    InteractionApi,
};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;

use crate::tls::ServerTls;
use crate::Pipeline;

/// A gRPC server running on a background task.
pub struct RunningServer {
    local_addr: SocketAddr,
    tls: bool,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningServer {
    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR` (or `https://localhost:PORT` when serving TLS), for clients.
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.local_addr.port())
        } else {
            format!("http://{}", self.local_addr)
        }
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

/// How to serve: who may call, and TLS.
#[derive(Clone)]
pub struct ServeOptions {
    /// Authentication of every call.
    pub auth: Authenticator,
    /// `Some`: serve TLS (and check client certificates if it says so); `None`: plaintext.
    pub tls: Option<ServerTls>,
    /// Largest encoded frame (sizes the HTTP/2 windows and the HTTP frame route's body limit; see
    /// [`crate::PipelineConfig`]'s limits).
    pub max_frame_bytes: usize,
    /// Largest request message of the unary calls, and body of the JSON routes.
    pub max_message_bytes: usize,
    /// Serve the web dashboard at `/`.
    pub dashboard: bool,
}

impl ServeOptions {
    /// Plaintext with `auth`, windows sized for the default frame limit.
    pub fn new(auth: Authenticator) -> ServeOptions {
        let limits = crate::PipelineConfig::default().limits;
        ServeOptions {
            auth,
            tls: None,
            max_frame_bytes: limits.max_frame_bytes,
            max_message_bytes: limits.max_message_bytes,
            dashboard: true,
        }
    }

    /// Serve TLS as `tls` says.
    pub fn with_tls(mut self, tls: ServerTls) -> ServeOptions {
        self.tls = Some(tls);
        self
    }
}

/// Binds `addr` and serves `pipeline` on a background task in plaintext, authenticating calls with
/// `auth`.
pub async fn spawn(
    pipeline: Pipeline,
    addr: SocketAddr,
    auth: Authenticator,
) -> std::io::Result<RunningServer> {
    let mut options = ServeOptions::new(auth);
    options.max_frame_bytes = pipeline.config().limits.max_frame_bytes;
    options.max_message_bytes = pipeline.config().limits.max_message_bytes;
    spawn_with(pipeline, addr, options).await
}

/// Binds `addr` and serves `pipeline` on a background task as `options` say.
pub async fn spawn_with(
    pipeline: Pipeline,
    addr: SocketAddr,
    options: ServeOptions,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let tls = options.tls.is_some();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_on(pipeline, listener, options, async {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        local_addr,
        tls,
        shutdown: Some(tx),
        task,
    })
}

/// Serves `pipeline` on `listener` until `shutdown` completes. Every crow service sits behind the
/// options' authentication (token, and the gateway key on internal routes); handlers check the
/// organization.
pub async fn serve_on(
    pipeline: Pipeline,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let startup = Startup::new(options);
    startup.ready(pipeline).await;
    startup.serve(listener, shutdown).await
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

/// How often (and how long at most) readiness asks the record store whether it answers.
const READINESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The fully qualified names of crow's services (as health and reflection report them).
pub const SERVICE_NAMES: [&str; 5] = [
    "crow.v1.IngestService",
    "crow.v1.InteractionService",
    "crow.v1.CatalogService",
    "crow.v1.CameraService",
    "crow.v1.AnalysisService",
];

/// What crow's services answer before the pipeline is up.
pub const STARTING: &str = "crow is starting (opening the database, loading models); retry shortly";

type Ingest = InterceptedService<IngestServiceServer<IngestApi>, AuthInterceptor>;
type Interactions = InterceptedService<InteractionServiceServer<InteractionApi>, AuthInterceptor>;
type Catalog = InterceptedService<CatalogServiceServer<CatalogApi>, AuthInterceptor>;
type Cameras = InterceptedService<CameraServiceServer<CameraApi>, AuthInterceptor>;
type Analysis = InterceptedService<AnalysisServiceServer<AnalysisApi>, AuthInterceptor>;

/// A server whose pipeline comes later. Clone it to hand the pipeline over from another task.
#[derive(Clone)]
pub struct Startup {
    inner: Arc<StartupInner>,
}

struct StartupInner {
    options: ServeOptions,
    ingest: Arc<OnceLock<Ingest>>,
    interactions: Arc<OnceLock<Interactions>>,
    catalog: Arc<OnceLock<Catalog>>,
    cameras: Arc<OnceLock<Cameras>>,
    analysis: Arc<OnceLock<Analysis>>,
    health: tonic_health::server::HealthReporter,
    http: HttpApi,
    closing: watch::Sender<bool>,
}

impl Startup {
    /// A server that will serve as `options` say; every service is `NOT_SERVING` until
    /// [`Startup::ready`].
    pub fn new(options: ServeOptions) -> Startup {
        let health = tonic_health::server::HealthReporter::new();
        let http = HttpApi::new(
            options.auth.clone(),
            HttpOptions {
                dashboard: options.dashboard,
                max_body_bytes: options.max_message_bytes,
                max_frame_bytes: options.max_frame_bytes,
            },
        );
        Startup {
            inner: Arc::new(StartupInner {
                options,
                ingest: Arc::default(),
                interactions: Arc::default(),
                catalog: Arc::default(),
                cameras: Arc::default(),
                analysis: Arc::default(),
                health,
                http,
                closing: watch::channel(false).0,
            }),
        }
    }

    /// Hands over the running pipeline: crow's services start answering and health turns `SERVING`.
    /// A second call changes nothing.
    pub async fn ready(&self, pipeline: Pipeline) {
        let i = &self.inner;
        if i.ingest.get().is_some() {
            return;
        }
        let limits = pipeline.config().limits.clone();
        let max_message = max_stream_message_bytes(limits.max_frame_bytes);
        let closing = i.closing.subscribe();
        let auth = &i.options.auth;
        // The HTTP routes call the same service implementations (behind the same authentication).
        let services = HttpServices {
            ingest: IngestApi::new(pipeline.clone(), closing.clone()),
            interactions: InteractionApi::new(pipeline.clone()),
            catalog: CatalogApi::new(pipeline.clone()),
            cameras: CameraApi::new(pipeline.clone()),
            analysis: AnalysisApi::new(pipeline.clone(), closing.clone()),
        };
        i.http.ready(services.clone());
        let _ = i.interactions.set(InterceptedService::new(
            InteractionServiceServer::new(services.interactions)
                .max_decoding_message_size(limits.max_message_bytes),
            auth.interceptor(false),
        ));
        let _ = i.catalog.set(InterceptedService::new(
            CatalogServiceServer::new(services.catalog)
                .max_decoding_message_size(limits.max_message_bytes),
            auth.interceptor(false),
        ));
        let _ = i.cameras.set(InterceptedService::new(
            CameraServiceServer::new(services.cameras)
                .max_decoding_message_size(limits.max_message_bytes),
            auth.interceptor(false),
        ));
        let _ = i.analysis.set(InterceptedService::new(
            AnalysisServiceServer::new(services.analysis)
                .max_decoding_message_size(limits.max_message_bytes),
            auth.interceptor(false),
        ));
        let _ = i.ingest.set(InterceptedService::new(
            IngestServiceServer::new(services.ingest).max_decoding_message_size(max_message),
            auth.interceptor(auth.ingest_is_internal()),
        ));
        if !*i.closing.borrow() {
            self.set_health(ServingStatus::Serving).await;
        }
        // Readiness follows what the node depends on (the record store; NATS on ingest and analyze
        // nodes): a node whose PostgreSQL or NATS is gone reports NOT_SERVING, so that a load balancer
        // sends work elsewhere, and SERVING again once they answer.
        let this = self.clone();
        let watched = pipeline.clone();
        let mut closing = i.closing.subscribe();
        tokio::spawn(async move {
            let mut serving = true;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(READINESS_INTERVAL) => {}
                    _ = closing.changed() => return,
                }
                let answer = tokio::time::timeout(READINESS_INTERVAL, watched.ready())
                    .await
                    .unwrap_or(Err(crow_actors::Unready::NoAnswer));
                let ok = answer.is_ok();
                if *closing.borrow() {
                    return;
                }
                if ok != serving {
                    serving = ok;
                    match &answer {
                        Ok(()) => {
                            tracing::info!("every dependency answers again: serving");
                            this.set_health(ServingStatus::Serving).await;
                        }
                        Err(problem) => {
                            tracing::warn!(%problem, "a dependency does not answer: not serving");
                            this.set_health(ServingStatus::NotServing).await;
                        }
                    }
                }
            }
        });
    }

    /// Sets the health of every crow service and of the server as a whole ("").
    async fn set_health(&self, status: ServingStatus) {
        for name in SERVICE_NAMES.iter().chain([&""]) {
            self.inner.health.set_service_status(*name, status).await;
        }
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error> {
        let options = &self.inner.options;
        let health_service = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(self.inner.health.clone()),
        );
        if self.inner.ingest.get().is_none() {
            self.set_health(ServingStatus::NotServing).await;
        }
        // Server reflection, so that grpcurl-style tools and dynamic clients need no .proto files: v1,
        // and v1alpha, which many clients still speak only (Python's grpcio-reflection, older grpcurl,
        // Postman, evans).
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crow_grpc_api::proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        // Start-up wiring: the descriptor sets are compiled in, so a failure is a build defect.
        #[allow(clippy::expect_used)]
        let reflection_v1 = reflection()
            .build_v1()
            .expect("crow's own descriptor set is valid");
        #[allow(clippy::expect_used)]
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .expect("crow's own descriptor set is valid");
        let this = self.clone();
        let shutdown = async move {
            shutdown.await;
            this.set_health(ServingStatus::NotServing).await;
            this.inner.http.closing();
            // Long-lived streams (frames, pattern subscriptions) end now, so that the graceful drain
            // below does not wait for them forever.
            let _ = this.inner.closing.send(true);
        };
        // HTTP/2's default 64 KiB window is smaller than one camera frame: every frame would wait for
        // window updates while the server is busy. A window of a few frames lets the client stay ahead;
        // credits still bound how many frames the server takes in.
        let max_message = max_stream_message_bytes(options.max_frame_bytes);
        let window = u32::try_from(max_message.saturating_mul(2)).unwrap_or(u32::MAX);
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &options.tls {
            builder = builder.tls_config(tls.tonic())?;
        }
        let i = &self.inner;
        let grpc = tonic::service::Routes::new(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(Deferred(Arc::clone(&i.ingest)))
            .add_service(Deferred(Arc::clone(&i.interactions)))
            .add_service(Deferred(Arc::clone(&i.catalog)))
            .add_service(Deferred(Arc::clone(&i.cameras)))
            .add_service(Deferred(Arc::clone(&i.analysis)));
        let router = grpc
            .into_axum_router()
            .merge(crow_grpc_api::http::router(&i.http))
            .fallback(unknown_route);
        let mut server = builder
            // Browsers, curl and most HTTP clients speak HTTP/1.1 to the JSON routes.
            .accept_http1(true)
            .initial_stream_window_size(window)
            .initial_connection_window_size(window.saturating_mul(2))
            // tonic refuses an oversize unary request with OUT_OF_RANGE; crow answers RESOURCE_EXHAUSTED
            // naming the setting (the frame stream does the same itself).
            .layer(tower::util::MapResponseLayer::new(name_message_limit));
        // Probes and discovery need no token (they reveal the public contract and liveness only).
        server
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming_shutdown(incoming(listener), shutdown)
            .await
    }
}

/// A path no route serves: gRPC's `UNIMPLEMENTED` for a gRPC call, a JSON 404 otherwise.
async fn unknown_route(request: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        return tonic::Status::unimplemented("")
            .into_http::<axum::body::Body>()
            .into_response();
    }
    crow_grpc_api::http::ApiError::new(
        http::StatusCode::NOT_FOUND,
        tonic::Code::NotFound,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
    .into_response()
}

/// A service that exists once its cell is set and answers `UNAVAILABLE` until then. tonic cannot add
/// services to a running server, so crow's services are routed from the start through this.
#[derive(Clone)]
struct Deferred<S>(Arc<OnceLock<S>>);

impl<S: NamedService> NamedService for Deferred<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<Body>> for Deferred<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        use tower::ServiceExt as _;
        match self.0.get() {
            Some(service) => {
                let call = service.clone().oneshot(request);
                Box::pin(async move { Ok(call.await?.map(Body::new)) })
            }
            None => Box::pin(async { Ok(tonic::Status::unavailable(STARTING).into_http()) }),
        }
    }
}
