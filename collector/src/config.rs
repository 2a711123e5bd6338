//! Collector configuration: `collector.toml`, overridden by `NETWARDEN_COLLECTOR_*` variables
//! (`NETWARDEN_COLLECTOR_DATABASE__URL=postgres://...`).

use crate::cacti::{CactiConfig, PoiConfig, ScrapeSettings};
use crate::kpi::{KpiConfig, KpiSettings};
use crate::storage::{DatabaseLocation, SqliteSync};
use netwarden_shared::config::{self, ConfigError};
use netwarden_shared::logging::LogConfig;
use netwarden_shared::tls::TlsFiles;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const ENV_PREFIX: &str = "NETWARDEN_COLLECTOR_";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    pub grpc: GrpcConfig,
    pub http: HttpConfig,
    pub tls: TlsConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub cacti: CactiConfig,
    pub poi: PoiConfig,
    pub kpi: KpiConfig,
    pub telemetry: TelemetryConfig,
    pub email: crate::alert::email::EmailConfig,
    pub detect: crate::detect::device::DeviceRules,
    pub alerting: crate::alert::routing::AlertingConfig,
    pub auth: crate::auth::AuthConfig,
    pub retention: crate::rollup::RetentionConfig,
}

/// `[telemetry]`: circuit maxout detection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Fraction of provisioned capacity that counts as maxed out (1.0 = 100 %).
    pub maxout_threshold: f64,
    /// Samples in a row at or over it before a maxout event opens.
    pub maxout_consecutive: u32,
    /// Raw samples older than this are deleted (0 keeps them forever).
    pub retention_days: u32,
    /// How far behind its circuit's newest sample a late sample is still evaluated in time
    /// order (it can open, grow, split or withdraw an event); later ones are stored, counted
    /// and listed at /api/telemetry/late, for `import telemetry` to evaluate.
    pub reorder_horizon_secs: u64,
    /// Agents (certificate names) that may post telemetry over gRPC without a token. Any
    /// other client needs an operator token (`authorization: Bearer ...`), as REST does:
    /// telemetry drives customer emails, so an ordinary probe agent may not send it.
    pub grpc_agents: Vec<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        let rule = crate::domain::maxout::MaxoutRule::CIRCUIT;
        TelemetryConfig {
            maxout_threshold: rule.threshold_fraction(),
            maxout_consecutive: rule.consecutive,
            retention_days: 90,
            reorder_horizon_secs: 15 * 60,
            grpc_agents: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Agents connect here over mutual TLS.
    pub listen: String,
    /// Largest message (one batch) accepted; larger ones are refused.
    pub max_message_bytes: usize,
    /// A client that has not finished the TLS handshake by then is dropped.
    pub handshake_timeout_secs: u64,
    /// How far ahead of the collector's clock a record's time may be (agents' clocks drift);
    /// a batch with a record further ahead is refused and the agent sets it aside.
    pub max_clock_skew_secs: u64,
    /// How old a record may be: an agent's buffer holds days of an outage, but a record from
    /// years ago is a broken clock, and would make partitions retention never drops.
    pub max_record_age_days: u32,
    /// Connections each gRPC port holds at most; more are closed at accept (and counted).
    /// Keep it under the process's file limit (the units set `LimitNOFILE=65536`).
    pub max_connections: usize,
    /// TLS handshakes in progress at once per port; more wait their turn.
    pub max_handshakes: usize,
    /// A connection with no gRPC stream for this long is closed (0: never).
    pub idle_timeout_secs: u64,
    /// The operators' `QueryService` (TLS with the server certificate, API tokens; no client
    /// certificate). Empty: not served.
    pub query_listen: String,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: "0.0.0.0:50051".into(),
            max_message_bytes: 16 * 1024 * 1024,
            handshake_timeout_secs: 10,
            max_clock_skew_secs: 300,
            max_record_age_days: 30,
            max_connections: 16_384,
            max_handshakes: 256,
            idle_timeout_secs: 300,
            query_listen: "127.0.0.1:50052".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// REST API, WebSocket, dashboard, `/health` and `/metrics`. Loopback by default; the API
    /// needs tokens (`[auth]`) wherever it listens.
    pub listen: String,
    /// Connections held at most; more are closed at accept (and counted).
    pub max_connections: usize,
    /// A client must have sent a request's headers this long after connecting (or after its
    /// previous response); slower ones are closed.
    pub header_read_timeout_secs: u64,
    /// A request must be answered within this (WebSocket upgrades excepted); else 408.
    pub request_timeout_secs: u64,
    /// Series `/metrics/network` carries at most; the rest are left out and counted.
    pub network_metrics_series: usize,
    /// Speed-test transfers (`/speedtest/*`) served at once; more are refused with 503.
    pub speedtest_concurrency: usize,
    /// Bytes each token may move through `/speedtest/*` in an hour, both ways together.
    pub speedtest_bytes_per_hour: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            max_connections: 8_192,
            header_read_timeout_secs: 10,
            request_timeout_secs: 120,
            network_metrics_series: crate::network_metrics::DEFAULT_SERIES_LIMIT,
            speedtest_concurrency: 4,
            speedtest_bytes_per_hour: 4 << 30,
        }
    }
}

