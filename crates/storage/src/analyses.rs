//! Analysis requests and results: tree `analyses`, `id` -> [`AnalysisRecord`].

use crate::model::{AnalysisRecord, AnalysisStatus};
use crate::store::{decode, encode, Store};
use crate::Result;

impl Store {
    /// Stores (or replaces) an analysis record.
    pub fn put_analysis(&self, record: &AnalysisRecord) -> Result<()> {
        self.inner
            .analyses
            .insert(record.id.as_bytes(), encode(record))?;
        Ok(())
    }

    /// One analysis.
    pub fn get_analysis(&self, id: &str) -> Result<Option<AnalysisRecord>> {
        match self.inner.analyses.get(id.as_bytes())? {
            Some(v) => decode(id.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// Removes an analysis (one that was refused before it was queued).
    pub fn delete_analysis(&self, id: &str) -> Result<()> {
        self.inner.analyses.remove(id.as_bytes())?;
        Ok(())
    }

    /// Analyses queued or running when the process stopped, oldest first (ids are time-ordered).
    pub fn unfinished_analyses(&self) -> Result<Vec<AnalysisRecord>> {
        let mut out = Vec::new();
        for item in self.inner.analyses.iter() {
            let (k, v) = item?;
            let r: AnalysisRecord = decode(&k, &v)?;
            if matches!(r.status, AnalysisStatus::Queued | AnalysisStatus::Running) {
                out.push(r);
            }
        }
        Ok(out)
    }
}
