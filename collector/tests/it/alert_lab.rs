//! The whole chain on a real network: the agent binary probes two real hosts of a netlab lab
//! (network namespaces) and streams over mTLS to the collector binary, which mails a real SMTP
//! server process (smtp-sink) and posts to a Telegram Bot API fake process (telegram-fake,
//! answering its first request 429 with `retry_after`). All four run in the lab's agent
//! namespace, on its loopback; the test reads the sink's maildir and the fake's request log.
//!
//! One host is taken down and the other gets 60 % injected loss: exactly one notification per
//! anomaly per channel; then both recover: exactly one resolve notice each. Also measured:
//! impairment onset to delivered notification.
//!
//! Needs root and `../shared/netlab`; CI sets `NETWARDEN_REQUIRE_LAB=1`.

use super::support::{binary, free_port, json_lines, Peer, BOT_TOKEN};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A netlab lab, torn down on drop.
struct Lab {
    netlab: PathBuf,
    name: String,
}

impl Lab {
    fn up(hosts: u32) -> Option<Lab> {
        let netlab = std::env::var_os("NETLAB")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/netlab/netlab")
            });
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !netlab.exists() || !root {
            let why = "needs root and ../shared/netlab";
            assert!(
                std::env::var_os("NETWARDEN_REQUIRE_LAB").is_none(),
                "NETWARDEN_REQUIRE_LAB is set but the lab cannot run: {why}"
            );
            eprintln!("skipping: {why}; CI runs this test as root");
            return None;
        }
        let lab = Lab {
            netlab,
            name: format!("nwc{}", std::process::id()),
        };
        lab.run(&["up", "--hosts", &hosts.to_string()]);
        // Loopback carries collector, agent and peers.
        run_ok("ip", &["-n", &lab.netns(), "link", "set", "lo", "up"]);
        Some(lab)
    }

    fn netns(&self) -> String {
        format!("{}-agent", self.name)
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.netlab)
            .args(["--name", &self.name, "-q"])
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

    /// Starts `program` in the agent namespace, its stderr kept in `log`.
    fn spawn(&self, program: &Path, args: &[&str], log: &Path) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.netns()])
            .arg(program)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start in the lab")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(&self.netlab)
            .args(["--name", &self.name, "-q", "teardown"])
            .status();
    }
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// What the channels got: (subject, recipients) of each email, and the text of each Telegram
/// message the fake accepted (status 200).
struct Delivered {
    mail: Vec<Value>,
    telegram: Vec<Value>,
}

impl Delivered {
    fn read(maildir: &Path, telegram_log: &Path) -> Delivered {
        Delivered {
            mail: json_lines(&maildir.join("index.jsonl")),
            telegram: json_lines(telegram_log)
                .into_iter()
                .filter(|r| r["api_method"] == "sendMessage" && r["status"] == 200)
                .collect(),
        }
    }

    fn mail_about(&self, words: &[&str]) -> Vec<&Value> {
        self.mail
            .iter()
            .filter(|m| {
                let subject = m["subject"].as_str().unwrap_or("");
                words.iter().all(|w| subject.contains(w))
            })
            .collect()
    }

    fn telegram_about(&self, words: &[&str]) -> Vec<&Value> {
        self.telegram
            .iter()
            .filter(|r| {
                let text = r["params"]["text"].as_str().unwrap_or("");
                words.iter().all(|w| text.contains(w))
            })
            .collect()
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool, logs: &[&Path]) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            let tails: Vec<String> = logs
                .iter()
                .map(|p| {
                    let text = std::fs::read_to_string(p).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(30).collect();
                    format!(
                        "--- {}:\n{}",
                        p.display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    )
                })
                .collect();
            panic!("timed out waiting for {what}\n{}", tails.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_outage_and_injected_loss_on_real_hosts_notify_once_per_channel_and_resolve_once() {
    let Some(lab) = Lab::up(2) else { return };
    let ns = lab.netns();
    let (down_host, lossy_host) = ("10.77.0.2", "10.77.0.3");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let collector = binary("netwarden-collector");
    let pki = path("pki");
    let pki_arg = pki.to_str().unwrap();
    run_ok(
        collector.to_str().unwrap(),
        &["pki", "init", "--dir", pki_arg],
    );
    run_ok(
        collector.to_str().unwrap(),
        &["pki", "issue-agent", "--dir", pki_arg, "--name", "branch-7"],
    );

    let maildir = path("mail");
    let telegram_log = path("telegram.jsonl");
    let smtp = Peer::start_in(
        Some(&ns),
        "smtp-sink",
        &["--maildir", maildir.to_str().unwrap()],
    );
    let telegram = Peer::start_in(
        Some(&ns),
        "telegram-fake",
        &["--fault", "429=1", "--log", telegram_log.to_str().unwrap()],
    );
    std::fs::write(path("bot.token"), format!("{BOT_TOKEN}\n")).unwrap();

    let (grpc, http) = (free_port(), free_port());
    std::fs::write(
        path("collector.toml"),
        format!(
            "[grpc]\nlisten = \"127.0.0.1:{grpc}\"\nquery_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
             [tls]\nca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n\
             [database]\nurl = \"sqlite://collector.db\"\n\
             [auth]\nanonymous_role = \"viewer\"\n\
             [email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {smtp}\ntls = \"none\"\n\
             from = \"Netwarden <noc@netwarden.test>\"\n\
             [alerting]\n\
             [[alerting.routes]]\nname = \"noc\"\nmin_severity = \"medium\"\n\
             email = [\"noc@example.test\"]\ntelegram = [\"4242\"]\n\
             [alerting.telegram]\napi_url = \"{api}\"\nbot_token_file = \"bot.token\"\n",
            smtp = smtp.port(),
            api = telegram.url,
        ),
    )
    .unwrap();
    // Ten pings a round every 3 s: at 60 % loss (seeded) a round with at most one loss, which
    // could change the severity, or none, which could clear it, is about 1 in 600.
    std::fs::write(
        path("agent.toml"),
        format!(
            "[collector]\nurl = \"https://127.0.0.1:{grpc}\"\n\
             [tls]\nca = \"pki/ca.pem\"\ncert = \"pki/agents/branch-7.pem\"\nkey = \"pki/agents/branch-7.key\"\n\
             [buffer]\npath = \"agent-buffer.db\"\n\
             [uplink]\nbackoff_initial_ms = 200\nbackoff_max_secs = 2\n\
             [probe]\ntargets = [\"{down_host}\", \"{lossy_host}\"]\n\
             count = 10\ninterval_secs = 3\nping_interval_ms = 100\nmin_timeout_ms = 300\ntimeout_ms = 500\n"
        ),
    )
    .unwrap();

    let (collector_log, agent_log) = (path("collector.log"), path("agent.log"));
    let logs = [collector_log.as_path(), agent_log.as_path()];
    let config = path("collector.toml");
    let _collector = Killed(lab.spawn(
        &collector,
        &["serve", "--config", config.to_str().unwrap()],
        &collector_log,
    ));
    let agent_config = path("agent.toml");
    let _agent = Killed(lab.spawn(
        &binary("netwarden-agent"),
        &["run", "--config", agent_config.to_str().unwrap()],
        &agent_log,
    ));

    // Healthy first: both hosts stored online, nobody told anything.
    let health = format!("http://127.0.0.1:{http}/api/devices");
    wait_until(
        "both hosts online at the collector",
        Duration::from_secs(60),
        || {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "curl", "-sf", &health])
                .output()
                .unwrap();
            let body: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let online = |ip: &str| {
                body.as_array().is_some_and(|list| {
                    list.iter()
                        .any(|d| d["address"] == ip && d["status"] == "online")
                })
            };
            online(down_host) && online(lossy_host)
        },
        &logs,
    );
    std::thread::sleep(Duration::from_secs(4));
    let quiet = Delivered::read(&maildir, &telegram_log);
    assert!(
        quiet.mail.is_empty() && quiet.telegram.is_empty(),
        "healthy hosts notified"
    );

