//! [`RollupStore`] on SQLite.

use super::{from_ms, ms, SqliteStore};
use crate::storage::rollup::{loss_pct, RawRound, RollupRow, RollupStore};
use crate::storage::sql;
use crate::storage::{failed, unpack_rtts, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

/// The raw tables retention slices (names, never input).
const RAW_TABLES: [&str; 2] = ["probe_results", "port_checks"];

#[async_trait]
impl RollupStore for SqliteStore {
    async fn raw_rounds(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<RawRound>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(sql::rollup::RAW_ROUNDS.sqlite)
                .map_err(failed("reading rounds to roll up"))?;
            let rows = stmt
                .query_map(params![ms(from), ms(to)], |r| {
                    Ok(RawRound {
                        device_id: r.get(0)?,
                        ts: from_ms(r.get(1)?),
                        sent: r.get(2)?,
                        received: r.get(3)?,
                        rtts_ms: unpack_rtts(&r.get::<_, Option<Vec<u8>>>(4)?.unwrap_or_default()),
                    })
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed("reading rounds to roll up"))?;
            Ok(rows)
        })
        .await
    }

    async fn oldest_raw_round(&self) -> Result<Option<DateTime<Utc>>> {
        self.read(|conn| {
            conn.query_row(sql::rollup::OLDEST_RAW_ROUND.sqlite, [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map(|v| v.map(from_ms))
            .map_err(failed("reading the oldest round"))
        })
        .await
    }

    async fn save_rollups(&self, resolution_secs: u32, rows: &[RollupRow]) -> Result<()> {
        let rows = rows.to_vec();
        self.write(move |w| {
            let tx = w.conn.transaction().map_err(failed("saving rollups"))?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO probe_rollups (resolution, device_id, bucket,
                             rounds, answered, sent, received, rtt_min, rtt_mean, rtt_max, rtt_p95)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )
                    .map_err(failed("saving rollups"))?;
                for r in &rows {
                    stmt.execute(params![
                        resolution_secs,
                        r.device_id,
                        ms(r.ts),
                        r.rounds,
                        r.answered,
                        r.sent,
                        r.received,
                        r.rtt_min_ms,
                        r.rtt_mean_ms,
                        r.rtt_max_ms,
                        r.rtt_p95_ms
                    ])
                    .map_err(failed("saving rollups"))?;
                }
            }
            tx.commit().map_err(failed("saving rollups"))
        })
        .await
    }

    async fn rollups(
        &self,
        device_id: i64,
        resolution_secs: u32,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RollupRow>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(sql::rollup::ROLLUPS.sqlite)
                .map_err(failed("reading rollups"))?;
            let rows = stmt
                .query_map(
                    params![resolution_secs, device_id, ms(from), ms(to), limit],
                    |r| {
                        let (sent, received): (i64, i64) = (r.get(3)?, r.get(4)?);
                        Ok(RollupRow {
                            device_id,
                            ts: from_ms(r.get(0)?),
                            rounds: r.get(1)?,
                            answered: r.get(2)?,
                            sent,
                            received,
                            loss_pct: loss_pct(sent, received),
                            rtt_min_ms: r.get(5)?,
                            rtt_mean_ms: r.get(6)?,
                            rtt_max_ms: r.get(7)?,
                            rtt_p95_ms: r.get(8)?,
                        })
                    },
                )
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed("reading rollups"))?;
            Ok(rows)
        })
        .await
    }

    async fn rollup_watermark(&self, resolution_secs: u32) -> Result<Option<DateTime<Utc>>> {
        self.read(move |conn| {
            conn.query_row(
                sql::rollup::ROLLUP_WATERMARK.sqlite,
                [resolution_secs],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.map(from_ms))
            .map_err(failed("reading a rollup watermark"))
        })
        .await
    }

    async fn set_rollup_watermark(&self, resolution_secs: u32, done: DateTime<Utc>) -> Result<()> {
        self.write(move |w| {
            w.conn
                .execute(
                    sql::rollup::SET_ROLLUP_WATERMARK.sqlite,
                    params![resolution_secs, ms(done)],
                )
                .map_err(failed("saving a rollup watermark"))?;
            Ok(())
        })
        .await
    }

    async fn delete_raw_rounds_before(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.write(move |w| {
            let mut deleted = 0;
            // Port checks are raw rows too, kept as long.
            for table in RAW_TABLES {
                deleted += w
                    .conn
                    .execute(
                        &format!(
                            "DELETE FROM {table} WHERE rowid IN
                                 (SELECT rowid FROM {table} WHERE ts < ?1 LIMIT ?2)"
                        ),
                        params![ms(cutoff), limit],
                    )
                    .map_err(failed("deleting old raw rounds and port checks"))?;
            }
            Ok(deleted as u64)
        })
        .await
    }

    async fn delete_rollups_before(
        &self,
        resolution_secs: u32,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64> {
        self.write(move |w| {
            let n = w
                .conn
                .execute(
                    "DELETE FROM probe_rollups WHERE (resolution, device_id, bucket) IN
                         (SELECT resolution, device_id, bucket FROM probe_rollups
                          WHERE resolution = ?1 AND bucket < ?2 LIMIT ?3)",
                    params![resolution_secs, ms(cutoff), limit],
                )
                .map_err(failed("deleting old rollups"))?;
            Ok(n as u64)
        })
        .await
    }
}
