//! [`KpiStore`] on SQLite (times in Unix milliseconds).

use super::{from_ms, ms, SqliteStore};
use crate::storage::kpi::{
    Granularity, Kpi, KpiFileState, KpiIssueRecord, KpiQuery, KpiResult, KpiRow, KpiStore,
};
use crate::storage::sql;
use crate::storage::{failed, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Row, Transaction};
use std::collections::HashMap;

/// The table and key column of a KPI (fixed names, never from input).
fn table(kpi: Kpi) -> (&'static str, &'static str, &'static str) {
    match kpi {
        Kpi::ServiceTrafficVolume => ("kpi_service_traffic", "service_id", "total_bytes"),
        Kpi::CellUniqueUsers => ("kpi_cell_users", "cell_id", "users"),
    }
}

fn issue_row(row: &Row<'_>) -> rusqlite::Result<KpiIssueRecord> {
    Ok(KpiIssueRecord {
        interval_end: from_ms(row.get(0)?),
        file: row.get(1)?,
        line: row.get(2)?,
        message: row.get(3)?,
        recorded_at: from_ms(row.get(4)?),
        reason: row.get(5)?,
    })
}

fn insert_issues(tx: &Transaction<'_>, issues: &[KpiIssueRecord]) -> rusqlite::Result<()> {
    let mut clear =
        tx.prepare_cached("DELETE FROM kpi_issues WHERE interval_end = ?1 AND file = ?2")?;
    let mut seen = std::collections::HashSet::new();
    for i in issues {
        if seen.insert((ms(i.interval_end), i.file.as_str())) {
            clear.execute(params![ms(i.interval_end), i.file])?;
        }
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO kpi_issues (interval_end, file, line, message, recorded_at, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for i in issues {
        insert.execute(params![
            ms(i.interval_end),
            i.file,
            i.line,
            i.message,
            ms(i.recorded_at),
            i.reason
        ])?;
    }
    Ok(())
}

#[async_trait]
impl KpiStore for SqliteStore {
    async fn kpi_files(&self, since: DateTime<Utc>) -> Result<HashMap<String, KpiFileState>> {
        self.read(move |conn| {
            conn.prepare_cached(sql::kpi::KPI_FILES.sqlite)
                .and_then(|mut stmt| {
                    stmt.query_map([ms(since)], |r| {
                        Ok((
                            r.get(0)?,
                            KpiFileState {
                                interval_end: from_ms(r.get(1)?),
                                size: r.get(2)?,
                                modified_ms: r.get(3)?,
                            },
                        ))
                    })?
                    .collect::<rusqlite::Result<HashMap<_, _>>>()
                })
                .map_err(failed("reading processed KPI files"))
        })
        .await
    }

    async fn kpi_computed(
        &self,
        granularity: Granularity,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>> {
        self.read(move |conn| {
            conn.prepare_cached(sql::kpi::KPI_COMPUTED.sqlite)
                .and_then(|mut stmt| {
                    stmt.query_map(params![granularity as i64, ms(since)], |r| {
                        Ok(from_ms(r.get(0)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(failed("reading computed KPI intervals"))
        })
        .await
    }

    async fn save_kpi_result(&self, result: &KpiResult, now: DateTime<Utc>) -> Result<()> {
        let r = result.clone();
        self.write(move |writer| {
            let action = "saving KPIs";
            let tx = writer.conn.transaction().map_err(failed(action))?;
            let (g, start, end) = (r.granularity as i64, ms(r.start), ms(r.end));
            for (kpi, rows) in [
                (Kpi::ServiceTrafficVolume, &r.services),
                (Kpi::CellUniqueUsers, &r.cells),
            ] {
                let (table, key, value) = table(kpi);
                tx.execute(
                    &format!("DELETE FROM {table} WHERE granularity = ?1 AND start_at = ?2"),
                    params![g, start],
                )
                .map_err(failed(action))?;
                let mut insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO {table} (granularity, start_at, end_at, {key}, {value})
                         VALUES (?1, ?2, ?3, ?4, ?5)"
                    ))
                    .map_err(failed(action))?;
                for (k, v) in rows {
                    insert
                        .execute(params![g, start, end, k, v])
                        .map_err(failed(action))?;
                }
            }
            tx.execute(
                sql::kpi::MARK_KPI_COMPUTED.sqlite,
                params![g, start, end, ms(now)],
            )
            .map_err(failed(action))?;
            if r.granularity == Granularity::FiveMinutes {
                tx.execute(sql::kpi::DELETE_KPI_ISSUES.sqlite, [end])
                    .map_err(failed(action))?;
                let mut file = tx
                    .prepare_cached(
                        "INSERT INTO kpi_files (name, interval_end, size, modified_ms, rows,
                             skipped_rows, processed_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (name) DO UPDATE SET interval_end = excluded.interval_end,
                             size = excluded.size, modified_ms = excluded.modified_ms,
                             rows = excluded.rows, skipped_rows = excluded.skipped_rows,
                             processed_at = excluded.processed_at",
                    )
                    .map_err(failed(action))?;
                for f in &r.files {
                    file.execute(params![
                        f.name,
                        ms(f.interval_end),
                        f.size,
                        f.modified_ms,
                        f.rows,
                        f.skipped_rows,
                        ms(now)
                    ])
                    .map_err(failed(action))?;
                }
            }
            insert_issues(&tx, &r.issues).map_err(failed(action))?;
            tx.commit().map_err(failed(action))
        })
        .await
    }

    async fn save_kpi_issues(&self, issues: &[KpiIssueRecord]) -> Result<()> {
        let issues = issues.to_vec();
        self.write(move |writer| {
            let tx = writer
                .conn
                .transaction()
                .map_err(failed("recording KPI issues"))?;
            insert_issues(&tx, &issues).map_err(failed("recording KPI issues"))?;
            tx.commit().map_err(failed("recording KPI issues"))
        })
        .await
    }

    async fn kpi_rows(&self, q: &KpiQuery) -> Result<Vec<KpiRow>> {
        let q = q.clone();
        self.read(move |conn| {
            let (table, key, value) = table(q.kpi);
            let sql = format!(
                "SELECT id, start_at, end_at, granularity, {key}, {value} FROM (
                     SELECT *, row_number() OVER (PARTITION BY granularity, start_at
                                                  ORDER BY {value} DESC, {key} ASC) AS rank
                     FROM {table}
                     WHERE (?1 IS NULL OR granularity = ?1) AND (?2 IS NULL OR start_at >= ?2)
                       AND (?3 IS NULL OR end_at <= ?3))
                 WHERE rank <= ?4
                 ORDER BY granularity, start_at, rank LIMIT ?5 OFFSET ?6"
            );
            conn.prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_map(
                        params![
                            q.granularity.map(|g| g as i64),
                            q.start_gte.map(ms),
                            q.end_lte.map(ms),
                            q.top,
                            q.limit,
                            q.offset
                        ],
                        |r| {
                            Ok(KpiRow {
                                id: r.get(0)?,
                                interval_start_timestamp: from_ms(r.get(1)?),
                                interval_end_timestamp: from_ms(r.get(2)?),
                                interval: r.get(3)?,
                                key: r.get(4)?,
                                value: r.get(5)?,
                            })
                        },
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(failed("reading KPIs"))
        })
        .await
    }

    async fn kpi_issues(&self, limit: u32) -> Result<Vec<KpiIssueRecord>> {
        self.read(move |conn| {
            conn.prepare_cached(sql::kpi::KPI_ISSUES.sqlite)
                .and_then(|mut stmt| {
                    stmt.query_map([limit], issue_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(failed("reading KPI issues"))
        })
        .await
    }
}
