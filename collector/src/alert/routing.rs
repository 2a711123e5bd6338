//! `[alerting]`: who hears about which anomaly, when, and how often. Routes match by kind and
//! minimum severity; every matching route contributes its recipients. Escalation steps send to
//! more people (at one severity higher) if nobody acknowledged in time.

use crate::domain::alerting::AnomalyKind;
use crate::storage::alerting::{AlertEvent, NewAnomaly, PlannedAlert, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Wait this long after an anomaly opens before notifying: one that clears within it
    /// sends nothing.
    pub group_wait_secs: u64,
    /// Notify again this often while an anomaly stays open and unacknowledged (0: never).
    pub repeat_secs: u64,
    /// An anomaly whose condition cleared resolves after it stays clear this long.
    pub resolve_after_secs: u64,
    /// An agent that has sent nothing for this long is an `agent_silent` anomaly (0: off).
    pub agent_silent_secs: u64,
    /// How long a collector holds a claimed notification before another may take it over.
    pub claim_lease_secs: u64,
    /// Failed sends are retried this many times with exponential backoff from `backoff_ms`.
    pub retries: u32,
    pub backoff_ms: u64,
    /// This collector's name in claims (default: host name and process id).
    pub instance: Option<String>,
    pub routes: Vec<RouteConfig>,
    /// A device whose `device_offline` mutes the other anomalies of its agent.
    pub gateways: Vec<GatewayConfig>,
    /// One-off events (new device, MAC or ports changed) resolve this long after they open
    /// (0: only when acknowledged or resolved by hand).
    pub one_off_resolve_secs: u64,
    pub telegram: Option<crate::alert::telegram::TelegramConfig>,
    /// Webhook receivers (Alertmanager's webhook body, optionally HMAC-signed), by name.
    pub webhooks: Vec<crate::alert::webhook::EndpointConfig>,
    /// Alertmanagers to push to (their v2 API), by name.
    pub alertmanagers: Vec<crate::alert::webhook::EndpointConfig>,
    /// The dashboard's address as people reach it, for links in webhooks and Alertmanager.
    pub external_url: Option<String>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            group_wait_secs: 2,
            repeat_secs: 4 * 3600,
            resolve_after_secs: 0,
            agent_silent_secs: 120,
            claim_lease_secs: 60,
            retries: 8,
            backoff_ms: 1000,
            instance: None,
            routes: Vec::new(),
            gateways: Vec::new(),
            one_off_resolve_secs: 24 * 3600,
            telegram: None,
            webhooks: Vec::new(),
            alertmanagers: Vec::new(),
            external_url: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    /// Anomaly kinds this route takes; empty for all.
    #[serde(default)]
    pub kinds: Vec<AnomalyKind>,
    #[serde(default = "lowest")]
    pub min_severity: Severity,
    #[serde(default)]
    pub email: Vec<String>,
    /// Telegram chat ids (numbers or `@channel`).
    #[serde(default)]
    pub telegram: Vec<String>,
    /// Names of `[[alerting.webhooks]]`.
    #[serde(default)]
    pub webhook: Vec<String>,
    /// Names of `[[alerting.alertmanagers]]`.
    #[serde(default)]
    pub alertmanager: Vec<String>,
    #[serde(default)]
    pub escalation: Vec<EscalationConfig>,
}

