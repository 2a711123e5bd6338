//! Agent configuration: `agent.toml`, overridden by `NETWARDEN_AGENT_*` variables
//! (`NETWARDEN_AGENT_COLLECTOR__URL=https://collector:50051`).

use crate::discovery::DiscoveryOptions;
use crate::icmp::TimeoutPolicy;
use crate::targets::{expand, parse_ports};
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
    pub network: NetworkConfig,
    pub probe: ProbeConfig,
    pub discovery: DiscoveryConfig,
    pub speedtest: SpeedTestConfig,
    pub plan: PlanConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

/// The collector's fleet plan (see `plan::work` for how it merges with this file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanConfig {
    /// Follow the collector's plan (on by default). Off: only this file runs, whatever the
    /// collector's plan says.
    pub enabled: bool,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig { enabled: true }
    }
}

/// The optional Prometheus endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where to serve /metrics, e.g. "127.0.0.1:9464"; unset: no endpoint.
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// The cap on every packet the agent sends to probe (ICMP, ARP, TCP port checks), together.
    pub packets_per_second: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            packets_per_second: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Seconds between two sweeps of a site (a site may set its own).
    pub interval_secs: u64,
    /// TCP ports to check on live hosts: numbers, names (ssh, https...) or ranges.
    pub ports: Vec<String>,
    /// Probes per address and method (ICMP, ARP); later ones only to silent addresses.
    pub attempts: u32,
    pub reverse_dns: bool,
    /// A DNS server (IP or IP:PORT) to ask for names instead of the system's resolvers.
    pub dns_server: Option<String>,
    pub arp: bool,
    pub sites: Vec<SiteConfig>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            interval_secs: 3600,
            ports: vec!["22".into(), "80".into(), "443".into()],
            attempts: 2,
            reverse_dns: true,
            dns_server: None,
            arp: true,
            sites: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    pub name: String,
    /// Addresses and CIDR prefixes to sweep.
    pub cidrs: Vec<String>,
    pub interval_secs: Option<u64>,
    /// Allow prefixes larger than a /16.
    pub force: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpeedTestConfig {
    /// Base URL of a speed-test server: the collector's HTTP address serves one at
    /// /speedtest (e.g. http://collector.example:8080). Unset (and no `download_url` or
    /// `upload_url`): no speed tests of this file's own.
    pub url: Option<String>,
    /// Any HTTP(S) file to fetch for the download test (up to `download_bytes`), instead of
    /// `url`'s /speedtest/download.
    pub download_url: Option<String>,
    /// Any HTTP(S) URL that accepts a POST, for the upload test, instead of `url`'s
    /// /speedtest/upload.
    pub upload_url: Option<String>,
    /// A file holding a collector API token (any role; `netwarden-collector token create`).
    /// The collector's /speedtest endpoints need one. It is sent only to the host of
    /// `[collector] url` or of `url` above, never to another server.
    pub token_file: Option<PathBuf>,
    pub interval_secs: u64,
    pub download_bytes: u64,
    pub upload_bytes: u64,
    pub timeout_secs: u64,
}

impl Default for SpeedTestConfig {
    fn default() -> Self {
        SpeedTestConfig {
            url: None,
            download_url: None,
            upload_url: None,
            token_file: None,
            interval_secs: 3600,
            download_bytes: 25_000_000,
            upload_bytes: 10_000_000,
            timeout_secs: 60,
        }
    }
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
    /// How long an outage the buffer rides out at this agent's configured load (probe
    /// targets, discovery sites, speed tests); beyond it the oldest records are dropped (and
    /// counted). The disk must hold it: `validate` says how much it needs.
    pub max_hours: u32,
    /// A fixed cap in records instead (overrides `max_hours`).
    pub max_records: Option<u64>,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            path: "agent-buffer.db".into(),
            max_hours: 72,
            max_records: None,
        }
    }
}

/// What the buffer is sized for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BufferSize {
    /// Records the agent produces an hour at most, as configured.
    pub records_per_hour: u64,
    /// Bytes one record takes in the buffer file (estimated from a full probe round).
    pub bytes_per_record: u64,
    pub max_records: u64,
}

