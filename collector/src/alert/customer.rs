//! Customer maxout email, a channel of the one dispatcher: when a circuit maxout event opens,
//! an HTML + text message To the account's primary contact, Cc its account manager and CX
//! manager, at most once per circuit per cooldown.
//!
//! The cooldown is this channel's rule, decided as the event is queued: it counts in event time
//! from the start of the last event whose email was claimed (`customer_email_claims`), and the
//! claim and the outbox row are written in one transaction, so it holds across restarts, for
//! telemetry that arrives late, and across collectors sharing one database. Delivery is the
//! dispatcher's (lease, retries with backoff, recovery after a crash); when a send's outcome is
//! final, this channel records it in `notifications`, marks the event notified or gives its
//! claim back, and tells the NOC: a customer who could not be told (no contact, or the send
//! failed) raises a `customer_not_notified` anomaly, which resolves with the next email that
//! reaches the customer.

use super::dispatch::{Attempt, Channel, Retries};
use super::email::{EmailSettings, Mailer};
use super::engine::Engine;
use super::render;
use super::templates::{Rendered, Template, CIRCUIT_MAXOUT_FIELDS};
use crate::detect::Signal;
use crate::domain::alerting::{AlertJob, AlertOutcome, AnomalyKind, NewAnomaly, Severity};
use crate::domain::telemetry::{CircuitEvent, CustomerEmailJob, MaxoutClass};
use crate::metrics::Metrics;
use crate::storage::customers::{Employee, NotificationRecord};
use crate::storage::telemetry::{CircuitMaxoutRecord, CircuitRecord};
use crate::storage::Store;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

pub const EVENT_KIND: &str = AnomalyKind::CircuitMaxout.as_str();
/// The outbox's channel for customer emails.
pub const CHANNEL: &str = "customer_email";
/// The `notifications` rows' channel: how the customer was told.
const NOTIFIED_BY: &str = "email";

const CENTURY_MS: i64 = 100 * 365 * 86_400_000;
/// How often a database step is tried over a short outage (100 ms, doubling: 1.5 s in all):
/// queueing an email, and each step of settling one, whose effect (a claim given back, the
/// NOC told) would otherwise be lost.
const DATABASE_TRIES: u32 = 5;

pub struct CustomerEmail {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mailer: Arc<Mailer>,
    template: Template,
    cooldown: Duration,
    retries: Retries,
    /// Where a customer who could not be told becomes a NOC anomaly.
    engine: Option<Arc<Engine>>,
    /// The dispatcher's wake-up: a queued email goes at once.
    wake: Option<Arc<Notify>>,
    /// The notifications this instance queued, for a command that must see them sent.
    queued: Mutex<Vec<i64>>,
}

/// Why a customer email could not be made.
enum Unprepared {
    /// Nobody to send it to: the NOC must fix the account.
    NoContact(String),
    /// The database could not be asked: worth another try.
    Unavailable(String),
}

/// The event a customer email tells of.
struct Told {
    /// As stored now: its circuit, account and the circuit's rates when it opened.
    stored: CircuitMaxoutRecord,
    /// As it opened, when its email was queued: the figures the email gives.
    opened: CircuitEvent,
}

/// What an email to a customer is, once its account and people are looked up.
struct Prepared {
    to: Mailbox,
    cc: Vec<Mailbox>,
    message: Rendered,
    /// To and Cc, as recorded.
    recipients: String,
}

impl CustomerEmail {
    pub fn new(
        settings: &EmailSettings,
        mailer: Arc<Mailer>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        engine: Option<Arc<Engine>>,
        wake: Option<Arc<Notify>>,
    ) -> Result<Self, String> {
        Ok(CustomerEmail {
            mailer,
            template: Template::load(
                "circuit_maxout",
                settings.templates.as_deref(),
                CIRCUIT_MAXOUT_FIELDS,
            )
            .map_err(|e| e.to_string())?,
            cooldown: settings.cooldown,
            retries: Retries {
                retries: settings.retries,
                backoff: settings.backoff,
            },
            store,
            metrics,
            engine,
            wake,
            queued: Mutex::new(Vec::new()),
        })
    }

    /// The notifications queued through this instance so far.
    pub fn queued(&self) -> Vec<i64> {
        self.queued.lock().map(|q| q.clone()).unwrap_or_default()
    }

