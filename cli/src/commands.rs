//! The subcommands: each builds one REST call and prints what comes back.

use crate::api::Api;
use crate::output::{self, Column, Format};
use chrono::Utc;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Page size and offset, as the API takes them.
#[derive(Args)]
pub struct Page {
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Skip this many first.
    #[arg(long, default_value_t = 0)]
    offset: u32,
}

impl Page {
    fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("limit", self.limit.to_string()),
            ("offset", self.offset.to_string()),
        ]
    }
}

/// Adds `name=value` to the query when the value is given.
fn with(query: &mut Vec<(&'static str, String)>, name: &'static str, value: &Option<String>) {
    if let Some(value) = value {
        query.push((name, value.clone()));
    }
}

#[derive(Subcommand)]
pub enum Devices {
    /// Devices, by id.
    List {
        /// Only those this agent (site) watches.
        #[arg(long)]
        agent: Option<String>,
        /// Only those in this status: online, degraded or offline.
        #[arg(long)]
        status: Option<String>,
        /// Only those of this type (`unassigned`: none given).
        #[arg(long = "type")]
        device_type: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// One device with its open ports and uptime.
    Show { id: i64 },
}

const DEVICE_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("AGENT", "agent_id"),
    ("ADDRESS", "address"),
    ("NAME", "hostname"),
    ("STATUS", "status"),
    ("LOSS %", "last_loss_pct"),
    ("RTT MS", "last_rtt_ms"),
    ("LAST SEEN", "last_seen"),
];

impl Devices {
    pub async fn run(self, api: &Api, out: Format) -> anyhow::Result<()> {
        match self {
            Devices::List {
                agent,
                status,
                device_type,
                page,
            } => {
                let mut query = page.query();
                with(&mut query, "agent", &agent);
                with(&mut query, "status", &status);
                with(&mut query, "type", &device_type);
                let devices = api.get("api/devices", &query).await?;
                output::list(out, &devices, DEVICE_COLUMNS);
            }
            Devices::Show { id } => {
                output::one(out, &api.get(&format!("api/devices/{id}"), &[]).await?);
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum Anomalies {
    /// Anomalies, newest first.
    List {
        /// open, acknowledged or resolved.
        #[arg(long)]
        state: Option<String>,
        /// critical, high, medium or low.
        #[arg(long)]
        severity: Option<String>,
        /// The kind, e.g. device_offline, packet_loss, circuit_maxout.
        #[arg(long)]
        kind: Option<String>,
        /// The subject, exactly (an address, a POI code, a circuit id).
        #[arg(long)]
        subject: Option<String>,
        /// The group (`agent:<id>`, a POI code or an account).
        #[arg(long)]
        group: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Acknowledges an open anomaly: its reminders and escalations stop.
    Ack(Action),
    /// Resolves an anomaly by hand.
    Resolve(Action),
}

#[derive(Args)]
pub struct Action {
    /// The anomaly's id.
    id: i64,
    /// Why, for the record.
    #[arg(long)]
    note: Option<String>,
    /// Who (default: the token's name).
    #[arg(long)]
    by: Option<String>,
}

impl Action {
    fn body(&self) -> Value {
        let mut body = Map::new();
        if let Some(note) = &self.note {
            body.insert("note".into(), json!(note));
        }
        if let Some(by) = &self.by {
            body.insert("by".into(), json!(by));
        }
        Value::Object(body)
    }
}

const ANOMALY_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("SEVERITY", "severity"),
    ("STATE", "state"),
    ("KIND", "kind"),
    ("SUBJECT", "subject"),
    ("OPENED", "opened_at"),
    ("SUMMARY", "summary"),
];

impl Anomalies {
    pub async fn run(self, api: &Api, out: Format) -> anyhow::Result<()> {
        match self {
            Anomalies::List {
                state,
                severity,
                kind,
                subject,
                group,
                page,
            } => {
                let mut query = page.query();
                with(&mut query, "state", &state);
                with(&mut query, "severity", &severity);
                with(&mut query, "kind", &kind);
                with(&mut query, "subject", &subject);
                with(&mut query, "group", &group);
                let anomalies = api.get("api/anomalies", &query).await?;
                output::list(out, &anomalies, ANOMALY_COLUMNS);
            }
            Anomalies::Ack(action) => {
                let path = format!("api/anomalies/{}/acknowledge", action.id);
                output::one(out, &api.post(&path, &action.body()).await?);
            }
            Anomalies::Resolve(action) => {
                let path = format!("api/anomalies/{}/resolve", action.id);
                output::one(out, &api.post(&path, &action.body()).await?);
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum Silences {
    /// Mutes the notifications of matching anomalies for a while (at least one matcher).
    #[command(group(ArgGroup::new("matcher").required(true).multiple(true)
        .args(["kind", "subject", "group", "severity"])))]
    Add {
        /// How long from now, e.g. 30m, 2h, 1d, 1h30m.
        #[arg(long, value_parser = parse_duration)]
        duration: Duration,
        /// Anomalies of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Anomalies of this subject; `*` matches any run of characters.
        #[arg(long)]
        subject: Option<String>,
        /// Anomalies of this group.
        #[arg(long)]
        group: Option<String>,
        /// Anomalies of this severity.
        #[arg(long)]
        severity: Option<String>,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
        /// Who (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Silences that have not ended.
    List,
    /// Ends a silence now.
    Expire { id: i64 },
}

/// A duration such as `2h` or `1h30m`: more than nothing, at most ten years.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration =
        humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 30m, 2h, 1d)"))?;
    if duration.is_zero() {
        return Err("must be more than nothing".into());
    }
    if duration > Duration::from_secs(10 * 366 * 86_400) {
        return Err("at most ten years".into());
    }
    Ok(duration)
}

const SILENCE_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("KIND", "kind"),
    ("SUBJECT", "subject"),
    ("GROUP", "group_key"),
    ("SEVERITY", "severity"),
    ("ENDS", "ends_at"),
    ("BY", "created_by"),
    ("COMMENT", "comment"),
];

impl Silences {
    pub async fn run(self, api: &Api, out: Format) -> anyhow::Result<()> {
        match self {
            Silences::Add {
                duration,
                kind,
                subject,
                group,
                severity,
                comment,
                by,
            } => {
                let now = Utc::now();
                let ends = now + chrono::Duration::from_std(duration)?;
                let by = by
                    .or_else(|| std::env::var("USER").ok())
                    .filter(|b| !b.trim().is_empty())
                    .unwrap_or_else(|| "netwarden-cli".into());
                let body = json!({
                    "kind": kind, "subject": subject, "group": group, "severity": severity,
                    "starts_at": now, "ends_at": ends, "created_by": by, "comment": comment,
                });
                output::one(out, &api.post("api/silences", &body).await?);
            }
            Silences::List => {
                let silences = api.get("api/silences", &[]).await?;
                output::list(out, &silences, SILENCE_COLUMNS);
            }
            Silences::Expire { id } => {
                api.delete(&format!("api/silences/{id}")).await?;
                match out {
                    Format::Json => println!("{}", json!({"expired": id})),
                    Format::Table => println!("silence {id} expired"),
                }
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum Agents {
    /// Agents that have reported, with their backlog.
    List,
}

const AGENT_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("LAST SEEN", "last_seen"),
    ("RESULTS", "results_received"),
    ("BATCHES", "batches_received"),
    ("BACKLOG", "buffer_backlog"),
    ("DROPPED", "dropped_total"),
];

impl Agents {
    pub async fn run(self, api: &Api, out: Format) -> anyhow::Result<()> {
        match self {
            Agents::List => {
                let agents = api.get("api/agents", &[]).await?;
                output::list(out, &agents, AGENT_COLUMNS);
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum Routes {
    /// The alert routes in the collector's [alerting], with every recipient.
    List,
    /// Sends a test notification to each recipient of a route, now, and prints what each came
    /// to; exits 6 when any was not sent.
    Test {
        /// The route's name.
        name: String,
    },
}

const ROUTE_COLUMNS: &[Column] = &[
    ("NAME", "name"),
    ("MIN SEVERITY", "min_severity"),
    ("KINDS", "kinds"),
    ("RECIPIENTS", "recipients"),
];

const OUTCOME_COLUMNS: &[Column] = &[
    ("CHANNEL", "channel"),
    ("RECIPIENT", "recipient"),
    ("OUTCOME", "outcome"),
    ("ERROR", "error"),
];

/// Some recipients of a test notification did not get it.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} test notifications were not sent")]
pub struct NotAllSent {
    pub failed: usize,
    pub total: usize,
}

impl Routes {
    pub async fn run(self, api: &Api, out: Format) -> anyhow::Result<()> {
        match self {
            Routes::List => {
                let mut routes = api.get("api/alerting/routes", &[]).await?;
                // One cell per route in a table: `channel:recipient, ...`.
                if let (Format::Table, Some(list)) = (out, routes.as_array_mut()) {
                    for route in list {
                        let recipients: Vec<String> = route["recipients"]
                            .as_array()
                            .map(|r| {
                                r.iter()
                                    .map(|r| {
                                        format!(
                                            "{}:{}",
                                            r["channel"].as_str().unwrap_or(""),
                                            r["recipient"].as_str().unwrap_or("")
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        route["recipients"] = json!(recipients.join(", "));
                    }
                }
                output::list(out, &routes, ROUTE_COLUMNS);
            }
            Routes::Test { name } => {
                let path = format!("api/alerting/routes/{}/test", urlencoding(&name));
                let outcomes = api.post(&path, &json!({})).await?;
                output::list(out, &outcomes, OUTCOME_COLUMNS);
                let list = outcomes.as_array().cloned().unwrap_or_default();
                let failed = list.iter().filter(|o| o["outcome"] != "sent").count();
                if failed > 0 {
                    return Err(NotAllSent {
                        failed,
                        total: list.len(),
                    }
                    .into());
                }
            }
        }
        Ok(())
    }
}

/// A path segment, percent-encoded (route names are free text in the config).
fn urlencoding(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("0s")
            .unwrap_err()
            .contains("more than nothing"));
        assert!(parse_duration("2x").unwrap_err().contains("e.g. 30m"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("20y").unwrap_err().contains("ten years"));
    }
}
