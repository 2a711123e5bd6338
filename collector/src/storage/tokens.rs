//! Operator API tokens behind [`TokenStore`] (both backends). Only a hash of each token is
//! stored; see [`crate::auth`].

use super::Result;
use crate::auth::Role;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Records a certificate revocation (by serial, or a whole agent's certificates issued
    /// until `revoked_at`).
    async fn revoke_certificate(&self, revocation: &CertRevocation) -> Result<CertRevocation>;
    /// Every certificate revocation, oldest first.
    async fn cert_revocations(&self) -> Result<Vec<CertRevocation>>;
    /// Stores a new token's hash; `None` when an unrevoked token already has this name.
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiToken>>;
    /// The unrevoked token with this hash.
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>>;
    /// Every token, revoked ones included, oldest first.
    async fn tokens(&self) -> Result<Vec<ApiToken>>;
    /// Revokes the unrevoked token with this id; false when there is none.
    async fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<bool>;
}

/// A revoked agent certificate: by serial, or (serial `None`) every certificate of `agent`
/// issued at or before `revoked_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CertRevocation {
    pub id: i64,
    pub agent: Option<String>,
    /// Lowercase hex without separators.
    pub serial: Option<String>,
    pub revoked_at: DateTime<Utc>,
    pub reason: String,
}

pub(crate) fn role_from_db(text: &str) -> Role {
    // The CHECK constraint admits only the three names; anything else reads as the least role.
    text.parse().unwrap_or(Role::Viewer)
}
