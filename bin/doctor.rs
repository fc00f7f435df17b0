//! `crow doctor`: checks what a server needs before it starts, and prints what to fix.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use crow::{Config, DescriberKind};
use sha2::Digest as _;

#[derive(Args)]
pub(crate) struct DoctorArgs {
    /// TOML configuration file to check (and whose settings are checked).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Do not hash model files (a 4-12 GB vision model takes a while).
    #[arg(long)]
    skip_checksums: bool,
}

/// Known-good SHA-256 of the models `scripts/setup-models.sh` installs, by file name.
const KNOWN_MODELS: [(&str, &str); 1] = [(
    "gemma-3-270m-q4_k_m.gguf",
    "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
)];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    worst: Level,
}

impl Report {
    fn line(&mut self, level: Level, what: &str, detail: impl std::fmt::Display) {
        let tag = match level {
            Level::Ok => "  ok  ",
            Level::Warn => " warn ",
            Level::Fail => " FAIL ",
        };
        println!("[{tag}] {what}: {detail}");
        self.worst = self.worst.max(level);
    }
    fn ok(&mut self, what: &str, detail: impl std::fmt::Display) {
        self.line(Level::Ok, what, detail);
    }
    fn warn(&mut self, what: &str, detail: impl std::fmt::Display) {
        self.line(Level::Warn, what, detail);
    }
    fn fail(&mut self, what: &str, detail: impl std::fmt::Display) {
        self.line(Level::Fail, what, detail);
    }
}

/// Runs every check; exits 1 if any failed.
pub(crate) fn run(args: DoctorArgs) -> Result<()> {
    let mut r = Report { worst: Level::Ok };
    if let Some(file) = &args.config {
        match std::fs::read_to_string(file) {
            Ok(text) => {
                let problems = Config::check(&text);
                if problems.is_empty() {
                    r.ok("config", format!("{} is valid", file.display()));
                }
                for p in problems {
                    r.fail("config", format!("{}: {p}", file.display()));
                }
            }
            Err(e) => r.fail("config", format!("cannot read {}: {e}", file.display())),
        }
    }
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            r.fail("config", format!("{e}; fix it, then run crow doctor again"));
            return Err(crate::Reported.into());
        }
    };
    opencv(&mut r);
    models(&mut r, &config, !args.skip_checksums);
    data_dir(&mut r, &config);
    ports(&mut r, &config);
    tls(&mut r, &config);
    auth(&mut r, &config);
    match r.worst {
        Level::Ok => println!("\nall checks passed"),
        Level::Warn => println!("\nno failures; see the warnings above"),
        Level::Fail => {
            println!("\nfix the failures above before `crow serve`");
            return Err(crate::Reported.into());
        }
    }
    Ok(())
}

fn opencv(r: &mut Report) {
    let version = opencv::core::get_version_string()
        .map(|v| format!("OpenCV {v}"))
        .unwrap_or_else(|e| format!("OpenCV (version unknown: {e})"));
    // A real round trip through the codecs crow uses: encode a picture, validate and decode it.
    let result = (|| -> Result<(i32, i32)> {
        let image = opencv::core::Mat::new_rows_cols_with_default(
            48,
            64,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::new(40.0, 120.0, 200.0, 0.0),
        )?;
        let jpeg = crow::inference::encode_jpeg(&image, 80)?;
        let decoded = crow::inference::decode_frame(
            &jpeg,
            crow::inference::ImageFormat::Jpeg,
            crow::inference::FrameLimits::DEFAULT,
        )?;
        Ok((decoded.width(), decoded.height()))
    })();
    match result {
        Ok((64, 48)) => r.ok("opencv", format!("{version}: JPEG encode and decode work")),
        Ok((w, h)) => r.fail(
            "opencv",
            format!("{version}: a 64x48 JPEG decoded as {w}x{h}"),
        ),
        Err(e) => r.fail(
            "opencv",
            format!("{version}: {e}; install libopencv-dev (scripts/setup.sh)"),
        ),
    }
}