    /// Queues the email about a newly opened event, unless the circuit's customer heard of
    /// an earlier one within the cooldown (then recorded as `suppressed`). Call it in event
    /// order: the cooldown is decided here. The dispatcher sends it.
    pub async fn maxout_opened(
        &self,
        circuit: &CircuitRecord,
        event_id: i64,
        event: &CircuitEvent,
    ) {
        // At most a century, so that start + cooldown stays a BIGINT; at least a millisecond,
        // so that two collectors' events with one start are one email (and one claim).
        let cooldown_ms = i64::try_from(self.cooldown.as_millis())
            .unwrap_or(i64::MAX)
            .clamp(1, CENTURY_MS);
        let job = CustomerEmailJob {
            channel: CHANNEL,
            circuit_id: circuit.circuit_id.clone(),
            event_id,
            start: event.start,
            cooldown_ms,
            severity: match event.severity {
                MaxoutClass::Maxout => Severity::High,
                MaxoutClass::Burst => Severity::Medium,
            },
            event: event.clone(),
        };
        let queued = match persist("queue the customer email", event_id, || {
            self.store.queue_customer_email(&job, Utc::now())
        })
        .await
        {
            Ok(queued) => queued,
            Err(err) => {
                // Not queued, so not claimed either: the next event of the circuit tries
                // again, and the NOC hears of this one now.
                self.tell_noc(
                    &circuit.circuit_id,
                    circuit.account.as_deref(),
                    Err(format!("it could not be queued: {err}")),
                )
                .await;
                return;
            }
        };
        if let Some(id) = queued {
            if let Ok(mut mine) = self.queued.lock() {
                mine.push(id);
            }
            if let Some(wake) = &self.wake {
                wake.notify_waiters();
            }
            return;
        }
        self.count("suppressed");
        let record = NotificationRecord {
            event_kind: EVENT_KIND.into(),
            event_id,
            channel: NOTIFIED_BY.into(),
            recipients: String::new(),
            subject: String::new(),
            status: "suppressed".into(),
            error: Some("within the cooldown of an earlier email".into()),
            attempts: 0,
            created_at: Utc::now(),
        };
        let _ = persist("record a notification", event_id, || {
            self.store.save_notification(&record)
        })
        .await;
    }

    fn count(&self, status: &str) {
        self.metrics
            .notifications
            .get_or_create(&Metrics::labels(&[
                ("channel", CHANNEL),
                ("status", status),
            ]))
            .inc();
    }

    /// The event the job tells of: as stored, and as it opened (what the email describes).
    async fn event(&self, job: &AlertJob) -> Result<Told, String> {
        let Some(id) = job.alert.circuit_event_id else {
            return Err(format!(
                "notification {} names no circuit maxout event",
                job.alert.id
            ));
        };
        let stored = match self.store.circuit_maxout(id).await {
            Ok(Some(event)) => event,
            Ok(None) => return Err(format!("circuit maxout event {id} does not exist")),
            Err(err) => return Err(format!("cannot read circuit maxout event {id}: {err}")),
        };
        // Queued with the event as it opened (`queue_customer_email`), always.
        let opened = job
            .alert
            .details
            .clone()
            .and_then(|d| serde_json::from_value::<CircuitEvent>(d).ok())
            .ok_or_else(|| {
                format!(
                    "notification {} does not carry its event as it opened",
                    job.alert.id
                )
            })?;
        Ok(Told { stored, opened })
    }

    /// The message and its recipients, or why there is none.
    async fn prepare(&self, told: &Told) -> Result<Prepared, Unprepared> {
        let event = &told.stored;
        let found = match &event.account {
            Some(id) => self.store.account(id).await,
            None => Ok(None),
        };
        let no_contact = |why: String| Unprepared::NoContact(why);
        let (account, to) = match (&event.account, found) {
            (None, _) => Err(no_contact("the circuit has no account".to_string())),
            (Some(id), Ok(None)) => Err(no_contact(format!("account {id} does not exist"))),
            (Some(id), Err(err)) => Err(Unprepared::Unavailable(format!(
                "cannot read account {id}: {err}"
            ))),
            (Some(id), Ok(Some(account))) => match account.contact_email.as_deref() {
                None => Err(no_contact(format!("account {id} has no contact email"))),
                Some(email) => format!(
                    "{} <{email}>",
                    account.contact_name.as_deref().unwrap_or(&account.name)
                )
                .parse::<Mailbox>()
                .map(|mailbox| (account.clone(), mailbox))
                .map_err(|err| {
                    no_contact(format!("account {id}'s contact email is not usable: {err}"))
                }),
            },
        }?;
        let am = self.employee(&account.account_manager).await;
        let cx = self.employee(&account.cx_manager).await;
        let cc: Vec<Mailbox> = [&am, &cx]
            .iter()
            .filter_map(|e| e.as_ref())
            .filter_map(|e| format!("{} <{}>", e.name, e.email).parse().ok())
            .collect();
        let message = self.template.render(&values(
            told,
            &account.name,
            account.contact_name.as_deref(),
            am.as_ref(),
            cx.as_ref(),
        ));
        let recipients = format!(
            "To: {to}; Cc: {}",
            cc.iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Prepared {
            to,
            cc,
            message,
            recipients,
        })
    }

