//! POI maxouts for the NOC: each stored maxout event becomes a `poi_maxout` anomaly (grouped
//! by POI), and the anomaly clears on the first scrape that shows the graph back under its
//! capacity. Events are taken from the store (`alerted_at` NULL), so one a crash interrupted
//! is taken on the next run; the anomaly's dedup key makes taking it twice harmless.

use crate::alert::engine::Engine;
use crate::detect::Signal;
use crate::domain::alerting::AnomalyKind;
use crate::storage::alerting::{NewAnomaly, Severity};
use crate::storage::poi::MaxoutRecord;
use crate::storage::{Store, StoreError};
use chrono::{DateTime, Utc};

/// Taken from the store at once.
const BATCH: u32 = 64;

/// One graph's maxout check in a run: is a maxout still going on at its last sample?
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphCheck {
    pub graph_id: i64,
    pub ongoing_in: bool,
    pub ongoing_out: bool,
}

/// The dedup subject: the graph and direction, which stay put while titles get edited.
pub fn subject(source: &str, graph_id: i64, direction: &str) -> String {
    format!("{source}/{graph_id} {direction}")
}

fn firing(m: &MaxoutRecord) -> Signal {
    let poi = m.poi_code.as_deref().unwrap_or("unknown POI");
    let circuit = m.circuit_id.as_deref().unwrap_or("");
    Signal::Firing(NewAnomaly {
        kind: AnomalyKind::PoiMaxout,
        subject: subject(&m.source, m.graph_id, &m.direction),
        group_key: m.poi_code.clone(),
        severity: Severity::High,
        summary: format!(
            "POI {poi} {circuit} {} at {:.0}% of {:.2} Gb/s for {} min",
            m.direction,
            m.peak_pct,
            m.capacity_bps as f64 / 1e9,
            m.duration_secs / 60
        ),
        details: serde_json::json!({
            "maxout_id": m.id, "source": m.source, "graph_id": m.graph_id,
            "poi_code": m.poi_code, "circuit_id": m.circuit_id, "direction": m.direction,
            "start": m.start, "end": m.end, "peak_bps": m.peak_bps, "peak_pct": m.peak_pct,
            "capacity_bps": m.capacity_bps,
        }),
    })
}

/// Graphs titles shown in an anomaly's summary; the details list them all.
const TITLES_SHOWN: usize = 3;

/// The low-severity `cacti_titles_unparsed` anomaly for a source: firing while any graph it
/// fetched has a title naming no POI (such a graph's maxouts can never be seen), clear once
/// every title is understood.
pub fn titles_signal(source: &str, fetched: i32, no_poi: &[(i64, String)]) -> Signal {
    if no_poi.is_empty() {
        return Signal::Clear {
            kind: AnomalyKind::CactiTitlesUnparsed,
            subject: source.to_string(),
        };
    }
    let shown: Vec<String> = no_poi
        .iter()
        .take(TITLES_SHOWN)
        .map(|(graph, title)| format!("{graph} {title:?}"))
        .collect();
    let more = no_poi.len().saturating_sub(TITLES_SHOWN);
    Signal::Firing(NewAnomaly {
        kind: AnomalyKind::CactiTitlesUnparsed,
        subject: source.to_string(),
        group_key: Some(format!("cacti/{source}")),
        severity: Severity::Low,
        summary: format!(
            "Cacti source {source}: {} of {fetched} graph titles name no POI ({}{}); add [[cacti.titles]] patterns",
            no_poi.len(),
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ),
        details: serde_json::json!({
            "source": source,
            "fetched": fetched,
            "graphs": no_poi.iter().map(|(graph, title)| serde_json::json!({"graph_id": graph, "title": title})).collect::<Vec<_>>(),
        }),
    })
}

/// Fires every maxout not yet taken, then clears the directions of `checked` graphs that are
/// no longer maxed out. A maxout created in this very run is left open until the next, so
/// one that began and ended between two scrapes is still heard of.
pub async fn alert(
    engine: &Engine,
    store: &dyn Store,
    source: &str,
    checked: &[GraphCheck],
    created: &[MaxoutRecord],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    loop {
        let pending = store.unalerted_maxouts(BATCH).await?;
        if pending.is_empty() {
            break;
        }
        for m in &pending {
            engine.apply(vec![firing(m)], now).await?;
            store.mark_maxout_alerted(m.id, now).await?;
        }
    }
    for check in checked {
        for (direction, ongoing) in [("in", check.ongoing_in), ("out", check.ongoing_out)] {
            let fresh = created
                .iter()
                .any(|m| m.graph_id == check.graph_id && m.direction == direction);
            if ongoing || fresh {
                continue;
            }
            let clear = Signal::Clear {
                kind: AnomalyKind::PoiMaxout,
                subject: subject(source, check.graph_id, direction),
            };
            engine.apply(vec![clear], now).await?;
        }
    }
    Ok(())
}
