//! [`AlertStore`] on SQLite. One writer, so a claim is a plain update in a transaction.

use super::{from_ms, ms, SqliteStore};
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
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use std::time::Duration;

fn opt_ms(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(from_ms)
}

/// A stored anomaly kind; a name this build does not know is a conversion error naming the
/// column.
fn parse_kind(column: usize, text: &str) -> rusqlite::Result<AnomalyKind> {
    text.parse().map_err(|err: UnknownKind| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            Box::new(err),
        )
    })
}

fn kind_column(r: &Row<'_>, column: usize) -> rusqlite::Result<AnomalyKind> {
    parse_kind(column, &r.get::<_, String>(column)?)
}

fn anomaly_row(r: &Row<'_>) -> rusqlite::Result<Anomaly> {
    let severity: String = r.get(4)?;
    let state: String = r.get(5)?;
    let details: String = r.get(7)?;
    Ok(Anomaly {
        id: r.get(0)?,
        kind: kind_column(r, 1)?,
        subject: r.get(2)?,
        group_key: r.get(3)?,
        severity: Severity::parse(&severity).unwrap_or(Severity::Medium),
        state: AnomalyState::parse(&state).unwrap_or(AnomalyState::Open),
        summary: r.get(6)?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        suppressed: r.get(8)?,
        opened_at: from_ms(r.get(9)?),
        updated_at: from_ms(r.get(10)?),
        acknowledged_at: opt_ms(r.get(11)?),
        acknowledged_by: r.get(12)?,
        acknowledge_note: r.get(13)?,
        resolved_at: opt_ms(r.get(14)?),
        resolved_by: r.get(15)?,
        resolve_note: r.get(16)?,
    })
}

fn alert_row(r: &Row<'_>) -> rusqlite::Result<AlertRow> {
    let event: String = r.get(4)?;
    let severity: String = r.get(6)?;
    Ok(AlertRow {
        id: r.get(0)?,
        anomaly_id: r.get(1)?,
        channel: r.get(2)?,
        recipient: r.get(3)?,
        event: AlertEvent::parse(&event).unwrap_or(AlertEvent::Open),
        step: r.get(5)?,
        severity: Severity::parse(&severity).unwrap_or(Severity::Medium),
        state: r.get(7)?,
        due_at: from_ms(r.get(8)?),
        attempts: r.get(9)?,
        recovered: r.get::<_, i64>(10)? != 0,
        error: r.get(11)?,
        sent_at: opt_ms(r.get(12)?),
        created_at: from_ms(r.get(13)?),
        acknowledged_at: opt_ms(r.get(14)?),
        acknowledged_by: r.get(15)?,
        circuit_event_id: r.get(16)?,
        details: r
            .get::<_, Option<String>>(17)?
            .map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::Null)),
    })
}

fn get_anomaly(conn: &Connection, id: i64) -> rusqlite::Result<Option<Anomaly>> {
    conn.query_row(sql::alerting::GET_ANOMALY.sqlite, [id], anomaly_row)
        .optional()
}