/// The HTTP listener's budgets.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_read_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca: "pki/ca.pem".into(),
            cert: "pki/server.pem".into(),
            key: "pki/server.key".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created on first start) or `postgres://USER@HOST/DB`.
    pub url: String,
    pub max_connections: u32,
    /// SQLite only: `full` (default; acknowledged batches survive power loss) or `normal`.
    pub sqlite_synchronous: SqliteSync,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://netwarden.db".into(),
            max_connections: 8,
            sqlite_synchronous: SqliteSync::Full,
        }
    }
}

/// How far a record's time may be from the collector's clock, ahead and behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordWindow {
    pub ahead: chrono::Duration,
    pub behind: chrono::Duration,
}

impl Default for RecordWindow {
    fn default() -> Self {
        RecordWindow {
            ahead: chrono::Duration::seconds(300),
            behind: chrono::Duration::days(30),
        }
    }
}

impl RecordWindow {
    /// The first record of `records` outside the window around `now`, as (index, why).
    pub fn first_outside(
        &self,
        records: &[netwarden_shared::Record],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<(usize, String)> {
        let (earliest, latest) = (now - self.behind, now + self.ahead);
        records.iter().enumerate().find_map(|(i, r)| {
            let at = r.observed_at;
            if at > latest {
                Some((i, format!("{} is {} s ahead of the collector's clock (at most {} s allowed: grpc.max_clock_skew_secs)", at.to_rfc3339(), (at - now).num_seconds(), self.ahead.num_seconds())))
            } else if at < earliest {
                Some((i, format!("{} is more than {} days old (grpc.max_record_age_days)", at.to_rfc3339(), self.behind.num_days())))
            } else {
                None
            }
        })
    }
}

/// A loaded and checked configuration, with paths made absolute.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: PathBuf,
    pub grpc_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub query_listen: Option<SocketAddr>,
    pub max_message_bytes: usize,
    pub handshake_timeout: std::time::Duration,
    /// The window around the collector's clock a record's time must fall in.
    pub record_window: RecordWindow,
    /// Budgets of the gRPC ports.
    pub grpc_limits: crate::grpc::conns::ConnLimits,
    pub http_limits: HttpLimits,
    /// `[http] network_metrics_series`.
    pub network_metrics_series: usize,
    /// `[http] speedtest_concurrency` and `speedtest_bytes_per_hour`.
    pub speedtest: crate::rest::speedtest_gate::GateLimits,
    pub tls: TlsFiles,
    pub database: DatabaseLocation,
    pub max_connections: u32,
    pub sqlite_sync: SqliteSync,
    pub log: LogConfig,
    /// The Cacti scraper; `None` when no `[[cacti.sources]]` is configured.
    pub scrape: Option<ScrapeSettings>,
    /// The KPI job; `None` when `[kpi] directory` is not set.
    pub kpi: Option<KpiSettings>,
    /// Circuit maxout detection: the rule and the reorder horizon.
    pub telemetry_detection: crate::telemetry::detector::DetectionSettings,
    /// Agents that may post telemetry over gRPC without a token.
    pub telemetry_grpc_agents: Vec<String>,
    /// Customer email; `None` when `[email] smtp_host` is not set.
    pub email: Option<crate::alert::email::EmailSettings>,
    /// Telemetry retention in days; 0 keeps samples forever.
    pub telemetry_retention_days: u32,
    pub detect: crate::detect::device::DeviceRules,
    pub alerting: crate::alert::routing::AlertingConfig,
    /// `None` when `[alerting.telegram]` is not set.
    pub telegram: Option<crate::alert::telegram::TelegramSettings>,
    /// `[[alerting.webhooks]]`, checked.
    pub webhooks: Vec<crate::alert::webhook::Endpoint>,
    /// `[[alerting.alertmanagers]]`, checked.
    pub alertmanagers: Vec<crate::alert::webhook::Endpoint>,
    pub auth: crate::auth::AuthConfig,
    pub retention: crate::rollup::RetentionConfig,
}

