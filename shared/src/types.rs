//! Domain types that cross the agent/collector boundary, independent of the wire format.

use chrono::{DateTime, Utc};
use std::fmt;
use std::net::IpAddr;

/// An agent's identity: the common name of its client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(String);

/// Why a string is not a valid [`AgentId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid agent id {value:?}: use 1 to 64 characters from A-Z a-z 0-9 . _ -")]
pub struct InvalidAgentId {
    pub value: String,
}

impl AgentId {
    pub const MAX_LEN: usize = 64;

    pub fn new(value: impl Into<String>) -> Result<Self, InvalidAgentId> {
        let value = value.into();
        let valid = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(value))
        } else {
            Err(InvalidAgentId { value })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A device's reachability as judged by its latest probe round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceStatus {
    Online,
    Degraded,
    Offline,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Online => "online",
            DeviceStatus::Degraded => "degraded",
            DeviceStatus::Offline => "offline",
        }
    }

    /// Stable small integer used in storage.
    pub fn code(self) -> i16 {
        match self {
            DeviceStatus::Online => 1,
            DeviceStatus::Degraded => 2,
            DeviceStatus::Offline => 3,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(DeviceStatus::Online),
            2 => Some(DeviceStatus::Degraded),
            3 => Some(DeviceStatus::Offline),
            _ => None,
        }
    }
}

/// RTT statistics of one probe round, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RttStats {
    pub min: f32,
    pub median: f32,
    pub mean: f32,
    pub max: f32,
    pub p95: f32,
    pub stddev: f32,
    /// Mean absolute difference of consecutive RTTs.
    pub jitter: f32,
}

/// One ICMP round to one target.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRound {
    pub target: IpAddr,
    pub sent: u32,
    pub received: u32,
    /// `None` when nothing came back.
    pub rtt: Option<RttStats>,
    /// RTTs of the replies in send order (length = `received`).
    pub rtts_ms: Vec<f32>,
    pub status: DeviceStatus,
    /// What shows the target is there (`None`: nothing, it is offline). A round with no reply
    /// can still be `Online` when other evidence says so; loss, latency and jitter are then
    /// not judged from it.
    pub alive_by: Option<Evidence>,
}

/// Evidence that a probed target is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// It answered pings.
    Icmp,
    /// It answered ARP at the round (ICMP-silent, on an attached subnet).
    Arp,
    /// A port discovery found open accepted a connection at the round.
    Tcp,
}

impl Evidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::Icmp => "icmp",
            Evidence::Arp => "arp",
            Evidence::Tcp => "tcp",
        }
    }
}

impl ProbeRound {
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            100.0 * f64::from(self.sent - self.received) / f64::from(self.sent)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryMethod {
    Icmp,
    Arp,
    IcmpAndArp,
}

impl DiscoveryMethod {
    /// The name stored and shown (`icmp`, `arp`, `icmp+arp`).
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryMethod::Icmp => "icmp",
            DiscoveryMethod::Arp => "arp",
            DiscoveryMethod::IcmpAndArp => "icmp+arp",
        }
    }
}

/// A host found by a discovery sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredHost {
    pub address: IpAddr,
    pub mac: Option<String>,
    pub vendor: Option<String>,
    pub hostname: Option<String>,
    pub open_ports: Vec<u16>,
    pub rtt_ms: Option<f32>,
    pub method: DiscoveryMethod,
    /// The discovery site whose sweep found it (`None` from agents that do not say). All
    /// hosts of one sweep share their record's `observed_at`.
    pub site: Option<String>,
    /// The agent's own address.
    pub local: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeedDirection {
    Download,
    Upload,
}

impl SpeedDirection {
    /// The name stored and shown (`download`, `upload`).
    pub fn as_str(self) -> &'static str {
        match self {
            SpeedDirection::Download => "download",
            SpeedDirection::Upload => "upload",
        }
    }
}

/// One HTTP throughput test.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedTest {
    pub url: String,
    pub direction: SpeedDirection,
    pub bytes: u64,
    pub duration_us: u64,
    pub mbps: f64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RecordKind {
    Probe(ProbeRound),
    Discovery(DiscoveredHost),
    SpeedTest(SpeedTest),
    Port(PortCheck),
}

/// What one TCP connection attempt to a port found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortState {
    /// The connection was accepted.
    Open,
    /// The host answered with a reset: it is there, nothing listens.
    Refused,
    /// No answer within the check's timeout (filtered, or the host is away).
    Timeout,
    /// The network said the host or its network cannot be reached, or no route.
    Unreachable,
}

impl PortState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Refused => "refused",
            PortState::Timeout => "timeout",
            PortState::Unreachable => "unreachable",
        }
    }

    pub fn parse(name: &str) -> Option<PortState> {
        [
            PortState::Open,
            PortState::Refused,
            PortState::Timeout,
            PortState::Unreachable,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// One TCP port check: a connection attempt to `target:port`.
#[derive(Debug, Clone, PartialEq)]
pub struct PortCheck {
    pub target: IpAddr,
    pub port: u16,
    pub state: PortState,
    /// How long the connection took to be accepted (open only).
    pub connect_ms: Option<f32>,
}

/// One measurement as buffered by the agent and stored by the collector.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Agent-local id: unique and increasing for the life of the agent's buffer.
    pub record_id: u64,
    pub observed_at: DateTime<Utc>,
    pub kind: RecordKind,
}

/// What an agent says about itself with each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentStatus {
    pub buffer_backlog: u64,
    pub dropped_total: u64,
}

/// A validated batch as the collector ingests it.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub sequence: u64,
    /// The identity the payload claims, if any; never trusted, only compared.
    pub claimed_agent_id: Option<String>,
    pub status: AgentStatus,
    pub records: Vec<Record>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_accepts_hostnames_and_rejects_the_rest() {
        assert!(AgentId::new("site-7.pop_2").is_ok());
        assert!(AgentId::new("").is_err());
        assert!(AgentId::new("a b").is_err());
        assert!(AgentId::new("x".repeat(65)).is_err());
        assert_eq!(
            AgentId::new("a/b").unwrap_err().to_string(),
            "invalid agent id \"a/b\": use 1 to 64 characters from A-Z a-z 0-9 . _ -"
        );
    }

    #[test]
    fn loss_is_computed_from_sent_and_received() {
        let round = ProbeRound {
            target: "192.0.2.1".parse().unwrap(),
            sent: 20,
            received: 15,
            rtt: None,
            rtts_ms: vec![],
            status: DeviceStatus::Degraded,
            alive_by: Some(Evidence::Icmp),
        };
        assert_eq!(round.loss_pct(), 25.0);
        assert_eq!(DeviceStatus::from_code(2), Some(DeviceStatus::Degraded));
        assert_eq!(DeviceStatus::from_code(9), None);
    }
}
