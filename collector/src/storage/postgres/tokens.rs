//! [`TokenStore`] on PostgreSQL.

use super::PostgresStore;
use crate::auth::Role;
use crate::storage::tokens::{role_from_db, ApiToken, TokenStore};
use crate::storage::{failed, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

const COLUMNS: &str = "id, name, role, created_at, revoked_at";

fn token_row(r: &PgRow) -> sqlx::Result<ApiToken> {
    let role: String = r.try_get("role")?;
    Ok(ApiToken {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: role_from_db(&role),
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

#[async_trait]
impl TokenStore for PostgresStore {
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiToken>> {
        // The partial unique index decides a race between two collectors.
        let row = sqlx::query(&format!(
            "INSERT INTO api_tokens (name, role, token_hash, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING
             RETURNING {COLUMNS}"
        ))
        .bind(name)
        .bind(role.as_str())
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("creating a token"))?;
        row.as_ref()
            .map(token_row)
            .transpose()
            .map_err(failed("creating a token"))
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("reading a token"))?;
        row.as_ref()
            .map(token_row)
            .transpose()
            .map_err(failed("reading a token"))
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing tokens"))?;
        rows.iter()
            .map(token_row)
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("listing tokens"))
    }

    async fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(failed("revoking a token"))?;
        Ok(done.rows_affected() == 1)
    }
}
