//! [`RollupStore`] on PostgreSQL.

use super::PostgresStore;
use crate::storage::rollup::{loss_pct, RawRound, RollupRow, RollupStore};
use crate::storage::sql;
use crate::storage::{failed, unpack_rtts, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

#[async_trait]
impl RollupStore for PostgresStore {
    async fn raw_rounds(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<RawRound>> {
        let rows = sqlx::query(sql::rollup::RAW_ROUNDS.postgres)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("reading rounds to roll up"))?;
        rows.iter()
            .map(|r| -> sqlx::Result<RawRound> {
                Ok(RawRound {
                    device_id: r.try_get("device_id")?,
                    ts: r.try_get("ts")?,
                    sent: r.try_get("sent")?,
                    received: r.try_get("received")?,
                    rtts_ms: unpack_rtts(
                        &r.try_get::<Option<Vec<u8>>, _>("rtts")?.unwrap_or_default(),
                    ),
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("reading rounds to roll up"))
    }

    /// Read once, when no rollup was ever computed (it scans: `ts` has only a BRIN index).
    async fn oldest_raw_round(&self) -> Result<Option<DateTime<Utc>>> {
        sqlx::query_scalar(sql::rollup::OLDEST_RAW_ROUND.postgres)
            .fetch_one(&self.pool)
            .await
            .map_err(failed("reading the oldest round"))
    }

    async fn save_rollups(&self, resolution_secs: u32, rows: &[RollupRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // One statement for the whole set, as arrays.
        let column = |f: fn(&RollupRow) -> Option<f32>| rows.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO probe_rollups (resolution, device_id, bucket, rounds, answered, sent,
                 received, rtt_min, rtt_mean, rtt_max, rtt_p95)
             SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TIMESTAMPTZ[], $4::INTEGER[], $5::INTEGER[],
                 $6::BIGINT[], $7::BIGINT[], $8::REAL[], $9::REAL[], $10::REAL[], $11::REAL[])
             ON CONFLICT (resolution, device_id, bucket) DO UPDATE SET rounds = excluded.rounds,
                 answered = excluded.answered, sent = excluded.sent, received = excluded.received,
                 rtt_min = excluded.rtt_min, rtt_mean = excluded.rtt_mean,
                 rtt_max = excluded.rtt_max, rtt_p95 = excluded.rtt_p95",
        )
        .bind(resolution_secs as i32)
        .bind(rows.iter().map(|r| r.device_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.ts).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.rounds as i32).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.answered as i32).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.sent).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.received).collect::<Vec<_>>())
        .bind(column(|r| r.rtt_min_ms))
        .bind(column(|r| r.rtt_mean_ms))
        .bind(column(|r| r.rtt_max_ms))
        .bind(column(|r| r.rtt_p95_ms))
        .execute(&self.pool)
        .await
        .map_err(failed("saving rollups"))?;
        Ok(())
    }

    async fn rollups(
        &self,
        device_id: i64,
        resolution_secs: u32,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RollupRow>> {
        let rows = sqlx::query(sql::rollup::ROLLUPS.postgres)
            .bind(resolution_secs as i32)
            .bind(device_id)
            .bind(from)
            .bind(to)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("reading rollups"))?;
        rows.iter()
            .map(|r| -> sqlx::Result<RollupRow> {
                let (sent, received): (i64, i64) = (r.try_get("sent")?, r.try_get("received")?);
                Ok(RollupRow {
                    device_id,
                    ts: r.try_get("bucket")?,
                    rounds: i64::from(r.try_get::<i32, _>("rounds")?),
                    answered: i64::from(r.try_get::<i32, _>("answered")?),
                    sent,
                    received,
                    loss_pct: loss_pct(sent, received),
                    rtt_min_ms: r.try_get("rtt_min")?,
                    rtt_mean_ms: r.try_get("rtt_mean")?,
                    rtt_max_ms: r.try_get("rtt_max")?,
                    rtt_p95_ms: r.try_get("rtt_p95")?,
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("reading rollups"))
    }

    async fn rollup_watermark(&self, resolution_secs: u32) -> Result<Option<DateTime<Utc>>> {
        sqlx::query_scalar(sql::rollup::ROLLUP_WATERMARK.postgres)
            .bind(resolution_secs as i32)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("reading a rollup watermark"))
    }

    async fn set_rollup_watermark(&self, resolution_secs: u32, done: DateTime<Utc>) -> Result<()> {
        sqlx::query(sql::rollup::SET_ROLLUP_WATERMARK.postgres)
            .bind(resolution_secs as i32)
            .bind(done)
            .execute(&self.pool)
            .await
            .map_err(failed("saving a rollup watermark"))?;
        Ok(())
    }

    async fn prepare_partitions(&self, now: DateTime<Utc>) -> Result<()> {
        self.ensure_partitions(now).await.map(|_| ())
    }

    /// Whole days go by dropping their partitions; what is left (the DEFAULT partition, and
    /// the part of a day before the cutoff) is deleted in slices.
    async fn delete_raw_rounds_before(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64> {
        let mut deleted = self.drop_partitions_before(cutoff).await?;
        // Port checks are raw rows too, kept as long.
        for table in ["probe_results", "port_checks"] {
            deleted += sqlx::query(&format!(
                "DELETE FROM {table} WHERE ctid IN
                     (SELECT ctid FROM {table} WHERE ts < $1 LIMIT $2)"
            ))
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(failed("deleting old raw rounds and port checks"))?
            .rows_affected();
        }
        Ok(deleted)
    }

    async fn delete_rollups_before(
        &self,
        resolution_secs: u32,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM probe_rollups WHERE ctid IN
                 (SELECT ctid FROM probe_rollups WHERE resolution = $1 AND bucket < $2 LIMIT $3)",
        )
        .bind(resolution_secs as i32)
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(failed("deleting old rollups"))?;
        Ok(done.rows_affected())
    }
}