impl BufferSize {
    pub fn bytes(&self) -> u64 {
        self.max_records.saturating_mul(self.bytes_per_record)
    }

    pub fn hours(&self) -> f64 {
        self.max_records as f64 / self.records_per_hour.max(1) as f64
    }
}

/// Records an hour at most: every probe target every interval, every address of every
/// discovery site answering every sweep, both speed-test directions.
fn records_per_hour(
    probe: &ProbePlan,
    discovery: &DiscoveryPlan,
    speed: Option<&SpeedTestPlan>,
) -> u64 {
    let per_hour = |n: usize, every: Duration| {
        (n as f64 * 3600.0 / every.as_secs_f64().max(0.001)).ceil() as u64
    };
    let probes = per_hour(probe.targets.len(), probe.interval);
    let sweeps: u64 = discovery
        .sites
        .iter()
        .map(|s| per_hour(s.targets.len(), s.interval))
        .sum();
    let speed = speed.map_or(0, |s| per_hour(2, s.interval));
    probes + sweeps + speed
}

/// A full round's bytes in the buffer: its encoded body plus SQLite's row overhead (rowid,
/// time, batch, record header and page slack, measured at about 30 bytes).
fn bytes_per_record(probe: &ProbePlan) -> u64 {
    round_bytes(probe.count)
}

/// The buffer bytes of one probe round of `count` pings (see [`bytes_per_record`]).
pub(crate) fn round_bytes(count: u32) -> u64 {
    use prost::Message;
    let round = netwarden_shared::Record {
        record_id: u64::MAX,
        observed_at: chrono::Utc::now(),
        kind: netwarden_shared::RecordKind::Probe(netwarden_shared::ProbeRound {
            target: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
                .parse()
                .unwrap_or(std::net::IpAddr::from([0u8; 16])),
            sent: count,
            received: count,
            rtt: None,
            rtts_ms: vec![123.456; count as usize],
            status: netwarden_shared::DeviceStatus::Online,
            alive_by: Some(netwarden_shared::Evidence::Icmp),
        }),
    };
    netwarden_proto::record_to_wire(&round).encoded_len() as u64 + 30
}

/// Free bytes on the file system holding `path` (its directory), where it can be known.
#[cfg(target_os = "linux")]
fn free_bytes(path: &Path) -> Option<u64> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::iter::successors(Some(dir), |d| d.parent()).find(|d| d.exists())?;
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64))
}

