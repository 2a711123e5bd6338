//! The fleet plan through the API and the agents' gRPC port: viewers read and operators edit,
//! an edit on a stale version is refused, every error names its field, the history says who
//! changed what; an agent following the plan gets its own share at once, again within seconds
//! of a change that touches it, not for one that does not, and an empty share when the plan
//! drops it. On both backends.

use super::support::{Backend, TestCollector};
use netwarden_collector::auth::Role;
use netwarden_collector::rest::tokens::create_token;
use netwarden_proto::v1::plan_service_client::PlanServiceClient;
use netwarden_proto::v1::{AgentPlan, WatchPlanRequest};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn plan_with(targets: Value) -> Value {
    json!({
        "sites": [{"name": "syd", "labels": {"pop": "SYD"}}],
        "agents": [{"name": "agent-a", "site": "syd"}, {"name": "agent-b", "site": "syd"}],
        "checks": [{"name": "fast", "count": 5, "interval_secs": 10}],
        "targets": targets,
    })
}

async fn collector(backend: Backend) -> (TestCollector, String, String) {
    let c = TestCollector::start_with(backend, |c| c.auth.anonymous_role = None).await;
    let (_, operator) = create_token(c.store.as_ref(), "ops-alice", Role::Operator)
        .await
        .unwrap();
    let (_, viewer) = create_token(c.store.as_ref(), "wallboard", Role::Viewer)
        .await
        .unwrap();
    (c, operator, viewer)
}

