//! The POI store: graphs, samples, maxouts and the job lease. (The scrape job, the API and the
//! CLI run against a real Cacti in `cacti_lab.rs`.)

use super::store_suite;
use crate::support::PgDatabase;
use chrono::{DateTime, TimeZone, Utc};
use netwarden_collector::storage::poi::{
    GraphRecord, MaxoutQuery, NewMaxout, PoiRecord, SampleRecord,
};
use netwarden_collector::storage::{PostgresStore, SqliteStore, SqliteSync, Store};
use sqlx::Connection;
use std::sync::Arc;

store_suite!(
    graphs_samples_and_maxouts_are_merged_not_duplicated,
    the_job_lease_has_one_holder_at_a_time,
);

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_760_000_000 + secs, 0).unwrap()
}

fn graph(id: i64, title: &str, poi: Option<&str>) -> GraphRecord {
    GraphRecord {
        source: "nbn".into(),
        graph_id: id,
        title: title.into(),
        pattern: poi.map(|_| "poi-name".into()),
        poi_code: poi.map(str::to_string),
        poi_name: None,
        circuit_id: None,
        capacity_bps: Some(1_000_000_000),
        capacity_from: Some("title".into()),
        traffic_class: None,
        direction: None,
        timezone: "Australia/Sydney".into(),
        step_secs: Some(300),
        first_seen: t(0),
        last_seen: t(0),
    }
}

fn sample(secs: i64, in_bps: Option<f64>) -> SampleRecord {
    SampleRecord {
        ts: t(secs),
        in_bps,
        out_bps: Some(1e8),
        in_pct: in_bps.map(|v| v / 1e7),
        out_pct: Some(10.0),
    }
}

fn maxout(start: i64, end: i64, peak: f64) -> NewMaxout {
    NewMaxout {
        poi_code: Some("2ABT".into()),
        circuit_id: None,
        direction: "in",
        start: t(start),
        end: t(end),
        samples: ((end - start) / 300) as i32,
        peak_bps: peak,
        peak_pct: peak / 1e7,
        capacity_bps: 1_000_000_000,
    }
}

