//! Circuit telemetry on both backends: circuits upserted and read, samples read back in time
//! order, unknown circuits listed until registered, retention, late samples, and maxout
//! events recorded, reshaped, withdrawn, queried and summed per account. (Customer email
//! claims are in `customers.rs`.)

use super::store_suite;
use crate::support::at;
use netwarden_collector::storage::telemetry::{
    AccountMaxoutSummary, CircuitEvent, CircuitMaxoutQuery, CircuitMaxoutRecord, CircuitRecord,
    LateSample, MaxoutClass, TelemetryPoint, TelemetrySample, UnknownCircuit,
};
use netwarden_collector::storage::Store;
use std::collections::BTreeSet;
use std::sync::Arc;

store_suite!(
    circuits_are_upserted_listed_by_id_and_read_back,
    the_circuits_version_moves_with_every_change_to_the_circuits,
    samples_are_read_back_in_time_order_within_a_half_open_window,
    samples_of_unknown_circuits_are_stored_and_listed_until_registered,
    old_samples_are_deleted_up_to_the_limit_and_newer_ones_kept,
    late_samples_are_listed_newest_received_first,
    a_maxout_event_is_recorded_reshaped_and_withdrawn,
    maxouts_are_filtered_and_summed_per_account,
);

const T: i64 = 1_800_000_000_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn circuit(id: &str, account: Option<&str>, mbps: f64) -> CircuitRecord {
    CircuitRecord {
        circuit_id: id.into(),
        account: account.map(String::from),
        provisioned_mbps: mbps,
        burst_mbps: None,
        pop: None,
        provisioned_at: None,
        upgraded_at: None,
        decommissioned_at: None,
    }
}

fn sample(id: &str, ms: i64, mbps: f64) -> TelemetrySample {
    let (circuit_id, at) = (id.into(), at(ms));
    TelemetrySample {
        circuit_id,
        utilization_mbps: mbps,
        at,
    }
}

fn point(ms: i64, mbps: f64) -> TelemetryPoint {
    TelemetryPoint {
        timestamp: at(ms),
        utilization_mbps: mbps,
    }
}

