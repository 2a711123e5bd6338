//! Agent configuration: `agent.toml`, overridden by `NETWARDEN_AGENT_*` variables
//! (`NETWARDEN_AGENT_COLLECTOR__URL=https://collector:50051`).

use netwarden_shared::config::{self, ConfigError};
use netwarden_shared::logging::LogConfig;
use netwarden_shared::tls::TlsFiles;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const ENV_PREFIX: &str = "NETWARDEN_AGENT_";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    pub collector: CollectorConfig,
    pub tls: TlsConfig,
    pub buffer: BufferConfig,
    pub uplink: UplinkConfig,
    pub probe: ProbeConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// `https://HOST:PORT` of the collector's gRPC listener.
    pub url: String,
    /// Name to check the server certificate against, when it differs from the URL's host.
    pub server_name: Option<String>,
    pub connect_timeout_secs: u64,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            url: String::new(),
            server_name: None,
            connect_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    pub path: PathBuf,
    /// When the buffer holds this many records, the oldest are dropped (and counted).
    pub max_records: u64,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            path: "agent-buffer.db".into(),
            max_records: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UplinkConfig {
    pub batch_max_records: u32,
    /// Batches sent but not yet acknowledged, at most.
    pub max_in_flight: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_secs: u64,
    /// On stop, how long to keep sending what is buffered before exiting (the rest stays buffered).
    pub drain_timeout_secs: u64,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            batch_max_records: 1000,
            max_in_flight: 8,
            backoff_initial_ms: 500,
            backoff_max_secs: 30,
            drain_timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Addresses to probe every round.
    pub targets: Vec<String>,
    /// Pings per target per round (SmokePing's default: 20).
    pub count: u32,
    /// Seconds between the starts of two rounds (SmokePing's default: 300).
    pub interval_secs: u64,
    /// Milliseconds between two pings to the same target.
    pub ping_interval_ms: u64,
    /// A reply later than this counts as lost.
    pub timeout_ms: u64,
    /// A target with at least this much loss (%) is degraded.
    pub degraded_loss_pct: f64,
    /// A target whose median RTT is at least this (ms) is degraded.
    pub degraded_rtt_ms: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            targets: Vec::new(),
            count: 20,
            interval_secs: 300,
            ping_interval_ms: 1000,
            timeout_ms: 2000,
            degraded_loss_pct: 5.0,
            degraded_rtt_ms: 250.0,
        }
    }
}

/// A loaded, checked configuration with absolute paths.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: PathBuf,
    pub collector_url: String,
    pub server_name: Option<String>,
    pub connect_timeout: Duration,
    pub tls: TlsFiles,
    pub buffer_path: PathBuf,
    pub buffer_max_records: u64,
    pub uplink: UplinkConfig,
    pub probe: ProbePlan,
    pub log: LogConfig,
}

/// What to probe and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbePlan {
    pub targets: Vec<IpAddr>,
    pub count: u32,
    pub interval: Duration,
    pub ping_interval: Duration,
    pub timeout: Duration,
    pub degraded_loss_pct: f64,
    pub degraded_rtt_ms: f64,
}

impl Settings {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let raw: AgentConfig = config::load(path, ENV_PREFIX)?;
        Self::from_config(path, raw)
    }

    pub fn from_config(path: &Path, raw: AgentConfig) -> Result<Self, ConfigError> {
        let bad = |field: &str, message: &str| ConfigError::invalid(path, field, message);
        if raw.collector.url.is_empty() {
            return Err(bad(
                "collector.url",
                "is not set; give the collector's gRPC address, e.g. https://collector.example:50051",
            ));
        }
        if !raw.collector.url.starts_with("https://") {
            return Err(bad(
                "collector.url",
                "must start with https:// (agents only speak mutual TLS)",
            ));
        }
        let need = |field: &str, value: &Option<PathBuf>| -> Result<PathBuf, ConfigError> {
            value
                .as_ref()
                .map(|p| config::resolve(path, p))
                .ok_or_else(|| {
                    bad(
                        field,
                        "is not set; issue one with `netwarden-collector pki issue-agent`",
                    )
                })
        };
        let tls = TlsFiles {
            ca: need("tls.ca", &raw.tls.ca)?,
            cert: need("tls.cert", &raw.tls.cert)?,
            key: need("tls.key", &raw.tls.key)?,
        };
        netwarden_shared::tls::client_config(&tls)
            .map_err(|err| ConfigError::invalid(path, "tls", err))?;
        let identity = netwarden_shared::tls::cert_file_info(&tls.cert)
            .map_err(|err| ConfigError::invalid(path, "tls.cert", err))?;
        netwarden_shared::AgentId::new(identity.common_name)
            .map_err(|err| ConfigError::invalid(path, "tls.cert", err))?;

        if raw.buffer.max_records < 1000 {
            return Err(bad("buffer.max_records", "must be at least 1000"));
        }
        let u = &raw.uplink;
        if u.batch_max_records == 0 || u.batch_max_records > 50_000 {
            return Err(bad(
                "uplink.batch_max_records",
                "must be between 1 and 50000",
            ));
        }
        if u.max_in_flight == 0 || u.max_in_flight > 64 {
            return Err(bad("uplink.max_in_flight", "must be between 1 and 64"));
        }
        if u.backoff_initial_ms == 0 || u.backoff_max_secs == 0 {
            return Err(bad(
                "uplink.backoff_initial_ms",
                "backoff times must be above zero",
            ));
        }

        let p = &raw.probe;
        let targets = p
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.parse::<IpAddr>().map_err(|_| {
                    bad(
                        &format!("probe.targets[{i}]"),
                        &format!("{t:?} is not an IP address"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if p.count == 0 || p.count > 1000 {
            return Err(bad("probe.count", "must be between 1 and 1000"));
        }
        if p.interval_secs == 0 {
            return Err(bad("probe.interval_secs", "must be 1 or more"));
        }
        if p.timeout_ms == 0 {
            return Err(bad("probe.timeout_ms", "must be above zero"));
        }
        let round_ms = u64::from(p.count - 1) * p.ping_interval_ms + p.timeout_ms;
        if round_ms > p.interval_secs * 1000 {
            return Err(bad(
                "probe.interval_secs",
                &format!(
                    "a round takes up to {round_ms} ms (count × ping_interval_ms + timeout_ms), longer than the interval"
                ),
            ));
        }
        if !(0.0..=100.0).contains(&p.degraded_loss_pct) {
            return Err(bad("probe.degraded_loss_pct", "must be between 0 and 100"));
        }
        Ok(Settings {
            source: path.to_path_buf(),
            collector_url: raw.collector.url,
            server_name: raw.collector.server_name,
            connect_timeout: Duration::from_secs(raw.collector.connect_timeout_secs.max(1)),
            tls,
            buffer_path: config::resolve(path, &raw.buffer.path),
            buffer_max_records: raw.buffer.max_records,
            uplink: raw.uplink,
            probe: ProbePlan {
                targets,
                count: p.count,
                interval: Duration::from_secs(p.interval_secs),
                ping_interval: Duration::from_millis(p.ping_interval_ms),
                timeout: Duration::from_millis(p.timeout_ms),
                degraded_loss_pct: p.degraded_loss_pct,
                degraded_rtt_ms: p.degraded_rtt_ms,
            },
            log: raw.log,
        })
    }
}
