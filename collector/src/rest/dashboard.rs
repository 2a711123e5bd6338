//! The web dashboard at `/`: one page, a stylesheet and a script, compiled into the binary (no
//! files to install, no CDN). The page asks for an API token and reads everything through the
//! same REST API and `/ws` as any client, so it can do only what its token may.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

/// Strict: only this origin's script, style and connections (the WebSocket included).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(script))
        .routes(routes!(style))
}

/// The dashboard's page (it asks for a token).
#[utoipa::path(get, path = "/", tag = "system",
    responses((status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String)))]
async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
}

/// The dashboard's script.
#[utoipa::path(get, path = "/assets/app.js", tag = "system",
    responses((status = 200, description = "The script", content_type = "text/javascript; charset=utf-8", body = String)))]
async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
}

/// The dashboard's stylesheet.
#[utoipa::path(get, path = "/assets/app.css", tag = "system",
    responses((status = 200, description = "The stylesheet", content_type = "text/css; charset=utf-8", body = String)))]
async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE,
    )
}
