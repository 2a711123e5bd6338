//! The fleet plan with the real binaries and a real PKI: a target added with `netwarden plan
//! apply` is probed by a running agent within seconds, without a restart; with the collector
//! killed, the agent restarted runs its cached plan; a plan emptied stops the probes while the
//! local `agent.toml` target goes on; and across it all every result the agent produced is
//! stored exactly once.

use super::e2e::{
    agent_buffer_counts, create_token, get_json, path_arg, start_collector, wait_for,
    write_configs, Proc,
};
use super::support::binary;
use chrono::{DateTime, Utc};
use prost::Message;
use std::process::Command;
use std::time::{Duration, Instant};

const PLAN: &str = "\
sites:
  - name: lab
agents:
  - name: e2e-agent
    site: lab
checks:
  - name: fast
    count: 2
    interval_secs: 1
    ping_interval_ms: 50
    timeout_ms: 500
    min_timeout_ms: 100
targets:
  - name: lab-host
    address: 127.0.0.2
    site: lab
    checks: [fast]
";

/// `netwarden` against the site's collector with `token`; (exit code, stdout, stderr).
fn netwarden(http: u16, token: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary("netwarden"))
        .env_remove("NETWARDEN_CONFIG")
        .env("HOME", "/nonexistent")
        .env("NETWARDEN_URL", format!("http://127.0.0.1:{http}"))
        .env("NETWARDEN_TOKEN", token)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// When the device at `address` was last probed, as the collector says.
