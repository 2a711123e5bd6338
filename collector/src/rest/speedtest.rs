//! The collector's own speed-test endpoints, so a site can measure its path to the centre
//! with no third party: `GET /speedtest/download?bytes=N` streams N bytes, `POST
//! /speedtest/upload` counts what it is sent. Both need a token (an agent sends its
//! `[speedtest] token_file`), and [`super::speedtest_gate`] caps transfers at once and each
//! token's bytes an hour.

use super::AppState;
use crate::auth::guard::{Caller, Refusal};
use crate::error::{ApiError, ErrorCode};
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The most one request may move either way (1 GiB).
pub const MAX_BYTES: u64 = 1 << 30;
const DEFAULT_BYTES: u64 = 10_000_000;
const CHUNK: usize = 64 * 1024;
/// A download whose client reads nothing for this long is ended (and its slot freed).
const STALL: std::time::Duration = std::time::Duration::from_secs(10);
static FILLER: [u8; CHUNK] = [0x4e; CHUNK];

/// The upload reads its body as a stream (a body limit layer does not apply to that): the
/// handler counts it against [`MAX_BYTES`] itself.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(results))
        .routes(routes!(download))
        .routes(routes!(upload))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ResultsParams {
    /// Only this agent's tests.
    agent: Option<String>,
    /// Start of the window (default: 7 days before `to`); must be before `to`.
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// End of the window, exclusive (default: now).
    to: Option<chrono::DateTime<chrono::Utc>>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    #[param(maximum = 2147483647)]
    offset: Option<u32>,
}

/// Stored speed tests (each direction of each test), newest first: what the agents measured,
/// against which server, how many bytes, and why one failed.
#[utoipa::path(get, path = "/api/speedtests", tag = "devices", params(ResultsParams),
    responses((status = 200, description = "A page of speed tests", body = Vec<crate::storage::SpeedTestRow>)))]
async fn results(
    axum::extract::State(state): axum::extract::State<AppState>,
    params: Result<Query<ResultsParams>, QueryRejection>,
) -> Result<Json<Vec<crate::storage::SpeedTestRow>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (from, to) = super::time_window(params.from, params.to, chrono::Duration::days(7))?;
    let query = crate::storage::SpeedTestQuery {
        agent: params.agent,
        from,
        to,
        limit: super::page_limit(params.limit, 100, 1000)?,
        offset: super::page_offset(params.offset)?,
    };
    Ok(Json(state.store.speed_tests(&query).await?))
}

/// Raw bytes (the document's `string`/`binary`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct RawBytes(Vec<u8>);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DownloadQuery {
    /// Bytes to send, 0 to 1073741824 (default 10000000).
    #[param(minimum = 0, maximum = 1073741824)]
    bytes: Option<u64>,
}

/// Streams `bytes` bytes, for an agent's download test.
#[utoipa::path(get, path = "/speedtest/download", tag = "system", params(DownloadQuery),
    responses(
        (status = 200, description = "The bytes", content_type = "application/octet-stream", body = RawBytes),
        (status = 429, description = "The token's hourly speed-test bytes are spent", body = crate::error::ErrorBody),
        (status = 503, description = "As many speed tests as the collector serves at once are running", body = crate::error::ErrorBody)))]
async fn download(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: Option<Extension<Caller>>,
    query: Result<Query<DownloadQuery>, QueryRejection>,
) -> Result<Response, Refusal> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let total = query.bytes.unwrap_or(DEFAULT_BYTES);
    if total > MAX_BYTES {
        return Err(ApiError::invalid(format!(
            "bytes: {total} is more than the {MAX_BYTES} one download may be"
        ))
        .into());
    }
    let slot = state.speedtest_gate.admit(&who(&caller), total)?;
    // A task feeds the body and holds the slot. It lets go when the last byte is sent, when
    // the client goes away, and when the client stops reading for STALL: a client that asks
    // and never reads cannot keep a slot (and every agent's test) for as long as TCP lives.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let _slot = slot;
        let mut left = total;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            let sent = tokio::time::timeout(STALL, tx.send(Ok(Bytes::from_static(&FILLER[..n]))));
            if !matches!(sent.await, Ok(Ok(()))) {
                return;
            }
            left -= n as u64;
        }
    });
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
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

#[derive(Serialize, ToSchema)]
struct Uploaded {
    bytes: u64,
    duration_ms: f64,
}

/// Counts what it is sent (up to 1 GiB), for an agent's upload test.
#[utoipa::path(post, path = "/speedtest/upload", tag = "system",
    request_body(content = Option<RawBytes>, content_type = "application/octet-stream",
        description = "Any bytes; none is a valid (empty) upload"),
    responses(
        (status = 200, description = "What arrived, and how long it took", body = Uploaded),
        (status = 413, description = "Over 1 GiB"),
        (status = 429, description = "The token's hourly speed-test bytes are spent", body = crate::error::ErrorBody),
        (status = 503, description = "As many speed tests as the collector serves at once are running", body = crate::error::ErrorBody)))]
async fn upload(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Json<Uploaded>, Refusal> {
    let who = who(&caller);
    // A declared length is charged before a byte is read; without one, bytes are charged as
    // they arrive and the upload is cut off once the budget is spent.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        Refusal::from(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("an upload may be at most {MAX_BYTES} bytes"),
        ))
    };
    if declared.is_some_and(|n| n > MAX_BYTES) {
        return Err(too_large());
    }
    let _slot = state.speedtest_gate.admit(&who, declared.unwrap_or(0))?;
    let started = Instant::now();
    let mut stream = body.into_data_stream();
    let mut bytes: u64 = 0;
    // A slow sender is bounded by the request timeout ([http] request_timeout_secs): the
    // handler has not answered while it reads.
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("upload interrupted: {e}")))?;
        bytes += chunk.len() as u64;
        if bytes > MAX_BYTES {
            return Err(too_large());
        }
        if declared.is_none() {
            state.speedtest_gate.charge(&who, chunk.len() as u64)?;
        }
    }
    Ok(Json(Uploaded {
        bytes,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }))
}

/// Whose budget a transfer is charged to: the token's name.
fn who(caller: &Option<Extension<Caller>>) -> String {
    caller
        .as_ref()
        .map_or_else(|| "anonymous".to_string(), |c| c.name.to_string())
}
