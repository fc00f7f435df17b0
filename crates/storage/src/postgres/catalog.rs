//! [`CatalogRecords`] in PostgreSQL: product catalogs.

use super::*;

#[async_trait]
impl CatalogRecords for PgStore {
    async fn upsert_products(&self, products: &[Product]) -> Result<()> {
        let orgs: Vec<&str> = products
            .iter()
            .map(|p| p.organization_id.as_str())
            .collect();
        let ids: Vec<&str> = products.iter().map(|p| p.id.as_str()).collect();
        let values: Vec<String> = products
            .iter()
            .map(|p| String::from_utf8(encode(p)).unwrap_or_default())
            .collect();
        // Within one statement a key may be written once: the last occurrence wins, as in a sled batch.
        sqlx::query(
            "INSERT INTO products (organization_id, id, product)
             SELECT DISTINCT ON (org, id) org, id, p::json
             FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(org, id, p, n)
             ORDER BY org, id, n DESC
             ON CONFLICT (organization_id, id) DO UPDATE SET product = EXCLUDED.product",
        )
        .bind(&orgs)
        .bind(&ids)
        .bind(&values)
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    async fn delete_product(&self, organization_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM products WHERE organization_id = $1 AND id = $2")
            .bind(organization_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(pg_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_products(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<ProductPage> {
        let (products, next_page_token) = self
            .page_by(
                "SELECT product::text AS value FROM products
                 WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                organization_id,
                page_size,
                page_token,
                |p: &Product| &p.id,
            )
            .await?;
        Ok(ProductPage {
            products,
            next_page_token,
        })
    }

    async fn catalog(&self, organization_id: &str, limit: usize) -> Result<Vec<Product>> {
        let rows = sqlx::query(
            "SELECT product::text AS value FROM products WHERE organization_id = $1
             ORDER BY id LIMIT $2",
        )
        .bind(organization_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        rows.iter().map(|r| column(r, "value")).collect()
    }
}
