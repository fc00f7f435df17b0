//! `AnalysisService`: analyses on the analyzer pool, and live pattern events.

use std::pin::Pin;
use std::sync::Arc;

use crow_actors::{Lagged, Pipeline};
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::{self, Action};
use crate::convert;
use crate::fields::none_if_empty;
use crate::limits::OrgSlots;
use crate::proto::analysis_service_server::AnalysisService;
use crate::proto::{
    Analysis, AnalyzeRequest, AskRequest, AskResponse, GetAnalysisRequest, PatternEvent,
    WatchPatternsRequest,
};

/// Events buffered between a subscription and its gRPC stream.
const STREAM_BUFFER: usize = 16;

/// The `crow.v1.AnalysisService` implementation.
#[derive(Clone)]
pub struct AnalysisApi {
    pipeline: Pipeline,
    closing: watch::Receiver<bool>,
    watchers: Arc<OrgSlots>,
}

impl AnalysisApi {
    /// Serves analyses and pattern events of `pipeline`. When `closing` turns true, open `WatchPatterns`
    /// streams end with UNAVAILABLE, so a graceful server shutdown does not wait for subscribers that
    /// would never leave on their own.
    pub fn new(pipeline: Pipeline, closing: watch::Receiver<bool>) -> AnalysisApi {
        let watchers = OrgSlots::new(
            pipeline.config().limits.max_watchers_per_org,
            "pipeline.limits.max_watchers_per_org",
            "WatchPatterns streams",
        );
        AnalysisApi {
            pipeline,
            closing,
            watchers,
        }
    }
}

#[tonic::async_trait]
impl AnalysisService for AnalysisApi {
    async fn analyze(
        &self,
        request: Request<AnalyzeRequest>,
    ) -> Result<Response<Analysis>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Analyze, &r.organization_id)?;
        let source = convert::source_filter(r.source_type, "source_type")?;
        let record = self
            .pipeline
            .record_services()
            .analyze(
                &r.organization_id,
                convert::optional_ms(r.from_ms),
                convert::optional_ms(r.to_ms),
                source,
                r.wait,
            )
            .await
            .map_err(convert::status)?;
        Ok(Response::new(convert::analysis(&record)))
    }

    async fn ask(&self, request: Request<AskRequest>) -> Result<Response<AskResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Analyze, &r.organization_id)?;
        let max_query = self.pipeline.config().limits.max_query_bytes;
        if r.question.len() > max_query {
            return Err(Status::invalid_argument(format!(
                "question is longer than pipeline.limits.max_query_bytes ({max_query})"
            )));
        }
        let filter = crow_storage::InteractionFilter {
            source: convert::source_filter(r.source_type, "source_type")?,
            query: None,
            from_ms: convert::optional_ms(r.from_ms),
            to_ms: convert::optional_ms(r.to_ms),
        };
        let answer = self
            .pipeline
            .ask_service()
            .ask(&r.organization_id, &r.question, &filter)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(convert::answer(&answer)))
    }

    async fn get_analysis(
        &self,
        request: Request<GetAnalysisRequest>,
    ) -> Result<Response<Analysis>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Read, &r.organization_id)?;
        let record = self
            .pipeline
            .record_services()
            .get_analysis(&r.organization_id, &r.analysis_id)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(convert::analysis(&record)))
    }

    type WatchPatternsStream = Pin<Box<dyn Stream<Item = Result<PatternEvent, Status>> + Send>>;

    async fn watch_patterns(
        &self,
        request: Request<WatchPatternsRequest>,
    ) -> Result<Response<Self::WatchPatternsStream>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Read, &r.organization_id)?;
        let camera = none_if_empty(r.camera_id);
        // Held by the forwarding task: the slot frees when the stream ends, whoever ends it.
        let slot = self.watchers.acquire(&r.organization_id)?;
        let mut subscription = self
            .pipeline
            .record_services()
            .watch_patterns(&r.organization_id, camera.as_deref())
            .map_err(convert::status)?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let mut closing = self.closing.clone();
        tokio::spawn(async move {
            let _slot = slot;
            loop {
                let item = tokio::select! {
                    item = subscription.next() => item,
                    // The client went away.
                    _ = tx.closed() => return,
                    // The guard `wait_for` returns is dropped inside, so the task stays `Send`.
                    _ = async { closing.wait_for(|c| *c).await.map(|_| ()) } => {
                        let _ = tx
                            .send(Err(Status::unavailable(
                                "the server is shutting down; subscribe again later",
                            )))
                            .await;
                        return;
                    }
                };
                match item {
                    Ok(Some(event)) => {
                        if tx.send(Ok(convert::pattern(&event))).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(Lagged(missed)) => {
                        metrics::counter!(crow_actors::metrics_names::PATTERN_SUBSCRIBERS_DROPPED)
                            .increment(1);
                        let _ = tx
                            .send(Err(Status::resource_exhausted(format!(
                                "subscriber too slow: {missed} pattern events were dropped; subscribe again"
                            ))))
                            .await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
