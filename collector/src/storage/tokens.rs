//! Operator API tokens behind [`TokenStore`] (both backends). Only a hash of each token is
//! stored; see [`crate::auth`].

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use crate::domain::tokens::*;

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
