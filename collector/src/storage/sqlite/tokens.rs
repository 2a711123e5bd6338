//! [`TokenStore`] on SQLite.

use super::{from_ms, ms, SqliteStore};
use crate::auth::Role;
use crate::storage::sql;
use crate::storage::tokens::{role_from_db, ApiToken, CertRevocation, TokenStore};
use crate::storage::{failed, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

fn token_row(r: &Row<'_>) -> rusqlite::Result<ApiToken> {
    let role: String = r.get(2)?;
    Ok(ApiToken {
        id: r.get(0)?,
        name: r.get(1)?,
        role: role_from_db(&role),
        created_at: from_ms(r.get(3)?),
        revoked_at: r.get::<_, Option<i64>>(4)?.map(from_ms),
    })
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn revoke_certificate(&self, revocation: &CertRevocation) -> Result<CertRevocation> {
        let mut revocation = revocation.clone();
        self.write(move |w| {
            w.conn
                .execute(
                    "INSERT INTO cert_revocations (agent_id, serial, revoked_at, reason)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        revocation.agent,
                        revocation.serial,
                        ms(revocation.revoked_at),
                        revocation.reason
                    ],
                )
                .map_err(failed("revoking a certificate"))?;
            revocation.id = w.conn.last_insert_rowid();
            Ok(revocation)
        })
        .await
    }

    async fn cert_revocations(&self) -> Result<Vec<CertRevocation>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(sql::tokens::CERT_REVOCATIONS.sqlite)
                .map_err(failed("listing certificate revocations"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(CertRevocation {
                        id: r.get(0)?,
                        agent: r.get(1)?,
                        serial: r.get(2)?,
                        revoked_at: from_ms(r.get(3)?),
                        reason: r.get(4)?,
                    })
                })
                .map_err(failed("listing certificate revocations"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(failed("listing certificate revocations"))
        })
        .await
    }

    async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiToken>> {
        let (name, hash) = (name.to_string(), token_hash.to_string());
        self.write(move |w| {
            // One writer: the check and the insert cannot interleave with another create.
            let taken: Option<i64> = w
                .conn
                .query_row(
                    "SELECT id FROM api_tokens WHERE name = ?1 AND revoked_at IS NULL",
                    [&name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(failed("creating a token"))?;
            if taken.is_some() {
                return Ok(None);
            }
            w.conn
                .execute(
                    "INSERT INTO api_tokens (name, role, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![name, role.as_str(), hash, ms(now)],
                )
                .map_err(failed("creating a token"))?;
            Ok(Some(ApiToken {
                id: w.conn.last_insert_rowid(),
                name,
                role,
                created_at: from_ms(ms(now)),
                revoked_at: None,
            }))
        })
        .await
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let hash = token_hash.to_string();
        self.read(move |conn| {
            conn.query_row(sql::tokens::TOKEN_BY_HASH.sqlite, [hash], token_row)
                .optional()
                .map_err(failed("reading a token"))
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(sql::tokens::TOKENS.sqlite)
                .map_err(failed("listing tokens"))?;
            let rows = stmt
                .query_map([], token_row)
                .map_err(failed("listing tokens"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(failed("listing tokens"))
        })
        .await
    }

    async fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        self.write(move |w| {
            let changed = w
                .conn
                .execute(sql::tokens::REVOKE_TOKEN.sqlite, params![ms(now), id])
                .map_err(failed("revoking a token"))?;
            Ok(changed == 1)
        })
        .await
    }
}
