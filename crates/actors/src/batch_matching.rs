//! Which catalog products a batch has evidence for: dwell in zones mapped to them, their names in the
//! descriptions, description spans that mean them, and text-model proposals that crow verifies
//! ([`crate::catalog_match`] holds the rules).

use std::collections::BTreeMap;
use std::sync::Arc;

use crow_inference::text::TextGenerator;
use crow_storage::{BatchRecord, Records};
use ractor::ActorProcessingErr;

use crate::catalog_match::{
    dwell_evidence, for_model, meaning_evidence, named_candidates, named_evidence,
    verify_proposals, Findings, ProductFinding, RefusedProposal,
};
use crate::metrics_names as m;
use crate::product_meaning::ProductMatcher;

/// Largest catalog the analyzer reads per batch.
const CATALOG_LIMIT: usize = 10_000;

/// Products found in a batch and how.
pub(crate) struct Matching {
    pub(crate) findings: Vec<ProductFinding>,
    pub(crate) refused: Vec<RefusedProposal>,
    /// What the text model did: "proposed", "not needed: ...", "skipped: backlog", "failed", ...
    pub(crate) model: String,
    pub(crate) candidates: usize,
    /// Catalog names of the products the batch's events and findings name, by id.
    pub(crate) names: BTreeMap<String, String>,
}

/// The products of `batch` in its organization's catalog that crow has evidence for. The text model
/// (when there is one and `skip_model` is false) is asked only about the `catalog_top_k` products the
/// descriptions name or mean.
pub(crate) async fn match_products(
    records: &Records,
    model: Option<&Arc<dyn TextGenerator>>,
    meaning: Option<&ProductMatcher>,
    catalog_top_k: usize,
    batch: &BatchRecord,
    skip_model: bool,
) -> Result<Matching, ActorProcessingErr> {
    let catalog = records
        .catalog(&batch.organization_id, CATALOG_LIMIT)
        .await?;
    let mut findings = Findings::default();
    if catalog.is_empty() {
        return Ok(Matching {
            findings: Vec::new(),
            refused: Vec::new(),
            model: "not needed: the organization has no catalog".into(),
            candidates: 0,
            names: BTreeMap::new(),
        });
    }
    dwell_evidence(&mut findings, &catalog, &batch.events);
    let mut picked = named_candidates(&catalog, &batch.frames, catalog_top_k.max(1));
    named_evidence(&mut findings, &picked, &batch.frames);
    let meant = match meaning {
        Some(matcher) => {
            let texts: Vec<&str> = batch.frames.iter().map(|f| f.text.as_str()).collect();
            match matcher.match_descriptions(&catalog, &texts).await {
                Ok(meant) => meant,
                Err(e) => {
                    tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "product matching by meaning failed; matched by words only");
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    };
    meaning_evidence(&mut findings, &meant, &batch.frames);
    // The model also sees the products a span means (a quote holding that span names them).
    for m in &meant {
        if picked.len() < catalog_top_k.max(1) && !picked.iter().any(|p| p.id == m.product_id) {
            if let Some(p) = catalog.iter().find(|p| p.id == m.product_id) {
                picked.push(p);
            }
        }
    }
    let mut refused = Vec::new();
    let model = match model {
        _ if picked.is_empty() => "not needed: no description names a catalog product".to_owned(),
        None => "unavailable: no text model loaded".to_owned(),
        Some(_) if skip_model => {
            metrics::counter!(m::ANALYZER_MODEL_SKIPPED).increment(1);
            "skipped: backlog".to_owned()
        }
        Some(model) => {
            let model = Arc::clone(model);
            let for_llm: Vec<_> = picked.iter().map(|p| for_model(p)).collect();
            let observations: Vec<(u64, String)> = batch
                .frames
                .iter()
                .map(|f| (f.frame_index, f.text.clone()))
                .collect();
            match tokio::task::spawn_blocking(move || model.match_products(&observations, &for_llm))
                .await?
            {
                Ok((answer, _)) => {
                    refused = verify_proposals(
                        &mut findings,
                        &picked,
                        &batch.frames,
                        &answer.proposals,
                        &meant,
                    );
                    format!(
                        "proposed {} product(s), {} refused by the check",
                        answer.proposals.len(),
                        refused.len()
                    )
                }
                Err(e) => {
                    tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "product matching by model failed; evidence from measurements only");
                    "failed: matched from measurements only".to_owned()
                }
            }
        }
    };
    let findings = findings.into_findings();
    let named: std::collections::BTreeSet<&str> = batch
        .events
        .iter()
        .flat_map(|e| e.product_ids.iter().map(String::as_str))
        .chain(findings.iter().map(|f| f.product_id.as_str()))
        .collect();
    let names = catalog
        .iter()
        .filter(|p| named.contains(p.id.as_str()))
        .map(|p| (p.id.clone(), p.name.clone()))
        .collect();
    Ok(Matching {
        findings,
        refused,
        model,
        candidates: picked.len(),
        names,
    })
}
