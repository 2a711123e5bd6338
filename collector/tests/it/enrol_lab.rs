//! Discovery that feeds monitoring, on real hosts (netlab): a plan's discovery site over the
//! lab's /24 with an enrolment policy (hosts in 10.77.0.0/29) and an ignore entry. After the
//! first sweep every matching host is probed and has a status, the ignored host is nowhere,
//! the host outside the policy is inventoried but not probed, and no `new_device` is raised
//! (the first sweep is the baseline). A host plugged in later raises exactly one `new_device`
//! and is probed from the round after the sweep that found it.
//!
//! Needs root and `../shared/netlab`; CI sets `NETWARDEN_REQUIRE_LAB=1`.

use super::detection_lab::{Killed, Lab};
use super::e2e::run_ok;
use super::support::{binary, free_port};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// Lab host hN's address.
fn ip(host: u32) -> String {
    format!("10.77.0.{}", host + 1)
}

const PLAN: &str = "\
sites: [{name: lab}]
agents: [{name: enrol-agent, site: lab}]
checks:
  - {name: fast, count: 3, interval_secs: 2, ping_interval_ms: 100, timeout_ms: 500, min_timeout_ms: 100}
discovery:
  - name: lab-lan
    site: lab
    cidrs: [10.77.0.0/24]
    interval_secs: 10
    enrol: {mode: matching, addresses: [10.77.0.0/29], check: fast}
    ignore: [10.77.0.4]
";

pub(crate) fn wait_until(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub(crate) fn device<'a>(devices: &'a Value, address: &str) -> Option<&'a Value> {
    devices.as_array()?.iter().find(|d| d["address"] == address)
}

