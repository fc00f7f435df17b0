//! Camera configurations (zones, tripwires, motion masks): tree `cameras`, `org \0 camera` ->
//! [`CameraConfig`].

use crate::keys;
use crate::model::CameraConfig;
use crate::store::{decode, encode, Store};
use crate::Result;

impl Store {
    /// Inserts or replaces a camera's configuration (validate it with
    /// [`validate::camera`](crate::validate::camera) first). Sessions pick it up on their next frame.
    pub fn upsert_camera(&self, camera: &CameraConfig) -> Result<()> {
        self.inner.cameras.insert(
            keys::pair(&camera.organization_id, &camera.camera_id),
            encode(camera),
        )?;
        Ok(())
    }

    /// A camera's configuration, if it has one.
    pub fn get_camera(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<Option<CameraConfig>> {
        let key = keys::pair(organization_id, camera_id);
        match self.inner.cameras.get(&key)? {
            Some(v) => decode(&key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Removes a camera's configuration; `false` if it had none.
    pub fn delete_camera(&self, organization_id: &str, camera_id: &str) -> Result<bool> {
        Ok(self
            .inner
            .cameras
            .remove(keys::pair(organization_id, camera_id))?
            .is_some())
    }

    /// An organization's camera configurations, by camera id, one page at a time.
    pub fn list_cameras(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Vec<CameraConfig>, Option<String>)> {
        self.page_by_id(
            &self.inner.cameras,
            organization_id,
            page_size,
            page_token,
            |c: &CameraConfig| &c.camera_id,
        )
    }
}
