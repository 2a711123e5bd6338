//! The collector's own speed-test endpoints, so a site can measure its path to the centre
//! with no third party: `GET /speedtest/download?bytes=N` streams N bytes, `POST
//! /speedtest/upload` counts what it is sent. Both are bounded.

use super::AppState;
use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use std::time::Instant;

/// The most one request may move either way (1 GiB).
pub const MAX_BYTES: u64 = 1 << 30;
const DEFAULT_BYTES: u64 = 10_000_000;
const CHUNK: usize = 64 * 1024;
static FILLER: [u8; CHUNK] = [0x4e; CHUNK];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/speedtest/download", get(download))
        .route(
            "/speedtest/upload",
            post(upload).layer(DefaultBodyLimit::max(MAX_BYTES as usize)),
        )
}

#[derive(Deserialize)]
struct DownloadQuery {
    bytes: Option<u64>,
}

async fn download(
    query: Result<Query<DownloadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let total = query.bytes.unwrap_or(DEFAULT_BYTES);
    if total > MAX_BYTES {
        return Err(ApiError::invalid(format!(
            "bytes: {total} is more than the {MAX_BYTES} one download may be"
        )));
    }
    let chunks = futures::stream::unfold(total, |left| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(CHUNK as u64) as usize;
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from_static(&FILLER[..n])),
            left - n as u64,
        ))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, total.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

async fn upload(body: Body) -> Result<Json<serde_json::Value>, ApiError> {
    let started = Instant::now();
    let mut stream = body.into_data_stream();
    let mut bytes: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("upload interrupted: {e}")))?;
        bytes += chunk.len() as u64;
    }
    Ok(Json(serde_json::json!({
        "bytes": bytes,
        "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
    })))
}
