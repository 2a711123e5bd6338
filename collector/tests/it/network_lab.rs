//! The network as Prometheus sees it, end to end: a real agent probes netlab hosts (one clean,
//! one dropping 30 % of echo replies, one unplugged) from a fleet plan, a real Prometheus
//! (Debian's) scrapes the collector's `/metrics/network` with the shipped rules (their `for:`
//! shortened), and:
//! - each target's series carry the agent, the address and the plan's name, site and labels;
//! - the loss the agent reported over all its rounds equals what netlab's impairment dropped,
//!   and the series Prometheus holds is the newest round's;
//! - the loss and down alerts fire for the lossy and the unplugged host, not the clean one.
//!
//! Needs root, `../shared/netlab` and `prometheus`; CI sets `NETWARDEN_REQUIRE_LAB=1`.

use super::detection_lab::{Killed, Lab};
use super::enrol_lab::{apply_plan, device, run_planned_agent, wait_until};
use super::support::free_port;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PLAN: &str = "\
sites: [{name: lab, labels: {pop: LAB}}]
agents: [{name: net-agent, site: lab}]
checks:
  - {name: fast, count: 10, interval_secs: 2, ping_interval_ms: 100, timeout_ms: 500, min_timeout_ms: 100}
targets:
  - {name: h1-clean, address: 10.77.0.2, site: lab, checks: [fast], labels: {customer: acme}}
  - {name: h2-lossy, address: 10.77.0.3, site: lab, checks: [fast]}
  - {name: h3-away, address: 10.77.0.4, site: lab, checks: [fast]}
