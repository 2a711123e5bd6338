//! Real ICMP to real (namespaced) hosts. Each test makes its own netlab lab, runs the agent's
//! one-shot `probe` inside the lab's agent namespace, and compares with netlab's ground truth.
//!
//! Needs root (namespaces) and `../shared/netlab`; elsewhere the tests say so and return.
//! CI sets `NETWARDEN_REQUIRE_LAB=1`, which turns a missing lab into a failure.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

fn netlab_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NETLAB") {
        return Some(PathBuf::from(path));
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/netlab/netlab");
    beside.exists().then_some(beside)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A lab that is torn down when dropped.
struct Lab {
    netlab: PathBuf,
    name: String,
}

static LABS: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// Makes a lab, or returns None (with the reason printed) where labs cannot run.
    fn up(args: &[&str]) -> Option<Lab> {
        let why = match (netlab_path(), is_root()) {
            (Some(netlab), true) => {
                let name = format!(
                    "nw{}x{}",
                    std::process::id(),
                    LABS.fetch_add(1, Ordering::SeqCst)
                );
                let lab = Lab { netlab, name };
                let mut up = vec!["up"];
                up.extend_from_slice(args);
                lab.run(&up);
                return Some(lab);
            }
            (None, _) => "../shared/netlab not found (set NETLAB)",
            (_, false) => "network namespaces need root",
        };
        assert!(
            std::env::var_os("NETWARDEN_REQUIRE_LAB").is_none(),
            "NETWARDEN_REQUIRE_LAB is set but the lab cannot run: {why}"
        );
        eprintln!("skipping: {why}; CI runs this test as root");
        None
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.netlab)
            .arg("--name")
            .arg(&self.name)
            .arg("-q")
            .args(args)
            .output()
            .expect("run netlab");
        assert!(
            out.status.success(),
            "netlab {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn echo_replies_dropped(&self, host: &str) -> u64 {
        let counters: Value = serde_json::from_str(&self.run(&["counters", host])).unwrap();
        counters["echo_reply_dropped"].as_u64().unwrap()
    }

    /// Runs `netwarden-agent probe` in the lab's agent namespace and returns its JSON rows.
    fn probe(&self, hosts: &[&str], count: u32, interval_ms: u32, timeout_ms: u32) -> Vec<Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &format!("{}-agent", self.name)])
            .arg(env!("CARGO_BIN_EXE_netwarden-agent"))
            .arg("probe")
            .args(hosts)
            .args(["--count", &count.to_string()])
            .args(["--interval-ms", &interval_ms.to_string()])
            .args(["--timeout-ms", &timeout_ms.to_string()])
            .arg("--json")
            .output()
            .expect("run the agent");
        assert!(
            out.status.success(),
            "probe: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }
}

impl Lab {
    /// Runs the agent binary in the lab's agent namespace, optionally as another user.
    fn agent(&self, user: Option<&str>, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &format!("{}-agent", self.name)]);
        let mut binary = PathBuf::from(env!("CARGO_BIN_EXE_netwarden-agent"));
        let _copy;
        if let Some(uid) = user {
            cmd.args(["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups"]);
            // The build directory may be under a home only root can enter: run a copy.
            let dir = tempfile::tempdir().unwrap();
            let copy = dir.path().join("netwarden-agent");
            std::fs::copy(&binary, &copy).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            binary = copy;
            _copy = dir;
        }
        cmd.arg(&binary).args(args).output().expect("run the agent")
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.run(&["status"])).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(&self.netlab)
            .args(["--name", &self.name, "-q", "teardown"])
            .status();
    }
}

fn row<'a>(rows: &'a [Value], host: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["host"] == host)
        .unwrap_or_else(|| panic!("no row for {host}"))
}

fn lost(row: &Value) -> u64 {
    row["sent"].as_u64().unwrap() - row["received"].as_u64().unwrap()
}

