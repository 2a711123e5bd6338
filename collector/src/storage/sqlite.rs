//! SQLite backend: one file in WAL mode. SQLite allows one writer at a time, so writes share
//! one connection; reads use a small pool so the API never waits behind ingest. rusqlite runs
//! on tokio's blocking threads. (rusqlite rather than sqlx's SQLite driver: it is the agent's
//! buffer library too, so both share one bundled libsqlite3, and it has no per-bind channel hop
//! on the hot ingest path.)

use super::{
    device_id, failed, identity_changes, loss, pack_rtts, ports_text, status_name, unpack_rtts,
    AgentRow, BatchPlan, DeviceQuery, DeviceRow, HistoryQuery, IdentityChange, IngestAudit,
    IngestOutcome, ProbeSample, Result, SqliteSync, Store, StoreError, UNASSIGNED,
};
use crate::storage::sql::core::DEVICE_COLUMNS;
use crate::storage::{merge, sql, SpeedTestQuery, SpeedTestRow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use netwarden_shared::{AgentId, Batch, DeviceStatus};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

mod alerting;
mod checkpoint;
mod customers;
mod fleet_plan;
mod intake;
mod kpi;
mod overview;
mod poi;
mod rollup;
mod telemetry;
mod tokens;

pub use intake::intake_path;
use intake::IntakeWriter;

/// The migrations in order: `(version, earlier name, SQL)`. A version is numbered as the same
/// change is on PostgreSQL (`migrations/postgres/`), so one number means one change on both;
/// a change only SQLite needs takes the number before it and a letter (`0012a`), and a number
/// only PostgreSQL needs (`0011`, its partitions) is skipped here. Databases migrated before
/// the numbers were aligned recorded the earlier name, which counts as the same migration.
const MIGRATIONS: &[(&str, Option<&str>, &str)] = &[
    (
        "0001_init",
        None,
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        "0002_identity_time",
        None,
        include_str!("../../migrations/sqlite/0002_identity_time.sql"),
    ),
    (
        "0003_poi",
        None,
        include_str!("../../migrations/sqlite/0003_poi.sql"),
    ),
    (
        "0004_kpi",
        None,
        include_str!("../../migrations/sqlite/0004_kpi.sql"),
    ),
    (
        "0005_telemetry",
        None,
        include_str!("../../migrations/sqlite/0005_telemetry.sql"),
    ),
    (
        "0006_circuit_maxouts",
        None,
        include_str!("../../migrations/sqlite/0006_circuit_maxouts.sql"),
    ),
    (
        "0007_customers",
        None,
        include_str!("../../migrations/sqlite/0007_customers.sql"),
    ),
    (
        "0008_alerting",
        None,
        include_str!("../../migrations/sqlite/0008_alerting.sql"),
    ),
    (
        "0009_api_tokens",
        None,
        include_str!("../../migrations/sqlite/0009_api_tokens.sql"),
    ),
    (
        "0010_probe_rollups",
        None,
        include_str!("../../migrations/sqlite/0010_probe_rollups.sql"),
    ),
    (
        "0012_device_type",
        Some("0011_device_type"),
        include_str!("../../migrations/sqlite/0012_device_type.sql"),
    ),
    (
        "0012a_telemetry_intake",
        Some("0012_telemetry_intake"),
        include_str!("../../migrations/sqlite/0012a_telemetry_intake.sql"),
    ),
    (
        "0012b_intake_file",
        Some("0013_intake_file"),
        include_str!("../../migrations/sqlite/0012b_intake_file.sql"),
    ),
    (
        "0013_customer_email_claims",
        Some("0014_customer_email_claims"),
        include_str!("../../migrations/sqlite/0013_customer_email_claims.sql"),
    ),
    (
        "0014_cacti_interval_ends",
        Some("0015_cacti_interval_ends"),
        include_str!("../../migrations/sqlite/0014_cacti_interval_ends.sql"),
    ),
    (
        "0015_telemetry_in_time_order",
        Some("0016_telemetry_in_time_order"),
        include_str!("../../migrations/sqlite/0015_telemetry_in_time_order.sql"),
    ),
    (
        "0016_detection_trust",
        Some("0017_detection_trust"),
        include_str!("../../migrations/sqlite/0016_detection_trust.sql"),
    ),
    (
        "0017_revocations",
        Some("0018_revocations"),
        include_str!("../../migrations/sqlite/0017_revocations.sql"),
    ),
    (
        "0017a_column_names_as_postgres",
        None,
        include_str!("../../migrations/sqlite/0017a_column_names_as_postgres.sql"),
    ),
    (
        "0018_customer_email_outbox",
        None,
        include_str!("../../migrations/sqlite/0018_customer_email_outbox.sql"),
    ),
    (
        "0019_fleet_plan",
        None,
        include_str!("../../migrations/sqlite/0019_fleet_plan.sql"),
    ),
    (
        "0020_port_checks",
        None,
        include_str!("../../migrations/sqlite/0020_port_checks.sql"),
    ),
];

/// Known device row ids by (agent, address). Device ids never change and devices are never
/// deleted, so a cached id stays valid; only ids from committed transactions are added.
type DeviceIds = HashMap<(String, IpAddr), i64>;

/// The one write connection and what it knows.
struct Writer {
    conn: Connection,
    device_ids: DeviceIds,
    /// Circuit ids known to exist (circuits are only added through this writer, and never
    /// deleted), so storing telemetry does not look each one up.
    known_circuits: std::collections::HashSet<String>,
    /// How this connection syncs commits (the fold relaxes it for its own).
    sync: SqliteSync,
}

impl Writer {
    /// Opens the write connection. It never checkpoints itself, so its commits never pause
    /// for one: the `checkpoint` thread does that beside it.
    fn open(path: &Path, sync: SqliteSync) -> rusqlite::Result<Writer> {
        let conn = open_connection(path, sync)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(Writer {
            conn,
            device_ids: HashMap::new(),
            known_circuits: std::collections::HashSet::new(),
            sync,
        })
    }

    /// Runs `work` with `synchronous` at `level` instead of the configured one: NORMAL for
    /// commits that need no fsync of their own (the fold's chunks: the next fsync of the WAL
    /// covers them too, as it is one file written in order), FULL for one that must be
    /// durable before the intake lets go of its rows, whatever the configuration.
    fn synchronous_at<T, E: From<rusqlite::Error>>(
        &mut self,
        level: SqliteSync,
        work: impl FnOnce(&mut Writer) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let switch = self.sync != level;
        if switch {
            set_synchronous(&self.conn, None, level)?;
        }
        let result = work(self);
        if switch {
            set_synchronous(&self.conn, None, self.sync)?;
        }
        result
    }
}

pub struct SqliteStore {
    /// Starts the intake fold once the schema has its table (after `migrate`).
    folding: Arc<std::sync::Once>,
    /// Held by a fold cycle, the fold thread's or [`SqliteStore::fold_telemetry_intake`]'s.
    fold_cycle: Arc<Mutex<()>>,
    path: PathBuf,
    writer: Arc<Mutex<Writer>>,
    /// The intake file's writer: samples commit through it, beside the main writer.
    intake: Arc<Mutex<IntakeWriter>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    max_readers: usize,
}

fn open_connection(path: &Path, sync: SqliteSync) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    set_synchronous(&conn, None, sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Device rows and the (device, time) index are updated all over the file on every batch;
    // a 64 MiB page cache keeps those pages in memory instead of re-reading them.
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Sets `synchronous` for database `db` of `conn` (`main` when `None`; the setting is per
/// attached database).
fn set_synchronous(
    conn: &Connection,
    db: Option<rusqlite::DatabaseName<'_>>,
    sync: SqliteSync,
) -> rusqlite::Result<()> {
    let value = match sync {
        SqliteSync::Full => "FULL",
        SqliteSync::Normal => "NORMAL",
    };
    conn.pragma_update(db, "synchronous", value)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

impl SqliteStore {
    /// Opens (creating if needed) the database file.
    pub async fn open(path: &Path, max_connections: u32, sync: SqliteSync) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| StoreError::Backend {
                action: "creating the database directory",
                retryable: true,
                source: format!("{}: {err}", parent.display()).into(),
            })?;
        }
        let owned = path.to_path_buf();
        let (writer, intake) = tokio::task::spawn_blocking(move || {
            let failed_on = |action: &'static str, file: PathBuf| {
                move |err: rusqlite::Error| StoreError::Backend {
                    action,
                    retryable: super::retry::is_retryable(&err),
                    source: format!("{}: {err}", file.display()).into(),
                }
            };
            let writer = Writer::open(&owned, sync)
                .map_err(failed_on("opening the SQLite database", owned.clone()))?;
            let intake = IntakeWriter::open(&owned, sync).map_err(failed_on(
                "opening the SQLite telemetry intake",
                intake::intake_path(&owned),
            ))?;
            Ok::<_, StoreError>((writer, intake))
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))??;
        let writer = Arc::new(Mutex::new(writer));
        let intake = Arc::new(Mutex::new(intake));
        checkpoint::start(
            path.to_path_buf(),
            Arc::downgrade(&writer),
            checkpoint::WAL_LIMIT_BYTES,
            "sqlite-checkpoint",
        );
        checkpoint::start(
            intake::intake_path(path),
            Arc::downgrade(&intake),
            intake::WAL_LIMIT_BYTES,
            "intake-checkpoint",
        );
        Ok(SqliteStore {
            folding: Arc::new(std::sync::Once::new()),
            fold_cycle: Arc::new(Mutex::new(())),
            path: path.to_path_buf(),
            writer,
            intake,
            readers: Arc::new(Mutex::new(Vec::new())),
            max_readers: max_connections.clamp(1, 16) as usize,
        })
    }

    /// Folds the telemetry intake into the indexed table now, as the fold thread does every
    /// second; returns how many samples moved.
    pub async fn fold_telemetry_intake(&self) -> Result<usize> {
        let writer = self.writer.clone();
        let intake = self.intake.clone();
        let path = self.path.clone();
        let one_at_a_time = self.fold_cycle.clone();
        tokio::task::spawn_blocking(move || {
            let action = "folding the telemetry intake";
            let reader =
                intake::open_with_intake(&path, SqliteSync::Normal).map_err(failed(action))?;
            let mut moved = 0;
            loop {
                let n = intake::fold_cycle(&reader, &writer, &intake, &one_at_a_time)
                    .map_err(failed(action))?;
                moved += n;
                if n == 0 {
                    return Ok(moved);
                }
            }
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T> + Send + 'static,
    {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = writer
                .lock()
                .map_err(|e| StoreError::Worker(e.to_string()))?;
            work(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        let max = self.max_readers;
        tokio::task::spawn_blocking(move || {
            let pooled = readers
                .lock()
                .map_err(|e| StoreError::Worker(e.to_string()))?
                .pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => {
                    let conn = intake::open_with_intake(&path, SqliteSync::Normal)
                        .map_err(failed("opening a read connection"))?;
                    conn.pragma_update(None, "query_only", "ON")
                        .map_err(failed("opening a read connection"))?;
                    conn
                }
            };
            let result = work(&conn);
            let mut pool = readers
                .lock()
                .map_err(|e| StoreError::Worker(e.to_string()))?;
            if pool.len() < max {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }
}

/// Commits a group of batches in one transaction (one sync for all of them), each inside its own
/// savepoint so a batch that fails leaves the others intact.
fn ingest_group(
    writer: &mut Writer,
    items: &[(AgentId, Batch)],
    now: DateTime<Utc>,
) -> Result<Vec<Result<IngestOutcome>>> {
    let Writer {
        conn, device_ids, ..
    } = writer;
    let mut tx = conn
        .transaction()
        .map_err(failed("starting an ingest transaction"))?;
    let mut outcomes = Vec::with_capacity(items.len());
    // Ids of devices created in this transaction: cached only once it commits.
    let mut created = DeviceIds::new();
    for (agent, batch) in items {
        let savepoint = tx
            .savepoint()
            .map_err(failed("starting a batch savepoint"))?;
        let mut staged = DeviceIds::new();
        let known = Known {
            committed: device_ids,
            created: &created,
        };
        let outcome = ingest_one(&savepoint, agent.as_str(), batch, now, &known, &mut staged);
        if outcome.is_ok() {
            savepoint
                .commit()
                .map_err(failed("releasing a batch savepoint"))?;
            created.extend(staged);
        } // else: dropping the savepoint rolls the batch back, and its new devices with it
        outcomes.push(outcome);
    }
    tx.commit().map_err(failed("committing batches"))?;
    device_ids.extend(created);
    Ok(outcomes)
}

/// Device ids visible to the batch being stored.
struct Known<'a> {
    committed: &'a DeviceIds,
    created: &'a DeviceIds,
}

impl Known<'_> {
    fn get(&self, key: &(String, IpAddr)) -> Option<i64> {
        self.committed
            .get(key)
            .or_else(|| self.created.get(key))
            .copied()
    }
}

/// The device upsert, merging under [`merge::DEVICE`]'s rules.
static DEVICE_UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO devices (agent_id, address, mac, vendor, hostname, first_seen, last_seen,
             status, last_probe_at, last_loss_pct, last_rtt_ms, identity_at, alive_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?11, ?6, ?7, ?8, ?9, ?10, ?12, ?13)
         ON CONFLICT (agent_id, address) DO UPDATE SET {}
         RETURNING id",
        merge::device_assignments(merge::SQLITE, str::to_string, |c| format!("excluded.{c}"))
    )
});

/// Where [`DEVICE_UPDATE`] takes each incoming column (`?1` is the row id).
const DEVICE_UPDATE_PARAMS: &[(&str, &str)] = &[
    ("first_seen", "?2"),
    ("last_seen", "?3"),
    ("mac", "?4"),
    ("vendor", "?5"),
    ("hostname", "?6"),
    ("status", "?7"),
    ("last_probe_at", "?8"),
    ("last_loss_pct", "?9"),
    ("last_rtt_ms", "?10"),
    ("identity_at", "?11"),
    ("alive_by", "?12"),
];

/// The same merge for a device this writer already knows, by row id.
static DEVICE_UPDATE: LazyLock<String> = LazyLock::new(|| {
    let param = |column: &str| {
        DEVICE_UPDATE_PARAMS
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, p)| p.to_string())
            .unwrap_or_else(|| panic!("DEVICE_UPDATE_PARAMS lacks the merged column {column}"))
    };
    format!(
        "UPDATE devices SET {} WHERE id = ?1",
        merge::device_assignments(merge::SQLITE, str::to_string, param)
    )
});

