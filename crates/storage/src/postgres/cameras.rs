//! [`CameraRecords`] in PostgreSQL: camera configurations.

use super::*;

#[async_trait]
impl CameraRecords for PgStore {
    async fn upsert_camera(&self, camera: &CameraConfig) -> Result<()> {
        sqlx::query(
            "INSERT INTO cameras (organization_id, camera_id, camera) VALUES ($1, $2, $3::json)
             ON CONFLICT (organization_id, camera_id) DO UPDATE SET camera = EXCLUDED.camera",
        )
        .bind(&camera.organization_id)
        .bind(&camera.camera_id)
        .bind(String::from_utf8(encode(camera)).unwrap_or_default())
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    async fn get_camera(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<Option<CameraConfig>> {
        let camera: Option<String> = sqlx::query_scalar(
            "SELECT camera::text FROM cameras WHERE organization_id = $1 AND camera_id = $2",
        )
        .bind(organization_id)
        .bind(camera_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_err)?;
        camera.map(|c| decode_json("cameras", &c)).transpose()
    }

    async fn delete_camera(&self, organization_id: &str, camera_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM cameras WHERE organization_id = $1 AND camera_id = $2")
            .bind(organization_id)
            .bind(camera_id)
            .execute(&self.pool)
            .await
            .map_err(pg_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_cameras(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Vec<CameraConfig>, Option<String>)> {
        self.page_by(
            "SELECT camera::text AS value FROM cameras
             WHERE organization_id = $1 AND camera_id > $2 ORDER BY camera_id LIMIT $3",
            organization_id,
            page_size,
            page_token,
            |c: &CameraConfig| &c.camera_id,
        )
        .await
    }
}
