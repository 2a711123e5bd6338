//! Time-scripted scenarios on tokio's paused clock: the real detectors, engine, SQLite store
//! and dispatcher, stepped through minutes or hours of scripted time. Each scenario asserts
//! the exact notifications, and the scripted second each was handed to its channel.
//!
//! The channel here is an in-process recorder: real SMTP or HTTP under a paused clock would
//! see their own timeouts fire at once. The real channels are proven against real peers in
//! `alert_e2e` and `alert_restart`; this file proves the timing.

use super::support::{batch, probe_record, sqlite_store, StoreGuard};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use netwarden_collector::alert::clock::{SharedClock, TokioClock};
use netwarden_collector::alert::dispatch::{Attempt, Channel, DispatchSettings, Dispatcher};
use netwarden_collector::alert::engine::Engine;
use netwarden_collector::alert::routing::{
    AlertingConfig, EscalationConfig, GatewayConfig, RouteConfig,
};
use netwarden_collector::alert::watch::{Detectors, Watcher};
use netwarden_collector::detect::device::DeviceRules;
use netwarden_collector::detect::speed::SpeedFloors;
use netwarden_collector::domain::alerting::AnomalyKind;
use netwarden_collector::metrics::Metrics;
use netwarden_collector::storage::alerting::{
    AlertEvent, AlertJob, AlertOutcome, Anomaly, AnomalyQuery, NewAnomaly, NewSilence,
    PlannedAlert, Severity,
};
use netwarden_collector::storage::Store;
use netwarden_shared::AgentId;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One notification as the channel got it.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    /// Scripted seconds since the scenario began.
    at: i64,
    event: String,
    kind: String,
    subject: String,
    recipient: String,
    severity: Severity,
}

struct Recorder {
    clock: SharedClock,
    t0: DateTime<Utc>,
    sent: Mutex<Vec<Sent>>,
}

#[async_trait]
impl Channel for Recorder {
    fn name(&self) -> &'static str {
        "email"
    }

    async fn deliver(&self, job: &AlertJob) -> Attempt {
        self.sent.lock().unwrap().push(Sent {
            at: (self.clock.now() - self.t0).num_seconds(),
            event: job.alert.event.as_str().to_string(),
            kind: job.anomaly.as_ref().expect("an anomaly's").kind.to_string(),
            subject: job.anomaly.as_ref().expect("an anomaly's").subject.clone(),
            recipient: job.alert.recipient.clone(),
            severity: job.alert.severity,
        });
        Attempt::Sent
    }
}

struct Scenario {
    store: Arc<dyn Store>,
    _guard: StoreGuard,
    clock: SharedClock,
    t0: DateTime<Utc>,
    watcher: Watcher,
    dispatcher: Dispatcher,
    recorder: Arc<Recorder>,
    sequence: u64,
}

