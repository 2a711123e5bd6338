//! One storage suite, run against SQLite and PostgreSQL alike.

use super::store_suite;
use crate::support::{at, batch, probe_record};
use chrono::Duration;
use netwarden_collector::storage::{DeviceQuery, HistoryQuery, IngestOutcome, Store};
use netwarden_proto::v1;
use netwarden_shared::{AgentId, DeviceStatus};
use std::sync::Arc;

store_suite!(
    a_replayed_batch_changes_nothing,
    devices_follow_the_newest_round,
    history_is_filtered_by_time_and_limited,
    agents_report_totals_and_backlog,
    discoveries_and_speed_tests_are_stored,
    migrating_again_applies_nothing,
    concurrent_agents_and_streams_do_not_collide,
    device_listing_filters_and_pages,
    a_group_stores_each_new_batch_once,
    the_inventory_logs_mac_changes_in_time_order,
    a_late_sighting_fills_only_what_the_newer_one_lacked,
    liveness_evidence_and_site_baselines_are_kept,
    port_checks_are_stored_and_summarised_per_port,
    speed_tests_are_read_by_agent_window_and_page,
);

/// Every device in the store, in id order.
async fn all_devices(store: &Arc<dyn Store>) -> Vec<netwarden_collector::storage::DeviceRow> {
    store
        .devices(&DeviceQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
}

fn agent(name: &str) -> AgentId {
    AgentId::new(name).unwrap()
}

const T0: i64 = 1_790_000_000_000;

async fn a_replayed_batch_changes_nothing(store: Arc<dyn Store>) {
    let a = agent("a1");
    let b = batch(
        7,
        vec![
            probe_record(1, T0, "10.0.0.2", 4),
            probe_record(2, T0, "10.0.0.3", 0),
        ],
    );
    assert_eq!(
        store.ingest(&a, b.clone(), at(T0)).await.unwrap(),
        IngestOutcome::Stored { records: 2 }
    );
    assert_eq!(
        store.ingest(&a, b.clone(), at(T0 + 5)).await.unwrap(),
        IngestOutcome::Duplicate
    );
    // The same sequence from another agent is a different batch.
    assert_eq!(
        store.ingest(&agent("a2"), b, at(T0)).await.unwrap(),
        IngestOutcome::Stored { records: 2 }
    );
    let audit = store.ingest_audit(&a).await.unwrap();
    assert_eq!(
        (audit.batches, audit.probe_results, audit.records_in_batches),
        (1, 2, 2)
    );
    assert_eq!((audit.min_record_id, audit.max_record_id), (1, 2));
    let agents = store.agents().await.unwrap();
    assert_eq!(agents[0].results_received, 2);
    assert_eq!(agents[0].batches_received, 1);
    // A replay still counts as the agent being alive.
    assert_eq!(agents[0].last_seen, at(T0 + 5));
}

async fn devices_follow_the_newest_round(store: Arc<dyn Store>) {
    let a = agent("a1");
    // Newer round first, older second, in one batch and then across batches.
    let b1 = batch(
        1,
        vec![
            probe_record(2, T0 + 2000, "10.0.0.2", 0),
            probe_record(1, T0, "10.0.0.2", 4),
        ],
    );
    store.ingest(&a, b1, at(T0)).await.unwrap();
    let devices = all_devices(&store).await;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].status, Some("offline"));
    assert_eq!(devices[0].last_loss_pct, Some(100.0));
    assert_eq!(devices[0].last_probe_at, Some(at(T0 + 2000)));

    // A late batch with an older round must not overwrite the newer status.
    let late = batch(2, vec![probe_record(3, T0 + 1000, "10.0.0.2", 4)]);
    store.ingest(&a, late, at(T0)).await.unwrap();
    let device = store.device(devices[0].id).await.unwrap().unwrap();
    assert_eq!(device.status, Some("offline"));

    let newer = batch(3, vec![probe_record(4, T0 + 3000, "10.0.0.2", 3)]);
    store.ingest(&a, newer, at(T0)).await.unwrap();
    let device = store.device(devices[0].id).await.unwrap().unwrap();
    assert_eq!(device.status, Some("degraded"));
    assert_eq!(device.last_loss_pct, Some(25.0));
    assert_eq!(device.last_rtt_ms, Some(11.0));
    // First seen is the earliest observation, even one that arrived late.
    assert_eq!(device.first_seen, at(T0));
    assert_eq!(device.last_seen, at(T0 + 3000));
    assert!(store.device(9_999_999).await.unwrap().is_none());
}

