//! [`PoiStore`] on PostgreSQL. Samples go in as arrays through UNNEST, one statement per export.

use super::PostgresStore;
use crate::storage::poi::{
    merged, same_event, GraphRecord, MaxoutMerge, MaxoutQuery, MaxoutRecord, NewMaxout, PoiRecord,
    PoiStore, SampleRecord, ScrapeRunRecord,
};
use crate::storage::sql;
use crate::storage::sql::poi::GRAPH_COLUMNS;
use crate::storage::sql::poi::MAXOUT_COLUMNS;
use crate::storage::{failed, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use std::time::Duration;

fn graph_row(row: &PgRow) -> sqlx::Result<GraphRecord> {
    Ok(GraphRecord {
        source: row.try_get("source")?,
        graph_id: row.try_get("graph_id")?,
        title: row.try_get("title")?,
        pattern: row.try_get("pattern")?,
        poi_code: row.try_get("poi_code")?,
        poi_name: row.try_get("poi_name")?,
        circuit_id: row.try_get("circuit_id")?,
        capacity_bps: row.try_get("capacity_bps")?,
        capacity_from: row.try_get("capacity_from")?,
        traffic_class: row.try_get("traffic_class")?,
        direction: row.try_get("direction")?,
        timezone: row.try_get("timezone")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        step_secs: row.try_get::<Option<i32>, _>("step_secs")?.map(i64::from),
    })
}

fn poi_row(row: &PgRow) -> sqlx::Result<PoiRecord> {
    Ok(PoiRecord {
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        state: row.try_get("state")?,
        latitude: row.try_get("latitude")?,
        longitude: row.try_get("longitude")?,
        provider: row.try_get("provider")?,
        capacity_bps: row.try_get("capacity_bps")?,
        notes: row.try_get("notes")?,
        in_reference: row.try_get("in_reference")?,
    })
}

fn maxout_row(row: &PgRow) -> sqlx::Result<MaxoutRecord> {
    let start: DateTime<Utc> = row.try_get("start_at")?;
    let end: DateTime<Utc> = row.try_get("end_at")?;
    Ok(MaxoutRecord {
        id: row.try_get("id")?,
        source: row.try_get("source")?,
        graph_id: row.try_get("graph_id")?,
        poi_code: row.try_get("poi_code")?,
        circuit_id: row.try_get("circuit_id")?,
        direction: row.try_get("direction")?,
        start,
        end,
        duration_secs: (end - start).num_seconds(),
        samples: row.try_get("samples")?,
        peak_bps: row.try_get("peak_bps")?,
        peak_pct: row.try_get("peak_pct")?,
        capacity_bps: row.try_get("capacity_bps")?,
        detected_at: row.try_get("detected_at")?,
        alerted_at: row.try_get("alerted_at")?,
    })
}

fn run_row(row: &PgRow) -> sqlx::Result<ScrapeRunRecord> {
    let pairs = |name: &str| -> sqlx::Result<Vec<(i64, String)>> {
        let value: serde_json::Value = row.try_get(name)?;
        Ok(serde_json::from_value(value).unwrap_or_default())
    };
    Ok(ScrapeRunRecord {
        source: row.try_get("source")?,
        started: row.try_get("started_at")?,
        finished: row.try_get("finished_at")?,
        fetched: row.try_get("fetched")?,
        samples: row.try_get("samples")?,
        skipped: pairs("skipped")?,
        failed: pairs("failed")?,
    })
}

#[async_trait]
impl PoiStore for PostgresStore {
    async fn save_graph(&self, g: &GraphRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO cacti_graphs (source, graph_id, title, parsed, pattern, poi_code,
                 poi_name, circuit_id, capacity_bps, capacity_from, traffic_class, direction,
                 timezone, first_seen, last_seen, step_secs)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (source, graph_id) DO UPDATE SET
                 title = excluded.title, parsed = excluded.parsed, pattern = excluded.pattern,
                 poi_code = excluded.poi_code, poi_name = excluded.poi_name,
                 circuit_id = excluded.circuit_id, capacity_bps = excluded.capacity_bps,
                 capacity_from = excluded.capacity_from, traffic_class = excluded.traffic_class,
                 direction = excluded.direction, timezone = excluded.timezone,
                 last_seen = excluded.last_seen,
                 step_secs = coalesce(excluded.step_secs, cacti_graphs.step_secs)",
        )
        .bind(&g.source)
        .bind(g.graph_id)
        .bind(&g.title)
        .bind(g.pattern.is_some())
        .bind(&g.pattern)
        .bind(&g.poi_code)
        .bind(&g.poi_name)
        .bind(&g.circuit_id)
        .bind(g.capacity_bps)
        .bind(&g.capacity_from)
        .bind(&g.traffic_class)
        .bind(&g.direction)
        .bind(&g.timezone)
        .bind(g.first_seen)
        .bind(g.last_seen)
        .bind(g.step_secs.and_then(|s| i32::try_from(s).ok()))
        .execute(&self.pool)
        .await
        .map_err(failed("saving a Cacti graph"))?;
        Ok(())
    }

    async fn save_pois(&self, pois: &[PoiRecord], now: DateTime<Utc>) -> Result<()> {
        let column = |f: fn(&PoiRecord) -> Option<String>| pois.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO pois (code, name, state, latitude, longitude, provider, capacity_bps,
                 notes, in_reference, updated_at)
             SELECT *, $10 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[],
                 $5::float8[], $6::text[], $7::int8[], $8::text[], $9::bool[])
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, state = excluded.state,
                 latitude = excluded.latitude, longitude = excluded.longitude,
                 provider = excluded.provider, capacity_bps = excluded.capacity_bps,
                 notes = excluded.notes, in_reference = excluded.in_reference,
                 updated_at = excluded.updated_at",
        )
        .bind(pois.iter().map(|p| p.code.clone()).collect::<Vec<_>>())
        .bind(column(|p| p.name.clone()))
        .bind(column(|p| p.state.clone()))
        .bind(pois.iter().map(|p| p.latitude).collect::<Vec<_>>())
        .bind(pois.iter().map(|p| p.longitude).collect::<Vec<_>>())
        .bind(column(|p| p.provider.clone()))
        .bind(pois.iter().map(|p| p.capacity_bps).collect::<Vec<_>>())
        .bind(column(|p| p.notes.clone()))
        .bind(pois.iter().map(|p| p.in_reference).collect::<Vec<_>>())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(failed("saving POIs"))?;
        Ok(())
    }

    async fn save_samples(
        &self,
        source: &str,
        graph_id: i64,
        samples: &[SampleRecord],
    ) -> Result<u64> {
        let column =
            |f: fn(&SampleRecord) -> Option<f64>| samples.iter().map(f).collect::<Vec<_>>();
        let done = sqlx::query(
            "INSERT INTO poi_samples (source, graph_id, ts, in_bps, out_bps, in_pct, out_pct)
             SELECT $1, $2, * FROM UNNEST($3::timestamptz[], $4::float8[], $5::float8[],
                 $6::float8[], $7::float8[])
             ON CONFLICT (source, graph_id, ts) DO UPDATE SET
                 in_bps = coalesce(excluded.in_bps, poi_samples.in_bps),
                 out_bps = coalesce(excluded.out_bps, poi_samples.out_bps),
                 in_pct = coalesce(excluded.in_pct, poi_samples.in_pct),
                 out_pct = coalesce(excluded.out_pct, poi_samples.out_pct)
             -- Only a new value is a write: the same export fetched again (the windows
             -- overlap) changes nothing and counts nothing.
             WHERE coalesce(excluded.in_bps, poi_samples.in_bps)
                       IS DISTINCT FROM poi_samples.in_bps
                OR coalesce(excluded.out_bps, poi_samples.out_bps)
                       IS DISTINCT FROM poi_samples.out_bps
                OR coalesce(excluded.in_pct, poi_samples.in_pct)
                       IS DISTINCT FROM poi_samples.in_pct
                OR coalesce(excluded.out_pct, poi_samples.out_pct)
                       IS DISTINCT FROM poi_samples.out_pct",
        )
        .bind(source)
        .bind(graph_id)
        .bind(samples.iter().map(|s| s.ts).collect::<Vec<_>>())
        .bind(column(|s| s.in_bps))
        .bind(column(|s| s.out_bps))
        .bind(column(|s| s.in_pct))
        .bind(column(|s| s.out_pct))
        .execute(&self.pool)
        .await
        .map_err(failed("saving POI samples"))?;
        Ok(done.rows_affected())
    }

    async fn samples(
        &self,
        source: &str,
        graph_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SampleRecord>> {
        let rows = sqlx::query(sql::poi::SAMPLES.postgres)
            .bind(source)
            .bind(graph_id)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("reading POI samples"))?;
        rows.iter()
            .map(|row| {
                Ok(SampleRecord {
                    ts: row.try_get("ts")?,
                    in_bps: row.try_get("in_bps")?,
                    out_bps: row.try_get("out_bps")?,
                    in_pct: row.try_get("in_pct")?,
                    out_pct: row.try_get("out_pct")?,
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("reading POI samples"))
    }

    async fn merge_maxouts(
        &self,
        source: &str,
        graph_id: i64,
        maxouts: &[NewMaxout],
        now: DateTime<Utc>,
    ) -> Result<MaxoutMerge> {
        let action = "storing maxouts";
        let mut tx = self.pool.begin().await.map_err(failed(action))?;
        // Two collectors merging the same graph's maxouts would race; the scrape lease keeps
        // that from happening, and this lock makes it safe even if a lease ran out mid-scrape.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), $2::int4)")
            .bind(source)
            .bind((graph_id & 0x7fff_ffff) as i32)
            .execute(&mut *tx)
            .await
            .map_err(failed(action))?;
        let mut result = MaxoutMerge::default();
        for new in maxouts {
            // Every stored event this run overlaps: a run that now bridges two of them (a
            // later export filled the gap between) makes them one event.
            let overlapping: Vec<MaxoutRecord> =
                sqlx::query(sql::poi::OVERLAPPING_MAXOUTS.postgres)
                    .bind(source)
                    .bind(graph_id)
                    .bind(new.direction)
                    .bind(new.end)
                    .bind(new.start)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(failed(action))?
                    .iter()
                    .map(maxout_row)
                    .collect::<sqlx::Result<_>>()
                    .map_err(failed(action))?;
            match overlapping.split_first() {
                Some((stored, others)) if same_event(stored, new) => {
                    let m = others
                        .iter()
                        .fold(merged(stored, new), |m, other| merged(other, &m));
                    for other in others {
                        sqlx::query(sql::poi::DELETE_MAXOUT.postgres)
                            .bind(other.id)
                            .execute(&mut *tx)
                            .await
                            .map_err(failed(action))?;
                    }
                    if !others.is_empty()
                        || m.start != stored.start
                        || m.end != stored.end
                        || m.peak_bps != stored.peak_bps
                    {
                        sqlx::query(sql::poi::UPDATE_MAXOUT.postgres)
                            .bind(stored.id)
                            .bind(m.start)
                            .bind(m.end)
                            .bind(m.samples)
                            .bind(m.peak_bps)
                            .bind(m.peak_pct)
                            .bind(m.capacity_bps)
                            .bind(&m.poi_code)
                            .bind(&m.circuit_id)
                            .execute(&mut *tx)
                            .await
                            .map_err(failed(action))?;
                        result.extended += 1;
                    }
                }
                _ => {
                    let row = sqlx::query(sql::poi::INSERT_MAXOUT.postgres)
                        .bind(source)
                        .bind(graph_id)
                        .bind(&new.poi_code)
                        .bind(&new.circuit_id)
                        .bind(new.direction)
                        .bind(new.start)
                        .bind(new.end)
                        .bind(new.samples)
                        .bind(new.peak_bps)
                        .bind(new.peak_pct)
                        .bind(new.capacity_bps)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(failed(action))?;
                    result
                        .created
                        .push(maxout_row(&row).map_err(failed(action))?);
                }
            }
        }
        tx.commit().await.map_err(failed(action))?;
        Ok(result)
    }

    async fn save_scrape_run(&self, run: &ScrapeRunRecord) -> Result<()> {
        sqlx::query(sql::poi::SAVE_SCRAPE_RUN.postgres)
            .bind(&run.source)
            .bind(run.started)
            .bind(run.finished)
            .bind(run.fetched)
            .bind(run.samples)
            .bind(serde_json::json!(run.skipped))
            .bind(serde_json::json!(run.failed))
            .execute(&self.pool)
            .await
            .map_err(failed("recording a scrape run"))?;
        Ok(())
    }

    async fn unalerted_maxouts(&self, limit: u32) -> Result<Vec<MaxoutRecord>> {
        let rows = sqlx::query(sql::poi::UNALERTED_MAXOUTS.postgres)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing maxouts to alert"))?;
        rows.iter()
            .map(maxout_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing maxouts to alert"))
    }

    async fn mark_maxout_alerted(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(sql::poi::MARK_MAXOUT_ALERTED.postgres)
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(failed("marking a maxout alerted"))?;
        Ok(())
    }

    async fn pois(&self) -> Result<Vec<PoiRecord>> {
        let rows = sqlx::query(sql::poi::POIS.postgres)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing POIs"))?;
        rows.iter()
            .map(poi_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing POIs"))
    }

    async fn poi(&self, code: &str) -> Result<Option<PoiRecord>> {
        sqlx::query(sql::poi::POI.postgres)
            .bind(code)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("reading a POI"))?
            .map(|row| poi_row(&row))
            .transpose()
            .map_err(failed("reading a POI"))
    }

    async fn poi_graphs(&self, code: &str) -> Result<Vec<GraphRecord>> {
        let rows = sqlx::query(sql::poi::POI_GRAPHS.postgres)
            .bind(code)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing a POI's graphs"))?;
        rows.iter()
            .map(graph_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing a POI's graphs"))
    }

    async fn unparsed_graphs(&self) -> Result<Vec<GraphRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {GRAPH_COLUMNS} FROM cacti_graphs
             WHERE NOT parsed OR poi_code IS NULL ORDER BY source, graph_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("listing unparsed graphs"))?;
        rows.iter()
            .map(graph_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing unparsed graphs"))
    }

    async fn maxouts(&self, q: &MaxoutQuery) -> Result<Vec<MaxoutRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {MAXOUT_COLUMNS} FROM poi_maxouts
             WHERE ($1::text IS NULL OR poi_code = $1) AND end_at > $2 AND start_at < $3
             ORDER BY start_at, id LIMIT $4"
        ))
        .bind(&q.poi_code)
        .bind(q.from)
        .bind(q.to)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("listing maxouts"))?;
        rows.iter()
            .map(maxout_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing maxouts"))
    }

    async fn scrape_runs(&self, limit: u32) -> Result<Vec<ScrapeRunRecord>> {
        let rows = sqlx::query(sql::poi::SCRAPE_RUNS.postgres)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing scrape runs"))?;
        rows.iter()
            .map(run_row)
            .collect::<sqlx::Result<_>>()
            .map_err(failed("listing scrape runs"))
    }

    async fn release_job(&self, job: &str, holder: &str) -> Result<()> {
        sqlx::query(sql::poi::RELEASE_JOB.postgres)
            .bind(job)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(failed("releasing a job lease"))?;
        Ok(())
    }

    async fn claim_job(
        &self,
        job: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let until =
            now + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::seconds(60));
        let done = sqlx::query(sql::poi::CLAIM_JOB.postgres)
            .bind(job)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(failed("claiming a job lease"))?;
        Ok(done.rows_affected() == 1)
    }
}
