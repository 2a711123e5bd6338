//! KPI results on both backends: rows ranked per interval and filtered, an interval saved
//! again replacing what it had, the computed intervals and counted files listed from a time,
//! and issues listed newest first, replaced per interval and file.

use super::store_suite;
use crate::support::at;
use netwarden_collector::storage::kpi::{
    Granularity, Kpi, KpiFileRecord, KpiFileState, KpiIssueRecord, KpiQuery, KpiResult, KpiRow,
};
use netwarden_collector::storage::Store;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

store_suite!(
    rows_are_ranked_per_interval_largest_first,
    rows_are_filtered_by_granularity_and_time_then_paged,
    saving_an_interval_again_replaces_its_rows_and_issues,
    computed_intervals_and_counted_files_are_listed_from_a_time,
    issues_are_listed_newest_first_and_replaced_per_interval_and_file,
);

/// An hour's start (2027-01-15T08:00Z).
const H: i64 = 1_800_000_000_000;
const M5: i64 = 300_000;
const HOUR: i64 = 3_600_000;

fn result(granularity: Granularity, start: i64, services: &[(i64, i64)]) -> KpiResult {
    let length = match granularity {
        Granularity::FiveMinutes => M5,
        Granularity::Hour => HOUR,
    };
    KpiResult {
        granularity,
        start: at(start),
        end: at(start + length),
        services: services.to_vec(),
        cells: vec![],
        files: vec![],
        issues: vec![],
    }
}

fn file(name: &str, end: i64, size: i64) -> KpiFileRecord {
    let (name, interval_end, modified_ms) = (name.to_string(), at(end), end - 1_000);
    KpiFileRecord {
        name,
        interval_end,
        size,
        modified_ms,
        rows: 10,
        skipped_rows: 1,
    }
}

fn state(end: i64, size: i64) -> KpiFileState {
    KpiFileState {
        interval_end: at(end),
        size,
        modified_ms: end - 1_000,
    }
}

fn issue(end: i64, file: &str, line: Option<i64>, reason: &str) -> KpiIssueRecord {
    KpiIssueRecord {
        interval_end: at(end),
        file: file.into(),
        line,
        reason: reason.into(),
        message: format!("{reason} in {file}"),
        recorded_at: at(H + HOUR),
    }
}

/// Rows of a query (every granularity and time, top 100, unpaged unless `edit` says) as
/// (interval, start, key, value).
async fn rows(
    store: &Arc<dyn Store>,
    kpi: Kpi,
    edit: impl FnOnce(&mut KpiQuery),
) -> Vec<(i64, i64, i64, i64)> {
    let mut query = KpiQuery {
        kpi,
        granularity: None,
        start_gte: None,
        end_lte: None,
        top: 100,
        limit: 1_000,
        offset: 0,
    };
    edit(&mut query);
    let found = store.kpi_rows(&query).await.unwrap();
    let ms = |r: &KpiRow| r.interval_start_timestamp.timestamp_millis();
    found
        .iter()
        .map(|r| (r.interval, ms(r), r.key, r.value))
        .collect()
}

/// Two five-minute intervals and their hour, saved out of order.
async fn seed(store: &Arc<dyn Store>) {
    let mut second = result(Granularity::FiveMinutes, H + M5, &[(1, 50)]);
    second.cells = vec![(10, 1)];
    let mut hour = result(Granularity::Hour, H, &[(1, 550), (2, 900)]);
    hour.cells = vec![(10, 4)];
    let mut first = result(
        Granularity::FiveMinutes,
        H,
        &[(1, 500), (2, 900), (3, 500), (4, 100)],
    );
    first.cells = vec![(10, 3), (11, 7)];
    for r in [second, hour, first] {
        store.save_kpi_result(&r, at(H + 2 * HOUR)).await.unwrap();
    }
}

