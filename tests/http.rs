//! The HTTP/JSON API on the gRPC port: the seed's routes and JSON shapes, the same security and limits
//! as gRPC (tokens, roles, organizations, `X-Organization-Id`, sanitized JSON errors with the right
//! status), frames over HTTP with the stream's outcomes, and the OpenAPI document checked against the
//! running server by schemathesis.

use base64::Engine as _;
use crow::auth::{mint_hs256, AuthConfig, Authenticator};
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::GetSummaryRequest;
use crow::PipelineConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{jpeg_frames, pixels_only, TestServer};

const SECRET: &str = "an-http-test-secret-of-32-bytes-or-more";

pub fn auth_config() -> AuthConfig {
    AuthConfig {
        secret: Some(SECRET.into()),
        ..Default::default()
    }
}

pub fn token(orgs: &[&str], role: &str) -> String {
    let orgs: Vec<String> = orgs.iter().map(|o| o.to_string()).collect();
    mint_hs256(&auth_config(), "http-test", &orgs, role, 600).unwrap()
}

/// A server with authentication on, and an HTTP client for it.
pub struct Http {
    pub server: TestServer,
    pub base: String,
    pub client: reqwest::Client,
}

impl Http {
    pub async fn start(config: PipelineConfig) -> Http {
        let server =
            TestServer::start_with_auth(config, Authenticator::new(&auth_config()).unwrap()).await;
        let base = server.url.clone();
        Http {
            server,
            base,
            client: reqwest::Client::new(),
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.client.get(format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
    }
}

/// Status and JSON body.
async fn answer(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = r.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

/// Asserts a JSON error of the expected status and code, with a correlation id.
fn assert_error(answer: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(answer.0.as_u16(), status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(!answer.1["error"]["message"].as_str().unwrap().is_empty());
    assert_eq!(
        answer.1["error"]["correlationId"].as_str().unwrap().len(),
        36,
        "{}",
        answer.1
    );
}

async fn wait_stored(h: &Http, token: &str, org: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, body) = answer(h.get(
            &format!("/api/v1/organizations/{org}/interactions/{id}"),
            Some(token),
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["state"] == "stored" {
            return body["interaction"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "never stored: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_routes_answer_camelcase_json_under_the_grpc_rules() {
    let mut config = PipelineConfig::default();
    config.interactions.outbox_batch_timeout_ms = 50;
    // A small body limit, so that the oversize body below fits the socket buffers: the server answers
    // 413 and closes, and the client must have written all of it to read the answer.
    config.limits.max_message_bytes = 32 * 1024;
    let h = Http::start(config).await;
    let admin = token(&["shop"], "admin");

    // create-interaction: accepted into the outbox (202), idempotent by key (body or header).
    let event = json!({
        "organizationId": "shop",
        "sourceType": "web",
        "data": {"event": "add_to_cart", "page": "/shoes/trail-runner"},
        "summary": "Added the trail runner to the cart",
        "timestamp": "2026-12-02T10:00:00.000Z",
        "productIds": ["sku-1"]
    });
    let first = answer(
        h.post("/api/v1/interactions/create-interaction", &admin)
            .header("Idempotency-Key", "cart-1")
            .json(&event),
    )
    .await;
    assert_eq!(first.0, StatusCode::ACCEPTED, "{}", first.1);
    assert_eq!(first.1["duplicate"], false);
    assert_eq!(first.1["status"], "pending");
    let id = first.1["id"].as_str().unwrap().to_owned();
    let again = answer(
        h.post("/api/v1/interactions/create-interaction", &admin)
            .header("Idempotency-Key", "cart-1")
            .json(&event),
    )
    .await;
    assert_eq!(again.1["id"], id.as_str());
    assert_eq!(again.1["duplicate"], true);

    let stored = wait_stored(&h, &admin, "shop", &id).await;
    assert_eq!(stored["organizationId"], "shop");
    assert_eq!(stored["sourceType"], "web");
    assert_eq!(stored["sessionId"], Value::Null);
    assert_eq!(stored["data"]["event"], "add_to_cart");
    assert_eq!(stored["productIds"], json!(["sku-1"]));
    assert_eq!(stored["timestamp"], "2026-12-02T10:00:00.000Z");
    assert!(stored["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(stored["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "web"));

    // A second record, older, then the list with its filters and cursors.
    let older = answer(
        h.post("/api/v1/interactions/create-interaction", &admin)
            .json(&json!({"organizationId": "shop", "sourceType": "social",
                          "data": {"post": "loved the store"}, "timestamp": 1_764_000_000_000i64})),
    )
    .await;
    let older_id = older.1["id"].as_str().unwrap().to_owned();
    wait_stored(&h, &admin, "shop", &older_id).await;
    let list = answer(h.get(
        "/api/v1/interactions/organization/shop?pageSize=1",
        Some(&admin),
    ))
    .await;
    assert_eq!(list.0, StatusCode::OK, "{}", list.1);
    assert_eq!(list.1["interactions"][0]["id"], id.as_str(), "newest first");
    let cursor = list.1["nextPageToken"].as_str().unwrap().to_owned();
    let next = answer(h.get(
        &format!("/api/v1/interactions/organization/shop?pageSize=1&pageToken={cursor}"),
        Some(&admin),
    ))
    .await;
    assert_eq!(next.1["interactions"][0]["id"], older_id.as_str());
    assert_eq!(next.1["nextPageToken"], Value::Null);
    for (query, expected) in [
        ("sourceType=social", vec![older_id.as_str()]),
        ("q=trail%20runner", vec![id.as_str()]),
        ("from=2026-01-01T00:00:00Z", vec![id.as_str()]),
        ("to=1765000000000", vec![older_id.as_str()]),
        ("q=nothing-like-this", vec![]),
    ] {
        let (status, body) = answer(h.get(
            &format!("/api/v1/interactions/organization/shop?{query}"),
            Some(&admin),
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let ids: Vec<&str> = body["interactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, expected, "{query}");
    }
    let summary = answer(h.get(
        "/api/v1/interactions/organization/shop/summary",
        Some(&admin),
    ))
    .await;
    assert_eq!(
        summary.1,
        json!({"organizationId": "shop", "web": 1, "cctv": 0, "social": 1, "total": 2})
    );

    // The same port still speaks gRPC, with the same token.
    let channel =
        crow::client::channel(&h.base, crow::client::Credentials::new(Some(&admin), None))
            .await
            .unwrap();
    let grpc = InteractionServiceClient::new(channel)
        .get_summary(GetSummaryRequest {
            organization_id: "shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc.total, 2);

    // Security: the gRPC rules, as HTTP statuses and JSON errors.
    let no_token = h
        .get("/api/v1/interactions/organization/shop", None)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    let body: Value = no_token.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
    assert_error(
        &answer(h.get(
            "/api/v1/interactions/organization/shop/summary",
            Some("not-a-jwt"),
        ))
        .await,
        401,
        "UNAUTHENTICATED",
    );
    assert_error(
        &answer(h.get("/api/v1/interactions/organization/elsewhere", Some(&admin))).await,
        403,
        "PERMISSION_DENIED",
    );
    assert_error(
        &answer(
            h.get("/api/v1/interactions/organization/shop", Some(&admin))
                .header("X-Organization-Id", "elsewhere"),
        )
        .await,
        403,
        "PERMISSION_DENIED",
    );
    let matching_header = answer(
        h.get(
            "/api/v1/interactions/organization/shop/summary",
            Some(&admin),
        )
        .header("X-Organization-Id", "shop"),
    )
    .await;
    assert_eq!(matching_header.0, StatusCode::OK);
    let viewer = token(&["shop"], "viewer");
    assert_error(
        &answer(
            h.post("/api/v1/interactions/create-interaction", &viewer)
                .json(&event),
        )
        .await,
        403,
        "PERMISSION_DENIED",
    );
    // Bad input: typed errors, nothing stored.
    let malformed = answer(
        h.post("/api/v1/interactions/create-interaction", &admin)
            .header("content-type", "application/json")
            .body("{\"organizationId\": \"shop\", "),
    )
    .await;
    assert_error(&malformed, 400, "INVALID_ARGUMENT");
    let missing = answer(
        h.post("/api/v1/interactions/create-interaction", &admin)
            .json(&json!({"organizationId": "shop", "sourceType": "web"})),
    )
    .await;
    assert_error(&missing, 400, "INVALID_ARGUMENT");
    assert!(missing.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("data"));
    assert_error(
        &answer(h.get(
            "/api/v1/interactions/organization/shop?pageSize=100000",
            Some(&admin),
        ))
        .await,
        400,
        "INVALID_ARGUMENT",
    );
    assert_error(
        &answer(h.get(
            "/api/v1/interactions/organization/shop?from=yesterday",
            Some(&admin),
        ))
        .await,
        400,
        "INVALID_ARGUMENT",
    );
    let huge = json!({"organizationId": "shop", "sourceType": "web",
                      "data": {"blob": "x".repeat(80 * 1024)}});
    assert_error(
        &answer(
            h.post("/api/v1/interactions/create-interaction", &admin)
                .json(&huge),
        )
        .await,
        413,
        "RESOURCE_EXHAUSTED",
    );
    assert_error(
        &answer(h.get(
            "/api/v1/cctv/sessions/00000000-0000-0000-0000-000000000000?organizationId=shop",
            Some(&admin),
        ))
        .await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &answer(h.get("/api/v1/no-such-route", Some(&admin))).await,
        404,
        "NOT_FOUND",
    );
    let after = answer(h.get(
        "/api/v1/interactions/organization/shop/summary",
        Some(&admin),
    ))
    .await;
    assert_eq!(after.1["total"], 2, "refused requests stored nothing");

    // Health and the OpenAPI document need no token.
    let (status, health) = answer(h.get("/api/v1/health", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "serving");
    let (status, doc) = answer(h.get("/openapi.json", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    h.server.stop().await;
}

fn frame_json(index: u64, captured_ms: i64, data: &[u8]) -> Value {
    json!({
        "frameIndex": index,
        "capturedAt": captured_ms,
        "format": "jpeg",
        "data": base64::engine::general_purpose::STANDARD.encode(data),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_http_get_the_stream_s_outcomes_and_keyframes() {
    let mut config = pixels_only(PipelineConfig::default());
    config.batch_size = 2;
    let h = Http::start(config).await;
    let camera = token(&["shop"], "camera");
    let admin = token(&["shop"], "admin");
    let footage = jpeg_frames("vtest.avi", 2.0, 5);
    let t0 = 1_796_200_000_000i64;

    let (status, session) = answer(
        h.post("/api/v1/cctv/sessions", &camera)
            .json(&json!({"organizationId": "shop", "cameraId": "door"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(session["status"], "open");
    assert_eq!(session["lastFrameIndex"], Value::Null);
    let session_id = session["sessionId"].as_str().unwrap().to_owned();

    // JSON with base64 frames: one corrupt among good ones; the good ones go on.
    let mut corrupt = footage[1].1.clone();
    corrupt.truncate(200);
    let frames = vec![
        frame_json(0, t0, &footage[0].1),
        frame_json(1, t0 + 500, &corrupt),
        frame_json(2, t0 + 1000, &footage[2].1),
    ];
    let (status, acks) = answer(h.post("/api/v1/cctv/frames", &camera).json(&json!({
        "organizationId": "shop", "cameraId": "door", "sessionId": session_id, "frames": frames,
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{acks}");
    let acks = acks["acks"].as_array().unwrap().clone();
    assert_eq!(acks.len(), 3);
    assert_eq!(acks[0]["outcome"], "accepted", "{acks:?}");
    assert_eq!(acks[0]["sessionId"], session_id.as_str());
    assert_eq!(acks[1]["outcome"], "rejected");
    assert_eq!(acks[1]["refusal"], "INVALID_ARGUMENT");
    assert!(acks[1]["reason"].as_str().unwrap().len() > 5);
    assert_eq!(acks[2]["outcome"], "accepted");

    // Resending an index is answered from its record.
    let (_, replay) = answer(h.post("/api/v1/cctv/frames", &camera).json(&json!({
        "organizationId": "shop", "cameraId": "door", "sessionId": session_id,
        "frames": [frame_json(2, t0 + 1000, &footage[2].1)],
    })))
    .await;
    assert_eq!(replay["acks"][0]["replayed"], true);
    assert_eq!(replay["acks"][0]["outcome"], "accepted");

    // Multipart: frameIndex / capturedAt fields, then each image part.
    let mut form = reqwest::multipart::Form::new()
        .text("organizationId", "shop")
        .text("cameraId", "door")
        .text("sessionId", session_id.clone());
    for (n, index) in [3u64, 4].into_iter().enumerate() {
        form = form
            .text("frameIndex", index.to_string())
            .text("capturedAt", (t0 + 1500 + 500 * n as i64).to_string())
            .part(
                "frame",
                reqwest::multipart::Part::bytes(footage[index as usize].1.clone())
                    .mime_str("image/jpeg")
                    .unwrap(),
            );
    }
    let (status, multipart) = answer(h.post("/api/v1/cctv/frames", &camera).multipart(form)).await;
    assert_eq!(status, StatusCode::OK, "{multipart}");
    let outcomes: Vec<&str> = multipart["acks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .all(|o| ["accepted", "skipped_duplicate"].contains(o)),
        "{outcomes:?}"
    );

    // Refusals before any frame is recorded.
    assert_error(
        &answer(h.post("/api/v1/cctv/frames", &camera).json(&json!({
            "organizationId": "elsewhere", "cameraId": "door",
            "frames": [frame_json(9, t0, &footage[0].1)],
        })))
        .await,
        403,
        "PERMISSION_DENIED",
    );
    assert_error(
        &answer(h.post("/api/v1/cctv/frames", &camera).json(&json!({
            "organizationId": "shop", "cameraId": "door",
            "frames": [{"frameIndex": 9, "format": "jpeg", "data": "%%%not base64"}],
        })))
        .await,
        400,
        "INVALID_ARGUMENT",
    );
    assert_error(
        &answer(h.post("/api/v1/cctv/frames", &camera).json(&json!({
            "organizationId": "shop", "cameraId": "door", "sessionId": "no-such-session",
            "frames": [frame_json(9, t0, &footage[0].1)],
        })))
        .await,
        404,
        "NOT_FOUND",
    );
    // A camera token may send but not read.
    assert_error(
        &answer(h.get(
            &format!("/api/v1/cctv/sessions/{session_id}?organizationId=shop"),
            Some(&camera),
        ))
        .await,
        403,
        "PERMISSION_DENIED",
    );

    // Closing: every received frame has exactly one outcome.
    let (status, closed) = answer(h.post(
        &format!("/api/v1/organizations/shop/sessions/{session_id}/close"),
        &camera,
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "closed");
    let (_, s) = answer(
        h.get(&format!("/api/v1/cctv/sessions/{session_id}"), Some(&admin))
            .header("X-Organization-Id", "shop"),
    )
    .await;
    assert_eq!(s["framesReceived"], 5, "{s}");
    let sum: u64 = [
        "framesAccepted",
        "framesSkipped",
        "framesRejected",
        "framesNoPerson",
        "framesGated",
        "framesShed",
    ]
    .iter()
    .map(|k| s[k].as_u64().unwrap())
    .sum();
    assert_eq!(sum, 5, "{s}");
    assert_eq!(s["framesRejected"], 1);
    assert_eq!(s["lastFrameIndex"], 4);

    // Keyframes of described frames: the bytes the camera sent.
    let keyframe = h
        .get(
            &format!("/api/v1/organizations/shop/sessions/{session_id}/keyframes/0"),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(keyframe.status(), StatusCode::OK);
    assert_eq!(keyframe.headers()["content-type"], "image/jpeg");
    assert_eq!(keyframe.bytes().await.unwrap().as_ref(), &footage[0].1[..]);
    // Its tracking record keeps the digest of those bytes (keyframes are checked against it when
    // read); the rejected frame, which never decoded, has none.
    let store = h.server.crow.pipeline().store();
    let frames = store.frames(&session_id).unwrap();
    assert_eq!(
        frames[0].digest,
        Some(crow::storage::FrameDigest::of(&footage[0].1))
    );
    assert_eq!(frames[1].digest, None, "{:?}", frames[1]);

    // Frames after the close are refused per frame, as on the stream.
    let (_, late) = answer(h.post("/api/v1/cctv/frames", &camera).json(&json!({
        "organizationId": "shop", "cameraId": "door", "sessionId": session_id,
        "frames": [frame_json(5, t0 + 3000, &footage[0].1)],
    })))
    .await;
    assert_eq!(late["acks"][0]["refusal"], "FAILED_PRECONDITION", "{late}");
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frame_rate_limit_holds_over_http() {
    let mut config = pixels_only(PipelineConfig::default());
    config.limits.max_fps_per_session = 2;
    let h = Http::start(config).await;
    let camera = token(&["shop"], "camera");
    let footage = jpeg_frames("vtest.avi", 2.0, 1);
    let frames: Vec<Value> = (0..8)
        .map(|i| frame_json(i, 1_796_200_000_000 + 100 * i as i64, &footage[0].1))
        .collect();
    let (status, body) = answer(h.post("/api/v1/cctv/frames", &camera).json(&json!({
        "organizationId": "shop", "cameraId": "door", "frames": frames,
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let throttled = body["acks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["refusal"] == "RESOURCE_EXHAUSTED")
        .count();
    assert!(
        (1..=6).contains(&throttled),
        "a burst of 8 at 2 frames/s: {body}"
    );
    h.server.stop().await;
}

/// Runs schemathesis against `base`'s document; returns its report.
async fn schemathesis(base: &str, name: &str, extra: &[&str]) -> String {
    let schemathesis = crate::common::tool("venv/bin/schemathesis");
    let report = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("schemathesis")
        .join(name);
    let mut command = std::process::Command::new(schemathesis);
    command
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection",
        ])
        .args(["--max-examples", "12", "--workers", "1", "--seed", "7"])
        // The live event stream never ends: a generated request would wait forever.
        .args(["--exclude-path", "/api/v1/organizations/{orgId}/patterns"])
        .args(["--request-timeout", "20", "--no-color"])
        .args(["--generation-database", "none"])
        .args(extra)
        .arg("--report-dir")
        .arg(&report)
        // Its caches land in the test scratch directory, not the repository.
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "schemathesis ({name}) found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Tested: 24"),
        "every operation but the stream: {stdout}"
    );
    stdout
}

/// schemathesis (PyPI) generates requests from `/openapi.json` and checks that the server never
/// answers 5xx, that every status, content type and body it sends is the documented one, and that
/// invalid input is refused with a 4xx. Twice: with authentication off, so that generated requests
/// reach every handler (whatever organization they name), and with it on and a token for one
/// organization, so that requests without or with a wrong token are checked too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_holds_against_the_running_server() {
    let config = || {
        let mut config = pixels_only(PipelineConfig::default());
        config.interactions.outbox_batch_timeout_ms = 50;
        // No text model: analyses are refused (FAILED_PRECONDITION, a documented 400) instead of
        // running the model on generated windows.
        config.analysis.model = None;
        config
    };
    let open = TestServer::start(config()).await;
    // Records, a product and a camera of an organization the generator names often, so that
    // responses with content are checked against their schemas too.
    let client = reqwest::Client::new();
    for (path, body) in [
        (
            "/api/v1/interactions/create-interaction",
            json!({"organizationId": "0", "sourceType": "web", "data": {"page": "/"}}),
        ),
        (
            "/api/v1/cctv/sessions",
            json!({"organizationId": "0", "cameraId": "0"}),
        ),
    ] {
        let r = client
            .post(format!("{}{path}", open.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    for (path, body) in [
        (
            "/api/v1/organizations/0/products",
            json!({"products": [{"id": "0", "name": "Trail runner"}]}),
        ),
        (
            "/api/v1/organizations/0/cameras/0",
            json!({"zones": [{"id": "0", "polygon": [{"x": 0.1, "y": 0.1}, {"x": 0.9, "y": 0.1}, {"x": 0.5, "y": 0.9}]}]}),
        ),
    ] {
        let r = client
            .put(format!("{}{path}", open.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    schemathesis(
        &open.url,
        "open",
        // Without authentication a request without a token is rightly accepted.
        &["--generation-with-security-parameters", "false"],
    )
    .await;
    open.stop().await;

    let h = Http::start(config()).await;
    let header = format!("Authorization: Bearer {}", token(&["0", "shop"], "admin"));
    schemathesis(&h.base, "authenticated", &["--header", &header]).await;
    h.server.stop().await;
}
