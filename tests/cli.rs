//! The `crow` binary as a user runs it: `serve` with metrics, `stream`, `interactions list`, `summary`,
//! `metrics`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use crate::common;

fn crow(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_crow"))
        .args(args)
        .env("CROW_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "crow {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn serve_stream_list_summary_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = format!("127.0.0.1:{}", common::free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_crow"))
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &metrics,
            "--data-dir",
        ])
        .arg(dir.path().join("db"))
        .env("CROW_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("crow listening on ")
        .unwrap()
        .to_owned();

    let video = common::data("vtest.avi");
    let out = crow(&[
        "stream",
        video.to_str().unwrap(),
        "--org",
        "shop",
        "--camera",
        "door",
        "--fps",
        "2",
        "--max-frames",
        "12",
        "--server",
        &url,
    ]);
    assert!(out.contains("sent 12 frames"), "{out}");
    assert!(out.contains("(closed)"), "{out}");
    // The session line: "received 12, accepted A, skipped S, no person P, gated G, ..., batches B".
    let session_line = out.lines().find(|l| l.contains("(closed)")).unwrap();
    let count = |name: &str| -> u64 {
        let at = session_line
            .find(&format!("{name} "))
            .unwrap_or_else(|| panic!("{name} in {out}"));
        session_line[at + name.len() + 1..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (accepted, batches) = (count("accepted"), count("batches"));
    assert!(
        accepted > 0 && accepted < 12,
        "people walk by, few frames are new: {out}"
    );
    assert_eq!(
        count("received"),
        accepted
            + count("skipped")
            + count("no person")
            + count("gated")
            + count("shed")
            + count("rejected"),
        "{out}"
    );
    assert!(batches >= accepted.div_ceil(5), "{out}");

    let listed = crow(&[
        "interactions",
        "list",
        "--org",
        "shop",
        "--json",
        "--all",
        "--page-size",
        "2",
        "--server",
        &url,
    ]);
    let records: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len() as u64, batches);
    assert!(records
        .iter()
        .all(|r| r["source_type"] == "cctv" && !r["summary"].as_str().unwrap().is_empty()));
    let summary = crow(&["summary", "--org", "shop", "--json", "--server", &url]);
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(
        (summary["cctv"].as_u64(), summary["total"].as_u64()),
        (Some(batches), Some(batches))
    );

    // Store metrics: the people first seen in the streamed footage, as the records' events say.
    let started: u64 = records
        .iter()
        .map(|r| {
            r["data"]["events"].as_array().map_or(0, |e| {
                e.iter().filter(|e| e["kind"] == "track_started").count() as u64
            })
        })
        .sum();
    assert!(started > 0, "people walk by: {listed}");
    let report = crow(&[
        "metrics", "--org", "shop", "--by", "total", "--since", "2d", "--format", "json",
        "--server", &url,
    ]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        report["rows"][0]["people"].as_u64(),
        Some(started),
        "{report}"
    );
    let table = crow(&[
        "metrics", "--org", "shop", "--since", "2d", "--server", &url,
    ]);
    assert!(table.starts_with("start (UTC)"), "{table}");
    let total = table.lines().find(|l| l.starts_with("total")).unwrap();
    assert_eq!(
        total.split_whitespace().nth(3),
        Some(started.to_string().as_str()),
        "{table}"
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_crow"))
        .args([
            "metrics", "--org", "shop", "--since", "5x", "--server", &url,
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("s, m, h or d"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let mut http = std::net::TcpStream::connect(&metrics).unwrap();
    http.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    http.read_to_string(&mut body).unwrap();
    for (name, value) in [
        ("crow_frames_received_total", 12),
        ("crow_frames_described_total", accepted),
        ("crow_batches_emitted_total", batches),
        ("crow_interactions_written_total", batches),
    ] {
        // Every series says which kind of node it comes from.
        assert!(
            body.lines()
                .any(|l| l == format!("{name}{{role=\"all\"}} {value}")),
            "{name} {value} missing from /metrics:\n{body}"
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn interaction_catalog_and_analysis_commands() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_server_process(
        &dir.path().join("db"),
        &[(
            "CROW_PIPELINE__INTERACTIONS__OUTBOX_BATCH_TIMEOUT_MS",
            "100",
        )],
    );
    let url = server.url.as_str();
    let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/catalog.json");
    let out = crow(&[
        "products", "upsert", catalog, "--org", "shop", "--server", url,
    ]);
    assert!(out.contains("5 products upserted"), "{out}");
    let out = crow(&[
        "products", "list", "--org", "shop", "--json", "--server", url,
    ]);
    assert_eq!(out.lines().count(), 5, "{out}");

    // A camera's zones, tripwires and masks, by flags; `get` prints JSON that `set FILE` takes back.
    let out = crow(&[
        "cameras",
        "set",
        "--org",
        "shop",
        "--camera",
        "aisle-1",
        "--zone",
        "shelf-3:0.1,0.5 0.4,0.5 0.4,0.9 0.1,0.9:sku-101,sku-102:4000",
        "--line",
        "door:0.5,0 0.5,1",
        "--mask",
        "0.85,0 1,0 1,0.2",
        "--server",
        url,
    ]);
    assert!(out.contains("1 zones, 1 tripwires, 1 masks"), "{out}");
    let got = crow(&[
        "cameras", "get", "--org", "shop", "--camera", "aisle-1", "--server", url,
    ]);
    let json: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        json["zones"][0]["product_ids"],
        serde_json::json!(["sku-101", "sku-102"])
    );
    assert_eq!(json["zones"][0]["min_dwell_ms"], 4000);
    let file = dir.path().join("camera.json");
    let file_text = {
        // The file form holds zones, lines and masks only.
        let mut j = json.clone();
        let o = j.as_object_mut().unwrap();
        o.remove("organization_id");
        o.remove("camera_id");
        o.remove("updated_at_ms");
        j.to_string()
    };
    std::fs::write(&file, file_text).unwrap();
    let out = crow(&[
        "cameras",
        "set",
        file.to_str().unwrap(),
        "--org",
        "shop",
        "--camera",
        "aisle-2",
        "--server",
        url,
    ]);
    assert!(out.contains("1 zones, 1 tripwires, 1 masks"), "{out}");
    // The detector's input and tiles for this camera, from flags beside the file.
    let out = crow(&[
        "cameras",
        "set",
        file.to_str().unwrap(),
        "--org",
        "shop",
        "--camera",
        "aisle-2",
        "--detector-input",
        "640x480",
        "--detector-tiles",
        "2x2",
        "--server",
        url,
    ]);
    assert!(
        out.contains("1 masks, detector input 640x480 and 2x2 tiles"),
        "{out}"
    );
    let got: serde_json::Value = serde_json::from_str(&crow(&[
        "cameras", "get", "--org", "shop", "--camera", "aisle-2", "--server", url,
    ]))
    .unwrap();
    assert_eq!(got["detector_input"], serde_json::json!([640, 480]));
    assert_eq!(got["detector_tiles"], serde_json::json!([2, 2]));
    let listed = crow(&["cameras", "list", "--org", "shop", "--server", url]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("sku-101, sku-102"), "{listed}");
    let bad = Command::new(env!("CARGO_BIN_EXE_crow"))
        .args([
            "cameras",
            "set",
            "--org",
            "shop",
            "--camera",
            "aisle-3",
            "--zone",
            "z:0.1,0.1 2,0.2 0.3,0.9",
            "--server",
            url,
        ])
        .env("CROW_LOG", "warn")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("0..1"), "the refusal names the rule: {err}");
    let out = crow(&[
        "cameras", "delete", "--org", "shop", "--camera", "aisle-2", "--server", url,
    ]);
    assert!(out.contains("configuration removed"), "{out}");

    let data = r#"{"platform": "instagram", "text": "Love the red running shoes!"}"#;
    let args = [
        "interactions",
        "create",
        "--org",
        "shop",
        "--source",
        "social",
        "--data",
        data,
        "--idempotency-key",
        "post-1",
        "--wait",
        "--server",
        url,
    ];
    let out = crow(&args);
    let id = out.lines().next().unwrap().to_owned();
    assert!(
        out.contains("products sku-101"),
        "the catalog name in the text is matched: {out}"
    );
    assert!(
        out.contains("social event on instagram about sku-101: Love"),
        "{out}"
    );
    let again = crow(
        &args[..args.len() - 3]
            .iter()
            .chain(&["--server", url])
            .copied()
            .collect::<Vec<_>>(),
    );
    assert!(again.starts_with(&format!("{id}  (duplicate")), "{again}");

    let out = crow(&["interactions", "get", &id, "--org", "shop", "--server", url]);
    assert!(out.contains(&id), "{out}");
    let out = crow(&[
        "interactions",
        "list",
        "--org",
        "shop",
        "--source",
        "social",
        "-q",
        "running shoes",
        "--json",
        "--server",
        url,
    ]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let out = crow(&[
        "interactions",
        "list",
        "--org",
        "shop",
        "-q",
        "jacket",
        "--server",
        url,
    ]);
    assert!(out.contains("no matching interactions"), "{out}");
    let out = crow(&["summary", "--org", "shop", "--json", "--server", url]);
    assert!(
        out.contains("\"social\":1") && out.contains("\"total\":1"),
        "{out}"
    );

    let out = crow(&["analyze", "--org", "shop", "--json", "--server", url]);
    let analysis: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(analysis["status"], "done", "{out}");
    assert_eq!(analysis["records"], 1);
    let fetched = crow(&[
        "analyze",
        "--org",
        "shop",
        "--id",
        analysis["id"].as_str().unwrap(),
        "--json",
        "--server",
        url,
    ]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(fetched.trim()).unwrap(),
        analysis
    );
    let out = crow(&["dead-letters", "list", "--org", "shop", "--server", url]);
    assert!(out.contains("no dead letters"), "{out}");
}

#[test]
fn config_default_is_valid_and_config_check_names_each_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("crow.toml");
    std::fs::write(&reference, crow(&["config", "default"])).unwrap();
    let ok = crow(&["config", "check", reference.to_str().unwrap()]);
    assert!(ok.trim_end().ends_with(": ok"), "{ok}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:50051\"\n[pipeline]\nbatch_size = -1\nbatch_timeout = 5\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crow"))
        .args(["config", "check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a bad file fails the check");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains("line 3: pipeline.batch_size: invalid value: integer `-1`"),
        "{report}"
    );
    assert!(
        report.contains("line 4: pipeline.batch_timeout: unknown field `batch_timeout`"),
        "{report}"
    );
}

#[test]
fn doctor_passes_a_working_setup_and_names_what_to_fix_in_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let doctor = |config: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_crow"))
            .args(["doctor", "--config"])
            .arg(config)
            .env(
                "CROW_JWT_SECRET",
                "doctor-test-secret-long-enough-0123456789",
            )
            .current_dir(root)
            .output()
            .unwrap()
    };
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:{}\"\nmetrics_listen = \"127.0.0.1:{}\"\n",
            dir.path().join("db"),
            common::free_port(),
            common::free_port()
        ),
    )
    .unwrap();
    let out = doctor(&good);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("opencv: OpenCV 4."), "{report}");
    assert!(
        report.contains("analysis.model") && report.contains("sha256 matches"),
        "the text model's checksum is checked: {report}"
    );

    // A projector made for another model, a taken port and a TLS key without its certificate.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "data_dir = {:?}\nlisten = \"{}\"\nmetrics_listen = \"127.0.0.1:{}\"\n\
             [pipeline]\ndescriber = \"llama\"\n\
             [pipeline.llama]\nmmproj = \"models/test-mmproj-mismatch.gguf\"\n\
             [tls]\ncert = {:?}\nkey = {:?}\n",
            dir.path().join("db"),
            taken.local_addr().unwrap(),
            common::free_port(),
            dir.path().join("missing.crt"),
            dir.path().join("missing.key"),
        ),
    )
    .unwrap();
    let out = doctor(&bad);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for expected in [
        "[ FAIL ] mmproj fit: the projector produces 320-dim embeddings but the model has n_embd 640",
        "is in use",
        "[ FAIL ] tls: cannot read tls.cert",
    ] {
        assert!(report.contains(expected), "{expected:?} missing from:\n{report}");
    }
}

