//! [`TelemetryStore`] on SQLite (times in Unix ms).

use super::intake::{begin_read, IntakeWriter, DIRECT_COMMIT, INTAKE_LIMIT, NOT_YET_FOLDED};
use super::{from_ms, ms, SqliteStore, Writer};
use crate::domain::telemetry::CircuitEvent;
use crate::storage::sql;
use crate::storage::telemetry::BlockingTelemetrySaver;
use crate::storage::telemetry::{
    AccountMaxoutSummary, CircuitMaxoutQuery, CircuitMaxoutRecord, CircuitRecord, CustomerEmailJob,
    EmailClaim, LateSample, TelemetryPoint, TelemetryStore, UnknownCircuit,
};
use crate::storage::{failed, Result, StoreError};
use crate::telemetry::sample::TelemetrySample;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;

/// A row of [`sql::telemetry::MAXOUT_COLUMNS`].
fn maxout_row(r: &Row<'_>) -> rusqlite::Result<CircuitMaxoutRecord> {
    let start = from_ms(r.get(4)?);
    let end = from_ms(r.get(5)?);
    let peak: f64 = r.get(7)?;
    let provisioned: f64 = r.get(8)?;
    Ok(CircuitMaxoutRecord {
        id: r.get(0)?,
        circuit_id: r.get(1)?,
        account: r.get(2)?,
        severity: r.get(3)?,
        start,
        end,
        duration_secs: (end - start).num_seconds(),
        samples: r.get(6)?,
        peak_mbps: peak,
        peak_pct: 100.0 * peak / provisioned,
        provisioned_mbps: provisioned,
        burst_mbps: r.get(9)?,
        open: r.get(10)?,
        peak_at: r.get::<_, Option<i64>>(11)?.map(from_ms),
        historical: r.get(12)?,
    })
}

fn circuit_row(row: &Row<'_>) -> rusqlite::Result<CircuitRecord> {
    let time = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(row.get::<_, Option<i64>>(i)?.map(from_ms))
    };
    Ok(CircuitRecord {
        circuit_id: row.get(0)?,
        account: row.get(1)?,
        provisioned_mbps: row.get(2)?,
        burst_mbps: row.get(3)?,
        pop: row.get(4)?,
        provisioned_at: time(5)?,
        upgraded_at: time(6)?,
        decommissioned_at: time(7)?,
    })
}

const STORING: &str = "storing telemetry";
const INSERT_INTAKE: &str = "INSERT INTO intake.telemetry_intake
    (circuit_id, ts_ms, utilization_mbps, received_ms) VALUES (?1, ?2, ?3, ?4)";
const INSERT_TABLE: &str = "INSERT INTO telemetry
    (circuit_id, ts, utilization_mbps, received_at) VALUES (?1, ?2, ?3, ?4)";

/// Per circuit id among samples: (samples, first, last), to record the unknown ones.
type Tally<'a> = BTreeMap<&'a str, (i64, i64, i64)>;

/// Stores samples, on the calling thread: in the intake through its own writer, or in the
/// indexed table through the main writer when the commit is large or the intake full.
/// Returns the unknown circuit ids among them.
fn store_samples(
    writer: &Mutex<Writer>,
    intake: &Mutex<IntakeWriter>,
    samples: &[TelemetrySample],
    now: DateTime<Utc>,
) -> Result<BTreeSet<String>> {
    let action = STORING;
    let unknown = {
        let mut intake = intake
            .lock()
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        let rows = intake.rows().map_err(failed(action))?;
        if rows < INTAKE_LIMIT && samples.len() < DIRECT_COMMIT {
            Some(store_in_intake(&mut intake, samples, now)?)
        } else {
            None
        }
    };
    // The main writer only when needed: the fold holds it for its chunks.
    if unknown.as_ref().is_some_and(BTreeMap::is_empty) {
        return Ok(BTreeSet::new());
    }
    let mut writer = writer
        .lock()
        .map_err(|e| StoreError::Worker(e.to_string()))?;
    match unknown {
        // Recorded after the samples' commit, through the main writer; the samples are safe
        // either way, and an unknown circuit is rare.
        Some(unknown) => {
            let tx = writer.conn.transaction().map_err(failed(action))?;
            let recorded = record_unknown(&tx, &unknown)?;
            tx.commit().map_err(failed(action))?;
            Ok(recorded)
        }
        None => store_direct(&mut writer, samples, now),
    }
}

