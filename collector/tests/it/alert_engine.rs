//! The alert engine on a real store, scripted in time: inhibition by a silent agent and by a
//! gateway that is down, silences, resolve-after-clear, and routing into the outbox.

use super::support::at;
use chrono::{DateTime, Duration, Utc};
use netwarden_collector::alert::engine::Engine;
use netwarden_collector::alert::routing::{AlertingConfig, GatewayConfig, RouteConfig};
use netwarden_collector::detect::Signal;
use netwarden_collector::domain::alerting::AnomalyKind;
use netwarden_collector::metrics::Metrics;
use netwarden_collector::storage::alerting::{
    dedup_key, AlertQuery, AnomalyState, NewAnomaly, NewSilence, Severity,
};
use netwarden_collector::storage::Store;
use std::sync::Arc;

fn config() -> AlertingConfig {
    AlertingConfig {
        resolve_after_secs: 30,
        routes: vec![RouteConfig {
            name: "noc".into(),
            kinds: vec![],
            min_severity: Severity::Low,
            email: vec!["noc@example.test".into()],
            telegram: vec![],
            webhook: vec![],
            alertmanager: vec![],
            escalation: vec![],
        }],
        gateways: vec![GatewayConfig {
            agent: "site-9".into(),
            address: "10.9.9.1".into(),
        }],
        ..AlertingConfig::default()
    }
}

fn fire(kind: AnomalyKind, subject: &str, group: &str) -> Signal {
    Signal::Firing(NewAnomaly {
        kind,
        subject: subject.into(),
        group_key: Some(group.into()),
        severity: Severity::High,
        summary: format!("{kind} {subject}"),
        details: serde_json::Value::Null,
    })
}

fn clear(kind: AnomalyKind, subject: &str) -> Signal {
    Signal::Clear {
        kind,
        subject: subject.into(),
    }
}

