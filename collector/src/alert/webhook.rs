//! Outputs every pager understands. `webhook`: a JSON POST in the shape Alertmanager's own
//! webhook receiver sends (version 4), so receivers written for Alertmanager (PagerDuty and
//! Opsgenie bridges, Slack relays, in-house scripts) work unchanged, signed with HMAC-SHA256
//! when a secret is set. `alertmanager`: a push to an Alertmanager's v2 API
//! (`POST /api/v2/alerts`), so it routes on to whatever it already pages. Both go through the
//! outbox, so failures are retried with backoff and a crash loses nothing.

use super::dispatch::{Attempt, Channel};
use crate::domain::alerting::{AlertEvent, AlertJob, Anomaly, AnomalyKind, Severity};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The signature header: `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "x-netwarden-signature";
/// Unix seconds the signature was made at (part of what is signed, so a replay is visible).
pub const TIMESTAMP_HEADER: &str = "x-netwarden-timestamp";
/// Alertmanager's "no end" for a firing alert in its webhook body.
const NO_END: &str = "0001-01-01T00:00:00Z";

/// `[[alerting.webhooks]]` and `[[alerting.alertmanagers]]`: an endpoint routes name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub name: String,
    /// A webhook's URL, or an Alertmanager's base URL (`http://alertmanager:9093`).
    pub url: String,
    /// A file holding the HMAC secret (webhooks only); unset: unsigned.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Or a variable holding it.
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    10
}

/// Which body an endpoint gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Alertmanager's webhook receiver body, one alert per message.
    Webhook,
    /// Alertmanager's v2 API: a list of one postable alert.
    Alertmanager,
}

impl Format {
    fn channel(self) -> &'static str {
        match self {
            Format::Webhook => "webhook",
            Format::Alertmanager => "alertmanager",
        }
    }
}

/// A checked endpoint; `Debug` leaves the secret out.
#[derive(Clone)]
pub struct Endpoint {
    pub name: String,
    url: reqwest::Url,
    secret: Option<Vec<u8>>,
    timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a receiver's key (in its path or query): only its host is shown.
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("host", &self.url.host_str())
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

impl Endpoint {
    /// `field` is where the entry sits (`alerting.webhooks[0]`); errors are `(field, message)`.
    pub fn from_config(
        config_path: &Path,
        field: &str,
        format: Format,
        raw: &EndpointConfig,
    ) -> Result<Self, (String, String)> {
        let bad = |name: &str, message: String| (format!("{field}.{name}"), message);
        if raw.name.is_empty()
            || raw.name.len() > 64
            || !raw
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(bad(
                "name",
                "must be 1 to 64 letters, digits, '-', '_' or '.'".into(),
            ));
        }
        // Not echoed: a receiver's URL may hold its key.
        let mut url =
            reqwest::Url::parse(&raw.url).map_err(|e| bad("url", format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad(
                "url",
                "must be an http or https URL with a host".into(),
            ));
        }
        if format == Format::Alertmanager {
            let base = url.path().trim_end_matches('/').to_string();
            url.set_path(&format!("{base}/api/v2/alerts"));
        }
        let secret = match (&raw.secret_file, &raw.secret_env) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(bad(
                    "secret_file",
                    "set secret_file or secret_env, not both".into(),
                ))
            }
            (Some(file), None) => {
                let file = netwarden_shared::config::resolve(config_path, file);
                Some(
                    std::fs::read_to_string(&file)
                        .map_err(|e| bad("secret_file", format!("{}: {e}", file.display())))?,
                )
            }
            (None, Some(var)) => Some(
                std::env::var(var)
                    .map_err(|_| bad("secret_env", format!("the variable {var} is not set")))?,
            ),
        };
        let secret_field = if raw.secret_env.is_some() {
            "secret_env"
        } else {
            "secret_file"
        };
        let secret = match secret.map(|s| s.trim().to_string()) {
            Some(s) if s.len() < 16 => {
                return Err(bad(
                    secret_field,
                    "the secret must be at least 16 characters".into(),
                ))
            }
            other => other.map(String::into_bytes),
        };
        if !(1..=120).contains(&raw.timeout_secs) {
            return Err(bad("timeout_secs", "must be between 1 and 120".into()));
        }
        Ok(Endpoint {
            name: raw.name.clone(),
            url,
            secret,
            timeout: Duration::from_secs(raw.timeout_secs),
        })
    }
}

