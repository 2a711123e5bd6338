//! [`TokenStore`] on PostgreSQL.

use super::PostgresStore;
use crate::auth::Role;
use crate::storage::sql;
use crate::storage::sql::tokens::TOKEN_COLUMNS as COLUMNS;
use crate::storage::tokens::{role_from_db, ApiToken, CertRevocation, TokenStore};
use crate::storage::{failed, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

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
    async fn revoke_certificate(&self, revocation: &CertRevocation) -> Result<CertRevocation> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO cert_revocations (agent_id, serial, revoked_at, reason)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(&revocation.agent)
        .bind(&revocation.serial)
        .bind(revocation.revoked_at)
        .bind(&revocation.reason)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("revoking a certificate"))?;
        Ok(CertRevocation {
            id,
            ..revocation.clone()
        })
    }

    async fn cert_revocations(&self) -> Result<Vec<CertRevocation>> {
        let rows = sqlx::query(sql::tokens::CERT_REVOCATIONS.postgres)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing certificate revocations"))?;
        rows.iter()
            .map(|r| {
                Ok(CertRevocation {
                    id: r.try_get("id")?,
                    agent: r.try_get("agent_id")?,
                    serial: r.try_get("serial")?,
                    revoked_at: r.try_get("revoked_at")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("listing certificate revocations"))
    }

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
        let row = sqlx::query(sql::tokens::TOKEN_BY_HASH.postgres)
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
        let rows = sqlx::query(sql::tokens::TOKENS.postgres)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing tokens"))?;
        rows.iter()
            .map(token_row)
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("listing tokens"))
    }

    async fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(sql::tokens::REVOKE_TOKEN.postgres)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(failed("revoking a token"))?;
        Ok(done.rows_affected() == 1)
    }
}
