//! [`FleetPlanStore`] on PostgreSQL.

use super::PostgresStore;
use crate::storage::fleet_plan::{
    FleetPlanStore, NewPlanVersion, PlanVersion, PlanVersionInfo, SavedPlan,
};
use crate::storage::sql;
use crate::storage::{failed, Result};
use async_trait::async_trait;
use chrono::SubsecRound;
use sqlx::postgres::PgRow;
use sqlx::Row;

fn info_row(r: &PgRow) -> sqlx::Result<PlanVersionInfo> {
    Ok(PlanVersionInfo {
        version: r.try_get("version")?,
        author: r.try_get("author")?,
        created_at: r.try_get("created_at")?,
        comment: r.try_get("comment")?,
        summary: r.try_get("summary")?,
    })
}

#[async_trait]
impl FleetPlanStore for PostgresStore {
    async fn plan_head(&self) -> Result<i64> {
        sqlx::query_scalar(sql::fleet_plan::PLAN_HEAD.postgres)
            .fetch_one(&self.pool)
            .await
            .map_err(failed("reading the plan's version"))
    }

    async fn plan_version(&self, version: i64) -> Result<Option<PlanVersion>> {
        let row = sqlx::query(sql::fleet_plan::PLAN_VERSION.postgres)
            .bind(version)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("reading a plan version"))?;
        row.map(|r| {
            Ok::<_, sqlx::Error>(PlanVersion {
                info: info_row(&r)?,
                document: r.try_get("document")?,
            })
        })
        .transpose()
        .map_err(failed("reading a plan version"))
    }

    async fn plan_versions(&self, limit: u32, offset: u32) -> Result<Vec<PlanVersionInfo>> {
        let rows = sqlx::query(sql::fleet_plan::PLAN_VERSIONS.postgres)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing plan versions"))?;
        rows.iter()
            .map(info_row)
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("listing plan versions"))
    }

    async fn save_plan(&self, new: &NewPlanVersion) -> Result<SavedPlan> {
        // Another collector may save at the same moment: the head read and the insert are
        // separate, and the version's primary key lets only one of two equal saves in.
        let head = self.plan_head().await?;
        if head != new.base {
            return Ok(SavedPlan::Conflict { current: head });
        }
        let version = head + 1;
        let inserted = sqlx::query(sql::fleet_plan::PLAN_INSERT.postgres)
            .bind(version)
            .bind(&new.document)
            .bind(&new.author)
            .bind(new.created_at)
            .bind(&new.comment)
            .bind(&new.summary)
            .execute(&self.pool)
            .await
            .map_err(failed("saving the plan"))?
            .rows_affected();
        if inserted == 0 {
            return Ok(SavedPlan::Conflict { current: version });
        }
        Ok(SavedPlan::Saved(PlanVersionInfo {
            version,
            author: new.author.clone(),
            // As stored: PostgreSQL keeps microseconds.
            created_at: new.created_at.trunc_subsecs(6),
            comment: new.comment.clone(),
            summary: new.summary.clone(),
        }))
    }
}
