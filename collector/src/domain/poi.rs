//! NBN POI bandwidth from Cacti: graphs, POIs, samples, maxouts and scrape runs.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A Cacti graph and what its title said.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GraphRecord {
    pub source: String,
    pub graph_id: i64,
    pub title: String,
    /// The name of the pattern that parsed the title; `None` when none did.
    pub pattern: Option<String>,
    pub poi_code: Option<String>,
    pub poi_name: Option<String>,
    pub circuit_id: Option<String>,
    /// The capacity in effect: the reference workbook's override, else the title's.
    pub capacity_bps: Option<i64>,
    /// `reference` or `title`.
    pub capacity_from: Option<String>,
    pub traffic_class: Option<String>,
    pub direction: Option<String>,
    /// The Cacti source's time zone (IANA name), in which its exports are dated. (Local days
    /// and the busy hour use the POI's state's zone.)
    pub timezone: String,
    /// Seconds each sample averages (the export's `Step`); `None` for graphs stored before it
    /// was recorded.
    pub step_secs: Option<i64>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// The reference workbook's row for a POI, as last joined.
#[derive(Debug, Clone, PartialEq, Serialize, Default, utoipa::ToSchema)]
pub struct PoiRecord {
    pub code: String,
    pub name: Option<String>,
    pub state: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub provider: Option<String>,
    pub capacity_bps: Option<i64>,
    pub notes: Option<String>,
    /// False when the code came from titles only (the workbook has no row for it).
    pub in_reference: bool,
}

/// One utilisation sample of a graph: the average over the step that ends at `ts`; `None`
/// values are gaps in Cacti's data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SampleRecord {
    pub ts: DateTime<Utc>,
    pub in_bps: Option<f64>,
    pub out_bps: Option<f64>,
    pub in_pct: Option<f64>,
    pub out_pct: Option<f64>,
}

/// A maxout as detected in one scrape, before it is merged with what is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMaxout {
    pub poi_code: Option<String>,
    pub circuit_id: Option<String>,
    /// `in` or `out`.
    pub direction: &'static str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub samples: i32,
    pub peak_bps: f64,
    pub peak_pct: f64,
    pub capacity_bps: i64,
}

/// A stored maxout event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MaxoutRecord {
    pub id: i64,
    pub source: String,
    pub graph_id: i64,
    pub poi_code: Option<String>,
    pub circuit_id: Option<String>,
    pub direction: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub duration_secs: i64,
    pub samples: i32,
    pub peak_bps: f64,
    pub peak_pct: f64,
    pub capacity_bps: i64,
    pub detected_at: DateTime<Utc>,
    /// When the alert engine took the event; `None` while it waits.
    pub alerted_at: Option<DateTime<Utc>>,
}

/// What storing one scrape's maxouts did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaxoutMerge {
    /// Events that did not exist before (each is new for the alert engine).
    pub created: Vec<MaxoutRecord>,
    /// Stored events a run extended (a maxout still going on, or seen again).
    pub extended: u32,
}

#[derive(Debug, Clone)]
pub struct MaxoutQuery {
    pub poi_code: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limit: u32,
}

/// One scrape of one Cacti source.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScrapeRunRecord {
    pub source: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub fetched: i32,
    /// Samples written: new ones, and stored ones whose value changed (a sample fetched again
    /// unchanged, as overlapping windows do, is not counted).
    pub samples: i64,
    /// (graph, why): fetched but not usable for utilisation.
    pub skipped: Vec<(i64, String)>,
    /// (graph, error): not fetched.
    pub failed: Vec<(i64, String)>,
}

/// Who holds a job lease: host, process and a random part, unique per job instance (and
/// readable in `job_leases` when an operator wonders which collector runs a job).
pub fn lease_holder() -> String {
    format!(
        "{}-{}-{:08x}",
        hostname(),
        std::process::id(),
        rand::random::<u32>()
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "collector".into())
}