    // Onset: h1 unplugged, h2 loses 60 % of its echo replies.
    let onset = now_secs();
    lab.run(&["down", "h1"]);
    lab.run(&["impair", "h2", "--loss", "60%", "--seed", "7"]);
    let offline = ["OPEN", down_host];
    let lossy = ["OPEN", lossy_host];
    wait_until(
        "one email and one Telegram message per anomaly",
        Duration::from_secs(60),
        || {
            let d = Delivered::read(&maildir, &telegram_log);
            [&offline[..], &lossy[..]]
                .iter()
                .all(|w| !d.mail_about(w).is_empty() && !d.telegram_about(w).is_empty())
        },
        &logs,
    );
    let d = Delivered::read(&maildir, &telegram_log);
    let first_mail = d.mail_about(&offline)[0]["received_at"].as_f64().unwrap();
    let first_telegram = d.telegram_about(&offline)[0]["time"]
        .as_f64()
        .unwrap_or(0.0);
    eprintln!(
        "onset to delivered (device_offline, 3 s rounds): email {:.2} s, Telegram {:.2} s",
        first_mail - onset,
        first_telegram - onset
    );
    // Two rounds of 3 s (plus a round's pings and timeout) and the 2 s group wait.
    assert!(
        first_mail - onset < 3.0 * 2.0 + 1.5 + 5.0,
        "{}",
        first_mail - onset
    );

    // Several more rounds of both: still exactly one per anomaly per channel.
    std::thread::sleep(Duration::from_secs(12));
    let d = Delivered::read(&maildir, &telegram_log);
    for words in [offline, lossy] {
        assert_eq!(d.mail_about(&words).len(), 1, "{words:?}: {:#?}", d.mail);
        assert_eq!(
            d.telegram_about(&words).len(),
            1,
            "{words:?}: {:#?}",
            d.telegram
        );
    }
    assert_eq!(d.mail.len(), 2, "{:#?}", d.mail);
    assert_eq!(d.telegram.len(), 2, "{:#?}", d.telegram);
    let mail = d.mail_about(&offline)[0];
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["noc@example.test"]));
    assert!(
        lab.run(&["counters", "h2"]).contains("echo_reply_dropped"),
        "the loss was injected by netlab"
    );

    // Recovery: one resolve notice per anomaly per channel.
    lab.run(&["up-host", "h1"]);
    lab.run(&["impair", "h2", "--clear"]);
    wait_until(
        "the resolve notices",
        Duration::from_secs(60),
        || {
            let d = Delivered::read(&maildir, &telegram_log);
            d.mail.len() >= 4 && d.telegram.len() >= 4
        },
        &logs,
    );
    std::thread::sleep(Duration::from_secs(9));
    let d = Delivered::read(&maildir, &telegram_log);
    for host in [down_host, lossy_host] {
        assert_eq!(d.mail_about(&["RESOLVED", host]).len(), 1, "{:#?}", d.mail);
        assert_eq!(
            d.telegram_about(&["RESOLVED", host]).len(),
            1,
            "{:#?}",
            d.telegram
        );
    }
    assert_eq!(d.mail.len(), 4, "{:#?}", d.mail);
    assert_eq!(d.telegram.len(), 4, "{:#?}", d.telegram);
    // The fake's first answer was 429: the message went on the retry, not lost.
    let throttled = json_lines(&telegram_log)
        .into_iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert_eq!(throttled, 1);
    drop(smtp);
    drop(telegram);
}
