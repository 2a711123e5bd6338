//! Speed tests against any HTTP server, on real hosts (netlab). h1 runs Python's own
//! `http.server` serving a 30 MB file, and a plain POST sink; the kernel shapes h1's link with
//! `tbf` to 40 Mbit/s towards the agent and 20 Mbit/s from it. The fleet plan aims a speed
//! test at those two URLs (no Netwarden server involved). The agent's measured download and
//! upload must each be within 10 % of the rate set, the sink must have received every byte
//! and no token, and the result must be visible through the API, `/metrics/network` and the
//! dashboard's speed-test view in headless Chromium (a screenshot is kept in the artifacts).
//!
//! Needs root, `tc` with `sch_tbf` and `../shared/netlab`; CI sets `NETWARDEN_REQUIRE_LAB=1`.

use super::dashboard::Driver;
use super::detection_lab::{Killed, Lab};
use super::enrol_lab::{run_planned_agent, wait_until};
use super::support::{binary, free_port};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

const DOWN_MBIT: f64 = 40.0;
const UP_MBIT: f64 = 20.0;
const DOWNLOAD_BYTES: u64 = 10_000_000;
const UPLOAD_BYTES: u64 = 8_000_000;

const PLAN: &str = "\
sites: [{name: lab}]
agents: [{name: speed-agent, site: lab}]
speedtests:
  - name: isp-line
    download_url: http://10.77.0.2:8000/blob.bin
    upload_url: http://10.77.0.2:8001/sink
    site: lab
    interval_secs: 60
    download_bytes: 10000000
    upload_bytes: 8000000
    timeout_secs: 30
";

/// A POST sink: reads each body whole and logs its size and whether it came with a token.
const SINK: &str = "\
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        left = int(self.headers['Content-Length'])
        got = 0
        while left > 0:
            chunk = self.rfile.read(min(65536, left))
            if not chunk:
                break
            got += len(chunk)
            left -= len(chunk)
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()
        print(f'got {got} auth={self.headers.get(\"Authorization\") is not None}', flush=True)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(('0.0.0.0', 8001), Sink).serve_forever()
";

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn in_host(lab: &Lab, host: &str, args: &[&str], stdout: Stdio) -> Killed {
    let ns = format!("{}-{host}", lab.netns().trim_end_matches("-agent"));
    Killed(
        Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(args)
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .expect("start a server in the lab"),
    )
}

/// Forwards 127.0.0.1:`port` in this namespace to 127.0.0.1:`target` in the lab's agent
/// namespace, where the collector listens, so a browser out here can reach it: the listening
/// socket is made before the process joins the lab's namespace, and stays where it was made.
const BRIDGE: &str = "\
import ctypes, os, socket, sys, threading
port, netns, target = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(('127.0.0.1', port))
listener.listen(64)
fd = os.open('/run/netns/' + netns, os.O_RDONLY)
if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:
    sys.exit('setns failed')
def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    client, _ = listener.accept()
    upstream = socket.create_connection(('127.0.0.1', target))
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
";