impl Settings {
    /// Reads the file, applies environment overrides and checks every field, including that
    /// the certificate files load.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let raw: CollectorConfig = config::load(path, ENV_PREFIX)?;
        Self::from_config(path, raw)
    }

    pub fn from_config(path: &Path, raw: CollectorConfig) -> Result<Self, ConfigError> {
        let addr = |field: &str, value: &str| -> Result<SocketAddr, ConfigError> {
            value.parse().map_err(|_| {
                ConfigError::invalid(
                    path,
                    field,
                    format!("{value:?} is not an address like 0.0.0.0:50051"),
                )
            })
        };
        let grpc_listen = addr("grpc.listen", &raw.grpc.listen)?;
        let http_listen = addr("http.listen", &raw.http.listen)?;
        let query_listen = match raw.grpc.query_listen.trim() {
            "" => None,
            value => Some(addr("grpc.query_listen", value)?),
        };
        if !(64 * 1024..=256 * 1024 * 1024).contains(&raw.grpc.max_message_bytes) {
            return Err(ConfigError::invalid(
                path,
                "grpc.max_message_bytes",
                "must be between 65536 and 268435456",
            ));
        }
        if !(1..=86_400).contains(&raw.grpc.max_clock_skew_secs) {
            return Err(ConfigError::invalid(
                path,
                "grpc.max_clock_skew_secs",
                "must be between 1 and 86400",
            ));
        }
        if !(1..=3660).contains(&raw.grpc.max_record_age_days) {
            return Err(ConfigError::invalid(
                path,
                "grpc.max_record_age_days",
                "must be between 1 and 3660",
            ));
        }
        for (field, value) in [
            ("grpc.max_connections", raw.grpc.max_connections),
            ("grpc.max_handshakes", raw.grpc.max_handshakes),
            ("http.max_connections", raw.http.max_connections),
            ("http.speedtest_concurrency", raw.http.speedtest_concurrency),
        ] {
            if !(1..=1_000_000).contains(&value) {
                return Err(ConfigError::invalid(
                    path,
                    field,
                    "must be between 1 and 1000000",
                ));
            }
        }
        for (field, value) in [
            (
                "http.header_read_timeout_secs",
                raw.http.header_read_timeout_secs,
            ),
            ("http.request_timeout_secs", raw.http.request_timeout_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(path, field, "must be 1 or more"));
            }
        }
        if raw.grpc.handshake_timeout_secs == 0 {
            return Err(ConfigError::invalid(
                path,
                "grpc.handshake_timeout_secs",
                "must be 1 or more",
            ));
        }
        let tls = TlsFiles {
            ca: config::resolve(path, &raw.tls.ca),
            cert: config::resolve(path, &raw.tls.cert),
            key: config::resolve(path, &raw.tls.key),
        };
        netwarden_shared::tls::server_config(&tls)
            .map_err(|err| ConfigError::invalid(path, "tls", err))?;
        let database = match DatabaseLocation::parse(&raw.database.url)
            .map_err(|err| ConfigError::invalid(path, "database.url", err))?
        {
            DatabaseLocation::Sqlite(file) => {
                DatabaseLocation::Sqlite(config::resolve(path, &file))
            }
            other => other,
        };
        if raw.database.max_connections == 0 {
            return Err(ConfigError::invalid(
                path,
                "database.max_connections",
                "must be 1 or more",
            ));
        }
        let scrape = ScrapeSettings::from_config(path, &raw.cacti, &raw.poi)?;
        let kpi = KpiSettings::from_config(path, &raw.kpi)?;
        if !(raw.telemetry.maxout_threshold > 0.0 && raw.telemetry.maxout_threshold <= 10.0) {
            return Err(ConfigError::invalid(
                path,
                "telemetry.maxout_threshold",
                "must be above 0 and at most 10 (1.0 = 100 % of provisioned)",
            ));
        }
        if !(1..=1000).contains(&raw.telemetry.maxout_consecutive) {
            return Err(ConfigError::invalid(
                path,
                "telemetry.maxout_consecutive",
                "must be between 1 and 1000",
            ));
        }
        let email = crate::alert::email::EmailSettings::from_config(path, &raw.email)?;
        raw.detect.check().map_err(|message| {
            let (field, message) = message.split_once(": ").unwrap_or(("detect", &message));
            ConfigError::invalid(path, field, message.to_string())
        })?;
        let telegram = raw
            .alerting
            .telegram
            .as_ref()
            .map(|t| crate::alert::telegram::TelegramSettings::from_config(path, t))
            .transpose()
            .map_err(|(field, message)| ConfigError::invalid(path, &field, message))?;
        let endpoints = |table: &str,
                         format: crate::alert::webhook::Format,
                         list: &[crate::alert::webhook::EndpointConfig]|
         -> Result<Vec<crate::alert::webhook::Endpoint>, ConfigError> {
            let mut checked: Vec<crate::alert::webhook::Endpoint> = Vec::new();
            for (i, raw) in list.iter().enumerate() {
                let field = format!("alerting.{table}[{i}]");
                let endpoint =
                    crate::alert::webhook::Endpoint::from_config(path, &field, format, raw)
                        .map_err(|(field, message)| ConfigError::invalid(path, &field, message))?;
                if checked.iter().any(|e| e.name == endpoint.name) {
                    return Err(ConfigError::invalid(
                        path,
                        &format!("{field}.name"),
                        format!("{:?} is named twice", endpoint.name),
                    ));
                }
                checked.push(endpoint);
            }
            Ok(checked)
        };
        let webhooks = endpoints(
            "webhooks",
            crate::alert::webhook::Format::Webhook,
            &raw.alerting.webhooks,
        )?;
        let alertmanagers = endpoints(
            "alertmanagers",
            crate::alert::webhook::Format::Alertmanager,
            &raw.alerting.alertmanagers,
        )?;
        raw.alerting
            .check(telegram.is_some(), email.is_some())
            .map_err(|message| {
                let (field, message) = message.split_once(": ").unwrap_or(("alerting", &message));
                ConfigError::invalid(path, field, message.to_string())
            })?;
        raw.retention.check().map_err(|message| {
            let (field, message) = message.split_once(": ").unwrap_or(("retention", &message));
            ConfigError::invalid(path, field, message.to_string())
        })?;
        raw.auth.check().map_err(|message| {
            let (field, message) = message.split_once(": ").unwrap_or(("auth", &message));
            ConfigError::invalid(path, field, message.to_string())
        })?;
        if raw.telemetry.reorder_horizon_secs > 86_400 {
            return Err(ConfigError::invalid(
                path,
                "telemetry.reorder_horizon_secs",
                "must be at most 86400 (a day)",
            ));
        }
        let telemetry_detection = crate::telemetry::detector::DetectionSettings {
            rule: crate::domain::maxout::MaxoutRule::fraction(
                raw.telemetry.maxout_threshold,
                raw.telemetry.maxout_consecutive,
            ),
            horizon: std::time::Duration::from_secs(raw.telemetry.reorder_horizon_secs),
        };
        Ok(Settings {
            source: path.to_path_buf(),
            grpc_listen,
            http_listen,
            query_listen,
            max_message_bytes: raw.grpc.max_message_bytes,
            handshake_timeout: std::time::Duration::from_secs(raw.grpc.handshake_timeout_secs),
            record_window: RecordWindow {
                ahead: chrono::Duration::seconds(raw.grpc.max_clock_skew_secs as i64),
                behind: chrono::Duration::days(i64::from(raw.grpc.max_record_age_days)),
            },
            grpc_limits: crate::grpc::conns::ConnLimits {
                max_connections: raw.grpc.max_connections,
                max_handshakes: raw.grpc.max_handshakes,
                idle_timeout: (raw.grpc.idle_timeout_secs > 0)
                    .then(|| std::time::Duration::from_secs(raw.grpc.idle_timeout_secs)),
            },
            http_limits: HttpLimits {
                max_connections: raw.http.max_connections,
                header_read_timeout: std::time::Duration::from_secs(
                    raw.http.header_read_timeout_secs,
                ),
                request_timeout: std::time::Duration::from_secs(raw.http.request_timeout_secs),
            },
            network_metrics_series: raw.http.network_metrics_series,
            speedtest: crate::rest::speedtest_gate::GateLimits {
                concurrency: raw.http.speedtest_concurrency,
                bytes_per_hour: raw.http.speedtest_bytes_per_hour,
            },
            tls,
            database,
            max_connections: raw.database.max_connections,
            sqlite_sync: raw.database.sqlite_synchronous,
            log: raw.log,
            scrape,
            kpi,
            telemetry_detection,
            telemetry_grpc_agents: raw.telemetry.grpc_agents.clone(),
            email,
            telemetry_retention_days: raw.telemetry.retention_days,
            detect: raw.detect,
            alerting: raw.alerting,
            telegram,
            webhooks,
            alertmanagers,
            auth: raw.auth,
            retention: raw.retention,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped example, with its commented-out keys switched on, uses only real keys.
    #[test]
    fn the_example_config_names_only_real_keys() {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/examples/collector.toml"
        );
        let text = std::fs::read_to_string(example).unwrap();
        let commented = regex::Regex::new(r"^# (\[.*\]|[a-z_]+ = .*)$").unwrap();
        let uncommented: String = text
            .lines()
            .map(|line| match commented.captures(line) {
                Some(caps) => format!("{}\n", &caps[1]),
                None => format!("{line}\n"),
            })
            .collect();
        assert!(uncommented.contains("\n[[cacti.sources]]\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.toml");
        std::fs::write(&path, uncommented).unwrap();
        let raw: CollectorConfig = config::load(&path, "NETWARDEN_TEST_UNUSED_").unwrap();
        assert_eq!(raw.cacti.sources.len(), 1);
        assert_eq!(raw.cacti.sources[0].timezone, "Australia/Sydney");
        assert_eq!(raw.cacti.titles.len(), 1);
        assert_eq!(raw.poi.columns.sheet.as_deref(), Some("POIs"));
        assert_eq!(
            raw.kpi.directory.as_deref(),
            Some(std::path::Path::new("/var/lib/netwarden/flows"))
        );
        let titles: Vec<(String, String)> = raw
            .cacti
            .titles
            .iter()
            .map(|t| (t.name.clone(), t.pattern.clone()))
            .collect();
        let parser = crate::poi::TitleParser::new(&titles).unwrap();
        let parsed = parser.parse("POI 2ABT - Albert Park - 500M").unwrap();
        assert_eq!(parsed.pattern, "ours");
        assert_eq!(parsed.capacity_bps, Some(500_000_000));
    }
}
