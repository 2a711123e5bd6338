//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver).
//! It signs in with an operator token, shows the device a test agent reports, shows an anomaly
//! arriving live over /ws (no reload), acknowledges it with the button, and sees the new state.
//! A screenshot is kept in `artifacts/dashboard.png` (or `$NETWARDEN_ARTIFACTS`).
//!
//! Needs Debian's `chromium` and `chromium-driver`; CI installs them and sets
//! `NETWARDEN_REQUIRE_BROWSER=1` so the test cannot silently skip there.

use super::support::{exchange, free_port, probe_record, wire_batch, Backend, TestCollector};
use netwarden_collector::auth::Role;
use netwarden_collector::rest::tokens::create_token;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub(crate) struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Driver {
    pub(crate) async fn start() -> Option<Driver> {
        let (driver, browser) = (
            Path::new("/usr/bin/chromedriver"),
            Path::new("/usr/bin/chromium"),
        );
        if !driver.exists() || !browser.exists() {
            let why = "needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)";
            assert!(
                std::env::var_os("NETWARDEN_REQUIRE_BROWSER").is_none(),
                "NETWARDEN_REQUIRE_BROWSER is set but {why}"
            );
            eprintln!("skipping: {why}");
            return None;
        }
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut driver = Driver {
            child,
            base,
            session: String::new(),
            http,
        };
        let created = driver
            .call(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": browser,
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=1400,1100"]
                    }
                }}}),
            )
            .await;
        driver.session = created["sessionId"].as_str().unwrap().to_string();
        Some(driver)
    }

    pub(crate) async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let mut request = self.http.request(method.clone(), url);
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(
            answer["value"]["error"].is_null(),
            "WebDriver {method} {path}: {answer}"
        );
        answer["value"].clone()
    }

    pub(crate) async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Polls a script until it returns something truthy.
    pub(crate) async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let value = self.script(script).await;
            let falsy = value.is_null()
                || value == false
                || value == 0
                || value == ""
                || value == json!([]);
            if !falsy {
                return value;
            }
            if Instant::now() > deadline {
                let page = self
                    .script("return location.href + '\\n' + document.body.innerText")
                    .await;
                panic!("the dashboard never showed {what}; the page: {page}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ending the session makes chromedriver close Chromium, which killing chromedriver
        // alone would leave running. A plain blocking request: Drop cannot await.
        use std::io::{Read, Write};
        let address = self.base.trim_start_matches("http://").to_string();
        if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artifacts() -> PathBuf {
    std::env::var_os("NETWARDEN_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_devices_and_live_anomalies_and_acknowledges() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let c = TestCollector::start_with(Backend::Sqlite, |c| c.auth.anonymous_role = None).await;
    let (_, token) = create_token(c.store.as_ref(), "noc-browser", Role::Operator)
        .await
        .unwrap();
    let mut agent = c.client(&c.pki.agent("branch-3")).await.unwrap();
    let t0 = chrono::Utc::now().timestamp_millis() - 120_000;
    let (_, error) = exchange(
        &mut agent,
        vec![wire_batch(
            1,
            vec![
                probe_record(1, t0, "10.9.0.1", 4),
                probe_record(2, t0, "10.9.0.7", 4),
            ],
        )],
    )
    .await;
    assert!(error.is_none());

    // Without a token the page asks for one.
    driver
        .call(
            reqwest::Method::POST,
            "/url",
            json!({"url": format!("http://{}/", c.http)}),
        )
        .await;
    driver
        .wait_for(
            "the sign-in form",
            "return !document.getElementById('login').hidden",
        )
        .await;
    // With the token (in the fragment, which never reaches the server).
    driver
        .call(
            reqwest::Method::POST,
            "/url",
            json!({"url": format!("http://{}/#token={token}", c.http)}),
        )
        .await;
    let devices = driver
        .wait_for(
            "the agent's devices",
            "return [...document.querySelectorAll('#devices tr[data-device]')].map(r => r.textContent).join('|')",
        )
        .await;
    let devices = devices.as_str().unwrap();
    assert!(
        devices.contains("10.9.0.1") && devices.contains("branch-3"),
        "{devices}"
    );
    driver
        .wait_for(
            "the live connection",
            "return document.getElementById('live').textContent === 'live'",
        )
        .await;
    let before = driver
        .script("return document.querySelectorAll('#anomalies tr[data-anomaly]').length")
        .await;
    assert_eq!(before, 0);

    // 10.9.0.7 stops answering: two silent rounds open device_offline, pushed over /ws.
    let (_, error) = exchange(
        &mut agent,
        vec![
            wire_batch(2, vec![probe_record(3, t0 + 30_000, "10.9.0.7", 0)]),
            wire_batch(3, vec![probe_record(4, t0 + 60_000, "10.9.0.7", 0)]),
        ],
    )
    .await;
    assert!(error.is_none());
    let row = driver
        .wait_for(
            "the new anomaly without a reload",
            "const r = document.querySelector('#anomalies tr[data-anomaly]'); return r ? r.textContent : null",
        )
        .await;
    let row = row.as_str().unwrap();
    assert!(
        row.contains("device_offline") && row.contains("10.9.0.7") && row.contains("open"),
        "{row}"
    );

    // Acknowledge with a real click.
    let button = driver
        .call(
            reqwest::Method::POST,
            "/element",
            json!({"using": "css selector", "value": "#anomalies tr[data-anomaly] button.ack"}),
        )
        .await;
    let button = button[ELEMENT].as_str().unwrap().to_string();
    driver
        .call(
            reqwest::Method::POST,
            &format!("/element/{button}/click"),
            json!({}),
        )
        .await;
    let row = driver
        .wait_for(
            "the acknowledged state",
            "const r = document.querySelector('#anomalies tr[data-anomaly]'); \
             return r && r.textContent.includes('acknowledged by noc-browser') ? r.textContent : null",
        )
        .await;
    assert!(row.as_str().unwrap().contains("10.9.0.7"));
    let anomalies: Value = reqwest::Client::new()
        .get(c.api("/api/anomalies?kind=device_offline"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anomalies[0]["state"], "acknowledged");
    assert_eq!(anomalies[0]["acknowledged_by"], "noc-browser");
    let feed = driver
        .script("return document.getElementById('feed').textContent")
        .await;
    assert!(
        feed.as_str().unwrap().contains("anomaly opened"),
        "the live feed: {feed}"
    );

    driver.screenshot("dashboard.png").await;

    // The device page draws its RTT and loss charts from the history.
    let link = driver
        .call(
            reqwest::Method::POST,
            "/element",
            json!({"using": "xpath", "value": "//a[text()='10.9.0.1']"}),
        )
        .await;
    let link = link[ELEMENT].as_str().unwrap().to_string();
    driver
        .call(
            reqwest::Method::POST,
            &format!("/element/{link}/click"),
            json!({}),
        )
        .await;
    let charts = driver
        .wait_for(
            "the device's charts",
            "return document.querySelectorAll('svg.chart path.rtt, svg.chart path.loss').length",
        )
        .await;
    assert_eq!(charts, 2);
    let uptime = driver
        .script("return document.getElementById('view').textContent")
        .await;
    assert!(uptime.as_str().unwrap().contains("100.00 %"), "{uptime}");
    driver.screenshot("dashboard-device.png").await;
}

impl Driver {
    pub(crate) async fn screenshot(&self, name: &str) {
        let shot = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64_decode::decode(shot.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = artifacts();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
        eprintln!("screenshot: {}", dir.join(name).display());
    }
}

/// Standard base64 (the screenshot), without a dependency for one call.
mod base64_decode {
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |c: u8| -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            } as u32)
        };
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let (mut acc, mut bits) = (0u32, 0);
        for v in text.bytes().filter_map(value) {
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }
}
