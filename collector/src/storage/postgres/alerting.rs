//! [`AlertStore`] on PostgreSQL. Claims take due rows `FOR UPDATE SKIP LOCKED`, so several
//! collectors on one database each get different notifications and none waits for another.

use super::PostgresStore;
use crate::storage::alerting::{
    AlertEvent, AlertJob, AlertOutcome, AlertQuery, AlertRow, AlertStore, Anomaly, AnomalyKind,
    AnomalyQuery, AnomalyState, NewAnomaly, NewSilence, Opened, PlannedAlert, Severity, Silence,
    UnknownKind,
};
use crate::storage::sql;
use crate::storage::sql::alerting::ALERT_COLUMNS;
use crate::storage::sql::alerting::ANOMALY_COLUMNS;
use crate::storage::{failed, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use std::time::Duration;

/// A stored anomaly kind; a name this build does not know is a decode error naming the column.
fn parse_kind(column: &str, text: &str) -> sqlx::Result<AnomalyKind> {
    text.parse()
        .map_err(|err: UnknownKind| sqlx::Error::ColumnDecode {
            index: column.to_string(),
            source: Box::new(err),
        })
}

fn kind_column(r: &PgRow, column: &str) -> sqlx::Result<AnomalyKind> {
    parse_kind(column, &r.try_get::<String, _>(column)?)
}

fn anomaly_row(r: &PgRow) -> sqlx::Result<Anomaly> {
    let severity: String = r.try_get("severity")?;
    let state: String = r.try_get("state")?;
    let details: String = r.try_get("details")?;
    Ok(Anomaly {
        id: r.try_get("id")?,
        kind: kind_column(r, "kind")?,
        subject: r.try_get("subject")?,
        group_key: r.try_get("group_key")?,
        severity: Severity::parse(&severity).unwrap_or(Severity::Medium),
        state: AnomalyState::parse(&state).unwrap_or(AnomalyState::Open),
        summary: r.try_get("summary")?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        suppressed: r.try_get("suppressed")?,
        opened_at: r.try_get("opened_at")?,
        updated_at: r.try_get("updated_at")?,
        acknowledged_at: r.try_get("ack_at")?,
        acknowledged_by: r.try_get("ack_by")?,
        acknowledge_note: r.try_get("ack_note")?,
        resolved_at: r.try_get("resolved_at")?,
        resolved_by: r.try_get("resolved_by")?,
        resolve_note: r.try_get("resolve_note")?,
    })
}

fn alert_row(r: &PgRow) -> sqlx::Result<AlertRow> {
    let event: String = r.try_get("event")?;
    let severity: String = r.try_get("severity")?;
    Ok(AlertRow {
        id: r.try_get("id")?,
        anomaly_id: r.try_get("anomaly_id")?,
        channel: r.try_get("channel")?,
        recipient: r.try_get("recipient")?,
        event: AlertEvent::parse(&event).unwrap_or(AlertEvent::Open),
        step: r.try_get("step")?,
        severity: Severity::parse(&severity).unwrap_or(Severity::Medium),
        state: r.try_get("state")?,
        due_at: r.try_get("due_at")?,
        attempts: r.try_get("attempts")?,
        recovered: r.try_get("recovered")?,
        error: r.try_get("error")?,
        sent_at: r.try_get("sent_at")?,
        created_at: r.try_get("created_at")?,
        acknowledged_at: r.try_get("ack_at")?,
        acknowledged_by: r.try_get("ack_by")?,
        circuit_event_id: r.try_get("circuit_event_id")?,
        details: r
            .try_get::<Option<String>, _>("details")?
            .map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::Null)),
    })
}

fn interval(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(365 * 100))
}

async fn get_anomaly(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Anomaly>> {
    sqlx::query(sql::alerting::GET_ANOMALY.postgres)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| anomaly_row(&r))
        .transpose()
}

async fn get_alert(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<AlertRow>> {
    sqlx::query(sql::alerting::GET_ALERT.postgres)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| alert_row(&r))
        .transpose()
}

async fn cancel_pending(conn: &mut PgConnection, anomaly_id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE alerts SET state = 'cancelled' WHERE anomaly_id = $1 AND state = 'pending'
             AND event IN ('open', 'repeat', 'escalate')",
    )
    .bind(anomaly_id)
    .execute(conn)
    .await?;
    Ok(())
}

