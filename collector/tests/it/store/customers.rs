//! The customer email's cooldown, claimed in the database: per circuit, in event time, given
//! back only by its own failed send, seeded from the events already emailed, and granted to one
//! of two collectors claiming on one PostgreSQL at once.

use super::store_suite;
use crate::support::{at, PgDatabase};
use netwarden_collector::domain::alerting::{AlertOutcome, Severity};
use netwarden_collector::domain::telemetry::{CircuitEvent, MaxoutClass};
use netwarden_collector::storage::telemetry::{CircuitRecord, CustomerEmailJob, EmailClaim};
use netwarden_collector::storage::{PostgresStore, SqliteStore, SqliteSync, Store};
use sqlx::Connection;
use std::sync::Arc;

store_suite!(
    customer_email_claims_follow_the_cooldown,
    a_claimed_customer_email_is_queued_in_the_outbox_with_its_claim,
);

const HOUR: i64 = 3_600_000;
const T: i64 = 1_800_000_000_000;

async fn claim(store: &Arc<dyn Store>, circuit: &str, start: i64) -> Option<EmailClaim> {
    store
        .claim_customer_email(circuit, start, HOUR)
        .await
        .unwrap()
}

async fn customer_email_claims_follow_the_cooldown(store: Arc<dyn Store>) {
    let first = claim(&store, "C-1", T).await;
    assert_eq!(
        first,
        Some(EmailClaim {
            start: T,
            previous: None
        })
    );
    assert_eq!(claim(&store, "C-1", T + 10 * 60_000).await, None, "within");
    assert_eq!(claim(&store, "C-1", T - 5 * 60_000).await, None, "older");
    assert!(
        claim(&store, "C-2", T + 60_000).await.is_some(),
        "another circuit has a cooldown of its own"
    );
    let second = claim(&store, "C-1", T + HOUR).await.expect("a cooldown on");
    assert_eq!(second.previous, Some(T));

    // Its send failed: the cooldown counts from the claim before it again.
    store.release_customer_email("C-1", &second).await.unwrap();
    let third = claim(&store, "C-1", T + HOUR + 1)
        .await
        .expect("given back");
    assert_eq!(third.previous, Some(T));

    // A failed send of a claim that is no longer the last gives nothing back.
    let fourth = claim(&store, "C-1", T + 2 * HOUR + 1)
        .await
        .expect("a cooldown on");
    store.release_customer_email("C-1", &third).await.unwrap();
    assert_eq!(claim(&store, "C-1", T + 2 * HOUR + 2).await, None);
    assert_eq!(fourth.previous, Some(T + HOUR + 1));

    // The shortest cooldown the customer email asks for (1 ms): one start is still one claim.
    for granted in [true, false] {
        let got = store.claim_customer_email("C-4", T, 1).await.unwrap();
        assert_eq!(got.is_some(), granted);
    }

    // A first claim given back leaves no cooldown at all.
    let only = claim(&store, "C-3", T).await.expect("first");
    store.release_customer_email("C-3", &only).await.unwrap();
    assert!(claim(&store, "C-3", T - 24 * HOUR).await.is_some());
}

