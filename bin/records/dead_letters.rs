//! `crow dead-letters`: list and retry events whose processing failed on every attempt.

use anyhow::Result;
use clap::Subcommand;
use crow::proto::{ListDeadLettersRequest, RetryDeadLetterRequest};

use crate::ServerArg;

use super::common::*;

#[derive(Subcommand)]
pub(crate) enum DeadLettersCommand {
    /// List dead letters, oldest first.
    List {
        /// Organization id.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Put a dead letter back into the outbox.
    Retry {
        /// Interaction id.
        id: String,
        /// Organization id.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

pub(crate) async fn dead_letters(cmd: DeadLettersCommand) -> Result<()> {
    match cmd {
        DeadLettersCommand::List { org, server } => {
            let mut client = interaction_client(&server).await?;
            let mut token = String::new();
            let mut n = 0;
            loop {
                let page = client
                    .list_dead_letters(ListDeadLettersRequest {
                        organization_id: org.clone(),
                        page_size: 500,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                for d in &page.dead_letters {
                    n += 1;
                    println!(
                        "{}  {} {}  attempts {}  dead since {}\n    error: {}\n    data: {}",
                        d.id,
                        source_name(d.source_type),
                        format_ms(d.timestamp_ms),
                        d.attempts,
                        format_ms(d.dead_at_ms),
                        d.last_error,
                        d.data_json
                    );
                }
                token = page.next_page_token;
                if token.is_empty() {
                    break;
                }
            }
            if n == 0 {
                println!("no dead letters for organization {org}");
            }
            Ok(())
        }
        DeadLettersCommand::Retry { id, org, server } => {
            let mut client = interaction_client(&server).await?;
            let r = client
                .retry_dead_letter(RetryDeadLetterRequest {
                    organization_id: org,
                    id,
                })
                .await?
                .into_inner();
            println!("{} is back in the outbox", r.id);
            Ok(())
        }
    }
}