async fn rows_are_ranked_per_interval_largest_first(store: Arc<dyn Store>) {
    seed(&store).await;
    let traffic = Kpi::ServiceTrafficVolume;
    let five = |top| {
        move |q: &mut KpiQuery| (q.granularity, q.top) = (Some(Granularity::FiveMinutes), top)
    };
    // Ties by ascending key; `top` counts per interval.
    assert_eq!(
        rows(&store, traffic, five(3)).await,
        [
            (1, H, 2, 900),
            (1, H, 1, 500),
            (1, H, 3, 500),
            (1, H + M5, 1, 50)
        ]
    );
    assert_eq!(
        rows(&store, Kpi::CellUniqueUsers, five(10)).await,
        [(1, H, 11, 7), (1, H, 10, 3), (1, H + M5, 10, 1)]
    );
    // Five-minute intervals first, then hours.
    assert_eq!(
        rows(&store, traffic, |q| q.top = 1).await,
        [(1, H, 2, 900), (1, H + M5, 1, 50), (2, H, 2, 900)]
    );
    let query = KpiQuery {
        kpi: Kpi::CellUniqueUsers,
        granularity: Some(Granularity::Hour),
        start_gte: None,
        end_lte: None,
        top: 10,
        limit: 10,
        offset: 0,
    };
    let hourly = store.kpi_rows(&query).await.unwrap();
    assert_eq!(hourly.len(), 1);
    let row = &hourly[0];
    assert_eq!(
        (row.interval_start_timestamp, row.interval_end_timestamp),
        (at(H), at(H + HOUR))
    );
    assert_eq!((row.interval, row.key, row.value), (2, 10, 4));
    let all = store
        .kpi_rows(&KpiQuery {
            kpi: Kpi::ServiceTrafficVolume,
            ..query
        })
        .await
        .unwrap();
    let ids: HashSet<i64> = all.iter().map(|r| r.id).collect();
    assert_eq!(
        (all.len(), ids.len()),
        (2, 2),
        "one row each, each its own id"
    );
}

async fn rows_are_filtered_by_granularity_and_time_then_paged(store: Arc<dyn Store>) {
    seed(&store).await;
    let traffic = Kpi::ServiceTrafficVolume;
    // Intervals starting at or after `start_gte`: not the hour, which starts before.
    let later = rows(&store, traffic, |q| q.start_gte = Some(at(H + M5))).await;
    assert_eq!(later, [(1, H + M5, 1, 50)]);
    // Intervals ending at or before `end_lte`: the first five minutes only.
    let early = rows(&store, traffic, |q| q.end_lte = Some(at(H + M5))).await;
    assert_eq!(
        early,
        [
            (1, H, 2, 900),
            (1, H, 1, 500),
            (1, H, 3, 500),
            (1, H, 4, 100)
        ]
    );
    let hours = rows(&store, traffic, |q| q.granularity = Some(Granularity::Hour)).await;
    assert_eq!(hours, [(2, H, 2, 900), (2, H, 1, 550)]);
    // Paged after `top` is applied per interval.
    let page = |top, limit, offset| {
        move |q: &mut KpiQuery| {
            (q.granularity, q.top) = (Some(Granularity::FiveMinutes), top);
            (q.limit, q.offset) = (limit, offset);
        }
    };
    let second_page = rows(&store, traffic, page(10, 2, 3)).await;
    assert_eq!(second_page, [(1, H, 4, 100), (1, H + M5, 1, 50)]);
    let topped = rows(&store, traffic, page(3, 2, 2)).await;
    assert_eq!(topped, [(1, H, 3, 500), (1, H + M5, 1, 50)]);
    assert!(rows(&store, traffic, page(10, 2, 5)).await.is_empty());
}

async fn saving_an_interval_again_replaces_its_rows_and_issues(store: Arc<dyn Store>) {
    let end = H + M5;
    let mut first = result(Granularity::FiveMinutes, H, &[(1, 500), (2, 900)]);
    first.cells = vec![(10, 3)];
    first.files = vec![file("a.1.txt", end, 100), file("a.2.txt", end, 200)];
    first.issues = vec![issue(end, "a.1.txt", Some(3), "non_numeric")];
    store.save_kpi_result(&first, at(H + HOUR)).await.unwrap();
    assert_eq!(store.kpi_issues(10).await.unwrap(), first.issues);
    let counted = store.kpi_files(at(H)).await.unwrap();
    let expected = HashMap::from([
        ("a.1.txt".to_string(), state(end, 100)),
        ("a.2.txt".to_string(), state(end, 200)),
    ]);
    assert_eq!(counted, expected);

    // Computed again from a file that changed and a late one: nothing counts twice.
    let mut again = result(Granularity::FiveMinutes, H, &[(1, 600)]);
    again.files = vec![file("a.1.txt", end, 150), file("a.3.txt", end, 50)];
    store
        .save_kpi_result(&again, at(H + 2 * HOUR))
        .await
        .unwrap();
    assert_eq!(
        rows(&store, Kpi::ServiceTrafficVolume, |_| ()).await,
        [(1, H, 1, 600)]
    );
    assert!(rows(&store, Kpi::CellUniqueUsers, |_| ()).await.is_empty());
    assert!(
        store.kpi_issues(10).await.unwrap().is_empty(),
        "the interval's issues are replaced"
    );
    let counted = store.kpi_files(at(H)).await.unwrap();
    assert_eq!(counted.get("a.1.txt"), Some(&state(end, 150)));
    assert_eq!(counted.get("a.3.txt"), Some(&state(end, 50)));
    let computed = store
        .kpi_computed(Granularity::FiveMinutes, at(H))
        .await
        .unwrap();
    assert_eq!(computed, [at(H)]);
}

