//! Customer maxout email: when a circuit maxout event opens, an HTML + text message To the
//! account's primary contact, Cc its account manager and CX manager, at most once per circuit
//! per cooldown. The cooldown counts in event time from the start of the last event whose email
//! was claimed (`customer_email_claims`, claimed in the database), so it holds across restarts,
//! for telemetry that arrives late, and across collectors sharing one database. Every send (or
//! why there was none) is recorded in `notifications`; when the customer could not be told (no
//! contact, or the send failed) the event is stored all the same and the NOC gets a
//! `customer_not_notified` anomaly, which resolves with the next email that reaches the
//! customer.

use super::email::{EmailSettings, Mailer};
use super::engine::Engine;
use super::templates::{Template, CIRCUIT_MAXOUT_FIELDS};
use crate::detect::Signal;
use crate::domain::alerting::AnomalyKind;
use crate::domain::alerting::{NewAnomaly, Severity};
use crate::domain::telemetry::{CircuitEvent, MaxoutClass};
use crate::metrics::Metrics;
use crate::storage::customers::NotificationRecord;
use crate::storage::telemetry::{CircuitRecord, EmailClaim};
use crate::storage::Store;
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const EVENT_KIND: &str = AnomalyKind::CircuitMaxout.as_str();

const CENTURY_MS: i64 = 100 * 365 * 86_400_000;

pub struct CustomerNotifier {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mailer: Arc<Mailer>,
    template: Template,
    cooldown: Duration,
    /// Per circuit, the start of the latest event an email was tried for (Unix ms): sends run
    /// on tasks of their own and may finish in any order, so only its outcome raises or
    /// clears the NOC's anomaly. Also the cooldown while the database cannot be asked.
    latest_try: Mutex<HashMap<String, i64>>,
    /// Where a customer who could not be told becomes a NOC anomaly.
    engine: Option<Arc<Engine>>,
}

/// Whether an event's customer is emailed.
enum Claim {
    /// Yes; a failed send gives the claim back (none when the database could not be asked).
    Send { claim: Option<EmailClaim> },
    /// No: within the cooldown of an email about an earlier event.
    Suppressed,
}

impl CustomerNotifier {
    pub fn new(
        settings: &EmailSettings,
        mailer: Arc<Mailer>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        engine: Option<Arc<Engine>>,
    ) -> Result<Self, String> {
        Ok(CustomerNotifier {
            mailer,
            template: Template::load(
                "circuit_maxout",
                settings.templates.as_deref(),
                CIRCUIT_MAXOUT_FIELDS,
            )
            .map_err(|e| e.to_string())?,
            cooldown: settings.cooldown,
            store,
            metrics,
            latest_try: Mutex::new(HashMap::new()),
            engine,
        })
    }

    /// Handles a newly opened event. Call it in event order (the cooldown is decided here);
    /// the sending, which may take retries, goes on on a task of its own.
    pub async fn maxout_opened(
        self: &Arc<Self>,
        circuit: &CircuitRecord,
        event_id: i64,
        event: &CircuitEvent,
    ) {
        let claim = self.claim(&circuit.circuit_id, event.start).await;
        let (this, circuit, event) = (self.clone(), circuit.clone(), event.clone());
        tokio::spawn(async move { this.deliver(&circuit, event_id, &event, claim).await });
    }

    /// Decides whether an event starting at `start` (Unix ms) is emailed, and if so counts
    /// the circuit's cooldown from it.
    async fn claim(&self, circuit_id: &str, start: i64) -> Claim {
        // At most a century, so that start + cooldown stays a BIGINT; at least a millisecond,
        // so that two collectors' events with one start are one email (and one claim).
        let cooldown = i64::try_from(self.cooldown.as_millis())
            .unwrap_or(i64::MAX)
            .clamp(1, CENTURY_MS);
        let claim = match self
            .store
            .claim_customer_email(circuit_id, start, cooldown)
            .await
        {
            Ok(Some(claim)) => Some(claim),
            Ok(None) => return Claim::Suppressed,
            Err(err) => {
                // This collector's own tries keep the cooldown meanwhile: a customer may then
                // hear from each collector, which is better than from none.
                tracing::error!(circuit = circuit_id, error = %err, "cannot claim the customer email in the database; deciding on this collector's own emails");
                let last = self.latest_try().get(circuit_id).copied();
                if last.is_some_and(|last| start < last.saturating_add(cooldown)) {
                    return Claim::Suppressed;
                }
                None
            }
        };
        self.latest_try().insert(circuit_id.to_string(), start);
        Claim::Send { claim }
    }

