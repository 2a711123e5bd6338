//! Detectors: pure functions over a series and its state, no IO, so they are tested round by
//! round. Each turns an observation into signals (an anomaly firing or clearing); the alert
//! engine (`crate::alert`) stores them and decides who hears about them.

pub mod agents;
pub mod circuit;
pub mod device;
pub mod identity;
pub mod poi;
pub mod port;
pub mod speed;
mod streak;

use crate::domain::alerting::{AnomalyKind, NewAnomaly, Severity};

pub use streak::Streak;

/// What a detector concluded from one observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The condition holds (new, or worse than before).
    Firing(NewAnomaly),
    /// The condition has cleared (after the detector's hysteresis).
    Clear { kind: AnomalyKind, subject: String },
}

impl Signal {
    pub fn kind(&self) -> AnomalyKind {
        match self {
            Signal::Firing(a) => a.kind,
            Signal::Clear { kind, .. } => *kind,
        }
    }
}

pub(crate) fn firing(
    kind: AnomalyKind,
    subject: &str,
    group: &str,
    severity: Severity,
    summary: String,
    details: serde_json::Value,
) -> Signal {
    Signal::Firing(NewAnomaly {
        kind,
        subject: subject.to_string(),
        group_key: Some(group.to_string()),
        severity,
        summary,
        details,
    })
}