async fn state_of(
    store: &Arc<dyn Store>,
    kind: AnomalyKind,
    subject: &str,
) -> (AnomalyState, Option<String>, usize) {
    let list = store
        .anomalies(&netwarden_collector::storage::alerting::AnomalyQuery {
            kind: Some(kind),
            subject: Some(subject.into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let a = list
        .first()
        .unwrap_or_else(|| panic!("no {kind} for {subject}"));
    let alerts = store
        .alerts(&AlertQuery {
            anomaly_id: Some(a.id),
            limit: 10,
            ..AlertQuery::default()
        })
        .await
        .unwrap();
    (a.state, a.suppressed.clone(), alerts.len())
}

async fn engine_scenario(store: Arc<dyn Store>) {
    let engine = Engine::new(store.clone(), config(), Arc::new(Metrics::new()));
    let t0: DateTime<Utc> = at(1_800_000_000_000);
    let t = |s: i64| t0 + Duration::seconds(s);

    // A silent agent mutes the anomalies behind it.
    engine
        .apply(
            vec![fire(AnomalyKind::AgentSilent, "branch-7", "branch-7")],
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(
        state_of(&store, AnomalyKind::AgentSilent, "branch-7").await,
        (AnomalyState::Open, None, 1)
    );
    engine
        .apply(
            vec![fire(
                AnomalyKind::DeviceOffline,
                "branch-7/10.0.0.1",
                "branch-7",
            )],
            t(1),
        )
        .await
        .unwrap();
    let (state, suppressed, alerts) =
        state_of(&store, AnomalyKind::DeviceOffline, "branch-7/10.0.0.1").await;
    assert_eq!((state, alerts), (AnomalyState::Open, 0));
    assert!(suppressed.unwrap().contains("agent branch-7 silent"));

    // Clearing waits resolve_after_secs (30), and firing again meanwhile cancels the wait.
    engine
        .apply(vec![clear(AnomalyKind::AgentSilent, "branch-7")], t(10))
        .await
        .unwrap();
    engine.tick(t(30)).await.unwrap();
    assert_eq!(
        state_of(&store, AnomalyKind::AgentSilent, "branch-7")
            .await
            .0,
        AnomalyState::Open,
        "not clear for long enough"
    );
    engine
        .apply(
            vec![fire(AnomalyKind::AgentSilent, "branch-7", "branch-7")],
            t(35),
        )
        .await
        .unwrap();
    engine.tick(t(100)).await.unwrap();
    assert_eq!(
        state_of(&store, AnomalyKind::AgentSilent, "branch-7")
            .await
            .0,
        AnomalyState::Open,
        "it fired again: the clear was forgotten"
    );
    engine
        .apply(vec![clear(AnomalyKind::AgentSilent, "branch-7")], t(110))
        .await
        .unwrap();
    engine.tick(t(140)).await.unwrap();
    assert_eq!(
        state_of(&store, AnomalyKind::AgentSilent, "branch-7")
            .await
            .0,
        AnomalyState::Resolved
    );
    // With the agent back, a new device anomaly is notified.
    engine
        .apply(
            vec![fire(
                AnomalyKind::PacketLoss,
                "branch-7/10.0.0.2",
                "branch-7",
            )],
            t(150),
        )
        .await
        .unwrap();
    assert_eq!(
        state_of(&store, AnomalyKind::PacketLoss, "branch-7/10.0.0.2").await,
        (AnomalyState::Open, None, 1)
    );

    // A gateway that is down mutes the rest of its agent, not itself.
    engine
        .apply(
            vec![fire(
                AnomalyKind::DeviceOffline,
                "site-9/10.9.9.1",
                "site-9",
            )],
            t(200),
        )
        .await
        .unwrap();
    assert_eq!(
        state_of(&store, AnomalyKind::DeviceOffline, "site-9/10.9.9.1")
            .await
            .2,
        1
    );
    engine
        .apply(
            vec![fire(
                AnomalyKind::DeviceOffline,
                "site-9/10.9.9.5",
                "site-9",
            )],
            t(201),
        )
        .await
        .unwrap();
    let (_, suppressed, alerts) =
        state_of(&store, AnomalyKind::DeviceOffline, "site-9/10.9.9.5").await;
    assert_eq!(alerts, 0);
    assert!(suppressed
        .unwrap()
        .contains("gateway site-9/10.9.9.1 offline"));

    // A host that is down pages once: its ports' port_down is kept but muted; another
    // host's port pages.
    engine
        .apply(
            vec![
                fire(AnomalyKind::DeviceOffline, "lab-2/10.2.0.7", "lab-2"),
                fire(AnomalyKind::PortDown, "lab-2/10.2.0.7/tcp/443", "lab-2"),
                fire(AnomalyKind::PortDown, "lab-2/10.2.0.8/tcp/443", "lab-2"),
            ],
            t(250),
        )
        .await
        .unwrap();
    let (state, suppressed, alerts) =
        state_of(&store, AnomalyKind::PortDown, "lab-2/10.2.0.7/tcp/443").await;
    assert_eq!((state, alerts), (AnomalyState::Open, 0));
    assert!(suppressed
        .unwrap()
        .contains("device lab-2/10.2.0.7 offline"));
    assert_eq!(
        state_of(&store, AnomalyKind::PortDown, "lab-2/10.2.0.8/tcp/443")
            .await
            .2,
        1
    );

    // A silence by pattern, only within its time range.
    store
        .create_silence(
            &NewSilence {
                kind: None,
                subject: Some("lab/*".into()),
                group_key: None,
                severity: None,
                starts_at: t(300),
                ends_at: t(400),
                created_by: "alice".into(),
                comment: "lab rebuild".into(),
            },
            t(250),
        )
        .await
        .unwrap();
    engine.silences_changed();
    engine
        .apply(
            vec![fire(AnomalyKind::Jitter, "lab/10.5.0.1", "lab")],
            t(350),
        )
        .await
        .unwrap();
    assert_eq!(
        state_of(&store, AnomalyKind::Jitter, "lab/10.5.0.1")
            .await
            .1
            .as_deref(),
        Some("silence 1: lab rebuild")
    );
    engine
        .apply(
            vec![fire(AnomalyKind::Jitter, "lab/10.5.0.2", "lab")],
            t(450),
        )
        .await
        .unwrap();
    assert_eq!(
        state_of(&store, AnomalyKind::Jitter, "lab/10.5.0.2")
            .await
            .2,
        1
    );
    assert!(store
        .active_anomaly(&dedup_key(AnomalyKind::Jitter, "lab/10.5.0.2"))
        .await
        .unwrap()
        .is_some());
}

crate::store::store_suite!(engine_scenario,);
