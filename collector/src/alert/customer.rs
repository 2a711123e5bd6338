//! Customer maxout email: when a circuit maxout event opens, an HTML + text message To the
//! account's primary contact, Cc its account manager and CX manager, at most once per circuit
//! per cooldown. Every send (or why there was none) is recorded in `notifications`; an
//! account with no contact still has its event stored and raises an internal alert.

use super::email::{EmailSettings, Mailer};
use super::templates::{Template, CIRCUIT_MAXOUT_FIELDS};
use crate::metrics::Metrics;
use crate::storage::customers::NotificationRecord;
use crate::storage::telemetry::CircuitRecord;
use crate::storage::Store;
use crate::telemetry::detect::{CircuitEvent, Severity};
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const EVENT_KIND: &str = "circuit_maxout";

pub struct CustomerNotifier {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mailer: Mailer,
    template: Template,
    cooldown: Duration,
    last_sent: Mutex<HashMap<String, Instant>>,
}

impl CustomerNotifier {
    pub fn new(
        settings: &EmailSettings,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        Ok(CustomerNotifier {
            mailer: Mailer::new(settings)?,
            template: Template::load(
                "circuit_maxout",
                settings.templates.as_deref(),
                CIRCUIT_MAXOUT_FIELDS,
            )
            .map_err(|e| e.to_string())?,
            cooldown: settings.cooldown,
            store,
            metrics,
            last_sent: Mutex::new(HashMap::new()),
        })
    }

    /// Handles a newly opened event (call it on its own task: sending may take retries).
    pub async fn maxout_opened(
        &self,
        circuit: &CircuitRecord,
        event_id: i64,
        event: &CircuitEvent,
    ) {
        let record = |recipients: String,
                      subject: String,
                      status: &str,
                      error: Option<String>,
                      attempts: i32| {
            NotificationRecord {
                event_kind: EVENT_KIND.into(),
                event_id,
                channel: "email".into(),
                recipients,
                subject,
                status: status.into(),
                error,
                attempts,
                created_at: Utc::now(),
            }
        };
        let in_cooldown = {
            let mut last = self.last_sent.lock().unwrap_or_else(|e| e.into_inner());
            match last.get(&circuit.circuit_id) {
                Some(at) if at.elapsed() < self.cooldown => true,
                _ => {
                    last.insert(circuit.circuit_id.clone(), Instant::now());
                    false
                }
            }
        };
        let outcome = if in_cooldown {
            record(
                String::new(),
                String::new(),
                "suppressed",
                Some("within the cooldown of an earlier email".into()),
                0,
            )
        } else {
            self.send(circuit, event, &record).await
        };
        self.metrics
            .notifications
            .get_or_create(&Metrics::labels(&[
                ("channel", "email"),
                ("status", outcome.status.as_str()),
            ]))
            .inc();
        if let Err(err) = self.store.save_notification(&outcome).await {
            tracing::error!(error = %err, event_id, "cannot record a notification");
        }
    }

    async fn employee(&self, id: &Option<String>) -> Option<crate::storage::customers::Employee> {
        self.store.employee(id.as_deref()?).await.ok().flatten()
    }

    async fn send(
        &self,
        circuit: &CircuitRecord,
        event: &CircuitEvent,
        record: &impl Fn(String, String, &str, Option<String>, i32) -> NotificationRecord,
    ) -> NotificationRecord {
        let account = match &circuit.account {
            Some(id) => self.store.account(id).await.ok().flatten(),
            None => None,
        };
        let contact = account.and_then(|a| {
            let email = a.contact_email.as_deref()?;
            let mailbox = format!("{} <{email}>", a.contact_name.as_deref().unwrap_or(&a.name))
                .parse::<Mailbox>()
                .ok()?;
            Some((a, mailbox))
        });
        let Some((account, contact)) = contact else {
            // Internal alert: the NOC must fix the account so the customer hears next time.
            tracing::error!(
                circuit = %circuit.circuit_id,
                account = circuit.account.as_deref().unwrap_or("(none)"),
                "circuit maxout with no customer contact to email: add the account's contact"
            );
            return record(
                String::new(),
                String::new(),
                "no_contact",
                Some("the account has no contact email".into()),
                0,
            );
        };
        let am = self.employee(&account.account_manager).await;
        let cx = self.employee(&account.cx_manager).await;
        let cc: Vec<Mailbox> = [&am, &cx]
            .iter()
            .filter_map(|e| e.as_ref())
            .filter_map(|e| format!("{} <{}>", e.name, e.email).parse().ok())
            .collect();
        let values = values(
            circuit,
            &account.name,
            account.contact_name.as_deref(),
            event,
            am.as_ref(),
            cx.as_ref(),
        );
        let message = self.template.render(&values);
        let recipients = format!(
            "To: {contact}; Cc: {}",
            cc.iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let (attempts, sent) = self.mailer.send(&[contact], &cc, &message).await;
        match sent {
            Ok(()) => record(recipients, message.subject, "sent", None, attempts as i32),
            Err(error) => {
                tracing::error!(circuit = %circuit.circuit_id, %error, "customer maxout email failed");
                record(
                    recipients,
                    message.subject,
                    "failed",
                    Some(error),
                    attempts as i32,
                )
            }
        }
    }
}

fn values<'a>(
    circuit: &CircuitRecord,
    account_name: &str,
    contact_name: Option<&str>,
    event: &CircuitEvent,
    am: Option<&crate::storage::customers::Employee>,
    cx: Option<&crate::storage::customers::Employee>,
) -> BTreeMap<&'a str, String> {
    let time = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    let duration = (event.end - event.start) / 1000;
    let person = |e: Option<&crate::storage::customers::Employee>| {
        (
            e.map(|e| e.name.clone()).unwrap_or_else(|| "-".into()),
            e.map(|e| e.email.clone()).unwrap_or_else(|| "-".into()),
        )
    };
    let (name, email) = person(am);
    let (cx_name, cx_email) = person(cx);
    BTreeMap::from([
        ("circuit_id", circuit.circuit_id.clone()),
        ("account_name", account_name.to_string()),
        (
            "contact_name",
            contact_name.unwrap_or(account_name).to_string(),
        ),
        ("peak_mbps", format!("{:.1}", event.peak_mbps)),
        (
            "peak_pct",
            format!("{:.0}", 100.0 * event.peak_mbps / circuit.provisioned_mbps),
        ),
        (
            "provisioned_mbps",
            format!("{:.0}", circuit.provisioned_mbps),
        ),
        (
            "burst_mbps",
            circuit
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
            match event.severity {
                Severity::Burst => "over provisioned, within burst".into(),
                Severity::Maxout => "at or over the maximum".into(),
            },
        ),
        ("am_name", name),
        ("am_email", email),
        ("cx_name", cx_name),
        ("cx_email", cx_email),
    ])
}