async fn history_is_filtered_by_time_and_limited(store: Arc<dyn Store>) {
    let a = agent("a1");
    let records = (0..10)
        .map(|i| probe_record(i + 1, T0 + i as i64 * 60_000, "10.0.0.9", 4))
        .collect();
    store.ingest(&a, batch(1, records), at(T0)).await.unwrap();
    let id = store
        .devices(&DeviceQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .id;
    let all = HistoryQuery {
        from: at(T0),
        to: at(T0) + Duration::hours(1),
        limit: 100,
    };
    let rows = store.device_history(id, &all).await.unwrap();
    assert_eq!(rows.len(), 10);
    assert!(rows.windows(2).all(|w| w[0].ts < w[1].ts));
    assert_eq!(rows[0].rtts_ms, vec![10.0, 11.0, 12.0, 13.0]);
    assert_eq!(rows[0].status, "online");
    // [from, to): minutes 2, 3, 4
    let window = HistoryQuery {
        from: at(T0 + 120_000),
        to: at(T0 + 300_000),
        limit: 100,
    };
    let rows = store.device_history(id, &window).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.agent_record_id).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    let limited = HistoryQuery { limit: 4, ..all };
    assert_eq!(store.device_history(id, &limited).await.unwrap().len(), 4);
}

async fn agents_report_totals_and_backlog(store: Arc<dyn Store>) {
    let a = agent("branch-1");
    let mut b = batch(10, vec![probe_record(1, T0, "10.0.0.2", 4)]);
    b.status.buffer_backlog = 42;
    b.status.dropped_total = 3;
    store.ingest(&a, b, at(T0)).await.unwrap();
    let mut b2 = batch(
        11,
        vec![
            probe_record(2, T0, "10.0.0.2", 4),
            probe_record(3, T0, "10.0.0.3", 4),
        ],
    );
    b2.status.buffer_backlog = 2;
    b2.status.dropped_total = 3;
    store.ingest(&a, b2, at(T0 + 1000)).await.unwrap();
    let agents = store.agents().await.unwrap();
    assert_eq!(agents.len(), 1);
    let row = &agents[0];
    assert_eq!(row.id, "branch-1");
    assert_eq!(
        (
            row.results_received,
            row.batches_received,
            row.last_sequence
        ),
        (3, 2, 11)
    );
    assert_eq!((row.buffer_backlog, row.dropped_total), (2, 3));
    assert_eq!((row.first_seen, row.last_seen), (at(T0), at(T0 + 1000)));
}

async fn discoveries_and_speed_tests_are_stored(store: Arc<dyn Store>) {
    let a = agent("a1");
    let discovered = v1::Record {
        record_id: 1,
        observed_at_unix_ms: T0,
        kind: Some(v1::record::Kind::DiscoveredHost(v1::DiscoveredHost {
            address: "10.0.0.7".into(),
            mac: "02:6C:61:62:00:06".into(),
            vendor: "Lab".into(),
            hostname: "h6.lab".into(),
            open_ports: vec![22, 443],
            rtt_ms: 0.3,
            method: v1::DiscoveryMethod::IcmpAndArp as i32,
            ..Default::default()
        })),
    };
    let speed = v1::Record {
        record_id: 2,
        observed_at_unix_ms: T0,
        kind: Some(v1::record::Kind::SpeedTest(v1::SpeedTest {
            url: "https://collector/speedtest/download".into(),
            direction: v1::SpeedDirection::Download as i32,
            bytes: 1_000_000,
            duration_us: 100_000,
            mbps: 80.0,
            error: String::new(),
        })),
    };
    let b = batch(
        1,
        vec![discovered, speed, probe_record(3, T0 + 1, "10.0.0.7", 4)],
    );
    assert_eq!(
        store.ingest(&a, b, at(T0)).await.unwrap(),
        IngestOutcome::Stored { records: 3 }
    );
    let devices = all_devices(&store).await;
    assert_eq!(
        devices.len(),
        1,
        "discovery and probe of one address are one device"
    );
    let d = &devices[0];
    assert_eq!(d.mac.as_deref(), Some("02:6c:61:62:00:06"));
    assert_eq!(
        (d.vendor.as_deref(), d.hostname.as_deref()),
        (Some("Lab"), Some("h6.lab"))
    );
    assert_eq!(d.status, Some("online"));
    // A later probe-only batch keeps the identity facts.
    store
        .ingest(
            &a,
            batch(2, vec![probe_record(4, T0 + 2, "10.0.0.7", 0)]),
            at(T0),
        )
        .await
        .unwrap();
    let d = store.device(d.id).await.unwrap().unwrap();
    assert_eq!(d.mac.as_deref(), Some("02:6c:61:62:00:06"));
    assert_eq!(d.status, Some("offline"));
}