impl Scenario {
    async fn new(config: AlertingConfig) -> Scenario {
        let (store, guard) = sqlite_store().await;
        let t0 = DateTime::parse_from_rfc3339("2026-11-21T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock: SharedClock = Arc::new(TokioClock::starting_at(t0));
        let metrics = Arc::new(Metrics::new());
        let engine =
            Arc::new(Engine::new(store.clone(), config, metrics.clone()).with_clock(clock.clone()));
        let detectors = Detectors::new(DeviceRules::default(), SpeedFloors::default());
        let mut watcher = Watcher::new(store.clone(), engine.clone(), detectors);
        watcher.load().await;
        let recorder = Arc::new(Recorder {
            clock: clock.clone(),
            t0,
            sent: Mutex::new(Vec::new()),
        });
        let dispatcher = Dispatcher::new(
            store.clone(),
            metrics,
            DispatchSettings {
                holder: "scenario".into(),
                lease: Duration::from_secs(60),
                retries: 3,
                backoff: Duration::from_secs(1),
                clock: clock.clone(),
            },
            vec![recorder.clone()],
            engine.wake.clone(),
        );
        Scenario {
            store,
            _guard: guard,
            clock,
            t0,
            watcher,
            dispatcher,
            recorder,
            sequence: 0,
        }
    }

    fn now_secs(&self) -> i64 {
        (self.clock.now() - self.t0).num_seconds()
    }

    /// One probe round from `agent`: each target with its replies out of 4.
    async fn round(&mut self, agent: &str, targets: &[(&str, u32)]) {
        self.sequence += 1;
        let now = self.clock.now();
        let records = targets
            .iter()
            .enumerate()
            .map(|(i, (target, received))| {
                probe_record(
                    self.sequence * 100 + i as u64,
                    now.timestamp_millis(),
                    target,
                    *received,
                )
            })
            .collect();
        let batch = batch(self.sequence, records);
        let agent_id = AgentId::new(agent).unwrap();
        self.store
            .ingest(&agent_id, batch.clone(), now)
            .await
            .unwrap();
        self.watcher.committed(agent, &batch.records).await;
        self.deliver().await;
    }

    /// Delivers whatever is due now.
    async fn deliver(&self) {
        let stop = CancellationToken::new();
        while self
            .dispatcher
            .poll_once(self.recorder.as_ref(), &stop)
            .await
            > 0
        {}
    }

    /// Lets scripted time run to `until` (seconds since the start), stopping at every due
    /// notification as the dispatcher's loop does, and every 5 s to check agents and clearing
    /// as the detection task does.
    async fn run_until(&mut self, until: i64) {
        let target = self.t0 + chrono::Duration::seconds(until);
        loop {
            self.watcher.tick().await;
            self.watcher.check_agents().await;
            self.deliver().await;
            let now = self.clock.now();
            if now >= target {
                return;
            }
            let step = target.min(now + chrono::Duration::seconds(5));
            let next = match self.store.next_alert_due("email").await.unwrap() {
                Some(due) if due > now && due < step => due,
                _ => step,
            };
            tokio::time::advance((next - now).to_std().unwrap()).await;
        }
    }

    /// Probe rounds every 10 s from now to `until`, with the replies `script` gives per round.
    async fn rounds_until(
        &mut self,
        agent: &str,
        until: i64,
        mut script: impl FnMut(i64) -> Vec<(&'static str, u32)>,
    ) {
        while self.now_secs() < until {
            let targets = script(self.now_secs());
            self.round(agent, &targets).await;
            let next = self.now_secs() + 10;
            self.run_until(next).await;
        }
    }

    fn sent(&self) -> Vec<Sent> {
        self.recorder.sent.lock().unwrap().clone()
    }

    /// (second, event, kind) of each notification, for compact assertions.
    fn timeline(&self) -> Vec<(i64, String, String)> {
        self.sent()
            .into_iter()
            .map(|s| (s.at, s.event, s.kind))
            .collect()
    }
}

fn noc_route() -> RouteConfig {
    RouteConfig {
        name: "noc".into(),
        kinds: vec![],
        min_severity: Severity::Low,
        email: vec!["noc@example.test".into()],
        telegram: vec![],
        webhook: vec![],
        alertmanager: vec![],
        escalation: vec![],
    }
}

fn config() -> AlertingConfig {
    AlertingConfig {
        routes: vec![noc_route()],
        agent_silent_secs: 0,
        ..AlertingConfig::default()
    }
}

async fn all_anomalies(store: &Arc<dyn Store>) -> Vec<Anomaly> {
    let query = AnomalyQuery {
        limit: 100,
        ..AnomalyQuery::default()
    };
    store.anomalies(&query).await.unwrap()
}

fn ev(at: i64, event: &str, kind: &str) -> (i64, String, String) {
    (at, event.to_string(), kind.to_string())
}

const HOST: &str = "10.1.0.5";

#[tokio::test(start_paused = true)]
async fn one_bad_round_is_no_alert_two_are_one_and_recovery_needs_two_good_rounds() {
    let mut s = Scenario::new(config()).await;
    // Rounds every 10 s: down once at 10 s; then, ten minutes on (so the flapping window has
    // forgotten it), down from 640 s to 700 s with a single good round at 660 s.
    s.rounds_until("site-1", 760, |t| {
        let down = t == 10 || (640..700).contains(&t) && t != 660;
        vec![(HOST, if down { 0 } else { 4 })]
    })
    .await;
    assert_eq!(
        s.timeline(),
        vec![
            // The second bad round in a row (650 s) opens it; the group wait is 2 s.
            ev(652, "open", "device_offline"),
            // One good round (660 s) does not clear it; two in a row (700 s, 710 s) do.
            ev(710, "resolve", "device_offline"),
        ]
    );
    assert_eq!(s.sent()[0].subject, format!("site-1/{HOST}"));
    assert_eq!(s.sent()[0].severity, Severity::Critical);
}

#[tokio::test(start_paused = true)]
async fn a_condition_that_clears_within_the_group_wait_sends_nothing() {
    let mut config = config();
    config.group_wait_secs = 30;
    let mut s = Scenario::new(config).await;
    s.rounds_until("site-1", 120, |t| {
        vec![(HOST, if (10..30).contains(&t) { 0 } else { 4 })]
    })
    .await;
    assert_eq!(
        s.timeline(),
        vec![],
        "open at 20 s, resolved at 40 s, before 50 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_flapping_host_becomes_one_flapping_anomaly_and_stops_chattering() {
    let mut s = Scenario::new(config()).await;
    // Two rounds down, two up, for 5 minutes; then up for good.
    s.rounds_until("site-1", 1200, |t| {
        let flapping = t < 300 && (t / 20) % 2 == 0;
        vec![(HOST, if flapping { 0 } else { 4 })]
    })
    .await;
    let timeline = s.timeline();
    // Up/down changes at 20, 40, 60, ...: the sixth (120 s) makes it flapping.
    let flapping_at = timeline
        .iter()
        .position(|e| e.2 == "flapping")
        .unwrap_or_else(|| panic!("no flapping: {timeline:?}"));
    assert_eq!(timeline[flapping_at], ev(122, "open", "flapping"));
    let before = &timeline[..flapping_at];
    assert_eq!(
        before,
        &[
            ev(12, "open", "device_offline"),
            ev(30, "resolve", "device_offline"),
            ev(52, "open", "device_offline"),
            ev(70, "resolve", "device_offline"),
            ev(92, "open", "device_offline"),
            ev(110, "resolve", "device_offline"),
        ]
    );
    // After that: no offline chatter until it has been stable for the whole 10-minute window
    // (the last change is at 300 s), then one resolve of the flapping anomaly.
    assert_eq!(
        &timeline[flapping_at + 1..],
        &[ev(910, "resolve", "flapping")]
    );
}

#[tokio::test(start_paused = true)]
async fn unacknowledged_anomalies_escalate_and_repeat_until_acknowledged() {
    let mut config = config();
    config.repeat_secs = 3600;
    config.routes[0].escalation = vec![
        EscalationConfig {
            after_secs: 600,
            email: vec!["oncall@example.test".into()],
            telegram: vec![],
            webhook: vec![],
            alertmanager: vec![],
        },
        EscalationConfig {
            after_secs: 1800,
            email: vec!["manager@example.test".into()],
            telegram: vec![],
            webhook: vec![],
            alertmanager: vec![],
        },
    ];
    let mut s = Scenario::new(config).await;
    s.rounds_until("site-1", 20, |_| vec![(HOST, 0)]).await;
    // Stays down; the agent keeps probing but only state changes matter: time runs on.
    s.run_until(2 * 3600 + 60).await;
    let sent = s.sent();
    let got: Vec<(i64, &str, &str, Severity)> = sent
        .iter()
        .map(|x| (x.at, x.event.as_str(), x.recipient.as_str(), x.severity))
        .collect();
    assert_eq!(
        got,
        vec![
            (12, "open", "noc@example.test", Severity::Critical),
            (610, "escalate", "oncall@example.test", Severity::Critical),
            (1810, "escalate", "manager@example.test", Severity::Critical),
            (3612, "repeat", "noc@example.test", Severity::Critical),
            (7212, "repeat", "noc@example.test", Severity::Critical),
        ]
    );

    // Acknowledged: no more repeats, and the resolve notice goes to everyone who was told.
    let id = all_anomalies(&s.store).await[0].id;
    s.store
        .acknowledge_anomaly(id, "alice", Some("on it"), s.clock.now())
        .await
        .unwrap();
    s.run_until(6 * 3600).await;
    assert_eq!(s.sent().len(), 5, "acknowledged: {:?}", s.timeline());
    s.rounds_until("site-1", 6 * 3600 + 20, |_| vec![(HOST, 4)])
        .await;
    let mut resolves: Vec<String> = s
        .sent()
        .into_iter()
        .filter(|x| x.event == "resolve")
        .map(|x| x.recipient)
        .collect();
    resolves.sort();
    assert_eq!(
        resolves,
        [
            "manager@example.test",
            "noc@example.test",
            "oncall@example.test"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_escalation_step_of_a_lower_severity_anomaly_goes_one_severity_up() {
    let mut config = config();
    config.routes[0].escalation = vec![EscalationConfig {
        after_secs: 300,
        email: vec!["oncall@example.test".into()],
        telegram: vec![],
        webhook: vec![],
        alertmanager: vec![],
    }];
    let mut s = Scenario::new(config).await;
    // 1 of 4 replies lost: 25 % loss, a high anomaly after three rounds (the 20 s it must
    // last, rounds 10 s apart).
    s.rounds_until("site-1", 330, |_| vec![(HOST, 3)]).await;
    let sent = s.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!((sent[0].at, sent[0].severity), (22, Severity::High));
    assert_eq!(sent[0].kind, "packet_loss");
    assert_eq!(
        (sent[1].at, sent[1].event.as_str(), sent[1].severity),
        (320, "escalate", Severity::Critical)
    );
}

#[tokio::test(start_paused = true)]
async fn a_gateway_down_mutes_the_hosts_behind_it_and_a_silent_agent_is_critical() {
    let mut config = config();
    config.agent_silent_secs = 120;
    config.gateways = vec![GatewayConfig {
        agent: "site-1".into(),
        address: "10.1.0.1".into(),
    }];
    let mut s = Scenario::new(config).await;
    // The gateway goes first, then the host behind it: only the gateway is heard of.
    s.rounds_until("site-1", 60, |t| {
        let gateway = if t >= 20 { 0 } else { 4 };
        let host = if t >= 30 { 0 } else { 4 };
        vec![("10.1.0.1", gateway), (HOST, host)]
    })
    .await;
    assert_eq!(s.timeline(), vec![ev(32, "open", "device_offline")]);
    assert_eq!(s.sent()[0].subject, "site-1/10.1.0.1");
    let muted = all_anomalies(&s.store).await;
    let host = muted
        .iter()
        .find(|a| a.subject == format!("site-1/{HOST}"))
        .expect("the host's anomaly is stored");
    assert!(
        host.suppressed.as_deref().unwrap_or("").contains("gateway"),
        "{host:?}"
    );

    // Then the agent goes quiet: after 120 s it is an anomaly of its own, checked every step.
    s.run_until(60 + 200).await;
    let silent: Vec<Sent> = s
        .sent()
        .into_iter()
        .filter(|x| x.kind == "agent_silent")
        .collect();
    assert_eq!(silent.len(), 1, "{:?}", s.timeline());
    assert_eq!(silent[0].severity, Severity::Critical);
    // The last round was at 50 s: silent from 170 s, notified 2 s later.
    assert!((172..=182).contains(&silent[0].at), "{silent:?}");
}

#[tokio::test(start_paused = true)]
async fn a_silence_mutes_only_within_its_time_range() {
    let mut s = Scenario::new(config()).await;
    s.store
        .create_silence(
            &NewSilence {
                kind: Some(AnomalyKind::DeviceOffline),
                subject: Some("site-1/10.1.*".into()),
                group_key: None,
                severity: None,
                starts_at: s.t0 + chrono::Duration::seconds(100),
                ends_at: s.t0 + chrono::Duration::seconds(400),
                created_by: "alice".into(),
                comment: "switch swap".into(),
            },
            s.clock.now(),
        )
        .await
        .unwrap();
    // Down at 0-30 s (before), 150-180 s (within), 500-530 s (after the silence).
    s.rounds_until("site-1", 600, |t| {
        let down = [0, 150, 500]
            .iter()
            .any(|start| (*start..start + 40).contains(&t));
        vec![(HOST, if down { 0 } else { 4 })]
    })
    .await;
    assert_eq!(
        s.timeline(),
        vec![
            ev(12, "open", "device_offline"),
            ev(50, "resolve", "device_offline"),
            ev(512, "open", "device_offline"),
            ev(550, "resolve", "device_offline"),
        ]
    );
    let muted = all_anomalies(&s.store).await;
    assert_eq!(muted.len(), 3, "the silenced outage is still recorded");
    assert!(muted.iter().any(|a| a
        .suppressed
        .as_deref()
        .unwrap_or("")
        .contains("switch swap")));
}

/// A channel that takes `delay` to deliver, answers `attempt`, and logs each `settled` call
/// as (its tag, the outcome).
struct Slow {
    tag: &'static str,
    delay: Duration,
    attempt: Attempt,
    settled: Arc<Mutex<Vec<(&'static str, AlertOutcome)>>>,
}

#[async_trait]
impl Channel for Slow {
    fn name(&self) -> &'static str {
        "email"
    }

    async fn deliver(&self, _job: &AlertJob) -> Attempt {
        tokio::time::sleep(self.delay).await;
        self.attempt.clone()
    }

    async fn settled(&self, _job: &AlertJob, outcome: &AlertOutcome) {
        self.settled
            .lock()
            .unwrap()
            .push((self.tag, outcome.clone()));
    }
}

/// A send that outlives its lease is not the send's outcome: another collector claims the
/// notification again and sends it, and only that outcome reaches the channel's `settled`
/// hook (the customer email gives back its claim and tells the NOC from there).
#[tokio::test(start_paused = true)]
async fn only_the_holders_outcome_is_settled() {
    let (store, _guard) = sqlite_store().await;
    let t0 = DateTime::parse_from_rfc3339("2026-11-21T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock: SharedClock = Arc::new(TokioClock::starting_at(t0));
    let anomaly = NewAnomaly {
        kind: AnomalyKind::PacketLoss,
        subject: "10.0.0.2".into(),
        group_key: None,
        severity: Severity::High,
        summary: "loss".into(),
        details: serde_json::json!({}),
    };
    let plan = [PlannedAlert {
        channel: "email".into(),
        recipient: "noc@isp.test".into(),
        event: AlertEvent::Open,
        step: 0,
        severity: Severity::High,
        delay: Duration::ZERO,
        repeat: Duration::ZERO,
    }];
    store.open_anomaly(&anomaly, None, &plan, t0).await.unwrap();
    let dispatcher = |holder: &str| {
        Dispatcher::new(
            store.clone(),
            Arc::new(Metrics::new()),
            DispatchSettings {
                holder: holder.into(),
                lease: Duration::from_secs(60),
                retries: 0,
                backoff: Duration::from_secs(1),
                clock: clock.clone(),
            },
            Vec::new(),
            Arc::new(tokio::sync::Notify::new()),
        )
    };
    let settled = Arc::new(Mutex::new(Vec::new()));
    let stalled = Slow {
        tag: "a",
        delay: Duration::from_secs(90),
        attempt: Attempt::Permanent("timed out".into()),
        settled: settled.clone(),
    };
    let prompt = Slow {
        tag: "b",
        delay: Duration::ZERO,
        attempt: Attempt::Sent,
        settled: settled.clone(),
    };
    let (a, b) = (dispatcher("a"), dispatcher("b"));
    let stop = CancellationToken::new();
    let first = {
        let stop = stop.clone();
        tokio::spawn(async move { a.poll_once(&stalled, &stop).await })
    };
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(
        b.poll_once(&prompt, &stop).await,
        1,
        "claimed again after the lease"
    );
    assert_eq!(first.await.unwrap(), 1);
    assert_eq!(
        *settled.lock().unwrap(),
        vec![("b", AlertOutcome::Sent)],
        "the stalled send's late failure is not settled"
    );
    let alerts = store
        .alerts(&netwarden_collector::storage::alerting::AlertQuery {
            channel: None,
            acknowledged: None,
            anomaly_id: None,
            state: None,
            limit: 10,
            offset: 0,
        })
        .await
        .unwrap();
    assert_eq!(alerts[0].state, "sent", "{alerts:?}");
    assert!(alerts[0].recovered);
}
