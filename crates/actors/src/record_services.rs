//! [`RecordServices`]: what callers do with the records — `CreateInteraction` through the outbox, dead
//! letters, product catalogs, camera configurations, analyses and pattern subscriptions. Every method
//! takes the caller's organization and treats another organization's record exactly like a missing one.

use std::sync::Arc;
use std::time::Duration;

use crow_inference::text::TextGenerator;

use crow_storage::{
    now_ms, AnalysisRecord, AnalysisStatus, CameraConfig, DeadLetterPage, Enqueued,
    InteractionState, Product, ProductPage, Records, SourceType, Store,
};
use ractor::rpc::CallResult;
use tokio::sync::watch;

use crate::analysis_pool::AnalysisMsg;
use crate::error::validate_id;
use crate::events::{validate, CreateInteraction};
use crate::patterns::{PatternHub, PatternSubscription};
use crate::processor::ProcessorMsg;
use crate::supervisor::ChildLinks;
use crate::{PipelineConfig, PipelineError};

/// Most products one upsert may carry.
pub const MAX_UPSERT_PRODUCTS: usize = 500;

fn invalid(m: impl Into<String>) -> PipelineError {
    PipelineError::InvalidArgument(m.into())
}

fn check_len(what: &str, value: &str, min: usize, max: usize) -> Result<(), PipelineError> {
    let n = value.chars().count();
    if n < min {
        return Err(invalid(format!("{what} is required")));
    }
    if n > max {
        return Err(invalid(format!("{what} is longer than {max} characters")));
    }
    Ok(())
}

/// Checks the organization and the id cursor of a paged listing.
fn validate_page(organization_id: &str, page_token: Option<&str>) -> Result<(), PipelineError> {
    validate_id("organization_id", organization_id)?;
    match page_token {
        Some(t) => validate_id("page_token", t),
        None => Ok(()),
    }
}

/// A product as a caller describes it (the server sets the organization and the time).
#[derive(Debug, Clone, Default)]
pub struct ProductInput {
    /// Catalog id: 1..=128 characters of `[A-Za-z0-9._-]`.
    pub id: String,
    /// 1..=200 characters.
    pub name: String,
    /// At most 100 characters.
    pub category: String,
    /// At most 2000 characters.
    pub description: String,
    /// At most 16 tags of at most 40 characters.
    pub tags: Vec<String>,
    /// Other names it goes by: at most 16 of 1..=80 characters.
    pub aliases: Vec<String>,
}

/// The record services of a running pipeline. Cheap to clone.
#[derive(Clone)]
pub struct RecordServices {
    pub(crate) records: Records,
    /// The node's sled, where sessions are looked up.
    pub(crate) store: Store,
    pub(crate) config: Arc<PipelineConfig>,
    pub(crate) model: Option<Arc<dyn TextGenerator>>,
    pub(crate) links: ChildLinks,
    /// Bumped whenever an analysis finishes, so waiters re-read their record.
    pub(crate) analysis_finished: Arc<watch::Sender<u64>>,
    pub(crate) patterns: PatternHub,
    #[cfg(feature = "fault-injection")]
    pub(crate) processing_fault: crate::processor::FaultHook,
}

impl RecordServices {
    /// Validates an event and stores it durably in the outbox (synced) before returning its id; the
    /// processor turns it into an interaction shortly after. A repeated idempotency key returns the first
    /// request's id with `duplicate: true`.
    pub async fn create_interaction(
        &self,
        request: CreateInteraction,
    ) -> Result<Enqueued, PipelineError> {
        let record = validate(request, &self.config.limits)?;
        if let Some(session_id) = &record.session_id {
            let id = session_id.clone();
            match self.store.run(move |s| s.get_session(&id)).await? {
                Some(s) if s.organization_id == record.organization_id => {}
                _ => return Err(PipelineError::SessionNotFound(session_id.clone())),
            }
        }
        let enqueued = self.records.enqueue_interaction(&record).await?;
        self.records.sync().await?;
        if !enqueued.duplicate {
            metrics::counter!(crate::metrics_names::OUTBOX_ACCEPTED).increment(1);
            if let Err(e) = self.links.processor.cast(ProcessorMsg::Enqueued) {
                tracing::warn!(error = %e, "the event waits in the outbox");
            }
        }
        Ok(enqueued)
    }

