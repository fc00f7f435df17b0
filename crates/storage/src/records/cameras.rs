//! [`CameraRecords`]: camera configurations: zones, tripwires and motion masks.

use async_trait::async_trait;

use crate::model::CameraConfig;
use crate::{Result, Store};

/// Camera configurations: zones, tripwires and motion masks. Implemented by sled ([`Store`], each call on a blocking thread) and PostgreSQL
/// ([`PgStore`](crate::PgStore)); part of every [`RecordStore`](super::RecordStore).
#[async_trait]
pub trait CameraRecords: Send + Sync + 'static {
    /// Inserts or replaces a camera's configuration.
    async fn upsert_camera(&self, camera: &CameraConfig) -> Result<()>;

    /// A camera's configuration, if it has one.
    async fn get_camera(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<Option<CameraConfig>>;

    /// Removes a camera's configuration; `false` if it had none.
    async fn delete_camera(&self, organization_id: &str, camera_id: &str) -> Result<bool>;

    /// The organization's camera configurations by camera id, one page at a time.
    async fn list_cameras(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Vec<CameraConfig>, Option<String>)>;
}

#[async_trait]
impl CameraRecords for Store {
    async fn upsert_camera(&self, camera: &CameraConfig) -> Result<()> {
        let camera = camera.clone();
        self.run(move |store| Store::upsert_camera(store, &camera))
            .await
    }

    async fn get_camera(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<Option<CameraConfig>> {
        let organization_id = organization_id.to_owned();
        let camera_id = camera_id.to_owned();
        self.run(move |store| Store::get_camera(store, &organization_id, &camera_id))
            .await
    }

    async fn delete_camera(&self, organization_id: &str, camera_id: &str) -> Result<bool> {
        let organization_id = organization_id.to_owned();
        let camera_id = camera_id.to_owned();
        self.run(move |store| Store::delete_camera(store, &organization_id, &camera_id))
            .await
    }

    async fn list_cameras(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Vec<CameraConfig>, Option<String>)> {
        let organization_id = organization_id.to_owned();
        let page_token = page_token.map(str::to_owned);
        self.run(move |store| {
            Store::list_cameras(store, &organization_id, page_size, page_token.as_deref())
        })
        .await
    }
}