    fn latest_try(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.latest_try.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn deliver(
        &self,
        circuit: &CircuitRecord,
        event_id: i64,
        event: &CircuitEvent,
        claim: Claim,
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
        let tried = matches!(claim, Claim::Send { .. });
        let outcome = match claim {
            Claim::Suppressed => record(
                String::new(),
                String::new(),
                "suppressed",
                Some("within the cooldown of an earlier email".into()),
                0,
            ),
            Claim::Send { claim } => {
                let outcome = self.send(circuit, event, &record).await;
                if outcome.status == "sent" {
                    if let Err(err) = self
                        .store
                        .mark_circuit_maxout_notified(event_id, Utc::now())
                        .await
                    {
                        tracing::error!(error = %err, event_id, "cannot record that the customer was emailed");
                    }
                } else if let Some(claim) = claim {
                    // Not told: the next event tries again, unless a later one was claimed
                    // meanwhile (the cooldown then counts from that one).
                    if let Err(err) = self
                        .store
                        .release_customer_email(&circuit.circuit_id, &claim)
                        .await
                    {
                        tracing::error!(error = %err, event_id, "cannot give back the customer email claim");
                    }
                }
                outcome
            }
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
        let latest = self.latest_try().get(&circuit.circuit_id) == Some(&event.start);
        if tried && latest {
            self.tell_noc(circuit, &outcome).await;
        }
    }

    /// A customer who could not be told is the NOC's problem (a `customer_not_notified`
    /// anomaly for the circuit); one who was told clears it.
    async fn tell_noc(&self, circuit: &CircuitRecord, outcome: &NotificationRecord) {
        let Some(engine) = &self.engine else {
            return;
        };
        let signal = if outcome.status == "sent" {
            Signal::Clear {
                kind: AnomalyKind::CustomerNotNotified,
                subject: circuit.circuit_id.clone(),
            }
        } else {
            let why = outcome.error.clone().unwrap_or_default();
            Signal::Firing(NewAnomaly {
                kind: AnomalyKind::CustomerNotNotified,
                subject: circuit.circuit_id.clone(),
                group_key: circuit.account.clone(),
                severity: Severity::High,
                summary: format!(
                    "the customer of circuit {} was not emailed about its maxout: {why}",
                    circuit.circuit_id
                ),
                details: serde_json::json!({
                    "account": circuit.account, "status": outcome.status, "error": why,
                }),
            })
        };
        if let Err(err) = engine.apply(vec![signal], Utc::now()).await {
            tracing::error!(circuit = %circuit.circuit_id, error = %err, "cannot raise the customer-not-notified anomaly");
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
        let found = match &circuit.account {
            Some(id) => self.store.account(id).await,
            None => Ok(None),
        };
        let contact = match (&circuit.account, found) {
            (None, _) => Err("the circuit has no account".to_string()),
            (Some(id), Ok(None)) => Err(format!("account {id} does not exist")),
            (Some(id), Err(err)) => Err(format!("cannot read account {id}: {err}")),
            (Some(id), Ok(Some(account))) => match account.contact_email.as_deref() {
                None => Err(format!("account {id} has no contact email")),
                Some(email) => format!(
                    "{} <{email}>",
                    account.contact_name.as_deref().unwrap_or(&account.name)
                )
                .parse::<Mailbox>()
                .map(|mailbox| (account.clone(), mailbox))
                .map_err(|err| format!("account {id}'s contact email is not usable: {err}")),
            },
        };
        let (account, contact) = match contact {
            Ok(found) => found,
            Err(why) => {
                // The NOC hears of it (`tell_noc`) and fixes the account, so that the
                // customer hears next time.
                tracing::error!(
                    circuit = %circuit.circuit_id,
                    account = circuit.account.as_deref().unwrap_or("(none)"),
                    reason = %why,
                    "circuit maxout with no customer contact to email"
                );
                return record(String::new(), String::new(), "no_contact", Some(why), 0);
            }
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
            // The words follow the one rule (`detect/circuit.rs`): the ceiling itself is `burst`.
            match (event.severity, circuit.burst_mbps) {
                (MaxoutClass::Burst, _) => {
                    "at or over the provisioned rate, within the burst ceiling".into()
                }
                (MaxoutClass::Maxout, Some(b)) if b > circuit.provisioned_mbps => {
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
