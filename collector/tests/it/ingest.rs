//! The ingest stream's contract: ack after commit, replays are harmless, bad input is refused
//! with InvalidArgument (and counted), oversized messages and forged identities are refused.

use super::support::{exchange, probe_record, wire_batch, Backend, TestCollector};
use netwarden_collector::grpc::ingest::REJECTED_SEQUENCE_HEADER;
use netwarden_proto::v1;
use netwarden_shared::AgentId;

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

async fn acks_come_after_commit_and_replays_are_harmless(backend: Backend) {
    let collector = TestCollector::start(backend).await;
    let files = collector.pki.agent("agent-r");
    let mut client = collector.client(&files).await.unwrap();
    let batches: Vec<_> = (1..=5)
        .map(|seq| {
            wire_batch(
                seq,
                vec![probe_record(
                    seq,
                    1_790_000_000_000 + seq as i64,
                    "10.0.0.2",
                    4,
                )],
            )
        })
        .collect();
    let (acks, error) = exchange(&mut client, batches.clone()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        acks.iter().map(|a| a.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(acks.iter().all(|a| a.stored == 1 && !a.duplicate));
    // Every acked batch is already committed: readable right after the ack.
    let agent = AgentId::new("agent-r").unwrap();
    assert_eq!(
        collector
            .store
            .ingest_audit(&agent)
            .await
            .unwrap()
            .probe_results,
        5
    );

    // A reconnecting agent replays batches 4 and 5 and sends 6.
    let mut client = collector.client(&files).await.unwrap();
    let mut replay = batches[3..].to_vec();
    replay.push(wire_batch(
        6,
        vec![probe_record(6, 1_790_000_000_006, "10.0.0.2", 4)],
    ));
    let (acks, error) = exchange(&mut client, replay).await;
    assert!(error.is_none());
    assert_eq!(
        acks.iter()
            .map(|a| (a.sequence, a.duplicate))
            .collect::<Vec<_>>(),
        vec![(4, true), (5, true), (6, false)]
    );
    let audit = collector.store.ingest_audit(&agent).await.unwrap();
    assert_eq!(
        (
            audit.batches,
            audit.probe_results,
            audit.distinct_probe_record_ids
        ),
        (6, 6, 6)
    );
    let text = collector.metrics().await;
    assert_eq!(
        metric(
            &text,
            "netwarden_ingest_batches_total{outcome=\"duplicate\"}"
        ),
        2
    );
    assert_eq!(metric(&text, "netwarden_ingest_records_total"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_batch_gets_invalid_argument_and_is_counted() {
    let collector = TestCollector::start(Backend::Sqlite).await;
    let mut client = collector
        .client(&collector.pki.agent("agent-m"))
        .await
        .unwrap();
    let mut bad = probe_record(2, 1_790_000_000_000, "10.0.0.2", 4);
    if let Some(v1::record::Kind::ProbeRound(p)) = bad.kind.as_mut() {
        p.target = "999.1.1.1".into();
    }
    let batches = vec![
        wire_batch(1, vec![probe_record(1, 1_790_000_000_000, "10.0.0.2", 4)]),
        wire_batch(2, vec![bad]),
    ];
    let (acks, error) = exchange(&mut client, batches).await;
    assert_eq!(acks.len(), 1, "the good batch before it is acknowledged");
    let status = error.expect("the bad batch ends the stream");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("records[0].probe_round.target"),
        "{}",
        status.message()
    );
    assert_eq!(
        status.metadata().get(REJECTED_SEQUENCE_HEADER).unwrap(),
        "2"
    );
    let text = collector.metrics().await;
    assert_eq!(
        metric(&text, "netwarden_ingest_rejected_total{reason=\"invalid\"}"),
        1
    );
    // Nothing from the bad batch was stored, and the collector still serves.
    let audit = collector
        .store
        .ingest_audit(&AgentId::new("agent-m").unwrap())
        .await
        .unwrap();
    assert_eq!(audit.batches, 1);
    let mut client = collector
        .client(&collector.pki.agent("agent-m2"))
        .await
        .unwrap();
    let (acks, error) = exchange(&mut client, vec![wire_batch(1, vec![])]).await;
    assert!(error.is_none() && acks.len() == 1);

    // Other malformed shapes: a zero sequence, a record without a kind.
    let mut client = collector
        .client(&collector.pki.agent("agent-m3"))
        .await
        .unwrap();
    let (_, error) = exchange(&mut client, vec![wire_batch(0, vec![])]).await;
    assert_eq!(error.unwrap().code(), tonic::Code::InvalidArgument);
    let mut client = collector
        .client(&collector.pki.agent("agent-m3"))
        .await
        .unwrap();
    let no_kind = v1::Record {
        record_id: 1,
        observed_at_unix_ms: 1_790_000_000_000,
        kind: None,
    };
    let (_, error) = exchange(&mut client, vec![wire_batch(1, vec![no_kind])]).await;
    let status = error.unwrap();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("records[0].kind"));
    assert_eq!(
        metric(
            &collector.metrics().await,
            "netwarden_ingest_rejected_total{reason=\"invalid\"}"
        ),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_by_the_configured_limit() {
    let collector =
        TestCollector::start_with(Backend::Sqlite, |c| c.grpc.max_message_bytes = 64 * 1024).await;
    let mut client = collector
        .client(&collector.pki.agent("agent-big"))
        .await
        .unwrap();
    // About 2,000 records of ~80 bytes: well over 64 KiB.
    let records = (1..=2000)
        .map(|i| probe_record(i, 1_790_000_000_000, "10.0.0.2", 4))
        .collect();
    let (acks, error) = exchange(&mut client, vec![wire_batch(1, records)]).await;
    assert!(acks.is_empty());
    let status = error.expect("refused");
    assert!(
        matches!(
            status.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{status:?}"
    );
    assert!(
        status.message().contains("too large") || status.message().contains("limit"),
        "{}",
        status.message()
    );
    assert_eq!(
        metric(
            &collector.metrics().await,
            "netwarden_ingest_rejected_total{reason=\"too_large\"}"
        ),
        1
    );
    assert!(collector.store.agents().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_claim_another_agents_identity() {
    let collector = TestCollector::start(Backend::Sqlite).await;
    let mut client = collector
        .client(&collector.pki.agent("honest"))
        .await
        .unwrap();
    // Claiming its own name is fine.
    let mut own = wire_batch(1, vec![probe_record(1, 1_790_000_000_000, "10.0.0.2", 4)]);
    own.agent_id = "honest".into();
    let mut forged = wire_batch(2, vec![probe_record(2, 1_790_000_000_000, "10.0.0.3", 4)]);
    forged.agent_id = "victim".into();
    let (acks, error) = exchange(&mut client, vec![own, forged]).await;
    assert_eq!(acks.len(), 1);
    let status = error.expect("forged identity refused");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(status.message().contains("victim") && status.message().contains("honest"));
    let agents = collector.store.agents().await.unwrap();
    assert_eq!(
        agents.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        vec!["honest"]
    );
    assert_eq!(
        agents[0].results_received, 1,
        "nothing from the forged batch"
    );
    assert_eq!(
        metric(
            &collector.metrics().await,
            "netwarden_ingest_rejected_total{reason=\"identity\"}"
        ),
        1
    );
}

/// Records are bounded in time around the collector's clock: a round stamped 9999-12-31 (or
/// a year back) is refused naming the record, counted, and the agent's later batches arrive.
/// On PostgreSQL such a round once stopped the collector from starting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_outside_the_time_window_is_refused_and_counted() {
    let collector = TestCollector::start_with(Backend::Postgres, |raw| {
        raw.grpc.max_clock_skew_secs = 300;
        raw.grpc.max_record_age_days = 30;
    })
    .await;
    let now = chrono::Utc::now().timestamp_millis();
    let year_9999 = 253_402_257_599_000; // 9999-12-31T23:59:59Z
    for (sequence, stamp, expect) in [
        (2, year_9999, "ahead of the collector's clock"),
        (3, now + 600_000, "ahead of the collector's clock"),
        (4, now - 365 * 86_400_000, "days old"),
    ] {
        let mut client = collector
            .client(&collector.pki.agent("agent-t"))
            .await
            .unwrap();
        let batches = vec![
            wire_batch(1, vec![probe_record(1, now, "10.0.0.2", 4)]),
            wire_batch(
                sequence,
                vec![
                    probe_record(10 * sequence, now, "10.0.0.3", 4),
                    probe_record(10 * sequence + 1, stamp, "10.0.0.3", 4),
                ],
            ),
        ];
        let (acks, error) = exchange(&mut client, batches).await;
        assert_eq!(acks.len(), 1);
        let status = error.expect("the batch is refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("records[1].observed_at_unix_ms")
                && status.message().contains(expect),
            "{}",
            status.message()
        );
        assert_eq!(
            status.metadata().get(REJECTED_SEQUENCE_HEADER).unwrap(),
            sequence.to_string().as_str()
        );
    }
    // Within the skew allowance is fine, and the agent's next batch is stored.
    let mut client = collector
        .client(&collector.pki.agent("agent-t"))
        .await
        .unwrap();
    let (acks, error) = exchange(
        &mut client,
        vec![wire_batch(
            5,
            vec![probe_record(50, now + 60_000, "10.0.0.4", 4)],
        )],
    )
    .await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(acks[0].stored, 1);
    assert_eq!(
        metric(
            &collector.metrics().await,
            "netwarden_ingest_rejected_total{reason=\"clock\"}"
        ),
        3
    );
    let audit = collector
        .store
        .ingest_audit(&AgentId::new("agent-t").unwrap())
        .await
        .unwrap();
    assert_eq!((audit.batches, audit.probe_results), (2, 2));
}

/// A NUL or a line break in a text field is refused at the wire with the field named: on
/// PostgreSQL it would otherwise fail the commit, and in a log it would forge lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_text_are_refused_at_the_wire() {
    let collector = TestCollector::start(Backend::Postgres).await;
    let mut client = collector
        .client(&collector.pki.agent("agent-n"))
        .await
        .unwrap();
    let host = v1::Record {
        record_id: 1,
        observed_at_unix_ms: chrono::Utc::now().timestamp_millis(),
        kind: Some(v1::record::Kind::DiscoveredHost(v1::DiscoveredHost {
            address: "10.0.0.9".into(),
            hostname: "printer\0.lan".into(),
            method: v1::DiscoveryMethod::Icmp as i32,
            ..Default::default()
        })),
    };
    let (_, error) = exchange(&mut client, vec![wire_batch(1, vec![host])]).await;
    let status = error.expect("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("records[0].discovered_host.hostname: contains the control character U+0000"),
        "{}",
        status.message()
    );
    let mut client = collector
        .client(&collector.pki.agent("agent-n"))
        .await
        .unwrap();
    let (acks, error) = exchange(
        &mut client,
        vec![wire_batch(
            2,
            vec![probe_record(
                2,
                chrono::Utc::now().timestamp_millis(),
                "10.0.0.2",
                4,
            )],
        )],
    )
    .await;
    assert!(error.is_none() && acks[0].stored == 1);
}

crate::store::store_suite!(backend:
    acks_come_after_commit_and_replays_are_harmless,
);
