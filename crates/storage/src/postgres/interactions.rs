//! [`InteractionRecords`] in PostgreSQL: interaction records and their per-organization counts.

use super::*;

#[async_trait]
impl InteractionRecords for PgStore {
    async fn insert_interaction(&self, interaction: &Interaction) -> Result<bool> {
        Ok(self
            .insert_interactions(std::slice::from_ref(interaction))
            .await?
            == 1)
    }

    async fn insert_interactions(&self, interactions: &[Interaction]) -> Result<usize> {
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        let inserted = insert_rows(&mut tx, interactions).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(inserted as usize)
    }

    async fn get_interaction(&self, id: &str) -> Result<Option<Interaction>> {
        let row = sqlx::query("SELECT record::text AS record FROM interactions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg_err)?;
        row.map(|r| column(&r, "record")).transpose()
    }

    async fn list_interactions(
        &self,
        organization_id: &str,
        filter: &InteractionFilter,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<InteractionPage> {
        let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        let words = checked_words(filter)?;
        let after = match page_token {
            Some(token) => {
                let position = cursor_position(organization_id, token)?;
                let position =
                    keys::parse_position(&position).ok_or(StorageError::InvalidPageToken)?;
                Some((position.0, position.1.to_owned()))
            }
            None => None,
        };
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT record::text AS record FROM interactions WHERE organization_id = ",
        );
        q.push_bind(organization_id);
        if let Some(source) = filter.source {
            q.push(" AND source_type = ").push_bind(source.as_str());
        }
        if !words.is_empty() {
            q.push(" AND words @> ").push_bind(words);
        }
        // timestamp_ms < to  <=>  newest_first > -to;  timestamp_ms >= from  <=>  newest_first <= -from.
        if let Some(to) = filter.to_ms {
            q.push(" AND newest_first > ")
                .push_bind(to.saturating_neg());
        }
        if let Some(from) = filter.from_ms {
            q.push(" AND newest_first <= ")
                .push_bind(from.saturating_neg());
        }
        if let Some((ts, id)) = after {
            q.push(" AND (newest_first, id) > (")
                .push_bind(ts.saturating_neg())
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        q.push(" ORDER BY newest_first, id LIMIT ")
            .push_bind(page_size as i64 + 1);
        let rows = q.build().fetch_all(&self.pool).await.map_err(pg_err)?;
        let mut page = InteractionPage::default();
        for row in rows.iter().take(page_size) {
            page.interactions.push(column(row, "record")?);
        }
        if rows.len() > page_size {
            page.next_page_token = page
                .interactions
                .last()
                .map(|i| page_cursor(organization_id, i.timestamp_ms, &i.id));
        }
        Ok(page)
    }

    async fn summary(&self, organization_id: &str) -> Result<Summary> {
        let rows =
            sqlx::query("SELECT source_type, n FROM interaction_counts WHERE organization_id = $1")
                .bind(organization_id)
                .fetch_all(&self.pool)
                .await
                .map_err(pg_err)?;
        let mut summary = Summary::default();
        for row in rows {
            let source: String = row.try_get("source_type").map_err(pg_err)?;
            let n = row.try_get::<i64, _>("n").map_err(pg_err)? as u64;
            match source.as_str() {
                "web" => summary.web = n,
                "cctv" => summary.cctv = n,
                "social" => summary.social = n,
                other => {
                    return Err(StorageError::corrupt(
                        other.as_bytes(),
                        "unknown source in interaction_counts",
                    ))
                }
            }
        }
        Ok(summary)
    }
}
