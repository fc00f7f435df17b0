//! crow's integration tests: one binary, real components (tonic server on 127.0.0.1, sled in a temp
//! dir, OpenCV decode of the sample videos from Debian's opencv-doc, copied by `scripts/setup.sh`).
// Tests unwrap, sleep and wait as they like; clippy.toml's rules are for product code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

mod agent;
mod analysis;
mod analysis_facts;
mod ask_quantities;
mod auth;
mod balancer;
mod chaos;
mod cli;
mod cluster;
mod cluster_faults;
mod crash;
mod dashboard;
mod docs;
mod embed;
mod hostile;
mod http;
mod ingest;
mod interactions;
mod layout;
mod llama;
mod metrics;
mod nats;
mod operability;
mod pagination;
mod perception;
mod pg;
mod pg_outage;
mod record_store;
mod remote;
mod retention;
mod runbook;
mod search;
mod sessions;
mod shutdown;
mod supervision;
mod tls;