/// A circuit's samples from a day before `T` to a day after.
async fn points(store: &Arc<dyn Store>, id: &str) -> Vec<TelemetryPoint> {
    store
        .telemetry(id, at(T - DAY), at(T + DAY), 10_000)
        .await
        .unwrap()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn circuits_are_upserted_listed_by_id_and_read_back(store: Arc<dyn Store>) {
    let mut c2 = circuit("C-2", Some("acme"), 100.0);
    (c2.burst_mbps, c2.pop, c2.provisioned_at) = (Some(150.0), Some("SYD".into()), Some(at(T)));
    let (c1, c3) = (
        circuit("C-1", None, 50.5),
        circuit("C-3", Some("bolt"), 1e3),
    );
    let all = vec![c1.clone(), c2.clone(), c3.clone()];
    let unordered = [c2.clone(), c1.clone(), c3.clone()];
    store.save_circuits(&unordered, at(T)).await.unwrap();
    assert_eq!(store.circuits(10, 0).await.unwrap(), all);
    assert_eq!(store.circuits(2, 1).await.unwrap(), all[1..].to_vec());
    assert_eq!(store.circuit("C-2").await.unwrap(), Some(c2));
    assert_eq!(store.circuit("C-9").await.unwrap(), None);

    // Replaced in full: what is given as none is cleared.
    let mut upgraded = circuit("C-2", None, 200.0);
    (upgraded.upgraded_at, upgraded.decommissioned_at) = (Some(at(T + DAY)), Some(at(T + 2 * DAY)));
    store.save_circuit(&upgraded, at(T + DAY)).await.unwrap();
    assert_eq!(store.circuit("C-2").await.unwrap(), Some(upgraded.clone()));
    let now_all = vec![c1.clone(), upgraded, c3.clone()];
    assert_eq!(store.circuits(10, 0).await.unwrap(), now_all);

    let asked = ["C-3".to_string(), "C-9".into(), "C-1".into()];
    let mut found = store.circuits_by_ids(&asked).await.unwrap();
    found.sort_by(|a, b| a.circuit_id.cmp(&b.circuit_id));
    assert_eq!(found, vec![c1, c3]);
    assert!(store.circuits_by_ids(&[]).await.unwrap().is_empty());
}

async fn the_circuits_version_moves_with_every_change_to_the_circuits(store: Arc<dyn Store>) {
    let v0 = store.circuits_version().await.unwrap();
    let two = [circuit("V-1", None, 10.0), circuit("V-2", None, 20.0)];
    store.save_circuits(&two, at(T)).await.unwrap();
    let v1 = store.circuits_version().await.unwrap();
    assert!(v1 > v0, "{v0} then {v1}");
    let changed = circuit("V-1", Some("acme"), 10.0);
    store.save_circuit(&changed, at(T + MIN)).await.unwrap();
    let v2 = store.circuits_version().await.unwrap();
    assert!(v2 > v1, "{v1} then {v2}");
    // Samples and reads change no circuit.
    let samples = [sample("V-1", T, 1.0)];
    store.save_telemetry(&samples, at(T)).await.unwrap();
    store.circuits(10, 0).await.unwrap();
    assert_eq!(store.circuits_version().await.unwrap(), v2);
}

async fn samples_are_read_back_in_time_order_within_a_half_open_window(store: Arc<dyn Store>) {
    let known = [circuit("C-1", None, 100.0), circuit("C-2", None, 100.0)];
    store.save_circuits(&known, at(T)).await.unwrap();
    let mbps = |m: i64| m as f64 * 10.0 + 0.5;
    // Out of order, over two commits, with another circuit's samples at the same times.
    for minutes in [[3, 0, 4], [1, 2, 5]] {
        let mut samples: Vec<_> = minutes.map(|m| sample("C-1", T + m * MIN, mbps(m))).into();
        samples.push(sample("C-2", T + minutes[0] * MIN, 1.0));
        let unknown = store.save_telemetry(&samples, at(T + HOUR)).await.unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
    }
    let read = |from: i64, to: i64, limit: u32| store.telemetry("C-1", at(from), at(to), limit);
    let expected: Vec<_> = (0..=5).map(|m| point(T + m * MIN, mbps(m))).collect();
    assert_eq!(read(T, T + HOUR, 100).await.unwrap(), expected);
    // [from, to): minute 1 in, minute 3 out.
    let window = read(T + MIN, T + 3 * MIN, 100).await.unwrap();
    assert_eq!(window, expected[1..3].to_vec());
    assert_eq!(read(T, T + HOUR, 2).await.unwrap(), expected[..2].to_vec());
    assert!(read(T + HOUR, T + 2 * HOUR, 100).await.unwrap().is_empty());
    let other = vec![point(T + MIN, 1.0), point(T + 3 * MIN, 1.0)];
    assert_eq!(points(&store, "C-2").await, other);
    assert!(points(&store, "C-9").await.is_empty());
}

async fn samples_of_unknown_circuits_are_stored_and_listed_until_registered(store: Arc<dyn Store>) {
    store
        .save_circuit(&circuit("K-1", None, 1.0), at(T))
        .await
        .unwrap();
    let now = at(T + HOUR);
    let first = [
        sample("K-1", T, 1.0),
        sample("U-1", T + MIN, 2.0),
        sample("U-1", T + 2 * MIN, 3.0),
        sample("U-2", T + MIN, 4.0),
    ];
    let unknown = store.save_telemetry(&first, now).await.unwrap();
    assert_eq!(unknown, ids(&["U-1", "U-2"]));
    // An earlier and a later sample widen what is listed.
    let second = [sample("U-1", T, 5.0), sample("U-1", T + 5 * MIN, 6.0)];
    let unknown = store.save_telemetry(&second, now).await.unwrap();
    assert_eq!(unknown, ids(&["U-1"]));
    let listed = |id: &str, samples, first: i64, last: i64| UnknownCircuit {
        circuit_id: id.into(),
        samples,
        first_seen: at(first),
        last_seen: at(last),
    };
    let u2 = listed("U-2", 1, T + MIN, T + MIN);
    let both = vec![listed("U-1", 4, T, T + 5 * MIN), u2.clone()];
    assert_eq!(store.unknown_circuits().await.unwrap(), both);
    let stored: Vec<f64> = points(&store, "U-1")
        .await
        .iter()
        .map(|p| p.utilization_mbps)
        .collect();
    assert_eq!(stored, [5.0, 2.0, 3.0, 6.0]);

    // Registered, it is no longer listed, and its next samples are not reported.
    store
        .save_circuit(&circuit("U-1", None, 1.0), now)
        .await
        .unwrap();
    assert_eq!(store.unknown_circuits().await.unwrap(), vec![u2.clone()]);
    let next = [
        sample("U-1", T + 6 * MIN, 7.0),
        sample("K-1", T + 6 * MIN, 8.0),
    ];
    assert!(store.save_telemetry(&next, now).await.unwrap().is_empty());
    assert_eq!(store.unknown_circuits().await.unwrap(), vec![u2]);
    assert_eq!(points(&store, "U-1").await.len(), 5);
}

async fn old_samples_are_deleted_up_to_the_limit_and_newer_ones_kept(store: Arc<dyn Store>) {
    // One commit of 1,000 samples: SQLite stores a commit that large straight in its indexed
    // table, where the limit applies (samples still in its intake all go at once).
    let samples: Vec<_> = (0..1_000)
        .map(|i| sample(["R-1", "R-2"][i as usize % 2], T + i * MIN, i as f64))
        .collect();
    store.save_telemetry(&samples, at(T + DAY)).await.unwrap();
    let cutoff = at(T + 600 * MIN);
    for (limit, went) in [(250, 250), (1_000, 350), (1_000, 0)] {
        let deleted = store.delete_telemetry_before(cutoff, limit).await.unwrap();
        assert_eq!(deleted, went, "limit {limit}");
    }
    for (id, first) in [("R-1", 600), ("R-2", 601)] {
        let left = points(&store, id).await;
        assert_eq!(left.len(), 200, "{id}");
        // A sample at the cutoff is not older than it: kept.
        assert_eq!(left[0], point(T + first * MIN, first as f64), "{id}");
        assert_eq!(left[199].timestamp, at(T + (first + 398) * MIN), "{id}");
    }
}

async fn late_samples_are_listed_newest_received_first(store: Arc<dyn Store>) {
    assert!(store.late_telemetry(10).await.unwrap().is_empty());
    let late = |id: &str, ms: i64, received: i64| LateSample {
        circuit_id: id.into(),
        timestamp: at(ms),
        utilization_mbps: ms as f64 / 1e12,
        newest: at(T + HOUR),
        received_at: at(T + 2 * HOUR + received),
    };
    let (a, b, c) = (
        late("L-1", T, 0),
        late("L-2", T + MIN, 2_000),
        late("L-1", T, 1_000),
    );
    store
        .save_late_telemetry(&[a.clone(), b.clone()])
        .await
        .unwrap();
    store
        .save_late_telemetry(std::slice::from_ref(&c))
        .await
        .unwrap();
    let all = vec![b.clone(), c.clone(), a];
    assert_eq!(store.late_telemetry(10).await.unwrap(), all);
    assert_eq!(store.late_telemetry(2).await.unwrap(), vec![b, c]);
}

fn event(start: i64, minutes: i64, peak_mbps: f64, severity: MaxoutClass) -> CircuitEvent {
    let (end, samples, peak_at) = (start + minutes * MIN, minutes as u32 + 1, start + MIN);
    CircuitEvent {
        start,
        end,
        samples,
        peak_mbps,
        peak_at,
        severity,
    }
}

/// The ids of the events a query lists (at most 100).
async fn listed(store: &Arc<dyn Store>, edit: impl FnOnce(&mut CircuitMaxoutQuery)) -> Vec<i64> {
    let mut query = CircuitMaxoutQuery {
        limit: 100,
        ..Default::default()
    };
    edit(&mut query);
    store
        .circuit_maxouts(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

async fn a_maxout_event_is_recorded_reshaped_and_withdrawn(store: Arc<dyn Store>) {
    let mut c = circuit("C-1", Some("acme"), 100.0);
    c.burst_mbps = Some(120.0);
    store.save_circuit(&c, at(T - DAY)).await.unwrap();
    let opened = event(T, 2, 110.0, MaxoutClass::Burst);
    let id = store
        .open_circuit_maxout(&c, &opened, true, false, at(T))
        .await
        .unwrap();
    let of_c1 = CircuitMaxoutQuery {
        circuit_id: Some("C-1".into()),
        limit: 10,
        ..Default::default()
    };
    let mut record = CircuitMaxoutRecord {
        id,
        circuit_id: "C-1".into(),
        account: Some("acme".into()),
        severity: "burst".into(),
        start: at(T),
        end: at(T + 2 * MIN),
        duration_secs: 120,
        samples: 3,
        peak_mbps: 110.0,
        peak_pct: 110.0,
        peak_at: Some(at(T + MIN)),
        provisioned_mbps: 100.0,
        burst_mbps: Some(120.0),
        open: true,
        historical: false,
    };
    assert_eq!(
        store.circuit_maxouts(&of_c1).await.unwrap(),
        vec![record.clone()]
    );
    assert_eq!(listed(&store, |q| q.open_only = true).await, [id]);

    // It goes on over the burst ceiling, peaks later, then closes.
    let mut grown = event(T, 5, 130.0, MaxoutClass::Maxout);
    grown.peak_at = T + 4 * MIN;
    store
        .update_circuit_maxout(id, &grown, false)
        .await
        .unwrap();
    (record.severity, record.end, record.duration_secs) = ("maxout".into(), at(T + 5 * MIN), 300);
    (record.samples, record.peak_mbps, record.peak_pct) = (6, 130.0, 130.0);
    (record.peak_at, record.open) = (Some(at(T + 4 * MIN)), false);
    assert_eq!(
        store.circuit_maxouts(&of_c1).await.unwrap(),
        vec![record.clone()]
    );
    assert!(listed(&store, |q| q.open_only = true).await.is_empty());
    store
        .mark_circuit_maxout_notified(id, at(T + 6 * MIN))
        .await
        .unwrap();
    assert_eq!(store.circuit_maxouts(&of_c1).await.unwrap(), vec![record]);

    // One a backfill found whole, the day before: listed first, historical.
    let found = event(T - DAY, 60, 150.0, MaxoutClass::Maxout);
    let old = store
        .open_circuit_maxout(&c, &found, false, true, at(T))
        .await
        .unwrap();
    let both = store.circuit_maxouts(&of_c1).await.unwrap();
    assert_eq!(both.iter().map(|r| r.id).collect::<Vec<_>>(), [old, id]);
    assert_eq!(
        (both[0].historical, both[0].open, both[0].duration_secs),
        (true, false, 3_600)
    );

    // Withdrawn: kept, but no longer listed or summed.
    store
        .withdraw_circuit_maxout(id, at(T + 8 * MIN))
        .await
        .unwrap();
    assert_eq!(listed(&store, |_| ()).await, [old]);
    let summed = store
        .circuit_maxout_summary(&CircuitMaxoutQuery::default())
        .await
        .unwrap();
    assert_eq!(
        (summed.len(), summed[0].events, summed[0].hours_at_max),
        (1, 1, 1.0)
    );
}

async fn maxouts_are_filtered_and_summed_per_account(store: Arc<dyn Store>) {
    let a1 = circuit("A-1", Some("acme"), 100.0);
    let a2 = circuit("A-2", Some("acme"), 200.0);
    let b1 = circuit("B-1", Some("bolt"), 50.0);
    let n1 = circuit("N-1", None, 100.0);
    let mut open = Vec::new();
    for (c, start, minutes, peak, is_open) in [
        (&a1, T, 60, 120.0, false),
        (&a2, T + 2 * HOUR, 30, 260.0, true),
        (&a1, T + DAY, 15, 105.0, false),
        (&b1, T + HOUR, 30, 60.0, false),
        (&n1, T + 3 * HOUR, 60, 150.0, false),
    ] {
        let (e, now) = (
            event(start, minutes, peak, MaxoutClass::Maxout),
            at(T + 2 * DAY),
        );
        let id = store.open_circuit_maxout(c, &e, is_open, false, now);
        open.push(id.await.unwrap());
    }
    let [e_a1, e_a2, e_a3, e_b1, e_n1] = open[..] else {
        unreachable!()
    };
    let acme = Some("acme".to_string());
    assert_eq!(
        listed(&store, |q| q.account = acme.clone()).await,
        [e_a1, e_a2, e_a3]
    );
    assert_eq!(
        listed(&store, |q| q.circuit_id = Some("A-1".into())).await,
        [e_a1, e_a3]
    );
    // Events that end at or after `from` and start before `to`.
    let (from, to) = (Some(at(T + 90 * MIN)), Some(at(T + DAY)));
    let window = |q: &mut CircuitMaxoutQuery| (q.from, q.to) = (from, to);
    assert_eq!(listed(&store, window).await, [e_b1, e_a2, e_n1]);
    assert_eq!(listed(&store, |q| q.open_only = true).await, [e_a2]);
    assert_eq!(listed(&store, |q| q.limit = 2).await, [e_a1, e_b1]);

    let summary = |account: Option<&str>, events, circuits, hours_at_max, peak_mbps, peak_pct| {
        let account = account.map(String::from);
        AccountMaxoutSummary {
            account,
            events,
            circuits,
            hours_at_max,
            peak_mbps,
            peak_pct,
        }
    };
    // Sorted here: the backends place the events without an account differently.
    let mut all = store
        .circuit_maxout_summary(&CircuitMaxoutQuery::default())
        .await
        .unwrap();
    all.sort_by(|x, y| x.account.cmp(&y.account));
    let expected = vec![
        summary(None, 1, 1, 1.0, 150.0, 150.0),
        summary(Some("acme"), 3, 2, 1.75, 260.0, 130.0),
        summary(Some("bolt"), 1, 1, 0.5, 60.0, 120.0),
    ];
    assert_eq!(all, expected);
    let acme_in_window = CircuitMaxoutQuery {
        account: acme,
        from,
        to,
        ..Default::default()
    };
    let windowed = store.circuit_maxout_summary(&acme_in_window).await.unwrap();
    assert_eq!(
        windowed,
        vec![summary(Some("acme"), 1, 1, 0.5, 260.0, 130.0)]
    );
}
