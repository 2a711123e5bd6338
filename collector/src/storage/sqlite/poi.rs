//! [`PoiStore`] on SQLite: times are Unix milliseconds, writes go through the one writer.

use super::{from_ms, ms, SqliteStore};
use crate::storage::poi::{
    merged, pairs_from_json, pairs_json, same_event, GraphRecord, MaxoutMerge, MaxoutQuery,
    MaxoutRecord, NewMaxout, PoiRecord, PoiStore, SampleRecord, ScrapeRunRecord,
};
use crate::storage::sql;
use crate::storage::sql::poi::GRAPH_COLUMNS;
use crate::storage::sql::poi::MAXOUT_COLUMNS;
use crate::storage::{failed, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::time::Duration;

fn graph_row(row: &Row<'_>) -> rusqlite::Result<GraphRecord> {
    Ok(GraphRecord {
        source: row.get(0)?,
        graph_id: row.get(1)?,
        title: row.get(2)?,
        pattern: row.get(3)?,
        poi_code: row.get(4)?,
        poi_name: row.get(5)?,
        circuit_id: row.get(6)?,
        capacity_bps: row.get(7)?,
        capacity_from: row.get(8)?,
        traffic_class: row.get(9)?,
        direction: row.get(10)?,
        timezone: row.get(11)?,
        first_seen: from_ms(row.get(12)?),
        last_seen: from_ms(row.get(13)?),
        step_secs: row.get(14)?,
    })
}

fn poi_row(row: &Row<'_>) -> rusqlite::Result<PoiRecord> {
    Ok(PoiRecord {
        code: row.get(0)?,
        name: row.get(1)?,
        state: row.get(2)?,
        latitude: row.get(3)?,
        longitude: row.get(4)?,
        provider: row.get(5)?,
        capacity_bps: row.get(6)?,
        notes: row.get(7)?,
        in_reference: row.get(8)?,
    })
}

fn maxout_row(row: &Row<'_>) -> rusqlite::Result<MaxoutRecord> {
    let start = from_ms(row.get(6)?);
    let end = from_ms(row.get(7)?);
    Ok(MaxoutRecord {
        id: row.get(0)?,
        source: row.get(1)?,
        graph_id: row.get(2)?,
        poi_code: row.get(3)?,
        circuit_id: row.get(4)?,
        direction: row.get(5)?,
        start,
        end,
        duration_secs: (end - start).num_seconds(),
        samples: row.get(8)?,
        peak_bps: row.get(9)?,
        peak_pct: row.get(10)?,
        capacity_bps: row.get(11)?,
        detected_at: from_ms(row.get(12)?),
        alerted_at: row.get::<_, Option<i64>>(13)?.map(from_ms),
    })
}

fn collect<T>(
    conn: &Connection,
    action: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map(params, map)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(failed(action))
}

#[async_trait]
impl PoiStore for SqliteStore {
    async fn save_graph(&self, graph: &GraphRecord) -> Result<()> {
        let g = graph.clone();
        self.write(move |writer| {
            writer
                .conn
                .prepare_cached(
                    "INSERT INTO cacti_graphs (source, graph_id, title, parsed, pattern, poi_code,
                         poi_name, circuit_id, capacity_bps, capacity_from, traffic_class,
                         direction, timezone, first_seen, last_seen, step_secs)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                         ?16)
                     ON CONFLICT (source, graph_id) DO UPDATE SET
                         title = excluded.title, parsed = excluded.parsed,
                         pattern = excluded.pattern, poi_code = excluded.poi_code,
                         poi_name = excluded.poi_name, circuit_id = excluded.circuit_id,
                         capacity_bps = excluded.capacity_bps,
                         capacity_from = excluded.capacity_from,
                         traffic_class = excluded.traffic_class, direction = excluded.direction,
                         timezone = excluded.timezone, last_seen = excluded.last_seen,
                         step_secs = coalesce(excluded.step_secs, step_secs)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        g.source,
                        g.graph_id,
                        g.title,
                        g.pattern.is_some(),
                        g.pattern,
                        g.poi_code,
                        g.poi_name,
                        g.circuit_id,
                        g.capacity_bps,
                        g.capacity_from,
                        g.traffic_class,
                        g.direction,
                        g.timezone,
                        ms(g.first_seen),
                        ms(g.last_seen),
                        g.step_secs,
                    ])
                })
                .map_err(failed("saving a Cacti graph"))?;
            Ok(())
        })
        .await
    }

    async fn save_pois(&self, pois: &[PoiRecord], now: DateTime<Utc>) -> Result<()> {
        let pois = pois.to_vec();
        self.write(move |writer| {
            let tx = writer.conn.transaction().map_err(failed("saving POIs"))?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO pois (code, name, state, latitude, longitude, provider,
                             capacity_bps, notes, in_reference, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (code) DO UPDATE SET name = excluded.name,
                             state = excluded.state, latitude = excluded.latitude,
                             longitude = excluded.longitude, provider = excluded.provider,
                             capacity_bps = excluded.capacity_bps, notes = excluded.notes,
                             in_reference = excluded.in_reference,
                             updated_at = excluded.updated_at",
                    )
                    .map_err(failed("saving POIs"))?;
                for p in &pois {
                    stmt.execute(params![
                        p.code,
                        p.name,
                        p.state,
                        p.latitude,
                        p.longitude,
                        p.provider,
                        p.capacity_bps,
                        p.notes,
                        p.in_reference,
                        ms(now)
                    ])
                    .map_err(failed("saving POIs"))?;
                }
            }
            tx.commit().map_err(failed("saving POIs"))
        })
        .await
    }

    async fn save_samples(
        &self,
        source: &str,
        graph_id: i64,
        samples: &[SampleRecord],
    ) -> Result<u64> {
        let source = source.to_string();
        let samples = samples.to_vec();
        self.write(move |writer| {
            let tx = writer
                .conn
                .transaction()
                .map_err(failed("saving POI samples"))?;
            let mut written = 0;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO poi_samples (source, graph_id, ts, in_bps, out_bps,
                             in_pct, out_pct)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (source, graph_id, ts) DO UPDATE SET
                             in_bps = coalesce(excluded.in_bps, in_bps),
                             out_bps = coalesce(excluded.out_bps, out_bps),
                             in_pct = coalesce(excluded.in_pct, in_pct),
                             out_pct = coalesce(excluded.out_pct, out_pct)
                         -- Only a new value is a write: the same export fetched again (the
                         -- windows overlap) changes nothing and counts nothing.
                         WHERE coalesce(excluded.in_bps, in_bps) IS NOT in_bps
                            OR coalesce(excluded.out_bps, out_bps) IS NOT out_bps
                            OR coalesce(excluded.in_pct, in_pct) IS NOT in_pct
                            OR coalesce(excluded.out_pct, out_pct) IS NOT out_pct",
                    )
                    .map_err(failed("saving POI samples"))?;
                for s in &samples {
                    written +=
                        stmt.execute(params![
                            source,
                            graph_id,
                            ms(s.ts),
                            s.in_bps,
                            s.out_bps,
                            s.in_pct,
                            s.out_pct
                        ])
                        .map_err(failed("saving POI samples"))? as u64;
                }
            }
            tx.commit().map_err(failed("saving POI samples"))?;
            Ok(written)
        })
        .await
    }

    async fn samples(
        &self,
        source: &str,
        graph_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SampleRecord>> {
        let source = source.to_string();
        self.read(move |conn| {
            collect(
                conn,
                "reading POI samples",
                sql::poi::SAMPLES.sqlite,
                params![source, graph_id, ms(from), ms(to)],
                |row| {
                    Ok(SampleRecord {
                        ts: from_ms(row.get(0)?),
                        in_bps: row.get(1)?,
                        out_bps: row.get(2)?,
                        in_pct: row.get(3)?,
                        out_pct: row.get(4)?,
                    })
                },
            )
        })
        .await
    }

    async fn merge_maxouts(
        &self,
        source: &str,
        graph_id: i64,
        maxouts: &[NewMaxout],
        now: DateTime<Utc>,
    ) -> Result<MaxoutMerge> {
        let source = source.to_string();
        let maxouts = maxouts.to_vec();
        self.write(move |writer| {
            let action = "storing maxouts";
            let tx = writer.conn.transaction().map_err(failed(action))?;
            let mut result = MaxoutMerge::default();
            for new in &maxouts {
                // Every stored event this run overlaps: a run that now bridges two of them
                // (a later export filled the gap between) makes them one event.
                let overlapping: Vec<MaxoutRecord> = tx
                    .prepare_cached(sql::poi::OVERLAPPING_MAXOUTS.sqlite)
                    .and_then(|mut s| {
                        s.query_map(
                            params![source, graph_id, new.direction, ms(new.end), ms(new.start)],
                            maxout_row,
                        )?
                        .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .map_err(failed(action))?;
                match overlapping.split_first() {
                    Some((stored, others)) if same_event(stored, new) => {
                        let m = others
                            .iter()
                            .fold(merged(stored, new), |m, other| merged(other, &m));
                        for other in others {
                            tx.execute(sql::poi::DELETE_MAXOUT.sqlite, [other.id])
                                .map_err(failed(action))?;
                        }
                        if !others.is_empty()
                            || m.start != stored.start
                            || m.end != stored.end
                            || m.peak_bps != stored.peak_bps
                        {
                            tx.execute(
                                sql::poi::UPDATE_MAXOUT.sqlite,
                                params![
                                    stored.id,
                                    ms(m.start),
                                    ms(m.end),
                                    m.samples,
                                    m.peak_bps,
                                    m.peak_pct,
                                    m.capacity_bps,
                                    m.poi_code,
                                    m.circuit_id
                                ],
                            )
                            .map_err(failed(action))?;
                            result.extended += 1;
                        }
                    }
                    _ => {
                        let created = tx
                            .prepare_cached(sql::poi::INSERT_MAXOUT.sqlite)
                            .and_then(|mut s| {
                                s.query_row(
                                    params![
                                        source,
                                        graph_id,
                                        new.poi_code,
                                        new.circuit_id,
                                        new.direction,
                                        ms(new.start),
                                        ms(new.end),
                                        new.samples,
                                        new.peak_bps,
                                        new.peak_pct,
                                        new.capacity_bps,
                                        ms(now)
                                    ],
                                    maxout_row,
                                )
                            })
                            .map_err(failed(action))?;
                        result.created.push(created);
                    }
                }
            }
            tx.commit().map_err(failed(action))?;
            Ok(result)
        })
        .await
    }

    async fn save_scrape_run(&self, run: &ScrapeRunRecord) -> Result<()> {
        let run = run.clone();
        self.write(move |writer| {
            writer
                .conn
                .execute(
                    sql::poi::SAVE_SCRAPE_RUN.sqlite,
                    params![
                        run.source,
                        ms(run.started),
                        ms(run.finished),
                        run.fetched,
                        run.samples,
                        pairs_json(&run.skipped),
                        pairs_json(&run.failed)
                    ],
                )
                .map_err(failed("recording a scrape run"))?;
            Ok(())
        })
        .await
    }

    async fn unalerted_maxouts(&self, limit: u32) -> Result<Vec<MaxoutRecord>> {
        self.read(move |conn| {
            collect(
                conn,
                "listing maxouts to alert",
                sql::poi::UNALERTED_MAXOUTS.sqlite,
                [limit],
                maxout_row,
            )
        })
        .await
    }

    async fn mark_maxout_alerted(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        self.write(move |writer| {
            writer
                .conn
                .execute(sql::poi::MARK_MAXOUT_ALERTED.sqlite, params![id, ms(at)])
                .map_err(failed("marking a maxout alerted"))?;
            Ok(())
        })
        .await
    }

    async fn pois(&self) -> Result<Vec<PoiRecord>> {
        self.read(|conn| collect(conn, "listing POIs", sql::poi::POIS.sqlite, [], poi_row))
            .await
    }

    async fn poi(&self, code: &str) -> Result<Option<PoiRecord>> {
        let code = code.to_string();
        self.read(move |conn| {
            conn.prepare_cached(sql::poi::POI.sqlite)
                .and_then(|mut s| s.query_row([code], poi_row).optional())
                .map_err(failed("reading a POI"))
        })
        .await
    }

    async fn poi_graphs(&self, code: &str) -> Result<Vec<GraphRecord>> {
        let code = code.to_string();
        self.read(move |conn| {
            collect(
                conn,
                "listing a POI's graphs",
                sql::poi::POI_GRAPHS.sqlite,
                [code],
                graph_row,
            )
        })
        .await
    }

    async fn unparsed_graphs(&self) -> Result<Vec<GraphRecord>> {
        self.read(|conn| {
            collect(
                conn,
                "listing unparsed graphs",
                &format!(
                    "SELECT {GRAPH_COLUMNS} FROM cacti_graphs
                     WHERE parsed = 0 OR poi_code IS NULL ORDER BY source, graph_id"
                ),
                [],
                graph_row,
            )
        })
        .await
    }

    async fn maxouts(&self, query: &MaxoutQuery) -> Result<Vec<MaxoutRecord>> {
        let q = query.clone();
        self.read(move |conn| {
            collect(
                conn,
                "listing maxouts",
                &format!(
                    "SELECT {MAXOUT_COLUMNS} FROM poi_maxouts
                     WHERE (?1 IS NULL OR poi_code = ?1) AND end_at > ?2 AND start_at < ?3
                     ORDER BY start_at, id LIMIT ?4"
                ),
                params![q.poi_code, ms(q.from), ms(q.to), q.limit],
                maxout_row,
            )
        })
        .await
    }

    async fn scrape_runs(&self, limit: u32) -> Result<Vec<ScrapeRunRecord>> {
        self.read(move |conn| {
            collect(
                conn,
                "listing scrape runs",
                sql::poi::SCRAPE_RUNS.sqlite,
                [limit],
                |row| {
                    Ok(ScrapeRunRecord {
                        source: row.get(0)?,
                        started: from_ms(row.get(1)?),
                        finished: from_ms(row.get(2)?),
                        fetched: row.get(3)?,
                        samples: row.get(4)?,
                        skipped: pairs_from_json(&row.get::<_, String>(5)?),
                        failed: pairs_from_json(&row.get::<_, String>(6)?),
                    })
                },
            )
        })
        .await
    }

    async fn release_job(&self, job: &str, holder: &str) -> Result<()> {
        let (job, holder) = (job.to_string(), holder.to_string());
        self.write(move |writer| {
            writer
                .conn
                .execute(sql::poi::RELEASE_JOB.sqlite, params![job, holder])
                .map_err(failed("releasing a job lease"))?;
            Ok(())
        })
        .await
    }

    async fn claim_job(
        &self,
        job: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (job, holder) = (job.to_string(), holder.to_string());
        let until = ms(now) + ttl.as_millis() as i64;
        self.write(move |writer| {
            let changed = writer
                .conn
                .execute(
                    sql::poi::CLAIM_JOB.sqlite,
                    params![job, holder, until, ms(now)],
                )
                .map_err(failed("claiming a job lease"))?;
            Ok(changed == 1)
        })
        .await
    }
}
