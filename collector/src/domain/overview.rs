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
    /// Probes sent and replies received over those rounds.
    pub sent: i64,
    pub received: i64,
}

impl Uptime {
    /// Availability, the one definition (API, dashboard, CLI): the percent of probes
    /// answered, so loss weighs in: a round that lost 30 % of its probes counts as 0.7 of a
    /// round up, not as a whole one. `None` with nothing sent.
    pub fn percent(&self) -> Option<f64> {
        (self.sent > 0).then(|| 100.0 * self.received as f64 / self.sent as f64)
    }
}

/// One checked TCP port of a device (a `tcp` check of the fleet plan): its newest check, since
/// when it has been in that state, and its checks over the last day.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PortStatus {
    pub port: u16,
    /// `open`, `refused`, `timeout` or `unreachable`.
    pub state: String,
    pub checked_at: chrono::DateTime<chrono::Utc>,
    /// The first check of the run of checks in this state (as far back as raw data is kept).
    pub state_since: chrono::DateTime<chrono::Utc>,
    /// How long the newest connection took to be accepted (open only).
    pub connect_ms: Option<f32>,
    pub checks_24h: i64,
    pub open_24h: i64,
}

pub(crate) fn parse_ports(text: &str) -> Vec<u16> {
    text.split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Uptime;

    #[test]
    fn loss_weighs_in_availability() {
        let lossy = Uptime {
            rounds: 10,
            sent: 40,
            received: 28,
        };
        assert_eq!(
            lossy.percent(),
            Some(70.0),
            "every round answered, 30 % lost"
        );
        let none = Uptime {
            rounds: 0,
            sent: 0,
            received: 0,
        };
        assert_eq!(none.percent(), None);
    }
}
