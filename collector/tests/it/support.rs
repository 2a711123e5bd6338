//! Test plumbing: temporary PKIs, PostgreSQL databases made per test, in-process collectors,
//! mTLS clients, and the built binaries.

use chrono::{DateTime, Utc};
use netwarden_collector::config::{CollectorConfig, Settings};
use netwarden_collector::storage::{PostgresStore, SqliteStore, SqliteSync, Store};
use netwarden_proto::v1;
use netwarden_proto::v1::ingest_service_client::IngestServiceClient;
use netwarden_shared::tls::{client_config, connect_channel, TlsFiles};
use sqlx::Connection;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A PostgreSQL database created for one test and dropped afterwards.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        let base = test_database_url();
        let mut admin = sqlx::PgConnection::connect(&base).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is needed for this test: cannot connect to TEST_DATABASE_URL ({base}): {e}")
        });
        let name = format!(
            "nwtest_{}_{}_{}",
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::SeqCst),
            rand::random::<u32>()
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let (prefix, _) = base.split('?').next().unwrap().rsplit_once('/').unwrap();
        PgDatabase {
            url: format!("{prefix}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let base = test_database_url();
        // Drop runs inside the test's runtime; use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// What keeps a test store alive (its directory or database is removed on drop).
pub struct StoreGuard {
    _dir: Option<TempDir>,
    _db: Option<PgDatabase>,
}

pub async fn sqlite_store() -> (Arc<dyn Store>, StoreGuard) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db"), 4, SqliteSync::Normal)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (
        Arc::new(store),
        StoreGuard {
            _dir: Some(dir),
            _db: None,
        },
    )
}