impl RouteConfig {
    /// Every `(channel, recipient)` the route and its escalation steps send to, once each.
    pub fn recipients(&self) -> Vec<(&'static str, String)> {
        let mut all: Vec<(&'static str, String)> = Vec::new();
        let steps = std::iter::once(channels(
            &self.email,
            &self.telegram,
            &self.webhook,
            &self.alertmanager,
        ))
        .chain(self.escalation.iter().map(EscalationConfig::channels));
        for (channel, names) in steps.flatten() {
            for name in names {
                if !all.iter().any(|(c, n)| *c == channel && n == name) {
                    all.push((channel, name.clone()));
                }
            }
        }
        all
    }

    /// Each channel with the recipients the route itself (not its escalation) names.
    fn channels(&self) -> [(&'static str, &[String]); 4] {
        channels(
            &self.email,
            &self.telegram,
            &self.webhook,
            &self.alertmanager,
        )
    }
}

impl EscalationConfig {
    fn channels(&self) -> [(&'static str, &[String]); 4] {
        channels(
            &self.email,
            &self.telegram,
            &self.webhook,
            &self.alertmanager,
        )
    }
}

/// The outbox's channel names with their recipient lists, in one order everywhere.
fn channels<'a>(
    email: &'a [String],
    telegram: &'a [String],
    webhook: &'a [String],
    alertmanager: &'a [String],
) -> [(&'static str, &'a [String]); 4] {
    [
        ("email", email),
        ("telegram", telegram),
        ("webhook", webhook),
        ("alertmanager", alertmanager),
    ]
}

fn lowest() -> Severity {
    Severity::Low
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// Unacknowledged this long after opening.
    pub after_secs: u64,
    #[serde(default)]
    pub email: Vec<String>,
    #[serde(default)]
    pub telegram: Vec<String>,
    #[serde(default)]
    pub webhook: Vec<String>,
    #[serde(default)]
    pub alertmanager: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub agent: String,
    pub address: String,
}

impl AlertingConfig {
    /// Checks the routes; errors name the field.
    pub fn check(&self, telegram_on: bool, email_on: bool) -> Result<(), String> {
        if self.claim_lease_secs == 0 {
            return Err("alerting.claim_lease_secs: must be at least 1".into());
        }
        if self.backoff_ms == 0 {
            return Err("alerting.backoff_ms: must be at least 1".into());
        }
        if let Some(url) = &self.external_url {
            // Alertmanager refuses an alert whose generatorURL is not an absolute URL.
            let absolute = reqwest::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !absolute {
                return Err(format!(
                    "alerting.external_url: {url:?} is not an http:// or https:// URL"
                ));
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            let at = format!("alerting.routes[{i}]");
            if route.kinds.contains(&AnomalyKind::TestNotification) {
                return Err(format!(
                    "{at}.kinds: test_notification is sent by `netwarden routes test`, never detected"
                ));
            }
            let mut email = route.email.clone();
            let mut telegram = route.telegram.clone();
            let mut webhook = route.webhook.clone();
            let mut alertmanager = route.alertmanager.clone();
            for (j, step) in route.escalation.iter().enumerate() {
                if step.after_secs == 0 {
                    return Err(format!(
                        "{at}.escalation[{j}].after_secs: must be at least 1"
                    ));
                }
                email.extend(step.email.iter().cloned());
                telegram.extend(step.telegram.iter().cloned());
                webhook.extend(step.webhook.iter().cloned());
                alertmanager.extend(step.alertmanager.iter().cloned());
            }
            for (field, names, endpoints, table) in [
                ("webhook", &webhook, &self.webhooks, "[[alerting.webhooks]]"),
                (
                    "alertmanager",
                    &alertmanager,
                    &self.alertmanagers,
                    "[[alerting.alertmanagers]]",
                ),
            ] {
                if let Some(name) = names
                    .iter()
                    .find(|n| !endpoints.iter().any(|e| &e.name == *n))
                {
                    return Err(format!("{at}.{field}: {name:?} is not named in {table}"));
                }
            }
            if !email.is_empty() && !email_on {
                return Err(format!(
                    "{at}.email: routes email but [email] smtp_host is not set"
                ));
            }
            if !telegram.is_empty() && !telegram_on {
                return Err(format!(
                    "{at}.telegram: routes to Telegram but [alerting.telegram] is not set"
                ));
            }
            for address in &email {
                address
                    .parse::<lettre::message::Mailbox>()
                    .map_err(|e| format!("{at}.email: {address:?} is not an address: {e}"))?;
            }
            for chat in &telegram {
                let valid = chat.parse::<i64>().is_ok_and(|id| id != 0)
                    || (chat.starts_with('@') && chat.len() > 1);
                if !valid {
                    return Err(format!(
                        "{at}.telegram: {chat:?} is not a chat id (a number or @channel)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The notifications an anomaly gets when it opens.
    pub fn plan(&self, anomaly: &NewAnomaly) -> Vec<PlannedAlert> {
        let repeat = if anomaly.kind.is_one_off() {
            Duration::ZERO
        } else {
            Duration::from_secs(self.repeat_secs)
        };
        let group_wait = Duration::from_secs(self.group_wait_secs);
        let mut seen = BTreeSet::new();
        let mut plan = Vec::new();
        let mut add = |channel: &str, recipient: &str, event, step, severity, delay, repeat| {
            if seen.insert((channel.to_string(), recipient.to_string(), event, step)) {
                plan.push(PlannedAlert {
                    channel: channel.to_string(),
                    recipient: recipient.to_string(),
                    event,
                    step,
                    severity,
                    delay,
                    repeat,
                });
            }
        };
        for route in &self.routes {
            let kind_matches = route.kinds.is_empty() || route.kinds.contains(&anomaly.kind);
            if !kind_matches || anomaly.severity < route.min_severity {
                continue;
            }
            for (channel, names) in route.channels() {
                for to in names {
                    add(
                        channel,
                        to,
                        AlertEvent::Open,
                        0,
                        anomaly.severity,
                        group_wait,
                        repeat,
                    );
                }
            }
            for (i, step) in route.escalation.iter().enumerate() {
                let delay = Duration::from_secs(step.after_secs).max(group_wait);
                let severity = anomaly.severity.raised();
                let step_no = i as i32 + 1;
                for (channel, names) in step.channels() {
                    for to in names {
                        add(
                            channel,
                            to,
                            AlertEvent::Escalate,
                            step_no,
                            severity,
                            delay,
                            Duration::ZERO,
                        );
                    }
                }
            }
        }
        plan
    }

    /// The device whose outage mutes the rest of `agent`'s anomalies, if one is configured.
    pub fn gateway_of(&self, agent: &str) -> Option<String> {
        self.gateways
            .iter()
            .find(|g| g.agent == agent)
            .map(|g| format!("{}/{}", g.agent, g.address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anomaly(kind: AnomalyKind, severity: Severity) -> NewAnomaly {
        NewAnomaly {
            kind,
            subject: "a/10.0.0.1".into(),
            group_key: Some("a".into()),
            severity,
            summary: "x".into(),
            details: serde_json::Value::Null,
        }
    }

    fn config() -> AlertingConfig {
        AlertingConfig {
            routes: vec![
                RouteConfig {
                    name: "noc".into(),
                    kinds: vec![],
                    min_severity: Severity::Medium,
                    email: vec!["noc@example.test".into()],
                    telegram: vec!["-100200".into()],
                    webhook: vec![],
                    alertmanager: vec![],
                    escalation: vec![EscalationConfig {
                        after_secs: 900,
                        email: vec!["lead@example.test".into()],
                        telegram: vec![],
                        webhook: vec![],
                        alertmanager: vec![],
                    }],
                },
                RouteConfig {
                    name: "inventory".into(),
                    kinds: vec![AnomalyKind::NewDevice],
                    min_severity: Severity::Low,
                    email: vec!["noc@example.test".into(), "assets@example.test".into()],
                    telegram: vec![],
                    webhook: vec![],
                    alertmanager: vec![],
                    escalation: vec![],
                },
            ],
            ..AlertingConfig::default()
        }
    }

    #[test]
    fn routes_match_kind_and_severity_and_merge_recipients() {
        let c = config();
        assert!(c.check(true, true).is_ok());
        let plan = c.plan(&anomaly(AnomalyKind::DeviceOffline, Severity::Critical));
        let summary: Vec<_> = plan
            .iter()
            .map(|p| {
                (
                    p.channel.as_str(),
                    p.recipient.as_str(),
                    p.event,
                    p.delay.as_secs(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("email", "noc@example.test", AlertEvent::Open, 2),
                ("telegram", "-100200", AlertEvent::Open, 2),
                ("email", "lead@example.test", AlertEvent::Escalate, 900),
            ]
        );
        assert!(c
            .plan(&anomaly(AnomalyKind::Jitter, Severity::Low))
            .is_empty());
        let new_device = c.plan(&anomaly(AnomalyKind::NewDevice, Severity::Low));
        assert_eq!(new_device.len(), 2, "{new_device:?}");
        assert!(
            new_device.iter().all(|p| p.repeat.is_zero()),
            "one-offs do not repeat"
        );
    }

    #[test]
    fn webhooks_and_alertmanagers_are_recipients_like_any_other() {
        let mut c = config();
        c.routes[0].webhook = vec!["bridge".into()];
        c.routes[0].alertmanager = vec!["am".into()];
        c.routes[0].escalation[0].webhook = vec!["bridge".into(), "oncall".into()];
        let plan = c.plan(&anomaly(AnomalyKind::DeviceOffline, Severity::High));
        let sent: Vec<_> = plan
            .iter()
            .map(|p| (p.channel.as_str(), p.recipient.as_str(), p.event))
            .collect();
        assert!(
            sent.contains(&("webhook", "bridge", AlertEvent::Open)),
            "{sent:?}"
        );
        assert!(sent.contains(&("alertmanager", "am", AlertEvent::Open)));
        assert!(sent.contains(&("webhook", "oncall", AlertEvent::Escalate)));
        assert!(sent.contains(&("webhook", "bridge", AlertEvent::Escalate)));
        // Each recipient once, escalation steps included, for test notifications.
        let recipients = c.routes[0].recipients();
        assert_eq!(
            recipients,
            [
                ("email", "noc@example.test".to_string()),
                ("telegram", "-100200".to_string()),
                ("webhook", "bridge".to_string()),
                ("alertmanager", "am".to_string()),
                ("email", "lead@example.test".to_string()),
                ("webhook", "oncall".to_string()),
            ]
        );
    }

    #[test]
    fn bad_routes_are_named() {
        // A kind that is not one is refused when the configuration is read.
        let refused = serde_json::from_value::<RouteConfig>(
            serde_json::json!({"name": "noc", "kinds": ["offline"]}),
        )
        .unwrap_err()
        .to_string();
        assert!(refused.contains("unknown variant `offline`"), "{refused}");
        assert!(refused.contains("`device_offline`"), "{refused}");
        let mut c = config();
        c.routes[0].telegram = vec!["ops".into()];
        assert!(c.check(true, true).unwrap_err().contains("not a chat id"));
        assert!(config()
            .check(false, true)
            .unwrap_err()
            .contains("[alerting.telegram]"));
        assert!(config().check(true, false).unwrap_err().contains("[email]"));
        let mut c = config();
        c.routes[0].escalation[0].webhook = vec!["pager".into()];
        assert_eq!(
            c.check(true, true).unwrap_err(),
            "alerting.routes[0].webhook: \"pager\" is not named in [[alerting.webhooks]]"
        );
        let mut c = config();
        c.routes[1].alertmanager = vec!["am".into()];
        assert!(c
            .check(true, true)
            .unwrap_err()
            .starts_with("alerting.routes[1].alertmanager: \"am\""));
        let mut c = config();
        c.routes[1].email = vec!["not an address".into()];
        assert!(c
            .check(true, true)
            .unwrap_err()
            .starts_with("alerting.routes[1].email"));
    }
}