/// One channel for every endpoint of a format; a notification's recipient is the endpoint's
/// name.
pub struct WebhookChannel {
    format: Format,
    endpoints: HashMap<String, Endpoint>,
    client: reqwest::Client,
    /// Where the dashboard is, for links (`externalURL`, `generatorURL`); may be empty.
    external_url: String,
    /// How long a pushed alert fires without being pushed again.
    firing_for: chrono::Duration,
}

impl WebhookChannel {
    /// `repeat` is `[alerting] repeat_secs`: a pushed alert fires for twice that (at least a
    /// day), as Alertmanager resolves an alert nobody pushes again after its `endsAt`.
    pub fn new(
        format: Format,
        endpoints: Vec<Endpoint>,
        external_url: &str,
        repeat: Duration,
    ) -> Result<Self, String> {
        // A redirect would turn the POST into a GET and carry the signature to another host.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("netwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the {} client: {e}", format.channel()))?;
        Ok(WebhookChannel {
            format,
            endpoints: endpoints.into_iter().map(|e| (e.name.clone(), e)).collect(),
            client,
            external_url: external_url.trim_end_matches('/').to_string(),
            firing_for: chrono::Duration::from_std(repeat.saturating_mul(2))
                .unwrap_or(chrono::Duration::days(365))
                .clamp(chrono::Duration::hours(24), chrono::Duration::days(365)),
        })
    }

