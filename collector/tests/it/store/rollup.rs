//! Probe rollups on both backends: buckets computed once closed, recomputed when late rounds
//! arrive (and only then), 1-hour buckets over every reply, idempotent reruns, and retention
//! per resolution.

use super::store_suite;
use crate::support::{batch, probe_record};
use chrono::{DateTime, Duration, Utc};
use netwarden_collector::rollup::job::{Committed, RollupJob};
use netwarden_collector::rollup::{retention, RetentionConfig};
use netwarden_collector::storage::{DeviceQuery, HistoryQuery, Store};
use netwarden_shared::AgentId;
use std::sync::Arc;

store_suite!(rollups_follow_closed_buckets_and_late_rounds);

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

async fn rollups_follow_closed_buckets_and_late_rounds(store: Arc<dyn Store>) {
    let agent = AgentId::new("site-1").unwrap();
    let t = base();
    // PostgreSQL: that day's partition (the store made today's, whatever day the test runs).
    store.prepare_partitions(t).await.unwrap();
    let rounds = vec![
        probe_record(1, ms(t), "10.0.0.1", 4),
        probe_record(2, ms(t + Duration::seconds(60)), "10.0.0.1", 4),
        probe_record(3, ms(t + Duration::seconds(120)), "10.0.0.1", 0),
        probe_record(4, ms(t + Duration::seconds(330)), "10.0.0.1", 2),
    ];
    store.ingest(&agent, batch(1, rounds), t).await.unwrap();
    let device = store
        .devices(&DeviceQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .id;
    let committed = Committed::default();
    let job = RollupJob::new(store.clone(), 7, committed.clone());

    // At 09:10:15 the 09:00 and 09:05 buckets are closed; no hour is.
    let now = t + Duration::seconds(615);
    job.run_once(now).await.unwrap();
    let five = store.rollups(device, 300, t, now, 100).await.unwrap();
    assert_eq!(five.len(), 2, "{five:?}");
    assert_eq!(five[0].ts, t);
    assert_eq!((five[0].rounds, five[0].answered), (3, 2));
    assert_eq!((five[0].sent, five[0].received), (12, 8));
    // probe_record's replies are 10, 11, 12, 13 ms: two rounds of them.
    assert_eq!(five[0].rtt_min_ms, Some(10.0));
    assert_eq!(five[0].rtt_max_ms, Some(13.0));
    assert_eq!(five[0].rtt_p95_ms, Some(13.0));
    assert!((five[0].rtt_mean_ms.unwrap() - 11.5).abs() < 1e-4);
    assert!((five[0].loss_pct - 100.0 / 3.0).abs() < 1e-3);
    assert_eq!((five[1].rounds, five[1].received), (1, 2));
    assert_eq!(
        store.rollup_watermark(300).await.unwrap(),
        Some(t + Duration::minutes(10))
    );
    assert!(store
        .rollups(device, 3600, t, now, 100)
        .await
        .unwrap()
        .is_empty());

    // A round for 09:00 arrives late. Unannounced, a rerun leaves the closed bucket alone...
    let late_at = t + Duration::seconds(30);
    store
        .ingest(
            &agent,
            batch(2, vec![probe_record(5, ms(late_at), "10.0.0.1", 0)]),
            now,
        )
        .await
        .unwrap();
    job.run_once(now).await.unwrap();
    assert_eq!(
        store.rollups(device, 300, t, now, 100).await.unwrap()[0].rounds,
        3
    );
    // ...and once the ingest path reports it, the bucket is recomputed in place.
    committed.saw(late_at);
    job.run_once(now).await.unwrap();
    let five = store.rollups(device, 300, t, now, 100).await.unwrap();
    assert_eq!(five.len(), 2);
    assert_eq!((five[0].rounds, five[0].answered, five[0].sent), (4, 2, 16));

    // After 10:00 the hour is rolled up from every reply of its rounds; reruns change nothing.
    let later = t + Duration::seconds(3615);
    job.run_once(later).await.unwrap();
    job.run_once(later).await.unwrap();
    let hour = store.rollups(device, 3600, t, later, 100).await.unwrap();
    assert_eq!(hour.len(), 1);
    assert_eq!((hour[0].rounds, hour[0].answered), (5, 3));
    assert_eq!((hour[0].sent, hour[0].received), (20, 10));
    assert_eq!(
        store
            .rollups(device, 300, t, later, 100)
            .await
            .unwrap()
            .len(),
        2
    );

    // Retention: raw rounds go after raw_days, 5-minute buckets after their 90 days, hours stay.
    let config = RetentionConfig {
        raw_days: 1,
        rollup_5m_days: 90,
        rollup_1h_days: 730,
    };
    let swept = retention::sweep(store.as_ref(), &config, t + Duration::days(2))
        .await
        .unwrap();
    assert_eq!((swept.raw, swept.rollup_5m, swept.rollup_1h), (5, 0, 0));
    let history = store
        .device_history(
            device,
            &HistoryQuery {
                from: t - Duration::days(1),
                to: t + Duration::days(1),
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert!(history.is_empty());
    assert_eq!(
        store
            .rollups(device, 300, t, later, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    let swept = retention::sweep(store.as_ref(), &config, t + Duration::days(91))
        .await
        .unwrap();
    assert_eq!((swept.rollup_5m, swept.rollup_1h), (2, 0));
    assert_eq!(
        store
            .rollups(device, 3600, t, later, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// PostgreSQL: rows for a day without a partition wait in DEFAULT, move into the day's
/// partition when it is made, and go with it when retention drops the day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_days_are_partitions_made_ahead_and_dropped_whole() {
    use netwarden_collector::storage::PostgresStore;
    use sqlx::Connection;
    let db = crate::support::PgDatabase::create().await;
    let store = PostgresStore::connect(&db.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let old = base() - Duration::days(30);
    let agent = AgentId::new("site-1").unwrap();
    let records = (0..6)
        .map(|i| probe_record(i + 1, ms(old + Duration::hours(i as i64)), "10.0.0.1", 4))
        .collect();
    store.ingest(&agent, batch(1, records), old).await.unwrap();
    let mut sql = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let count = |table: &'static str| format!("SELECT COUNT(*) FROM {table}");
    let in_default: i64 = sqlx::query_scalar(&count("probe_results_default"))
        .fetch_one(&mut sql)
        .await
        .unwrap();
    assert_eq!(in_default, 6, "no partition for that day yet");

    let made = store.ensure_partitions(old).await.unwrap();
    assert!(made.contains(&old.date_naive()), "{made:?}");
    let in_default: i64 = sqlx::query_scalar(&count("probe_results_default"))
        .fetch_one(&mut sql)
        .await
        .unwrap();
    let in_day: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM probe_results_p{}",
        old.format("%Y%m%d")
    ))
    .fetch_one(&mut sql)
    .await
    .unwrap();
    assert_eq!((in_default, in_day), (0, 6));
    // Twice is harmless.
    assert!(store.ensure_partitions(old).await.unwrap().is_empty());

    let config = RetentionConfig::default();
    let swept = retention::sweep(&store, &config, old + Duration::days(8))
        .await
        .unwrap();
    assert_eq!(swept.raw, 6);
    let gone: bool = sqlx::query_scalar(&format!(
        "SELECT to_regclass('probe_results_p{}') IS NULL",
        old.format("%Y%m%d")
    ))
    .fetch_one(&mut sql)
    .await
    .unwrap();
    assert!(gone, "the day's partition is dropped, not emptied");
    let left: i64 = sqlx::query_scalar(&count("probe_results"))
        .fetch_one(&mut sql)
        .await
        .unwrap();
    assert_eq!(left, 0);
    drop(sql);
}
