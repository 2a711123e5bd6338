//! The KPI pipeline end to end: flow files in a directory, the job on both backends (the
//! known answer from the seed files, an exact hour, catching up, late files, unreadable
//! files, malformed rows), the API over a running collector, and `kpi run --once`.

use super::support::{binary, Backend, Pki, TestCollector};
use chrono::{DateTime, TimeZone, Utc};
use netwarden_collector::kpi::{KpiConfig, KpiJob, KpiSettings};
use netwarden_collector::metrics::Metrics;
use netwarden_collector::storage::kpi::{Granularity, Kpi, KpiQuery};
use netwarden_collector::storage::Store;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SEED_END_MS: i64 = 1_626_566_700_000; // 2021-07-18T00:05Z
const HEADER: &str =
    "interval_start_timestamp,interval_end_timestamp,msisdn,bytes_uplink,bytes_downlink,service_id,cell_id\r\n";

fn resources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/resources/kpi")
}

/// The seed files, renamed to the interval ending at `end_ms`.
fn copy_seed(dir: &Path, end_ms: i64) {
    for index in [1, 2] {
        std::fs::copy(
            resources().join(format!("ipflow_data.ts-{SEED_END_MS}.{index}.txt")),
            dir.join(format!("ipflow_data.ts-{end_ms}.{index}.txt")),
        )
        .unwrap();
    }
}

fn write(dir: &Path, end_ms: i64, index: u32, rows: &[&str]) {
    let mut text = HEADER.to_string();
    for row in rows {
        text.push_str(row);
        text.push_str("\r\n");
    }
    std::fs::write(
        dir.join(format!("ipflow_data.ts-{end_ms}.{index}.txt")),
        text,
    )
    .unwrap();
}