/// Commits samples to the intake; returns the tally of those whose circuit is unknown.
fn store_in_intake<'a>(
    intake: &mut IntakeWriter,
    samples: &'a [TelemetrySample],
    now: DateTime<Utc>,
) -> Result<Tally<'a>> {
    let action = STORING;
    let tx = intake.conn.transaction().map_err(failed(action))?;
    let tally = insert_samples(&tx, INSERT_INTAKE, samples, now)?;
    let (unknown, newly_known) = split_unknown(&tx, &intake.known_circuits, tally)?;
    tx.commit().map_err(failed(action))?;
    intake.known_circuits.extend(newly_known);
    if let Some(rows) = intake.rows.as_mut() {
        *rows += samples.len() as i64;
    }
    Ok(unknown)
}

/// Commits samples straight into the indexed table, with the unknown circuits among them.
fn store_direct(
    writer: &mut Writer,
    samples: &[TelemetrySample],
    now: DateTime<Utc>,
) -> Result<BTreeSet<String>> {
    let action = STORING;
    let tx = writer.conn.transaction().map_err(failed(action))?;
    let tally = insert_samples(&tx, INSERT_TABLE, samples, now)?;
    let (unknown, newly_known) = split_unknown(&tx, &writer.known_circuits, tally)?;
    let recorded = record_unknown(&tx, &unknown)?;
    tx.commit().map_err(failed(action))?;
    writer.known_circuits.extend(newly_known);
    Ok(recorded)
}

fn insert_samples<'a>(
    tx: &rusqlite::Connection,
    insert_sql: &str,
    samples: &'a [TelemetrySample],
    now: DateTime<Utc>,
) -> Result<Tally<'a>> {
    let action = STORING;
    let mut tally = Tally::new();
    let mut insert = tx.prepare_cached(insert_sql).map_err(failed(action))?;
    for s in samples {
        let at = ms(s.at);
        insert
            .execute(params![s.circuit_id, at, s.utilization_mbps, ms(now)])
            .map_err(failed(action))?;
        let entry = tally.entry(&s.circuit_id).or_insert((0, at, at));
        entry.0 += 1;
        entry.1 = entry.1.min(at);
        entry.2 = entry.2.max(at);
    }
    Ok(tally)
}

/// Splits a tally into its unknown circuits and the ids newly found registered (to cache once
/// the transaction commits), looking up only those not in `known`.
fn split_unknown<'a>(
    tx: &rusqlite::Connection,
    known: &HashSet<String>,
    tally: Tally<'a>,
) -> Result<(Tally<'a>, Vec<String>)> {
    let action = STORING;
    let mut lookup = tx
        .prepare_cached("SELECT 1 FROM main.circuits WHERE circuit_id = ?1")
        .map_err(failed(action))?;
    let mut unknown = Tally::new();
    let mut newly_known = Vec::new();
    for (id, counts) in tally {
        if known.contains(id) {
            continue;
        }
        let exists = lookup
            .query_row([id], |_| Ok(()))
            .optional()
            .map_err(failed(action))?
            .is_some();
        if exists {
            newly_known.push(id.to_string());
        } else {
            unknown.insert(id, counts);
        }
    }
    Ok((unknown, newly_known))
}

/// Records samples of unknown circuits in `telemetry_unknown`, unless the circuit has been
/// registered meanwhile; returns the ids recorded.
fn record_unknown(tx: &rusqlite::Connection, unknown: &Tally<'_>) -> Result<BTreeSet<String>> {
    let action = STORING;
    let mut record = tx
        .prepare_cached(
            "INSERT INTO telemetry_unknown (circuit_id, samples, first_seen, last_seen)
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS
                 (SELECT 1 FROM circuits WHERE circuit_id = ?1)
             ON CONFLICT (circuit_id) DO UPDATE SET
                 samples = samples + excluded.samples,
                 first_seen = min(first_seen, excluded.first_seen),
                 last_seen = max(last_seen, excluded.last_seen)",
        )
        .map_err(failed(action))?;
    let mut recorded = BTreeSet::new();
    for (id, (count, first, last)) in unknown {
        if record
            .execute(params![id, count, first, last])
            .map_err(failed(action))?
            > 0
        {
            recorded.insert(id.to_string());
        }
    }
    Ok(recorded)
}