async fn acknowledge(
    conn: &mut PgConnection,
    id: i64,
    by: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let changed = sqlx::query(sql::alerting::ACKNOWLEDGE_ANOMALY.postgres)
        .bind(id)
        .bind(now)
        .bind(by)
        .bind(note)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if changed > 0 {
        cancel_pending(&mut *conn, id).await?;
        sqlx::query(sql::alerting::ACKNOWLEDGE_ANOMALY_ALERTS.postgres)
            .bind(id)
            .bind(now)
            .bind(by)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl AlertStore for PostgresStore {
    async fn open_anomaly(
        &self,
        a: &NewAnomaly,
        suppressed: Option<&str>,
        plan: &[PlannedAlert],
        now: DateTime<Utc>,
    ) -> Result<Opened> {
        let action = "opening an anomaly";
        let mut tx = self.pool.begin().await.map_err(failed(action))?;
        let key = a.dedup_key();
        let details = a.details.to_string();
        // Insert-or-nothing on the partial unique index: two collectors detecting the same
        // thing at once get one row, and the loser refreshes it instead.
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO anomalies (dedup_key, kind, subject, group_key, severity, state, summary,
                 details, suppressed, opened_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $9, $9)
             ON CONFLICT (dedup_key) WHERE state <> 'resolved' DO NOTHING
             RETURNING id",
        )
        .bind(&key)
        .bind(a.kind.as_str())
        .bind(&a.subject)
        .bind(&a.group_key)
        .bind(a.severity.as_str())
        .bind(&a.summary)
        .bind(&details)
        .bind(suppressed)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed(action))?;
        let outcome = match inserted {
            Some(id) => {
                if suppressed.is_none() {
                    for p in plan {
                        sqlx::query(sql::alerting::QUEUE_ALERT.postgres)
                            .bind(id)
                            .bind(&p.channel)
                            .bind(&p.recipient)
                            .bind(p.event.as_str())
                            .bind(p.step)
                            .bind(p.severity.as_str())
                            .bind(p.repeat.as_secs() as i32)
                            .bind(now + interval(p.delay))
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(failed("queueing notifications"))?;
                    }
                }
                Opened::New(id)
            }
            None => {
                let row = sqlx::query(
                    "SELECT id, severity FROM anomalies WHERE dedup_key = $1 AND state <> 'resolved'
                     FOR UPDATE",
                )
                .bind(&key)
                .fetch_one(&mut *tx)
                .await
                .map_err(failed(action))?;
                let id: i64 = row.try_get("id").map_err(failed(action))?;
                let stored: String = row.try_get("severity").map_err(failed(action))?;
                let severity = Severity::parse(&stored)
                    .unwrap_or(a.severity)
                    .max(a.severity);
                sqlx::query(sql::alerting::REFRESH_ANOMALY.postgres)
                    .bind(id)
                    .bind(severity.as_str())
                    .bind(&a.summary)
                    .bind(&details)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed("refreshing an anomaly"))?;
                Opened::Existing(id)
            }
        };
        tx.commit().await.map_err(failed(action))?;
        Ok(outcome)
    }

    async fn active_anomaly(&self, dedup_key: &str) -> Result<Option<Anomaly>> {
        sqlx::query(sql::alerting::ACTIVE_ANOMALY.postgres)
            .bind(dedup_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("reading an anomaly"))?
            .map(|r| anomaly_row(&r))
            .transpose()
            .map_err(failed("reading an anomaly"))
    }

    async fn resolve_anomaly(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Anomaly>> {
        let action = "resolving an anomaly";
        let mut tx = self.pool.begin().await.map_err(failed(action))?;
        let changed = sqlx::query(sql::alerting::RESOLVE_ANOMALY.postgres)
            .bind(id)
            .bind(now)
            .bind(by)
            .bind(note)
            .execute(&mut *tx)
            .await
            .map_err(failed(action))?
            .rows_affected();
        if changed > 0 {
            cancel_pending(&mut tx, id).await.map_err(failed(action))?;
            sqlx::query(
                "INSERT INTO alerts (anomaly_id, channel, recipient, event, step, severity,
                     repeat_secs, state, due_at, created_at)
                 SELECT DISTINCT anomaly_id, channel, recipient, 'resolve', 0,
                     (SELECT severity FROM anomalies WHERE id = $1), 0, 'pending', $2::timestamptz,
                     $2::timestamptz
                 FROM alerts WHERE anomaly_id = $1 AND event <> 'resolve'
                     AND state IN ('sent', 'sending')
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(failed("queueing resolve notices"))?;
        }
        let anomaly = get_anomaly(&mut tx, id).await.map_err(failed(action))?;
        tx.commit().await.map_err(failed(action))?;
        Ok(anomaly)
    }

    async fn acknowledge_anomaly(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Anomaly>> {
        let action = "acknowledging an anomaly";
        let mut tx = self.pool.begin().await.map_err(failed(action))?;
        acknowledge(&mut tx, id, by, note, now)
            .await
            .map_err(failed(action))?;
        let anomaly = get_anomaly(&mut tx, id).await.map_err(failed(action))?;
        tx.commit().await.map_err(failed(action))?;
        Ok(anomaly)
    }

    async fn anomaly(&self, id: i64) -> Result<Option<Anomaly>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(failed("reading an anomaly"))?;
        get_anomaly(&mut conn, id)
            .await
            .map_err(failed("reading an anomaly"))
    }

    async fn anomalies(&self, q: &AnomalyQuery) -> Result<Vec<Anomaly>> {
        let mut sql = format!("SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE true");
        let mut args: Vec<String> = Vec::new();
        let mut filter = |column: &str, value: Option<String>| {
            if let Some(v) = value {
                args.push(v);
                sql.push_str(&format!(" AND {column} = ${}", args.len()));
            }
        };
        filter("severity", q.severity.map(|s| s.as_str().to_string()));
        filter("state", q.state.map(|s| s.as_str().to_string()));
        filter("kind", q.kind.map(|k| k.as_str().to_string()));
        filter("subject", q.subject.clone());
        filter("group_key", q.group_key.clone());
        sql.push_str(&format!(
            " ORDER BY opened_at DESC, id DESC LIMIT {} OFFSET {}",
            q.limit, q.offset
        ));
        let mut query = sqlx::query(&sql);
        for arg in &args {
            query = query.bind(arg);
        }
        query
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing anomalies"))?
            .iter()
            .map(anomaly_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing anomalies"))
    }

    async fn claim_alerts(
        &self,
        channel: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<AlertJob>> {
        let action = "claiming alerts";
        let mut tx = self.pool.begin().await.map_err(failed(action))?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE alerts SET state = 'sending', claimed_by = $2, claim_until_at = $4,
                 attempts = attempts + 1, recovered = recovered OR state = 'sending'
             WHERE id IN (
                 SELECT id FROM alerts
                 WHERE channel = $1 AND ((state = 'pending' AND due_at <= $3)
                     OR (state = 'sending' AND claim_until_at < $3))
                 ORDER BY due_at, id LIMIT $5
                 FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .bind(channel)
        .bind(holder)
        .bind(now)
        .bind(now + interval(lease))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(failed(action))?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            let alert = get_alert(&mut tx, id).await.map_err(failed(action))?;
            let Some(alert) = alert else { continue };
            let anomaly = match alert.anomaly_id {
                Some(id) => get_anomaly(&mut tx, id).await.map_err(failed(action))?,
                None => None,
            };
            jobs.push(AlertJob { alert, anomaly });
        }
        tx.commit().await.map_err(failed(action))?;
        jobs.sort_by_key(|j| (j.alert.due_at, j.alert.id));
        Ok(jobs)
    }

    async fn finish_alert(
        &self,
        id: i64,
        holder: &str,
        outcome: &AlertOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let action = "recording a send";
        let mut tx = self.pool.begin().await.map_err(failed(action))?;
        let changed = match outcome {
            AlertOutcome::Sent => sqlx::query(sql::alerting::ALERT_SENT.postgres)
                .bind(id)
                .bind(holder)
                .bind(now),
            AlertOutcome::Retry { at, error } => sqlx::query(sql::alerting::ALERT_RETRY.postgres)
                .bind(id)
                .bind(holder)
                .bind(*at)
                .bind(error),
            AlertOutcome::Defer { at } => sqlx::query(
                "UPDATE alerts SET state = 'pending', due_at = $3, claimed_by = NULL,
                     attempts = GREATEST(attempts - 1, 0)
                 WHERE id = $1 AND claimed_by = $2 AND state = 'sending'",
            )
            .bind(id)
            .bind(holder)
            .bind(*at),
            AlertOutcome::Failed { error } => sqlx::query(sql::alerting::ALERT_FAILED.postgres)
                .bind(id)
                .bind(holder)
                .bind(error),
        }
        .execute(&mut *tx)
        .await
        .map_err(failed(action))?
        .rows_affected();
        if changed > 0 && *outcome == AlertOutcome::Sent {
            sqlx::query(
                "INSERT INTO alerts (anomaly_id, channel, recipient, event, step, severity,
                     repeat_secs, state, due_at, created_at)
                 SELECT a.anomaly_id, a.channel, a.recipient, 'repeat', a.step + 1, a.severity,
                     a.repeat_secs, 'pending', $2 + make_interval(secs => a.repeat_secs), $2
                 FROM alerts a JOIN anomalies n ON n.id = a.anomaly_id
                 WHERE a.id = $1 AND a.repeat_secs > 0 AND n.state = 'open'
                     AND a.event IN ('open', 'repeat')
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(failed("queueing a repeat"))?;
        }
        tx.commit().await.map_err(failed(action))?;
        Ok(changed > 0)
    }

    async fn next_alert_due(&self, channel: &str) -> Result<Option<DateTime<Utc>>> {
        sqlx::query_scalar(sql::alerting::NEXT_ALERT_DUE.postgres)
            .bind(channel)
            .fetch_one(&self.pool)
            .await
            .map_err(failed("reading the outbox"))
    }

    async fn alert(&self, id: i64) -> Result<Option<AlertRow>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(failed("reading an alert"))?;
        get_alert(&mut conn, id)
            .await
            .map_err(failed("reading an alert"))
    }

    async fn alerts(&self, q: &AlertQuery) -> Result<Vec<AlertRow>> {
        let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE true");
        let mut args: Vec<String> = Vec::new();
        if let Some(channel) = &q.channel {
            args.push(channel.clone());
            sql.push_str(&format!(" AND channel = ${}", args.len()));
        }
        if let Some(state) = &q.state {
            args.push(state.clone());
            sql.push_str(&format!(" AND state = ${}", args.len()));
        }
        if let Some(anomaly) = q.anomaly_id {
            args.push(anomaly.to_string());
            sql.push_str(&format!(" AND anomaly_id = ${}::bigint", args.len()));
        }
        match q.acknowledged {
            Some(true) => sql.push_str(" AND ack_at IS NOT NULL"),
            Some(false) => sql.push_str(" AND ack_at IS NULL"),
            None => {}
        }
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT {} OFFSET {}",
            q.limit, q.offset
        ));
        let mut query = sqlx::query(&sql);
        for arg in &args {
            query = query.bind(arg);
        }
        query
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing alerts"))?
            .iter()
            .map(alert_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing alerts"))
    }

    async fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AlertRow>> {
        let action = "acknowledging an alert";
        let mut tx = self.pool.begin().await.map_err(failed(action))?;
        let Some(alert) = get_alert(&mut tx, id).await.map_err(failed(action))? else {
            return Ok(None);
        };
        sqlx::query(sql::alerting::ACKNOWLEDGE_ALERT.postgres)
            .bind(id)
            .bind(now)
            .bind(by)
            .execute(&mut *tx)
            .await
            .map_err(failed(action))?;
        if let Some(anomaly_id) = alert.anomaly_id {
            acknowledge(&mut tx, anomaly_id, by, None, now)
                .await
                .map_err(failed(action))?;
        }
        let alert = get_alert(&mut tx, id).await.map_err(failed(action))?;
        tx.commit().await.map_err(failed(action))?;
        Ok(alert)
    }

    async fn create_silence(&self, s: &NewSilence, now: DateTime<Utc>) -> Result<Silence> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO silences (kind, subject, group_key, severity, starts_at, ends_at,
                 created_by, comment, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING id",
        )
        .bind(s.kind.map(AnomalyKind::as_str))
        .bind(&s.subject)
        .bind(&s.group_key)
        .bind(s.severity.map(Severity::as_str))
        .bind(s.starts_at)
        .bind(s.ends_at)
        .bind(&s.created_by)
        .bind(&s.comment)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("creating a silence"))?;
        Ok(Silence {
            id,
            spec: s.clone(),
            created_at: now,
        })
    }

    async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>> {
        let rows = sqlx::query(sql::alerting::SILENCES.postgres)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing silences"))?;
        rows.iter()
            .map(|r| -> sqlx::Result<Silence> {
                let severity: Option<String> = r.try_get("severity")?;
                Ok(Silence {
                    id: r.try_get("id")?,
                    spec: NewSilence {
                        kind: r
                            .try_get::<Option<String>, _>("kind")?
                            .map(|k| parse_kind("kind", &k))
                            .transpose()?,
                        subject: r.try_get("subject")?,
                        group_key: r.try_get("group_key")?,
                        severity: severity.as_deref().and_then(Severity::parse),
                        starts_at: r.try_get("starts_at")?,
                        ends_at: r.try_get("ends_at")?,
                        created_by: r.try_get("created_by")?,
                        comment: r.try_get("comment")?,
                    },
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing silences"))
    }

    async fn delete_silence(&self, id: i64) -> Result<bool> {
        Ok(sqlx::query(sql::alerting::DELETE_SILENCE.postgres)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(failed("deleting a silence"))?
            .rows_affected()
            > 0)
    }
}
