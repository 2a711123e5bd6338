//! The anomaly lifecycle and notification outbox on both backends, and the claim that keeps
//! two collectors on one PostgreSQL from sending the same notification.

use super::store_suite;
use crate::support::{at, PgDatabase};
use chrono::Duration as ChronoDuration;
use netwarden_collector::domain::alerting::AnomalyKind;
use netwarden_collector::storage::alerting::{
    AlertEvent, AlertOutcome, AlertQuery, AnomalyQuery, AnomalyState, NewAnomaly, NewSilence,
    Opened, PlannedAlert, Severity,
};
use netwarden_collector::storage::Store;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

store_suite!(
    opening_twice_is_one_anomaly_with_one_set_of_notifications,
    resolving_cancels_what_is_pending_and_tells_only_those_who_heard,
    acknowledging_stops_repeats_and_escalation,
    a_vanished_holders_claim_is_taken_over_and_marked_recovered,
    a_suppressed_anomaly_queues_nothing,
    silences_are_listed_until_they_end_and_deleted,
    deferring_is_not_an_attempt,
);

fn anomaly(subject: &str, severity: Severity) -> NewAnomaly {
    NewAnomaly {
        kind: AnomalyKind::DeviceOffline,
        subject: subject.into(),
        group_key: Some("branch-7".into()),
        severity,
        summary: format!("{subject} is offline"),
        details: serde_json::json!({ "rounds": 2 }),
    }
}

fn planned(channel: &str, to: &str, event: AlertEvent, step: i32, delay: u64) -> PlannedAlert {
    PlannedAlert {
        channel: channel.into(),
        recipient: to.into(),
        event,
        step,
        severity: Severity::High,
        delay: Duration::from_secs(delay),
        repeat: Duration::from_secs(if event == AlertEvent::Open { 600 } else { 0 }),
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn alerts_of(store: &Arc<dyn Store>, id: i64) -> Vec<(String, String, String, i32)> {
    let query = AlertQuery {
        anomaly_id: Some(id),
        limit: 100,
        ..AlertQuery::default()
    };
    let mut list: Vec<_> = store
        .alerts(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.channel, a.event.as_str().to_string(), a.state, a.step))
        .collect();
    list.sort();
    list
}

async fn opening_twice_is_one_anomaly_with_one_set_of_notifications(store: Arc<dyn Store>) {
    let plan = vec![
        planned("email", "noc@example.test", AlertEvent::Open, 0, 2),
        planned("telegram", "-100200", AlertEvent::Open, 0, 2),
    ];
    let t0 = at(1_800_000_000_000);
    let first = store
        .open_anomaly(
            &anomaly("branch-7/10.0.0.1", Severity::High),
            None,
            &plan,
            t0,
        )
        .await
        .unwrap();
    let Opened::New(id) = first else {
        panic!("{first:?}")
    };
    let again = store
        .open_anomaly(
            &anomaly("branch-7/10.0.0.1", Severity::Critical),
            None,
            &plan,
            t0 + ChronoDuration::seconds(10),
        )
        .await
        .unwrap();
    assert_eq!(again, Opened::Existing(id));
    let stored = store.anomaly(id).await.unwrap().unwrap();
    assert_eq!(stored.severity, Severity::Critical, "severity only rises");
    assert_eq!(stored.state, AnomalyState::Open);
    assert_eq!(alerts_of(&store, id).await.len(), 2);
    // Nothing is due during the group wait.
    let early = store
        .claim_alerts("email", "a", t0 + ChronoDuration::seconds(1), LEASE, 10)
        .await
        .unwrap();
    assert!(early.is_empty());
    let due = store
        .claim_alerts("email", "a", t0 + ChronoDuration::seconds(2), LEASE, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].anomaly.as_ref().map(|a| a.id), Some(id));
    assert_eq!(due[0].alert.attempts, 1);
}

