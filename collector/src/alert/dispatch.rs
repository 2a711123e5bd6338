//! Delivers the outbox: one loop per channel, so a failing or rate-limited channel never holds
//! up another. Each loop claims due notifications (with a lease), sends them one by one, and
//! records each outcome as soon as it is known, so a crash leaves at most the one send in
//! flight unconfirmed; that one is claimed again after the lease (and marked `recovered`).

use super::clock::SharedClock;
use super::email::Mailer;
use super::render;
use super::telegram::{Delivery, Telegram};
use super::templates::Template;
use crate::metrics::Metrics;
use crate::storage::alerting::{AlertJob, AlertOutcome};
use crate::storage::Store;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Claimed at once per channel: small, so a lease comfortably covers a claim's sends.
const CLAIM_BATCH: u32 = 8;
/// Other collectors may queue work too: look at least this often.
const POLL: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What one delivery attempt came to, in a channel's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Sent,
    /// Not tried (a flood limit): again after the wait, not counted as an attempt.
    Defer(Duration),
    /// Failed, may work later: retried with backoff.
    Transient(String),
    /// Will not work: recorded as failed.
    Permanent(String),
    /// Nobody to send it to (a customer with no usable contact): recorded as failed, not
    /// retried, and counted apart from the channel's own failures (`status="no_contact"`).
    NoContact(String),
}

/// How often and how far apart a failed send is tried again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retries {
    /// Tries after the first.
    pub retries: u32,
    /// The wait before the first retry, doubled for each one after.
    pub backoff: Duration,
}

/// A way to tell people: email, Telegram, the customer's maxout email (and in tests, a
/// recorder).
#[async_trait]
pub trait Channel: Send + Sync {
    /// The outbox's `channel` value this one delivers.
    fn name(&self) -> &'static str;
    async fn deliver(&self, job: &AlertJob) -> Attempt;
    /// A retry schedule of its own, instead of the dispatcher's.
    fn retries(&self) -> Option<Retries> {
        None
    }
    /// Told once a send's outcome is final (sent or failed for good) and recorded: what the
    /// channel does beyond the outbox with it.
    async fn settled(&self, _job: &AlertJob, _outcome: &AlertOutcome) {}
}

/// A notification of a channel that tells of anomalies, without its anomaly: not worth a retry.
fn no_anomaly(job: &AlertJob) -> Attempt {
    Attempt::Permanent(format!(
        "notification {} on channel {} names no anomaly",
        job.alert.id, job.alert.channel
    ))
}

pub struct EmailChannel {
    pub mailer: Arc<Mailer>,
    pub template: Template,
}

#[async_trait]
impl Channel for EmailChannel {
    fn name(&self) -> &'static str {
        "email"
    }

    async fn deliver(&self, job: &AlertJob) -> Attempt {
        let Some(anomaly) = &job.anomaly else {
            return no_anomaly(job);
        };
        let to = match job.alert.recipient.parse() {
            Ok(mailbox) => mailbox,
            Err(e) => {
                return Attempt::Permanent(format!("recipient {:?}: {e}", job.alert.recipient))
            }
        };
        let message = render::email(&self.template, job, anomaly);
        match self
            .mailer
            .send_once(&[to], &[], &message, render::message_id(job))
            .await
        {
            Ok(()) => Attempt::Sent,
            Err(f) if f.permanent => Attempt::Permanent(f.message),
            Err(f) => Attempt::Transient(f.message),
        }
    }
}

#[async_trait]
impl Channel for Telegram {
    fn name(&self) -> &'static str {
        "telegram"
    }

    async fn deliver(&self, job: &AlertJob) -> Attempt {
        let Some(anomaly) = &job.anomaly else {
            return no_anomaly(job);
        };
        match self
            .send(&job.alert.recipient, &render::telegram(job, anomaly))
            .await
        {
            Delivery::Sent => Attempt::Sent,
            Delivery::Defer(wait) => Attempt::Defer(wait),
            Delivery::Transient(error) => Attempt::Transient(error),
            Delivery::Permanent(error) => Attempt::Permanent(error),
        }
    }
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    holder: String,
    lease: Duration,
    retries: Retries,
    clock: SharedClock,
    channels: Vec<Arc<dyn Channel>>,
    wake: Arc<Notify>,
}

