//! PostgreSQL backend (sqlx). Batch writes go in as arrays through UNNEST: one statement per
//! table per batch, never a row at a time. Several collectors may share one database.

use super::{
    device_id, failed, identity_changes, loss, pack_rtts, ports_text, status_name, unpack_rtts,
    AgentRow, BatchPlan, DeviceQuery, DeviceRow, HistoryQuery, IdentityChange, IngestAudit,
    IngestOutcome, ProbeSample, Result, Store, StoreError, UNASSIGNED,
};
use crate::storage::sql::core::DEVICE_COLUMNS;
use crate::storage::{merge, sql, SpeedTestQuery, SpeedTestRow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use netwarden_shared::{AgentId, Batch, DeviceStatus};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

mod alerting;
mod customers;
mod fleet_plan;
mod kpi;
mod overview;
mod partitions;
mod poi;
mod rollup;
mod telemetry;
mod tokens;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
    max_connections: u32,
    /// Circuit ids known to exist (circuits are never deleted, so this never goes stale, also
    /// with other collectors on the database): a group of samples whose circuits are all here
    /// is stored without looking any up.
    known_circuits: std::sync::RwLock<HashSet<String>>,
}

/// Hides the password of a connection URL, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|err| StoreError::Backend {
                action: "connecting to PostgreSQL",
                retryable: super::retry::is_retryable(&err),
                source: format!("{}: {err}", redact_url(url)).into(),
            })?;
        Ok(PostgresStore {
            pool,
            max_connections: max_connections.max(1),
            known_circuits: Default::default(),
        })
    }
}

