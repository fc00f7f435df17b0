//! `crow watch`: CCTV pattern events as they are written.

use anyhow::Result;
use clap::Args;
use crow::proto::analysis_service_client::AnalysisServiceClient;
use crow::proto::WatchPatternsRequest;
use serde_json::json;

use crate::ServerArg;

use super::common::*;

#[derive(Args)]
pub(crate) struct WatchArgs {
    /// Organization id.
    #[arg(long)]
    org: String,
    /// Only this camera.
    #[arg(long)]
    camera: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

pub(crate) async fn watch(args: WatchArgs) -> Result<()> {
    let mut client = AnalysisServiceClient::new(channel(&args.server).await?);
    let mut stream = client
        .watch_patterns(WatchPatternsRequest {
            organization_id: args.org.clone(),
            camera_id: args.camera.unwrap_or_default(),
        })
        .await?
        .into_inner();
    eprintln!("watching pattern events of {} (Ctrl-C to stop)", args.org);
    while let Some(e) = stream.message().await? {
        if args.json {
            println!(
                "{}",
                json!({
                    "session_id": e.session_id, "camera_id": e.camera_id, "batch_index": e.batch_index,
                    "frames": [e.first_frame_index, e.last_frame_index], "interaction_id": e.interaction_id,
                    "summary": e.summary, "tags": e.tags, "timestamp_ms": e.timestamp_ms,
                    "products": e.products.iter().map(|p| json!({
                        "product_id": p.product_id, "confidence": p.confidence,
                        "evidence_frames": p.evidence_frames})).collect::<Vec<_>>(),
                })
            );
        } else {
            println!(
                "{}  camera {} batch {} frames {}-{}  [{}]\n    {}",
                format_ms(e.timestamp_ms),
                e.camera_id,
                e.batch_index,
                e.first_frame_index,
                e.last_frame_index,
                e.tags.join(", "),
                e.summary
            );
            for p in &e.products {
                println!(
                    "    product {} (confidence {:.2}, frames {:?})",
                    p.product_id, p.confidence, p.evidence_frames
                );
            }
        }
    }
    Ok(())
}
