//! The OpenAPI 3.1 document of the HTTP API, generated from the routes' annotations and the JSON
//! types (served at `/openapi.json`; `crow openapi` prints it).

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes;

/// The document's definition.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "crow",
        description = "Customer-interaction records from CCTV streams and web/social events. Every route \
but /api/v1/health and /openapi.json needs `Authorization: Bearer <JWT>`; the organization a request is \
about must be one the token grants. Errors are `{\"error\": {\"code\", \"message\", \"correlationId\"}}`. \
The same operations are served over gRPC on the same port (package crow.v1, with server reflection)."
    ),
    paths(
        routes::interactions::list_interactions,
        routes::interactions::summary,
        routes::metrics::metrics,
        routes::analyses::analyze,
        routes::analyses::ask,
        routes::interactions::create_interaction,
        routes::interactions::get_interaction,
        routes::frames::submit_frames,
        routes::sessions::create_session,
        routes::sessions::get_session,
        routes::sessions::get_org_session,
        routes::sessions::close_session,
        routes::sessions::keyframe,
        routes::catalog::list_products,
        routes::catalog::upsert_products,
        routes::catalog::delete_product,
        routes::dead_letters::list_dead_letters,
        routes::dead_letters::retry_dead_letter,
        routes::analyses::get_analysis,
        routes::patterns::watch_patterns,
        routes::cameras::list_cameras,
        routes::cameras::get_camera,
        routes::cameras::upsert_camera,
        routes::cameras::delete_camera,
        routes::health::health,
    ),
    modifiers(&Bearer),
    tags(
        (name = "interactions", description = "Interaction records, summaries, analyses, dead letters, live patterns"),
        (name = "cctv", description = "Camera frames, sessions and keyframes"),
        (name = "catalog", description = "The product catalog the analyzers match against"),
        (name = "cameras", description = "Zones, tripwires and masks per camera"),
        (name = "system", description = "Health")
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The route that serves the document at `/openapi.json` (no token needed).
pub(super) fn router() -> axum::Router {
    axum::Router::new().route("/openapi.json", axum::routing::get(serve))
}

async fn serve() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json(),
    )
}

/// The document as JSON (built once).
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        // A document built from static annotations; a failure is a defect caught by the tests.
        #[allow(clippy::expect_used)]
        let json = doc
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        json
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn documents_every_route_with_its_errors() {
        let doc: serde_json::Value = serde_json::from_str(super::json()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/api/v1/interactions/organization/{orgId}",
            "/api/v1/interactions/organization/{orgId}/summary",
            "/api/v1/organizations/{orgId}/metrics",
            "/api/v1/interactions/organization/{orgId}/analyze",
            "/api/v1/interactions/create-interaction",
            "/api/v1/cctv/frames",
            "/api/v1/cctv/sessions",
            "/api/v1/cctv/sessions/{sessionId}",
        ] {
            assert!(paths.contains_key(path), "{path} is not documented");
        }
        let list = &paths["/api/v1/interactions/organization/{orgId}"]["get"]["responses"];
        for status in ["200", "400", "401", "403", "404", "429", "500", "503"] {
            assert!(list.get(status).is_some(), "list lacks {status}");
        }
    }
}
