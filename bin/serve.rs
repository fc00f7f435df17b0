//! `crow serve` (a pipeline node, or an inference node with `--role infer`) and `crow verify` (a stopped
//! server's database checked offline).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use crow::{Config, Crow, DescriberKind};

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// Directory of the database [default: the configuration's data_dir, crow-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (its data_dir).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Measure the store metrics again from the stored records (when the check finds them wrong).
    #[arg(long)]
    repair: bool,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file (see `crow::Config`); `CROW_*` environment variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory of the database [default: crow-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50051]; port 0 picks a free port (printed at start).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Prometheus metrics listen address [default: 127.0.0.1:9464].
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Do not export metrics.
    #[arg(long)]
    no_metrics: bool,
    /// Development mode: no authentication (every caller may act for every organization). Never use
    /// it on a network.
    #[arg(long)]
    dev: bool,
    /// Frame describer: opencv (embedded default), llama ([pipeline.llama] models), remote
    /// ([pipeline.remote] server) or off.
    #[arg(long, value_parser = parse_describer)]
    describer: Option<DescriberKind>,
    /// Role in a cluster: all (one process, the default), ingest (camera streams; batches to NATS),
    /// analyze (batches and events into records), api (queries) or infer (an OpenAI-compatible inference
    /// server over the configured models, for other nodes' remote describer and text tasks; see [infer]);
    /// see [pipeline.cluster].
    #[arg(long)]
    role: Option<crow::actors::Role>,
}

pub(crate) fn parse_describer(s: &str) -> Result<DescriberKind, String> {
    match s {
        "opencv" => Ok(DescriberKind::Opencv),
        "llama" => Ok(DescriberKind::Llama),
        "remote" => Ok(DescriberKind::Remote),
        "off" => Ok(DescriberKind::Off),
        other => Err(format!(
            "unknown describer {other:?}; expected opencv or off"
        )),
    }
}