fn sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The expected checksum of `path`: from `SHA256SUMS` beside it (`sha256sum` format), else from the
/// models crow ships.
fn expected_sha256(path: &Path) -> Option<(String, &'static str)> {
    let name = path.file_name()?.to_str()?;
    let sums = path.with_file_name("SHA256SUMS");
    if let Ok(text) = std::fs::read_to_string(&sums) {
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            if let (Some(sum), Some(file)) = (parts.next(), parts.next()) {
                if file.trim_start_matches('*') == name {
                    return Some((sum.to_lowercase(), "SHA256SUMS"));
                }
            }
        }
    }
    KNOWN_MODELS
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, sum)| ((*sum).to_owned(), "the checksum crow ships"))
}

/// Checks one GGUF file; returns its header when readable.
fn model_file(
    r: &mut Report,
    what: &str,
    path: &Path,
    required: bool,
    checksums: bool,
) -> Option<crow::inference::gguf::GgufHeader> {
    if !path.exists() {
        let fix = "run scripts/setup-models.sh, or point the setting at your model";
        if required {
            r.fail(what, format!("{} does not exist; {fix}", path.display()));
        } else {
            r.warn(
                what,
                format!(
                    "{} does not exist: products are matched lexically and Analyze is unavailable; {fix}",
                    path.display()
                ),
            );
        }
        return None;
    }
    let header = match crow::inference::gguf::read_header(path) {
        Ok(h) => h,
        Err(e) => {
            r.fail(
                what,
                format!(
                    "{} is not a usable GGUF file ({e}); download it again",
                    path.display()
                ),
            );
            return None;
        }
    };
    let arch = header.str("general.architecture").unwrap_or("?").to_owned();
    if !checksums {
        r.ok(
            what,
            format!("{} (GGUF, {arch}; checksum not checked)", path.display()),
        );
        return Some(header);
    }
    match (sha256(path), expected_sha256(path)) {
        (Err(e), _) => r.fail(what, format!("cannot read {}: {e}", path.display())),
        (Ok(sum), Some((expected, source))) if sum != expected => r.fail(
            what,
            format!(
                "{} has sha256 {sum} but {source} says {expected}: the file is damaged or not the one meant; download it again",
                path.display()
            ),
        ),
        (Ok(_), Some((_, source))) => r.ok(
            what,
            format!("{} (GGUF, {arch}; sha256 matches {source})", path.display()),
        ),
        (Ok(sum), None) => r.warn(
            what,
            format!(
                "{} (GGUF, {arch}) has sha256 {sum}, which nothing pins: add it to SHA256SUMS beside the file",
                path.display()
            ),
        ),
    }
    Some(header)
}

fn models(r: &mut Report, config: &Config, checksums: bool) {
    let p = &config.pipeline;
    match p.describer {
        DescriberKind::Llama => {
            let model = model_file(r, "llama.model", &p.llama.model, true, checksums);
            let mmproj = model_file(r, "llama.mmproj", &p.llama.mmproj, true, checksums);
            if let (Some(model), Some(mmproj)) = (model, mmproj) {
                let arch = model.str("general.architecture").unwrap_or("?");
                let n_embd = model.int(&format!("{arch}.embedding_length"));
                let projection = mmproj.int("clip.vision.projection_dim");
                match (n_embd, projection) {
                    (Some(n), Some(d)) if n == d => r.ok(
                        "mmproj fit",
                        format!("the projector's {d}-dim output fits the model's n_embd {n}"),
                    ),
                    (Some(n), Some(d)) => r.fail(
                        "mmproj fit",
                        format!(
                            "the projector produces {d}-dim embeddings but the model has n_embd {n}: use the mmproj made for this model"
                        ),
                    ),
                    _ => r.warn(
                        "mmproj fit",
                        "the files do not say their embedding sizes; crow checks the fit when it loads them",
                    ),
                }
            }
        }
        DescriberKind::Remote => r.ok(
            "describer",
            format!(
                "remote at {} (not contacted)",
                p.remote.server_urls().join(", ")
            ),
        ),
        DescriberKind::Opencv => r.ok("describer", "the embedded OpenCV describer (no model)"),
        DescriberKind::Off => r.warn(
            "describer",
            "off: frames are tracked but no CCTV interactions are made",
        ),
    }
    if let Some(text) = &p.analysis.model {
        model_file(r, "analysis.model", text, false, checksums);
    }
}

