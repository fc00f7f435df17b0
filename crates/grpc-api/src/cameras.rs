//! `CameraService`: zones, tripwires and motion masks per camera.

use crow_actors::Pipeline;
use tonic::{Request, Response, Status};

use crate::auth::{self, Action};
use crate::convert;
use crate::fields::{none_if_empty, page_size};
use crate::proto::camera_service_server::CameraService;
use crate::proto::{
    Camera, DeleteCameraRequest, DeleteCameraResponse, GetCameraRequest, ListCamerasRequest,
    ListCamerasResponse,
};

/// The `crow.v1.CameraService` implementation.
#[derive(Clone)]
pub struct CameraApi {
    pipeline: Pipeline,
}

impl CameraApi {
    /// Serves the camera configurations of `pipeline`.
    pub fn new(pipeline: Pipeline) -> CameraApi {
        CameraApi { pipeline }
    }
}

#[tonic::async_trait]
impl CameraService for CameraApi {
    async fn upsert_camera(&self, request: Request<Camera>) -> Result<Response<Camera>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Administer, &r.organization_id)?;
        let stored = self
            .pipeline
            .record_services()
            .upsert_camera(convert::from_camera(r))
            .await
            .map_err(convert::status)?;
        Ok(Response::new(convert::camera(&stored)))
    }

    async fn get_camera(
        &self,
        request: Request<GetCameraRequest>,
    ) -> Result<Response<Camera>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Read, &r.organization_id)?;
        let camera = self
            .pipeline
            .record_services()
            .get_camera(&r.organization_id, &r.camera_id)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(convert::camera(&camera)))
    }

    async fn list_cameras(
        &self,
        request: Request<ListCamerasRequest>,
    ) -> Result<Response<ListCamerasResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Read, &r.organization_id)?;
        let page_size = page_size(r.page_size, &self.pipeline.config().limits)?;
        let (cameras, next) = self
            .pipeline
            .record_services()
            .list_cameras(
                &r.organization_id,
                page_size,
                none_if_empty(r.page_token).as_deref(),
            )
            .await
            .map_err(convert::status)?;
        Ok(Response::new(ListCamerasResponse {
            cameras: cameras.iter().map(convert::camera).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn delete_camera(
        &self,
        request: Request<DeleteCameraRequest>,
    ) -> Result<Response<DeleteCameraResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Administer, &r.organization_id)?;
        let deleted = self
            .pipeline
            .record_services()
            .delete_camera(&r.organization_id, &r.camera_id)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(DeleteCameraResponse { deleted }))
    }
}