    /// The body `job` is sent as.
    pub fn body(&self, job: &AlertJob, anomaly: &Anomaly, now: DateTime<Utc>) -> Value {
        let alert = alert_object(job, anomaly, &self.external_url, now);
        match self.format {
            Format::Alertmanager => {
                // A postable alert has no status or fingerprint: Alertmanager derives them.
                let mut alert = alert;
                if let Some(fields) = alert.as_object_mut() {
                    fields.remove("status");
                    fields.remove("fingerprint");
                    if anomaly.kind == AnomalyKind::TestNotification {
                        // A test should not page anyone for a day: gone in five minutes.
                        let ends = now + chrono::Duration::minutes(5);
                        fields.insert("endsAt".into(), json!(rfc3339(ends)));
                    } else if job.alert.event != AlertEvent::Resolve {
                        // Alertmanager resolves an alert nobody pushes again after its own
                        // resolve_timeout (5 minutes); this one fires past the next repeat,
                        // and a resolve notification ends it at once.
                        fields.insert("endsAt".into(), json!(rfc3339(now + self.firing_for)));
                    } else {
                        // Severity is a label, so part of the alert's identity, and an
                        // anomaly may have been pushed at more than one (escalation raises
                        // it, so may a worse detection): the resolve ends it at every one.
                        let all = Severity::ALL.iter().map(|severity| {
                            let mut one = alert.clone();
                            one["labels"]["severity"] = json!(severity.as_str());
                            one
                        });
                        return Value::Array(all.collect());
                    }
                }
                json!([alert])
            }
            Format::Webhook => {
                let status = alert["status"].clone();
                json!({
                    "version": "4",
                    "groupKey": format!("{{}}:{{anomaly=\"{}\"}}", anomaly.id),
                    "truncatedAlerts": 0,
                    "status": status,
                    "receiver": job.alert.recipient,
                    "groupLabels": {"alertname": anomaly.kind.as_str()},
                    "commonLabels": alert["labels"],
                    "commonAnnotations": alert["annotations"],
                    "externalURL": self.external_url,
                    "alerts": [alert],
                })
            }
        }
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One alert the Alertmanager way: labels identify it (the same anomaly always has the same
/// labels, so Alertmanager dedups repeats), annotations describe it.
fn alert_object(
    job: &AlertJob,
    anomaly: &Anomaly,
    external_url: &str,
    now: DateTime<Utc>,
) -> Value {
    let resolved = job.alert.event == AlertEvent::Resolve;
    let mut labels = Map::new();
    labels.insert("alertname".into(), json!(anomaly.kind.as_str()));
    labels.insert("severity".into(), json!(job.alert.severity.as_str()));
    labels.insert("subject".into(), json!(anomaly.subject));
    labels.insert("anomaly_id".into(), json!(anomaly.id.to_string()));
    labels.insert("source".into(), json!("netwarden"));
    if let Some(group) = &anomaly.group_key {
        labels.insert("group".into(), json!(group));
    }
    let mut annotations = Map::new();
    annotations.insert("summary".into(), json!(anomaly.summary));
    annotations.insert("event".into(), json!(job.alert.event.as_str()));
    if !anomaly.details.is_null() {
        annotations.insert("details".into(), json!(anomaly.details.to_string()));
    }
    if let Some(by) = &anomaly.acknowledged_by {
        annotations.insert("acknowledged_by".into(), json!(by));
    }
    if let Some(note) = &anomaly.acknowledge_note {
        annotations.insert("acknowledge_note".into(), json!(note));
    }
    let ends = if resolved {
        rfc3339(anomaly.resolved_at.unwrap_or(now))
    } else {
        NO_END.to_string()
    };
    let fingerprint = Sha256::digest(format!("{}\0{}", anomaly.kind.as_str(), anomaly.subject));
    let generator = if external_url.is_empty() {
        String::new()
    } else {
        format!("{external_url}/#anomaly/{}", anomaly.id)
    };
    json!({
        "status": if resolved { "resolved" } else { "firing" },
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(anomaly.opened_at),
        "endsAt": ends,
        "generatorURL": generator,
        "fingerprint": hex(&fingerprint[..8]),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        self.format.channel()
    }

    async fn deliver(&self, job: &AlertJob) -> Attempt {
        let Some(anomaly) = &job.anomaly else {
            return Attempt::Permanent(format!(
                "notification {} on channel {} names no anomaly",
                job.alert.id, job.alert.channel
            ));
        };
        let Some(endpoint) = self.endpoints.get(&job.alert.recipient) else {
            return Attempt::Permanent(format!(
                "no {} named {:?} is configured",
                self.format.channel(),
                job.alert.recipient
            ));
        };
        let now = Utc::now();
        let body = match serde_json::to_vec(&self.body(job, anomaly, now)) {
            Ok(body) => body,
            Err(e) => return Attempt::Permanent(format!("cannot encode the body: {e}")),
        };
        send(&self.client, endpoint, body, now.timestamp()).await
    }
}

/// POSTs `body` to `endpoint`, signed when it has a secret, and says what came of it.
pub async fn send(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    body: Vec<u8>,
    timestamp: i64,
) -> Attempt {
    let mut request = client
        .post(endpoint.url.clone())
        .timeout(endpoint.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(secret) = &endpoint.secret {
        request = request
            .header(SIGNATURE_HEADER, signature(secret, timestamp, &body))
            .header(TIMESTAMP_HEADER, timestamp.to_string());
    }
    let response = match request.body(body).send().await {
        Ok(response) => response,
        // The URL may carry credentials (a receiver's key in its path): never echo it.
        Err(e) => {
            return Attempt::Transient(format!(
                "{}: {}",
                endpoint.name,
                netwarden_shared::tls::error_chain(&e.without_url())
            ))
        }
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Sent;
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let text = response.text().await.unwrap_or_default();
    let said = netwarden_shared::clean_text(&text, 300);
    let error = format!("{} answered {status}: {said}", endpoint.name);
    match status.as_u16() {
        429 => match retry_after {
            Some(wait) => Attempt::Defer(Duration::from_secs(wait.clamp(1, 3600))),
            None => Attempt::Transient(error),
        },
        408 | 500..=599 => Attempt::Transient(error),
        _ => Attempt::Permanent(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_and_body() {
        // Computed apart (Python's hmac module) over "<timestamp>.<body>".
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, br#"{"a":1}"#),
            "sha256=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
        assert_eq!(
            signature(b"Jefe", 0, b"what do ya want for nothing?"),
            "sha256=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
        // The HMAC itself: RFC 4231 test case 2.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(signature(b"k", 1, b"body"), signature(b"k", 2, b"body"));
        assert_ne!(signature(b"k", 1, b"body"), signature(b"j", 1, b"body"));
    }

    #[test]
    fn endpoints_are_checked_and_alertmanager_urls_get_the_api_path() {
        let raw = |name: &str, url: &str| EndpointConfig {
            name: name.into(),
            url: url.into(),
            secret_file: None,
            secret_env: None,
            timeout_secs: 10,
        };
        let path = Path::new("/etc/netwarden/collector.toml");
        let am = Endpoint::from_config(
            path,
            "alerting.alertmanagers[0]",
            Format::Alertmanager,
            &raw("am", "http://am.example:9093/"),
        )
        .unwrap();
        assert_eq!(am.url.as_str(), "http://am.example:9093/api/v2/alerts");
        let err = Endpoint::from_config(
            path,
            "alerting.webhooks[1]",
            Format::Webhook,
            &raw("bad name", "http://x"),
        )
        .unwrap_err();
        assert_eq!(err.0, "alerting.webhooks[1].name");
        let err = Endpoint::from_config(
            path,
            "alerting.webhooks[0]",
            Format::Webhook,
            &raw("hook", "ftp://x"),
        )
        .unwrap_err();
        assert_eq!(err.0, "alerting.webhooks[0].url");
    }
}
