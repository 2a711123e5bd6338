//! TCP port checks on real hosts (netlab): a plan's `tcp` check on three hosts, run by a real
//! agent across network namespaces. h1 listens on 8080 and not 8081; h2 answers no ping but
//! listens on 8080; h3 is unplugged. Each port's state reaches the device's API as the wire
//! saw it (open with a connection time, refused, timed out), `port_down` opens for exactly the
//! ports that do not accept connections, and a listener stopped and started again opens and
//! resolves its port's anomaly.
//!
//! Needs root and `../shared/netlab`; CI sets `NETWARDEN_REQUIRE_LAB=1`.

use super::detection_lab::{Killed, Lab};
use super::enrol_lab::{device, run_planned_agent, wait_until};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PLAN: &str = "\
sites: [{name: lab}]
agents: [{name: port-agent, site: lab}]
checks:
  - {name: web, kind: tcp, ports: [8080, 8081], interval_secs: 2, timeout_ms: 500}
targets:
  - {name: h1, address: 10.77.0.2, site: lab, checks: [web]}
  - {name: h2-no-ping, address: 10.77.0.3, site: lab, checks: [web]}
  - {name: h3-away, address: 10.77.0.4, site: lab, checks: [web]}
";

/// A TCP listener on `port` in `host`'s namespace that accepts and closes every connection.
fn listen(lab: &Lab, host: &str, port: u16) -> Killed {
    let ns = format!("{}-{host}", lab.netns().trim_end_matches("-agent"));
    let script = format!(
        "import socket\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', {port}))\n\
         s.listen(128)\n\
         while True:\n    s.accept()[0].close()\n"
    );
    Killed(
        Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-c", &script])
            .stdout(Stdio::null())
            .spawn()
            .expect("start a listener"),
    )
}

/// The checked ports of the device at `address`, by port.
fn ports(lab: &Lab, http: u16, address: &str) -> Vec<Value> {
    let devices = lab.get(&format!("http://127.0.0.1:{http}/api/devices?limit=100"));
    let Some(id) = device(&devices, address).and_then(|d| d["id"].as_i64()) else {
        return Vec::new();
    };
    lab.get(&format!("http://127.0.0.1:{http}/api/devices/{id}"))["checked_ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn state(ports: &[Value], port: u16) -> Option<String> {
    ports
        .iter()
        .find(|p| p["port"] == port)
        .and_then(|p| p["state"].as_str())
        .map(str::to_string)
}

/// `port_down` anomalies by subject, with whether each is resolved.
fn ports_down(lab: &Lab, http: u16) -> Vec<(String, bool)> {
    lab.get(&format!(
        "http://127.0.0.1:{http}/api/anomalies?kind=port_down&limit=100"
    ))
    .as_array()
    .map(|list| {
        list.iter()
            .map(|a| {
                (
                    a["subject"].as_str().unwrap_or("").to_string(),
                    !a["resolved_at"].is_null(),
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

#[test]
fn a_tcp_check_reports_each_port_and_raises_port_down_for_those_that_fail() {
    let Some(lab) = Lab::start(
        "p",
        &["up", "--hosts", "3", "--no-icmp", "h2", "--down", "h3"],
    ) else {
        return;
    };
    let h1 = listen(&lab, "h1", 8080);
    let _h2 = listen(&lab, "h2", 8080);
    let dir = tempfile::tempdir().unwrap();
    let (_collector, _agent, http) = run_planned_agent(&lab, dir.path(), "port-agent", PLAN);
    let log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    let context = || {
        format!(
            "h1: {:?}\nh2: {:?}\nh3: {:?}\nanomalies: {:?}\nagent log:\n{}",
            ports(&lab, http, "10.77.0.2"),
            ports(&lab, http, "10.77.0.3"),
            ports(&lab, http, "10.77.0.4"),
            ports_down(&lab, http),
            log()
        )
    };

    wait_until(
        "every port's state",
        Duration::from_secs(60),
        || {
            let (h1, h2, h3) = (
                ports(&lab, http, "10.77.0.2"),
                ports(&lab, http, "10.77.0.3"),
                ports(&lab, http, "10.77.0.4"),
            );
            state(&h1, 8080).as_deref() == Some("open")
                && state(&h1, 8081).as_deref() == Some("refused")
                && state(&h2, 8080).as_deref() == Some("open")
                && state(&h2, 8081).as_deref() == Some("refused")
                && state(&h3, 8080).is_some_and(|s| s == "timeout" || s == "unreachable")
        },
        context,
    );
    let h1_ports = ports(&lab, http, "10.77.0.2");
    let open = h1_ports.iter().find(|p| p["port"] == 8080).unwrap();
    let connect_ms = open["connect_ms"].as_f64().expect("an open port's time");
    assert!((0.0..500.0).contains(&connect_ms), "{open}");
    assert!(open["checks_24h"].as_i64().unwrap() >= 1, "{open}");
    assert_eq!(open["checks_24h"], open["open_24h"], "{open}");

    // Down: exactly the ports that do not accept connections, each once.
    let expected: BTreeSet<String> = [
        "10.77.0.2/tcp/8081",
        "10.77.0.3/tcp/8081",
        "10.77.0.4/tcp/8080",
        "10.77.0.4/tcp/8081",
    ]
    .iter()
    .map(|s| format!("port-agent/{s}"))
    .collect();
    wait_until(
        "port_down for each failing port",
        Duration::from_secs(30),
        || ports_down(&lab, http).len() >= expected.len(),
        context,
    );
    // More checks: still one anomaly per port, none for the open ones.
    std::thread::sleep(Duration::from_secs(5));
    let down = ports_down(&lab, http);
    assert_eq!(down.len(), expected.len(), "{down:?}");
    assert_eq!(
        down.iter().map(|(s, _)| s.clone()).collect::<BTreeSet<_>>(),
        expected
    );

    // h1's listener stops: its 8080 goes down; started again: resolved.
    drop(h1);
    let stopped = Instant::now();
    let subject = "port-agent/10.77.0.2/tcp/8080".to_string();
    wait_until(
        "port_down for the stopped listener",
        Duration::from_secs(30),
        || ports_down(&lab, http).contains(&(subject.clone(), false)),
        context,
    );
    let opened_after = stopped.elapsed();
    let _h1 = listen(&lab, "h1", 8080);
    let restarted = Instant::now();
    wait_until(
        "the listener's port_down resolved",
        Duration::from_secs(30),
        || ports_down(&lab, http).contains(&(subject.clone(), true)),
        context,
    );
    println!(
        "port_down opened {:.1} s after the listener stopped and resolved {:.1} s after it \
         started again (checks every 2 s, 2 to fire, 2 to clear)",
        opened_after.as_secs_f64(),
        restarted.elapsed().as_secs_f64()
    );
    assert_eq!(
        state(&ports(&lab, http, "10.77.0.2"), 8080).as_deref(),
        Some("open")
    );
}