#[test]
fn loss_equals_the_replies_the_network_really_dropped() {
    let Some(lab) = Lab::up(&["--hosts", "3"]) else {
        return;
    };
    lab.run(&["impair", "h1", "--loss", "5%", "--seed", "11"]);
    lab.run(&["impair", "h2", "--loss", "20%", "--seed", "12"]);
    let before = (
        lab.echo_replies_dropped("h1"),
        lab.echo_replies_dropped("h2"),
    );
    let rows = lab.probe(&["10.77.0.2", "10.77.0.3", "10.77.0.4"], 200, 10, 300);
    let dropped = (
        lab.echo_replies_dropped("h1") - before.0,
        lab.echo_replies_dropped("h2") - before.1,
    );
    let (h1, h2, h3) = (
        row(&rows, "10.77.0.2"),
        row(&rows, "10.77.0.3"),
        row(&rows, "10.77.0.4"),
    );
    // Exact: no made-up loss, no missed loss.
    assert_eq!(lost(h1), dropped.0, "5 % host: {h1}");
    assert_eq!(lost(h2), dropped.1, "20 % host: {h2}");
    assert!(dropped.1 > 0, "the 20 % host really dropped replies");
    assert_eq!(lost(h3), 0, "clean host: {h3}");
    assert_eq!(h3["status"], "online");
    assert_eq!(h2["status"], "degraded");
}

#[test]
fn a_30ms_delay_is_measured_within_2ms() {
    let Some(lab) = Lab::up(&["--hosts", "1"]) else {
        return;
    };
    lab.run(&["impair", "h1", "--delay", "30ms"]);
    let rows = lab.probe(&["10.77.0.2"], 20, 100, 1000);
    let median = row(&rows, "10.77.0.2")["rtt_median_ms"].as_f64().unwrap();
    assert!((28.0..=32.0).contains(&median), "median {median} ms");
    assert_eq!(lost(row(&rows, "10.77.0.2")), 0);
}

#[test]
fn a_host_taken_down_is_offline_and_online_again_when_it_returns() {
    let Some(lab) = Lab::up(&["--hosts", "2"]) else {
        return;
    };
    let probe = || lab.probe(&["10.77.0.2", "10.77.0.3"], 5, 50, 500);
    let rows = probe();
    assert_eq!(row(&rows, "10.77.0.2")["status"], "online");
    lab.run(&["down", "h1"]);
    lab.run(&["flush-neigh"]);
    let rows = probe();
    assert_eq!(row(&rows, "10.77.0.2")["status"], "offline");
    assert_eq!(row(&rows, "10.77.0.2")["received"], 0);
    assert_eq!(
        row(&rows, "10.77.0.3")["status"],
        "online",
        "the other host is unaffected"
    );
    lab.run(&["up-host", "h1"]);
    // The first round back may lose a ping while ARP resolves again (real kernel behaviour),
    // so it must be reachable; the next round is fully online.
    let rows = probe();
    assert_ne!(
        row(&rows, "10.77.0.2")["status"],
        "offline",
        "{}",
        row(&rows, "10.77.0.2")
    );
    let rows = probe();
    assert_eq!(
        row(&rows, "10.77.0.2")["status"],
        "online",
        "{}",
        row(&rows, "10.77.0.2")
    );
}

