//! [`TelemetryStore`] on PostgreSQL: a request's samples go in as arrays through UNNEST.

use super::PostgresStore;
use crate::domain::telemetry::CircuitEvent;
use crate::storage::sql;
use crate::storage::sql::telemetry::CIRCUIT_COLUMNS;
use crate::storage::telemetry::{
    AccountMaxoutSummary, CircuitMaxoutQuery, CircuitMaxoutRecord, CircuitRecord, CustomerEmailJob,
    EmailClaim, LateSample, TelemetryPoint, TelemetryStore, UnknownCircuit,
};
use crate::storage::{failed, Result};
use crate::telemetry::sample::TelemetrySample;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use std::collections::BTreeSet;

/// A row of [`sql::telemetry::MAXOUT_COLUMNS`].
fn maxout_row(r: &PgRow) -> sqlx::Result<CircuitMaxoutRecord> {
    let start: DateTime<Utc> = r.try_get("start_at")?;
    let end: DateTime<Utc> = r.try_get("end_at")?;
    let peak: f64 = r.try_get("peak_mbps")?;
    let provisioned: f64 = r.try_get("provisioned_mbps")?;
    Ok(CircuitMaxoutRecord {
        id: r.try_get("id")?,
        circuit_id: r.try_get("circuit_id")?,
        account: r.try_get("account")?,
        severity: r.try_get("severity")?,
        start,
        end,
        duration_secs: (end - start).num_seconds(),
        samples: r.try_get("samples")?,
        peak_mbps: peak,
        peak_pct: 100.0 * peak / provisioned,
        provisioned_mbps: provisioned,
        burst_mbps: r.try_get("burst_mbps")?,
        open: r.try_get("open")?,
        peak_at: r.try_get("peak_at")?,
        historical: r.try_get("historical")?,
    })
}

fn circuit_row(row: &PgRow) -> sqlx::Result<CircuitRecord> {
    Ok(CircuitRecord {
        circuit_id: row.try_get("circuit_id")?,
        account: row.try_get("account")?,
        provisioned_mbps: row.try_get("provisioned_mbps")?,
        burst_mbps: row.try_get("burst_mbps")?,
        pop: row.try_get("pop")?,
        provisioned_at: row.try_get("provisioned_at")?,
        upgraded_at: row.try_get("upgraded_at")?,
        decommissioned_at: row.try_get("decommissioned_at")?,
    })
}

/// Stores a group of samples whose circuits are all known: one statement, so one round trip
/// and one implicit transaction per group (a BEGIN, a lookup and a COMMIT around it, each a
/// round trip between two processes sharing the cores, held single POSTs at half the rate).
const SAVE_KNOWN: &str = "
INSERT INTO telemetry (circuit_id, ts, utilization_mbps, received_at)
SELECT *, $4 FROM UNNEST($1::text[], $2::timestamptz[], $3::float8[])";

/// Stores a group of samples, records the unknown circuits among them and returns those, in
/// one statement. The ids are looked up once each, by index.
const SAVE_CHECKED: &str = "
WITH batch AS (
    SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::float8[])
        AS b (circuit_id, ts, utilization_mbps)
), stored AS (
    INSERT INTO telemetry (circuit_id, ts, utilization_mbps, received_at)
    SELECT circuit_id, ts, utilization_mbps, $4 FROM batch
), unknown AS (
    SELECT t.* FROM (
        SELECT circuit_id, count(*) AS samples, min(ts) AS first_seen, max(ts) AS last_seen
        FROM batch GROUP BY circuit_id
    ) t
    LEFT JOIN LATERAL (
        SELECT 1 AS known FROM circuits c WHERE c.circuit_id = t.circuit_id LIMIT 1
    ) k ON true
    WHERE k.known IS NULL
), listed AS (
    INSERT INTO telemetry_unknown (circuit_id, samples, first_seen, last_seen)
    -- In id order: two statements sharing new ids then lock their rows in the same order.
    SELECT circuit_id, samples, first_seen, last_seen FROM unknown ORDER BY circuit_id
    ON CONFLICT (circuit_id) DO UPDATE SET
        samples = telemetry_unknown.samples + excluded.samples,
        first_seen = least(telemetry_unknown.first_seen, excluded.first_seen),
        last_seen = greatest(telemetry_unknown.last_seen, excluded.last_seen)
)
SELECT circuit_id FROM unknown";