pub async fn postgres_store() -> (Arc<dyn Store>, StoreGuard) {
    let db = PgDatabase::create().await;
    let store = PostgresStore::connect(&db.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    (
        Arc::new(store),
        StoreGuard {
            _dir: None,
            _db: Some(db),
        },
    )
}

/// A CA with a server certificate and agent certificates, in a temporary directory.
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        netwarden_collector::pki::init(dir.path(), &[], 30, false).unwrap();
        Pki { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn ca(&self) -> PathBuf {
        self.path().join("ca.pem")
    }

    pub fn agent(&self, name: &str) -> TlsFiles {
        let issued = netwarden_collector::pki::issue_agent(
            self.path(),
            name,
            &self.path().join("agents"),
            30,
        )
        .unwrap();
        TlsFiles {
            ca: self.ca(),
            cert: issued.cert,
            key: issued.key,
        }
    }
}

pub enum Backend {
    Sqlite,
    Postgres,
}

/// A collector running in this process on loopback ports. Tests of other features call its API
/// without a token: it starts with `[auth] anonymous_role = "admin"`, which `auth.rs` switches off
/// to test tokens and roles.
pub struct TestCollector {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    /// The operators' gRPC query port.
    pub query: Option<SocketAddr>,
    pub pki: Pki,
    pub store: Arc<dyn Store>,
    stop: CancellationToken,
    _dir: TempDir,
    _db: Option<PgDatabase>,
}

impl TestCollector {
    pub async fn start(backend: Backend) -> TestCollector {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(
        backend: Backend,
        tweak: impl FnOnce(&mut CollectorConfig),
    ) -> TestCollector {
        let pki = Pki::new();
        let dir = tempfile::tempdir().unwrap();
        let mut raw = CollectorConfig::default();
        raw.grpc.listen = "127.0.0.1:0".into();
        raw.http.listen = "127.0.0.1:0".into();
        raw.grpc.query_listen = "127.0.0.1:0".into();
        raw.tls.ca = pki.ca();
        raw.tls.cert = pki.path().join("server.pem");
        raw.tls.key = pki.path().join("server.key");
        raw.auth.anonymous_role = Some(netwarden_collector::auth::Role::Admin);
        // Fixtures use fixed dates (some years back): ingest must take them, and retention
        // must not sweep them mid-test.
        raw.grpc.max_record_age_days = 3660;
        raw.retention = netwarden_collector::rollup::RetentionConfig {
            raw_days: 0,
            rollup_5m_days: 0,
            rollup_1h_days: 0,
        };
        let db = match backend {
            Backend::Sqlite => {
                raw.database.url = format!("sqlite://{}", dir.path().join("c.db").display());
                None
            }
            Backend::Postgres => {
                let db = PgDatabase::create().await;
                raw.database.url = db.url.clone();
                Some(db)
            }
        };
        tweak(&mut raw);
        let settings = Settings::from_config(&dir.path().join("collector.toml"), raw).unwrap();
        let stop = CancellationToken::new();
        let running = netwarden_collector::start(&settings, stop.clone())
            .await
            .unwrap();
        let (grpc, http, store) = (running.grpc_addr, running.http_addr, running.store.clone());
        let query = running.query_addr;
        tokio::spawn(running.wait());
        TestCollector {
            grpc,
            http,
            query,
            pki,
            store,
            stop,
            _dir: dir,
            _db: db,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.grpc)
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub async fn client(
        &self,
        files: &TlsFiles,
    ) -> Result<IngestServiceClient<tonic::transport::Channel>, String> {
        let config = Arc::new(client_config(files).map_err(|e| e.to_string())?);
        let channel = connect_channel(
            &self.url(),
            Some("localhost"),
            config,
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| netwarden_shared::tls::error_chain(&e))?;
        Ok(IngestServiceClient::new(channel).max_encoding_message_size(64 * 1024 * 1024))
    }

    /// An mTLS channel to the gRPC port with these client files.
    pub async fn channel(&self, files: &TlsFiles) -> tonic::transport::Channel {
        let config = Arc::new(client_config(files).unwrap());
        connect_channel(
            &self.url(),
            Some("localhost"),
            config,
            Duration::from_secs(5),
        )
        .await
        .unwrap()
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.api("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for TestCollector {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Sends batches on one stream and collects the replies (acks, or the error that ended it).
pub async fn exchange(
    client: &mut IngestServiceClient<tonic::transport::Channel>,
    batches: Vec<v1::Batch>,
) -> (Vec<v1::Ack>, Option<tonic::Status>) {
    let expected = batches.len();
    let outbound = tokio_stream::iter(batches);
    let mut acks = Vec::new();
    let mut inbound = match client.stream(outbound).await {
        Ok(response) => response.into_inner(),
        Err(status) => return (acks, Some(status)),
    };
    while acks.len() < expected {
        match inbound.message().await {
            Ok(Some(ack)) => acks.push(ack),
            Ok(None) => break,
            Err(status) => return (acks, Some(status)),
        }
    }
    (acks, None)
}

pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// A probe round record for `target` with `received` of 4 replies, as the agent sends it.
pub fn probe_record(record_id: u64, observed_ms: i64, target: &str, received: u32) -> v1::Record {
    let rtts: Vec<f32> = (0..received).map(|i| 10.0 + i as f32).collect();
    v1::Record {
        record_id,
        observed_at_unix_ms: observed_ms,
        kind: Some(v1::record::Kind::ProbeRound(v1::ProbeRound {
            target: target.into(),
            sent: 4,
            received,
            rtt_min_ms: if received > 0 { 10.0 } else { 0.0 },
            rtt_median_ms: if received > 0 { 11.0 } else { 0.0 },
            rtt_mean_ms: if received > 0 { 11.0 } else { 0.0 },
            rtt_max_ms: rtts.last().copied().unwrap_or(0.0),
            rtt_p95_ms: rtts.last().copied().unwrap_or(0.0),
            rtt_stddev_ms: 0.5,
            jitter_ms: 1.0,
            rtts_ms: rtts,
            status: match received {
                0 => v1::DeviceStatus::Offline,
                4 => v1::DeviceStatus::Online,
                _ => v1::DeviceStatus::Degraded,
            } as i32,
            alive_by: if received > 0 {
                v1::Evidence::Icmp as i32
            } else {
                v1::Evidence::Unspecified as i32
            },
        })),
    }
}

pub fn wire_batch(sequence: u64, records: Vec<v1::Record>) -> v1::Batch {
    v1::Batch {
        sequence,
        agent_id: String::new(),
        status: Some(v1::AgentStatus {
            buffer_backlog: records.len() as u64,
            dropped_total: 0,
            agent_version: "test".into(),
        }),
        records,
    }
}

/// A validated domain batch from wire records.
pub fn batch(sequence: u64, records: Vec<v1::Record>) -> netwarden_shared::Batch {
    netwarden_proto::batch_from_wire(wire_batch(sequence, records)).unwrap()
}

/// Path of a binary built from this workspace (`cargo build --bins` builds both).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` before the tests (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A free TCP port on loopback for a process a test starts, from the 12,000 ports just below
/// the kernel's ephemeral range: a port the kernel chose (`:0`) could be handed to another
/// test's outgoing connection before the process binds it (CI failed on that once), and
/// these never are. Each call in a run takes the next one.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    const SPAN: u32 = 12_000;
    if ephemeral_low <= SPAN + 1024 {
        return std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
    }
    let offset = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = ephemeral_low - SPAN + (offset + n) % SPAN;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free port below {ephemeral_low}");
}

/// A test peer process from ../shared/tools (smtp-sink, telegram-fake): started with its
/// arguments, its first stdout line (`listening on URL`) read, killed on drop.
pub struct Peer {
    child: std::process::Child,
    pub url: String,
}

impl Peer {
    pub fn start(tool: &str, args: &[&str]) -> Peer {
        Peer::start_in(None, tool, args)
    }

    /// Starts the peer in network namespace `netns` (on its loopback), or in ours.
    pub fn start_in(netns: Option<&str>, tool: &str, args: &[&str]) -> Peer {
        use std::io::BufRead;
        let var = tool.replace('-', "_").to_ascii_uppercase();
        let program = std::env::var(&var).map(PathBuf::from).unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../shared/tools/{tool}"))
        });
        let mut command = match netns {
            // `ip netns exec` execs the program, so the child is the peer itself.
            Some(ns) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&program);
                c
            }
            None => std::process::Command::new(&program),
        };
        let mut child = command
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{tool} said {line:?}"))
            .to_string();
        Peer { child, url }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A syntactically valid bot token for the Telegram fake.
pub const BOT_TOKEN: &str = "123456789:AAHfakefakefakefakefakefakefake1234";

/// The JSON lines of a file another process appends to (smtp-sink's `index.jsonl`,
/// telegram-fake's `--log`): every complete line, parsed; a line still being written (no
/// newline yet) is left for the next read. A missing file has none.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

/// Puts a migrated SQLite database's columns back to their names before migration 0017a (and
/// forgets that migration), so a test can lay out data as an older release did and migrate
/// again: the older migrations it replays were written against those names.
pub fn sqlite_names_before_0017a(path: &Path) {
    let renames = include_str!("../../migrations/sqlite/0017a_column_names_as_postgres.sql");
    let mut undo = String::new();
    for line in renames.lines().filter(|l| l.starts_with("ALTER TABLE")) {
        // ALTER TABLE t RENAME COLUMN old TO new;
        let words: Vec<&str> = line.trim_end_matches(';').split_whitespace().collect();
        let (table, old, new) = (words[2], words[5], words[7]);
        undo.push_str(&format!(
            "ALTER TABLE {table} RENAME COLUMN {new} TO {old};\n"
        ));
    }
    undo.push_str(
        "DELETE FROM schema_migrations WHERE version = '0017a_column_names_as_postgres';",
    );
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(&undo)
        .unwrap();
}