fn data_dir(r: &mut Report, config: &Config) {
    let dir = &config.data_dir;
    let existing = if dir.exists() {
        dir.clone()
    } else {
        // It will be created: check the nearest existing parent.
        let mut parent = dir.as_path();
        loop {
            match parent.parent() {
                Some(p) if p.as_os_str().is_empty() => break PathBuf::from("."),
                Some(p) if p.exists() => break p.to_owned(),
                Some(p) => parent = p,
                None => break PathBuf::from("."),
            }
        }
    };
    let probe = existing.join(format!(".crow-doctor-{}", std::process::id()));
    match std::fs::write(&probe, b"probe") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            let state = if dir.exists() {
                "exists and is writable"
            } else {
                "will be created (its parent is writable)"
            };
            r.ok("data_dir", format!("{} {state}", dir.display()));
        }
        Err(e) => r.fail(
            "data_dir",
            format!(
                "cannot write in {} ({e}): give the user crow runs as write access (e.g. chown crow {})",
                existing.display(),
                existing.display()
            ),
        ),
    }
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(dir) {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o002 != 0 {
            r.warn(
                "data_dir",
                format!(
                    "{} is world-writable: chmod o-w it (interaction records live there)",
                    dir.display()
                ),
            );
        }
    }
    let floor = config.pipeline.retention.min_free_disk_bytes;
    match crow::actors::free_disk_bytes(&existing) {
        // crow runs below the floor (it keeps storing interactions), so this is a warning.
        Ok(free) if free < floor => r.warn(
            "disk",
            format!(
                "{} free, below pipeline.retention.min_free_disk_bytes ({}): crow would store no keyframes; free space or lower the floor",
                gib(free),
                gib(floor)
            ),
        ),
        Ok(free) if free < floor.saturating_mul(4) => r.warn(
            "disk",
            format!("{} free, less than 4x the floor of {}", gib(free), gib(floor)),
        ),
        Ok(free) => r.ok(
            "disk",
            format!("{} free (floor {})", gib(free), gib(floor)),
        ),
        Err(e) => r.warn(
            "disk",
            format!("cannot measure free space of {}: {e}", existing.display()),
        ),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn ports(r: &mut Report, config: &Config) {
    let mut check = |what: &str, addr: SocketAddr| {
        match std::net::TcpListener::bind(addr) {
        Ok(_) => r.ok(what, format!("{addr} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => r.fail(
            what,
            format!("{addr} is in use (is crow already running?): stop that process or choose another address"),
        ),
        Err(e) => r.fail(what, format!("cannot bind {addr}: {e}")),
    }
    };
    check("listen", config.listen);
    if let Some(m) = config.metrics_listen {
        check("metrics_listen", m);
    }
}

fn tls(r: &mut Report, config: &Config) {
    match crow::tls::ServerTls::load(&config.tls) {
        Ok(Some(tls)) => {
            let now_s = crow::storage::now_ms() / 1000;
            let days = (tls.certificate.not_after_s - now_s) / 86_400;
            let detail = format!(
                "{} ({}), issued by {}, {days} days left{}",
                config.tls.cert.as_deref().unwrap_or(Path::new("?")).display(),
                tls.certificate.subject,
                tls.certificate.issuer,
                if tls.requires_client_cert {
                    "; client certificates required"
                } else {
                    ""
                }
            );
            if days < 14 {
                r.warn("tls", format!("{detail}: renew it soon"));
            } else {
                r.ok("tls", detail);
            }
        }
        Ok(None) if config.listen.ip().is_loopback() => {
            r.ok("tls", "plaintext on loopback")
        }
        Ok(None) if config.tls.allow_plaintext => r.warn(
            "tls",
            format!("plaintext on {} (tls.allow_plaintext: only behind a TLS proxy)", config.listen),
        ),
        Ok(None) => r.fail(
            "tls",
            format!(
                "{} is not loopback and no [tls] cert/key is set: crow serve refuses plaintext there (set tls.cert and tls.key)",
                config.listen
            ),
        ),
        Err(e) => r.fail("tls", e),
    }
}

fn auth(r: &mut Report, config: &Config) {
    match config.authenticator(false) {
        Ok(_) => r.ok("auth", format!("{} tokens", config.auth.algorithm)),
        Err(e) => r.fail("auth", e),
    }
}
