//! crow embedded in another program: no server, no gRPC. Starts the pipeline on a temporary database,
//! feeds it a video, and prints the interaction records it stored.
//!
//! ```sh
//! cargo run --example embedded -- examples/data/vtest.avi
//! ```

use crow::{Crow, PipelineConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let video = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/data/vtest.avi".to_owned());
    let crow = Crow::builder()
        .temporary()
        .pipeline_config(PipelineConfig {
            batch_size: 5,
            ..PipelineConfig::default()
        })
        .build()
        .await?;

    // 1 frame per second of footage; the session is closed at the end, flushing the last batch.
    let report =
        crow::ingest::ingest_media(crow.pipeline(), &video, "my-store", "aisle-3", Some(1.0))
            .await?;
    println!(
        "{video}: {} frames ({} accepted, {} duplicates, {} rejected) in session(s) {:?}",
        report.frames_sent, report.accepted, report.skipped, report.rejected, report.session_ids
    );

    let mut token = None;
    loop {
        let page = crow
            .records()
            .list_interactions("my-store", &Default::default(), 50, token.as_deref())
            .await?;
        for i in &page.interactions {
            println!(
                "[{}] {:.2} {:?}\n  {}",
                i.timestamp_ms, i.confidence, i.tags, i.summary
            );
        }
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    let summary = crow.records().summary("my-store").await?;
    println!("total {} (cctv {})", summary.total(), summary.cctv);
    crow.shutdown().await;
    Ok(())
}