async fn edits_are_versioned_checked_and_audited(backend: Backend) {
    let (c, operator, viewer) = collector(backend).await;
    let put = |token: String, body: Value| {
        let url = c.api("/api/plan");
        async move { call(reqwest::Method::PUT, url, &token, Some(body)).await }
    };
    let get = |path: &str, token: &str| {
        let url = c.api(path);
        let token = token.to_string();
        async move { call(reqwest::Method::GET, url, &token, None).await }
    };

    let (status, empty) = get("/api/plan", &viewer).await;
    assert_eq!(status, 200);
    assert_eq!(empty["version"], 0);
    assert_eq!(empty["plan"]["targets"], json!([]));

    let first = plan_with(json!([{"name": "core", "address": "10.0.0.1", "site": "syd"}]));
    let (status, body) = put(viewer.clone(), json!({"base_version": 0, "plan": first})).await;
    assert_eq!(status, 403, "a viewer may not edit: {body}");

    let (status, saved) = put(
        operator.clone(),
        json!({"base_version": 0, "comment": "first POP", "plan": first}),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["author"], "ops-alice");
    assert_eq!(saved["summary"], "+1 site, +2 agent, +1 check, +1 target");

    // Someone edited version 0 too, and applies after: refused, not overwritten.
    let (status, body) = put(operator.clone(), json!({"base_version": 0, "plan": first})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("base_version: the plan is at version 1"),
        "{body}"
    );

    // Every problem, each naming its field in the body.
    let bad = plan_with(json!([
        {"name": "x", "address": "10.0.0.300", "site": "syd"},
        {"name": "y", "address": "10.0.0.2", "site": "mel", "checks": ["slow"]},
    ]));
    let (status, body) = put(operator.clone(), json!({"base_version": 1, "plan": bad})).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    for field in [
        "plan.targets[0].address: ",
        "plan.targets[1].site: ",
        "plan.targets[1].checks[0]: ",
    ] {
        assert!(message.contains(field), "{field} in {message}");
    }
    let (status, body) = put(
        operator.clone(),
        json!({"base_version": 1, "plan": {"targets": [{"name": "z", "adress": "10.0.0.1"}]}}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("plan.targets[0]"),
        "{body}"
    );

    let second = plan_with(json!([
        {"name": "core", "address": "10.0.0.1", "site": "syd", "checks": ["fast"]},
        {"name": "edge", "address": "edge.syd.example.net", "site": "syd"},
    ]));
    let (status, saved) = put(
        operator.clone(),
        json!({"base_version": 1, "comment": "edge router", "plan": second}),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["summary"], "~1 target, +1 target");

    let (_, now) = get("/api/plan", &viewer).await;
    assert_eq!(now["version"], 2);
    assert_eq!(now["author"], "ops-alice");
    assert_eq!(now["comment"], "edge router");
    assert_eq!(now["plan"]["targets"][1]["address"], "edge.syd.example.net");

    let (_, history) = get("/api/plan/versions", &viewer).await;
    let lines: Vec<(i64, &str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["comment"].as_str().unwrap(),
                v["author"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (2, "edge router", "ops-alice"),
            (1, "first POP", "ops-alice")
        ]
    );
    let (status, old) = get("/api/plan/versions/1", &viewer).await;
    assert_eq!(status, 200);
    assert_eq!(old["plan"]["targets"].as_array().unwrap().len(), 1);
    let (status, _) = get("/api/plan/versions/9", &viewer).await;
    assert_eq!(status, 404);
    let (status, _) = get("/api/plan/versions/x", &viewer).await;
    assert_eq!(status, 400);

    // Speed tests send traffic from agents to a URL: an admin's decision.
    let mut with_test = second.clone();
    with_test["speedtests"] =
        json!([{"name": "to-noc", "url": "http://noc.example.net:8080", "site": "syd"}]);
    let (status, body) = put(
        operator.clone(),
        json!({"base_version": 2, "plan": with_test}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("plan.speedtests: "));
    let (_, admin) = create_token(c.store.as_ref(), "root", Role::Admin)
        .await
        .unwrap();
    let (status, body) = put(admin, json!({"base_version": 2, "plan": with_test})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summary"], "+1 speedtest");
    // An operator may still edit the rest, leaving the speed tests as they are.
    let mut edited = with_test.clone();
    edited["targets"][0]["labels"] = json!({"circuit": "AVC000000000001"});
    let (status, body) = put(operator.clone(), json!({"base_version": 3, "plan": edited})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_are_versioned_checked_and_audited_on_sqlite() {
    edits_are_versioned_checked_and_audited(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_are_versioned_checked_and_audited_on_postgres() {
    edits_are_versioned_checked_and_audited(Backend::Postgres).await;
}

/// The next plan on the stream, within `limit`; `None` when none came.
async fn next_plan(stream: &mut tonic::Streaming<AgentPlan>, limit: Duration) -> Option<AgentPlan> {
    match tokio::time::timeout(limit, stream.message()).await {
        Ok(message) => message.unwrap(),
        Err(_) => None,
    }
}

fn target_names(plan: &AgentPlan) -> Vec<String> {
    plan.probes
        .iter()
        .flat_map(|g| g.targets.iter().map(|t| format!("{}:{}", g.check, t.name)))
        .collect()
}

async fn an_agent_follows_its_share(backend: Backend) {
    let (c, operator, _) = collector(backend).await;
    let save = |base: i64, plan: Value| {
        let url = c.api("/api/plan");
        let token = operator.clone();
        async move {
            let (status, body) = call(
                reqwest::Method::PUT,
                url,
                &token,
                Some(json!({"base_version": base, "plan": plan})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    save(
        0,
        plan_with(json!([
            {"name": "core", "address": "10.0.0.1", "site": "syd", "checks": ["fast"]},
            {"name": "only-b", "address": "10.0.0.9", "run_on": {"agents": ["agent-b"]}},
        ])),
    )
    .await;

    let channel = c.channel(&c.pki.agent("agent-a")).await;
    let mut client = PlanServiceClient::new(channel);
    let mut stream = client
        .watch(WatchPlanRequest { known_version: 0 })
        .await
        .unwrap()
        .into_inner();
    // At once: the share of the version this collector has loaded (the empty one, if the
    // save above is newer than its last look), then version 1.
    let mut first = next_plan(&mut stream, Duration::from_secs(10))
        .await
        .expect("the share at once");
    if first.version == 0 {
        assert!(first.probes.is_empty());
        first = next_plan(&mut stream, Duration::from_secs(10))
            .await
            .expect("version 1");
    }
    assert_eq!(first.version, 1);
    assert_eq!(target_names(&first), ["fast:core"]);
    let icmp = first.probes[0].icmp.as_ref().unwrap();
    assert_eq!((icmp.count, icmp.interval_secs), (5, 10));

    // A change to agent-b's share only: agent-a hears nothing.
    save(
        1,
        plan_with(json!([
            {"name": "core", "address": "10.0.0.1", "site": "syd", "checks": ["fast"]},
            {"name": "only-b", "address": "10.0.0.10", "run_on": {"agents": ["agent-b"]}},
        ])),
    )
    .await;
    assert_eq!(next_plan(&mut stream, Duration::from_secs(3)).await, None);

    // A target for the site reaches agent-a within seconds.
    let saved_at = Instant::now();
    save(
        2,
        plan_with(json!([
            {"name": "core", "address": "10.0.0.1", "site": "syd", "checks": ["fast"]},
            {"name": "edge", "address": "10.0.0.2", "site": "syd"},
            {"name": "only-b", "address": "10.0.0.10", "run_on": {"agents": ["agent-b"]}},
        ])),
    )
    .await;
    let changed = next_plan(&mut stream, Duration::from_secs(10))
        .await
        .expect("the change");
    let took = saved_at.elapsed();
    assert_eq!(changed.version, 3);
    assert_eq!(target_names(&changed), ["default:edge", "fast:core"]);
    assert!(
        took < Duration::from_secs(5),
        "a change reaches a connected agent within 5 s (took {took:?})"
    );
    println!(
        "plan change reached the agent in {:.0} ms",
        took.as_secs_f64() * 1000.0
    );

    // A reconnecting agent is sent its share at once, whatever version it says it runs (a
    // number alone does not prove its copy is its share).
    let channel = c.channel(&c.pki.agent("agent-a")).await;
    let mut again = PlanServiceClient::new(channel)
        .watch(WatchPlanRequest { known_version: 3 })
        .await
        .unwrap()
        .into_inner();
    let resent = next_plan(&mut again, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (resent.version, target_names(&resent)),
        (3, target_names(&changed))
    );

    // Dropped from the plan: an empty share, so the agent stops probing.
    save(3, json!({})).await;
    let emptied = next_plan(&mut stream, Duration::from_secs(10))
        .await
        .expect("the empty share");
    assert_eq!(emptied.version, 4);
    assert!(emptied.probes.is_empty());

    let metrics = c.metrics().await;
    assert!(metrics.contains("netwarden_plan_version 4"), "{metrics}");
    assert!(metrics.contains("netwarden_plan_streams 2"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_follows_its_share_on_sqlite() {
    an_agent_follows_its_share(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_follows_its_share_on_postgres() {
    an_agent_follows_its_share(Backend::Postgres).await;
}

async fn one_target_at_a_time(backend: Backend) {
    let (c, operator, viewer) = collector(backend).await;
    let url = |name: &str| c.api(&format!("/api/plan/targets/{name}"));
    let put = |name: &str, token: &str, body: Value| {
        let (url, token) = (url(name), token.to_string());
        async move { call(reqwest::Method::PUT, url, &token, Some(body)).await }
    };
    // Into an empty plan: the site must be declared, so a target naming none runs nowhere and
    // is refused naming the field; one with run_on is taken.
    let (status, body) = put(
        "core",
        &operator,
        json!({"name": "core", "address": "10.0.0.1", "site": "syd"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("plan.targets[0].site: "));
    let (status, saved) = put(
        "core",
        &operator,
        json!({"name": "core", "address": "10.0.0.1", "run_on": {"agents": ["agent-a"]}}),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        (saved["version"].as_i64(), saved["summary"].as_str()),
        (Some(1), Some("+1 target"))
    );
    let (status, _) = put(
        "core",
        &viewer,
        json!({"name": "core", "address": "10.0.0.2", "run_on": {"agents": ["a"]}}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = put(
        "edge",
        &operator,
        json!({"name": "core", "address": "10.0.0.2", "run_on": {"agents": ["a"]}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Replaced in place, read back, removed, and gone.
    let (status, saved) = call(
        reqwest::Method::PUT,
        format!("{}?comment=moved", url("core")),
        &operator,
        Some(json!({"name": "core", "address": "10.0.0.9", "run_on": {"agents": ["agent-a"]}})),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        (saved["summary"].as_str(), saved["comment"].as_str()),
        (Some("~1 target"), Some("moved"))
    );
    let (status, got) = call(reqwest::Method::GET, url("core"), &viewer, None).await;
    assert_eq!((status, got["address"].as_str()), (200, Some("10.0.0.9")));
    // The same PUT again (a retry) saves nothing new.
    let (status, again) = put(
        "core",
        &operator,
        json!({"name": "core", "address": "10.0.0.9", "run_on": {"agents": ["agent-a"]}}),
    )
    .await;
    assert_eq!(
        (status, again["version"].as_i64()),
        (200, Some(2)),
        "{again}"
    );
    let (status, saved) = call(reqwest::Method::DELETE, url("core"), &operator, None).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        (saved["version"].as_i64(), saved["summary"].as_str()),
        (Some(3), Some("-1 target"))
    );
    let (status, _) = call(reqwest::Method::DELETE, url("core"), &operator, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(reqwest::Method::GET, url("core"), &viewer, None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_target_at_a_time_on_sqlite() {
    one_target_at_a_time(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_target_at_a_time_on_postgres() {
    one_target_at_a_time(Backend::Postgres).await;
}