fn new_devices(lab: &Lab, http: u16) -> Vec<String> {
    let anomalies = lab.get(&format!(
        "http://127.0.0.1:{http}/api/anomalies?kind=new_device&limit=100"
    ));
    anomalies
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| a["subject"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_discovery_site_enrols_what_its_policy_matches_and_learns_its_baseline() {
    // h1-h6 are 10.77.0.2-7, inside the policy's /29; h3 is ignored; h5 is plugged in later;
    // h7 and h8 (10.77.0.8-9) are outside the policy.
    let Some(lab) = Lab::start("e", &["up", "--hosts", "8", "--down", "h5"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (_collector, _agent, http) = run_planned_agent(&lab, dir.path(), "enrol-agent", PLAN);
    let api = |p: &str| format!("http://127.0.0.1:{http}{p}");
    let log = || std::fs::read_to_string(path("agent.log")).unwrap_or_default();
    let context = || {
        format!(
            "devices: {}\nagent log:\n{}",
            lab.get(&api("/api/devices?limit=100")),
            log()
        )
    };

    // The first sweep: the matching hosts probed, each with a status.
    let enrolled = [1, 2, 4, 6];
    wait_until(
        "the enrolled hosts' statuses",
        Duration::from_secs(60),
        || {
            let devices = lab.get(&api("/api/devices?limit=100"));
            enrolled
                .iter()
                .all(|h| device(&devices, &ip(*h)).is_some_and(|d| d["last_probe_at"].is_string()))
        },
        context,
    );
    let devices = lab.get(&api("/api/devices?limit=100"));
    for h in enrolled {
        let d = device(&devices, &ip(h)).unwrap();
        assert_eq!(d["status"], "online", "{d}");
    }
    assert!(
        device(&devices, &ip(3)).is_none(),
        "the ignored host is neither inventoried nor probed: {devices}"
    );
    for h in [7, 8] {
        let outside = device(&devices, &ip(h)).expect("inventoried");
        assert!(
            outside["last_probe_at"].is_null(),
            "h{h} is outside the policy: found, not probed: {outside}"
        );
    }
    assert!(
        device(&devices, &ip(5)).is_none(),
        "h5 is unplugged: {devices}"
    );
    assert_eq!(
        new_devices(&lab, http),
        Vec::<String>::new(),
        "the first sweep is the baseline"
    );

    // h5 plugged in: found by the next sweep, one new_device, probed from the next round.
    lab.run(&["up-host", "h5"]);
    let plugged = Instant::now();
    wait_until(
        "h5 probed",
        Duration::from_secs(60),
        || {
            let devices = lab.get(&api("/api/devices?limit=100"));
            device(&devices, &ip(5)).is_some_and(|d| d["status"] == "online")
        },
        context,
    );
    println!(
        "a host plugged in was probed and online {:.1} s later (sweeps every 10 s)",
        plugged.elapsed().as_secs_f64()
    );
    // Another sweep and more rounds: still exactly one.
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(
        new_devices(&lab, http),
        vec![format!("enrol-agent/{}", ip(5))],
        "agent log:\n{}",
        log()
    );
    assert!(log().contains("hosts enrolled"), "{}", log());
}

/// A collector on SQLite and one agent, named `agent`, in the lab's agent namespace, with a
/// fresh PKI in `dir` and `plan` applied through the CLI before the agent starts; the agent's
/// own file has no targets and no sites, so all it runs comes from the plan. Returns both
/// processes and the collector's HTTP port.
pub(crate) fn run_planned_agent(
    lab: &Lab,
    dir: &std::path::Path,
    agent: &str,
    plan: &str,
) -> (Killed, Killed, u16) {
    let path = |name: &str| dir.join(name);
    let collector = binary("netwarden-collector");
    let pki = path("pki");
    let pki = pki.to_str().unwrap();
    run_ok(&collector, &["pki", "init", "--dir", pki]);
    run_ok(
        &collector,
        &["pki", "issue-agent", "--dir", pki, "--name", agent],
    );
    let (grpc, http) = (free_port(), free_port());
    std::fs::write(
        path("collector.toml"),
        format!(
            "[grpc]\nlisten = \"127.0.0.1:{grpc}\"\nquery_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
             [tls]\nca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n\
             [database]\nurl = \"sqlite://collector.db\"\n[auth]\nanonymous_role = \"admin\"\n"
        ),
    )
    .unwrap();
    // The agent's own file has no targets and no sites: all it runs comes from the plan.
    std::fs::write(
        path("agent.toml"),
        format!(
            "[collector]\nurl = \"https://127.0.0.1:{grpc}\"\n\
             [tls]\nca = \"pki/ca.pem\"\ncert = \"pki/agents/{agent}.pem\"\nkey = \"pki/agents/{agent}.key\"\n\
             [buffer]\npath = \"agent-buffer.db\"\n\
             [uplink]\nbackoff_initial_ms = 200\nbackoff_max_secs = 2\n\
             [discovery]\nreverse_dns = false\nports = []\n"
        ),
    )
    .unwrap();
    std::fs::write(path("plan.yaml"), plan).unwrap();
    let collector_process = Killed(lab.spawn(
        &collector,
        &[
            "serve",
            "--config",
            path("collector.toml").to_str().unwrap(),
        ],
        &path("collector.log"),
    ));
    let api = |p: &str| format!("http://127.0.0.1:{http}{p}");
    wait_until(
        "the collector",
        Duration::from_secs(30),
        || !lab.get(&api("/health")).is_null(),
        || std::fs::read_to_string(path("collector.log")).unwrap_or_default(),
    );
    apply_plan(lab, http, &path("plan.yaml"), &["--base-version", "0"]);
    let agent_process = Killed(lab.spawn(
        &binary("netwarden-agent"),
        &["run", "--config", path("agent.toml").to_str().unwrap()],
        &path("agent.log"),
    ));
    (collector_process, agent_process, http)
}

/// `netwarden plan apply FILE ARGS...` against the collector on `http`, from the lab's agent
/// namespace, with no CLI config of the machine's; it must succeed.
pub(crate) fn apply_plan(lab: &Lab, http: u16, file: &std::path::Path, args: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.netns()])
        .arg(binary("netwarden"))
        .args([
            "--url",
            &format!("http://127.0.0.1:{http}"),
            "plan",
            "apply",
        ])
        .arg(file)
        .args(args)
        .env_remove("NETWARDEN_CONFIG")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
