//! Stored versions of the fleet plan ([`netwarden_plan::Plan`]).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One saved version, without its document: a line of the plan's audit log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PlanVersionInfo {
    /// 1, 2, ...; each save takes the next.
    pub version: i64,
    /// The token (or user) that saved it.
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub comment: String,
    /// What changed from the version before (`+2 target, ~1 check`).
    pub summary: String,
}

/// A saved version with its document (the plan as JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanVersion {
    pub info: PlanVersionInfo,
    pub document: String,
}

/// A version to save on top of `base` (the version the editor started from; 0 for none).
#[derive(Debug, Clone)]
pub struct NewPlanVersion {
    pub base: i64,
    pub document: String,
    pub author: String,
    pub comment: String,
    pub summary: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SavedPlan {
    Saved(PlanVersionInfo),
    /// Someone saved another version since `base`: the edit was made on a stale plan.
    Conflict {
        current: i64,
    },
}