/// Queueing claims the cooldown and writes the outbox row together; a claim refused queues
/// nothing. The claimed email is one the dispatcher claims on its channel, naming the event
/// and no anomaly, and the event's claim is readable (to give back) until a later event's
/// email claims the circuit.
async fn a_claimed_customer_email_is_queued_in_the_outbox_with_its_claim(store: Arc<dyn Store>) {
    let open = |start: i64| {
        let store = store.clone();
        async move {
            store
                .open_circuit_maxout(&circuit(), &event(start), true, false, at(start))
                .await
                .unwrap()
        }
    };
    let job = |event_id: i64, start: i64| CustomerEmailJob {
        channel: "customer_email",
        circuit_id: "C-9".into(),
        event_id,
        start,
        cooldown_ms: HOUR,
        severity: Severity::High,
        event: event(start),
    };
    let (first, within, later) = (open(T).await, open(T + 60_000).await, open(T + HOUR).await);

    let queued = store
        .queue_customer_email(&job(first, T), at(T))
        .await
        .unwrap()
        .expect("claimed and queued");
    assert_eq!(
        store
            .queue_customer_email(&job(within, T + 60_000), at(T))
            .await
            .unwrap(),
        None,
        "within the cooldown"
    );
    let claimed = store
        .claim_alerts(
            "customer_email",
            "c1",
            at(T + 1),
            std::time::Duration::from_secs(60),
            10,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "one queued: {claimed:?}");
    let job_row = &claimed[0];
    assert_eq!(job_row.alert.id, queued);
    assert_eq!(job_row.alert.circuit_event_id, Some(first));
    assert_eq!(job_row.alert.anomaly_id, None);
    assert!(job_row.anomaly.is_none());
    assert_eq!(job_row.alert.recipient, "C-9");
    assert_eq!(
        job_row.alert.details,
        Some(serde_json::to_value(event(T)).unwrap()),
        "the event as it opened, for the email to describe"
    );
    assert_eq!(
        store.customer_email_claim("C-9", first).await.unwrap(),
        Some(EmailClaim {
            start: T,
            previous: None
        })
    );
    assert_eq!(
        store.customer_email_claim("C-9", within).await.unwrap(),
        None
    );
    // A sent customer email is not one the NOC is asked to acknowledge.
    store
        .finish_alert(job_row.alert.id, "c1", &AlertOutcome::Sent, at(T + 2))
        .await
        .unwrap();
    assert_eq!(store.unacknowledged_alerts().await.unwrap(), 0);

    let later_row = store
        .queue_customer_email(&job(later, T + HOUR), at(T))
        .await
        .unwrap()
        .expect("a cooldown on");
    assert_eq!(
        store.customer_email_claim("C-9", first).await.unwrap(),
        None,
        "a later event holds the claim"
    );
    let held = store
        .customer_email_claim("C-9", later)
        .await
        .unwrap()
        .expect("held");
    assert_eq!(held.previous, Some(T));
    store.release_customer_email("C-9", &held).await.unwrap();
    assert_eq!(
        store.customer_email_claim("C-9", later).await.unwrap(),
        None
    );
    // Claimed again once given back, the event's email is the row already queued.
    assert_eq!(
        store
            .queue_customer_email(&job(later, T + HOUR), at(T))
            .await
            .unwrap(),
        Some(later_row)
    );
    let held = store
        .customer_email_claim("C-9", later)
        .await
        .unwrap()
        .expect("held again");
    store.release_customer_email("C-9", &held).await.unwrap();
    assert!(
        store
            .claim_customer_email("C-9", T + 30 * 60_000, HOUR)
            .await
            .unwrap()
            .is_none(),
        "given back to the first event's cooldown"
    );
    let event = store.circuit_maxout(later).await.unwrap().expect("stored");
    assert_eq!(
        (event.circuit_id.as_str(), event.start),
        ("C-9", at(T + HOUR))
    );
    assert_eq!(store.circuit_maxout(-1).await.unwrap(), None);
}

/// Two collectors (two pools) on one PostgreSQL, each claiming every circuit's email for the
/// same maxout at once, as when a circuit's samples are spread over both: one email each. The
/// two walk the circuits in opposite orders from one start line so that they meet on some
/// circuits; which of them wins how many is up to the scheduler, so only the sum is asserted
/// (the test below makes the contention itself deterministic).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_collectors_on_postgres_claim_each_customer_email_once() {
    let db = PgDatabase::create().await;
    let first = PostgresStore::connect(&db.url, 8).await.unwrap();
    first.migrate().await.unwrap();
    let second = PostgresStore::connect(&db.url, 8).await.unwrap();
    let (first, second): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(first), Arc::new(second));
    let circuits = 200usize;
    let start_line = Arc::new(tokio::sync::Barrier::new(2));
    let claims = |store: Arc<dyn Store>, offset: i64, reversed: bool| {
        let start_line = start_line.clone();
        tokio::spawn(async move {
            let order: Vec<usize> = if reversed {
                (0..circuits).rev().collect()
            } else {
                (0..circuits).collect()
            };
            start_line.wait().await;
            let tries = order.into_iter().map(|i| {
                let store = store.clone();
                // Each collector saw the event open at a slightly different sample.
                async move {
                    let won = claim(&store, &format!("C-{i}"), T + offset).await.is_some();
                    (i, won)
                }
            });
            let mut won = vec![false; circuits];
            for (i, w) in futures::future::join_all(tries).await {
                won[i] = w;
            }
            won
        })
    };
    let (a, b) = (claims(first, 0, false), claims(second, 1_000, true));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let granted: Vec<usize> = (0..circuits)
        .map(|i| usize::from(a[i]) + usize::from(b[i]))
        .collect();
    assert!(
        granted.iter().all(|&n| n == 1),
        "every circuit's email granted exactly once: {granted:?}"
    );
}

