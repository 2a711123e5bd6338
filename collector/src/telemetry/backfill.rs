//! Backfill: storing and evaluating telemetry history (`netwarden-collector import telemetry
//! FILE`), of any age. Samples already stored (same circuit, time and value) are not stored
//! twice; each circuit's stored samples over the file's span are then evaluated in time order
//! with the live detector's rule, and the events found are reconciled with the ones stored
//! there: one that overlaps a stored event updates it, a new one is recorded as *historical*
//! (no customer email unless `notify`, no NOC anomaly), and a historical event the samples no
//! longer show is withdrawn. So a file imported twice, or the same history in two files, gives
//! the same events.

use super::import::samples::SampleSet;
use super::sample::TelemetrySample;
use crate::alert::customer::CustomerEmail;
use crate::detect::circuit::{Capacity, CircuitEvent, CircuitState, MaxoutRule, Transition};
use crate::storage::telemetry::{CircuitMaxoutQuery, CircuitRecord};
use crate::storage::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::Arc;

/// Samples stored per transaction.
const CHUNK: usize = 10_000;
/// Samples read back per query.
const PAGE: u32 = 50_000;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct BackfillReport {
    pub read: u64,
    pub stored: u64,
    /// Already stored (same circuit, time and value): not stored again.
    pub already_stored: u64,
    pub circuits: u64,
    /// Circuits not configured: their samples are stored, not evaluated.
    pub unknown_circuits: Vec<String>,
    pub events_new: u64,
    pub events_updated: u64,
    pub events_withdrawn: u64,
    /// Samples older than the telemetry retention: stored now, removed by the next sweep
    /// (their events stay).
    pub older_than_retention: u64,
    /// (first, last) sample time of the file.
    pub span: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

pub struct Backfill {
    pub store: Arc<dyn Store>,
    pub rule: MaxoutRule,
    /// Queues the customer emails of the events found, when asked (`--notify`).
    pub customer_email: Option<Arc<CustomerEmail>>,
    /// 0: kept for ever.
    pub retention_days: u32,
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl Backfill {
    /// Stores and evaluates the samples; `progress(done, total)` follows the samples.
    pub async fn run(
        &self,
        mut set: SampleSet,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<BackfillReport, StoreError> {
        set.sort();
        let total = set.rows.len() as u64;
        let now = Utc::now();
        let mut report = BackfillReport {
            read: total,
            circuits: set.circuits.len() as u64,
            ..BackfillReport::default()
        };
        let first = set.rows.iter().map(|r| r.1).min();
        let last = set.rows.iter().map(|r| r.1).max();
        report.span = first.zip(last).map(|(f, l)| (at(f), at(l)));
        if self.retention_days > 0 {
            let cutoff =
                (now - chrono::Duration::days(i64::from(self.retention_days))).timestamp_millis();
            report.older_than_retention = set.rows.iter().filter(|r| r.1 < cutoff).count() as u64;
        }
        let known: Vec<CircuitRecord> = self.store.circuits_by_ids(&set.circuits).await?;
        let mut done = 0;
        let mut start = 0;
        while start < set.rows.len() {
            let circuit = set.rows[start].0;
            let end = start + set.rows[start..].partition_point(|r| r.0 == circuit);
            let id = &set.circuits[circuit as usize];
            let rows = &set.rows[start..end];
            let (from, to) = (rows[0].1, rows[rows.len() - 1].1);
            // Duplicates within the file, then against what is stored.
            let stored: HashSet<(i64, u64)> = self
                .stored_points(id, from, to)
                .await?
                .into_iter()
                .map(|(t, v)| (t, v.to_bits()))
                .collect();
            let mut seen = HashSet::new();
            let mut fresh = Vec::new();
            for &(_, t, v) in rows {
                if stored.contains(&(t, v.to_bits())) || !seen.insert((t, v.to_bits())) {
                    report.already_stored += 1;
                } else {
                    fresh.push(TelemetrySample {
                        circuit_id: id.clone(),
                        utilization_mbps: v,
                        at: at(t),
                    });
                }
            }
            for chunk in fresh.chunks(CHUNK) {
                self.store.save_telemetry(chunk, now).await?;
                report.stored += chunk.len() as u64;
            }
            match known.iter().find(|c| &c.circuit_id == id) {
                Some(record) => self.evaluate(record, from, to, &mut report).await?,
                None => report.unknown_circuits.push(id.clone()),
            }
            done += rows.len() as u64;
            progress(done, total);
            start = end;
        }
        Ok(report)
    }

    /// The circuit's stored samples in `[from, to]`, in time order; a repeated time keeps
    /// its largest value (as live detection does).
    async fn stored_points(
        &self,
        circuit: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let mut out: Vec<(i64, f64)> = Vec::new();
        let mut cursor = from;
        loop {
            let page = self
                .store
                .telemetry(circuit, at(cursor), at(to + 1), PAGE)
                .await?;
            let full = page.len() as u32 == PAGE;
            for p in &page {
                out.push((p.timestamp.timestamp_millis(), p.utilization_mbps));
            }
            match page.last() {
                Some(last) if full => cursor = last.timestamp.timestamp_millis() + 1,
                _ => break,
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        Ok(out)
    }

    /// Evaluates a circuit's stored samples over `[from, to]` and reconciles the events.
    async fn evaluate(
        &self,
        circuit: &CircuitRecord,
        from: i64,
        to: i64,
        report: &mut BackfillReport,
    ) -> Result<(), StoreError> {
        let mut points = self.stored_points(&circuit.circuit_id, from, to).await?;
        points.dedup_by(|later, earlier| {
            // Sorted by value too: the later of a repeated time is the larger.
            if later.0 == earlier.0 {
                earlier.1 = later.1;
                true
            } else {
                false
            }
        });
        let capacity = Capacity {
            provisioned_mbps: circuit.provisioned_mbps,
            burst_mbps: circuit.burst_mbps,
        };
        let found = events(&points, capacity, self.rule);
        let stored = self
            .store
            .circuit_maxouts(&CircuitMaxoutQuery {
                circuit_id: Some(circuit.circuit_id.clone()),
                from: Some(at(from)),
                to: Some(at(to + 1)),
                limit: u32::MAX,
                ..CircuitMaxoutQuery::default()
            })
            .await?;
        let mut matched = vec![false; stored.len()];
        let now = Utc::now();
        for event in &found {
            let overlap = stored.iter().enumerate().find(|(i, s)| {
                !matched[*i]
                    && s.start.timestamp_millis() <= event.end
                    && event.start <= s.end.timestamp_millis()
            });
            match overlap {
                Some((i, s)) => {
                    matched[i] = true;
                    self.store
                        .update_circuit_maxout(s.id, event, s.open)
                        .await?;
                    report.events_updated += 1;
                }
                None => {
                    let id = self
                        .store
                        .open_circuit_maxout(circuit, event, false, true, now)
                        .await?;
                    report.events_new += 1;
                    if let Some(customer_email) = &self.customer_email {
                        customer_email.maxout_opened(circuit, id, event).await;
                    }
                }
            }
        }
        for (s, used) in stored.iter().zip(matched) {
            if !used && s.historical {
                self.store.withdraw_circuit_maxout(s.id, now).await?;
                report.events_withdrawn += 1;
            }
        }
        Ok(())
    }
}

/// Every event in time-ordered samples.
pub fn events(points: &[(i64, f64)], capacity: Capacity, rule: MaxoutRule) -> Vec<CircuitEvent> {
    let mut state = CircuitState::default();
    let mut found: Vec<CircuitEvent> = Vec::new();
    for &(t, v) in points {
        match state.feed(t, v, capacity, rule) {
            Some(Transition::Opened(e)) => found.push(e),
            Some(Transition::Extended(e)) | Some(Transition::Closed(e)) => {
                if let Some(last) = found.last_mut() {
                    *last = e;
                }
            }
            None => {}
        }
    }
    found
}