/// `crow verify`: [`crow::storage::Store::verify`] on a database no server has open.
pub(crate) fn verify(args: VerifyArgs) -> Result<()> {
    let dir = match args.data_dir {
        Some(dir) => dir,
        None => Config::load(args.config.as_deref())?.data_dir,
    };
    if !dir.is_dir() {
        anyhow::bail!("{} is not a crow data directory", dir.display());
    }
    // sled takes an exclusive lock: a running server's database cannot be opened (nor damaged) here.
    let store = crow::storage::Store::open(&dir).with_context(|| {
        format!(
            "opening {} (is a server still running on it? stop it first)",
            dir.display()
        )
    })?;
    if args.repair {
        let buckets = store.rebuild_metrics()?;
        println!("repaired: store metrics measured again from the records ({buckets} buckets)");
    }
    let report = store.verify()?;
    println!(
        "{}: {} interactions, {} sessions, {} frames, {} batches",
        dir.display(),
        report.interactions,
        report.sessions,
        report.frames,
        report.batches
    );
    if report.is_sound() {
        println!("sound: every invariant holds");
        return Ok(());
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    anyhow::bail!("{} problem(s) in {}", report.problems.len(), dir.display())
}

pub(crate) async fn serve(args: ServeArgs) -> Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(addr) = args.metrics_listen {
        config.metrics_listen = Some(addr);
    }
    if args.no_metrics {
        config.metrics_listen = None;
    }
    if let Some(kind) = args.describer {
        config.pipeline.describer = kind;
    }
    if let Some(role) = args.role {
        config.pipeline.cluster.role = role;
    }
    if let Some(addr) = config.metrics_listen {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        // Histograms as Prometheus histograms (buckets), so that quantiles aggregate across servers.
        PrometheusBuilder::new()
            .with_http_listener(addr)
            // Every series says which kind of node it comes from (Prometheus adds the instance).
            .add_global_label("role", config.pipeline.cluster.role.as_str())
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ],
            )?
            .set_buckets_for_metric(
                Matcher::Full("crow_batch_frames".into()),
                &[1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0],
            )?
            .install()
            .with_context(|| format!("starting the metrics exporter on {addr}"))?;
    }
    if config.pipeline.cluster.role == crow::actors::Role::Infer {
        return serve_infer(config, args.dev).await;
    }
    let auth = config.authenticator(args.dev)?;
    if args.dev {
        let warning = "DEVELOPMENT MODE: authentication is OFF; every caller may read and write every organization. Never expose this server.";
        eprintln!("\n*** {warning} ***\n");
        tracing::warn!("{warning}");
    }
    let tls = crow::tls::ServerTls::load(&config.tls).context("loading [tls]")?;
    if tls.is_none()
        && !config.listen.ip().is_loopback()
        && !args.dev
        && !config.tls.allow_plaintext
    {
        anyhow::bail!(
            "refusing to serve plaintext on {} (beyond loopback): set [tls] cert and key, or tls.allow_plaintext = true behind a TLS proxy, or use --dev",
            config.listen
        );
    }
    if let Some(tls) = &tls {
        let days = (tls.certificate.not_after_s - crow::storage::now_ms() / 1000) / 86_400;
        metrics::gauge!(crow::actors::metrics_names::TLS_CERT_EXPIRY_SECONDS)
            .set((tls.certificate.not_after_s - crow::storage::now_ms() / 1000) as f64);
        if days < 14 {
            tracing::warn!(days, subject = %tls.certificate.subject, "the server certificate expires soon");
        }
    }
    // Bind first and answer health checks (NOT_SERVING) while sled opens and models load.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let startup = crow::server::Startup::new(crow::server::ServeOptions {
        auth,
        tls,
        max_frame_bytes: config.pipeline.limits.max_frame_bytes,
        max_message_bytes: config.pipeline.limits.max_message_bytes,
        dashboard: config.dashboard,
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let startup = startup.clone();
        async move {
            startup
                .serve(listener, async {
                    let _ = stop_rx.await;
                })
                .await
        }
    });
    let signal = tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: no new streams; finishing open ones");
        let _ = stop_tx.send(());
    });
    let crow = match Crow::from_config(&config).await {
        Ok(crow) => crow,
        Err(e) => {
            server.abort();
            return Err(e)
                .with_context(|| format!("starting crow on {}", config.data_dir.display()));
        }
    };
    startup.ready(crow.pipeline().clone()).await;
    // Scripts and tests read the first line to learn the address (port 0 picks a free one), once crow is
    // ready (health probes see NOT_SERVING before). Both lines go out in one write, so a reader that
    // stops after the first cannot break a later print.
    let mut banner = format!("crow listening on {scheme}://{addr}\n");
    if let Some(m) = config.metrics_listen {
        banner.push_str(&format!("crow metrics on http://{m}/metrics\n"));
    }
    if config.dashboard {
        banner.push_str(&format!("crow dashboard on {scheme}://{addr}/\n"));
    }
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        // Nobody reading stdout is not a reason to stop serving.
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    tracing::info!(data_dir = %config.data_dir.display(), describer = ?config.pipeline.describer, %addr, "serving");
    let served = server.await;
    signal.abort();
    tracing::info!("server stopped; flushing sessions and waiting for analyses");
    let report = crow.shutdown().await;
    tracing::info!(?report, "shut down");
    match served {
        Ok(result) => result.context("serving")?,
        Err(e) => anyhow::bail!("server task failed: {e}"),
    }
    Ok(())
}

/// `crow serve --role infer`: the OpenAI-compatible inference server over the configured models.
pub(crate) async fn serve_infer(config: Config, dev: bool) -> Result<()> {
    if config.infer.api_key.is_none() && !config.listen.ip().is_loopback() && !dev {
        anyhow::bail!(
            "refusing to serve inference on {} without infer.api_key (CROW_INFER__API_KEY); or use --dev",
            config.listen
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let node = tokio::task::spawn_blocking(move || {
        crow::infer::InferNode::load(&config.infer, &config.pipeline)
    })
    .await
    .context("model loader")??;
    let banner = format!(
        "crow listening on http://{addr}\ncrow inference API on http://{addr}/v1 (model {}, vision {}, text {})\n",
        node.name(),
        if node.has_vision() { "yes" } else { "no" },
        if node.has_text() { "yes" } else { "no" },
    );
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    tracing::info!(%addr, model = node.name(), "serving inference");
    axum::serve(listener, crow::infer::router(std::sync::Arc::new(node)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving inference")?;
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} },
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