#[test]
fn discovery_finds_exactly_the_linked_hosts_with_their_macs() {
    let Some(lab) = Lab::up(&["--hosts", "20", "--no-icmp", "h3", "--down", "h5"]) else {
        return;
    };
    let out = lab.agent(
        None,
        &[
            "discover",
            "10.77.0.0/24",
            "--json",
            "--no-dns",
            "--ports",
            "22",
            "--rate",
            "5000",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = lab.status();
    let agent_ip = status["agent"]["ip"].as_str().unwrap();
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let found: std::collections::HashMap<&str, &Value> = found
        .iter()
        .map(|h| (h["address"].as_str().unwrap(), h))
        .filter(|(ip, _)| *ip != agent_ip)
        .collect();
    let hosts = status["hosts"].as_array().unwrap();
    for host in hosts {
        let ip = host["ip"].as_str().unwrap();
        let linked = host["expect"]["arp"].as_bool().unwrap();
        let icmp = host["expect"]["icmp"].as_bool().unwrap();
        match found.get(ip) {
            None => assert!(!linked, "{} ({ip}) is up but was not found", host["name"]),
            Some(h) => {
                assert!(linked, "{} ({ip}) is down but was found: {h}", host["name"]);
                assert_eq!(h["mac"], host["mac"], "{ip}");
                assert_eq!(h["vendor"], "(locally administered)");
                let want = if icmp { "icmp+arp" } else { "arp" };
                assert_eq!(h["found_by"], want, "{ip}");
                assert_eq!(
                    h["open_ports"],
                    serde_json::json!([]),
                    "nothing listens on 22"
                );
            }
        }
    }
    assert_eq!(found.len(), 19, "20 hosts, one down");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("by ARP only"), "{summary}");
}

#[test]
fn thousands_of_routed_targets_lose_nothing_at_5000_probes_per_second() {
    let Some(lab) = Lab::up(&["--hosts", "1"]) else {
        return;
    };
    lab.run(&["route", "h1", "--prefix", "10.99.0.0/21"]);
    let out = lab.agent(
        None,
        &[
            "probe",
            "10.99.0.0/21",
            "--count",
            "5",
            "--interval-ms",
            "100",
            "--rate",
            "5000",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2046);
    let lost: u64 = rows.iter().map(lost).sum();
    assert_eq!(
        lost,
        0,
        "made-up loss: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unprivileged_icmp_works_and_its_absence_is_explained() {
    let Some(lab) = Lab::up(&["--hosts", "1"]) else {
        return;
    };
    // netlab allows unprivileged ICMP sockets in the agent namespace: a plain user can probe.
    let out = lab.agent(
        Some("65534"),
        &[
            "probe",
            "10.77.0.2",
            "--count",
            "3",
            "--interval-ms",
            "20",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["received"], 3);
    // Without ping_group_range and without CAP_NET_RAW, the agent says what is missing.
    let ns = format!("{}-agent", lab.name);
    let off = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv4.ping_group_range=1 0",
        ])
        .status()
        .unwrap();
    assert!(off.success());
    let out = lab.agent(Some("65534"), &["probe", "10.77.0.2", "--count", "1"]);
    assert_eq!(out.status.code(), Some(77), "EX_NOPERM");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CAP_NET_RAW") && err.contains("ping_group_range"),
        "{err}"
    );
}

/// A real DNS server (dnsmasq, serving one PTR record on a spare port) names the host a
/// discovery finds.
#[test]
fn discovery_names_hosts_from_a_real_dns_server() {
    let Some(lab) = Lab::up(&["--hosts", "2"]) else {
        return;
    };
    let Ok(dnsmasq) = which("dnsmasq") else {
        assert!(
            std::env::var_os("NETWARDEN_REQUIRE_LAB").is_none(),
            "dnsmasq is missing (apt-get install dnsmasq-base)"
        );
        eprintln!("skipping: dnsmasq not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "10.77.0.2 printer.branch.example\n").unwrap();
    // dnsmasq listens inside the lab's agent namespace, on its loopback.
    let ns = format!("{}-agent", lab.name);
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(dnsmasq)
        .args([
            "--keep-in-foreground",
            "--port=5353",
            "--listen-address=127.0.0.1",
        ])
        .args([
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
        ])
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = lab.agent(
        None,
        &[
            "discover",
            "10.77.0.2/31",
            "--json",
            "--ports",
            "",
            "--dns-server",
            "127.0.0.1:5353",
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let named = |ip: &str| {
        found
            .iter()
            .find(|h| h["address"] == ip)
            .map(|h| h["hostname"].clone())
    };
    assert_eq!(
        named("10.77.0.2"),
        Some(Value::from("printer.branch.example")),
        "{found:?}"
    );
    assert_eq!(
        named("10.77.0.3"),
        Some(Value::Null),
        "no PTR record, no name"
    );
}

fn which(program: &str) -> Result<PathBuf, ()> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|p| p.exists())
        .ok_or(())
}
