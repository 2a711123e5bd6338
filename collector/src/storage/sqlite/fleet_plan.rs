//! [`FleetPlanStore`] on SQLite.

use super::{from_ms, ms, SqliteStore};
use crate::storage::fleet_plan::{
    FleetPlanStore, NewPlanVersion, PlanVersion, PlanVersionInfo, SavedPlan,
};
use crate::storage::sql;
use crate::storage::{failed, Result};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

fn info_row(r: &Row<'_>) -> rusqlite::Result<PlanVersionInfo> {
    Ok(PlanVersionInfo {
        version: r.get(0)?,
        author: r.get(1)?,
        created_at: from_ms(r.get(2)?),
        comment: r.get(3)?,
        summary: r.get(4)?,
    })
}

#[async_trait]
impl FleetPlanStore for SqliteStore {
    async fn plan_head(&self) -> Result<i64> {
        self.read(|conn| {
            conn.prepare_cached(sql::fleet_plan::PLAN_HEAD.sqlite)
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(failed("reading the plan's version"))
        })
        .await
    }

    async fn plan_version(&self, version: i64) -> Result<Option<PlanVersion>> {
        self.read(move |conn| {
            conn.query_row(sql::fleet_plan::PLAN_VERSION.sqlite, [version], |r| {
                Ok(PlanVersion {
                    info: info_row(r)?,
                    document: r.get(5)?,
                })
            })
            .optional()
            .map_err(failed("reading a plan version"))
        })
        .await
    }

    async fn plan_versions(&self, limit: u32, offset: u32) -> Result<Vec<PlanVersionInfo>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(sql::fleet_plan::PLAN_VERSIONS.sqlite)
                .map_err(failed("listing plan versions"))?;
            let rows = stmt
                .query_map(params![limit, offset], info_row)
                .map_err(failed("listing plan versions"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(failed("listing plan versions"))
        })
        .await
    }

    async fn save_plan(&self, new: &NewPlanVersion) -> Result<SavedPlan> {
        let new = new.clone();
        // One writer: nothing else saves between the head read and the insert.
        self.write(move |w| {
            let head: i64 = w
                .conn
                .query_row(sql::fleet_plan::PLAN_HEAD.sqlite, [], |r| r.get(0))
                .map_err(failed("saving the plan"))?;
            if head != new.base {
                return Ok(SavedPlan::Conflict { current: head });
            }
            let version = head + 1;
            let inserted = w
                .conn
                .execute(
                    sql::fleet_plan::PLAN_INSERT.sqlite,
                    params![
                        version,
                        new.document,
                        new.author,
                        ms(new.created_at),
                        new.comment,
                        new.summary
                    ],
                )
                .map_err(failed("saving the plan"))?;
            if inserted == 0 {
                return Ok(SavedPlan::Conflict { current: version });
            }
            Ok(SavedPlan::Saved(PlanVersionInfo {
                version,
                author: new.author,
                created_at: from_ms(ms(new.created_at)),
                comment: new.comment,
                summary: new.summary,
            }))
        })
        .await
    }
}
