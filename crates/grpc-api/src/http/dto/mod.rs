//! The JSON shapes of the HTTP API (camelCase, as the services crow replaces had them), converted from
//! and to the `crow.v1` messages the gRPC services take and return.
//!
//! ```text
//! interactions.rs  SourceType, Interaction, ListQuery, MeaningMatch, InteractionPage, Summary,
//!                  CreateInteraction, Accepted, InteractionState, InteractionStatus
//! analyses.rs      AnalyzeRequest, AskRequest, Answer (statements, citations), Analysis (facts,
//!                  statements, FactKind, Phrasing)
//! sessions.rs      CreateSession, Session
//! frames.rs        SubmitFrames (FrameJson, ImageFormat), FrameAcks (FrameAck, FrameOutcome)
//! catalog.rs       Product, ProductInput, UpsertProducts, Upserted, ProductPage, Deleted
//! dead_letters.rs  DeadLetter, DeadLetterPage
//! cameras.rs       Point, Zone, Tripwire, Mask, DetectorInput, DetectorTiles, Camera, CameraConfig, CameraPage
//! patterns.rs      PatternEvent (ProductMatch), PatternQuery
//! metrics.rs       MetricsQuery, MetricsGrouping, MetricsFormat, MetricsReport (rows: cameras, lines,
//!                  zones, products)
//! health.rs        Health
//! paging.rs        PageQuery, OrganizationQuery
//! ```
//!
//! Every type is re-exported here: `dto::Name` whatever file holds it.

mod analyses;
mod cameras;
mod catalog;
mod dead_letters;
mod frames;
mod health;
mod interactions;
mod metrics;
mod paging;
mod patterns;
mod sessions;

pub use analyses::*;
pub use cameras::*;
pub use catalog::*;
pub use dead_letters::*;
pub use frames::*;
pub use health::*;
pub use interactions::*;
pub use metrics::*;
pub use paging::*;
pub use patterns::*;
pub use sessions::*;
