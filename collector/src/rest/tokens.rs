//! `/api/tokens` (admin only): list, create (the token is in this one answer and never again)
//! and revoke operator API tokens.

use super::AppState;
use crate::auth::{check_token_name, generate_token, hash_token, Role};
use crate::error::ApiError;
use crate::storage::tokens::ApiToken;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/tokens", get(list).post(create))
        .route("/api/tokens/{id}", delete(revoke))
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<ApiToken>>, ApiError> {
    Ok(Json(state.store.tokens().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    role: Role,
}

#[derive(Debug, Serialize)]
struct Created {
    #[serde(flatten)]
    token: ApiToken,
    /// Shown once: only its hash is stored.
    secret: String,
}

/// Makes a token; the store keeps only its hash.
pub async fn create_token(
    store: &dyn crate::storage::Store,
    name: &str,
    role: Role,
) -> Result<(ApiToken, String), ApiError> {
    check_token_name(name).map_err(ApiError::invalid)?;
    let secret = generate_token();
    let token = store
        .create_token(name, role, &hash_token(&secret), Utc::now())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                crate::error::ErrorCode::AlreadyExists,
                format!("name: a token named {name:?} exists; revoke it first"),
            )
        })?;
    Ok((token, secret))
}

async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (token, secret) = create_token(state.store.as_ref(), &body.name, body.role).await?;
    tracing::info!(name = %token.name, role = %token.role, "API token created");
    Ok((StatusCode::CREATED, Json(Created { token, secret })))
}

async fn revoke(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::invalid("id: must be a token number"))?;
    if !state.store.revoke_token(id, Utc::now()).await? {
        return Err(ApiError::not_found(format!(
            "token {id} not found or already revoked"
        )));
    }
    state.auth.forget();
    tracing::info!(id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
