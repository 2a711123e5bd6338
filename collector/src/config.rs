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
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        let rule = crate::telemetry::detect::MaxoutRule::default();
        TelemetryConfig {
            maxout_threshold: rule.threshold,
            maxout_consecutive: rule.consecutive,
            retention_days: 90,
            reorder_horizon_secs: 15 * 60,
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
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
        }
    }
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

/// A loaded and checked configuration, with paths made absolute.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: PathBuf,
    pub grpc_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub query_listen: Option<SocketAddr>,
    pub max_message_bytes: usize,
    pub handshake_timeout: std::time::Duration,
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
    /// Customer email; `None` when `[email] smtp_host` is not set.
    pub email: Option<crate::alert::email::EmailSettings>,
    /// Telemetry retention in days; 0 keeps samples forever.
    pub telemetry_retention_days: u32,
    pub detect: crate::detect::device::DeviceRules,
    pub alerting: crate::alert::routing::AlertingConfig,
    /// `None` when `[alerting.telegram]` is not set.
    pub telegram: Option<crate::alert::telegram::TelegramSettings>,
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
            rule: crate::telemetry::detect::MaxoutRule {
                threshold: raw.telemetry.maxout_threshold,
                consecutive: raw.telemetry.maxout_consecutive,
            },
            horizon: std::time::Duration::from_secs(raw.telemetry.reorder_horizon_secs),
        };
        Ok(Settings {
            source: path.to_path_buf(),
            grpc_listen,
            http_listen,
            query_listen,
            max_message_bytes: raw.grpc.max_message_bytes,
            handshake_timeout: std::time::Duration::from_secs(raw.grpc.handshake_timeout_secs),
            tls,
            database,
            max_connections: raw.database.max_connections,
            sqlite_sync: raw.database.sqlite_synchronous,
            log: raw.log,
            scrape,
            kpi,
            telemetry_detection,
            email,
            telemetry_retention_days: raw.telemetry.retention_days,
            detect: raw.detect,
            alerting: raw.alerting,
            telegram,
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