fn get_alert(conn: &Connection, id: i64) -> rusqlite::Result<Option<AlertRow>> {
    conn.query_row(sql::alerting::GET_ALERT.sqlite, [id], alert_row)
        .optional()
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn cancel_pending(conn: &Connection, anomaly_id: i64, events: &str) -> rusqlite::Result<usize> {
    conn.execute(
        &format!(
            "UPDATE alerts SET state = 'cancelled' WHERE anomaly_id = ?1 AND state = 'pending'
                 AND event IN ({events})"
        ),
        [anomaly_id],
    )
}

fn acknowledge(
    conn: &Connection,
    id: i64,
    by: &str,
    note: Option<&str>,
    now: i64,
) -> rusqlite::Result<()> {
    let changed = conn.execute(
        sql::alerting::ACKNOWLEDGE_ANOMALY.sqlite,
        params![id, now, by, note],
    )?;
    if changed > 0 {
        cancel_pending(conn, id, "'open', 'repeat', 'escalate'")?;
        conn.execute(
            sql::alerting::ACKNOWLEDGE_ANOMALY_ALERTS.sqlite,
            params![id, now, by],
        )?;
    }
    Ok(())
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn open_anomaly(
        &self,
        anomaly: &NewAnomaly,
        suppressed: Option<&str>,
        plan: &[PlannedAlert],
        now: DateTime<Utc>,
    ) -> Result<Opened> {
        let (a, suppressed, plan) = (
            anomaly.clone(),
            suppressed.map(str::to_string),
            plan.to_vec(),
        );
        self.write(move |w| {
            let tx = w
                .conn
                .transaction()
                .map_err(failed("opening an anomaly"))?;
            let now = ms(now);
            let key = a.dedup_key();
            let details = a.details.to_string();
            let existing: Option<(i64, String)> = tx
                .query_row(
                    "SELECT id, severity FROM anomalies WHERE dedup_key = ?1 AND state <> 'resolved'",
                    [&key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(failed("opening an anomaly"))?;
            let outcome = if let Some((id, severity)) = existing {
                let severity = Severity::parse(&severity)
                    .unwrap_or(a.severity)
                    .max(a.severity);
                tx.execute(
                    sql::alerting::REFRESH_ANOMALY.sqlite,
                    params![id, severity.as_str(), a.summary, details, now],
                )
                .map_err(failed("refreshing an anomaly"))?;
                Opened::Existing(id)
            } else {
                tx.execute(
                    "INSERT INTO anomalies (dedup_key, kind, subject, group_key, severity, state,
                         summary, details, suppressed, opened_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7, ?8, ?9, ?9)",
                    params![
                        key,
                        a.kind.as_str(),
                        a.subject,
                        a.group_key,
                        a.severity.as_str(),
                        a.summary,
                        details,
                        suppressed,
                        now
                    ],
                )
                .map_err(failed("opening an anomaly"))?;
                let id = tx.last_insert_rowid();
                if suppressed.is_none() {
                    let mut insert = tx
                        .prepare(
                            sql::alerting::QUEUE_ALERT.sqlite,
                        )
                        .map_err(failed("queueing notifications"))?;
                    for p in &plan {
                        insert
                            .execute(params![
                                id,
                                p.channel,
                                p.recipient,
                                p.event.as_str(),
                                p.step,
                                p.severity.as_str(),
                                p.repeat.as_secs() as i64,
                                now + duration_ms(p.delay),
                                now
                            ])
                            .map_err(failed("queueing notifications"))?;
                    }
                }
                Opened::New(id)
            };
            tx.commit().map_err(failed("opening an anomaly"))?;
            Ok(outcome)
        })
        .await
    }

    async fn active_anomaly(&self, dedup_key: &str) -> Result<Option<Anomaly>> {
        let key = dedup_key.to_string();
        self.read(move |conn| {
            conn.query_row(sql::alerting::ACTIVE_ANOMALY.sqlite, [key], anomaly_row)
                .optional()
                .map_err(failed("reading an anomaly"))
        })
        .await
    }

    async fn resolve_anomaly(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Anomaly>> {
        let (by, note) = (by.to_string(), note.map(str::to_string));
        self.write(move |w| {
            let tx = w
                .conn
                .transaction()
                .map_err(failed("resolving an anomaly"))?;
            let now = ms(now);
            let changed = tx
                .execute(
                    sql::alerting::RESOLVE_ANOMALY.sqlite,
                    params![id, now, by, note],
                )
                .map_err(failed("resolving an anomaly"))?;
            if changed > 0 {
                cancel_pending(&tx, id, "'open', 'repeat', 'escalate'")
                    .map_err(failed("resolving an anomaly"))?;
                // Only those who heard it opened hear it resolved.
                tx.execute(
                    "INSERT INTO alerts (anomaly_id, channel, recipient, event, step, severity,
                         repeat_secs, state, due_at, created_at)
                     SELECT DISTINCT anomaly_id, channel, recipient, 'resolve', 0,
                         (SELECT severity FROM anomalies WHERE id = ?1), 0, 'pending', ?2, ?2
                     FROM alerts WHERE anomaly_id = ?1 AND event <> 'resolve'
                         AND state IN ('sent', 'sending')
                     ON CONFLICT DO NOTHING",
                    params![id, now],
                )
                .map_err(failed("queueing resolve notices"))?;
            }
            let anomaly = get_anomaly(&tx, id).map_err(failed("resolving an anomaly"))?;
            tx.commit().map_err(failed("resolving an anomaly"))?;
            Ok(anomaly)
        })
        .await
    }

    async fn acknowledge_anomaly(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Anomaly>> {
        let (by, note) = (by.to_string(), note.map(str::to_string));
        self.write(move |w| {
            let tx = w
                .conn
                .transaction()
                .map_err(failed("acknowledging an anomaly"))?;
            acknowledge(&tx, id, &by, note.as_deref(), ms(now))
                .map_err(failed("acknowledging an anomaly"))?;
            let anomaly = get_anomaly(&tx, id).map_err(failed("acknowledging an anomaly"))?;
            tx.commit().map_err(failed("acknowledging an anomaly"))?;
            Ok(anomaly)
        })
        .await
    }

    async fn anomaly(&self, id: i64) -> Result<Option<Anomaly>> {
        self.read(move |conn| get_anomaly(conn, id).map_err(failed("reading an anomaly")))
            .await
    }

    async fn anomalies(&self, q: &AnomalyQuery) -> Result<Vec<Anomaly>> {
        let q = q.clone();
        self.read(move |conn| {
            let mut sql = format!("SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE 1 = 1");
            let mut args: Vec<String> = Vec::new();
            let mut filter = |column: &str, value: Option<String>| {
                if let Some(v) = value {
                    args.push(v);
                    sql.push_str(&format!(" AND {column} = ?{}", args.len()));
                }
            };
            filter("severity", q.severity.map(|s| s.as_str().to_string()));
            filter("state", q.state.map(|s| s.as_str().to_string()));
            filter("kind", q.kind.map(|k| k.as_str().to_string()));
            filter("subject", q.subject);
            filter("group_key", q.group_key);
            sql.push_str(&format!(
                " ORDER BY opened_at DESC, id DESC LIMIT {} OFFSET {}",
                q.limit, q.offset
            ));
            let mut stmt = conn.prepare(&sql).map_err(failed("listing anomalies"))?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), anomaly_row)
                .map_err(failed("listing anomalies"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(failed("listing anomalies"))
        })
        .await
    }

    async fn claim_alerts(
        &self,
        channel: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<AlertJob>> {
        let (channel, holder) = (channel.to_string(), holder.to_string());
        self.write(move |w| {
            let tx = w.conn.transaction().map_err(failed("claiming alerts"))?;
            let now = ms(now);
            let ids: Vec<(i64, bool)> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT id, state = 'sending' FROM alerts
                         WHERE channel = ?1 AND ((state = 'pending' AND due_at <= ?2)
                             OR (state = 'sending' AND claim_until_at < ?2))
                         ORDER BY due_at, id LIMIT ?3",
                    )
                    .map_err(failed("claiming alerts"))?;
                let rows = stmt
                    .query_map(params![channel, now, limit], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(failed("claiming alerts"))?;
                rows.collect::<rusqlite::Result<_>>()
                    .map_err(failed("claiming alerts"))?
            };
            let mut jobs = Vec::with_capacity(ids.len());
            for (id, recovered) in ids {
                tx.execute(
                    "UPDATE alerts SET state = 'sending', claimed_by = ?2, claim_until_at = ?3,
                         attempts = attempts + 1, recovered = MAX(recovered, ?4) WHERE id = ?1",
                    params![id, holder, now + duration_ms(lease), recovered as i64],
                )
                .map_err(failed("claiming alerts"))?;
                let Some(alert) = get_alert(&tx, id).map_err(failed("claiming alerts"))? else {
                    continue;
                };
                let anomaly = match alert.anomaly_id {
                    Some(id) => get_anomaly(&tx, id).map_err(failed("claiming alerts"))?,
                    None => None,
                };
                jobs.push(AlertJob { alert, anomaly });
            }
            tx.commit().map_err(failed("claiming alerts"))?;
            Ok(jobs)
        })
        .await
    }

    async fn finish_alert(
        &self,
        id: i64,
        holder: &str,
        outcome: &AlertOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (holder, outcome) = (holder.to_string(), outcome.clone());
        self.write(move |w| {
            let tx = w.conn.transaction().map_err(failed("recording a send"))?;
            let now = ms(now);
            let changed = match &outcome {
                AlertOutcome::Sent => {
                    tx.execute(sql::alerting::ALERT_SENT.sqlite, params![id, holder, now])
                }
                AlertOutcome::Retry { at, error } => tx.execute(
                    sql::alerting::ALERT_RETRY.sqlite,
                    params![id, holder, ms(*at), error],
                ),
                AlertOutcome::Defer { at } => tx.execute(
                    "UPDATE alerts SET state = 'pending', due_at = ?3, claimed_by = NULL,
                         attempts = MAX(attempts - 1, 0)
                     WHERE id = ?1 AND claimed_by = ?2 AND state = 'sending'",
                    params![id, holder, ms(*at)],
                ),
                AlertOutcome::Failed { error } => tx.execute(
                    sql::alerting::ALERT_FAILED.sqlite,
                    params![id, holder, error],
                ),
            }
            .map_err(failed("recording a send"))?;
            if changed > 0 && outcome == AlertOutcome::Sent {
                // The next repeat, while the anomaly is open and unacknowledged.
                tx.execute(
                    "INSERT INTO alerts (anomaly_id, channel, recipient, event, step, severity,
                         repeat_secs, state, due_at, created_at)
                     SELECT a.anomaly_id, a.channel, a.recipient, 'repeat', a.step + 1, a.severity,
                         a.repeat_secs, 'pending', ?2 + a.repeat_secs * 1000, ?2
                     FROM alerts a JOIN anomalies n ON n.id = a.anomaly_id
                     WHERE a.id = ?1 AND a.repeat_secs > 0 AND n.state = 'open'
                         AND a.event IN ('open', 'repeat')
                     ON CONFLICT DO NOTHING",
                    params![id, now],
                )
                .map_err(failed("queueing a repeat"))?;
            }
            tx.commit().map_err(failed("recording a send"))?;
            Ok(changed > 0)
        })
        .await
    }

    async fn next_alert_due(&self, channel: &str) -> Result<Option<DateTime<Utc>>> {
        let channel = channel.to_string();
        self.read(move |conn| {
            let due: Option<i64> = conn
                .query_row(sql::alerting::NEXT_ALERT_DUE.sqlite, [channel], |r| {
                    r.get(0)
                })
                .map_err(failed("reading the outbox"))?;
            Ok(due.map(from_ms))
        })
        .await
    }

    async fn alert(&self, id: i64) -> Result<Option<AlertRow>> {
        self.read(move |conn| get_alert(conn, id).map_err(failed("reading an alert")))
            .await
    }

    async fn alerts(&self, q: &AlertQuery) -> Result<Vec<AlertRow>> {
        let q = q.clone();
        self.read(move |conn| {
            let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE 1 = 1");
            let mut args: Vec<String> = Vec::new();
            if let Some(channel) = q.channel {
                args.push(channel);
                sql.push_str(&format!(" AND channel = ?{}", args.len()));
            }
            if let Some(state) = q.state {
                args.push(state);
                sql.push_str(&format!(" AND state = ?{}", args.len()));
            }
            if let Some(anomaly) = q.anomaly_id {
                args.push(anomaly.to_string());
                sql.push_str(&format!(
                    " AND anomaly_id = CAST(?{} AS INTEGER)",
                    args.len()
                ));
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
            let mut stmt = conn.prepare(&sql).map_err(failed("listing alerts"))?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), alert_row)
                .map_err(failed("listing alerts"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(failed("listing alerts"))
        })
        .await
    }

    async fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AlertRow>> {
        let by = by.to_string();
        self.write(move |w| {
            let tx = w
                .conn
                .transaction()
                .map_err(failed("acknowledging an alert"))?;
            let now = ms(now);
            let Some(alert) = get_alert(&tx, id).map_err(failed("acknowledging an alert"))? else {
                return Ok(None);
            };
            tx.execute(
                sql::alerting::ACKNOWLEDGE_ALERT.sqlite,
                params![id, now, by],
            )
            .map_err(failed("acknowledging an alert"))?;
            if let Some(anomaly_id) = alert.anomaly_id {
                acknowledge(&tx, anomaly_id, &by, None, now)
                    .map_err(failed("acknowledging an alert"))?;
            }
            let alert = get_alert(&tx, id).map_err(failed("acknowledging an alert"))?;
            tx.commit().map_err(failed("acknowledging an alert"))?;
            Ok(alert)
        })
        .await
    }

    async fn create_silence(&self, s: &NewSilence, now: DateTime<Utc>) -> Result<Silence> {
        let spec = s.clone();
        self.write(move |w| {
            w.conn
                .execute(
                    "INSERT INTO silences (kind, subject, group_key, severity, starts_at, ends_at,
                         created_by, comment, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        spec.kind.map(AnomalyKind::as_str),
                        spec.subject,
                        spec.group_key,
                        spec.severity.map(Severity::as_str),
                        ms(spec.starts_at),
                        ms(spec.ends_at),
                        spec.created_by,
                        spec.comment,
                        ms(now)
                    ],
                )
                .map_err(failed("creating a silence"))?;
            Ok(Silence {
                id: w.conn.last_insert_rowid(),
                spec,
                created_at: from_ms(ms(now)),
            })
        })
        .await
    }

    async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(sql::alerting::SILENCES.sqlite)
                .map_err(failed("listing silences"))?;
            let rows = stmt
                .query_map([ms(now)], |r| {
                    let severity: Option<String> = r.get(4)?;
                    Ok(Silence {
                        id: r.get(0)?,
                        spec: NewSilence {
                            kind: r
                                .get::<_, Option<String>>(1)?
                                .map(|k| parse_kind(1, &k))
                                .transpose()?,
                            subject: r.get(2)?,
                            group_key: r.get(3)?,
                            severity: severity.as_deref().and_then(Severity::parse),
                            starts_at: from_ms(r.get(5)?),
                            ends_at: from_ms(r.get(6)?),
                            created_by: r.get(7)?,
                            comment: r.get(8)?,
                        },
                        created_at: from_ms(r.get(9)?),
                    })
                })
                .map_err(failed("listing silences"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(failed("listing silences"))
        })
        .await
    }

    async fn delete_silence(&self, id: i64) -> Result<bool> {
        self.write(move |w| {
            Ok(w.conn
                .execute(sql::alerting::DELETE_SILENCE.sqlite, [id])
                .map_err(failed("deleting a silence"))?
                > 0)
        })
        .await
    }
}