fn device_row(row: &PgRow) -> sqlx::Result<DeviceRow> {
    Ok(DeviceRow {
        id: row.try_get("id")?,
        agent_id: row.try_get("agent_id")?,
        address: row.try_get("address")?,
        mac: row.try_get("mac")?,
        vendor: row.try_get("vendor")?,
        hostname: row.try_get("hostname")?,
        status: row
            .try_get::<Option<i16>, _>("status")?
            .and_then(|s| status_name(i64::from(s))),
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        last_probe_at: row.try_get("last_probe_at")?,
        last_loss_pct: row.try_get("last_loss_pct")?,
        last_rtt_ms: row.try_get("last_rtt_ms")?,
        device_type: row.try_get("device_type")?,
        alive_by: row.try_get("alive_by")?,
    })
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    /// Half the pool: PostgreSQL commits in parallel, and the API keeps connections to read.
    fn concurrent_commits(&self) -> usize {
        (self.max_connections as usize / 2).max(1)
    }

    async fn migrate(&self) -> Result<Vec<String>> {
        let before: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default();
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        self.ensure_partitions(Utc::now()).await?;
        Ok(MIGRATOR
            .iter()
            .filter(|m| !before.contains(&m.version))
            .map(|m| format!("{:04}_{}", m.version, m.description))
            .collect())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query(sql::core::PING.postgres)
            .execute(&self.pool)
            .await
            .map_err(failed("checking the database"))?;
        Ok(())
    }

    async fn ingest_group(
        &self,
        items: std::sync::Arc<Vec<(AgentId, Batch)>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<IngestOutcome>>> {
        // One transaction for the group, written as one plan per agent: each device upserted
        // once and all results in one insert, however many batches the group holds. A failure
        // fails the group; the group committer gives each agent its own groups, so that only
        // makes one agent resend.
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(failed("starting an ingest transaction"))?;
        let outcomes = ingest_group(&mut tx, &items, now).await?;
        tx.commit().await.map_err(failed("committing batches"))?;
        Ok(outcomes.into_iter().map(Ok).collect())
    }

    async fn agents(&self) -> Result<Vec<AgentRow>> {
        let rows = sqlx::query(sql::core::AGENTS.postgres)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("listing agents"))?;
        rows.iter()
            .map(|row| {
                Ok(AgentRow {
                    id: row.try_get("id")?,
                    first_seen: row.try_get("first_seen")?,
                    last_seen: row.try_get("last_seen")?,
                    results_received: row.try_get("results_received")?,
                    batches_received: row.try_get("batches_received")?,
                    last_sequence: row.try_get("last_sequence")?,
                    buffer_backlog: row.try_get("buffer_backlog")?,
                    dropped_total: row.try_get("dropped_total")?,
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("listing agents"))
    }

    async fn devices(&self, query: &DeviceQuery) -> Result<Vec<DeviceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices
             WHERE ($1::text IS NULL OR agent_id = $1) AND ($2::smallint IS NULL OR status = $2)
               AND ($5::text IS NULL OR coalesce(device_type, '{UNASSIGNED}') = $5)
             ORDER BY id LIMIT $3 OFFSET $4"
        ))
        .bind(&query.agent_id)
        .bind(query.status.map(DeviceStatus::code))
        .bind(i64::from(query.limit))
        .bind(i64::from(query.offset))
        .bind(&query.device_type)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("listing devices"))?;
        rows.iter()
            .map(device_row)
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("listing devices"))
    }

    async fn site_baseline(
        &self,
        agent: &str,
        site: &str,
        sweep_at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        sqlx::query_scalar(
            "INSERT INTO discovery_sites (agent_id, site, baseline_at) VALUES ($1, $2, $3)
             ON CONFLICT (agent_id, site) DO UPDATE SET baseline_at = discovery_sites.baseline_at
             RETURNING baseline_at",
        )
        .bind(agent)
        .bind(site)
        .bind(sweep_at)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("recording a discovery site's baseline"))
    }

    async fn set_device_type(
        &self,
        id: i64,
        device_type: Option<&str>,
    ) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(&format!(
            "UPDATE devices SET device_type = $2 WHERE id = $1 RETURNING {DEVICE_COLUMNS}"
        ))
        .bind(id)
        .bind(device_type)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("setting a device's type"))?;
        row.as_ref()
            .map(device_row)
            .transpose()
            .map_err(failed("setting a device's type"))
    }

    async fn device(&self, id: i64) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(sql::core::DEVICE.postgres)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("reading a device"))?;
        row.as_ref()
            .map(device_row)
            .transpose()
            .map_err(failed("reading a device"))
    }

    async fn identity_changes(&self, id: i64) -> Result<Vec<IdentityChange>> {
        let rows = sqlx::query(sql::core::IDENTITY_CHANGES.postgres)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("reading identity changes"))?;
        let rows = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("ts")?,
                    row.try_get("mac")?,
                    row.try_get("vendor")?,
                ))
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("reading identity changes"))?;
        Ok(identity_changes(rows))
    }

    async fn device_history(&self, id: i64, query: &HistoryQuery) -> Result<Vec<ProbeSample>> {
        let rows = sqlx::query(sql::core::DEVICE_HISTORY.postgres)
            .bind(id)
            .bind(query.from)
            .bind(query.to)
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("reading device history"))?;
        rows.iter()
            .map(|row| {
                let sent: i32 = row.try_get("sent")?;
                let received: i32 = row.try_get("received")?;
                Ok(ProbeSample {
                    ts: row.try_get("ts")?,
                    agent_record_id: row.try_get("agent_record_id")?,
                    sent,
                    received,
                    loss_pct: loss(sent, received),
                    rtt_min_ms: row.try_get("rtt_min")?,
                    rtt_median_ms: row.try_get("rtt_median")?,
                    rtt_mean_ms: row.try_get("rtt_mean")?,
                    rtt_max_ms: row.try_get("rtt_max")?,
                    rtt_p95_ms: row.try_get("rtt_p95")?,
                    rtt_stddev_ms: row.try_get("rtt_stddev")?,
                    jitter_ms: row.try_get("jitter")?,
                    rtts_ms: unpack_rtts(
                        &row.try_get::<Option<Vec<u8>>, _>("rtts")?
                            .unwrap_or_default(),
                    ),
                    status: status_name(i64::from(row.try_get::<i16, _>("status")?))
                        .unwrap_or("unknown"),
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("reading device history"))
    }

    async fn speed_tests(&self, query: &SpeedTestQuery) -> Result<Vec<SpeedTestRow>> {
        let rows = sqlx::query(sql::core::SPEED_TESTS.postgres)
            .bind(query.agent.as_deref())
            .bind(query.from)
            .bind(query.to)
            .bind(i64::from(query.limit))
            .bind(i64::from(query.offset))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("reading speed tests"))?;
        rows.iter()
            .map(|row| {
                Ok(SpeedTestRow {
                    agent_id: row.try_get("agent_id")?,
                    ts: row.try_get("ts")?,
                    url: row.try_get("url")?,
                    direction: row.try_get("direction")?,
                    bytes: row.try_get("bytes")?,
                    duration_us: row.try_get("duration_us")?,
                    mbps: row.try_get("mbps")?,
                    error: row.try_get("error")?,
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed("reading speed tests"))
    }

    async fn ingest_audit(&self, agent: &AgentId) -> Result<IngestAudit> {
        let b = sqlx::query(
            "SELECT count(*) AS n, coalesce(min(sequence), 0) AS lo, coalesce(max(sequence), 0) AS hi,
                 coalesce(sum(record_count), 0)::bigint AS records
             FROM ingest_batches WHERE agent_id = $1",
        )
        .bind(agent.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(failed("auditing batches"))?;
        let p = sqlx::query(
            "SELECT count(*) AS n, count(DISTINCT p.agent_record_id) AS d,
                 coalesce(min(p.agent_record_id), 0) AS lo, coalesce(max(p.agent_record_id), 0) AS hi
             FROM probe_results p JOIN devices d ON d.id = p.device_id WHERE d.agent_id = $1",
        )
        .bind(agent.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(failed("auditing probe results"))?;
        let get = |row: &PgRow, col: &str| -> Result<i64> {
            row.try_get(col).map_err(failed("auditing ingest"))
        };
        Ok(IngestAudit {
            batches: get(&b, "n")?,
            min_sequence: get(&b, "lo")?,
            max_sequence: get(&b, "hi")?,
            records_in_batches: get(&b, "records")?,
            probe_results: get(&p, "n")?,
            distinct_probe_record_ids: get(&p, "d")?,
            min_record_id: get(&p, "lo")?,
            max_record_id: get(&p, "hi")?,
        })
    }
}

/// Records which batches are new, writes them per agent and updates the agents' totals.
async fn ingest_group(
    conn: &mut PgConnection,
    items: &[(AgentId, Batch)],
    now: DateTime<Utc>,
) -> Result<Vec<IngestOutcome>> {
    let agents: Vec<&str> = items.iter().map(|(a, _)| a.as_str()).collect();
    let sequences: Vec<i64> = items.iter().map(|(_, b)| b.sequence as i64).collect();
    let counts: Vec<i32> = items.iter().map(|(_, b)| b.records.len() as i32).collect();
    let fresh_rows = sqlx::query(
        "INSERT INTO ingest_batches (agent_id, sequence, record_count, received_at)
         SELECT u.agent_id, u.sequence, u.record_count, $4
         FROM UNNEST($1::text[], $2::bigint[], $3::int[]) AS u(agent_id, sequence, record_count)
         ON CONFLICT DO NOTHING
         RETURNING agent_id, sequence",
    )
    .bind(&agents)
    .bind(&sequences)
    .bind(&counts)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .map_err(failed("recording batches"))?;
    let mut fresh: HashSet<(String, i64)> = HashSet::with_capacity(fresh_rows.len());
    for row in fresh_rows {
        fresh.insert((
            row.try_get("agent_id")
                .map_err(failed("recording batches"))?,
            row.try_get("sequence")
                .map_err(failed("recording batches"))?,
        ));
    }
    // The first copy of a fresh (agent, sequence) is stored; any other copy is a duplicate.
    let mut outcomes = Vec::with_capacity(items.len());
    let mut by_agent: BTreeMap<&str, Vec<&Batch>> = BTreeMap::new();
    for (agent, batch) in items {
        let key = (agent.as_str().to_string(), batch.sequence as i64);
        if fresh.remove(&key) {
            outcomes.push(IngestOutcome::Stored {
                records: batch.records.len() as u32,
            });
            by_agent.entry(agent.as_str()).or_default().push(batch);
        } else {
            outcomes.push(IngestOutcome::Duplicate);
            by_agent.entry(agent.as_str()).or_default();
        }
    }
    for (agent, batches) in &by_agent {
        if !batches.is_empty() {
            write_batches(conn, agent, batches).await?;
        }
    }
    // Totals and the agent's own report (from its newest batch), one row per agent.
    for (agent, batches) in by_agent {
        let newest = items
            .iter()
            .filter(|(a, _)| a.as_str() == agent)
            .map(|(_, b)| b)
            .max_by_key(|b| b.sequence)
            .map(|b| (b.sequence, b.status))
            .unwrap_or_default();
        let records: i64 = batches.iter().map(|b| b.records.len() as i64).sum();
        sqlx::query(
            "INSERT INTO agents (id, first_seen, last_seen, results_received, batches_received,
                 last_sequence, buffer_backlog, dropped_total)
             VALUES ($1, $2, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET last_seen = EXCLUDED.last_seen,
                 results_received = agents.results_received + EXCLUDED.results_received,
                 batches_received = agents.batches_received + EXCLUDED.batches_received,
                 last_sequence = GREATEST(agents.last_sequence, EXCLUDED.last_sequence),
                 -- a replay of an older batch must not overwrite a newer report
                 buffer_backlog = CASE WHEN $8 >= agents.last_sequence
                                  THEN EXCLUDED.buffer_backlog ELSE agents.buffer_backlog END,
                 dropped_total = CASE WHEN $8 >= agents.last_sequence
                                 THEN EXCLUDED.dropped_total ELSE agents.dropped_total END",
        )
        .bind(agent)
        .bind(now)
        .bind(records)
        .bind(batches.len() as i64)
        .bind(batches.iter().map(|b| b.sequence as i64).max().unwrap_or(0))
        .bind(newest.1.buffer_backlog as i64)
        .bind(newest.1.dropped_total as i64)
        .bind(newest.0 as i64)
        .execute(&mut *conn)
        .await
        .map_err(failed("recording the agent"))?;
    }
    Ok(outcomes)
}

/// The devices of a batch, upserted in one statement, merging under [`merge::DEVICE`]'s rules.
static DEVICE_UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO devices (agent_id, address, mac, vendor, hostname, first_seen, last_seen,
             status, last_probe_at, last_loss_pct, last_rtt_ms, identity_at, alive_by)
         SELECT $1, u.address, u.mac, u.vendor, u.hostname, u.first, u.seen, u.status,
             u.probe_at, u.loss, u.rtt, u.identity_at, u.alive_by
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
             $7::smallint[], $8::timestamptz[], $9::real[], $10::real[], $11::timestamptz[],
             $12::timestamptz[], $13::text[])
             AS u(address, mac, vendor, hostname, seen, status, probe_at, loss, rtt, first,
                  identity_at, alive_by)
         ON CONFLICT (agent_id, address) DO UPDATE SET {}
         RETURNING id, address",
        merge::device_assignments(
            merge::POSTGRES,
            |c| format!("devices.{c}"),
            |c| format!("EXCLUDED.{c}")
        )
    )
});

/// Writes one agent's new batches: devices, probe results, discoveries, speed tests.
async fn write_batches(conn: &mut PgConnection, agent: &str, batches: &[&Batch]) -> Result<()> {
    let plan = BatchPlan::new(batches.iter().copied());
    let n = plan.devices.len();
    let (mut addresses, mut macs, mut vendors, mut hostnames, mut seen) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut firsts = Vec::with_capacity(n);
    let mut identity_at = Vec::with_capacity(n);
    let mut alive: Vec<Option<String>> = Vec::with_capacity(n);
    let (mut statuses, mut probe_at, mut losses, mut rtts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for device in &plan.devices {
        let identity = device.identity.clone().unwrap_or_default();
        identity_at.push(device.identity.as_ref().map(|i| i.at));
        addresses.push(device.address.to_string());
        macs.push(identity.mac);
        vendors.push(identity.vendor);
        hostnames.push(identity.hostname);
        seen.push(device.seen_at);
        firsts.push(device.first_at);
        statuses.push(device.probe.map(|p| p.status));
        probe_at.push(device.probe.map(|p| p.at));
        losses.push(device.probe.map(|p| p.loss_pct));
        rtts.push(device.probe.and_then(|p| p.rtt_ms));
        alive.push(device.probe.and_then(|p| p.alive_by).map(str::to_string));
    }
    let rows = sqlx::query(&DEVICE_UPSERT)
        .bind(agent)
        .bind(&addresses)
        .bind(&macs)
        .bind(&vendors)
        .bind(&hostnames)
        .bind(&seen)
        .bind(&statuses)
        .bind(&probe_at)
        .bind(&losses)
        .bind(&rtts)
        .bind(&firsts)
        .bind(&identity_at)
        .bind(&alive)
        .fetch_all(&mut *conn)
        .await
        .map_err(failed("upserting devices"))?;
    let mut device_ids: HashMap<IpAddr, i64> = HashMap::with_capacity(rows.len());
    for row in rows {
        let address: String = row
            .try_get("address")
            .map_err(failed("upserting devices"))?;
        let address = address
            .parse()
            .map_err(failed("reading back device addresses"))?;
        device_ids.insert(
            address,
            row.try_get("id").map_err(failed("upserting devices"))?,
        );
    }

    if !plan.probes.is_empty() {
        let n = plan.probes.len();
        let mut cols = ProbeColumns::with_capacity(n);
        for (round, at, record_id) in &plan.probes {
            cols.push(
                device_id(&device_ids, round.target)?,
                *at,
                *record_id,
                round,
            );
        }
        sqlx::query(
            "INSERT INTO probe_results (device_id, ts, agent_record_id, sent, received,
                 rtt_min, rtt_median, rtt_mean, rtt_max, rtt_p95, rtt_stddev, jitter, rtts, status)
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::bigint[], $4::int[],
                 $5::int[], $6::real[], $7::real[], $8::real[], $9::real[], $10::real[],
                 $11::real[], $12::real[], $13::bytea[], $14::smallint[])",
        )
        .bind(&cols.device_id)
        .bind(&cols.ts)
        .bind(&cols.record_id)
        .bind(&cols.sent)
        .bind(&cols.received)
        .bind(&cols.min)
        .bind(&cols.median)
        .bind(&cols.mean)
        .bind(&cols.max)
        .bind(&cols.p95)
        .bind(&cols.stddev)
        .bind(&cols.jitter)
        .bind(&cols.rtts)
        .bind(&cols.status)
        .execute(&mut *conn)
        .await
        .map_err(failed("inserting probe results"))?;
    }

    if !plan.discoveries.is_empty() {
        let d = &plan.discoveries;
        let ids = d
            .iter()
            .map(|(host, ..)| device_id(&device_ids, host.address))
            .collect::<Result<Vec<_>>>()?;
        sqlx::query(
            "INSERT INTO discoveries (device_id, ts, agent_record_id, mac, vendor, hostname,
                 open_ports, rtt_ms, method)
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::bigint[], $4::text[],
                 $5::text[], $6::text[], $7::text[], $8::real[], $9::text[])",
        )
        .bind(ids)
        .bind(d.iter().map(|(_, at, _)| *at).collect::<Vec<_>>())
        .bind(d.iter().map(|(_, _, id)| *id as i64).collect::<Vec<_>>())
        .bind(d.iter().map(|(h, ..)| h.mac.clone()).collect::<Vec<_>>())
        .bind(d.iter().map(|(h, ..)| h.vendor.clone()).collect::<Vec<_>>())
        .bind(
            d.iter()
                .map(|(h, ..)| h.hostname.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            d.iter()
                .map(|(h, ..)| ports_text(&h.open_ports))
                .collect::<Vec<_>>(),
        )
        .bind(d.iter().map(|(h, ..)| h.rtt_ms).collect::<Vec<_>>())
        .bind(
            d.iter()
                .map(|(h, ..)| h.method.as_str())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await
        .map_err(failed("inserting discoveries"))?;
    }
    if !plan.speed_tests.is_empty() {
        let t = &plan.speed_tests;
        sqlx::query(
            "INSERT INTO speed_tests (agent_id, ts, agent_record_id, url, direction, bytes,
                 duration_us, mbps, error)
             SELECT $1, u.* FROM UNNEST($2::timestamptz[], $3::bigint[], $4::text[], $5::text[],
                 $6::bigint[], $7::bigint[], $8::float8[], $9::text[]) AS u",
        )
        .bind(agent)
        .bind(t.iter().map(|(_, at, _)| *at).collect::<Vec<_>>())
        .bind(t.iter().map(|(_, _, id)| *id as i64).collect::<Vec<_>>())
        .bind(t.iter().map(|(s, ..)| s.url.clone()).collect::<Vec<_>>())
        .bind(
            t.iter()
                .map(|(s, ..)| s.direction.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(t.iter().map(|(s, ..)| s.bytes as i64).collect::<Vec<_>>())
        .bind(
            t.iter()
                .map(|(s, ..)| s.duration_us as i64)
                .collect::<Vec<_>>(),
        )
        .bind(t.iter().map(|(s, ..)| s.mbps).collect::<Vec<_>>())
        .bind(t.iter().map(|(s, ..)| s.error.clone()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(failed("inserting speed tests"))?;
    }
    if !plan.port_checks.is_empty() {
        let c = &plan.port_checks;
        let ids = c
            .iter()
            .map(|(check, ..)| device_id(&device_ids, check.target))
            .collect::<Result<Vec<_>>>()?;
        sqlx::query(
            "INSERT INTO port_checks (device_id, ts, agent_record_id, port, state, connect_ms)
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::bigint[], $4::int[],
                 $5::text[], $6::real[])",
        )
        .bind(ids)
        .bind(c.iter().map(|(_, at, _)| *at).collect::<Vec<_>>())
        .bind(c.iter().map(|(_, _, id)| *id as i64).collect::<Vec<_>>())
        .bind(
            c.iter()
                .map(|(p, ..)| i32::from(p.port))
                .collect::<Vec<_>>(),
        )
        .bind(c.iter().map(|(p, ..)| p.state.as_str()).collect::<Vec<_>>())
        .bind(c.iter().map(|(p, ..)| p.connect_ms).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(failed("inserting port checks"))?;
    }
    // One row per port (the planner took each port's newest), in a fixed order.
    for port in &plan.ports {
        sqlx::query(sql::overview::PORT_STATUS_UPSERT.postgres)
            .bind(device_id(&device_ids, port.address)?)
            .bind(i32::from(port.port))
            .bind(port.state.as_str())
            .bind(port.at)
            .bind(port.connect_ms)
            .bind(port.run_since)
            .bind(port.whole_batch)
            .execute(&mut *conn)
            .await
            .map_err(failed("updating port status"))?;
    }
    Ok(())
}

/// Column arrays for one UNNEST insert of probe results.
struct ProbeColumns {
    device_id: Vec<i64>,
    ts: Vec<DateTime<Utc>>,
    record_id: Vec<i64>,
    sent: Vec<i32>,
    received: Vec<i32>,
    min: Vec<Option<f32>>,
    median: Vec<Option<f32>>,
    mean: Vec<Option<f32>>,
    max: Vec<Option<f32>>,
    p95: Vec<Option<f32>>,
    stddev: Vec<Option<f32>>,
    jitter: Vec<Option<f32>>,
    rtts: Vec<Vec<u8>>,
    status: Vec<i16>,
}

impl ProbeColumns {
    fn with_capacity(n: usize) -> Self {
        ProbeColumns {
            device_id: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            record_id: Vec::with_capacity(n),
            sent: Vec::with_capacity(n),
            received: Vec::with_capacity(n),
            min: Vec::with_capacity(n),
            median: Vec::with_capacity(n),
            mean: Vec::with_capacity(n),
            max: Vec::with_capacity(n),
            p95: Vec::with_capacity(n),
            stddev: Vec::with_capacity(n),
            jitter: Vec::with_capacity(n),
            rtts: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
        }
    }

    fn push(
        &mut self,
        device_id: i64,
        at: DateTime<Utc>,
        record_id: u64,
        round: &netwarden_shared::ProbeRound,
    ) {
        let rtt = round.rtt;
        self.device_id.push(device_id);
        self.ts.push(at);
        self.record_id.push(record_id as i64);
        self.sent.push(round.sent as i32);
        self.received.push(round.received as i32);
        self.min.push(rtt.map(|r| r.min));
        self.median.push(rtt.map(|r| r.median));
        self.mean.push(rtt.map(|r| r.mean));
        self.max.push(rtt.map(|r| r.max));
        self.p95.push(rtt.map(|r| r.p95));
        self.stddev.push(rtt.map(|r| r.stddev));
        self.jitter.push(rtt.map(|r| r.jitter));
        self.rtts.push(pack_rtts(&round.rtts_ms));
        self.status.push(round.status.code());
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://nw:s3cret@db:5432/netwarden"),
            "postgres://nw:***@db:5432/netwarden"
        );
        assert_eq!(redact_url("postgres://nw@db/x"), "postgres://nw@db/x");
    }
}
