//! Query parameters shared by several routes: paging, and the organization of a route whose path
//! does not name one.

use serde::Deserialize;
use utoipa::IntoParams;

/// Paging of the list routes.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1..=500; default 50.
    #[param(minimum = 0, maximum = 500)]
    pub page_size: Option<u32>,
    /// `nextPageToken` of the previous page.
    pub page_token: Option<String>,
}

/// Query naming the organization of a route whose path does not (`GET /api/v1/cctv/sessions/{id}`);
/// the `X-Organization-Id` header or a token for one organization may name it instead.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OrganizationQuery {
    pub organization_id: Option<String>,
}