/// A claim made while another collector's claim of the same circuit is not yet committed waits
/// for it and is then refused, both for a circuit never claimed (the insert path) and for one
/// claimed before (the update path). The other collector's claim is held open in a transaction
/// until PostgreSQL reports the store's claim waiting on its lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_waits_for_a_concurrent_uncommitted_claim_and_is_refused() {
    let db = PgDatabase::create().await;
    let store = PostgresStore::connect(&db.url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    // C-B was emailed a day ago, so its cooldown is over.
    assert!(claim(&store, "C-B", T - 24 * HOUR).await.is_some());

    for circuit in ["C-A", "C-B"] {
        let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let mut held = other.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO customer_email_claims AS c (circuit_id, last_start_ms, previous_start_ms)
             VALUES ($1, $2, NULL)
             ON CONFLICT (circuit_id) DO UPDATE
                SET previous_start_ms = c.last_start_ms, last_start_ms = excluded.last_start_ms",
        )
        .bind(circuit)
        .bind(T)
        .execute(&mut *held)
        .await
        .unwrap();

        let waiting = {
            let store = store.clone();
            tokio::spawn(async move { claim(&store, circuit, T + 1_000).await })
        };
        // Deterministic, not a sleep: PostgreSQL itself says the claim waits for a lock.
        let mut watcher = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let waiting_on_lock: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watcher)
            .await
            .unwrap();
            if waiting_on_lock > 0 {
                break;
            }
            assert!(
                !waiting.is_finished(),
                "{circuit}: the claim must wait for the uncommitted one, not decide past it"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "{circuit}: the claim neither waited for the lock nor finished"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(!waiting.is_finished(), "{circuit}: still waiting");
        held.commit().await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("the claim goes on once the other commits")
            .unwrap();
        assert_eq!(
            got, None,
            "{circuit}: the committed claim holds the cooldown"
        );
    }
}

/// A one-minute maxout of circuit C-9 from `start`.
fn event(start: i64) -> CircuitEvent {
    CircuitEvent {
        start,
        end: start + 60_000,
        samples: 3,
        peak_mbps: 120.0,
        peak_at: start,
        severity: MaxoutClass::Maxout,
    }
}

fn circuit() -> CircuitRecord {
    CircuitRecord {
        circuit_id: "C-9".into(),
        account: None,
        provisioned_mbps: 100.0,
        burst_mbps: None,
        pop: None,
        provisioned_at: None,
        upgraded_at: None,
        decommissioned_at: None,
    }
}

/// Stores an event at `start` whose customer was emailed, and one (later) that was not.
async fn emailed_event(store: &Arc<dyn Store>, start: i64) {
    let id = store
        .open_circuit_maxout(&circuit(), &event(start), true, false, at(start))
        .await
        .unwrap();
    store
        .mark_circuit_maxout_notified(id, at(start + 1_000))
        .await
        .unwrap();
    store
        .open_circuit_maxout(
            &circuit(),
            &event(start + 20 * 60_000),
            true,
            false,
            at(start),
        )
        .await
        .unwrap();
}

/// After the upgrade, the cooldown counts from the last event already emailed.
async fn assert_seeded(store: &Arc<dyn Store>) {
    assert_eq!(claim(store, "C-9", T + 30 * 60_000).await, None);
    let next = claim(store, "C-9", T + HOUR).await.expect("after it");
    assert_eq!(next.previous, Some(T));
}

#[tokio::test]
async fn upgrading_sqlite_seeds_the_claims_from_emailed_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        emailed_event(&store, T).await;
    }
    crate::support::sqlite_names_before_0017a(&path);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DROP TABLE customer_email_claims;
             DELETE FROM schema_migrations
              WHERE version IN ('0013_customer_email_claims', '0018_customer_email_outbox');",
        )
        .unwrap();
    let store = SqliteStore::open(&path, 2, SqliteSync::Full).await.unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        vec![
            "0013_customer_email_claims",
            "0017a_column_names_as_postgres",
            "0018_customer_email_outbox"
        ]
    );
    assert_seeded(&(Arc::new(store) as Arc<dyn Store>)).await;
}

#[tokio::test]
async fn upgrading_postgres_seeds_the_claims_from_emailed_events() {
    let db = PgDatabase::create().await;
    {
        let store = PostgresStore::connect(&db.url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        emailed_event(&store, T).await;
    }
    let mut raw = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "DROP TABLE customer_email_claims;
         ALTER TABLE alerts DROP CONSTRAINT alerts_one_subject;
         ALTER TABLE alerts DROP COLUMN circuit_event_id, DROP COLUMN details;
         DELETE FROM _sqlx_migrations WHERE version IN (13, 18);",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    raw.close().await.unwrap();
    let store = PostgresStore::connect(&db.url, 2).await.unwrap();
    assert_eq!(store.migrate().await.unwrap().len(), 2);
    assert_seeded(&(Arc::new(store) as Arc<dyn Store>)).await;
}
