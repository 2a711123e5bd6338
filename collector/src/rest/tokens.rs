//! `/api/tokens` (admin only): list, create (the token is in this one answer and never again)
//! and revoke operator API tokens.

use super::AppState;
use crate::auth::guard::Caller;
use crate::auth::{check_token_name, generate_token, hash_token, Role};
use crate::error::ErrorBody;
use crate::error::{ApiError, ErrorCode};
use crate::rest::input::JsonBody;
use crate::storage::tokens::ApiToken;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// Every token, revoked ones included (never the secrets).
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses((status = 200, description = "The tokens", body = Vec<ApiToken>)))]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<ApiToken>>, ApiError> {
    Ok(Json(state.store.tokens().await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// 1 to 64 letters, digits, `.`, `_` or `-`; unique among unrevoked tokens.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    name: String,
    role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
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

/// Makes a token. The secret is in this answer only; the collector keeps its hash.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = CreateBody,
    responses(
        (status = 201, description = "The token and its secret", body = Created),
        (status = 409, description = "An unrevoked token has this name", body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let (token, secret) = create_token(state.store.as_ref(), &body.name, body.role).await?;
    tracing::info!(name = %token.name, role = %token.role, "API token created");
    Ok((StatusCode::CREATED, Json(Created { token, secret })))
}

/// Revokes a token; it stops working on every collector within 5 seconds. A token cannot
/// revoke itself (so an admin cannot lock themselves out by mistake): use another admin token,
/// or `netwarden-collector token revoke` on the collector's host.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token, or revoked already", body = ErrorBody),
        (status = 409, description = "This is the token making the request", body = ErrorBody)))]
async fn revoke(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::invalid("id: must be a token number"))?;
    if let Some(digest) = caller.as_ref().and_then(|Extension(c)| c.token_hash) {
        let own = state.store.token_by_hash(&digest.hex()).await?;
        if own.is_some_and(|t| t.id == id) {
            return Err(ApiError::new(
                ErrorCode::AlreadyExists,
                format!(
                    "id: token {id} is the one making this request; revoke it with another \
                     admin token or `netwarden-collector token revoke`"
                ),
            ));
        }
    }
    if !state.store.revoke_token(id, Utc::now()).await? {
        return Err(ApiError::not_found(format!(
            "token {id} not found or already revoked"
        )));
    }
    state.auth.forget();
    tracing::info!(id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
