//! Anomalies, the notification outbox and silences (issue 7).
//!
//! Every state change that makes or cancels notifications happens in one transaction with
//! the outbox rows it implies, so a crash between them cannot lose or invent a notification.
//! Collectors claim due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL) with a lease; a row whose
//! holder vanished mid-send is claimed again after the lease and marked `recovered`.

use super::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

pub use crate::domain::alerting::*;

#[async_trait]
pub trait AlertStore {
    /// Opens an anomaly with its planned notifications, or refreshes the active one with the
    /// same dedup key. `suppressed` stores it without notifications.
    async fn open_anomaly(
        &self,
        anomaly: &NewAnomaly,
        suppressed: Option<&str>,
        plan: &[PlannedAlert],
        now: DateTime<Utc>,
    ) -> Result<Opened>;
    async fn active_anomaly(&self, dedup_key: &str) -> Result<Option<Anomaly>>;
    /// Resolves the anomaly: cancels its pending notifications and queues a resolve notice to
    /// every recipient that was told it opened. `None` if there is no such anomaly.
    async fn resolve_anomaly(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Anomaly>>;
    /// Acknowledges an open anomaly and cancels its pending repeats and escalations.
    async fn acknowledge_anomaly(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Anomaly>>;
    async fn anomaly(&self, id: i64) -> Result<Option<Anomaly>>;
    async fn anomalies(&self, query: &AnomalyQuery) -> Result<Vec<Anomaly>>;

    /// Claims up to `limit` due notifications of `channel` for `holder` until `now + lease`.
    async fn claim_alerts(
        &self,
        channel: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<AlertJob>>;
    /// Records how a claimed send ended; ignored (`false`) if `holder` lost the claim
    /// meanwhile, so that only the holder's outcome counts. A sent notification with a repeat
    /// interval queues the next repeat.
    async fn finish_alert(
        &self,
        id: i64,
        holder: &str,
        outcome: &AlertOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// When the next pending notification of `channel` is due, if any.
    async fn next_alert_due(&self, channel: &str) -> Result<Option<DateTime<Utc>>>;
    async fn alert(&self, id: i64) -> Result<Option<AlertRow>>;
    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRow>>;
    /// Acknowledges the notification and with it its anomaly.
    async fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AlertRow>>;

    async fn create_silence(&self, silence: &NewSilence, now: DateTime<Utc>) -> Result<Silence>;
    /// Silences that have not ended by `now`.
    async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>>;
    async fn delete_silence(&self, id: i64) -> Result<bool>;
}
