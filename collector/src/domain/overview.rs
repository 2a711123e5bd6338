//! The dashboard overview: status counts, anomaly counts, uptime.

/// Devices of one agent in one status (`None`: never probed).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCount {
    pub agent_id: String,
    pub status: Option<&'static str>,
    pub count: i64,
}

/// Unresolved anomalies of one group, severity and state.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyCount {
    pub group_key: Option<String>,
    pub severity: String,
    pub state: String,
    pub count: i64,
}

/// Probe rounds of a device since a time, and how many got at least one reply.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Uptime {
    pub rounds: i64,
    pub answered: i64,
}

impl Uptime {
    /// Percent of rounds answered; `None` with no rounds.
    pub fn percent(&self) -> Option<f64> {
        (self.rounds > 0).then(|| 100.0 * self.answered as f64 / self.rounds as f64)
    }
}

pub(crate) fn parse_ports(text: &str) -> Vec<u16> {
    text.split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}