#[cfg(not(target_os = "linux"))]
fn free_bytes(_path: &Path) -> Option<u64> {
    None
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
    /// Addresses and CIDR prefixes to probe every round.
    pub targets: Vec<String>,
    /// Allow target prefixes larger than a /16.
    pub force: bool,
    /// Pings per target per round (SmokePing's default: 20).
    pub count: u32,
    /// Seconds between the starts of two rounds (SmokePing's default: 300).
    pub interval_secs: u64,
    /// Milliseconds between two pings to the same target.
    pub ping_interval_ms: u64,
    /// The longest wait for a reply. The wait adapts to each target: 3 × its slowest recent
    /// RTT, but never less than `min_timeout_ms` nor more than this.
    pub timeout_ms: u64,
    pub min_timeout_ms: u64,
    /// A target with at least this much loss (%) is degraded.
    pub degraded_loss_pct: f64,
    /// A target whose median RTT is at least this (ms) is degraded.
    pub degraded_rtt_ms: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        // The plan's default check is the one set of defaults (SmokePing's 20 pings every 300 s).
        let c = netwarden_plan::Check::default();
        ProbeConfig {
            targets: Vec::new(),
            force: false,
            count: c.count,
            interval_secs: c.interval_secs,
            ping_interval_ms: c.ping_interval_ms,
            timeout_ms: c.timeout_ms,
            min_timeout_ms: c.min_timeout_ms,
            degraded_loss_pct: c.degraded_loss_pct,
            degraded_rtt_ms: c.degraded_rtt_ms,
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
    pub buffer_size: BufferSize,
    pub uplink: UplinkConfig,
    pub packets_per_second: u32,
    pub probe: ProbePlan,
    pub discovery: DiscoveryPlan,
    pub speedtest: Option<SpeedTestPlan>,
    /// `[speedtest] token_file`'s token, for the plan's speed tests as well as this file's.
    pub speedtest_auth: Option<crate::speedtest::SpeedAuth>,
    /// Whether to follow the collector's fleet plan.
    pub plan_pull: bool,
    /// Where the Prometheus endpoint listens, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub log: LogConfig,
}

/// Sites to sweep and how.
#[derive(Debug, Clone)]
pub struct DiscoveryPlan {
    pub sites: Vec<Site>,
    pub options: DiscoveryOptions,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub name: String,
    pub targets: Vec<IpAddr>,
    pub interval: Duration,
    /// Which hosts found are probed (a plan's sites only).
    pub enrol: Option<crate::plan::enrolment::EnrolRule>,
    /// Addresses neither reported nor enrolled (a plan's sites only).
    pub ignore: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpeedTestPlan {
    /// A Netwarden speed-test server's base URL (may be empty when both directions tested
    /// have their own URL).
    pub url: String,
    /// Any file to fetch instead of `url`'s /speedtest/download.
    pub download_url: Option<String>,
    /// Any URL that accepts a POST instead of `url`'s /speedtest/upload.
    pub upload_url: Option<String>,
    pub interval: Duration,
    pub download_bytes: u64,
    pub upload_bytes: u64,
    pub timeout: Duration,
    /// The token for the collector's endpoints, if the agent has one.
    pub auth: Option<crate::speedtest::SpeedAuth>,
}

/// What to probe and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbePlan {
    pub targets: Vec<IpAddr>,
    pub count: u32,
    pub interval: Duration,
    pub ping_interval: Duration,
    pub timeout: Duration,
    pub min_timeout: Duration,
    pub degraded_loss_pct: f64,
    pub degraded_rtt_ms: f64,
}

impl ProbePlan {
    pub fn timeout_policy(&self) -> TimeoutPolicy {
        TimeoutPolicy {
            floor: self.min_timeout.min(self.timeout),
            ceiling: self.timeout,
            multiplier: 3.0,
        }
    }

    /// How long a round takes at most under the packet rate: each sweep of the targets
    /// takes targets/rate, and a target's pings are at least `ping_interval` apart.
    pub fn round_length(&self, packets_per_second: u32) -> Duration {
        let sweep = Duration::from_secs_f64(
            self.targets.len() as f64 / f64::from(packets_per_second.max(1)),
        );
        self.ping_interval.max(sweep) * self.count.saturating_sub(1) + sweep + self.timeout
    }
}

/// Hosts under the `example` names reserved by RFC 2606: a config still naming one was not
/// finished (the packaged example config names `collector.example`).
fn is_example_address(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    host == "example"
        || host.ends_with(".example")
        || ["example.com", "example.net", "example.org"]
            .iter()
            .any(|d| host == *d || host.ends_with(&format!(".{d}")))
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
        if is_example_address(&raw.collector.url) {
            return Err(bad(
                "collector.url",
                &format!(
                    "{} is the example address (a reserved name that never resolves); set your collector's gRPC address",
                    raw.collector.url
                ),
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

        if raw.buffer.max_records.is_some_and(|n| n < 1000) {
            return Err(bad("buffer.max_records", "must be at least 1000"));
        }
        if raw.buffer.max_hours == 0 || raw.buffer.max_hours > 24 * 366 {
            return Err(bad(
                "buffer.max_hours",
                "must be between 1 and 8784 (a year)",
            ));
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

        if raw.network.packets_per_second == 0 || raw.network.packets_per_second > 1_000_000 {
            return Err(bad(
                "network.packets_per_second",
                "must be between 1 and 1000000",
            ));
        }
        let pps = raw.network.packets_per_second;
        let p = &raw.probe;
        let targets = if p.targets.is_empty() {
            Vec::new()
        } else {
            expand_field(path, "probe.targets", &p.targets, p.force)?
        };
        if p.count == 0 || p.count > 1000 {
            return Err(bad("probe.count", "must be between 1 and 1000"));
        }
        if p.interval_secs == 0 {
            return Err(bad("probe.interval_secs", "must be 1 or more"));
        }
        if p.timeout_ms == 0 || p.min_timeout_ms == 0 || p.min_timeout_ms > p.timeout_ms {
            return Err(bad(
                "probe.timeout_ms",
                "timeout_ms and min_timeout_ms must be above zero, with min_timeout_ms <= timeout_ms",
            ));
        }
        if !(0.0..=100.0).contains(&p.degraded_loss_pct) {
            return Err(bad("probe.degraded_loss_pct", "must be between 0 and 100"));
        }
        let probe = ProbePlan {
            targets,
            count: p.count,
            interval: Duration::from_secs(p.interval_secs),
            ping_interval: Duration::from_millis(p.ping_interval_ms),
            timeout: Duration::from_millis(p.timeout_ms),
            min_timeout: Duration::from_millis(p.min_timeout_ms),
            degraded_loss_pct: p.degraded_loss_pct,
            degraded_rtt_ms: p.degraded_rtt_ms,
        };
        let round = probe.round_length(pps);
        if round > probe.interval {
            return Err(bad(
                "probe.interval_secs",
                &format!(
                    "a round of {} targets × {} pings takes up to {:.1} s at {pps} packets/s \
                     (count × max(ping_interval, targets/rate) + timeout), longer than the interval; \
                     raise the interval or network.packets_per_second, or lower the count",
                    probe.targets.len(),
                    probe.count,
                    round.as_secs_f64()
                ),
            ));
        }

        let d = &raw.discovery;
        if d.attempts == 0 || d.attempts > 10 {
            return Err(bad("discovery.attempts", "must be between 1 and 10"));
        }
        let ports =
            parse_ports(&d.ports).map_err(|err| bad("discovery.ports", &err.to_string()))?;
        let mut sites = Vec::new();
        for (i, site) in d.sites.iter().enumerate() {
            let field = |f: &str| format!("discovery.sites[{i}].{f}");
            if site.name.trim().is_empty() {
                return Err(bad(&field("name"), "is empty; name each site"));
            }
            if site.name.len() > 255 || site.name.chars().any(char::is_control) {
                return Err(bad(
                    &field("name"),
                    "must be at most 255 bytes without control characters (the collector refuses others)",
                ));
            }
            let targets = expand_field(path, &field("cidrs"), &site.cidrs, site.force)?;
            let interval = site.interval_secs.unwrap_or(d.interval_secs);
            if interval == 0 {
                return Err(bad(&field("interval_secs"), "must be 1 or more"));
            }
            sites.push(Site {
                name: site.name.clone(),
                targets,
                interval: Duration::from_secs(interval),
                enrol: None,
                ignore: Vec::new(),
            });
        }
        let dns_server = match &d.dns_server {
            None => None,
            Some(text) => Some(
                text.parse::<std::net::SocketAddr>()
                    .or_else(|_| {
                        text.parse::<IpAddr>()
                            .map(|ip| std::net::SocketAddr::new(ip, 53))
                    })
                    .map_err(|_| {
                        bad(
                            "discovery.dns_server",
                            &format!("{text:?} is not an IP address or IP:PORT"),
                        )
                    })?,
            ),
        };
        let discovery = DiscoveryPlan {
            sites,
            options: DiscoveryOptions {
                ports,
                attempts: d.attempts,
                reverse_dns: d.reverse_dns,
                dns_server,
                arp: d.arp,
                ..DiscoveryOptions::default()
            },
        };

        let st = &raw.speedtest;
        for (field, url) in [
            ("speedtest.url", &st.url),
            ("speedtest.download_url", &st.download_url),
            ("speedtest.upload_url", &st.upload_url),
        ] {
            if let Some(url) = url {
                if reqwest::Url::parse(url).map_or(true, |u| {
                    !matches!(u.scheme(), "http" | "https") || u.host_str().is_none()
                }) {
                    return Err(bad(
                        field,
                        &format!("{url:?} is not an http:// or https:// URL with a host"),
                    ));
                }
            }
        }
        let speedtest_auth = match &st.token_file {
            None => None,
            Some(file) => {
                let file = config::resolve(path, file);
                let token = std::fs::read_to_string(&file).map_err(|e| {
                    bad(
                        "speedtest.token_file",
                        &format!("cannot read {}: {e}", file.display()),
                    )
                })?;
                let hosts = [Some(&raw.collector.url), st.url.as_ref()]
                    .into_iter()
                    .flatten()
                    .filter_map(|u| reqwest::Url::parse(u).ok()?.host_str().map(str::to_owned))
                    .collect();
                Some(
                    crate::speedtest::SpeedAuth::new(token.trim(), hosts).map_err(|message| {
                        bad(
                            "speedtest.token_file",
                            &format!("{}: {message}", file.display()),
                        )
                    })?,
                )
            }
        };
        let own_test = st.url.is_some() || st.download_url.is_some() || st.upload_url.is_some();
        let speedtest = match own_test {
            false => None,
            true => {
                let url = st.url.clone().unwrap_or_default();
                if st.interval_secs == 0 || st.timeout_secs == 0 {
                    return Err(bad(
                        "speedtest.interval_secs",
                        "interval_secs and timeout_secs must be 1 or more",
                    ));
                }
                // A direction runs when it has bytes and a URL: its own or `url`'s.
                let download =
                    st.download_bytes > 0 && (st.download_url.is_some() || st.url.is_some());
                let upload = st.upload_bytes > 0 && (st.upload_url.is_some() || st.url.is_some());
                if !download && !upload {
                    return Err(bad(
                        "speedtest.download_bytes",
                        "no direction has both bytes and a URL (url, download_url or upload_url): nothing to test",
                    ));
                }
                Some(SpeedTestPlan {
                    url: url.trim_end_matches('/').to_string(),
                    download_url: st.download_url.clone(),
                    upload_url: st.upload_url.clone(),
                    interval: Duration::from_secs(st.interval_secs),
                    download_bytes: if download { st.download_bytes } else { 0 },
                    upload_bytes: if upload { st.upload_bytes } else { 0 },
                    timeout: Duration::from_secs(st.timeout_secs),
                    auth: speedtest_auth.clone(),
                })
            }
        };
        let metrics_listen = match raw.metrics.listen.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(addr) => Some(addr.parse().map_err(|_| {
                bad(
                    "metrics.listen",
                    &format!("{addr:?} is not an address and port, e.g. \"127.0.0.1:9464\""),
                )
            })?),
        };
        let buffer_path = config::resolve(path, &raw.buffer.path);
        let records_per_hour = records_per_hour(&probe, &discovery, speedtest.as_ref());
        let buffer_size = BufferSize {
            records_per_hour,
            bytes_per_record: bytes_per_record(&probe),
            max_records: raw.buffer.max_records.unwrap_or_else(|| {
                records_per_hour
                    .saturating_mul(u64::from(raw.buffer.max_hours))
                    .max(10_000)
            }),
        };
        // What is in the file already counts as room: it is the same buffer.
        let held = std::fs::metadata(&buffer_path).map_or(0, |m| m.len());
        if let Some(free) = free_bytes(&buffer_path) {
            if buffer_size.bytes() > free.saturating_add(held) {
                let field = if raw.buffer.max_records.is_some() {
                    "buffer.max_records"
                } else {
                    "buffer.max_hours"
                };
                return Err(bad(
                    field,
                    &format!(
                        "{:.0} h at {} records/h ({} records of ~{} bytes) needs ~{} MB, but {} has {} MB free; lower it or free space",
                        buffer_size.hours(),
                        records_per_hour,
                        buffer_size.max_records,
                        buffer_size.bytes_per_record,
                        buffer_size.bytes() / 1_000_000,
                        buffer_path.display(),
                        free / 1_000_000
                    ),
                ));
            }
        }
        Ok(Settings {
            source: path.to_path_buf(),
            collector_url: raw.collector.url,
            server_name: raw.collector.server_name,
            connect_timeout: Duration::from_secs(raw.collector.connect_timeout_secs.max(1)),
            tls,
            buffer_path,
            buffer_max_records: buffer_size.max_records,
            buffer_size,
            uplink: raw.uplink,
            packets_per_second: pps,
            probe,
            discovery,
            speedtest,
            speedtest_auth,
            plan_pull: raw.plan.enabled,
            metrics_listen,
            log: raw.log,
        })
    }
}

/// Expands a target list, naming the entry at fault (`probe.targets[2]`) when one is bad.
fn expand_field(
    path: &Path,
    field: &str,
    entries: &[String],
    force: bool,
) -> Result<Vec<IpAddr>, ConfigError> {
    for (i, entry) in entries.iter().enumerate() {
        expand(std::slice::from_ref(entry), force)
            .map_err(|err| ConfigError::invalid(path, &format!("{field}[{i}]"), err))?;
    }
    expand(entries, force).map_err(|err| ConfigError::invalid(path, field, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings from `agent.toml` text with a collector and TLS files, plus `extra`.
    fn load(dir: &Path, extra: &str) -> Result<Settings, ConfigError> {
        // One self-signed certificate serves as CA and as the agent's own: enough to load.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["agent.test".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "branch-7");
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("a.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("a.key"), key.serialize_pem()).unwrap();
        let path = dir.join("agent.toml");
        std::fs::write(
            &path,
            format!(
                "[collector]\nurl = \"https://collector.test:50051\"\n\
                 [tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\n{extra}"
            ),
        )
        .unwrap();
        Settings::load(&path)
    }

    fn field(err: ConfigError) -> String {
        err.to_string()
    }

    #[test]
    fn speed_tests_against_any_server_and_the_collectors_token() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("st.token"), "nwt_abc\n").unwrap();
        let settings = load(
            dir.path(),
            "[speedtest]\ndownload_url = \"https://mirror.example.net/big.iso\"\n\
             upload_bytes = 0\ntoken_file = \"st.token\"\n",
        )
        .unwrap();
        let test = settings.speedtest.unwrap();
        assert_eq!(test.url, "");
        assert_eq!(
            test.download_url.as_deref(),
            Some("https://mirror.example.net/big.iso")
        );
        assert_eq!((test.download_bytes, test.upload_bytes), (25_000_000, 0));
        let auth = test.auth.unwrap();
        assert_eq!(auth.for_url("http://collector.test:8080/"), Some("nwt_abc"));
        assert_eq!(auth.for_url("https://mirror.example.net/big.iso"), None);

        // Only the URL of a direction with bytes counts: an upload with no URL is not run.
        let settings = load(
            dir.path(),
            "[speedtest]\ndownload_url = \"http://m.example/f\"\nupload_bytes = 100\n",
        )
        .unwrap();
        assert_eq!(settings.speedtest.unwrap().upload_bytes, 0);

        let errors = [
            (
                "[speedtest]\ndownload_url = \"ftp://m.example/f\"\n",
                "speedtest.download_url",
            ),
            (
                "[speedtest]\nupload_url = \"http://m.example/sink\"\nupload_bytes = 0\n",
                "speedtest.download_bytes",
            ),
            (
                "[speedtest]\nurl = \"http://c.example:8080\"\ntoken_file = \"missing.token\"\n",
                "speedtest.token_file",
            ),
        ];
        for (extra, named) in errors {
            let err = field(load(dir.path(), extra).unwrap_err());
            assert!(err.contains(named), "{extra}: {err}");
        }
        std::fs::write(dir.path().join("bad.token"), "two words\n").unwrap();
        let err = field(
            load(
                dir.path(),
                "[speedtest]\nurl = \"http://c.example:8080\"\ntoken_file = \"bad.token\"\n",
            )
            .unwrap_err(),
        );
        assert!(
            err.contains("speedtest.token_file") && !err.contains("two words"),
            "{err}"
        );
    }
}
