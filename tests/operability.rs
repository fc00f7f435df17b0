//! What operators' tools see: the standard health service and server reflection, used the way grpcurl
//! does — services listed and a method called with a client built from the reflected descriptors alone,
//! with no generated code.

use bytes::{Buf, BufMut};
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{CreateInteractionRequest, GetSummaryRequest, SourceType};
use crow::PipelineConfig;
use prost::Message;
use prost_types::FileDescriptorProto;
use tokio_stream::StreamExt;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Status;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

use crate::common::TestServer;

/// Passes message bytes through untouched: the dynamic client encodes and decodes them itself.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

async fn connect(url: &str) -> Channel {
    Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn reflect(url: &str, request: MessageRequest) -> MessageResponse {
    let mut client = ServerReflectionClient::new(connect(url).await);
    let requests = tokio_stream::once(ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    });
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    responses
        .next()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The varint fields of an encoded message, by field number.
fn varint_fields(mut bytes: &[u8]) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let read = |b: &mut &[u8]| -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b.get_u8();
            v |= u64::from(byte & 0x7F) << shift;
            shift += 7;
            if byte < 0x80 {
                return v;
            }
        }
    };
    while bytes.has_remaining() {
        let key = read(&mut bytes);
        match key & 7 {
            0 => out.push(((key >> 3) as u32, read(&mut bytes))),
            2 => {
                let len = read(&mut bytes) as usize;
                bytes.advance(len);
            }
            other => panic!("unexpected wire type {other}"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving_and_reflection_drives_a_dynamic_call() {
    let mut config = PipelineConfig::default();
    config.interactions.outbox_batch_timeout_ms = 50;
    let t = TestServer::start(config).await;

    // Health: every crow service and the server as a whole.
    let mut health = HealthClient::new(connect(&t.url).await);
    for service in crow::server::SERVICE_NAMES.iter().chain([&""]) {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "crow.v1.Nothing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // Reflection lists the services.
    let MessageResponse::ListServicesResponse(list) =
        reflect(&t.url, MessageRequest::ListServices(String::new())).await
    else {
        panic!("expected a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in crow::server::SERVICE_NAMES
        .iter()
        .chain([&"grpc.health.v1.Health"])
    {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }

    // Two records to count, through the generated client.
    let mut typed = InteractionServiceClient::connect(t.url.clone())
        .await
        .unwrap();
    for n in 0..2 {
        typed
            .create_interaction(CreateInteractionRequest {
                organization_id: "shop".into(),
                source_type: SourceType::Web as i32,
                data_json: format!(r#"{{"page": "/{n}"}}"#),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    crate::common::wait_for_interactions(&t.url, "shop", 2).await;

    // The dynamic client: the method, its messages and their field numbers come from reflection only.
    let MessageResponse::FileDescriptorResponse(files) = reflect(
        &t.url,
        MessageRequest::FileContainingSymbol("crow.v1.InteractionService".into()),
    )
    .await
    else {
        panic!("expected descriptors")
    };
    let files: Vec<FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|b| FileDescriptorProto::decode(&b[..]).unwrap())
        .collect();
    let message = |full: &str| {
        let name = full.rsplit('.').next().unwrap().to_owned();
        files
            .iter()
            .flat_map(|f| &f.message_type)
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("{full} not reflected"))
            .clone()
    };
    let service = files
        .iter()
        .flat_map(|f| &f.service)
        .find(|s| s.name() == "InteractionService")
        .unwrap();
    let method = service
        .method
        .iter()
        .find(|m| m.name() == "GetSummary")
        .unwrap();
    let input = message(method.input_type());
    let output = message(method.output_type());
    let field = |m: &prost_types::DescriptorProto, name: &str| {
        m.field.iter().find(|f| f.name() == name).unwrap().number() as u64
    };
    let mut request = Vec::new();
    varint(field(&input, "organization_id") << 3 | 2, &mut request);
    varint(4, &mut request);
    request.extend_from_slice(b"shop");

    let mut grpc = tonic::client::Grpc::new(connect(&t.url).await);
    grpc.ready().await.unwrap();
    let path = format!("/crow.v1.{}/{}", service.name(), method.name());
    let response = grpc
        .unary(
            tonic::Request::new(request),
            path.parse().unwrap(),
            RawCodec,
        )
        .await
        .unwrap()
        .into_inner();
    let web = field(&output, "web") as u32;
    let counted = varint_fields(&response)
        .into_iter()
        .find(|(n, _)| *n == web)
        .map(|(_, v)| v);
    let expected = typed
        .get_summary(GetSummaryRequest {
            organization_id: "shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counted, Some(expected.web));
    assert_eq!(expected.web, 2);
    t.stop().await;
}

#[tokio::test]
async fn health_is_not_serving_and_services_unavailable_until_the_pipeline_is_up() {
    let startup = crow::server::Startup::new(crow::server::ServeOptions::new(
        crow::auth::Authenticator::disabled(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let startup = startup.clone();
        async move {
            startup
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let status = |health: &mut HealthClient<Channel>, service: &'static str| {
        let mut health = health.clone();
        async move {
            health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status
        }
    };
    // The port answers at once: health says NOT_SERVING and crow's services UNAVAILABLE, with why.
    let mut health = HealthClient::new(connect(&url).await);
    for service in ["", "crow.v1.InteractionService"] {
        assert_eq!(
            status(&mut health, service).await,
            ServingStatus::NotServing as i32,
            "{service:?}"
        );
    }
    let mut records = InteractionServiceClient::new(connect(&url).await);
    let summary = || GetSummaryRequest {
        organization_id: "shop".into(),
    };
    let early = records.get_summary(summary()).await.unwrap_err();
    assert_eq!(early.code(), tonic::Code::Unavailable);
    assert_eq!(early.message(), crow::server::STARTING);

    // The database is open and the models are loaded: everything serves, on the same connections.
    let crow = crow::Crow::builder().temporary().build().await.unwrap();
    startup.ready(crow.pipeline().clone()).await;
    for service in ["", "crow.v1.InteractionService", "crow.v1.IngestService"] {
        assert_eq!(
            status(&mut health, service).await,
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    assert_eq!(
        records
            .get_summary(summary())
            .await
            .unwrap()
            .into_inner()
            .total,
        0
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    crow.shutdown().await;
}

/// The metric names the code exports (`crates/actors/src/metrics_names.rs`, and the `METRIC_*`
/// constants of the inference pool and the inference node).
fn exported_metrics() -> Vec<String> {
    let names = include_str!("../crates/actors/src/metrics_names.rs")
        .lines()
        .filter_map(|l| l.split('"').nth(1));
    let inference = [
        include_str!("../crates/inference/src/remote.rs"),
        include_str!("../src/infer.rs"),
    ]
    .into_iter()
    .flat_map(str::lines)
    .filter(|l| l.starts_with("pub const METRIC_"))
    .filter_map(|l| l.split('"').nth(1));
    names
        .chain(inference)
        .filter(|name| name.starts_with("crow_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_metric_is_documented_and_the_dashboard_and_alerts_use_only_real_ones() {
    let exported = exported_metrics();
    assert!(exported.len() > 30, "{exported:?}");
    let readme = include_str!("../docs/operations.md");
    for name in &exported {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is missing from docs/operations.md's metrics table"
        );
    }
    for (file, text) in [
        (
            "deploy/grafana/crow-dashboard.json",
            include_str!("../deploy/grafana/crow-dashboard.json"),
        ),
        (
            "deploy/prometheus/crow-alerts.yml",
            include_str!("../deploy/prometheus/crow-alerts.yml"),
        ),
    ] {
        let mut used = 0;
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !word.starts_with("crow_") {
                continue;
            }
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(word);
            assert!(
                exported.iter().any(|n| n == base),
                "{file} uses {word}, which crow does not export"
            );
            used += 1;
        }
        assert!(used > 5, "{file} uses {used} crow metrics");
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../deploy/grafana/crow-dashboard.json")).unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 10);
}

/// Python's standard gRPC client discovers crow by reflection alone (grpcio-reflection speaks only
/// `grpc.reflection.v1alpha`) and calls a method with a message built from the discovered descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_discovers_crow_by_v1alpha_reflection_and_calls_it() {
    let auth_config = crow::auth::AuthConfig {
        secret: Some("a-test-secret-of-at-least-32-bytes!!".into()),
        ..Default::default()
    };
    let mut config = PipelineConfig::default();
    config.interactions.outbox_batch_timeout_ms = 50;
    let t = TestServer::start_with_auth(
        config,
        crow::auth::Authenticator::new(&auth_config).unwrap(),
    )
    .await;
    let token = crow::auth::mint_hs256(&auth_config, "py", &["shop".into()], "admin", 600).unwrap();
    let python = crate::common::tool("venv/bin/python");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/reflect.py");
    let addr = t.url.trim_start_matches("http://").to_owned();
    let call = move |method: &str, request: &str| {
        let output = std::process::Command::new(&python)
            .arg(&script)
            .args([addr.as_str(), token.as_str(), method, request])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "reflect.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };

    let created = tokio::task::spawn_blocking({
        let call = call.clone();
        move || {
            call(
                "crow.v1.InteractionService/CreateInteraction",
                r#"{"organizationId": "shop", "sourceType": "SOURCE_TYPE_WEB", "dataJson": "{\"page\": \"/py\"}"}"#,
            )
        }
    })
    .await
    .unwrap();
    let services: Vec<&str> = created["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for service in crow::server::SERVICE_NAMES {
        assert!(services.contains(&service), "{service} not in {services:?}");
    }
    assert!(services.contains(&"grpc.reflection.v1alpha.ServerReflection"));
    let id = created["response"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "{created}");

    // The outbox turns the event into a record shortly after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while t.crow.pipeline().store().summary("shop").unwrap().total() == 0 {
        assert!(std::time::Instant::now() < deadline, "never processed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let summary = tokio::task::spawn_blocking({
        let call = call.clone();
        move || {
            call(
                "crow.v1.InteractionService/GetSummary",
                r#"{"organizationId": "shop"}"#,
            )
        }
    })
    .await
    .unwrap();
    // proto3 JSON writes 64-bit integers as strings.
    assert_eq!(summary["response"]["web"], "1", "{summary}");
    assert_eq!(summary["response"]["total"], "1", "{summary}");

    // The token's organization is checked for this client as for any other.
    let other = tokio::task::spawn_blocking(move || {
        call(
            "crow.v1.InteractionService/GetSummary",
            r#"{"organizationId": "elsewhere"}"#,
        )
    })
    .await
    .unwrap();
    assert_eq!(other["error"]["code"], "PERMISSION_DENIED", "{other}");
    t.stop().await;
}