    async fn employee(&self, id: &Option<String>) -> Option<Employee> {
        self.store.employee(id.as_deref()?).await.ok().flatten()
    }

    /// A customer who could not be told is the NOC's problem (a `customer_not_notified`
    /// anomaly for the circuit); one who was told clears it.
    async fn tell_noc(&self, circuit_id: &str, account: Option<&str>, told: Result<(), String>) {
        let Some(engine) = &self.engine else {
            return;
        };
        let signal = match told {
            Ok(()) => Signal::Clear {
                kind: AnomalyKind::CustomerNotNotified,
                subject: circuit_id.to_string(),
            },
            Err(why) => Signal::Firing(NewAnomaly {
                kind: AnomalyKind::CustomerNotNotified,
                subject: circuit_id.to_string(),
                group_key: account.map(str::to_string),
                severity: Severity::High,
                summary: format!(
                    "the customer of circuit {circuit_id} was not emailed about its maxout: {why}"
                ),
                details: serde_json::json!({ "account": account, "error": why }),
            }),
        };
        if let Err(err) = engine.apply(vec![signal], Utc::now()).await {
            tracing::error!(circuit = circuit_id, error = %err, "cannot raise the customer-not-notified anomaly");
        }
    }
}

#[async_trait]
impl Channel for CustomerEmail {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    async fn deliver(&self, job: &AlertJob) -> Attempt {
        let told = match self.event(job).await {
            Ok(told) => told,
            Err(why) => return Attempt::Transient(why),
        };
        let prepared = match self.prepare(&told).await {
            Ok(prepared) => prepared,
            // The NOC hears of it (`settled`) and fixes the account, so that the customer
            // hears next time.
            Err(Unprepared::NoContact(why)) => return Attempt::NoContact(why),
            Err(Unprepared::Unavailable(why)) => return Attempt::Transient(why),
        };
        match self
            .mailer
            .send_once(
                &[prepared.to],
                &prepared.cc,
                &prepared.message,
                render::message_id(job),
            )
            .await
        {
            Ok(()) => Attempt::Sent,
            Err(f) if f.permanent => Attempt::Permanent(f.message),
            Err(f) => Attempt::Transient(f.message),
        }
    }

    fn retries(&self) -> Option<Retries> {
        Some(self.retries)
    }