/// Shared by both backends: how a detected maxout combines with a stored one it overlaps.
pub(crate) fn merged(stored: &MaxoutRecord, new: &NewMaxout) -> NewMaxout {
    let (peak_bps, peak_pct) = if new.peak_bps > stored.peak_bps {
        (new.peak_bps, new.peak_pct)
    } else {
        (stored.peak_bps, stored.peak_pct)
    };
    let start = stored.start.min(new.start);
    let end = stored.end.max(new.end);
    // A run has no gaps, so its sample count follows from its span and the step it was seen at.
    let step = (new.end - new.start).num_seconds() / i64::from(new.samples.max(1));
    let samples = if step > 0 {
        ((end - start).num_seconds() / step) as i32
    } else {
        stored.samples.max(new.samples)
    };
    NewMaxout {
        poi_code: new.poi_code.clone().or_else(|| stored.poi_code.clone()),
        circuit_id: new.circuit_id.clone().or_else(|| stored.circuit_id.clone()),
        direction: new.direction,
        start,
        end,
        samples: samples.max(stored.samples).max(new.samples),
        peak_bps,
        peak_pct,
        capacity_bps: new.capacity_bps,
    }
}

/// Whether a detected run and a stored event are the same maxout: they overlap or touch.
pub(crate) fn same_event(stored: &MaxoutRecord, new: &NewMaxout) -> bool {
    stored.direction == new.direction && stored.start <= new.end && new.start <= stored.end
}

pub(crate) fn pairs_json(pairs: &[(i64, String)]) -> String {
    serde_json::to_string(pairs).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn pairs_from_json(text: &str) -> Vec<(i64, String)> {
    serde_json::from_str(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + minute * 60, 0).unwrap()
    }

    fn stored(start: i64, end: i64, peak: f64) -> MaxoutRecord {
        MaxoutRecord {
            id: 1,
            source: "nbn".into(),
            graph_id: 7,
            poi_code: Some("2ABT".into()),
            circuit_id: None,
            direction: "in".into(),
            start: at(start),
            end: at(end),
            duration_secs: (end - start) * 60,
            samples: ((end - start) / 5) as i32,
            peak_bps: peak,
            peak_pct: peak / 1e7,
            capacity_bps: 1_000_000_000,
            detected_at: at(end),
            alerted_at: None,
        }
    }

    fn new(start: i64, end: i64, peak: f64) -> NewMaxout {
        NewMaxout {
            poi_code: Some("2ABT".into()),
            circuit_id: None,
            direction: "in",
            start: at(start),
            end: at(end),
            samples: ((end - start) / 5) as i32,
            peak_bps: peak,
            peak_pct: peak / 1e7,
            capacity_bps: 1_000_000_000,
        }
    }

    #[test]
    fn a_run_seen_again_and_longer_extends_the_event() {
        let old = stored(0, 20, 1.1e9);
        let next = new(0, 35, 1.05e9);
        assert!(same_event(&old, &next));
        let m = merged(&old, &next);
        assert_eq!((m.start, m.end, m.samples), (at(0), at(35), 7));
        assert_eq!(m.peak_bps, 1.1e9, "the higher peak is kept");
    }

    #[test]
    fn a_run_that_starts_after_a_stored_one_ended_is_a_new_event() {
        let old = stored(0, 20, 1.1e9);
        assert!(!same_event(&old, &new(25, 40, 1.2e9)));
        assert!(
            same_event(&old, &new(20, 40, 1.2e9)),
            "touching runs are one"
        );
        let mut out = new(5, 10, 1.2e9);
        out.direction = "out";
        assert!(!same_event(&old, &out), "directions are separate events");
    }
}

/// One sample of a CVC: the average bits/s each way over the interval that ends at `at`
/// (one step long); `None` is a gap in Cacti's data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: i64,
    pub in_bps: Option<f64>,
    pub out_bps: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}
