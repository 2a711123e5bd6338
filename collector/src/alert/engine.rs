//! The alert engine: turns detector signals into anomalies and queued notifications.
//! A firing signal opens (or refreshes) the anomaly with its dedup key; silences and
//! inhibition (a silent agent, or a configured gateway that is down) store it without
//! notifying. A clearing signal resolves it, at once or after `resolve_after_secs` clear.

use super::clock::{self, SharedClock};
use super::routing::AlertingConfig;
use crate::detect::Signal;
use crate::domain::alerting::AnomalyKind;
use crate::metrics::Metrics;
use crate::storage::alerting::{
    dedup_key, AnomalyQuery, AnomalyState, NewAnomaly, Opened, Silence,
};
use crate::storage::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Silences are read from the database at most this often.
const SILENCE_TTL: Duration = Duration::from_secs(2);

pub struct Engine {
    store: Arc<dyn Store>,
    config: AlertingConfig,
    metrics: Arc<Metrics>,
    /// Wakes the dispatcher when notifications are queued.
    pub wake: Arc<Notify>,
    /// Live events for WebSocket clients.
    pub events: crate::events::EventBus,
    /// The silences as read at a time, for `SILENCE_TTL`.
    silences: Mutex<Option<(DateTime<Utc>, Vec<Silence>)>>,
    clock: SharedClock,
    /// Dedup keys whose condition cleared, and since when (with `resolve_after_secs`).
    clearing: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, config: AlertingConfig, metrics: Arc<Metrics>) -> Self {
        Engine {
            store,
            config,
            metrics,
            wake: Arc::new(Notify::new()),
            events: crate::events::EventBus::default(),
            silences: Mutex::new(None),
            clearing: Mutex::new(HashMap::new()),
            clock: clock::system(),
        }
    }

    /// Reads the time from `clock` (the scenario tests' scripted time) instead of the system.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn config(&self) -> &AlertingConfig {
        &self.config
    }

    /// Forgets the cached silences (one was created or deleted).
    pub fn silences_changed(&self) {
        *self.silences.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn active_silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let ttl = chrono::Duration::from_std(SILENCE_TTL).unwrap_or_default();
        if let Some((at, list)) = &*self.silences.lock().unwrap_or_else(|p| p.into_inner()) {
            if *at <= now && now - *at < ttl {
                return Ok(list.clone());
            }
        }
        let list = self.store.silences(now).await?;
        *self.silences.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, list.clone()));
        Ok(list)
    }

    /// Why `anomaly` should notify nobody, if it should not.
    async fn suppression(
        &self,
        anomaly: &NewAnomaly,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        if let Some(s) = self
            .active_silences(now)
            .await?
            .iter()
            .find(|s| s.matches(anomaly, now))
        {
            return Ok(Some(format!("silence {}: {}", s.id, s.spec.comment)));
        }
        let Some(agent) = anomaly.group_key.as_deref() else {
            return Ok(None);
        };
        // The agent's own silence is never muted: it is what mutes the rest.
        if anomaly.kind == AnomalyKind::AgentSilent {
            return Ok(None);
        }
        if anomaly.kind != AnomalyKind::SiteUnreachable {
            if let Some(site) = self
                .store
                .active_anomaly(&dedup_key(AnomalyKind::SiteUnreachable, agent))
                .await?
            {
                return Ok(Some(format!(
                    "inhibited by anomaly {} (the site of agent {agent} is unreachable)",
                    site.id
                )));
            }
        }
        if let Some(silent) = self
            .store
            .active_anomaly(&dedup_key(AnomalyKind::AgentSilent, agent))
            .await?
        {
            return Ok(Some(format!(
                "inhibited by anomaly {} (agent {agent} silent)",
                silent.id
            )));
        }
        if let Some(gateway) = self.config.gateway_of(agent) {
            if anomaly.subject != gateway {
                if let Some(down) = self
                    .store
                    .active_anomaly(&dedup_key(AnomalyKind::DeviceOffline, &gateway))
                    .await?
                {
                    return Ok(Some(format!(
                        "inhibited by anomaly {} (gateway {gateway} offline)",
                        down.id
                    )));
                }
            }
        }
        // A host that is down says so once: its ports' anomalies do not page beside it.
        if anomaly.kind == AnomalyKind::PortDown {
            if let Some((agent, address, _)) = crate::detect::port::parse_subject(&anomaly.subject)
            {
                let device = format!("{agent}/{address}");
                if let Some(down) = self
                    .store
                    .active_anomaly(&dedup_key(AnomalyKind::DeviceOffline, &device))
                    .await?
                {
                    return Ok(Some(format!(
                        "inhibited by anomaly {} (device {device} offline)",
                        down.id
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Stores what the signals say, in order.
    pub async fn apply(&self, signals: Vec<Signal>, now: DateTime<Utc>) -> Result<(), StoreError> {
        for signal in signals {
            match signal {
                Signal::Firing(anomaly) => self.fire(anomaly, now).await?,
                Signal::Clear { kind, subject } => {
                    let key = dedup_key(kind, &subject);
                    if self.config.resolve_after_secs == 0 {
                        self.resolve_key(&key, now).await?;
                    } else {
                        self.clearing
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(key)
                            .or_insert(now);
                    }
                }
            }
        }
        Ok(())
    }

    async fn fire(&self, anomaly: NewAnomaly, now: DateTime<Utc>) -> Result<(), StoreError> {
        let key = anomaly.dedup_key();
        self.clearing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let suppressed = self.suppression(&anomaly, now).await?;
        let plan = self.config.plan(&anomaly);
        let opened = self
            .store
            .open_anomaly(&anomaly, suppressed.as_deref(), &plan, now)
            .await?;
        if let Opened::New(id) = opened {
            self.metrics
                .anomalies
                .get_or_create(&Metrics::labels(&[
                    ("kind", anomaly.kind.as_str()),
                    ("severity", anomaly.severity.as_str()),
                ]))
                .inc();
            tracing::warn!(
                anomaly = id,
                kind = %anomaly.kind,
                subject = %anomaly.subject,
                severity = anomaly.severity.as_str(),
                suppressed = suppressed.as_deref().unwrap_or(""),
                notifications = if suppressed.is_some() { 0 } else { plan.len() },
                "{}",
                anomaly.summary
            );
            if suppressed.is_none() && !plan.is_empty() {
                self.wake.notify_waiters();
            }
            self.announce(id, "opened").await;
        }
        Ok(())
    }

    /// Tells live clients about an anomaly as it now stands.
    pub async fn announce(&self, id: i64, action: &'static str) {
        // The anomaly is read back only for live clients; none listening costs nothing.
        if !self.events.has_subscribers() {
            return;
        }
        match self.store.anomaly(id).await {
            Ok(Some(anomaly)) => {
                let scope = match anomaly.kind {
                    AnomalyKind::PoiMaxout => Some("poi"),
                    AnomalyKind::CircuitMaxout => Some("circuit"),
                    _ => None,
                };
                if let (Some(scope), "opened") = (scope, action) {
                    self.events.publish(crate::events::Event::Maxout {
                        scope,
                        subject: anomaly.subject.clone(),
                        severity: anomaly.severity.as_str().to_string(),
                        summary: anomaly.summary.clone(),
                        at: anomaly.opened_at,
                    });
                }
                self.events
                    .publish(crate::events::Event::Anomaly { action, anomaly });
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, anomaly = id, "cannot read an anomaly to announce")
            }
        }
    }

    async fn resolve_key(&self, key: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        if let Some(active) = self.store.active_anomaly(key).await? {
            self.store
                .resolve_anomaly(active.id, "netwarden", Some("condition cleared"), now)
                .await?;
            tracing::info!(anomaly = active.id, kind = %active.kind, subject = %active.subject, "anomaly resolved");
            self.wake.notify_waiters();
            self.announce(active.id, "resolved").await;
        }
        Ok(())
    }

    /// Resolves the one-off events (new device, MAC or ports changed) open longer than
    /// `one_off_resolve_secs`: nobody has to tidy them away by hand.
    pub async fn expire_one_offs(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        if self.config.one_off_resolve_secs == 0 {
            return Ok(());
        }
        let limit = chrono::Duration::seconds(self.config.one_off_resolve_secs as i64);
        for kind in AnomalyKind::ONE_OFF {
            for state in [AnomalyState::Open, AnomalyState::Acknowledged] {
                let query = AnomalyQuery {
                    kind: Some(kind),
                    state: Some(state),
                    limit: 1000,
                    ..AnomalyQuery::default()
                };
                for anomaly in self.store.anomalies(&query).await? {
                    if now - anomaly.opened_at >= limit {
                        let note = format!(
                            "resolved {} s after it opened ([alerting] one_off_resolve_secs)",
                            self.config.one_off_resolve_secs
                        );
                        if let Some(resolved) = self
                            .store
                            .resolve_anomaly(anomaly.id, "netwarden", Some(&note), now)
                            .await?
                        {
                            self.wake.notify_waiters();
                            self.announce(resolved.id, "resolved").await;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Resolves the anomalies that have stayed clear for `resolve_after_secs`.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let after = chrono::Duration::seconds(self.config.resolve_after_secs as i64);
        let due: Vec<String> = {
            let mut clearing = self.clearing.lock().unwrap_or_else(|p| p.into_inner());
            let due: Vec<String> = clearing
                .iter()
                .filter(|(_, since)| now - **since >= after)
                .map(|(k, _)| k.clone())
                .collect();
            for key in &due {
                clearing.remove(key);
            }
            due
        };
        for key in due {
            self.resolve_key(&key, now).await?;
        }
        Ok(())
    }
}
