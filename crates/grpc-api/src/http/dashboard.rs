//! The web dashboard: three static files built into the binary (nothing is fetched from elsewhere),
//! served without a token; the page asks for one and sends it with every API call it makes.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::HttpApi;

const INDEX: &str = include_str!("../../assets/dashboard/index.html");
const APP: &str = include_str!("../../assets/dashboard/app.js");
const STYLE: &str = include_str!("../../assets/dashboard/style.css");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Only crow's own scripts, styles and API; images from blob URLs of fetched keyframes.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'",
            ),
        ],
        body,
    )
}

/// `/`, `/dashboard/app.js`, `/dashboard/style.css`.
pub(super) fn router() -> Router<HttpApi> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP) }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}