async fn migrating_again_applies_nothing(store: Arc<dyn Store>) {
    assert!(store.migrate().await.unwrap().is_empty());
    store.ping().await.unwrap();
}

async fn concurrent_agents_and_streams_do_not_collide(store: Arc<dyn Store>) {
    // Four agents, two streams each replaying the same 25 batches concurrently: every batch is
    // stored exactly once, with no deadlock between overlapping device upserts.
    let mut tasks = tokio::task::JoinSet::new();
    for agent_no in 0..4 {
        for _stream in 0..2 {
            let store = store.clone();
            tasks.spawn(async move {
                let a = agent(&format!("agent-{agent_no}"));
                let mut stored = 0;
                for seq in 1..=25u64 {
                    let records = (0..20u64)
                        .map(|i| {
                            probe_record(
                                seq * 100 + i,
                                T0 + seq as i64,
                                &format!("10.1.0.{}", (i * 7 + seq) % 20),
                                4,
                            )
                        })
                        .collect();
                    if let IngestOutcome::Stored { records } =
                        store.ingest(&a, batch(seq, records), at(T0)).await.unwrap()
                    {
                        stored += records;
                    }
                }
                stored
            });
        }
    }
    let mut total = 0;
    while let Some(stored) = tasks.join_next().await {
        total += stored.unwrap();
    }
    assert_eq!(total, 4 * 25 * 20);
    for agent_no in 0..4 {
        let audit = store
            .ingest_audit(&agent(&format!("agent-{agent_no}")))
            .await
            .unwrap();
        assert_eq!(
            (
                audit.batches,
                audit.probe_results,
                audit.distinct_probe_record_ids
            ),
            (25, 500, 500)
        );
    }
    let devices = all_devices(&store).await;
    assert_eq!(devices.len(), 4 * 20);
}

async fn device_listing_filters_and_pages(store: Arc<dyn Store>) {
    let records = vec![
        probe_record(1, T0, "10.0.0.1", 4),
        probe_record(2, T0, "10.0.0.2", 0),
        probe_record(3, T0, "10.0.0.3", 2),
        probe_record(4, T0, "10.0.0.4", 4),
    ];
    store
        .ingest(&agent("a1"), batch(1, records), at(T0))
        .await
        .unwrap();
    store
        .ingest(
            &agent("a2"),
            batch(1, vec![probe_record(1, T0, "10.0.0.1", 4)]),
            at(T0),
        )
        .await
        .unwrap();
    let q = |agent_id: Option<&str>, status, limit, offset| DeviceQuery {
        agent_id: agent_id.map(String::from),
        status,
        device_type: None,
        limit,
        offset,
    };
    assert_eq!(
        store.devices(&q(None, None, 100, 0)).await.unwrap().len(),
        5
    );
    assert_eq!(
        store
            .devices(&q(Some("a1"), None, 100, 0))
            .await
            .unwrap()
            .len(),
        4
    );
    let online = store
        .devices(&q(None, Some(DeviceStatus::Online), 100, 0))
        .await
        .unwrap();
    assert_eq!(online.len(), 3);
    assert!(online.iter().all(|d| d.status == Some("online")));
    let offline = store
        .devices(&q(Some("a1"), Some(DeviceStatus::Offline), 100, 0))
        .await
        .unwrap();
    assert_eq!(
        offline
            .iter()
            .map(|d| d.address.as_str())
            .collect::<Vec<_>>(),
        ["10.0.0.2"]
    );
    let page1 = store.devices(&q(None, None, 2, 0)).await.unwrap();
    let page2 = store.devices(&q(None, None, 2, 2)).await.unwrap();
    assert_eq!(page1.len(), 2);
    assert!(page1.iter().all(|d| page2.iter().all(|e| e.id != d.id)));

    // A type an operator gives survives the agent reporting the device again, and filters.
    let router = page1[0].id;
    let set = store.set_device_type(router, Some("router")).await.unwrap();
    assert_eq!(set.unwrap().device_type.as_deref(), Some("router"));
    assert!(store
        .set_device_type(999_999, Some("router"))
        .await
        .unwrap()
        .is_none());
    store
        .ingest(
            &agent("a1"),
            batch(2, vec![probe_record(5, T0 + 60_000, "10.0.0.1", 4)]),
            at(T0 + 60_000),
        )
        .await
        .unwrap();
    let typed = |t: &str| DeviceQuery {
        device_type: Some(t.into()),
        limit: 100,
        ..Default::default()
    };
    let routers = store.devices(&typed("router")).await.unwrap();
    assert_eq!(routers.iter().map(|d| d.id).collect::<Vec<_>>(), [router]);
    assert_eq!(routers[0].device_type.as_deref(), Some("router"));
    assert_eq!(store.devices(&typed("unassigned")).await.unwrap().len(), 4);
    assert!(store.devices(&typed("switch")).await.unwrap().is_empty());
    store.set_device_type(router, None).await.unwrap();
    assert_eq!(store.devices(&typed("unassigned")).await.unwrap().len(), 5);
}