fn ingest_one(
    tx: &Connection,
    agent: &str,
    batch: &Batch,
    now: DateTime<Utc>,
    known: &Known<'_>,
    staged: &mut DeviceIds,
) -> Result<IngestOutcome> {
    let now_ms = ms(now);
    tx.prepare_cached(
        "INSERT INTO agents (id, first_seen, last_seen, buffer_backlog, dropped_total)
         VALUES (?1, ?2, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen,
             -- a replay of an older batch must not overwrite a newer report
             buffer_backlog = CASE WHEN ?5 >= last_sequence
                              THEN excluded.buffer_backlog ELSE buffer_backlog END,
             dropped_total = CASE WHEN ?5 >= last_sequence
                              THEN excluded.dropped_total ELSE dropped_total END",
    )
    .and_then(|mut s| {
        s.execute(params![
            agent,
            now_ms,
            batch.status.buffer_backlog as i64,
            batch.status.dropped_total as i64,
            batch.sequence as i64
        ])
    })
    .map_err(failed("recording the agent"))?;

    let fresh = tx
        .prepare_cached(
            "INSERT INTO ingest_batches (agent_id, sequence, record_count, received_at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                agent,
                batch.sequence as i64,
                batch.records.len() as i64,
                now_ms
            ])
        })
        .map_err(failed("recording the batch"))?;
    if fresh == 0 {
        return Ok(IngestOutcome::Duplicate);
    }

    let plan = BatchPlan::new([batch]);
    let mut device_ids = HashMap::with_capacity(plan.devices.len());
    {
        let mut upsert = tx
            .prepare_cached(&DEVICE_UPSERT)
            .map_err(failed("preparing the device upsert"))?;
        // A known device needs only an update by row id, several times cheaper than the upsert.
        let mut update = tx
            .prepare_cached(&DEVICE_UPDATE)
            .map_err(failed("preparing the device update"))?;
        for device in &plan.devices {
            let identity = device.identity.clone().unwrap_or_default();
            let identity_ms = device.identity.as_ref().map(|i| ms(i.at));
            let (mac, vendor, hostname) = (identity.mac, identity.vendor, identity.hostname);
            let probe = device.probe;
            let key = (agent.to_string(), device.address);
            if let Some(id) = known.get(&key) {
                let updated = update
                    .execute(params![
                        id,
                        ms(device.first_at),
                        ms(device.seen_at),
                        mac,
                        vendor,
                        hostname,
                        probe.map(|p| p.status),
                        probe.map(|p| ms(p.at)),
                        probe.map(|p| p.loss_pct),
                        probe.and_then(|p| p.rtt_ms),
                        identity_ms,
                        probe.and_then(|p| p.alive_by),
                    ])
                    .map_err(failed("updating devices"))?;
                if updated == 1 {
                    device_ids.insert(device.address, id);
                    continue;
                }
            }
            let id: i64 = upsert
                .query_row(
                    params![
                        agent,
                        device.address.to_string(),
                        mac,
                        vendor,
                        hostname,
                        ms(device.seen_at),
                        probe.map(|p| p.status),
                        probe.map(|p| ms(p.at)),
                        probe.map(|p| p.loss_pct),
                        probe.and_then(|p| p.rtt_ms),
                        ms(device.first_at),
                        identity_ms,
                        probe.and_then(|p| p.alive_by),
                    ],
                    |row| row.get(0),
                )
                .map_err(failed("upserting devices"))?;
            device_ids.insert(device.address, id);
            staged.insert(key, id);
        }
    }

    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO probe_results (device_id, ts, agent_record_id, sent, received,
                     rtt_min, rtt_median, rtt_mean, rtt_max, rtt_p95, rtt_stddev, jitter, rtts, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .map_err(failed("preparing the probe insert"))?;
        for (round, at, record_id) in &plan.probes {
            let rtt = round.rtt;
            insert
                .execute(params![
                    device_id(&device_ids, round.target)?,
                    ms(*at),
                    *record_id as i64,
                    round.sent,
                    round.received,
                    rtt.map(|r| r.min),
                    rtt.map(|r| r.median),
                    rtt.map(|r| r.mean),
                    rtt.map(|r| r.max),
                    rtt.map(|r| r.p95),
                    rtt.map(|r| r.stddev),
                    rtt.map(|r| r.jitter),
                    pack_rtts(&round.rtts_ms),
                    round.status.code(),
                ])
                .map_err(failed("inserting probe results"))?;
        }
    }
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO discoveries (device_id, ts, agent_record_id, mac, vendor, hostname,
                     open_ports, rtt_ms, method) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(failed("preparing the discovery insert"))?;
        for (host, at, record_id) in &plan.discoveries {
            insert
                .execute(params![
                    device_id(&device_ids, host.address)?,
                    ms(*at),
                    *record_id as i64,
                    host.mac,
                    host.vendor,
                    host.hostname,
                    ports_text(&host.open_ports),
                    host.rtt_ms,
                    host.method.as_str(),
                ])
                .map_err(failed("inserting discoveries"))?;
        }
    }
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO speed_tests (agent_id, ts, agent_record_id, url, direction, bytes,
                     duration_us, mbps, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(failed("preparing the speed test insert"))?;
        for (test, at, record_id) in &plan.speed_tests {
            insert
                .execute(params![
                    agent,
                    ms(*at),
                    *record_id as i64,
                    test.url,
                    test.direction.as_str(),
                    test.bytes as i64,
                    test.duration_us as i64,
                    test.mbps,
                    test.error,
                ])
                .map_err(failed("inserting speed tests"))?;
        }
    }
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO port_checks (device_id, ts, agent_record_id, port, state, connect_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(failed("preparing the port check insert"))?;
        for (check, at, record_id) in &plan.port_checks {
            insert
                .execute(params![
                    device_id(&device_ids, check.target)?,
                    ms(*at),
                    *record_id as i64,
                    check.port,
                    check.state.as_str(),
                    check.connect_ms,
                ])
                .map_err(failed("inserting port checks"))?;
        }
        let mut upsert = tx
            .prepare_cached(sql::overview::PORT_STATUS_UPSERT.sqlite)
            .map_err(failed("preparing the port status upsert"))?;
        for port in &plan.ports {
            upsert
                .execute(params![
                    device_id(&device_ids, port.address)?,
                    port.port,
                    port.state.as_str(),
                    ms(port.at),
                    port.connect_ms,
                    ms(port.run_since),
                    port.whole_batch,
                ])
                .map_err(failed("updating port status"))?;
        }
    }
    let records = batch.records.len() as u32;
    tx.prepare_cached(
        "UPDATE agents SET results_received = results_received + ?2,
             batches_received = batches_received + 1,
             last_sequence = max(last_sequence, ?3) WHERE id = ?1",
    )
    .and_then(|mut s| s.execute(params![agent, records, batch.sequence as i64]))
    .map_err(failed("updating agent totals"))?;
    Ok(IngestOutcome::Stored { records })
}

