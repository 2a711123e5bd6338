//! Live events for WebSocket clients (`/ws`): what changed in this collector, as JSON messages
//! with a `type` field. Each is serialised once and shared by every subscriber; a subscriber
//! that falls behind by more than [`CAPACITY`] events is told how many it missed.
//!
//! Events are those this collector process saw. With several collectors on one database, a
//! client sees the anomalies and statuses of the agents and telemetry sent to its collector.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events buffered per subscriber before the slowest ones start missing some.
pub const CAPACITY: usize = 4096;

/// The kinds a client can filter on.
pub const KINDS: &[&str] = &["anomaly", "alert", "device_status", "maxout"];

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An anomaly opened, acknowledged or resolved.
    Anomaly {
        action: &'static str,
        anomaly: crate::storage::alerting::Anomaly,
    },
    /// A notification acknowledged by an operator.
    Alert {
        action: &'static str,
        alert_id: i64,
        by: String,
    },
    /// A device's status changed (or was first seen).
    DeviceStatus {
        agent: String,
        address: String,
        status: &'static str,
        previous: Option<&'static str>,
        at: DateTime<Utc>,
    },
    /// A circuit or POI went over capacity.
    Maxout {
        scope: &'static str,
        subject: String,
        severity: String,
        summary: String,
        at: DateTime<Utc>,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Anomaly { .. } => "anomaly",
            Event::Alert { .. } => "alert",
            Event::DeviceStatus { .. } => "device_status",
            Event::Maxout { .. } => "maxout",
        }
    }
}

/// One serialised event.
#[derive(Debug)]
pub struct Published {
    pub kind: &'static str,
    pub json: String,
}

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Published>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    pub fn publish(&self, event: Event) {
        // Nobody listening is the common case; skip the serialisation then.
        if !self.has_subscribers() {
            return;
        }
        match serde_json::to_string(&event) {
            Ok(json) => {
                let _ = self.sender.send(Arc::new(Published {
                    kind: event.kind(),
                    json,
                }));
            }
            Err(err) => tracing::error!(error = %err, "cannot serialise a live event"),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }
}
