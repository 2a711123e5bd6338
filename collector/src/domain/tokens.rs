//! Operator API tokens and agent certificate revocations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a token may do; each role may do everything the ones before it may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Also acknowledge, resolve, silence, and post telemetry.
    Operator,
    /// Also change configuration (accounts, circuits, employees) and manage tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!("{other:?} is not a role (viewer, operator, admin)")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
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