fn t(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn job(store: Arc<dyn Store>, dir: &Path) -> KpiJob {
    let raw = KpiConfig {
        directory: Some(dir.to_path_buf()),
        grace_secs: 30,
        ..KpiConfig::default()
    };
    let settings = KpiSettings::from_config(Path::new("/c.toml"), &raw)
        .unwrap()
        .unwrap();
    KpiJob::new(settings, store, Arc::new(Metrics::new()))
}

async fn top(
    store: &Arc<dyn Store>,
    kpi: Kpi,
    granularity: Granularity,
    start_ms: i64,
    n: u32,
) -> Vec<(i64, i64)> {
    store
        .kpi_rows(&KpiQuery {
            kpi,
            granularity: Some(granularity),
            start_gte: Some(t(start_ms)),
            end_lte: Some(t(start_ms
                + if granularity == Granularity::Hour {
                    3_600_000
                } else {
                    300_000
                })),
            top: n,
            limit: 1000,
            offset: 0,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
}

const MIN5: i64 = 300_000;

async fn pipeline(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let hour = SEED_END_MS - MIN5; // 2021-07-18T00:00Z
    copy_seed(dir.path(), SEED_END_MS);
    // The next interval of the same hour: 31619690654 again in cell 1001, and a new user.
    write(
        dir.path(),
        SEED_END_MS + MIN5,
        1,
        &[
            "0,0,31619690654,1000,0,1,1001",
            "0,0,31619690999,10,5,9,1001",
        ],
    );
    // An interval of the next hour, which has not finished yet at `now`.
    write(dir.path(), hour + 3_600_000 + MIN5, 1, &["0,0,1,1,1,1,1"]);
    std::fs::write(dir.path().join("README.txt"), "not a flow file").unwrap();
    let job = job(store.clone(), dir.path());

    // Down since before the first interval: one run catches up on everything completed.
    let now = t(hour + 3_600_000 + 2 * MIN5);
    let report = job.run_once(now).await.unwrap();
    assert_eq!(
        report.intervals,
        vec![t(hour), t(hour + MIN5), t(hour + 3_600_000)],
        "{report:?}"
    );
    assert_eq!(report.hours, vec![t(hour)], "the next hour is not over yet");
    assert_eq!(report.bad_names.len(), 1);
    assert_eq!(
        report.files_read, 4,
        "catching up, each file is read once for both"
    );

    // The known answer.
    assert_eq!(
        top(
            &store,
            Kpi::ServiceTrafficVolume,
            Granularity::FiveMinutes,
            hour,
            3
        )
        .await,
        vec![(1, 16100), (3, 11500), (2, 9260)]
    );
    assert_eq!(
        top(
            &store,
            Kpi::ServiceTrafficVolume,
            Granularity::FiveMinutes,
            hour,
            10
        )
        .await,
        vec![(1, 16100), (3, 11500), (2, 9260), (4, 6550), (5, 2910)],
        "stored in full"
    );
    assert_eq!(
        top(
            &store,
            Kpi::CellUniqueUsers,
            Granularity::FiveMinutes,
            hour,
            3
        )
        .await,
        vec![(1001, 4), (1000, 3), (5005, 3)]
    );
    // The hour: traffic summed, users distinct over the hour (not 4 + 2).
    let hourly = top(
        &store,
        Kpi::ServiceTrafficVolume,
        Granularity::Hour,
        hour,
        10,
    )
    .await;
    assert_eq!(hourly[0], (1, 17100));
    assert!(hourly.contains(&(9, 15)));
    let users = top(&store, Kpi::CellUniqueUsers, Granularity::Hour, hour, 1).await;
    assert_eq!(users, vec![(1001, 5)]);

    // Nothing new: nothing computed.
    let again = job.run_once(now).await.unwrap();
    assert!(
        again.intervals.is_empty() && again.hours.is_empty(),
        "{again:?}"
    );

    // A late file for the first interval: that interval and its hour are computed again
    // from all their files, nothing counted twice.
    write(dir.path(), SEED_END_MS, 3, &["0,0,42,100,0,1,1001"]);
    let late = job.run_once(now).await.unwrap();
    assert_eq!(late.intervals, vec![t(hour)]);
    assert_eq!(late.hours, vec![t(hour)]);
    assert_eq!(
        top(
            &store,
            Kpi::ServiceTrafficVolume,
            Granularity::FiveMinutes,
            hour,
            1
        )
        .await,
        vec![(1, 16200)]
    );
    assert_eq!(
        top(
            &store,
            Kpi::CellUniqueUsers,
            Granularity::FiveMinutes,
            hour,
            1
        )
        .await,
        vec![(1001, 5)]
    );
    assert_eq!(
        top(
            &store,
            Kpi::ServiceTrafficVolume,
            Granularity::Hour,
            hour,
            1
        )
        .await,
        vec![(1, 17200)]
    );
    assert_eq!(
        top(&store, Kpi::CellUniqueUsers, Granularity::Hour, hour, 1).await,
        vec![(1001, 6)]
    );

    // Malformed rows: reported with file and line, the rest of the interval counts.
    let next = hour + 3_600_000 + 2 * MIN5;
    write(
        dir.path(),
        next,
        1,
        &["0,0,7,5,5,2,3", "0,0,8,-5,5,2,3", "0,0,9,x,5,2,3", "0,0,10"],
    );
    // An unreadable file (a dangling link): its interval waits and is tried again.
    let unreadable = format!("ipflow_data.ts-{}.1.txt", next + MIN5);
    std::os::unix::fs::symlink(dir.path().join("missing"), dir.path().join(&unreadable)).unwrap();
    let later = t(next + 2 * MIN5);
    let report = job.run_once(later).await.unwrap();
    assert_eq!(report.intervals, vec![t(next - MIN5)], "{report:?}");
    assert_eq!(report.skipped_rows, 3);
    assert_eq!(report.unreadable, vec![unreadable.clone()]);
    assert_eq!(
        top(
            &store,
            Kpi::ServiceTrafficVolume,
            Granularity::FiveMinutes,
            next - MIN5,
            3
        )
        .await,
        vec![(2, 10)]
    );
    let issues = store.kpi_issues(100).await.unwrap();
    let lines: Vec<(String, Option<i64>)> =
        issues.iter().map(|i| (i.file.clone(), i.line)).collect();
    let bad = format!("ipflow_data.ts-{next}.1.txt");
    for line in [3, 4, 5] {
        assert!(lines.contains(&(bad.clone(), Some(line))), "{issues:?}");
    }
    assert!(issues
        .iter()
        .any(|i| i.message.contains("bytes_uplink: -5 is negative")));
    assert!(
        issues
            .iter()
            .any(|i| i.file == unreadable && i.message.contains("cannot open")),
        "{issues:?}"
    );
    // The link is mended: the interval is counted on the next run.
    std::fs::remove_file(dir.path().join(&unreadable)).unwrap();
    write(dir.path(), next + MIN5, 1, &["0,0,11,1,1,6,3"]);
    let mended = job.run_once(later).await.unwrap();
    assert_eq!(mended.intervals, vec![t(next)]);
    assert!(mended.unreadable.is_empty());

    // A counted file was removed (retention) and a late one arrives for its interval: the
    // interval keeps its figures rather than being recomputed short, and says so.
    std::fs::remove_file(
        dir.path()
            .join(format!("ipflow_data.ts-{SEED_END_MS}.1.txt")),
    )
    .unwrap();
    write(dir.path(), SEED_END_MS, 4, &["0,0,43,1,0,1,1001"]);
    let short = job.run_once(later).await.unwrap();
    assert!(short.intervals.is_empty(), "{short:?}");
    assert_eq!(short.incomplete_intervals, vec![t(hour)]);
    assert_eq!(
        top(
            &store,
            Kpi::ServiceTrafficVolume,
            Granularity::FiveMinutes,
            hour,
            1
        )
        .await,
        vec![(1, 16200)]
    );
    assert!(store
        .kpi_issues(10)
        .await
        .unwrap()
        .iter()
        .any(|i| i.message.contains("no longer in the directory")));

    // Another collector's job holds the lease: this one does not run.
    let other = super::kpi::job(store.clone(), dir.path());
    assert!(matches!(
        other.run_once(later).await,
        Err(netwarden_collector::kpi::job::KpiError::Busy)
    ));
}

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn recent_interval_end() -> i64 {
    let now = Utc::now().timestamp_millis();
    now - now.rem_euclid(MIN5) - 2 * MIN5
}

#[tokio::test]
async fn the_api_serves_the_kpis_like_the_network_analysis_project() {
    let dir = tempfile::tempdir().unwrap();
    let end = recent_interval_end();
    copy_seed(dir.path(), end);
    write(
        dir.path(),
        end + MIN5,
        1,
        &["0,0,1,1,1,7,1", "0,0,2,x,1,7,1"],
    );
    let kpi_dir = dir.path().to_path_buf();
    let collector = TestCollector::start_with(Backend::Sqlite, move |raw| {
        raw.kpi.directory = Some(kpi_dir);
        raw.kpi.grace_secs = 0;
    })
    .await;
    let start = chrono::DateTime::from_timestamp_millis(end - MIN5).unwrap();
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    let (status, kpis) = get(collector.api("/api/kpis")).await;
    assert_eq!(status, 200);
    assert_eq!(
        kpis,
        json!([{"id": 1, "name": "ServiceTrafficVolume"}, {"id": 2, "name": "CellUniqueUsers"}])
    );
    assert_eq!(get(collector.api("/api/KPIs/")).await.1, kpis);

    // The job runs at start; wait for its first interval.
    let query = format!(
        "/api/kpis/1?interval_start_timestamp__gte={}&interval_end_timestamp__lte=&interval=1",
        iso(start).replace(':', "%3A")
    );
    let mut rows = Value::Null;
    for _ in 0..100 {
        let (_, body) = get(collector.api(&query)).await;
        if body.as_array().is_some_and(|r| r.len() >= 3) {
            rows = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let first: Vec<(i64, i64)> = rows.as_array().unwrap()[..3]
        .iter()
        .map(|r| {
            (
                r["service_id"].as_i64().unwrap(),
                r["total_bytes"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(first, vec![(1, 16100), (3, 11500), (2, 9260)], "{rows}");
    assert_eq!(rows[0]["interval_start_timestamp"], iso(start));
    assert_eq!(
        rows[0]["interval_end_timestamp"],
        iso(chrono::DateTime::from_timestamp_millis(end).unwrap())
    );
    assert_eq!(rows[0]["interval"], 1);
    assert!(rows[0]["id"].is_i64());

    let (_, cells) = get(collector.api(&format!("/api/KPIs/2/?interval=1&top=3&interval_start_timestamp__gte={}&interval_end_timestamp__lte={}",
        iso(start).replace(':', "%3A"),
        iso(chrono::DateTime::from_timestamp_millis(end).unwrap()).replace(':', "%3A")
    )))
    .await;
    let cells: Vec<(i64, i64)> = cells
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["cell_id"].as_i64().unwrap(),
                r["number_of_unique_users"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(cells, vec![(1001, 4), (1000, 3), (5005, 3)]);

    let (_, one) = get(collector.api("/api/kpis/1?interval=1&top=1&page_size=1&page=2")).await;
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");
    assert_eq!(
        one[0]["service_id"], 7,
        "page 2 is the second interval's top service"
    );

    for (path, status, says) in [
        ("/api/kpis/3", 404, "no KPI"),
        ("/api/kpis/1?interval=3", 400, "interval"),
        (
            "/api/kpis/1?interval_start_timestamp__gte=yesterday",
            400,
            "interval_start_timestamp__gte",
        ),
        ("/api/kpis/1?top=0", 400, "top"),
        ("/api/kpis/1?colour=red", 400, "colour"),
    ] {
        let (got, body) = get(collector.api(path)).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.to_string().contains(says), "{path}: {body}");
    }
    let (_, issues) = get(collector.api("/api/kpis/issues")).await;
    assert_eq!(issues[0]["line"], 3, "{issues}");
    assert!(issues[0]["message"]
        .as_str()
        .unwrap()
        .contains("bytes_uplink"));
    assert!(collector
        .metrics()
        .await
        .contains("netwarden_kpi_intervals_computed_total{granularity=\"5m\"}"));
}

#[test]
fn kpi_run_once_from_the_cli() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    copy_seed(&flows, recent_interval_end());
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\nca = \"{0}/ca.pem\"\ncert = \"{0}/server.pem\"\nkey = \"{0}/server.key\"\n\
             [database]\nurl = \"sqlite://c.db\"\n[kpi]\ndirectory = \"flows\"\n",
            pki.path().display()
        ),
    )
    .unwrap();
    let run = || {
        let out = std::process::Command::new(binary("netwarden-collector"))
            .args(["kpi", "run", "--once", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = run();
    assert_eq!(code, Some(0), "{stdout}");
    // (Whether the interval's hour is over yet depends on the clock.)
    assert!(stdout.starts_with("1 intervals and "), "{stdout}");
    assert!(
        stdout.contains("computed from 2 files: 20 rows counted, 0 skipped"),
        "{stdout}"
    );
    let (code, stdout) = run();
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("0 intervals"), "{stdout}");
}

/// Flow files two years old: a run over the look-back leaves them, says so (the run's
/// report, an issue with the reason `too_old` naming the command to run) and a run over their
/// window computes them, clearing the issue.
async fn old_files_are_reported_then_computed_on_request(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let two_years = now.timestamp_millis() - 2 * 365 * 86_400_000;
    let end = two_years - two_years.rem_euclid(300_000);
    copy_seed(dir.path(), end);
    let job = job(store.clone(), dir.path());
    let report = job.run_once(now).await.unwrap();
    assert!(report.intervals.is_empty(), "{report:?}");
    let old = report.too_old.clone().expect("the old files are reported");
    assert_eq!(old.files, 2);
    assert_eq!((old.from, old.to), (t(end - 300_000), t(end)));
    assert!(
        old.command().contains("kpi run --once --from"),
        "{}",
        old.command()
    );
    let issues = store.kpi_issues(10).await.unwrap();
    let too_old: Vec<_> = issues.iter().filter(|i| i.reason == "too_old").collect();
    assert_eq!(too_old.len(), 1, "{issues:?}");
    assert!(
        too_old[0].message.contains(&old.command()),
        "{}",
        too_old[0].message
    );
    // Again: one issue still, not one per run.
    job.run_once(now).await.unwrap();
    let again = store.kpi_issues(10).await.unwrap();
    assert_eq!(again.iter().filter(|i| i.reason == "too_old").count(), 1);

    let report = job.run_range(now, old.from, old.to).await.unwrap();
    assert_eq!(report.intervals, vec![t(end - 300_000)], "{report:?}");
    assert_eq!(report.files_read, 2);
    assert!(report.too_old.is_none(), "a window run does not look back");
    let seed = top(
        &store,
        Kpi::ServiceTrafficVolume,
        Granularity::FiveMinutes,
        end - 300_000,
        3,
    )
    .await;
    assert!(!seed.is_empty(), "the interval's figures are stored");
    let left = store.kpi_issues(10).await.unwrap();
    assert!(
        left.iter().all(|i| i.reason != "too_old"),
        "computing it clears the issue: {left:?}"
    );
}

crate::store::store_suite!(pipeline, old_files_are_reported_then_computed_on_request,);