/// `--wait` on a terminal keeps its state on one spinner line; a closed output pipe ends a command
/// quietly; `crow verify` checks a stopped server's database offline and refuses a running one's.
#[test]
fn wait_spins_on_one_line_closed_pipes_are_quiet_and_verify_checks_offline() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut server = common::start_server_process(
        &db,
        // Slow enough that --wait polls several times before the event is processed.
        &[(
            "CROW_PIPELINE__INTERACTIONS__OUTBOX_BATCH_TIMEOUT_MS",
            "3000",
        )],
    );
    let url = server.url.clone();

    // `script` gives the command a terminal, as a user's shell would.
    let command = format!(
        "{} interactions create --org shop --source web --data '{{\"event\": \"checkout\"}}' --wait --server {url}",
        env!("CARGO_BIN_EXE_crow")
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("CROW_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    let first = shown
        .find("waiting to be processed")
        .unwrap_or_else(|| panic!("the spinner shows the state: {shown:?}"));
    let last = shown.rfind("waiting to be processed").unwrap();
    assert!(
        !shown[first..last].contains('\n'),
        "the state is redrawn on one line, never repeated on new lines: {shown:?}"
    );
    assert!(
        shown.contains("web"),
        "the stored record is printed: {shown:?}"
    );

    // Without a terminal nothing but the outcome is printed.
    let out = crow(&[
        "interactions",
        "create",
        "--org",
        "shop",
        "--source",
        "web",
        "--data",
        r#"{"event": "view"}"#,
        "--wait",
        "--server",
        &url,
    ]);
    assert!(!out.contains("waiting"), "{out}");

    // A reader that goes away: the command ends without a panic or an error message.
    let mut child = Command::new(env!("CARGO_BIN_EXE_crow"))
        .args([
            "interactions",
            "list",
            "--org",
            "shop",
            "--all",
            "--server",
            &url,
        ])
        .env("CROW_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt as _;
    assert!(
        status.success() || status.signal() == Some(libc_sigpipe()),
        "{status:?}"
    );
    assert!(stderr.is_empty(), "quiet on a closed pipe: {stderr:?}");

    // verify: a running server's database is locked; a stopped one's is checked.
    let locked = Command::new(env!("CARGO_BIN_EXE_crow"))
        .args(["verify", "--data-dir"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(!locked.status.success());
    assert!(
        String::from_utf8_lossy(&locked.stderr).contains("still running"),
        "{}",
        String::from_utf8_lossy(&locked.stderr)
    );
    // A graceful stop (SIGTERM), as an operator's service manager does.
    let term = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    server.child.wait().unwrap();
    let report = crow(&["verify", "--data-dir", db.to_str().unwrap()]);
    assert!(report.contains("2 interactions"), "{report}");
    assert!(report.contains("sound"), "{report}");
}

/// SIGPIPE's number on Linux.
fn libc_sigpipe() -> i32 {
    13
}