";

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// A PromQL query as a URL's query string.
fn encoded(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(lab: &Lab, prometheus: u16, promql: &str) -> Vec<Value> {
    lab.get(&format!(
        "http://127.0.0.1:{prometheus}/api/v1/query?query={}",
        encoded(promql)
    ))["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn addresses(results: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = results
        .iter()
        .filter_map(|r| r["metric"]["address"].as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

#[test]
fn prometheus_scrapes_each_target_with_its_labels_and_alerts_on_its_loss() {
    if !Path::new("/usr/bin/prometheus").exists() {
        assert!(
            std::env::var_os("NETWARDEN_REQUIRE_LAB").is_none(),
            "NETWARDEN_REQUIRE_LAB is set but prometheus is missing: apt-get install prometheus"
        );
        eprintln!("skipping: needs prometheus (apt-get install prometheus)");
        return;
    }
    let Some(lab) = Lab::start("n", &["up", "--hosts", "3", "--down", "h3"]) else {
        return;
    };
    lab.run(&["impair", "h2", "--loss", "30%", "--backend", "nfqueue"]);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (_collector, _agent, http) = run_planned_agent(&lab, dir.path(), "net-agent", PLAN);

    // The shipped rules, checked by promtool, with their waits cut for the test.
    let rules = std::fs::read_to_string(deploy("prometheus/netwarden-rules.yml"))
        .unwrap()
        .replace("for: 5m", "for: 0s")
        .replace("for: 2m", "for: 0s");
    std::fs::write(path("rules.yml"), rules).unwrap();
    let checked = Command::new("promtool")
        .args(["check", "rules"])
        .arg(path("rules.yml"))
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    let prometheus = free_port();
    std::fs::write(
        path("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: netwarden-network\n    metrics_path: /metrics/network\n    static_configs:\n      - targets: [\"127.0.0.1:{http}\"]\n",
            path("rules.yml").display()
        ),
    )
    .unwrap();
    let _prometheus = Killed(lab.spawn(
        Path::new("/usr/bin/prometheus"),
        &[
            &format!("--config.file={}", path("prometheus.yml").display()),
            &format!("--storage.tsdb.path={}", path("tsdb").display()),
            &format!("--web.listen-address=127.0.0.1:{prometheus}"),
        ],
        &path("prometheus.log"),
    ));
    let context = || {
        format!(
            "network metrics:\n{}\nprometheus log:\n{}\nagent log:\n{}",
            Command::new("ip")
                .args(["netns", "exec", &lab.netns(), "curl", "-s"])
                .arg(format!("http://127.0.0.1:{http}/metrics/network"))
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default(),
            std::fs::read_to_string(path("prometheus.log")).unwrap_or_default(),
            std::fs::read_to_string(path("agent.log")).unwrap_or_default()
        )
    };

    // The loss alert for the lossy host and the down one, never the clean one.
    let firing = |name: &str| {
        addresses(&query(
            &lab,
            prometheus,
            &format!("ALERTS{{alertname=\"{name}\",alertstate=\"firing\"}}"),
        ))
    };
    wait_until(
        "the loss and down alerts",
        Duration::from_secs(90),
        || {
            let lossy = firing("NetwardenTargetLoss");
            lossy.contains(&"10.77.0.3".to_string())
                && firing("NetwardenTargetDown") == ["10.77.0.4"]
        },
        context,
    );
    let clean = query(
        &lab,
        prometheus,
        "netwarden_probe_up{address=\"10.77.0.2\"}",
    );
    let [series] = &clean[..] else {
        panic!("one series for h1: {clean:?}\n{}", context());
    };
    let labels = &series["metric"];
    assert_eq!(
        (
            &labels["agent"],
            &labels["target"],
            &labels["site"],
            &labels["customer"],
            &labels["pop"],
            &series["value"][1]
        ),
        (
            &Value::from("net-agent"),
            &Value::from("h1-clean"),
            &Value::from("lab"),
            &Value::from("acme"),
            &Value::from("LAB"),
            &Value::from("1")
        ),
        "{series}"
    );
    assert!(
        !firing("NetwardenTargetLoss").contains(&"10.77.0.2".to_string()),
        "the clean host never loses: {}",
        context()
    );

    // h2 out of the plan: its rounds stop, and what they lost adds up to what netlab dropped.
    let without_h2: String = PLAN
        .lines()
        .filter(|l| !l.contains("h2-lossy"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(path("plan2.yaml"), without_h2).unwrap();
    apply_plan(&lab, http, &path("plan2.yaml"), &["--force"]);
    // A round under way ends (2 s at most) and is stored; then nothing more pings h2.
    std::thread::sleep(Duration::from_secs(5));
    let dropped: Value = serde_json::from_str(&lab.run(&["counters", "h2"])).unwrap();
    let dropped = dropped["echo_reply_dropped"].as_u64().unwrap();
    let api = |p: &str| format!("http://127.0.0.1:{http}{p}");
    let devices = lab.get(&api("/api/devices?limit=100"));
    let id = device(&devices, "10.77.0.3").unwrap()["id"]
        .as_i64()
        .unwrap();
    let rounds = lab.get(&api(&format!("/api/devices/{id}/history?limit=5000")));
    let rounds = rounds.as_array().unwrap();
    let lost: i64 = rounds
        .iter()
        .map(|r| r["sent"].as_i64().unwrap() - r["received"].as_i64().unwrap())
        .sum();
    assert!(rounds.len() >= 3 && dropped > 0, "{rounds:?}");
    assert_eq!(
        lost as u64,
        dropped,
        "over {} rounds the agent lost what netlab dropped",
        rounds.len()
    );
    let newest = rounds.last().unwrap();
    let want = (newest["sent"].as_f64().unwrap() - newest["received"].as_f64().unwrap())
        / newest["sent"].as_f64().unwrap();
    let held = std::cell::Cell::new(f64::NAN);
    wait_until(
        "Prometheus to hold h2's newest round",
        Duration::from_secs(20),
        || {
            held.set(
                query(
                    &lab,
                    prometheus,
                    "netwarden_probe_loss_ratio{address=\"10.77.0.3\"}",
                )
                .first()
                .and_then(|s| s["value"][1].as_str().and_then(|v| v.parse().ok()))
                .unwrap_or(f64::NAN),
            );
            (held.get() - want).abs() < 1e-9
        },
        || format!("held {}, want {want}\n{}", held.get(), context()),
    );
    println!(
        "h2: {} rounds lost {lost} of {} pings, netlab dropped {dropped}; Prometheus holds the newest round's loss, {want}",
        rounds.len(),
        rounds.iter().map(|r| r["sent"].as_i64().unwrap()).sum::<i64>()
    );
}