fn within_ten_percent(measured: f64, set: f64) -> bool {
    (measured - set).abs() <= set * 0.10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speed_test_against_any_http_server_measures_the_rate_the_link_allows() {
    let Some(lab) = Lab::start("s", &["up", "--hosts", "1"]) else {
        return;
    };
    let prefix = lab.netns().trim_end_matches("-agent").to_string();
    // The kernel's token bucket on each side of h1's link: its own eth0 shapes what it sends
    // (the agent's download), the bridge's port towards it what it receives (the upload).
    run(&[
        "tc",
        "-n",
        &format!("{prefix}-h1"),
        "qdisc",
        "replace",
        "dev",
        "eth0",
        "root",
        "tbf",
        "rate",
        &format!("{DOWN_MBIT}mbit"),
        "burst",
        "32kb",
        "latency",
        "100ms",
    ]);
    run(&[
        "tc",
        "-n",
        &format!("{prefix}-br"),
        "qdisc",
        "replace",
        "dev",
        "h1",
        "root",
        "tbf",
        "rate",
        &format!("{UP_MBIT}mbit"),
        "burst",
        "32kb",
        "latency",
        "100ms",
    ]);

    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("blob.bin"), vec![0x5au8; 30_000_000]).unwrap();
    let _file_server = in_host(
        &lab,
        "h1",
        &[
            "python3",
            "-m",
            "http.server",
            "8000",
            "--bind",
            "0.0.0.0",
            "--directory",
            files.path().to_str().unwrap(),
        ],
        Stdio::null(),
    );
    let sink_log = files.path().join("sink.log");
    let _sink = in_host(
        &lab,
        "h1",
        &["python3", "-c", SINK],
        Stdio::from(std::fs::File::create(&sink_log).unwrap()),
    );
    // Both servers answer before the agent starts (its first test runs at once).
    let ns = lab.netns();
    wait_until(
        "h1's servers",
        Duration::from_secs(20),
        || {
            let probe = |args: &[&str]| {
                Command::new("ip")
                    .args(["netns", "exec", &ns, "curl", "-sf", "-o", "/dev/null"])
                    .args(args)
                    .status()
                    .is_ok_and(|s| s.success())
            };
            probe(&["-r", "0-0", "http://10.77.0.2:8000/blob.bin"])
                && probe(&["-d", "x", "http://10.77.0.2:8001/sink"])
        },
        String::new,
    );

    let dir = tempfile::tempdir().unwrap();
    let (_collector, _agent, http) = run_planned_agent(&lab, dir.path(), "speed-agent", PLAN);
    let tests = || {
        lab.get(&format!("http://127.0.0.1:{http}/api/speedtests?limit=10"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let of = |tests: &[Value], direction: &str| {
        tests.iter().find(|t| t["direction"] == direction).cloned()
    };
    let context = || {
        format!(
            "tests: {:?}\nsink: {}\nagent log:\n{}",
            tests(),
            std::fs::read_to_string(&sink_log).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default()
        )
    };
    wait_until(
        "a download and an upload",
        Duration::from_secs(60),
        || {
            let tests = tests();
            of(&tests, "download").is_some() && of(&tests, "upload").is_some()
        },
        context,
    );
    let tests = tests();
    let download = of(&tests, "download").unwrap();
    let upload = of(&tests, "upload").unwrap();
    assert!(download["error"].is_null(), "{download}\n{}", context());
    assert!(upload["error"].is_null(), "{upload}\n{}", context());

    // The server and bytes are recorded: the download stopped at its bytes, not the file's
    // 30 MB; the upload sent all of its own.
    assert_eq!(download["url"], "http://10.77.0.2:8000/blob.bin");
    assert_eq!(upload["url"], "http://10.77.0.2:8001/sink");
    let got = download["bytes"].as_u64().unwrap();
    assert!(
        (DOWNLOAD_BYTES..DOWNLOAD_BYTES + (1 << 20)).contains(&got),
        "{download}"
    );
    assert_eq!(upload["bytes"].as_u64(), Some(UPLOAD_BYTES));
    let sink = std::fs::read_to_string(&sink_log).unwrap();
    // The first line is the readiness check's.
    assert_eq!(
        sink.lines().collect::<Vec<_>>(),
        [
            "got 1 auth=False".to_string(),
            format!("got {UPLOAD_BYTES} auth=False")
        ],
        "the sink received every byte and no token"
    );

    // The rate the link was set to, within 10 %.
    let down = download["mbps"].as_f64().unwrap();
    let up = upload["mbps"].as_f64().unwrap();
    eprintln!("measured: download {down:.2} Mbit/s (set {DOWN_MBIT}), upload {up:.2} Mbit/s (set {UP_MBIT})");
    assert!(
        within_ten_percent(down, DOWN_MBIT),
        "download {down} Mbit/s"
    );
    assert!(within_ten_percent(up, UP_MBIT), "upload {up} Mbit/s");

    // The same figures as metrics, for Prometheus and Grafana.
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, "curl", "-sf"])
        .arg(format!("http://127.0.0.1:{http}/metrics/network"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let metric = |direction: &str, url: &str| -> f64 {
        text.lines()
            .find(|l| {
                l.starts_with("netwarden_speedtest_bits_per_second{")
                    && l.contains(&format!("direction=\"{direction}\""))
                    && l.contains(&format!("url=\"{url}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {direction} series in:\n{text}"))
    };
    let down_metric = metric("download", "http://10.77.0.2:8000/blob.bin");
    let up_metric = metric("upload", "http://10.77.0.2:8001/sink");
    assert!(
        (down_metric / 1e6 - down).abs() < 1e-6,
        "{down_metric} vs {down}"
    );
    assert!((up_metric / 1e6 - up).abs() < 1e-6, "{up_metric} vs {up}");

    // The dashboard's speed-test view, in a real browser, shows the same figures.
    let Some(driver) = Driver::start().await else {
        return;
    };
    let out = Command::new(binary("netwarden-collector"))
        .args(["token", "create", "--role", "viewer", "--name", "browser"])
        .arg("--config")
        .arg(dir.path().join("collector.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let bridge_port = free_port();
    let _bridge = Killed(
        Command::new("python3")
            .args([
                "-c",
                BRIDGE,
                &bridge_port.to_string(),
                &ns,
                &http.to_string(),
            ])
            .spawn()
            .expect("start the namespace bridge"),
    );
    wait_until(
        "the bridge",
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", bridge_port)).is_ok(),
        String::new,
    );
    let page = format!("http://127.0.0.1:{bridge_port}/");
    driver
        .call(
            reqwest::Method::POST,
            "/url",
            serde_json::json!({"url": format!("{page}#token={token}")}),
        )
        .await;
    driver
        .call(
            reqwest::Method::POST,
            "/url",
            serde_json::json!({"url": format!("{page}#/speedtests")}),
        )
        .await;
    let rows = driver
        .wait_for(
            "the speed tests",
            "return [...document.querySelectorAll('#speedtests-latest tr')].slice(1).map(r => [...r.cells].map(c => c.textContent))",
        )
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (direction, url, mbps) in [
        ("download", "http://10.77.0.2:8000/blob.bin", down),
        ("upload", "http://10.77.0.2:8001/sink", up),
    ] {
        let row = rows
            .iter()
            .find(|r| r[1] == direction)
            .unwrap_or_else(|| panic!("no {direction} row: {rows:?}"));
        assert_eq!(row[0], "speed-agent");
        assert_eq!(row[2], url);
        assert_eq!(row[3], format!("{mbps:.1}"), "{row:?}");
    }
    let charts = driver
        .script("return document.querySelectorAll('svg.chart path.in, svg.chart circle.in, svg.chart path.out, svg.chart circle.out').length")
        .await;
    assert!(
        charts.as_u64().unwrap_or(0) >= 2,
        "both directions drawn: {charts}"
    );
    driver.screenshot("dashboard-speedtests.png").await;
}