async fn computed_intervals_and_counted_files_are_listed_from_a_time(store: Arc<dyn Store>) {
    for start in [H + 2 * M5, H, H + M5] {
        let mut r = result(Granularity::FiveMinutes, start, &[(1, 1)]);
        r.files = vec![file(&format!("f-{start}"), start + M5, 10)];
        store.save_kpi_result(&r, at(H + HOUR)).await.unwrap();
    }
    let hour = result(Granularity::Hour, H, &[(1, 3)]);
    store.save_kpi_result(&hour, at(H + HOUR)).await.unwrap();
    let computed = |g, since| store.kpi_computed(g, at(since));
    let five = Granularity::FiveMinutes;
    let all = [at(H), at(H + M5), at(H + 2 * M5)];
    assert_eq!(computed(five, H).await.unwrap(), all);
    assert_eq!(computed(five, H + M5).await.unwrap(), all[1..].to_vec());
    assert!(computed(five, H + HOUR).await.unwrap().is_empty());
    assert_eq!(computed(Granularity::Hour, H).await.unwrap(), [at(H)]);
    assert!(computed(Granularity::Hour, H + M5)
        .await
        .unwrap()
        .is_empty());

    // Files whose interval ends at or after the time.
    let since = store.kpi_files(at(H + 2 * M5)).await.unwrap();
    let expected = HashMap::from([
        (format!("f-{}", H + M5), state(H + 2 * M5, 10)),
        (format!("f-{}", H + 2 * M5), state(H + 3 * M5, 10)),
    ]);
    assert_eq!(since, expected);
    assert_eq!(store.kpi_files(at(H)).await.unwrap().len(), 3);
    assert!(store.kpi_files(at(H + HOUR)).await.unwrap().is_empty());
}

async fn issues_are_listed_newest_first_and_replaced_per_interval_and_file(store: Arc<dyn Store>) {
    let (e1, e2) = (H + M5, H + 2 * M5);
    assert!(store.kpi_issues(10).await.unwrap().is_empty());
    let a2 = issue(e1, "a.txt", Some(2), "column_count");
    let a5 = issue(e1, "a.txt", Some(5), "non_numeric");
    let b = issue(e1, "b.txt", None, "unreadable");
    let a_later = issue(e2, "a.txt", None, "too_old");
    let first = [a2.clone(), a5.clone(), b.clone(), a_later.clone()];
    store.save_kpi_issues(&first).await.unwrap();
    let listed = vec![a_later.clone(), b.clone(), a5, a2];
    assert_eq!(store.kpi_issues(10).await.unwrap(), listed);
    assert_eq!(store.kpi_issues(2).await.unwrap(), listed[..2].to_vec());

    // New issues of a file in an interval replace its earlier ones there, and only there.
    let a7 = issue(e1, "a.txt", Some(7), "negative_bytes");
    store
        .save_kpi_issues(std::slice::from_ref(&a7))
        .await
        .unwrap();
    let listed = vec![a7, a_later.clone(), b];
    assert_eq!(store.kpi_issues(10).await.unwrap(), listed);

    // The interval computed without issues: its earlier ones go, the other interval's stay.
    let computed = result(Granularity::FiveMinutes, H, &[(1, 1)]);
    store
        .save_kpi_result(&computed, at(H + HOUR))
        .await
        .unwrap();
    assert_eq!(store.kpi_issues(10).await.unwrap(), vec![a_later]);
}
