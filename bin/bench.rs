//! `crow bench`: ratios measured in one run (see docs/benchmarks.md), one file per benchmark.

mod agent;
mod auth;
mod cluster;
mod describe;
mod ingest;
mod list;
mod perception;
mod scratch;
mod search;
mod sessions;
mod truth;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// `crow agent` against a live RTSP camera: CPU per camera with key-frame-only decoding against
    /// full decoding, the spool's drain rate after an outage against the capture rate, frames captured
    /// against recorded, and bytes per camera-hour of the sending options.
    Agent(agent::AgentBenchArgs),
    /// Ingest throughput over gRPC against a plain OpenCV decode loop.
    Ingest(ingest::IngestBenchArgs),
    /// Vision describe latency and tokens/s, against llama.cpp's own llama-mtmd-cli on the same input.
    Describe(describe::DescribeBenchArgs),
    /// ListInteractions and GetSummary latency with 1,000,000 interactions, against a full scan.
    List(list::ListBenchArgs),
    /// Describer calls per frame at 1 frame/s on footage built from VIDEO (idle and busy stretches, a
    /// blinking sign, an exposure step), with the people gate and with the pixel gate; busy stretches
    /// missed.
    Gate(perception::GateBenchArgs),
    /// Person detector frames/s per core (SSD at 300x300 against HOG on the same frames), and the
    /// ingest ratio with detection on.
    Detector(perception::DetectorBenchArgs),
    /// Whether analysis keeps up: 4 cameras at 1 frame/s through the whole pipeline (detector, gate,
    /// describer, analyzer pool with the text model), camera-seconds processed per wall second.
    Analyzer(perception::AnalyzerBenchArgs),
    /// Distributed mode with real `crow serve` processes over the given NATS and PostgreSQL servers:
    /// records/s through JetStream against the in-process path, and analyze records/s with 2 analyze
    /// nodes against 1.
    Cluster(cluster::ClusterBenchArgs),
    /// Search by meaning against word search on the labelled set (recall@10, precision@10, negatives),
    /// the similarity floor calibrated on it, and the vector index with 1,000,000 records against a
    /// brute-force scan.
    Search(search::SearchBenchArgs),
    /// crow's counts against footage with exact truth at several scales and crowd sizes: detector
    /// recall by person height and visibility, precision, identity switches, door in/out, display
    /// visits, dwell per visit, occupancy per frame, detector calls per frame.
    Truth(truth::TruthBenchArgs),
    /// Resident memory per open camera session with 16 and 64 cameras streaming at once through one
    /// pipeline (detector on).
    Sessions(sessions::SessionsBenchArgs),
}

pub(crate) async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Agent(args) => agent::run(args).await,
        BenchCommand::Ingest(args) => ingest::ingest(args).await,
        BenchCommand::Describe(args) => {
            tokio::task::spawn_blocking(move || describe::describe(args)).await?
        }
        BenchCommand::List(args) => list::run(args).await,
        BenchCommand::Gate(args) => perception::gate(args).await,
        BenchCommand::Detector(args) => perception::detector(args).await,
        BenchCommand::Analyzer(args) => perception::analyzer(args).await,
        BenchCommand::Cluster(args) => cluster::run(args).await,
        BenchCommand::Search(args) => search::run(args).await,
        BenchCommand::Truth(args) => truth::run(args).await,
        BenchCommand::Sessions(args) => sessions::run(args).await,
    }
}