async fn graphs_samples_and_maxouts_are_merged_not_duplicated(store: Arc<dyn Store>) {
    // Graphs: an upsert keeps first_seen; an unparsed title is listed, never dropped.
    store
        .save_graph(&graph(1, "2ABT Albert Park", Some("2ABT")))
        .await
        .unwrap();
    let mut again = graph(1, "2ABT Albert Park 1G", Some("2ABT"));
    again.first_seen = t(600);
    again.last_seen = t(600);
    store.save_graph(&again).await.unwrap();
    store
        .save_graph(&graph(2, "core uplink 7", None))
        .await
        .unwrap();
    store
        .save_pois(
            &[PoiRecord {
                code: "2ABT".into(),
                name: Some("Albert Park".into()),
                in_reference: true,
                ..PoiRecord::default()
            }],
            t(0),
        )
        .await
        .unwrap();
    let graphs = store.poi_graphs("2ABT").await.unwrap();
    assert_eq!(graphs.len(), 1);
    assert_eq!(graphs[0].title, "2ABT Albert Park 1G");
    assert_eq!((graphs[0].first_seen, graphs[0].last_seen), (t(0), t(600)));
    let unparsed = store.unparsed_graphs().await.unwrap();
    assert_eq!(unparsed.len(), 1);
    assert_eq!(unparsed[0].title, "core uplink 7");
    let pois = store.pois().await.unwrap();
    assert_eq!(pois.len(), 1);
    assert_eq!(pois[0].name.as_deref(), Some("Albert Park"));

    assert_eq!(graphs[0].step_secs, Some(300));

    // Samples: an overlapping export never duplicates, and its gap never erases a value.
    // Only what is new or changed counts as written.
    let first: Vec<_> = (0..3).map(|i| sample(i * 300, Some(5e8))).collect();
    assert_eq!(store.save_samples("nbn", 1, &first).await.unwrap(), 3);
    assert_eq!(
        store.save_samples("nbn", 1, &first).await.unwrap(),
        0,
        "the same samples again write nothing"
    );
    let second = vec![
        sample(300, None),
        sample(600, Some(7e8)),
        sample(900, Some(6e8)),
    ];
    assert_eq!(
        store.save_samples("nbn", 1, &second).await.unwrap(),
        2,
        "a gap over a value is no change; a new value and a new sample are"
    );
    let stored = store.samples("nbn", 1, t(0), t(3600)).await.unwrap();
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert_eq!(stored[1].in_bps, Some(5e8), "a later gap kept the value");
    assert_eq!(
        stored[2].in_bps,
        Some(7e8),
        "a later value replaced the old one"
    );
    assert!(store
        .samples("nbn", 2, t(0), t(3600))
        .await
        .unwrap()
        .is_empty());

    // Maxouts: created once, extended while they go on, a later run is a new event.
    let merge = store
        .merge_maxouts("nbn", 1, &[maxout(0, 1800, 1.1e9)], t(1800))
        .await
        .unwrap();
    assert_eq!((merge.created.len(), merge.extended), (1, 0));
    let id = merge.created[0].id;
    let merge = store
        .merge_maxouts("nbn", 1, &[maxout(0, 1800, 1.1e9)], t(2100))
        .await
        .unwrap();
    assert_eq!((merge.created.len(), merge.extended), (0, 0), "seen again");
    let merge = store
        .merge_maxouts(
            "nbn",
            1,
            &[maxout(600, 3000, 1.3e9), maxout(6000, 6600, 1.05e9)],
            t(6600),
        )
        .await
        .unwrap();
    assert_eq!((merge.created.len(), merge.extended), (1, 1));
    let all = store
        .maxouts(&MaxoutQuery {
            poi_code: Some("2ABT".into()),
            from: t(-3600),
            to: t(86_400),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, id);
    assert_eq!((all[0].start, all[0].end), (t(0), t(3000)));
    assert_eq!(all[0].duration_secs, 3000);
    assert_eq!(all[0].samples, 10);
    assert_eq!(all[0].peak_bps, 1.3e9);
    assert_eq!(all[0].alerted_at, None, "waits for the alert engine");
    let windowed = store
        .maxouts(&MaxoutQuery {
            poi_code: None,
            from: t(5000),
            to: t(86_400),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(windowed.len(), 1);
    let other_poi = store
        .maxouts(&MaxoutQuery {
            poi_code: Some("3MEL".into()),
            from: t(-3600),
            to: t(86_400),
            limit: 100,
        })
        .await
        .unwrap();
    assert!(other_poi.is_empty());

    // A run that bridges two stored events (a later export filled the gap) makes them one.
    store
        .merge_maxouts("nbn", 3, &[maxout(0, 600, 1.1e9)], t(600))
        .await
        .unwrap();
    store
        .merge_maxouts("nbn", 3, &[maxout(1200, 1800, 1.2e9)], t(1800))
        .await
        .unwrap();
    let bridged = store
        .merge_maxouts("nbn", 3, &[maxout(0, 1800, 1.15e9)], t(1900))
        .await
        .unwrap();
    assert_eq!((bridged.created.len(), bridged.extended), (0, 1));
    let events = store
        .maxouts(&MaxoutQuery {
            poi_code: Some("2ABT".into()),
            from: t(-10),
            to: t(2000),
            limit: 100,
        })
        .await
        .unwrap();
    let graph3: Vec<_> = events.iter().filter(|m| m.graph_id == 3).collect();
    assert_eq!(graph3.len(), 1, "{graph3:?}");
    assert_eq!((graph3[0].start, graph3[0].end), (t(0), t(1800)));
    assert_eq!(graph3[0].peak_bps, 1.2e9);
}

/// The job lease: one holder at a time, renewable, taken over once it runs out.
async fn the_job_lease_has_one_holder_at_a_time(store: Arc<dyn Store>) {
    let ttl = std::time::Duration::from_secs(60);
    assert!(store.claim_job("scrape", "a", ttl, t(0)).await.unwrap());
    assert!(!store.claim_job("scrape", "b", ttl, t(30)).await.unwrap());
    assert!(store.claim_job("scrape", "a", ttl, t(30)).await.unwrap());
    assert!(!store.claim_job("scrape", "b", ttl, t(80)).await.unwrap());
    assert!(store.claim_job("scrape", "b", ttl, t(91)).await.unwrap());
    assert!(!store.claim_job("scrape", "a", ttl, t(100)).await.unwrap());
    store.release_job("scrape", "b").await.unwrap();
    assert!(
        store.claim_job("scrape", "a", ttl, t(101)).await.unwrap(),
        "released"
    );
}

/// Samples and maxouts stored before samples were stamped at their intervals' ends (at
/// Cacti's labels) move back on upgrade: samples one step, maxouts two.
async fn stored_at_labels(store: &Arc<dyn Store>) {
    store
        .save_samples("nbn", 1, &[sample(300, Some(5e8)), sample(600, Some(6e8))])
        .await
        .unwrap();
    store
        .merge_maxouts("nbn", 1, &[maxout(900, 1800, 1.1e9)], t(1800))
        .await
        .unwrap();
}

async fn assert_moved(store: &Arc<dyn Store>) {
    let samples = store.samples("nbn", 1, t(-3600), t(3600)).await.unwrap();
    let moved: Vec<(DateTime<Utc>, Option<f64>)> =
        samples.iter().map(|s| (s.ts, s.in_bps)).collect();
    assert_eq!(moved, vec![(t(0), Some(5e8)), (t(300), Some(6e8))]);
    let maxouts = store
        .maxouts(&MaxoutQuery {
            poi_code: None,
            from: t(-3600),
            to: t(3600),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!((maxouts[0].start, maxouts[0].end), (t(300), t(1200)));
    // The graph table has its new column: a graph saves with its step.
    store
        .save_graph(&graph(1, "2ABT Albert Park", Some("2ABT")))
        .await
        .unwrap();
    assert_eq!(
        store.poi_graphs("2ABT").await.unwrap()[0].step_secs,
        Some(300)
    );
}

#[tokio::test]
async fn upgrading_sqlite_moves_samples_and_maxouts_to_interval_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        stored_at_labels(&(Arc::new(store) as Arc<dyn Store>)).await;
    }
    crate::support::sqlite_names_before_0017a(&path);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "ALTER TABLE cacti_graphs DROP COLUMN step_secs;
             DELETE FROM schema_migrations WHERE version = '0014_cacti_interval_ends';",
        )
        .unwrap();
    let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        vec!["0014_cacti_interval_ends", "0017a_column_names_as_postgres"]
    );
    assert_moved(&(Arc::new(store) as Arc<dyn Store>)).await;
}

#[tokio::test]
async fn upgrading_postgres_moves_samples_and_maxouts_to_interval_ends() {
    let db = PgDatabase::create().await;
    {
        let store = PostgresStore::connect(&db.url, 2).await.unwrap();
        store.migrate().await.unwrap();
        stored_at_labels(&(Arc::new(store) as Arc<dyn Store>)).await;
    }
    let mut raw = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "ALTER TABLE cacti_graphs DROP COLUMN step_secs;
         DELETE FROM _sqlx_migrations WHERE version = 14;",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    raw.close().await.unwrap();
    let store = PostgresStore::connect(&db.url, 2).await.unwrap();
    assert_eq!(store.migrate().await.unwrap().len(), 1);
    assert_moved(&(Arc::new(store) as Arc<dyn Store>)).await;
}