    async fn settled(&self, job: &AlertJob, outcome: &AlertOutcome) {
        let error = match outcome {
            AlertOutcome::Sent => None,
            AlertOutcome::Failed { error } => Some(error.clone()),
            AlertOutcome::Retry { .. } | AlertOutcome::Defer { .. } => return,
        };
        let alert = job.alert.id;
        let Ok(told) = persist("read a customer email's event", alert, || self.event(job)).await
        else {
            return;
        };
        let event = &told.stored;
        let prepared = self.prepare(&told).await;
        let (recipients, subject) = match &prepared {
            Ok(p) => (p.recipients.clone(), p.message.subject.clone()),
            Err(_) => (String::new(), String::new()),
        };
        let (status, attempts) = match (&error, &prepared) {
            (None, _) => ("sent", job.alert.attempts),
            (Some(_), Err(Unprepared::NoContact(_))) => ("no_contact", 0),
            (Some(_), _) => ("failed", job.alert.attempts),
        };
        match (status, &error) {
            ("no_contact", Some(why)) => tracing::error!(
                circuit = %event.circuit_id,
                account = event.account.as_deref().unwrap_or("(none)"),
                reason = %why,
                "circuit maxout with no customer contact to email"
            ),
            ("failed", Some(why)) => {
                tracing::error!(circuit = %event.circuit_id, error = %why, "customer maxout email failed")
            }
            _ => {}
        }
        let record = NotificationRecord {
            event_kind: EVENT_KIND.into(),
            event_id: event.id,
            channel: NOTIFIED_BY.into(),
            recipients,
            subject,
            status: status.into(),
            error: error.clone(),
            attempts,
            created_at: Utc::now(),
        };
        let _ = persist("record a notification", event.id, || {
            self.store.save_notification(&record)
        })
        .await;
        if error.is_none() {
            let _ = persist("record that the customer was emailed", event.id, || {
                self.store
                    .mark_circuit_maxout_notified(event.id, Utc::now())
            })
            .await;
        }
        // Only the outcome of the circuit's last claimed email decides what the NOC sees: an
        // older one settling late says nothing about the customer now.
        let Ok(Some(claim)) = persist("read the customer email claim", event.id, || {
            self.store.customer_email_claim(&event.circuit_id, event.id)
        })
        .await
        else {
            return;
        };
        let told = match error {
            None => Ok(()),
            Some(why) => {
                // Not told: the next event tries again (the cooldown counts from the claim
                // before), unless a later one was claimed meanwhile.
                let _ = persist("give back the customer email claim", event.id, || {
                    self.store.release_customer_email(&event.circuit_id, &claim)
                })
                .await;
                Err(why)
            }
        };
        self.tell_noc(&event.circuit_id, event.account.as_deref(), told)
            .await;
    }
}

fn values<'a>(
    told: &Told,
    account_name: &str,
    contact_name: Option<&str>,
    am: Option<&Employee>,
    cx: Option<&Employee>,
) -> BTreeMap<&'a str, String> {
    let (stored, event) = (&told.stored, &told.opened);
    let time = |ms: i64| {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    let duration = (event.end - event.start) / 1000;
    let person = |e: Option<&Employee>| {
        (
            e.map(|e| e.name.clone()).unwrap_or_else(|| "-".into()),
            e.map(|e| e.email.clone()).unwrap_or_else(|| "-".into()),
        )
    };
    let (name, email) = person(am);
    let (cx_name, cx_email) = person(cx);
    let provisioned = stored.provisioned_mbps;
    BTreeMap::from([
        ("circuit_id", stored.circuit_id.clone()),
        ("account_name", account_name.to_string()),
        (
            "contact_name",
            contact_name.unwrap_or(account_name).to_string(),
        ),
        ("peak_mbps", format!("{:.1}", event.peak_mbps)),
        (
            "peak_pct",
            format!("{:.0}", 100.0 * event.peak_mbps / provisioned),
        ),
        ("provisioned_mbps", format!("{provisioned:.0}")),
        (
            "burst_mbps",
            stored
                .burst_mbps
                .map(|b| format!("{b:.0} Mbps"))
                .unwrap_or_else(|| "none".into()),
        ),
        (
            "duration",
            format!("{} min {} s", duration / 60, duration % 60),
        ),
        ("start", time(event.start)),
        (
            "severity",
            // The words follow the one rule (`detect/circuit.rs`): the ceiling itself is `burst`.
            match (event.severity, stored.burst_mbps) {
                (MaxoutClass::Burst, _) => {
                    "at or over the provisioned rate, within the burst ceiling".into()
                }
                (MaxoutClass::Maxout, Some(b)) if b > provisioned => {
                    "above the burst ceiling".into()
                }
                (MaxoutClass::Maxout, _) => "at or over the provisioned rate (no burst)".into(),
            },
        ),
        ("am_name", name),
        ("am_email", email),
        ("cx_name", cx_name),
        ("cx_email", cx_email),
    ])
}

/// Runs a database step, again over a short outage ([`DATABASE_TRIES`]); logs what it could
/// not do.
async fn persist<T, E, F, Fut>(what: &str, event_id: i64, mut step: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(100);
    let mut tries = 0;
    loop {
        tries += 1;
        match step().await {
            Ok(done) => return Ok(done),
            Err(err) if tries < DATABASE_TRIES => {
                tracing::warn!(event_id, error = %err, "cannot {what}; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(err) => {
                tracing::error!(event_id, error = %err, "cannot {what}");
                return Err(err);
            }
        }
    }
}