async fn resolving_cancels_what_is_pending_and_tells_only_those_who_heard(store: Arc<dyn Store>) {
    let plan = vec![
        planned("email", "noc@example.test", AlertEvent::Open, 0, 0),
        planned("telegram", "-100200", AlertEvent::Open, 0, 60),
        planned("email", "lead@example.test", AlertEvent::Escalate, 1, 900),
    ];
    let t0 = at(1_800_000_000_000);
    let Opened::New(id) = store
        .open_anomaly(
            &anomaly("branch-7/10.0.0.2", Severity::High),
            None,
            &plan,
            t0,
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    let jobs = store
        .claim_alerts("email", "a", t0, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    store
        .finish_alert(jobs[0].alert.id, "a", &AlertOutcome::Sent, t0)
        .await
        .unwrap();
    let resolved = store
        .resolve_anomaly(
            id,
            "netwarden",
            Some("cleared"),
            t0 + ChronoDuration::seconds(5),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.state, AnomalyState::Resolved);
    assert_eq!(resolved.resolve_note.as_deref(), Some("cleared"));
    let alerts = alerts_of(&store, id).await;
    let expected = vec![
        ("email".into(), "escalate".into(), "cancelled".into(), 1),
        ("email".into(), "open".into(), "sent".into(), 0),
        ("email".into(), "repeat".into(), "cancelled".into(), 1),
        ("email".into(), "resolve".into(), "pending".into(), 0),
        ("telegram".into(), "open".into(), "cancelled".into(), 0),
    ];
    assert_eq!(alerts, expected);
    // Resolving again changes nothing and queues nothing more.
    store
        .resolve_anomaly(id, "op", None, t0 + ChronoDuration::seconds(6))
        .await
        .unwrap();
    assert_eq!(alerts_of(&store, id).await, expected);
    // A new occurrence after resolution is a new anomaly.
    let next = store
        .open_anomaly(
            &anomaly("branch-7/10.0.0.2", Severity::High),
            None,
            &plan,
            t0 + ChronoDuration::seconds(7),
        )
        .await
        .unwrap();
    assert!(matches!(next, Opened::New(other) if other != id));
}

async fn acknowledging_stops_repeats_and_escalation(store: Arc<dyn Store>) {
    let plan = vec![
        planned("email", "noc@example.test", AlertEvent::Open, 0, 0),
        planned("email", "lead@example.test", AlertEvent::Escalate, 1, 900),
    ];
    let t0 = at(1_800_000_000_000);
    let Opened::New(id) = store
        .open_anomaly(
            &anomaly("branch-7/10.0.0.3", Severity::High),
            None,
            &plan,
            t0,
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    let jobs = store
        .claim_alerts("email", "a", t0, LEASE, 10)
        .await
        .unwrap();
    store
        .finish_alert(jobs[0].alert.id, "a", &AlertOutcome::Sent, t0)
        .await
        .unwrap();
    // The repeat is due 600 s after the send.
    let repeat = store
        .claim_alerts("email", "a", t0 + ChronoDuration::seconds(600), LEASE, 10)
        .await
        .unwrap();
    assert_eq!(repeat.len(), 1);
    assert_eq!(repeat[0].alert.event, AlertEvent::Repeat);
    let t1 = t0 + ChronoDuration::seconds(601);
    store
        .finish_alert(repeat[0].alert.id, "a", &AlertOutcome::Sent, t1)
        .await
        .unwrap();
    let acked = store
        .acknowledge_anomaly(id, "alice", Some("on it"), t1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acked.state, AnomalyState::Acknowledged);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("alice"));
    let later = store
        .claim_alerts("email", "a", t0 + ChronoDuration::days(1), LEASE, 10)
        .await
        .unwrap();
    assert!(later.is_empty(), "no repeat or escalation after an ack");
    let unacked = store
        .alerts(&AlertQuery {
            anomaly_id: Some(id),
            acknowledged: Some(false),
            limit: 10,
            ..AlertQuery::default()
        })
        .await
        .unwrap();
    assert!(unacked.is_empty(), "{unacked:?}");
    assert!(store.anomaly(id + 1000).await.unwrap().is_none());
    assert!(store
        .acknowledge_anomaly(id + 1000, "x", None, t1)
        .await
        .unwrap()
        .is_none());
}

async fn a_vanished_holders_claim_is_taken_over_and_marked_recovered(store: Arc<dyn Store>) {
    let plan = vec![planned("telegram", "42", AlertEvent::Open, 0, 0)];
    let t0 = at(1_800_000_000_000);
    store
        .open_anomaly(
            &anomaly("branch-7/10.0.0.4", Severity::High),
            None,
            &plan,
            t0,
        )
        .await
        .unwrap();
    let first = store
        .claim_alerts("telegram", "gone", t0, Duration::from_secs(5), 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let during = store
        .claim_alerts(
            "telegram",
            "other",
            t0 + ChronoDuration::seconds(4),
            LEASE,
            10,
        )
        .await
        .unwrap();
    assert!(during.is_empty(), "the lease holds");
    let after = store
        .claim_alerts(
            "telegram",
            "other",
            t0 + ChronoDuration::seconds(6),
            LEASE,
            10,
        )
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert!(after[0].alert.recovered);
    assert_eq!(after[0].alert.attempts, 2);
    // The vanished holder's late outcome is ignored; the new holder's counts.
    let id = after[0].alert.id;
    let late = store
        .finish_alert(
            id,
            "gone",
            &AlertOutcome::Failed {
                error: "late".into(),
            },
            t0,
        )
        .await
        .unwrap();
    assert!(
        !late,
        "the vanished holder is told its outcome did not count"
    );
    assert_eq!(store.alert(id).await.unwrap().unwrap().state, "sending");
    assert!(store
        .finish_alert(id, "other", &AlertOutcome::Sent, t0)
        .await
        .unwrap());
    assert_eq!(store.alert(id).await.unwrap().unwrap().state, "sent");
}

async fn a_suppressed_anomaly_queues_nothing(store: Arc<dyn Store>) {
    let plan = vec![planned("telegram", "42", AlertEvent::Open, 0, 0)];
    let Opened::New(id) = store
        .open_anomaly(
            &anomaly("branch-7/10.0.0.5", Severity::High),
            Some("silence 1: maintenance"),
            &plan,
            at(1_800_000_000_000),
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(alerts_of(&store, id).await.is_empty());
    let a = store.anomaly(id).await.unwrap().unwrap();
    assert_eq!(a.suppressed.as_deref(), Some("silence 1: maintenance"));
    let listed = store
        .anomalies(&AnomalyQuery {
            state: Some(AnomalyState::Open),
            severity: Some(Severity::High),
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

async fn silences_are_listed_until_they_end_and_deleted(store: Arc<dyn Store>) {
    let t0 = at(1_800_000_000_000);
    let spec = NewSilence {
        kind: Some(AnomalyKind::DeviceOffline),
        subject: Some("branch-7/*".into()),
        group_key: None,
        severity: None,
        starts_at: t0,
        ends_at: t0 + ChronoDuration::hours(1),
        created_by: "alice".into(),
        comment: "maintenance".into(),
    };
    let s = store.create_silence(&spec, t0).await.unwrap();
    let listed = store.silences(t0).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].spec, spec);
    assert!(listed[0].matches(&anomaly("branch-7/10.0.0.9", Severity::Low), t0));
    assert!(!listed[0].matches(&anomaly("branch-8/10.0.0.9", Severity::Low), t0));
    assert!(store
        .silences(t0 + ChronoDuration::hours(2))
        .await
        .unwrap()
        .is_empty());
    assert!(store.delete_silence(s.id).await.unwrap());
    assert!(!store.delete_silence(s.id).await.unwrap());
}

async fn deferring_is_not_an_attempt(store: Arc<dyn Store>) {
    let plan = vec![planned("telegram", "42", AlertEvent::Open, 0, 0)];
    let t0 = at(1_800_000_000_000);
    store
        .open_anomaly(
            &anomaly("branch-7/10.0.0.6", Severity::High),
            None,
            &plan,
            t0,
        )
        .await
        .unwrap();
    let jobs = store
        .claim_alerts("telegram", "a", t0, LEASE, 10)
        .await
        .unwrap();
    let id = jobs[0].alert.id;
    let later = t0 + ChronoDuration::seconds(7);
    store
        .finish_alert(id, "a", &AlertOutcome::Defer { at: later }, t0)
        .await
        .unwrap();
    let row = store.alert(id).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.attempts), ("pending", 0));
    assert_eq!(row.due_at, later);
    store
        .finish_alert(id, "a", &AlertOutcome::Sent, t0)
        .await
        .unwrap();
    assert_eq!(
        store.alert(id).await.unwrap().unwrap().state,
        "pending",
        "no longer claimed: the outcome is ignored"
    );
}

/// Two collectors on one PostgreSQL claim side by side: every notification goes to exactly
/// one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_collectors_on_postgres_never_claim_the_same_notification() {
    let db = PgDatabase::create().await;
    let first = netwarden_collector::storage::PostgresStore::connect(&db.url, 4)
        .await
        .unwrap();
    first.migrate().await.unwrap();
    let second = netwarden_collector::storage::PostgresStore::connect(&db.url, 4)
        .await
        .unwrap();
    let (first, second): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(first), Arc::new(second));
    let t0 = at(1_800_000_000_000);
    for i in 0..200 {
        let plan = vec![planned("telegram", "42", AlertEvent::Open, 0, 0)];
        first
            .open_anomaly(
                &anomaly(
                    &format!("branch-7/10.0.{}.{}", i / 250, i % 250),
                    Severity::High,
                ),
                None,
                &plan,
                t0,
            )
            .await
            .unwrap();
    }
    let worker = |store: Arc<dyn Store>, holder: &'static str| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let jobs = store
                    .claim_alerts("telegram", holder, t0, LEASE, 3)
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    return mine;
                }
                for job in jobs {
                    store
                        .finish_alert(job.alert.id, holder, &AlertOutcome::Sent, t0)
                        .await
                        .unwrap();
                    mine.push(job.alert.id);
                }
            }
        })
    };
    let (a, b) = (worker(first.clone(), "a"), worker(second.clone(), "b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let all: HashSet<i64> = a.iter().chain(b.iter()).copied().collect();
    assert_eq!(a.len() + b.len(), 200, "a {} b {}", a.len(), b.len());
    assert_eq!(all.len(), 200, "no notification was claimed twice");
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both took part: a {} b {}",
        a.len(),
        b.len()
    );
}
