//! Delivers the outbox: one loop per channel, so a failing or rate-limited channel never holds
//! up another. Each loop claims due notifications (with a lease), sends them one by one, and
//! records each outcome as soon as it is known, so a crash leaves at most the one send in
//! flight unconfirmed; that one is claimed again after the lease (and marked `recovered`).

use super::email::Mailer;
use super::render;
use super::telegram::{Delivery, Telegram};
use super::templates::Template;
use crate::metrics::Metrics;
use crate::storage::alerting::{AlertJob, AlertOutcome};
use crate::storage::Store;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Claimed at once per channel: small, so a lease comfortably covers a claim's sends.
const CLAIM_BATCH: u32 = 8;
/// Other collectors may queue work too: look at least this often.
const POLL: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub struct EmailChannel {
    pub mailer: Mailer,
    pub template: Template,
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    holder: String,
    lease: Duration,
    retries: u32,
    backoff: Duration,
    email: Option<Arc<EmailChannel>>,
    telegram: Option<Arc<Telegram>>,
    wake: Arc<Notify>,
}

pub struct DispatchSettings {
    pub holder: String,
    pub lease: Duration,
    pub retries: u32,
    pub backoff: Duration,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        settings: DispatchSettings,
        email: Option<EmailChannel>,
        telegram: Option<Telegram>,
        wake: Arc<Notify>,
    ) -> Dispatcher {
        Dispatcher {
            store,
            metrics,
            holder: settings.holder,
            lease: settings.lease,
            retries: settings.retries,
            backoff: settings.backoff,
            email: email.map(Arc::new),
            telegram: telegram.map(Arc::new),
            wake,
        }
    }

    /// Runs every configured channel's loop until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut loops = tokio::task::JoinSet::new();
        if self.email.is_some() {
            loops.spawn(self.clone().channel_loop("email", stop.clone()));
        }
        if self.telegram.is_some() {
            loops.spawn(self.clone().channel_loop("telegram", stop.clone()));
        }
        while loops.join_next().await.is_some() {}
    }

    async fn channel_loop(self: Arc<Self>, channel: &'static str, stop: CancellationToken) {
        tracing::info!(channel, holder = %self.holder, "notification channel started");
        while !stop.is_cancelled() {
            let jobs = match self
                .store
                .claim_alerts(channel, &self.holder, Utc::now(), self.lease, CLAIM_BATCH)
                .await
            {
                Ok(jobs) => jobs,
                Err(err) => {
                    tracing::warn!(channel, error = %err, "cannot claim notifications; retrying");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                let wait = match self.store.next_alert_due(channel).await {
                    Ok(Some(due)) => (due - Utc::now()).to_std().unwrap_or_default().min(POLL),
                    _ => POLL,
                };
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
                }
                continue;
            }
            let mut jobs = jobs.into_iter();
            for job in jobs.by_ref() {
                let outcome = self.deliver(channel, &job).await;
                self.record(channel, &job, outcome).await;
                if stop.is_cancelled() {
                    break;
                }
            }
            // Stopping: hand back what was claimed but not tried, untouched.
            for job in jobs {
                self.record(channel, &job, AlertOutcome::Defer { at: Utc::now() })
                    .await;
            }
        }
        tracing::info!(channel, "notification channel stopped");
    }

    async fn record(&self, channel: &'static str, job: &AlertJob, outcome: AlertOutcome) {
        let status = match &outcome {
            AlertOutcome::Sent => "sent",
            AlertOutcome::Retry { .. } => "retry",
            AlertOutcome::Defer { .. } => "deferred",
            AlertOutcome::Failed { .. } => "failed",
        };
        self.metrics
            .notifications
            .get_or_create(&Metrics::labels(&[
                ("channel", channel),
                ("status", status),
            ]))
            .inc();
        match &outcome {
            AlertOutcome::Sent => tracing::info!(
                channel, alert = job.alert.id, anomaly = job.anomaly.id,
                event = job.alert.event.as_str(), recipient = %job.alert.recipient,
                "notification sent"
            ),
            AlertOutcome::Failed { error } => tracing::warn!(
                channel, alert = job.alert.id, anomaly = job.anomaly.id, %error,
                "notification failed for good"
            ),
            AlertOutcome::Retry { error, at } => tracing::info!(
                channel, alert = job.alert.id, %error, retry_at = %at, "notification will be retried"
            ),
            AlertOutcome::Defer { .. } => {}
        }
        // The outcome must reach the database, or the send would be repeated after the lease.
        let mut delay = Duration::from_millis(100);
        loop {
            match self
                .store
                .finish_alert(job.alert.id, &self.holder, &outcome, Utc::now())
                .await
            {
                Ok(()) => return,
                Err(err) if delay < Duration::from_secs(10) => {
                    tracing::warn!(alert = job.alert.id, error = %err, "cannot record a send; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(err) => {
                    tracing::error!(alert = job.alert.id, error = %err, "cannot record a send");
                    return;
                }
            }
        }
    }

    fn retry_or_fail(&self, job: &AlertJob, error: String) -> AlertOutcome {
        let attempts = job.alert.attempts.max(1) as u32;
        if attempts > self.retries {
            return AlertOutcome::Failed {
                error: format!("gave up after {attempts} attempts: {error}"),
            };
        }
        let backoff = self
            .backoff
            .saturating_mul(2u32.saturating_pow(attempts - 1))
            .min(MAX_BACKOFF);
        AlertOutcome::Retry {
            at: Utc::now() + chrono::Duration::from_std(backoff).unwrap_or_default(),
            error,
        }
    }

    async fn deliver(&self, channel: &str, job: &AlertJob) -> AlertOutcome {
        match channel {
            "email" => {
                let Some(email) = &self.email else {
                    return AlertOutcome::Failed {
                        error: "email is not configured".into(),
                    };
                };
                let to = match job.alert.recipient.parse() {
                    Ok(mailbox) => mailbox,
                    Err(e) => {
                        return AlertOutcome::Failed {
                            error: format!("recipient {:?}: {e}", job.alert.recipient),
                        }
                    }
                };
                let message = render::email(&email.template, job);
                match email
                    .mailer
                    .send_once(&[to], &message, render::message_id(job))
                    .await
                {
                    Ok(()) => AlertOutcome::Sent,
                    Err(f) if f.permanent => AlertOutcome::Failed { error: f.message },
                    Err(f) => self.retry_or_fail(job, f.message),
                }
            }
            "telegram" => {
                let Some(telegram) = &self.telegram else {
                    return AlertOutcome::Failed {
                        error: "Telegram is not configured".into(),
                    };
                };
                match telegram
                    .send(&job.alert.recipient, &render::telegram(job))
                    .await
                {
                    Delivery::Sent => AlertOutcome::Sent,
                    Delivery::Defer(wait) => AlertOutcome::Defer {
                        at: Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                    },
                    Delivery::Transient(error) => self.retry_or_fail(job, error),
                    Delivery::Permanent(error) => AlertOutcome::Failed { error },
                }
            }
            other => AlertOutcome::Failed {
                error: format!("no channel {other:?}"),
            },
        }
    }
}