async fn a_group_stores_each_new_batch_once(store: Arc<dyn Store>) {
    let (a, b) = (agent("a"), agent("b"));
    let first = batch(1, vec![probe_record(1, T0, "10.0.0.2", 4)]);
    store.ingest(&a, first.clone(), at(T0)).await.unwrap();
    // An old replay, two new batches of one agent (the newer sent first), a copy of one of
    // them, and another agent's batch, all in one transaction.
    let mut newest = batch(3, vec![probe_record(3, T0 + 2000, "10.0.0.2", 0)]);
    newest.status.buffer_backlog = 7;
    let items = vec![
        (a.clone(), first),
        (a.clone(), newest),
        (
            a.clone(),
            batch(
                2,
                vec![
                    probe_record(2, T0 + 1000, "10.0.0.2", 4),
                    probe_record(4, T0 + 1000, "10.0.0.3", 4),
                ],
            ),
        ),
        (
            a.clone(),
            batch(
                2,
                vec![
                    probe_record(2, T0 + 1000, "10.0.0.2", 4),
                    probe_record(4, T0 + 1000, "10.0.0.3", 4),
                ],
            ),
        ),
        (
            b.clone(),
            batch(1, vec![probe_record(1, T0, "10.0.0.2", 4)]),
        ),
    ];
    let outcomes: Vec<_> = store
        .ingest_group(std::sync::Arc::new(items), at(T0 + 5000))
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        outcomes,
        vec![
            IngestOutcome::Duplicate,
            IngestOutcome::Stored { records: 1 },
            IngestOutcome::Stored { records: 2 },
            IngestOutcome::Duplicate,
            IngestOutcome::Stored { records: 1 },
        ]
    );
    let audit = store.ingest_audit(&a).await.unwrap();
    assert_eq!(
        (
            audit.batches,
            audit.probe_results,
            audit.distinct_probe_record_ids
        ),
        (3, 4, 4)
    );
    let agents = store.agents().await.unwrap();
    let row = agents.iter().find(|r| r.id == "a").unwrap();
    assert_eq!(
        (
            row.results_received,
            row.batches_received,
            row.last_sequence
        ),
        (4, 3, 3)
    );
    assert_eq!(row.buffer_backlog, 7, "the newest batch's report wins");
    // The device reflects its newest round across the group (offline at T0+2000).
    let devices = store
        .devices(&DeviceQuery {
            agent_id: Some("a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let d = devices.iter().find(|d| d.address == "10.0.0.2").unwrap();
    assert_eq!(
        (d.status, d.last_probe_at),
        (Some("offline"), Some(at(T0 + 2000)))
    );
}

fn sighting(record_id: u64, at_ms: i64, mac: &str, vendor: &str) -> v1::Record {
    v1::Record {
        record_id,
        observed_at_unix_ms: at_ms,
        kind: Some(v1::record::Kind::DiscoveredHost(v1::DiscoveredHost {
            address: "10.0.0.9".into(),
            mac: mac.into(),
            vendor: vendor.into(),
            hostname: String::new(),
            open_ports: vec![],
            rtt_ms: 0.2,
            method: if mac.is_empty() {
                v1::DiscoveryMethod::Icmp as i32
            } else {
                v1::DiscoveryMethod::IcmpAndArp as i32
            },
            ..Default::default()
        })),
    }
}

async fn the_inventory_logs_mac_changes_in_time_order(store: Arc<dyn Store>) {
    let a = agent("a1");
    // The newest sighting arrives first; the older ones come later, in their own batches (a
    // replay after an outage).
    let newest = batch(
        3,
        vec![sighting(
            3,
            T0 + 20_000,
            "b8:27:eb:00:00:02",
            "Raspberry Pi Foundation",
        )],
    );
    let oldest = batch(
        1,
        vec![sighting(1, T0, "00:00:0c:00:00:01", "Cisco Systems, Inc")],
    );
    let icmp_only = batch(2, vec![sighting(2, T0 + 10_000, "", "")]);
    for b in [newest, oldest, icmp_only] {
        store.ingest(&a, b, at(T0 + 30_000)).await.unwrap();
    }
    let devices = all_devices(&store).await;
    assert_eq!(devices.len(), 1);
    let d = &devices[0];
    assert_eq!((d.first_seen, d.last_seen), (at(T0), at(T0 + 20_000)));
    assert_eq!(
        (d.mac.as_deref(), d.vendor.as_deref()),
        (Some("b8:27:eb:00:00:02"), Some("Raspberry Pi Foundation")),
        "the older sightings, ingested last, do not overwrite the newest identity"
    );
    let changes = store.identity_changes(d.id).await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    let c = &changes[0];
    assert_eq!(c.at, at(T0 + 20_000));
    assert_eq!(
        (c.old_mac.as_deref(), c.new_mac.as_deref()),
        (Some("00:00:0c:00:00:01"), Some("b8:27:eb:00:00:02"))
    );
    assert_eq!(c.new_vendor.as_deref(), Some("Raspberry Pi Foundation"));
    assert!(store
        .identity_changes(d.id + 1000)
        .await
        .unwrap()
        .is_empty());
}

fn batch_of(sequence: u64, records: Vec<netwarden_shared::Record>) -> netwarden_shared::Batch {
    netwarden_shared::Batch {
        sequence,
        claimed_agent_id: None,
        status: Default::default(),
        records,
    }
}

/// The merge rules (`storage::merge`) on each backend's own SQL: a late, older sighting gives
/// a name the newer one lacked, never its MAC; a late, older round never its status.
async fn a_late_sighting_fills_only_what_the_newer_one_lacked(store: Arc<dyn Store>) {
    let a = agent("a1");
    let newer = batch(
        2,
        vec![
            sighting(2, T0 + 20_000, "b8:27:eb:00:00:02", ""),
            probe_record(3, T0 + 20_000, "10.0.0.9", 0),
        ],
    );
    let older = |sequence: u64| {
        let mut named = sighting(sequence * 10, T0, "00:00:0c:00:00:01", "Cisco Systems, Inc");
        if let Some(v1::record::Kind::DiscoveredHost(host)) = &mut named.kind {
            host.hostname = "core-sw1.lab".into();
        }
        batch(
            sequence,
            vec![named, probe_record(sequence * 10 + 1, T0, "10.0.0.9", 4)],
        )
    };
    // The older one twice: the second time the device is known, which SQLite writes by row id.
    for b in [newer, older(3), older(4)] {
        store.ingest(&a, b, at(T0 + 30_000)).await.unwrap();
    }
    // The same two sightings in one batch: the planner merges them by the same rule first.
    let together = older(5);
    let mut records = batch(6, vec![sighting(60, T0 + 20_000, "b8:27:eb:00:00:02", "")]).records;
    records.extend(together.records);
    store
        .ingest(&agent("a2"), batch_of(7, records), at(T0 + 30_000))
        .await
        .unwrap();
    let devices = all_devices(&store).await;
    assert_eq!(devices.len(), 2);
    let one_batch = devices.iter().find(|d| d.agent_id == "a2").unwrap();
    assert_eq!(
        (one_batch.mac.as_deref(), one_batch.hostname.as_deref()),
        (Some("b8:27:eb:00:00:02"), Some("core-sw1.lab"))
    );
    let d = devices.iter().find(|d| d.agent_id == "a1").unwrap();
    assert_eq!(
        d.mac.as_deref(),
        Some("b8:27:eb:00:00:02"),
        "the newer MAC stays"
    );
    assert_eq!(
        d.hostname.as_deref(),
        Some("core-sw1.lab"),
        "the gap is filled"
    );
    assert_eq!(
        d.vendor.as_deref(),
        Some("Cisco Systems, Inc"),
        "the gap is filled"
    );
    assert_eq!(
        (d.status, d.last_probe_at),
        (Some("offline"), Some(at(T0 + 20_000)))
    );
    assert_eq!((d.first_seen, d.last_seen), (at(T0), at(T0 + 20_000)));
}

/// An ICMP-silent round the agent found up by ARP: online, and saying how (issue 27).
fn silent_but_there(record_id: u64, at_ms: i64, target: &str) -> v1::Record {
    let mut record = probe_record(record_id, at_ms, target, 0);
    if let Some(v1::record::Kind::ProbeRound(round)) = &mut record.kind {
        round.status = v1::DeviceStatus::Online as i32;
        round.alive_by = v1::Evidence::Arp as i32;
    }
    record
}

async fn liveness_evidence_and_site_baselines_are_kept(store: Arc<dyn Store>) {
    let a = agent("a1");
    store
        .ingest(
            &a,
            batch(1, vec![silent_but_there(1, T0, "10.0.0.8")]),
            at(T0),
        )
        .await
        .unwrap();
    let devices = all_devices(&store).await;
    assert_eq!(devices[0].status, Some("online"));
    assert_eq!(devices[0].alive_by.as_deref(), Some("arp"));
    // The newest round decides, evidence included; a late older one changes nothing.
    store
        .ingest(
            &a,
            batch(2, vec![probe_record(2, T0 + 2000, "10.0.0.8", 0)]),
            at(T0),
        )
        .await
        .unwrap();
    store
        .ingest(
            &a,
            batch(3, vec![silent_but_there(3, T0 + 1000, "10.0.0.8")]),
            at(T0),
        )
        .await
        .unwrap();
    let device = store.device(devices[0].id).await.unwrap().unwrap();
    assert_eq!(device.status, Some("offline"));
    assert_eq!(device.alive_by, None);
    store
        .ingest(
            &a,
            batch(4, vec![probe_record(4, T0 + 3000, "10.0.0.8", 4)]),
            at(T0),
        )
        .await
        .unwrap();
    let device = store.device(devices[0].id).await.unwrap().unwrap();
    assert_eq!(device.alive_by.as_deref(), Some("icmp"));

    // A site's first sweep is its baseline, whoever asks later and with whatever time.
    assert_eq!(
        store.site_baseline("a1", "hq", at(T0)).await.unwrap(),
        at(T0)
    );
    assert_eq!(
        store
            .site_baseline("a1", "hq", at(T0 + 60_000))
            .await
            .unwrap(),
        at(T0)
    );
    assert_eq!(
        store
            .site_baseline("a1", "lab", at(T0 + 60_000))
            .await
            .unwrap(),
        at(T0 + 60_000)
    );
    assert_eq!(
        store
            .site_baseline("a2", "hq", at(T0 + 5_000))
            .await
            .unwrap(),
        at(T0 + 5_000)
    );
}

/// A discovery batch whose host name carries a NUL, built past the wire's checks (as a bug in
/// them, or an older agent's batch already queued, would deliver it).
fn nul_named_host(sequence: u64) -> netwarden_shared::Batch {
    let mut b = batch(sequence, vec![probe_record(1, T0, "10.0.0.2", 4)]);
    b.records.push(netwarden_shared::Record {
        record_id: 2,
        observed_at: at(T0),
        kind: netwarden_shared::RecordKind::Discovery(netwarden_shared::DiscoveredHost {
            address: "10.0.0.9".parse().unwrap(),
            mac: None,
            vendor: None,
            hostname: Some("printer\0.lan".into()),
            open_ports: vec![],
            rtt_ms: None,
            method: netwarden_shared::DiscoveryMethod::Icmp,
            site: None,
            local: false,
        }),
    });
    b
}

/// PostgreSQL refuses a NUL in text. That is a data error: retrying it would block the agent's
/// uplink for ever, so it must be classified permanent, and in a group it must not take the
/// other batches down with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_postgres_refuses_is_a_permanent_error_and_fails_alone_in_its_group() {
    let (store, _guard) = crate::support::postgres_store().await;
    let a = agent("nul-agent");
    let err = store
        .ingest(&a, nul_named_host(1), at(T0))
        .await
        .expect_err("PostgreSQL refuses a NUL in text");
    assert!(!err.is_retryable(), "a data error is permanent: {err}");

    let committer = netwarden_collector::storage::GroupCommitter::start(store.clone());
    let good = |sequence| batch(sequence, vec![probe_record(1, T0 + 1000, "10.0.0.3", 4)]);
    let (first, bad, last) = tokio::join!(
        committer.ingest(a.clone(), good(2)),
        committer.ingest(a.clone(), nul_named_host(3)),
        committer.ingest(a.clone(), good(4)),
    );
    assert_eq!(first.unwrap(), IngestOutcome::Stored { records: 1 });
    assert!(!bad.expect_err("the bad batch is refused").is_retryable());
    assert_eq!(last.unwrap(), IngestOutcome::Stored { records: 1 });
    let audit = store.ingest_audit(&a).await.unwrap();
    assert_eq!(
        audit.batches, 2,
        "both good batches are stored, the bad one is not"
    );
}

/// A round stamped 9999-12-31 that reached the table (before ingest bounded time) once made
/// every start fail creating a partition for it. Partitions are made only for days near today.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_from_year_9999_in_the_table_does_not_stop_partitioning() {
    let (store, _guard) = crate::support::postgres_store().await;
    let far = chrono::DateTime::parse_from_rfc3339("9999-12-31T12:00:00Z")
        .unwrap()
        .to_utc();
    let mut b = batch(1, vec![probe_record(1, T0, "10.0.0.2", 4)]);
    b.records[0].observed_at = far;
    store.ingest(&agent("a1"), b, far).await.unwrap();
    let now = chrono::Utc::now();
    store.prepare_partitions(now).await.unwrap();
    store
        .prepare_partitions(now + Duration::hours(1))
        .await
        .unwrap();
}