pub struct DispatchSettings {
    pub holder: String,
    pub lease: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub clock: SharedClock,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        settings: DispatchSettings,
        channels: Vec<Arc<dyn Channel>>,
        wake: Arc<Notify>,
    ) -> Dispatcher {
        Dispatcher {
            store,
            metrics,
            holder: settings.holder,
            lease: settings.lease,
            retries: Retries {
                retries: settings.retries,
                backoff: settings.backoff,
            },
            clock: settings.clock,
            channels,
            wake,
        }
    }

    /// Runs every channel's loop until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut loops = tokio::task::JoinSet::new();
        for channel in &self.channels {
            loops.spawn(self.clone().channel_loop(channel.clone(), stop.clone()));
        }
        while loops.join_next().await.is_some() {}
    }

    async fn channel_loop(self: Arc<Self>, channel: Arc<dyn Channel>, stop: CancellationToken) {
        let name = channel.name();
        tracing::info!(channel = name, holder = %self.holder, "notification channel started");
        while !stop.is_cancelled() {
            if self.poll_once(channel.as_ref(), &stop).await > 0 {
                continue;
            }
            let wait = match self.store.next_alert_due(name).await {
                Ok(Some(due)) => (due - self.clock.now())
                    .to_std()
                    .unwrap_or_default()
                    .min(POLL),
                _ => POLL,
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            }
        }
        tracing::info!(channel = name, "notification channel stopped");
    }

    /// Delivers on `channel` until the notifications `ids` are settled (sent, failed or
    /// cancelled, by this dispatcher or another collector's), retries included: for a
    /// one-off command (`import telemetry --notify`) with no dispatcher running. It sends
    /// whatever else is due on the channel meanwhile, as any dispatcher would.
    pub async fn drain(
        &self,
        channel: &dyn Channel,
        ids: &[i64],
    ) -> Result<(), crate::storage::StoreError> {
        let stop = CancellationToken::new();
        let mut open: Vec<i64> = ids.to_vec();
        while !open.is_empty() {
            let claimed = self.poll_once(channel, &stop).await;
            let mut still = Vec::with_capacity(open.len());
            for id in open {
                let settled = match self.store.alert(id).await? {
                    Some(alert) => !["pending", "sending"].contains(&alert.state.as_str()),
                    None => true,
                };
                if !settled {
                    still.push(id);
                }
            }
            open = still;
            if open.is_empty() || claimed > 0 {
                continue;
            }
            let wait = match self.store.next_alert_due(channel.name()).await? {
                Some(due) => (due - self.clock.now()).to_std().unwrap_or_default(),
                None => POLL,
            };
            tokio::time::sleep(wait.clamp(Duration::from_millis(5), POLL)).await;
        }
        Ok(())
    }

    /// Claims what is due on `channel`, delivers it one by one and records each outcome;
    /// returns how many were claimed. Stopping hands back, untouched, what was not tried.
    pub async fn poll_once(&self, channel: &dyn Channel, stop: &CancellationToken) -> usize {
        let name = channel.name();
        let jobs = match self
            .store
            .claim_alerts(
                name,
                &self.holder,
                self.clock.now(),
                self.lease,
                CLAIM_BATCH,
            )
            .await
        {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::warn!(channel = name, error = %err, "cannot claim notifications; retrying");
                return 0;
            }
        };
        let claimed = jobs.len();
        let mut jobs = jobs.into_iter();
        for job in jobs.by_ref() {
            let attempt = channel.deliver(&job).await;
            let no_contact = matches!(attempt, Attempt::NoContact(_));
            let outcome = self.outcome(&job, attempt, channel.retries());
            let status = if no_contact {
                "no_contact"
            } else {
                status_of(&outcome)
            };
            self.record(channel, &job, outcome, status).await;
            if stop.is_cancelled() {
                break;
            }
        }
        for job in jobs {
            let at = self.clock.now();
            self.record(channel, &job, AlertOutcome::Defer { at }, "deferred")
                .await;
        }
        claimed
    }

    fn outcome(&self, job: &AlertJob, attempt: Attempt, retries: Option<Retries>) -> AlertOutcome {
        match attempt {
            Attempt::Sent => AlertOutcome::Sent,
            Attempt::Defer(wait) => AlertOutcome::Defer {
                at: self.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default(),
            },
            Attempt::Transient(error) => {
                self.retry_or_fail(job, error, retries.unwrap_or(self.retries))
            }
            Attempt::Permanent(error) | Attempt::NoContact(error) => AlertOutcome::Failed { error },
        }
    }

    async fn record(
        &self,
        via: &dyn Channel,
        job: &AlertJob,
        outcome: AlertOutcome,
        status: &'static str,
    ) {
        let channel = via.name();
        self.metrics
            .notifications
            .get_or_create(&Metrics::labels(&[
                ("channel", channel),
                ("status", status),
            ]))
            .inc();
        match &outcome {
            AlertOutcome::Sent => tracing::info!(
                channel, alert = job.alert.id, anomaly = job.alert.anomaly_id,
                event = job.alert.event.as_str(), recipient = %job.alert.recipient,
                "notification sent"
            ),
            AlertOutcome::Failed { error } => tracing::warn!(
                channel, alert = job.alert.id, anomaly = job.alert.anomaly_id, %error,
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
                .finish_alert(job.alert.id, &self.holder, &outcome, self.clock.now())
                .await
            {
                Ok(recorded) => {
                    // Only the holder's outcome is the send's: one whose lease ran out while
                    // it sent is not, and its channel hears nothing of it.
                    if !recorded {
                        tracing::warn!(
                            channel,
                            alert = job.alert.id,
                            "a send outlived its lease; another collector's outcome counts"
                        );
                    } else if matches!(outcome, AlertOutcome::Sent | AlertOutcome::Failed { .. }) {
                        via.settled(job, &outcome).await;
                    }
                    return;
                }
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

    fn retry_or_fail(&self, job: &AlertJob, error: String, policy: Retries) -> AlertOutcome {
        let attempts = job.alert.attempts.max(1) as u32;
        if attempts > policy.retries {
            return AlertOutcome::Failed {
                error: format!("gave up after {attempts} attempts: {error}"),
            };
        }
        let backoff = policy
            .backoff
            .saturating_mul(2u32.saturating_pow(attempts - 1))
            .min(MAX_BACKOFF);
        AlertOutcome::Retry {
            at: self.clock.now() + chrono::Duration::from_std(backoff).unwrap_or_default(),
            error,
        }
    }
}

/// An outcome as `netwarden_notifications_total`'s `status`.
fn status_of(outcome: &AlertOutcome) -> &'static str {
    match outcome {
        AlertOutcome::Sent => "sent",
        AlertOutcome::Retry { .. } => "retry",
        AlertOutcome::Defer { .. } => "deferred",
        AlertOutcome::Failed { .. } => "failed",
    }
}
