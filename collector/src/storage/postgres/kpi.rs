//! [`KpiStore`] on PostgreSQL: each KPI's rows go in as arrays through UNNEST.

use super::PostgresStore;
use crate::storage::kpi::{
    Granularity, Kpi, KpiFileState, KpiIssueRecord, KpiQuery, KpiResult, KpiRow, KpiStore,
};
use crate::storage::sql;
use crate::storage::{failed, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use sqlx::Row;
use std::collections::HashMap;

/// The table and columns of a KPI (fixed names, never from input).
fn table(kpi: Kpi) -> (&'static str, &'static str, &'static str) {
    match kpi {
        Kpi::ServiceTrafficVolume => ("kpi_service_traffic", "service_id", "total_bytes"),
        Kpi::CellUniqueUsers => ("kpi_cell_users", "cell_id", "users"),
    }
}

async fn insert_issues(conn: &mut PgConnection, issues: &[KpiIssueRecord]) -> sqlx::Result<()> {
    if issues.is_empty() {
        return Ok(());
    }
    let ends: Vec<DateTime<Utc>> = issues.iter().map(|i| i.interval_end).collect();
    let files: Vec<String> = issues.iter().map(|i| i.file.clone()).collect();
    sqlx::query(
        "DELETE FROM kpi_issues k USING UNNEST($1::timestamptz[], $2::text[]) AS u(e, f)
         WHERE k.interval_end = u.e AND k.file = u.f",
    )
    .bind(&ends)
    .bind(&files)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO kpi_issues (interval_end, file, line, message, recorded_at, reason)
         SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::int8[], $4::text[],
             $5::timestamptz[], $6::text[])",
    )
    .bind(&ends)
    .bind(&files)
    .bind(issues.iter().map(|i| i.line).collect::<Vec<_>>())
    .bind(issues.iter().map(|i| i.message.clone()).collect::<Vec<_>>())
    .bind(issues.iter().map(|i| i.recorded_at).collect::<Vec<_>>())
    .bind(issues.iter().map(|i| i.reason.clone()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl KpiStore for PostgresStore {
    async fn kpi_files(&self, since: DateTime<Utc>) -> Result<HashMap<String, KpiFileState>> {
        let rows = sqlx::query(sql::kpi::KPI_FILES.postgres)
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("reading processed KPI files"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("name")?,
                    KpiFileState {
                        interval_end: r.try_get("interval_end")?,
                        size: r.try_get("size")?,
                        modified_ms: r.try_get("modified_ms")?,
                    },
                ))
            })
            .collect::<sqlx::Result<_>>()
            .map_err(failed("reading processed KPI files"))
    }

    async fn kpi_computed(
        &self,
        granularity: Granularity,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>> {
        sqlx::query_scalar(sql::kpi::KPI_COMPUTED.postgres)
            .bind(granularity as i16)
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("reading computed KPI intervals"))
    }

    async fn save_kpi_result(&self, r: &KpiResult, now: DateTime<Utc>) -> Result<()> {
        let action = "saving KPIs";
        let mut tx = self.pool.begin().await.map_err(failed(action))?;
        let g = r.granularity as i16;
        for (kpi, rows) in [
            (Kpi::ServiceTrafficVolume, &r.services),
            (Kpi::CellUniqueUsers, &r.cells),
        ] {
            let (table, key, value) = table(kpi);
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE granularity = $1 AND start_at = $2"
            ))
            .bind(g)
            .bind(r.start)
            .execute(&mut *tx)
            .await
            .map_err(failed(action))?;
            sqlx::query(&format!(
                "INSERT INTO {table} (granularity, start_at, end_at, {key}, {value})
                 SELECT $1, $2, $3, * FROM UNNEST($4::int8[], $5::int8[])"
            ))
            .bind(g)
            .bind(r.start)
            .bind(r.end)
            .bind(rows.iter().map(|x| x.0).collect::<Vec<_>>())
            .bind(rows.iter().map(|x| x.1).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(failed(action))?;
        }
        sqlx::query(sql::kpi::MARK_KPI_COMPUTED.postgres)
            .bind(g)
            .bind(r.start)
            .bind(r.end)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(failed(action))?;
        if r.granularity == Granularity::FiveMinutes {
            sqlx::query(sql::kpi::DELETE_KPI_ISSUES.postgres)
                .bind(r.end)
                .execute(&mut *tx)
                .await
                .map_err(failed(action))?;
            sqlx::query(
                "INSERT INTO kpi_files (name, interval_end, size, modified_ms, rows, skipped_rows,
                     processed_at)
                 SELECT *, $7 FROM UNNEST($1::text[], $2::timestamptz[], $3::int8[], $4::int8[],
                     $5::int8[], $6::int8[])
                 ON CONFLICT (name) DO UPDATE SET interval_end = excluded.interval_end,
                     size = excluded.size, modified_ms = excluded.modified_ms,
                     rows = excluded.rows, skipped_rows = excluded.skipped_rows,
                     processed_at = excluded.processed_at",
            )
            .bind(r.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>())
            .bind(r.files.iter().map(|f| f.interval_end).collect::<Vec<_>>())
            .bind(r.files.iter().map(|f| f.size).collect::<Vec<_>>())
            .bind(r.files.iter().map(|f| f.modified_ms).collect::<Vec<_>>())
            .bind(r.files.iter().map(|f| f.rows).collect::<Vec<_>>())
            .bind(r.files.iter().map(|f| f.skipped_rows).collect::<Vec<_>>())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(failed(action))?;
        }
        insert_issues(&mut tx, &r.issues)
            .await
            .map_err(failed(action))?;
        tx.commit().await.map_err(failed(action))
    }

    async fn save_kpi_issues(&self, issues: &[KpiIssueRecord]) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(failed("recording KPI issues"))?;
        insert_issues(&mut tx, issues)
            .await
            .map_err(failed("recording KPI issues"))?;
        tx.commit().await.map_err(failed("recording KPI issues"))
    }

    async fn kpi_rows(&self, q: &KpiQuery) -> Result<Vec<KpiRow>> {
        let (table, key, value) = table(q.kpi);
        let rows = sqlx::query(&format!(
            "SELECT id, start_at, end_at, granularity, {key} AS key, {value} AS value FROM (
                 SELECT *, row_number() OVER (PARTITION BY granularity, start_at
                                              ORDER BY {value} DESC, {key} ASC) AS rank
                 FROM {table}
                 WHERE ($1::int2 IS NULL OR granularity = $1)
                   AND ($2::timestamptz IS NULL OR start_at >= $2)
                   AND ($3::timestamptz IS NULL OR end_at <= $3)) ranked
             WHERE rank <= $4
             ORDER BY granularity, start_at, rank LIMIT $5 OFFSET $6"
        ))
        .bind(q.granularity.map(|g| g as i16))
        .bind(q.start_gte)
        .bind(q.end_lte)
        .bind(i64::from(q.top))
        .bind(i64::from(q.limit))
        .bind(i64::from(q.offset))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading KPIs"))?;
        rows.iter()
            .map(|r| {
                Ok(KpiRow {
                    id: r.try_get("id")?,
                    interval_start_timestamp: r.try_get("start_at")?,
                    interval_end_timestamp: r.try_get("end_at")?,
                    interval: i64::from(r.try_get::<i16, _>("granularity")?),
                    key: r.try_get("key")?,
                    value: r.try_get("value")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(failed("reading KPIs"))
    }

    async fn kpi_issues(&self, limit: u32) -> Result<Vec<KpiIssueRecord>> {
        let rows = sqlx::query(sql::kpi::KPI_ISSUES.postgres)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("reading KPI issues"))?;
        rows.iter()
            .map(|r| {
                Ok(KpiIssueRecord {
                    interval_end: r.try_get("interval_end")?,
                    file: r.try_get("file")?,
                    line: r.try_get("line")?,
                    message: r.try_get("message")?,
                    recorded_at: r.try_get("recorded_at")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(failed("reading KPI issues"))
    }
}
