//! The fleet plan's versions behind [`FleetPlanStore`] (both backends).

use super::Result;
use async_trait::async_trait;

pub use crate::domain::fleet_plan::*;

#[async_trait]
pub trait FleetPlanStore: Send + Sync {
    /// The newest version's number; 0 when no plan was ever saved. Cheap: agents' streams
    /// learn of a change by polling it.
    async fn plan_head(&self) -> Result<i64>;
    /// One version with its document.
    async fn plan_version(&self, version: i64) -> Result<Option<PlanVersion>>;
    /// The newest version with its document, if any.
    async fn current_plan(&self) -> Result<Option<PlanVersion>> {
        match self.plan_head().await? {
            0 => Ok(None),
            head => self.plan_version(head).await,
        }
    }
    /// Versions newest first, without their documents.
    async fn plan_versions(&self, limit: u32, offset: u32) -> Result<Vec<PlanVersionInfo>>;
    /// Saves `new` as version `base + 1` if `base` is still the newest; else a conflict.
    async fn save_plan(&self, new: &NewPlanVersion) -> Result<SavedPlan>;
}