/// A SQLite database migrated before the migration numbers were aligned with PostgreSQL's has
/// its migrations recorded under their earlier names: they count as applied, and are recorded
/// under the aligned names from then on.
#[tokio::test]
async fn sqlite_migrations_recorded_under_earlier_names_are_not_applied_again() {
    use netwarden_collector::storage::{SqliteStore, SqliteSync};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let aligned: Vec<String> = {
        let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap()
    };
    let earlier = [
        ("0012_device_type", "0011_device_type"),
        ("0012a_telemetry_intake", "0012_telemetry_intake"),
        ("0012b_intake_file", "0013_intake_file"),
        ("0013_customer_email_claims", "0014_customer_email_claims"),
        ("0014_cacti_interval_ends", "0015_cacti_interval_ends"),
        (
            "0015_telemetry_in_time_order",
            "0016_telemetry_in_time_order",
        ),
        ("0016_detection_trust", "0017_detection_trust"),
        ("0017_revocations", "0018_revocations"),
    ];
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (now, before) in earlier {
            let renamed = conn
                .execute(
                    "UPDATE schema_migrations SET version = ?1 WHERE version = ?2",
                    [before, now],
                )
                .unwrap();
            assert_eq!(renamed, 1, "{now} was applied");
        }
    }
    let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());
    let recorded: Vec<String> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected = aligned;
    expected.sort();
    assert_eq!(recorded, expected);
}

