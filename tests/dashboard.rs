//! The web dashboard in a real browser: headless Chromium (Debian's) driven by playwright-core
//! (`tests/dashboard/dashboard.cjs`) against a real server with real footage streamed in over HTTP. The
//! script logs in, pages and filters the interactions, opens a CCTV record and waits for its evidence
//! keyframes to render, checks the summary chart against the counts, watches a live pattern event
//! arrive, and finds the camera's zones drawn over a keyframe. Screenshots of every step are kept in
//! `target/tmp/dashboard/`.

use base64::Engine as _;
use crow::PipelineConfig;
use serde_json::{json, Value};

use crate::common::jpeg_frames;
use crate::http::{token, Http};

async fn ok(r: reqwest::RequestBuilder) -> Value {
    let response = r.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_manager_clicks_through_the_dashboard() {
    let mut config = PipelineConfig::default();
    config.interactions.outbox_batch_timeout_ms = 50;
    let h = Http::start(config).await;
    let admin = token(&["shop"], "admin");

    // The catalog and the camera's zone and tripwire, over HTTP.
    ok(h.client
        .put(format!("{}/api/v1/organizations/shop/products", h.base))
        .bearer_auth(&admin)
        .json(&json!({"products": [{"id": "sku-101", "name": "Trail runner shoe"}]})))
    .await;
    ok(h.client
        .put(format!("{}/api/v1/organizations/shop/cameras/entrance", h.base))
        .bearer_auth(&admin)
        .json(&json!({
            "zones": [{"id": "display-1", "polygon": [{"x": 0.3, "y": 0.3}, {"x": 0.7, "y": 0.3},
                       {"x": 0.7, "y": 0.9}, {"x": 0.3, "y": 0.9}], "productIds": ["sku-101"], "minDwellMs": 2000}],
            "lines": [{"id": "door", "a": {"x": 0.5, "y": 0.0}, "b": {"x": 0.5, "y": 1.0}}],
        })))
    .await;

    // Real footage as camera "entrance", then closed so that every batch is analysed.
    let footage = jpeg_frames("vtest.avi", 2.0, 48);
    let t0 = crow::storage::now_ms() - 60_000;
    let mut session = String::new();
    for chunk in footage[..40].chunks(8).enumerate() {
        let (n, frames) = chunk;
        let frames: Vec<Value> = frames
            .iter()
            .enumerate()
            .map(|(i, (offset, data))| {
                json!({"frameIndex": n * 8 + i, "capturedAt": t0 + offset, "format": "jpeg",
                       "data": base64::engine::general_purpose::STANDARD.encode(data)})
            })
            .collect();
        let acks = ok(h
            .post("/api/v1/cctv/frames", &admin)
            .json(&json!({"organizationId": "shop", "cameraId": "entrance", "frames": frames})))
        .await;
        session = acks["acks"][0]["sessionId"].as_str().unwrap().to_owned();
    }
    let closed = ok(h.post(
        &format!("/api/v1/organizations/shop/sessions/{session}/close"),
        &admin,
    ))
    .await;
    // Every batch of the session becomes one record (analysed one after another).
    let batches = closed["batchesEmitted"].as_u64().unwrap();
    assert!(batches > 0, "{closed}");

    // Web events: 24 over the last 6 hours, one of them a checkout.
    let now = crow::storage::now_ms();
    for n in 0..24i64 {
        let summary = if n == 7 {
            "Checkout completed with two items".to_owned()
        } else {
            format!("Viewed product page {n}")
        };
        ok(h.post("/api/v1/interactions/create-interaction", &admin)
            .json(&json!({"organizationId": "shop", "sourceType": "web",
                          "data": {"page": format!("/p/{n}")}, "summary": summary,
                          "timestamp": now - (n % 6) * 3_600_000 - 1_000})))
        .await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let cctv = loop {
        let s = ok(h.get(
            "/api/v1/interactions/organization/shop/summary",
            Some(&admin),
        ))
        .await;
        if s["web"] == 24 && s["cctv"].as_u64().unwrap() == batches {
            break s["cctv"].as_u64().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "not processed: {s}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };

    // Frames the script posts as another camera while the live view is open.
    let live = tempfile::tempdir().unwrap();
    for (n, (_, data)) in footage[40..].iter().enumerate() {
        std::fs::write(live.path().join(format!("{n}.jpg")), data).unwrap();
    }
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/dashboard.cjs");
    let node_modules = crate::common::tool("node/node_modules");
    let (base, admin_token) = (h.base.clone(), admin.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .args([base.as_str(), "shop", admin_token.as_str()])
            .arg(&out)
            .arg(live.path())
            .env("NODE_PATH", node_modules)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the dashboard script failed (screenshots in target/tmp/dashboard/):\n{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["summary"]["web"], 24, "{seen}");
    assert_eq!(seen["summary"]["cctv"], cctv, "{seen}");
    assert_eq!(seen["cctvRows"].as_u64().unwrap(), cctv.min(20), "{seen}");
    assert!(
        seen["chartHours"].as_u64().unwrap() >= 6,
        "one bar per hour: {seen}"
    );
    h.server.stop().await;
}
