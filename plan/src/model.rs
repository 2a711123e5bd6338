//! The plan document as people write it (YAML through the CLI, JSON through the API).
//! Every list entry is named, so a diff, an error or an audit line can say which one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Labels on sites, agents and targets (`customer`, `circuit`, `pop`, `poi`, `gateway`...).
/// Keys are Prometheus label names, so they can label the target's series unchanged.
pub type Labels = BTreeMap<String, String>;

/// What the collector's agents run. An empty plan runs nothing centrally: each agent keeps
/// its own `agent.toml` targets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Plan {
    pub sites: Vec<Site>,
    /// Agents by certificate name, for their site and labels. An agent not listed runs what
    /// names it in `run_on.agents`.
    pub agents: Vec<Agent>,
    /// Named check settings targets refer to.
    pub checks: Vec<Check>,
    pub targets: Vec<Target>,
    pub discovery: Vec<DiscoverySite>,
    pub speedtests: Vec<SpeedTest>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = PlanSite))]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub name: String,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = PlanAgent))]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// The common name of the agent's certificate.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// Which agents run something. Every field given must match; with none given, the agents of
/// the entry's own `site` run it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = PlanRunOn))]
#[serde(deny_unknown_fields, default)]
pub struct RunOn {
    /// Agents of this site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Agents by certificate name (any of them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// Agents carrying all of these labels.
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub agent_labels: Labels,
}

impl RunOn {
    pub fn is_empty(&self) -> bool {
        self.site.is_none() && self.agents.is_empty() && self.agent_labels.is_empty()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = PlanCheckKind))]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Rounds of ICMP echoes: loss, RTT distribution, jitter (SmokePing's model).
    #[default]
    Icmp,
    /// A TCP connection to each of `ports` every interval: open, refused, timed out or
    /// unreachable, and how long the connection took (Uptime Kuma's and blackbox_exporter's
    /// TCP check).
    Tcp,
}

/// Named settings for a kind of check. The defaults are the agent's own (SmokePing's 20
/// pings every 300 s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = PlanCheck))]
#[serde(deny_unknown_fields, default)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    /// Pings per target per round.
    pub count: u32,
    /// Seconds between the starts of two rounds.
    pub interval_secs: u64,
    /// Milliseconds between two pings to the same target.
    pub ping_interval_ms: u64,
    /// The longest wait for a reply, in milliseconds.
    pub timeout_ms: u64,
    /// The shortest adaptive wait for a reply, in milliseconds.
    pub min_timeout_ms: u64,
    /// A target with at least this much loss (%) is degraded.
    pub degraded_loss_pct: f64,
    /// A target whose median RTT is at least this (ms) is degraded.
    pub degraded_rtt_ms: f64,
    /// The ports a `tcp` check connects to (none for `icmp`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
}

/// The most ports one `tcp` check connects to on each target.
pub const MAX_CHECK_PORTS: usize = 32;

/// The name of the check a target without `checks` runs: the defaults below, unless the plan
/// defines a check of this name.
pub const DEFAULT_CHECK: &str = "default";

impl Default for Check {
    fn default() -> Self {
        Check {
            name: DEFAULT_CHECK.into(),
            kind: CheckKind::Icmp,
            count: 20,
            interval_secs: 300,
            ping_interval_ms: 1000,
            timeout_ms: 2000,
            min_timeout_ms: 500,
            degraded_loss_pct: 5.0,
            degraded_rtt_ms: 250.0,
            ports: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = PlanTarget))]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub name: String,
    /// An IP address, a CIDR prefix (every usable address in it) or a host name the agent
    /// resolves.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Checks by name; none: `default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// Which agents probe it; none: the agents of its `site`.
    #[serde(default, skip_serializing_if = "RunOn::is_empty")]
    pub run_on: RunOn,
    /// Allow a prefix larger than a /16.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// A network swept for hosts. The name is the site the agent reports its hosts under (its
/// first sweep is that site's baseline).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = PlanDiscoverySite))]
#[serde(deny_unknown_fields)]
pub struct DiscoverySite {
    pub name: String,
    /// The plan site whose agents sweep it (unless `run_on` says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub cidrs: Vec<String>,
    /// Seconds between sweeps (default 3600).
    #[serde(default = "hourly")]
    pub interval_secs: u64,
    #[serde(default, skip_serializing_if = "RunOn::is_empty")]
    pub run_on: RunOn,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Which hosts a sweep finds become monitored targets (none by default: found hosts are
    /// inventoried, not probed).
    #[serde(default, skip_serializing_if = "Enrol::is_off")]
    pub enrol: Enrol,
    /// Addresses and prefixes this site neither reports nor enrols (a DHCP pool of laptops,
    /// say): no inventory entry, no `new_device`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
}

fn hourly() -> u64 {
    3600
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = PlanEnrolMode))]
#[serde(rename_all = "snake_case")]
pub enum EnrolMode {
    /// Found hosts are inventoried only.
    #[default]
    None,
    /// Every host found is probed.
    All,
    /// Hosts that match any of the enrolment's matchers are probed.
    Matching,
}

/// An enrolment policy: which discovered hosts are probed from the round after the sweep that
/// found them, and with which check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = PlanEnrol))]
#[serde(deny_unknown_fields, default)]
pub struct Enrol {
    pub mode: EnrolMode,
    /// With `matching`: hosts in any of these addresses or prefixes...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// ...or whose MAC vendor contains one of these (any case), e.g. `Cisco`...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vendors: Vec<String>,
    /// ...or with one of these TCP ports open (among the ports the sweep checks)...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// ...or whose reverse-DNS name ends with one of these (any case), e.g.
    /// `.mgmt.example.net`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hostname_suffixes: Vec<String>,
    /// The check enrolled hosts run; none: `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

impl Enrol {
    pub fn is_off(&self) -> bool {
        *self == Enrol::default()
    }

    pub fn has_matchers(&self) -> bool {
        !(self.addresses.is_empty()
            && self.vendors.is_empty()
            && self.ports.is_empty()
            && self.hostname_suffixes.is_empty())
    }
}

/// A throughput test. `url` names a server that serves `/speedtest/download?bytes=N` and
/// accepts `POST /speedtest/upload` (as the collector's HTTP listener does). Any other HTTP(S)
/// server is tested with `download_url` (a file fetched, up to `download_bytes`) and
/// `upload_url` (which must accept a POST of `upload_bytes`); each replaces `url` for its
/// direction, and `url` may then be empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = PlanSpeedTest))]
#[serde(deny_unknown_fields, default)]
pub struct SpeedTest {
    pub name: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
    pub site: Option<String>,
    #[serde(skip_serializing_if = "RunOn::is_empty")]
    pub run_on: RunOn,
    pub interval_secs: u64,
    pub download_bytes: u64,
    pub upload_bytes: u64,
    pub timeout_secs: u64,
}

impl Default for SpeedTest {
    fn default() -> Self {
        SpeedTest {
            name: String::new(),
            url: String::new(),
            download_url: None,
            upload_url: None,
            site: None,
            run_on: RunOn::default(),
            interval_secs: 3600,
            download_bytes: 25_000_000,
            upload_bytes: 10_000_000,
            timeout_secs: 60,
        }
    }
}