fn port_record(record_id: u64, observed_ms: i64, port: u32, state: v1::PortState) -> v1::Record {
    v1::Record {
        record_id,
        observed_at_unix_ms: observed_ms,
        kind: Some(v1::record::Kind::PortCheck(v1::PortCheck {
            target: "10.0.0.9".into(),
            port,
            state: state as i32,
            connect_ms: (state == v1::PortState::Open).then_some(1.5),
        })),
    }
}

async fn port_checks_are_stored_and_summarised_per_port(store: Arc<dyn Store>) {
    use v1::PortState::{Open, Refused, Timeout};
    let a = agent("a1");
    let minute = 60_000;
    let first = batch(
        1,
        vec![
            port_record(1, T0, 443, Open),
            port_record(2, T0, 22, Refused),
            port_record(3, T0 + minute, 443, Open),
            port_record(4, T0 + minute, 22, Refused),
            port_record(5, T0 + 2 * minute, 443, Timeout),
            port_record(6, T0 + 2 * minute, 22, Open),
        ],
    );
    assert_eq!(
        store.ingest(&a, first.clone(), at(T0)).await.unwrap(),
        IngestOutcome::Stored { records: 6 }
    );
    assert_eq!(
        store.ingest(&a, first, at(T0)).await.unwrap(),
        IngestOutcome::Duplicate
    );
    // Newest first after an outage, then a late check from before them all.
    store
        .ingest(
            &a,
            batch(
                2,
                vec![
                    port_record(7, T0 + 3 * minute, 443, Timeout),
                    port_record(8, T0 + minute / 2, 443, Refused),
                ],
            ),
            at(T0),
        )
        .await
        .unwrap();
    let devices = all_devices(&store).await;
    assert_eq!(devices.len(), 1, "one device for its ports");
    let device = &devices[0];
    assert_eq!(device.address, "10.0.0.9");
    assert_eq!(device.status, None, "a port check is not an ICMP verdict");
    assert_eq!(device.last_seen, at(T0 + 3 * minute));

    let ports = store
        .device_port_checks(device.id, at(T0 - 1))
        .await
        .unwrap();
    let summary: Vec<_> = ports
        .iter()
        .map(|p| {
            (
                p.port,
                p.state.as_str(),
                p.checked_at,
                p.state_since,
                p.connect_ms,
                p.checks_24h,
                p.open_24h,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                22,
                "open",
                at(T0 + 2 * minute),
                at(T0 + 2 * minute),
                Some(1.5),
                3,
                1
            ),
            (
                443,
                "timeout",
                at(T0 + 3 * minute),
                at(T0 + 2 * minute),
                None,
                5,
                2
            ),
        ]
    );
    // The day's counts start where asked.
    let later = store
        .device_port_checks(device.id, at(T0 + 2 * minute))
        .await
        .unwrap();
    assert_eq!(
        later
            .iter()
            .map(|p| (p.checks_24h, p.open_24h))
            .collect::<Vec<_>>(),
        [(1, 1), (2, 0)]
    );
    // Still down, then open again: the run of failures goes on, then a new one starts.
    store
        .ingest(
            &a,
            batch(3, vec![port_record(9, T0 + 4 * minute, 443, Timeout)]),
            at(T0),
        )
        .await
        .unwrap();
    let https = |ports: Vec<netwarden_collector::domain::overview::PortStatus>| {
        let p = ports.into_iter().find(|p| p.port == 443).unwrap();
        (p.state, p.checked_at, p.state_since)
    };
    assert_eq!(
        https(store.device_port_checks(device.id, at(T0)).await.unwrap()),
        (
            "timeout".to_string(),
            at(T0 + 4 * minute),
            at(T0 + 2 * minute)
        )
    );
    store
        .ingest(
            &a,
            batch(4, vec![port_record(10, T0 + 5 * minute, 443, Open)]),
            at(T0),
        )
        .await
        .unwrap();
    assert_eq!(
        https(store.device_port_checks(device.id, at(T0)).await.unwrap()),
        ("open".to_string(), at(T0 + 5 * minute), at(T0 + 5 * minute))
    );
    // Raw retention takes port checks with the rounds.
    let deleted = store
        .delete_raw_rounds_before(at(T0 + minute + 1), 1000)
        .await
        .unwrap();
    assert_eq!(deleted, 5, "T0 (2), T0+30 s (1) and T0+60 s (2)");
    let kept = store
        .device_port_checks(device.id, at(T0 - 1))
        .await
        .unwrap();
    assert_eq!(kept.iter().map(|p| p.checks_24h).sum::<i64>(), 5);
}