async fn last_probe(http: u16, address: &str) -> Option<DateTime<Utc>> {
    let devices = get_json(&format!("http://127.0.0.1:{http}/api/devices?limit=100")).await?;
    devices
        .as_array()?
        .iter()
        .find(|d| d["address"] == address)?["last_probe_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Probe rounds in the agent's buffer for `target`, observed after `since`.
fn buffered_rounds(site: &super::e2e::Site, target: &str, since: DateTime<Utc>) -> usize {
    let conn = rusqlite::Connection::open(site.dir.path().join("agent-buffer.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT body FROM records WHERE observed_ms > ?1")
        .unwrap();
    let bodies: Vec<Vec<u8>> = stmt
        .query_map([since.timestamp_millis()], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    bodies
        .iter()
        .filter(|body| {
            let record = netwarden_proto::v1::Record::decode(body.as_slice()).unwrap();
            matches!(
                record.kind,
                Some(netwarden_proto::v1::record::Kind::ProbeRound(ref round)) if round.target == target
            )
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_applied_with_the_cli_is_run_cached_and_withdrawn() {
    let site = write_configs("sqlite://collector.db");
    // The agent's own file probes one address; the plan adds another.
    let agent_toml = site.dir.path().join("agent.toml");
    let text = std::fs::read_to_string(&agent_toml).unwrap().replace(
        "targets = [\"127.0.0.1\", \"127.0.0.2\", \"127.0.0.3\", \"::1\"]",
        "targets = [\"127.0.0.1\"]",
    );
    std::fs::write(&agent_toml, text).unwrap();
    let token = create_token(&site, "operator", "noc-ops");
    let plan_file = site.dir.path().join("plan.yaml");
    std::fs::write(&plan_file, PLAN).unwrap();
    let plan_arg = plan_file.to_str().unwrap();

    let mut collector = start_collector(&site).await;
    let agent_args = ["run", "--config", &path_arg(&site, "agent.toml")];
    let mut agent = Proc::spawn(
        &binary("netwarden-agent"),
        &agent_args,
        site.dir.path().join("agent-1.log"),
    );
    wait_for("the local target", Duration::from_secs(30), || async {
        last_probe(site.http, "127.0.0.1").await.is_some()
    })
    .await;
    assert_eq!(last_probe(site.http, "127.0.0.2").await, None);

    // Applied with the CLI: probed within seconds, by the agent already running.
    let (code, stdout, stderr) = netwarden(site.http, &token, &["plan", "diff", plan_arg]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "+ site lab\n+ agent e2e-agent\n+ check fast\n+ target lab-host\n"
    );
    let applied_at = Utc::now();
    let clock = Instant::now();
    let (code, stdout, stderr) = netwarden(
        site.http,
        &token,
        &[
            "plan",
            "apply",
            plan_arg,
            "--base-version",
            "0",
            "--comment",
            "lab host",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "version 1 saved: +1 site, +1 agent, +1 check, +1 target\n"
    );
    wait_for(
        "the planned target's first round",
        Duration::from_secs(15),
        || async {
            last_probe(site.http, "127.0.0.2")
                .await
                .is_some_and(|t| t > applied_at)
        },
    )
    .await;
    println!(
        "a target applied with the CLI was stored as probed {:.1} s later",
        clock.elapsed().as_secs_f64()
    );
    assert!(
        agent.log_text().contains("plan received"),
        "{}",
        agent.log_text()
    );
    let (_, stdout, _) = netwarden(site.http, &token, &["plan", "diff", plan_arg]);
    assert_eq!(stdout, "no change from version 1\n");
    let (_, stdout, _) = netwarden(site.http, &token, &["plan", "get"]);
    assert!(
        stdout.starts_with("# base_version: 1\n# version 1, saved by noc-ops at "),
        "{stdout}"
    );
    assert!(stdout.contains("address: 127.0.0.2"), "{stdout}");

    // The collector gone, the agent restarted: it runs the plan it cached.
    collector.signal("-KILL");
    collector.wait(Duration::from_secs(10));
    agent.signal("-TERM");
    assert!(agent.wait(Duration::from_secs(30)).success());
    let restarted_at = Utc::now();
    let mut agent = Proc::spawn(
        &binary("netwarden-agent"),
        &agent_args,
        site.dir.path().join("agent-2.log"),
    );
    wait_for(
        "rounds of the cached plan's target",
        Duration::from_secs(15),
        || async { buffered_rounds(&site, "127.0.0.2", restarted_at) >= 3 },
    )
    .await;
    assert!(
        agent.log_text().contains("running the cached plan"),
        "{}",
        agent.log_text()
    );

    // Back, and the plan emptied: the planned target stops, the local one goes on.
    let mut collector = start_collector(&site).await;
    let empty = site.dir.path().join("empty.yaml");
    std::fs::write(&empty, "# nothing planned\n").unwrap();
    let (code, stdout, stderr) = netwarden(
        site.http,
        &token,
        &["plan", "apply", empty.to_str().unwrap(), "--force"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "version 2 saved: -1 site, -1 agent, -1 check, -1 target\n"
    );
    // Enough for the change to reach the agent and the backlog to drain.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stopped_at = last_probe(site.http, "127.0.0.2").await.unwrap();
    let local_before = last_probe(site.http, "127.0.0.1").await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        last_probe(site.http, "127.0.0.2").await.unwrap(),
        stopped_at,
        "no round of the withdrawn target after the plan dropped it"
    );
    assert!(last_probe(site.http, "127.0.0.1").await.unwrap() > local_before);

    // Every result produced across both runs and the plan changes, stored exactly once.
    agent.signal("-TERM");
    assert!(
        agent.wait(Duration::from_secs(30)).success(),
        "{}",
        agent.log_text()
    );
    let (produced, dropped, backlog) = agent_buffer_counts(&site);
    assert_eq!((dropped, backlog), (0, 0), "{}", agent.log_text());
    let audit = get_json(&format!(
        "http://127.0.0.1:{}/api/agents/e2e-agent/audit",
        site.http
    ))
    .await
    .unwrap();
    let n = |k: &str| audit[k].as_i64().unwrap() as u64;
    assert_eq!(n("probe_results"), produced, "every result stored: {audit}");
    assert_eq!(
        n("distinct_probe_record_ids"),
        produced,
        "each once: {audit}"
    );
    println!("{produced} results produced across the plan's changes, all stored once");

    // The history names who changed what.
    let (_, stdout, _) = netwarden(site.http, &token, &["plan", "history", "-o", "json"]);
    let history: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(history[0]["version"], 2);
    assert_eq!(history[1]["comment"], "lab host");
    assert_eq!(history[1]["author"], "noc-ops");
    collector.signal("-TERM");
    collector.wait(Duration::from_secs(20));
}