    /// Where one of the organization's interactions stands: stored, pending or dead.
    pub async fn interaction_state(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<InteractionState, PipelineError> {
        validate_id("organization_id", organization_id)?;
        validate_id("id", id)?;
        self.records
            .interaction_state(organization_id, id)
            .await?
            .ok_or(PipelineError::NotFound("interaction"))
    }

    /// The organization's dead letters, oldest first.
    pub async fn list_dead_letters(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<DeadLetterPage, PipelineError> {
        validate_page(organization_id, page_token)?;
        Ok(self
            .records
            .list_dead_letters(organization_id, page_size, page_token)
            .await?)
    }

    /// Puts a dead letter back into the outbox with its attempts reset.
    pub async fn retry_dead_letter(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Enqueued, PipelineError> {
        validate_id("organization_id", organization_id)?;
        validate_id("id", id)?;
        let entry = self
            .records
            .retry_dead_letter(organization_id, id)
            .await?
            .ok_or(PipelineError::NotFound("dead letter"))?;
        self.records.sync().await?;
        if let Err(e) = self.links.processor.cast(ProcessorMsg::Enqueued) {
            tracing::warn!(error = %e, "the event waits in the outbox");
        }
        Ok(Enqueued {
            id: entry.record.id,
            duplicate: false,
        })
    }

    /// Inserts or replaces products of the organization's catalog (1..=500 at once, atomically).
    pub async fn upsert_products(
        &self,
        organization_id: &str,
        products: Vec<ProductInput>,
    ) -> Result<usize, PipelineError> {
        validate_id("organization_id", organization_id)?;
        if products.is_empty() || products.len() > MAX_UPSERT_PRODUCTS {
            return Err(invalid(format!(
                "products must hold 1 to {MAX_UPSERT_PRODUCTS} products"
            )));
        }
        let now = now_ms();
        let mut out: Vec<Product> = Vec::with_capacity(products.len());
        for p in products {
            validate_id("products[].id", &p.id)?;
            check_len("products[].name", p.name.trim(), 1, 200)?;
            check_len("products[].category", &p.category, 0, 100)?;
            check_len("products[].description", &p.description, 0, 2_000)?;
            if p.tags.len() > 16 {
                return Err(invalid("products[].tags has more than 16 tags"));
            }
            for t in &p.tags {
                check_len("products[].tags[]", t, 1, 40)?;
            }
            if p.aliases.len() > 16 {
                return Err(invalid("products[].aliases has more than 16 aliases"));
            }
            for a in &p.aliases {
                check_len("products[].aliases[]", a.trim(), 1, 80)?;
            }
            if out.iter().any(|x| x.id == p.id) {
                return Err(invalid(format!("product id {} appears twice", p.id)));
            }
            out.push(Product {
                id: p.id,
                organization_id: organization_id.to_owned(),
                name: p.name.trim().to_owned(),
                category: p.category,
                description: p.description,
                tags: p.tags,
                aliases: p.aliases.iter().map(|a| a.trim().to_owned()).collect(),
                updated_at_ms: now,
            });
        }
        self.records.upsert_products(&out).await?;
        Ok(out.len())
    }

    /// The organization's products, by id.
    pub async fn list_products(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<ProductPage, PipelineError> {
        validate_page(organization_id, page_token)?;
        Ok(self
            .records
            .list_products(organization_id, page_size, page_token)
            .await?)
    }

    /// Removes a product; `false` if there was none.
    pub async fn delete_product(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<bool, PipelineError> {
        validate_id("organization_id", organization_id)?;
        validate_id("product_id", id)?;
        Ok(self.records.delete_product(organization_id, id).await?)
    }

    /// Inserts or replaces a camera's zones, tripwires and motion masks (checked: identifiers, 0..1
    /// coordinates, polygon sizes, unique ids). The camera's session uses them from its next frame on,
    /// within a second.
    pub async fn upsert_camera(
        &self,
        mut camera: CameraConfig,
    ) -> Result<CameraConfig, PipelineError> {
        crow_storage::validate::camera(&camera)?;
        camera.updated_at_ms = now_ms();
        self.records.upsert_camera(&camera).await?;
        Ok(camera)
    }

    /// A camera's configuration; `NotFound` when it has none.
    pub async fn get_camera(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<CameraConfig, PipelineError> {
        validate_id("organization_id", organization_id)?;
        validate_id("camera_id", camera_id)?;
        self.records
            .get_camera(organization_id, camera_id)
            .await?
            .ok_or(PipelineError::NotFound("camera configuration"))
    }

    /// An organization's camera configurations, by camera id.
    pub async fn list_cameras(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Vec<CameraConfig>, Option<String>), PipelineError> {
        validate_page(organization_id, page_token)?;
        Ok(self
            .records
            .list_cameras(organization_id, page_size, page_token)
            .await?)
    }

    /// Removes a camera's configuration; `false` if there was none.
    pub async fn delete_camera(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<bool, PipelineError> {
        validate_id("organization_id", organization_id)?;
        validate_id("camera_id", camera_id)?;
        Ok(self
            .records
            .delete_camera(organization_id, camera_id)
            .await?)
    }

    /// Queues an analysis of the organization's interactions in `[from_ms, to_ms)` (optionally one
    /// source) and, with `wait`, waits for it to finish. Fails with `ResourceExhausted` when every slot
    /// is busy and the queue is full. Without a text model the facts are worded by templates.
    pub async fn analyze(
        &self,
        organization_id: &str,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        source: Option<SourceType>,
        wait: bool,
    ) -> Result<AnalysisRecord, PipelineError> {
        validate_id("organization_id", organization_id)?;
        if let (Some(f), Some(t)) = (from_ms, to_ms) {
            if f >= t {
                return Err(invalid("the time range is empty: from must be before to"));
            }
        }
        // Years 1 to 9999: what RFC 3339 can write, and every calendar the metrics use.
        const EARLIEST_MS: i64 = -62_135_596_800_000;
        const LATEST_MS: i64 = 253_402_300_799_999;
        if [from_ms, to_ms]
            .into_iter()
            .flatten()
            .any(|t| !(EARLIEST_MS..=LATEST_MS).contains(&t))
        {
            return Err(invalid(
                "from and to must lie between the years 1 and 9999 (ms since the Unix epoch)",
            ));
        }
        let record = AnalysisRecord {
            id: uuid::Uuid::now_v7().to_string(),
            organization_id: organization_id.to_owned(),
            from_ms,
            to_ms,
            source,
            status: AnalysisStatus::Queued,
            stats: Default::default(),
            records_used: 0,
            result: None,
            error: None,
            created_at_ms: now_ms(),
            started_at_ms: None,
            finished_at_ms: None,
        };
        self.records.put_analysis(&record).await?;
        let mut finished = self.analysis_finished.subscribe();
        let pool = self
            .links
            .analysis
            .get()
            .map_err(|e| PipelineError::Unavailable(e.to_string()))?;
        let submitted = pool
            .call(
                |reply| AnalysisMsg::Submit {
                    record: Box::new(record.clone()),
                    reply,
                },
                Some(Duration::from_secs(10)),
            )
            .await;
        match submitted {
            Ok(CallResult::Success(result)) => result?,
            _ => {
                return Err(PipelineError::Unavailable(
                    "the analysis pool is not answering".into(),
                ))
            }
        }
        loop {
            let current = self
                .records
                .get_analysis(&record.id)
                .await?
                .ok_or(PipelineError::NotFound("analysis"))?;
            let finished_now = matches!(
                current.status,
                AnalysisStatus::Done | AnalysisStatus::Failed
            );
            if !wait || finished_now {
                return Ok(current);
            }
            if finished.changed().await.is_err() {
                return Ok(current);
            }
        }
    }

    /// One of the organization's analyses.
    pub async fn get_analysis(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<AnalysisRecord, PipelineError> {
        validate_id("organization_id", organization_id)?;
        validate_id("analysis_id", id)?;
        match self.records.get_analysis(id).await? {
            Some(a) if a.organization_id == organization_id => Ok(a),
            _ => Err(PipelineError::NotFound("analysis")),
        }
    }

    /// Subscribes to the organization's pattern events (optionally one camera's) from now on.
    pub fn watch_patterns(
        &self,
        organization_id: &str,
        camera_id: Option<&str>,
    ) -> Result<PatternSubscription, PipelineError> {
        validate_id("organization_id", organization_id)?;
        if let Some(c) = camera_id {
            validate_id("camera_id", c)?;
        }
        Ok(self.patterns.subscribe(organization_id, camera_id))
    }

    /// Whether a text model is loaded (product matching by model, `Analyze`).
    pub fn has_text_model(&self) -> bool {
        self.model.is_some()
    }

    /// Fault injection for tests: from now on, events whose summary contains `marker` fail processing
    /// (`None` turns it off).
    #[cfg(feature = "fault-injection")]
    pub fn inject_processing_failure(&self, marker: Option<&str>) {
        if let Ok(mut m) = self.processing_fault.lock() {
            *m = marker.map(str::to_owned);
        }
    }
}