async fn speed_tests_are_read_by_agent_window_and_page(store: Arc<dyn Store>) {
    use netwarden_collector::storage::SpeedTestQuery;
    let agent_id = agent;
    let test = |id: u64, at: i64, direction: v1::SpeedDirection, error: &str| v1::Record {
        record_id: id,
        observed_at_unix_ms: at,
        kind: Some(v1::record::Kind::SpeedTest(v1::SpeedTest {
            url: "https://collector.example/speedtest".into(),
            direction: direction as i32,
            bytes: 10_000_000,
            duration_us: 800_000,
            mbps: if error.is_empty() { 100.0 } else { 0.0 },
            error: error.into(),
        })),
    };
    use v1::SpeedDirection::{Download, Upload};
    for (agent, sequence, records) in [
        (
            "a1",
            1,
            vec![test(1, T0, Download, ""), test(2, T0, Upload, "")],
        ),
        (
            "a1",
            2,
            vec![test(3, T0 + 300_000, Download, "timed out after 30 s")],
        ),
        ("a2", 1, vec![test(1, T0 + 100_000, Download, "")]),
    ] {
        store
            .ingest(&agent_id(agent), batch(sequence, records), at(T0))
            .await
            .unwrap();
    }
    let query = |agent: Option<&str>, from: i64, limit: u32, offset: u32| SpeedTestQuery {
        agent: agent.map(Into::into),
        from: at(from),
        to: at(T0 + 3_600_000),
        limit,
        offset,
    };
    let all = store.speed_tests(&query(None, T0, 100, 0)).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|t| (t.agent_id.as_str(), t.ts, t.direction.as_str()))
            .collect::<Vec<_>>()[..2],
        [
            ("a1", at(T0 + 300_000), "download"),
            ("a2", at(T0 + 100_000), "download")
        ],
        "newest first"
    );
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].error.as_deref(), Some("timed out after 30 s"));
    assert_eq!(
        (all[3].bytes, all[3].duration_us, all[3].mbps),
        (10_000_000, 800_000, 100.0)
    );
    let a1 = store
        .speed_tests(&query(Some("a1"), T0, 100, 0))
        .await
        .unwrap();
    assert_eq!(a1.len(), 3);
    let later = store
        .speed_tests(&query(None, T0 + 1, 100, 0))
        .await
        .unwrap();
    assert_eq!(later.len(), 2, "the window's start");
    let page = store.speed_tests(&query(None, T0, 2, 2)).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].ts, at(T0), "the second page");
}