/// A circuit's samples in `[from, to)`, oldest first, from both tables: the intake's rows the
/// fold has not moved yet. `tx` must come from [`begin_read`].
fn points_in(
    tx: &rusqlite::Transaction<'_>,
    circuit_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<TelemetryPoint>> {
    tx.prepare_cached(&format!(
        "SELECT ts, utilization_mbps FROM (
             SELECT ts, utilization_mbps FROM telemetry
              WHERE circuit_id = ?1 AND ts >= ?2 AND ts < ?3
             UNION ALL
             SELECT ts_ms, utilization_mbps FROM intake.telemetry_intake, telemetry_fold f
              WHERE circuit_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 AND {NOT_YET_FOLDED})
         ORDER BY ts LIMIT ?4",
    ))
    .and_then(|mut stmt| {
        stmt.query_map(params![circuit_id, ms(from), ms(to), limit], |r| {
            Ok(TelemetryPoint {
                timestamp: from_ms(r.get(0)?),
                utilization_mbps: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(failed("reading telemetry"))
}

#[async_trait]
impl TelemetryStore for SqliteStore {
    async fn save_telemetry(
        &self,
        samples: &[TelemetrySample],
        now: DateTime<Utc>,
    ) -> Result<BTreeSet<String>> {
        let samples = samples.to_vec();
        let (writer, intake) = (self.writer.clone(), self.intake.clone());
        tokio::task::spawn_blocking(move || store_samples(&writer, &intake, &samples, now))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    fn blocking_telemetry_saver(&self) -> Option<BlockingTelemetrySaver> {
        let (writer, intake) = (self.writer.clone(), self.intake.clone());
        Some(Box::new(move |samples, now| {
            store_samples(&writer, &intake, samples, now)
        }))
    }

    async fn telemetry(
        &self,
        circuit_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<TelemetryPoint>> {
        let circuit_id = circuit_id.to_string();
        self.read(move |conn| {
            let tx = begin_read(conn).map_err(failed("reading telemetry"))?;
            points_in(&tx, &circuit_id, from, to, limit)
        })
        .await
    }

    async fn save_circuits(&self, circuits: &[CircuitRecord], now: DateTime<Utc>) -> Result<()> {
        let circuits = circuits.to_vec();
        self.write(move |writer| {
            let action = "saving circuits";
            let tx = writer.conn.transaction().map_err(failed(action))?;
            {
                let mut upsert = tx
                    .prepare_cached(sql::telemetry::UPSERT_CIRCUIT.sqlite)
                    .map_err(failed(action))?;
                let mut known = tx
                    .prepare_cached(sql::telemetry::FORGET_UNKNOWN_CIRCUIT.sqlite)
                    .map_err(failed(action))?;
                for c in &circuits {
                    upsert
                        .execute(params![
                            c.circuit_id,
                            c.account,
                            c.provisioned_mbps,
                            c.burst_mbps,
                            c.pop,
                            c.provisioned_at.map(ms),
                            c.upgraded_at.map(ms),
                            c.decommissioned_at.map(ms),
                            ms(now)
                        ])
                        .map_err(failed(action))?;
                    known.execute([&c.circuit_id]).map_err(failed(action))?;
                }
            }
            tx.commit().map_err(failed(action))
        })
        .await
    }

    async fn circuit(&self, circuit_id: &str) -> Result<Option<CircuitRecord>> {
        let circuit_id = circuit_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(sql::telemetry::CIRCUIT.sqlite)
                .and_then(|mut s| s.query_row([circuit_id], circuit_row).optional())
                .map_err(failed("reading a circuit"))
        })
        .await
    }

    async fn circuits(&self, limit: u32, offset: u32) -> Result<Vec<CircuitRecord>> {
        self.read(move |conn| {
            conn.prepare_cached(sql::telemetry::CIRCUITS.sqlite)
                .and_then(|mut s| {
                    s.query_map(params![limit, offset], circuit_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(failed("listing circuits"))
        })
        .await
    }

    async fn unknown_circuits(&self) -> Result<Vec<UnknownCircuit>> {
        self.read(|conn| {
            conn.prepare_cached(sql::telemetry::UNKNOWN_CIRCUITS.sqlite)
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        Ok(UnknownCircuit {
                            circuit_id: r.get(0)?,
                            samples: r.get(1)?,
                            first_seen: from_ms(r.get(2)?),
                            last_seen: from_ms(r.get(3)?),
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(failed("listing unknown circuits"))
        })
        .await
    }

    async fn delete_telemetry_before(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64> {
        let action = "deleting old telemetry";
        // The intake holds about a second of samples: old ones there are rare (a backlog
        // sent late), and a scan of it is cheap.
        let intake = self.intake.clone();
        let from_intake = tokio::task::spawn_blocking(move || {
            let mut intake = intake
                .lock()
                .map_err(|e| StoreError::Worker(e.to_string()))?;
            let deleted = intake
                .conn
                .execute(
                    "DELETE FROM intake.telemetry_intake WHERE ts_ms < ?1",
                    params![ms(cutoff)],
                )
                .map_err(failed(action))?;
            intake.count_removed(deleted);
            Ok::<_, StoreError>(deleted)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))??;
        let from_table = self
            .write(move |writer| {
                writer
                    .conn
                    .execute(
                        "DELETE FROM telemetry WHERE rowid IN
                         (SELECT rowid FROM telemetry WHERE ts < ?1 LIMIT ?2)",
                        params![ms(cutoff), limit],
                    )
                    .map_err(failed(action))
            })
            .await?;
        Ok((from_intake + from_table) as u64)
    }

    async fn circuits_by_ids(&self, ids: &[String]) -> Result<Vec<CircuitRecord>> {
        let ids = ids.to_vec();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(sql::telemetry::CIRCUIT.sqlite)
                .map_err(failed("reading circuits"))?;
            let mut found = Vec::new();
            for id in &ids {
                if let Some(c) = stmt
                    .query_row([id], circuit_row)
                    .optional()
                    .map_err(failed("reading circuits"))?
                {
                    found.push(c);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn open_circuit_maxout(
        &self,
        c: &CircuitRecord,
        e: &CircuitEvent,
        open: bool,
        historical: bool,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let (c, e) = (c.clone(), e.clone());
        self.write(move |writer| {
            writer
                .conn
                .query_row(
                    sql::telemetry::OPEN_CIRCUIT_MAXOUT.sqlite,
                    params![
                        c.circuit_id,
                        c.account,
                        e.severity.as_str(),
                        e.start,
                        e.end,
                        e.samples,
                        e.peak_mbps,
                        c.provisioned_mbps,
                        c.burst_mbps,
                        open,
                        ms(now),
                        e.peak_at,
                        historical
                    ],
                    |r| r.get(0),
                )
                .map_err(failed("recording a circuit maxout"))
        })
        .await
    }

    async fn update_circuit_maxout(&self, id: i64, e: &CircuitEvent, open: bool) -> Result<()> {
        let e = e.clone();
        self.write(move |writer| {
            writer
                .conn
                .execute(
                    sql::telemetry::UPDATE_CIRCUIT_MAXOUT.sqlite,
                    params![
                        id,
                        e.start,
                        e.end,
                        e.samples,
                        e.peak_mbps,
                        e.peak_at,
                        e.severity.as_str(),
                        open
                    ],
                )
                .map_err(failed("updating a circuit maxout"))?;
            Ok(())
        })
        .await
    }

    async fn withdraw_circuit_maxout(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.write(move |writer| {
            writer
                .conn
                .execute(
                    "UPDATE circuit_maxouts SET withdrawn_at = ?2, open = 0 WHERE id = ?1",
                    params![id, ms(now)],
                )
                .map_err(failed("withdrawing a circuit maxout"))?;
            Ok(())
        })
        .await
    }

    async fn circuits_version(&self) -> Result<i64> {
        self.read(|conn| {
            conn.prepare_cached(sql::telemetry::CIRCUITS_VERSION.sqlite)
                .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
                .map_err(failed("reading the circuits' version"))
        })
        .await
    }

    async fn save_late_telemetry(&self, samples: &[LateSample]) -> Result<()> {
        let samples = samples.to_vec();
        self.write(move |writer| {
            let tx = writer
                .conn
                .transaction()
                .map_err(failed("listing late telemetry"))?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO late_telemetry (circuit_id, ts, utilization_mbps,
                             newest, received_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(failed("listing late telemetry"))?;
                for l in &samples {
                    stmt.execute(params![
                        l.circuit_id,
                        ms(l.timestamp),
                        l.utilization_mbps,
                        ms(l.newest),
                        ms(l.received_at)
                    ])
                    .map_err(failed("listing late telemetry"))?;
                }
            }
            tx.commit().map_err(failed("listing late telemetry"))
        })
        .await
    }

    async fn late_telemetry(&self, limit: u32) -> Result<Vec<LateSample>> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT circuit_id, ts, utilization_mbps, newest, received_at
                 FROM late_telemetry ORDER BY received_at DESC, rowid DESC LIMIT ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_map([limit], |r| {
                    Ok(LateSample {
                        circuit_id: r.get(0)?,
                        timestamp: from_ms(r.get(1)?),
                        utilization_mbps: r.get(2)?,
                        newest: from_ms(r.get(3)?),
                        received_at: from_ms(r.get(4)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(failed("reading late telemetry"))
        })
        .await
    }

    async fn circuit_maxouts(&self, q: &CircuitMaxoutQuery) -> Result<Vec<CircuitMaxoutRecord>> {
        let q = q.clone();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM circuit_maxouts
                 WHERE (?1 IS NULL OR account = ?1) AND (?2 IS NULL OR circuit_id = ?2)
                   AND (?3 IS NULL OR end_at >= ?3) AND (?4 IS NULL OR start_at < ?4)
                   AND (?6 = 0 OR open = 1) AND withdrawn_at IS NULL
                 ORDER BY start_at, id LIMIT ?5",
                sql::telemetry::MAXOUT_COLUMNS
            ))
            .and_then(|mut stmt| {
                stmt.query_map(
                    params![
                        q.account,
                        q.circuit_id,
                        q.from.map(ms),
                        q.to.map(ms),
                        q.limit,
                        q.open_only
                    ],
                    maxout_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(failed("listing circuit maxouts"))
        })
        .await
    }

    async fn circuit_maxout_summary(
        &self,
        q: &CircuitMaxoutQuery,
    ) -> Result<Vec<AccountMaxoutSummary>> {
        let q = q.clone();
        self.read(move |conn| {
            // With one max() in the query, SQLite takes peak_mbps from the row that has it.
            conn.prepare_cached(
                "SELECT account, count(*), count(DISTINCT circuit_id),
                     sum(end_at - start_at) / 3600000.0,
                     max(100.0 * peak_mbps / provisioned_mbps), peak_mbps
                 FROM circuit_maxouts
                 WHERE (?1 IS NULL OR account = ?1)
                   AND (?2 IS NULL OR end_at >= ?2) AND (?3 IS NULL OR start_at < ?3)
                   AND withdrawn_at IS NULL
                 GROUP BY account ORDER BY account",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![q.account, q.from.map(ms), q.to.map(ms)], |r| {
                    Ok(AccountMaxoutSummary {
                        account: r.get(0)?,
                        events: r.get(1)?,
                        circuits: r.get(2)?,
                        hours_at_max: r.get(3)?,
                        peak_pct: r.get(4)?,
                        peak_mbps: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(failed("summing circuit maxouts"))
        })
        .await
    }

    async fn mark_circuit_maxout_notified(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.write(move |writer| {
            writer
                .conn
                .execute(
                    sql::telemetry::MARK_CIRCUIT_MAXOUT_NOTIFIED.sqlite,
                    params![id, ms(now)],
                )
                .map_err(failed("marking a circuit maxout notified"))?;
            Ok(())
        })
        .await
    }

    async fn claim_customer_email(
        &self,
        circuit_id: &str,
        start: i64,
        cooldown_ms: i64,
    ) -> Result<Option<EmailClaim>> {
        let circuit_id = circuit_id.to_string();
        self.write(move |writer| {
            claim_customer_email(&writer.conn, &circuit_id, start, cooldown_ms, None)
                .map_err(failed("claiming a customer email"))
        })
        .await
    }

    async fn release_customer_email(&self, circuit_id: &str, claim: &EmailClaim) -> Result<()> {
        let (circuit_id, claim) = (circuit_id.to_string(), *claim);
        self.write(move |writer| {
            writer
                .conn
                .execute(
                    sql::telemetry::RELEASE_CUSTOMER_EMAIL.sqlite,
                    params![circuit_id, claim.start, claim.previous],
                )
                .map_err(failed("giving back a customer email claim"))?;
            Ok(())
        })
        .await
    }

    async fn queue_customer_email(
        &self,
        job: &CustomerEmailJob,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let job = job.clone();
        self.write(move |writer| {
            let tx = writer
                .conn
                .transaction()
                .map_err(failed("queueing a customer email"))?;
            let claimed = claim_customer_email(
                &tx,
                &job.circuit_id,
                job.start,
                job.cooldown_ms,
                Some(job.event_id),
            )
            .map_err(failed("queueing a customer email"))?;
            let mut queued = None;
            if claimed.is_some() {
                let inserted: Option<i64> = tx
                    .query_row(
                        sql::telemetry::QUEUE_CUSTOMER_EMAIL.sqlite,
                        params![
                            job.event_id,
                            job.channel,
                            job.circuit_id,
                            job.severity.as_str(),
                            ms(now),
                            serde_json::to_string(&job.event).unwrap_or_default()
                        ],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(failed("queueing a customer email"))?;
                queued = match inserted {
                    Some(id) => Some(id),
                    None => tx
                        .query_row(
                            sql::telemetry::QUEUED_CUSTOMER_EMAIL.sqlite,
                            params![job.event_id, job.channel],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(failed("queueing a customer email"))?,
                };
            }
            tx.commit().map_err(failed("queueing a customer email"))?;
            Ok(queued)
        })
        .await
    }

    async fn customer_email_claim(
        &self,
        circuit_id: &str,
        event_id: i64,
    ) -> Result<Option<EmailClaim>> {
        let circuit_id = circuit_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(sql::telemetry::CUSTOMER_EMAIL_CLAIM.sqlite)
                .and_then(|mut stmt| {
                    stmt.query_row(params![circuit_id, event_id], |r| {
                        let previous = r.get::<_, Option<i64>>(1)?;
                        Ok(r.get::<_, Option<i64>>(0)?
                            .map(|start| EmailClaim { start, previous }))
                    })
                    .optional()
                })
                .map(Option::flatten)
                .map_err(failed("reading a customer email claim"))
        })
        .await
    }

    async fn circuit_maxout(&self, id: i64) -> Result<Option<CircuitMaxoutRecord>> {
        self.read(move |conn| {
            conn.prepare_cached(sql::telemetry::CIRCUIT_MAXOUT.sqlite)
                .and_then(|mut stmt| stmt.query_row([id], maxout_row).optional())
                .map_err(failed("reading a circuit maxout"))
        })
        .await
    }
}

/// The cooldown claim ([`sql::telemetry::CLAIM_CUSTOMER_EMAIL`]) on `conn`.
fn claim_customer_email(
    conn: &rusqlite::Connection,
    circuit_id: &str,
    start: i64,
    cooldown_ms: i64,
    event_id: Option<i64>,
) -> rusqlite::Result<Option<EmailClaim>> {
    conn.prepare_cached(sql::telemetry::CLAIM_CUSTOMER_EMAIL.sqlite)?
        .query_row(params![circuit_id, start, cooldown_ms, event_id], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()
        .map(|granted| granted.map(|previous| EmailClaim { start, previous }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{SqliteSync, Store};

    /// A read whose snapshot began before a whole fold cycle (moved and deleted) still sees
    /// each sample once: the intake's snapshot is taken first. The other way round, the rows
    /// would be in neither snapshot.
    #[tokio::test]
    async fn a_read_begun_before_a_fold_sees_each_sample_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.db");
        let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
        // No fold thread: this test folds by itself, at the moment it chooses.
        store.folding.call_once(|| ());
        store.migrate().await.unwrap();
        let now = Utc::now();
        let samples: Vec<_> = (1..=5)
            .map(|m| TelemetrySample {
                circuit_id: "C-1".into(),
                utilization_mbps: m as f64,
                at: now - chrono::Duration::minutes(m),
            })
            .collect();
        store.save_telemetry(&samples, now).await.unwrap();
        let from = now - chrono::Duration::hours(1);

        let conn = super::super::intake::open_with_intake(&path, SqliteSync::Normal).unwrap();
        let tx = begin_read(&conn).unwrap();
        assert_eq!(store.fold_telemetry_intake().await.unwrap(), 5);
        let intake_rows: i64 = rusqlite::Connection::open(super::super::intake_path(&path))
            .unwrap()
            .query_row("SELECT count(*) FROM telemetry_intake", [], |r| r.get(0))
            .unwrap();
        assert_eq!(intake_rows, 0, "the fold deleted what it moved");
        assert_eq!(points_in(&tx, "C-1", from, now, 100).unwrap().len(), 5);
        drop(tx);
        let fresh = begin_read(&conn).unwrap();
        assert_eq!(points_in(&fresh, "C-1", from, now, 100).unwrap().len(), 5);
    }
}
