//! crow's integration tests: one binary, real components (tonic server on 127.0.0.1, sled in a temp
//! dir, OpenCV decode of the sample videos from Debian's opencv-doc, copied by `scripts/setup.sh`).

mod common;

mod analysis;
mod auth;
mod cli;
mod crash;
mod dashboard;
mod hostile;
mod http;
mod ingest;
mod interactions;
mod llama;
mod operability;
mod pagination;
mod perception;
mod remote;
mod retention;
mod sessions;
mod shutdown;
mod supervision;
mod tls;