fn device_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        id: row.get(0)?,
        agent_id: row.get(1)?,
        address: row.get(2)?,
        mac: row.get(3)?,
        vendor: row.get(4)?,
        hostname: row.get(5)?,
        status: row.get::<_, Option<i64>>(6)?.and_then(status_name),
        first_seen: from_ms(row.get(7)?),
        last_seen: from_ms(row.get(8)?),
        last_probe_at: row.get::<_, Option<i64>>(9)?.map(from_ms),
        last_loss_pct: row.get(10)?,
        last_rtt_ms: row.get(11)?,
        device_type: row.get(12)?,
        alive_by: row.get(13)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<Vec<String>> {
        let applied = self
            .write(|writer| {
                let conn = &mut writer.conn;
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version TEXT PRIMARY KEY, applied_ms INTEGER NOT NULL)",
                )
                .map_err(|e| StoreError::Migration(e.to_string()))?;
                let mut applied = Vec::new();
                for (version, earlier, sql) in MIGRATIONS {
                    let tx = conn
                        .transaction()
                        .map_err(|e| StoreError::Migration(e.to_string()))?;
                    let done: Option<String> = tx
                        .query_row(
                            "SELECT version FROM schema_migrations WHERE version IN (?1, ?2)",
                            params![version, earlier],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(|e| StoreError::Migration(e.to_string()))?;
                    if done.as_deref().is_some_and(|done| done != *version) {
                        // Applied under its earlier name: recorded under the aligned one now.
                        tx.execute(
                            "UPDATE schema_migrations SET version = ?1 WHERE version = ?2",
                            params![version, done],
                        )
                        .map_err(|e| StoreError::Migration(e.to_string()))?;
                    }
                    if done.is_none() {
                        tx.execute_batch(sql)
                            .map_err(|e| StoreError::Migration(format!("{version}: {e}")))?;
                        tx.execute(
                            "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
                            params![version, ms(Utc::now())],
                        )
                        .map_err(|e| StoreError::Migration(e.to_string()))?;
                        applied.push((*version).to_string());
                    }
                    tx.commit()
                        .map_err(|e| StoreError::Migration(e.to_string()))?;
                }
                Ok(applied)
            })
            .await?;
        let intake = self.intake.clone();
        let file = intake::intake_path(&self.path);
        self.write(move |writer| {
            let mut intake = intake
                .lock()
                .map_err(|e| StoreError::Worker(e.to_string()))?;
            intake::pair(writer, &mut intake, &file).map_err(|err| {
                StoreError::Migration(format!("pairing the telemetry intake: {err}"))
            })
        })
        .await?;
        let writer = Arc::downgrade(&self.writer);
        let intake = Arc::downgrade(&self.intake);
        let path = self.path.clone();
        let one_at_a_time = self.fold_cycle.clone();
        self.folding
            .call_once(|| intake::start_folder(path, writer, intake, one_at_a_time));
        Ok(applied)
    }

    async fn ping(&self) -> Result<()> {
        self.read(|conn| {
            conn.query_row(sql::core::PING.sqlite, [], |_| Ok(()))
                .map_err(failed("checking the database"))
        })
        .await
    }

    async fn ingest_group(
        &self,
        items: std::sync::Arc<Vec<(AgentId, Batch)>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<IngestOutcome>>> {
        self.write(move |writer| ingest_group(writer, &items, now))
            .await
    }

    async fn agents(&self) -> Result<Vec<AgentRow>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(sql::core::AGENTS.sqlite)
                .map_err(failed("listing agents"))?;
            let rows = stmt
                .query_map([], |row| {
                    Ok(AgentRow {
                        id: row.get(0)?,
                        first_seen: from_ms(row.get(1)?),
                        last_seen: from_ms(row.get(2)?),
                        results_received: row.get(3)?,
                        batches_received: row.get(4)?,
                        last_sequence: row.get(5)?,
                        buffer_backlog: row.get(6)?,
                        dropped_total: row.get(7)?,
                    })
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed("listing agents"))?;
            Ok(rows)
        })
        .await
    }

    async fn devices(&self, query: &DeviceQuery) -> Result<Vec<DeviceRow>> {
        let query = query.clone();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {DEVICE_COLUMNS} FROM devices
                 WHERE (?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR status = ?2)
                   AND (?5 IS NULL OR coalesce(device_type, '{UNASSIGNED}') = ?5)
                 ORDER BY id LIMIT ?3 OFFSET ?4"
            );
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(failed("listing devices"))?;
            let rows = stmt
                .query_map(
                    params![
                        query.agent_id,
                        query.status.map(DeviceStatus::code),
                        query.limit,
                        query.offset,
                        query.device_type
                    ],
                    device_row,
                )
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed("listing devices"))?;
            Ok(rows)
        })
        .await
    }

    async fn site_baseline(
        &self,
        agent: &str,
        site: &str,
        sweep_at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let (agent, site) = (agent.to_string(), site.to_string());
        self.write(move |writer| {
            writer
                .conn
                .query_row(
                    "INSERT INTO discovery_sites (agent_id, site, baseline_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (agent_id, site) DO UPDATE SET baseline_at = baseline_at
                     RETURNING baseline_at",
                    params![agent, site, ms(sweep_at)],
                    |r| r.get(0),
                )
                .map(from_ms)
                .map_err(failed("recording a discovery site's baseline"))
        })
        .await
    }

    async fn set_device_type(
        &self,
        id: i64,
        device_type: Option<&str>,
    ) -> Result<Option<DeviceRow>> {
        let device_type = device_type.map(str::to_string);
        self.write(move |w| {
            let changed = w
                .conn
                .execute(
                    "UPDATE devices SET device_type = ?2 WHERE id = ?1",
                    params![id, device_type],
                )
                .map_err(failed("setting a device's type"))?;
            if changed == 0 {
                return Ok(None);
            }
            w.conn
                .prepare_cached(sql::core::DEVICE.sqlite)
                .and_then(|mut s| s.query_row([id], device_row).optional())
                .map_err(failed("setting a device's type"))
        })
        .await
    }

    async fn device(&self, id: i64) -> Result<Option<DeviceRow>> {
        self.read(move |conn| {
            conn.prepare_cached(sql::core::DEVICE.sqlite)
                .and_then(|mut s| s.query_row([id], device_row).optional())
                .map_err(failed("reading a device"))
        })
        .await
    }

    async fn identity_changes(&self, id: i64) -> Result<Vec<IdentityChange>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(sql::core::IDENTITY_CHANGES.sqlite)
                .map_err(failed("reading identity changes"))?;
            let rows = stmt
                .query_map(params![id], |row| {
                    Ok((from_ms(row.get(0)?), row.get(1)?, row.get(2)?))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed("reading identity changes"))?;
            Ok(identity_changes(rows))
        })
        .await
    }

    async fn device_history(&self, id: i64, query: &HistoryQuery) -> Result<Vec<ProbeSample>> {
        let query = query.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(sql::core::DEVICE_HISTORY.sqlite)
                .map_err(failed("reading device history"))?;
            let rows = stmt
                .query_map(
                    params![id, ms(query.from), ms(query.to), query.limit],
                    |row| {
                        let sent: i32 = row.get(2)?;
                        let received: i32 = row.get(3)?;
                        Ok(ProbeSample {
                            ts: from_ms(row.get(0)?),
                            agent_record_id: row.get(1)?,
                            sent,
                            received,
                            loss_pct: loss(sent, received),
                            rtt_min_ms: row.get(4)?,
                            rtt_median_ms: row.get(5)?,
                            rtt_mean_ms: row.get(6)?,
                            rtt_max_ms: row.get(7)?,
                            rtt_p95_ms: row.get(8)?,
                            rtt_stddev_ms: row.get(9)?,
                            jitter_ms: row.get(10)?,
                            rtts_ms: unpack_rtts(
                                &row.get::<_, Option<Vec<u8>>>(11)?.unwrap_or_default(),
                            ),
                            status: status_name(row.get(12)?).unwrap_or("unknown"),
                        })
                    },
                )
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed("reading device history"))?;
            Ok(rows)
        })
        .await
    }

    async fn speed_tests(&self, query: &SpeedTestQuery) -> Result<Vec<SpeedTestRow>> {
        let query = query.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(sql::core::SPEED_TESTS.sqlite)
                .map_err(failed("reading speed tests"))?;
            let rows = stmt
                .query_map(
                    params![
                        query.agent,
                        ms(query.from),
                        ms(query.to),
                        query.limit,
                        query.offset
                    ],
                    |row| {
                        Ok(SpeedTestRow {
                            agent_id: row.get(0)?,
                            ts: from_ms(row.get(1)?),
                            url: row.get(2)?,
                            direction: row.get(3)?,
                            bytes: row.get(4)?,
                            duration_us: row.get(5)?,
                            mbps: row.get(6)?,
                            error: row.get(7)?,
                        })
                    },
                )
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed("reading speed tests"))?;
            Ok(rows)
        })
        .await
    }

    async fn ingest_audit(&self, agent: &AgentId) -> Result<IngestAudit> {
        let agent = agent.as_str().to_string();
        self.read(move |conn| {
            let (batches, min_sequence, max_sequence, records_in_batches) = conn
                .query_row(
                    "SELECT count(*), coalesce(min(sequence), 0), coalesce(max(sequence), 0),
                         coalesce(sum(record_count), 0) FROM ingest_batches WHERE agent_id = ?1",
                    [&agent],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(failed("auditing batches"))?;
            let (probe_results, distinct_probe_record_ids, min_record_id, max_record_id) = conn
                .query_row(
                    "SELECT count(*), count(DISTINCT p.agent_record_id),
                         coalesce(min(p.agent_record_id), 0), coalesce(max(p.agent_record_id), 0)
                     FROM probe_results p JOIN devices d ON d.id = p.device_id
                     WHERE d.agent_id = ?1",
                    [&agent],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(failed("auditing probe results"))?;
            Ok(IngestAudit {
                batches,
                min_sequence,
                max_sequence,
                records_in_batches,
                probe_results,
                distinct_probe_record_ids,
                min_record_id,
                max_record_id,
            })
        })
        .await
    }
}

#[cfg(test)]
mod migration_numbers {
    use super::MIGRATIONS;
    use std::collections::BTreeMap;

    /// Numbers only PostgreSQL uses (its day partitions).
    const POSTGRES_ONLY: &[i64] = &[11];

    #[test]
    fn one_number_is_one_change_on_both_backends() {
        let postgres: BTreeMap<i64, String> = crate::storage::postgres::MIGRATOR
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect();
        for (name, _, _) in MIGRATIONS {
            let (number, change) = name.split_once('_').unwrap();
            if number.ends_with(|c: char| c.is_ascii_alphabetic()) {
                continue; // SQLite's own step after the number before it
            }
            let number: i64 = number.parse().unwrap();
            assert_eq!(
                postgres.get(&number).map(String::as_str),
                Some(change.replace('_', " ").as_str()),
                "SQLite's {name} is another change on PostgreSQL"
            );
        }
        for (number, change) in &postgres {
            let ours = MIGRATIONS
                .iter()
                .any(|(name, _, _)| name.starts_with(&format!("{number:04}_")));
            assert!(
                ours || POSTGRES_ONLY.contains(number),
                "PostgreSQL's {number} ({change}) has no SQLite migration and is not listed as PostgreSQL's own"
            );
        }
    }
}