#[async_trait]
impl TelemetryStore for PostgresStore {
    async fn save_telemetry(
        &self,
        samples: &[TelemetrySample],
        now: DateTime<Utc>,
    ) -> Result<BTreeSet<String>> {
        let all_known = {
            let known = self
                .known_circuits
                .read()
                .unwrap_or_else(|e| e.into_inner());
            samples.iter().all(|s| known.contains(&s.circuit_id))
        };
        let statement = if all_known { SAVE_KNOWN } else { SAVE_CHECKED };
        let unknown: Vec<String> = sqlx::query_scalar(statement)
            .bind(
                samples
                    .iter()
                    .map(|s| s.circuit_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(samples.iter().map(|s| s.at).collect::<Vec<_>>())
            .bind(
                samples
                    .iter()
                    .map(|s| s.utilization_mbps)
                    .collect::<Vec<_>>(),
            )
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("storing telemetry"))?;
        let unknown: BTreeSet<String> = unknown.into_iter().collect();
        if !all_known {
            let mut known = self
                .known_circuits
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for s in samples {
                if !unknown.contains(&s.circuit_id) && !known.contains(&s.circuit_id) {
                    known.insert(s.circuit_id.clone());
                }
            }
        }
        Ok(unknown)
    }

    async fn telemetry(
        &self,
        circuit_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<TelemetryPoint>> {
        let rows = sqlx::query(
            "SELECT ts, utilization_mbps FROM telemetry
             WHERE circuit_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4",
        )
        .bind(circuit_id)
        .bind(from)
        .bind(to)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading telemetry"))?;
        rows.iter()
            .map(|r| {
                Ok(TelemetryPoint {
                    timestamp: r.try_get("ts")?,
                    utilization_mbps: r.try_get("utilization_mbps")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(failed("reading telemetry"))
    }

    async fn save_circuits(&self, circuits: &[CircuitRecord], now: DateTime<Utc>) -> Result<()> {
        let action = "saving circuits";
        let mut tx = self.pool.begin().await.map_err(failed(action))?;
        for c in circuits {
            sqlx::query(sql::telemetry::UPSERT_CIRCUIT.postgres)
                .bind(&c.circuit_id)
                .bind(&c.account)
                .bind(c.provisioned_mbps)
                .bind(c.burst_mbps)
                .bind(&c.pop)
                .bind(c.provisioned_at)
                .bind(c.upgraded_at)
                .bind(c.decommissioned_at)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(failed(action))?;
            sqlx::query(sql::telemetry::FORGET_UNKNOWN_CIRCUIT.postgres)
                .bind(&c.circuit_id)
                .execute(&mut *tx)
                .await
                .map_err(failed(action))?;
        }
        tx.commit().await.map_err(failed(action))
    }

    async fn circuit(&self, circuit_id: &str) -> Result<Option<CircuitRecord>> {
        sqlx::query(sql::telemetry::CIRCUIT.postgres)
            .bind(circuit_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("reading a circuit"))?
            .map(|r| circuit_row(&r))
            .transpose()
            .map_err(failed("reading a circuit"))
    }

    async fn circuits(&self, limit: u32, offset: u32) -> Result<Vec<CircuitRecord>> {
        let rows = sqlx::query(sql::telemetry::CIRCUITS.postgres)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing circuits"))?;
        rows.iter()
            .map(circuit_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing circuits"))
    }

    async fn unknown_circuits(&self) -> Result<Vec<UnknownCircuit>> {
        let rows = sqlx::query(sql::telemetry::UNKNOWN_CIRCUITS.postgres)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing unknown circuits"))?;
        rows.iter()
            .map(|r| {
                Ok(UnknownCircuit {
                    circuit_id: r.try_get("circuit_id")?,
                    samples: r.try_get("samples")?,
                    first_seen: r.try_get("first_seen")?,
                    last_seen: r.try_get("last_seen")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing unknown circuits"))
    }

    async fn delete_telemetry_before(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64> {
        sqlx::query(
            "DELETE FROM telemetry WHERE ctid IN
                 (SELECT ctid FROM telemetry WHERE ts < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(failed("deleting old telemetry"))
    }

    async fn circuits_by_ids(&self, ids: &[String]) -> Result<Vec<CircuitRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {CIRCUIT_COLUMNS} FROM circuits WHERE circuit_id = ANY($1::text[])"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading circuits"))?;
        rows.iter()
            .map(circuit_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("reading circuits"))
    }

    async fn open_circuit_maxout(
        &self,
        c: &CircuitRecord,
        e: &CircuitEvent,
        open: bool,
        historical: bool,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        sqlx::query_scalar(sql::telemetry::OPEN_CIRCUIT_MAXOUT.postgres)
            .bind(&c.circuit_id)
            .bind(&c.account)
            .bind(e.severity.as_str())
            .bind(at(e.start))
            .bind(at(e.end))
            .bind(e.samples as i32)
            .bind(e.peak_mbps)
            .bind(c.provisioned_mbps)
            .bind(c.burst_mbps)
            .bind(open)
            .bind(now)
            .bind(at(e.peak_at))
            .bind(historical)
            .fetch_one(&self.pool)
            .await
            .map_err(failed("recording a circuit maxout"))
    }

    async fn update_circuit_maxout(&self, id: i64, e: &CircuitEvent, open: bool) -> Result<()> {
        sqlx::query(sql::telemetry::UPDATE_CIRCUIT_MAXOUT.postgres)
            .bind(id)
            .bind(at(e.start))
            .bind(at(e.end))
            .bind(e.samples as i32)
            .bind(e.peak_mbps)
            .bind(at(e.peak_at))
            .bind(e.severity.as_str())
            .bind(open)
            .execute(&self.pool)
            .await
            .map_err(failed("updating a circuit maxout"))?;
        Ok(())
    }

    async fn withdraw_circuit_maxout(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE circuit_maxouts SET withdrawn_at = $2, open = false WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(failed("withdrawing a circuit maxout"))?;
        Ok(())
    }

    async fn circuits_version(&self) -> Result<i64> {
        sqlx::query_scalar(sql::telemetry::CIRCUITS_VERSION.postgres)
            .fetch_one(&self.pool)
            .await
            .map_err(failed("reading the circuits' version"))
    }

    async fn save_late_telemetry(&self, samples: &[LateSample]) -> Result<()> {
        let column =
            |f: fn(&LateSample) -> DateTime<Utc>| samples.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO late_telemetry (circuit_id, ts, utilization_mbps, newest, received_at)
             SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::float8[],
                 $4::timestamptz[], $5::timestamptz[])",
        )
        .bind(
            samples
                .iter()
                .map(|l| l.circuit_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(column(|l| l.timestamp))
        .bind(
            samples
                .iter()
                .map(|l| l.utilization_mbps)
                .collect::<Vec<_>>(),
        )
        .bind(column(|l| l.newest))
        .bind(column(|l| l.received_at))
        .execute(&self.pool)
        .await
        .map_err(failed("listing late telemetry"))?;
        Ok(())
    }

    async fn late_telemetry(&self, limit: u32) -> Result<Vec<LateSample>> {
        let rows = sqlx::query(
            "SELECT circuit_id, ts, utilization_mbps, newest, received_at FROM late_telemetry
             ORDER BY received_at DESC, ctid DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading late telemetry"))?;
        rows.iter()
            .map(|r| {
                Ok(LateSample {
                    circuit_id: r.try_get("circuit_id")?,
                    timestamp: r.try_get("ts")?,
                    utilization_mbps: r.try_get("utilization_mbps")?,
                    newest: r.try_get("newest")?,
                    received_at: r.try_get("received_at")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(failed("reading late telemetry"))
    }

    async fn circuit_maxouts(&self, q: &CircuitMaxoutQuery) -> Result<Vec<CircuitMaxoutRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM circuit_maxouts
             WHERE ($1::text IS NULL OR account = $1) AND ($2::text IS NULL OR circuit_id = $2)
               AND ($3::timestamptz IS NULL OR end_at >= $3)
               AND ($4::timestamptz IS NULL OR start_at < $4)
               AND (NOT $6 OR open) AND withdrawn_at IS NULL
             ORDER BY start_at, id LIMIT $5",
            sql::telemetry::MAXOUT_COLUMNS
        ))
        .bind(&q.account)
        .bind(&q.circuit_id)
        .bind(q.from)
        .bind(q.to)
        .bind(i64::from(q.limit))
        .bind(q.open_only)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("listing circuit maxouts"))?;
        rows.iter()
            .map(maxout_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing circuit maxouts"))
    }

    async fn circuit_maxout_summary(
        &self,
        q: &CircuitMaxoutQuery,
    ) -> Result<Vec<AccountMaxoutSummary>> {
        let rows = sqlx::query(
            "SELECT account, count(*) AS events, count(DISTINCT circuit_id) AS circuits,
                 (sum(extract(epoch FROM end_at - start_at)) / 3600.0)::float8 AS hours_at_max,
                 max(100.0 * peak_mbps / provisioned_mbps) AS peak_pct,
                 (array_agg(peak_mbps ORDER BY peak_mbps / provisioned_mbps DESC))[1] AS peak_mbps
             FROM circuit_maxouts
             WHERE ($1::text IS NULL OR account = $1)
               AND ($2::timestamptz IS NULL OR end_at >= $2)
               AND ($3::timestamptz IS NULL OR start_at < $3)
               AND withdrawn_at IS NULL
             GROUP BY account ORDER BY account",
        )
        .bind(&q.account)
        .bind(q.from)
        .bind(q.to)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("summing circuit maxouts"))?;
        rows.iter()
            .map(|r| {
                Ok(AccountMaxoutSummary {
                    account: r.try_get("account")?,
                    events: r.try_get("events")?,
                    circuits: r.try_get("circuits")?,
                    hours_at_max: r.try_get("hours_at_max")?,
                    peak_mbps: r.try_get("peak_mbps")?,
                    peak_pct: r.try_get("peak_pct")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(failed("summing circuit maxouts"))
    }

    async fn mark_circuit_maxout_notified(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(sql::telemetry::MARK_CIRCUIT_MAXOUT_NOTIFIED.postgres)
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(failed("marking a circuit maxout notified"))?;
        Ok(())
    }

    async fn claim_customer_email(
        &self,
        circuit_id: &str,
        start: i64,
        cooldown_ms: i64,
    ) -> Result<Option<EmailClaim>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(failed("claiming a customer email"))?;
        claim_customer_email(&mut conn, circuit_id, start, cooldown_ms, None)
            .await
            .map_err(failed("claiming a customer email"))
    }

    async fn release_customer_email(&self, circuit_id: &str, claim: &EmailClaim) -> Result<()> {
        sqlx::query(sql::telemetry::RELEASE_CUSTOMER_EMAIL.postgres)
            .bind(circuit_id)
            .bind(claim.start)
            .bind(claim.previous)
            .execute(&self.pool)
            .await
            .map_err(failed("giving back a customer email claim"))?;
        Ok(())
    }

    async fn queue_customer_email(
        &self,
        job: &CustomerEmailJob,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let action = "queueing a customer email";
        let mut tx = self.pool.begin().await.map_err(failed(action))?;
        let claimed = claim_customer_email(
            &mut tx,
            &job.circuit_id,
            job.start,
            job.cooldown_ms,
            Some(job.event_id),
        )
        .await
        .map_err(failed(action))?;
        let mut queued = None;
        if claimed.is_some() {
            let inserted: Option<i64> =
                sqlx::query_scalar(sql::telemetry::QUEUE_CUSTOMER_EMAIL.postgres)
                    .bind(job.event_id)
                    .bind(job.channel)
                    .bind(&job.circuit_id)
                    .bind(job.severity.as_str())
                    .bind(now)
                    .bind(serde_json::to_string(&job.event).unwrap_or_default())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(failed(action))?;
            queued = match inserted {
                Some(id) => Some(id),
                None => sqlx::query_scalar(sql::telemetry::QUEUED_CUSTOMER_EMAIL.postgres)
                    .bind(job.event_id)
                    .bind(job.channel)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(failed(action))?,
            };
        }
        tx.commit().await.map_err(failed(action))?;
        Ok(queued)
    }

    async fn customer_email_claim(
        &self,
        circuit_id: &str,
        event_id: i64,
    ) -> Result<Option<EmailClaim>> {
        let row: Option<(Option<i64>, Option<i64>)> =
            sqlx::query_as(sql::telemetry::CUSTOMER_EMAIL_CLAIM.postgres)
                .bind(circuit_id)
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(failed("reading a customer email claim"))?;
        Ok(row.and_then(|(start, previous)| start.map(|start| EmailClaim { start, previous })))
    }

    async fn circuit_maxout(&self, id: i64) -> Result<Option<CircuitMaxoutRecord>> {
        sqlx::query(sql::telemetry::CIRCUIT_MAXOUT.postgres)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .and_then(|row| row.as_ref().map(maxout_row).transpose())
            .map_err(failed("reading a circuit maxout"))
    }
}

/// The cooldown claim ([`sql::telemetry::CLAIM_CUSTOMER_EMAIL`]) on `conn`.
async fn claim_customer_email(
    conn: &mut sqlx::PgConnection,
    circuit_id: &str,
    start: i64,
    cooldown_ms: i64,
    event_id: Option<i64>,
) -> sqlx::Result<Option<EmailClaim>> {
    let granted: Option<Option<i64>> =
        sqlx::query_scalar(sql::telemetry::CLAIM_CUSTOMER_EMAIL.postgres)
            .bind(circuit_id)
            .bind(start)
            .bind(cooldown_ms)
            .bind(event_id)
            .fetch_optional(conn)
            .await?;
    Ok(granted.map(|previous| EmailClaim { start, previous }))
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
