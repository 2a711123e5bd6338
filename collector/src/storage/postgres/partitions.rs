//! Daily partitions of `probe_results` on PostgreSQL: made ahead of the data (and for any day
//! that has rows waiting in the DEFAULT partition, which are moved in), and dropped whole once
//! the day is past retention. An advisory lock serialises collectors sharing the database.

use super::PostgresStore;
use crate::storage::{failed, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::Row;

/// Any constant: the key of the advisory lock partition changes take.
const LOCK_KEY: i64 = 0x6e77_7061_7274; // "nwpart"
/// Days made ahead of today (and kept behind it) when the collector starts and hourly.
pub const DAYS_AHEAD: i64 = 2;

fn name(day: NaiveDate) -> String {
    format!("probe_results_p{}", day.format("%Y%m%d"))
}

fn day_of(name: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(name.strip_prefix("probe_results_p")?, "%Y%m%d").ok()
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

impl PostgresStore {
    /// The days that have a partition.
    async fn partition_days(&self) -> Result<Vec<NaiveDate>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::TEXT FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
             WHERE p.relname = 'probe_results'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed("listing probe partitions"))?;
        Ok(names.iter().filter_map(|n| day_of(n)).collect())
    }

    /// Makes the partitions of `today - 1` to `today + DAYS_AHEAD` that are missing, and of any
    /// day in that span and the day before that the DEFAULT partition holds rows for. Never a
    /// day further ahead: a row stamped far in the future (a broken clock before ingest
    /// refused it) would otherwise make a partition retention never drops, or, for year 9999,
    /// one PostgreSQL cannot make, failing every start.
    pub async fn ensure_partitions(&self, now: DateTime<Utc>) -> Result<Vec<NaiveDate>> {
        let today = now.date_naive();
        let have = self.partition_days().await?;
        let waiting: Vec<NaiveDate> = sqlx::query_scalar(
            "SELECT DISTINCT (ts AT TIME ZONE 'UTC')::DATE FROM probe_results_default
             WHERE ts >= $1 AND ts < $2",
        )
        .bind(midnight(today - Duration::days(2)))
        .bind(midnight(today + Duration::days(DAYS_AHEAD + 1)))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading the default probe partition"))?;
        let mut wanted: Vec<NaiveDate> = (-1..=DAYS_AHEAD)
            .map(|d| today + Duration::days(d))
            .chain(waiting)
            .filter(|d| !have.contains(d))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        for day in &wanted {
            self.create_partition(*day).await?;
        }
        Ok(wanted)
    }

    async fn create_partition(&self, day: NaiveDate) -> Result<()> {
        let table = name(day);
        let (from, to) = (midnight(day), midnight(day + Duration::days(1)));
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(failed("creating a probe partition"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(failed("creating a probe partition"))?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&table)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed("creating a probe partition"))?;
        if !exists {
            // Made detached, filled with the day's rows from DEFAULT, then attached: attaching
            // a range that DEFAULT still holds rows of would fail.
            for sql in [
                format!("CREATE TABLE {table} (LIKE probe_results INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"),
                format!(
                    "WITH moved AS (DELETE FROM probe_results_default WHERE ts >= $1 AND ts < $2 RETURNING *)
                     INSERT INTO {table} SELECT * FROM moved"
                ),
                format!(
                    "ALTER TABLE probe_results ATTACH PARTITION {table} FOR VALUES FROM ('{}') TO ('{}')",
                    from.to_rfc3339(),
                    to.to_rfc3339()
                ),
            ] {
                sqlx::query(&sql)
                    .bind(from)
                    .bind(to)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed("creating a probe partition"))?;
            }
        }
        tx.commit()
            .await
            .map_err(failed("creating a probe partition"))?;
        if !exists {
            tracing::info!(partition = %table, "probe partition created");
        }
        Ok(())
    }

    /// Drops the partitions wholly before `cutoff`; returns the rows they held.
    pub async fn drop_partitions_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let mut dropped = 0u64;
        for day in self.partition_days().await? {
            if midnight(day + Duration::days(1)) > cutoff {
                continue;
            }
            let table = name(day);
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(failed("dropping a probe partition"))?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(LOCK_KEY)
                .execute(&mut *tx)
                .await
                .map_err(failed("dropping a probe partition"))?;
            let rows = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
                .fetch_optional(&mut *tx)
                .await;
            // Another collector may have dropped it first.
            let Ok(Some(rows)) = rows else { continue };
            let n: i64 = rows
                .try_get("n")
                .map_err(failed("dropping a probe partition"))?;
            sqlx::query(&format!("DROP TABLE {table}"))
                .execute(&mut *tx)
                .await
                .map_err(failed("dropping a probe partition"))?;
            tx.commit()
                .await
                .map_err(failed("dropping a probe partition"))?;
            tracing::info!(partition = %table, rows = n, "probe partition dropped");
            dropped += n as u64;
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_carry_their_day() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        assert_eq!(name(day), "probe_results_p20261121");
        assert_eq!(day_of(&name(day)), Some(day));
        assert_eq!(day_of("probe_results_default"), None);
    }
}
