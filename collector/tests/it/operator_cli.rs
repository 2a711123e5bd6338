//! `netwarden`, the operator CLI, against a live collector that requires tokens: every
//! subcommand in table and JSON form, and each error with its documented exit code (bad or
//! missing token, a role that may not, unknown ids, a bad duration, a refused value, no
//! collector).

use super::support::{
    binary, exchange, free_port, probe_record, wire_batch, Backend, TestCollector,
};
use netwarden_collector::auth::Role;
use netwarden_collector::domain::alerting::{AnomalyKind, NewAnomaly, Severity};
use netwarden_collector::rest::tokens::create_token;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: not JSON:\n{}{}", self.stdout, self.stderr))
    }

    pub(crate) fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{}{}", self.stdout, self.stderr);
        self
    }
}

/// Runs `netwarden` with only `env` of the NETWARDEN_ variables set and no config file found
/// by default (HOME is `home`).
pub(crate) fn netwarden(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = Command::new(binary("netwarden"));
    for (name, _) in std::env::vars() {
        if name.starts_with("NETWARDEN_") || name == "XDG_CONFIG_HOME" {
            command.env_remove(name);
        }
    }
    let out = command
        .env("HOME", home)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A collector that requires tokens, with two devices of agent `site-7` (one up, one down) and
/// one open anomaly; and a config file for a token of `role`.
struct Setup {
    collector: TestCollector,
    anomaly: i64,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        let collector = TestCollector::start_with(Backend::Sqlite, |c| {
            c.auth.anonymous_role = None;
        })
        .await;
        let mut client = collector
            .client(&collector.pki.agent("site-7"))
            .await
            .unwrap();
        let t0 = chrono::Utc::now().timestamp_millis() - 60_000;
        let batch = wire_batch(
            1,
            vec![
                probe_record(1, t0, "10.0.0.2", 4),
                probe_record(2, t0, "10.0.0.3", 0),
            ],
        );
        let (acks, error) = exchange(&mut client, vec![batch]).await;
        assert!(error.is_none() && acks.len() == 1, "{error:?}");
        let anomaly = NewAnomaly {
            kind: AnomalyKind::PacketLoss,
            subject: "10.0.0.2".into(),
            group_key: Some("agent:site-7".into()),
            severity: Severity::High,
            summary: "10.0.0.2 lost 30% of probes".into(),
            details: serde_json::json!({}),
        };
        let opened = collector
            .store
            .open_anomaly(&anomaly, None, &[], chrono::Utc::now())
            .await
            .unwrap();
        let anomaly = match opened {
            netwarden_collector::domain::alerting::Opened::New(id) => id,
            other => panic!("{other:?}"),
        };
        Setup {
            collector,
            anomaly,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A config file naming the collector and a fresh token of `role` (in a file of its own).
    async fn config(&self, role: Role) -> PathBuf {
        let (_, secret) = create_token(self.collector.store.as_ref(), role.as_str(), role)
            .await
            .unwrap();
        let token = self.dir.path().join(format!("{role}.token"));
        std::fs::write(&token, format!("{secret}\n")).unwrap();
        let config = self.dir.path().join(format!("{role}.toml"));
        std::fs::write(
            &config,
            format!(
                "url = \"http://{}\"\ntoken_file = \"{}\"\n",
                self.collector.http,
                token.display()
            ),
        )
        .unwrap();
        config
    }

    fn run(&self, config: &Path, args: &[&str]) -> Run {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        netwarden(self.dir.path(), &[], &all)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_against_a_live_collector() {
    let s = Setup::new().await;
    let operator = s.config(Role::Operator).await;

    // agents list
    let table = s.run(&operator, &["agents", "list"]).ok().stdout;
    assert!(
        table.contains("BACKLOG") && table.contains("site-7"),
        "{table}"
    );
    let agents = s
        .run(&operator, &["agents", "list", "-o", "json"])
        .ok()
        .json();
    assert_eq!(agents[0]["id"], "site-7", "{agents}");

    // devices list (filters) and show
    let devices = s
        .run(&operator, &["devices", "list", "--output", "json"])
        .ok()
        .json();
    let addresses: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, ["10.0.0.2", "10.0.0.3"], "{devices}");
    let down = s
        .run(
            &operator,
            &["devices", "list", "--status", "offline", "-o", "json"],
        )
        .ok()
        .json();
    assert_eq!(down.as_array().unwrap().len(), 1, "{down}");
    assert_eq!(down[0]["address"], "10.0.0.3");
    let table = s.run(&operator, &["devices", "list"]).ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("ADDRESS") && lines[0].contains("STATUS"),
        "{table}"
    );
    assert_eq!(lines.len(), 3, "a heading and two devices:\n{table}");
    assert!(
        lines[2].contains("10.0.0.3") && lines[2].contains("offline"),
        "{table}"
    );
    let id = devices[0]["id"].as_i64().unwrap().to_string();
    let shown = s
        .run(&operator, &["devices", "show", &id, "-o", "json"])
        .ok()
        .json();
    assert_eq!(shown["address"], "10.0.0.2");
    assert!(shown.get("uptime_7d_pct").is_some(), "{shown}");
    let table = s.run(&operator, &["devices", "show", &id]).ok().stdout;
    assert!(
        table
            .lines()
            .any(|l| l.contains("address") && l.contains("10.0.0.2")),
        "{table}"
    );

    // anomalies list, ack with a note, resolve with a note
    let open = s
        .run(
            &operator,
            &["anomalies", "list", "--state", "open", "-o", "json"],
        )
        .ok()
        .json();
    assert_eq!(open[0]["id"], s.anomaly, "{open}");
    let table = s.run(&operator, &["anomalies", "list"]).ok().stdout;
    assert!(
        table.contains("packet_loss") && table.contains("lost 30%"),
        "{table}"
    );
    let anomaly = s.anomaly.to_string();
    let acked = s
        .run(
            &operator,
            &[
                "anomalies",
                "ack",
                &anomaly,
                "--note",
                "on it",
                "-o",
                "json",
            ],
        )
        .ok()
        .json();
    assert_eq!(
        (
            &acked["state"],
            &acked["acknowledge_note"],
            &acked["acknowledged_by"]
        ),
        (
            &Value::from("acknowledged"),
            &Value::from("on it"),
            &Value::from("operator")
        ),
        "{acked}"
    );
    let resolved = s
        .run(
            &operator,
            &[
                "anomalies",
                "resolve",
                &anomaly,
                "--note",
                "fibre spliced",
                "--by",
                "dana",
                "-o",
                "json",
            ],
        )
        .ok()
        .json();
    assert_eq!(resolved["state"], "resolved", "{resolved}");
    assert_eq!(resolved["resolve_note"], "fibre spliced");
    assert_eq!(resolved["resolved_by"], "dana");

    // silences add (a duration), list, expire
    let before = chrono::Utc::now();
    let silence = s
        .run(
            &operator,
            &[
                "silences",
                "add",
                "--kind",
                "packet_loss",
                "--subject",
                "10.0.0.*",
                "--duration",
                "2h",
                "--comment",
                "fibre works",
                "--by",
                "dana",
                "-o",
                "json",
            ],
        )
        .ok()
        .json();
    let ends: chrono::DateTime<chrono::Utc> = silence["ends_at"].as_str().unwrap().parse().unwrap();
    let two_hours = before + chrono::Duration::hours(2);
    assert!(
        ends >= two_hours && ends < two_hours + chrono::Duration::minutes(1),
        "{silence}"
    );
    assert_eq!(
        (&silence["kind"], &silence["created_by"]),
        (&Value::from("packet_loss"), &Value::from("dana"))
    );
    let id = silence["id"].as_i64().unwrap();
    let table = s.run(&operator, &["silences", "list"]).ok().stdout;
    assert!(
        table.contains("fibre works") && table.contains("10.0.0.*"),
        "{table}"
    );
    let expired = s
        .run(&operator, &["silences", "expire", &id.to_string()])
        .ok()
        .stdout;
    assert_eq!(expired.trim(), format!("silence {id} expired"));
    let left = s
        .run(&operator, &["silences", "list", "-o", "json"])
        .ok()
        .json();
    assert_eq!(left, serde_json::json!([]), "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_error_has_its_exit_code() {
    let s = Setup::new().await;
    let operator = s.config(Role::Operator).await;
    let viewer = s.config(Role::Viewer).await;
    let url = format!("http://{}", s.collector.http);
    let home = s.dir.path();

    // 3: no token, an unknown token (from the environment), a role that may not.
    let none = netwarden(home, &[("NETWARDEN_URL", &url)], &["devices", "list"]);
    assert_eq!(none.code, Some(3), "{}", none.stderr);
    assert!(none.stderr.contains("token"), "{}", none.stderr);
    let bogus = netwarden(
        home,
        &[
            ("NETWARDEN_URL", &url),
            ("NETWARDEN_TOKEN", "nw_not_a_token"),
        ],
        &["devices", "list"],
    );
    assert_eq!(bogus.code, Some(3), "{}", bogus.stderr);
    assert!(bogus.stderr.contains("HTTP 401"), "{}", bogus.stderr);
    let anomaly = s.anomaly.to_string();
    let forbidden = s.run(&viewer, &["anomalies", "ack", &anomaly]);
    assert_eq!(forbidden.code, Some(3), "{}", forbidden.stderr);
    assert!(
        forbidden.stderr.contains("HTTP 403"),
        "{}",
        forbidden.stderr
    );
    // ...while the viewer may read.
    s.run(&viewer, &["anomalies", "list"]).ok();

    // 4: unknown ids.
    for args in [
        &["devices", "show", "999999"][..],
        &["anomalies", "ack", "999999"],
        &["anomalies", "resolve", "999999"],
        &["silences", "expire", "999999"],
    ] {
        let run = s.run(&operator, args);
        assert_eq!(run.code, Some(4), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("999999"), "{args:?}: {}", run.stderr);
    }

    // 2: a bad command line: a duration that is none, a silence matching everything.
    let bad = s.run(
        &operator,
        &[
            "silences",
            "add",
            "--kind",
            "packet_loss",
            "--duration",
            "2x",
        ],
    );
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("--duration"), "{}", bad.stderr);
    let everything = s.run(&operator, &["silences", "add", "--duration", "2h"]);
    assert_eq!(everything.code, Some(2), "{}", everything.stderr);

    // 5: a value the collector refuses, with its message.
    let refused = s.run(&operator, &["anomalies", "list", "--state", "bogus"]);
    assert_eq!(refused.code, Some(5), "{}", refused.stderr);
    assert!(refused.stderr.contains("state"), "{}", refused.stderr);
    let kind = s.run(
        &operator,
        &[
            "silences",
            "add",
            "--kind",
            "no_such_kind",
            "--duration",
            "1h",
        ],
    );
    assert_eq!(kind.code, Some(5), "{}", kind.stderr);

    // 1: no collector there; a config file that is not there.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let away = netwarden(
        home,
        &[("NETWARDEN_URL", &nobody), ("NETWARDEN_TOKEN", "nw_x")],
        &["agents", "list"],
    );
    assert_eq!(away.code, Some(1), "{}", away.stderr);
    assert!(
        away.stderr.contains("cannot reach the collector"),
        "{}",
        away.stderr
    );
    let missing = netwarden(
        home,
        &[],
        &["--config", "/nonexistent/cli.toml", "agents", "list"],
    );
    assert_eq!(missing.code, Some(1), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("/nonexistent/cli.toml"),
        "{}",
        missing.stderr
    );
}

/// `plan get/diff/apply/history`, and their errors: a file that is no plan (exit 5, naming the
/// file and field, nothing sent), an edit on a stale version (5), a viewer applying (3), an
/// unknown version (4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_subcommands_and_their_errors() {
    let s = Setup::new().await;
    let operator = s.config(Role::Operator).await;
    let viewer = s.config(Role::Viewer).await;
    let file = s.dir.path().join("plan.yaml");
    let write = |text: &str| std::fs::write(&file, text).unwrap();
    let plan = file.to_str().unwrap();

    let got = s.run(&operator, &["plan", "get"]).ok().stdout;
    assert!(
        got.starts_with("# base_version: 0\n# no plan saved yet (version 0)\n"),
        "{got}"
    );

    write("sites: [{name: syd}]\ntargets:\n  - {name: core, address: 10.0.0.1, site: syd}\n");
    let diff = s.run(&operator, &["plan", "diff", plan]).ok().stdout;
    assert_eq!(diff, "+ site syd\n+ target core\n");
    let diff = s
        .run(&operator, &["plan", "diff", plan, "-o", "json"])
        .ok()
        .json();
    assert_eq!(diff["base_version"], 0);
    assert_eq!(diff["changes"][1]["change"], "added");

    // Without saying what it was edited from, a file is not applied.
    let unsure = s.run(&operator, &["plan", "apply", plan]);
    assert_eq!(unsure.code, Some(2), "{}", unsure.stderr);
    assert!(
        unsure.stderr.contains("--base-version"),
        "{}",
        unsure.stderr
    );
    let refused = s.run(&viewer, &["plan", "apply", plan, "--base-version", "0"]);
    assert_eq!(refused.code, Some(3), "{}", refused.stderr);
    let saved = s
        .run(
            &operator,
            &[
                "plan",
                "apply",
                plan,
                "--base-version",
                "0",
                "--comment",
                "core",
                "-o",
                "json",
            ],
        )
        .ok()
        .json();
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["author"], "operator");

    let yaml = s.run(&viewer, &["plan", "get"]).ok().stdout;
    assert!(yaml.contains("address: 10.0.0.1"), "{yaml}");
    let json = s.run(&viewer, &["plan", "get", "-o", "json"]).ok().json();
    assert_eq!(json["version"], 1);
    let old = s
        .run(&viewer, &["plan", "get", "--version", "1", "-o", "json"])
        .ok()
        .json();
    assert_eq!(old["comment"], "core");
    let missing = s.run(&viewer, &["plan", "get", "--version", "7"]);
    assert_eq!(missing.code, Some(4), "{}", missing.stderr);

    // An edit made on version 0, applied after version 1 was saved.
    let stale = s.run(&operator, &["plan", "apply", plan, "--base-version", "0"]);
    assert_eq!(stale.code, Some(5), "{}", stale.stderr);
    assert!(
        stale.stderr.contains("the plan is at version 1"),
        "{}",
        stale.stderr
    );

    // Not a plan: refused here, naming the file and field; nothing reaches the collector.
    write("targets:\n  - {name: core, address: 10.0.0.300, site: syd}\n");
    let bad = s.run(&operator, &["plan", "apply", plan]);
    assert_eq!(bad.code, Some(5), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("plan.yaml: targets[0].address: ")
            && bad.stderr.contains("targets[0].site: "),
        "{}",
        bad.stderr
    );
    write("targets: [{name: core, adress: 10.0.0.1}]\n");
    let bad = s.run(&operator, &["plan", "diff", plan]);
    assert_eq!(bad.code, Some(5), "{}", bad.stderr);
    assert!(bad.stderr.contains("targets[0]"), "{}", bad.stderr);

    // The round trip people use: get, edit, apply; the file says what it was edited from.
    let got = s.run(&viewer, &["plan", "get"]).ok().stdout;
    assert!(got.starts_with("# base_version: 1\n"), "{got}");
    write(&got.replace("10.0.0.1", "10.0.0.5"));
    let saved = s.run(&operator, &["plan", "apply", plan]).ok().stdout;
    assert_eq!(saved, "version 2 saved: ~1 target\n");
    // The same file again is now an edit of a stale version.
    let stale = s.run(&operator, &["plan", "apply", plan]);
    assert_eq!(stale.code, Some(5), "{}", stale.stderr);
    let forced = s
        .run(&operator, &["plan", "apply", plan, "--force"])
        .ok()
        .stdout;
    assert_eq!(forced, "version 3 saved: no change\n");

    let history = s.run(&viewer, &["plan", "history"]).ok().stdout;
    assert!(
        history.contains("VERSION") && history.contains("+1 site, +1 target"),
        "{history}"
    );
    let history = s
        .run(&viewer, &["plan", "history", "-o", "json"])
        .ok()
        .json();
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");
}

/// `plan import` of a NetBox device export (a file NetBox wrote) and `plan export`, which
/// reads back; a CSV row that cannot be a target is refused naming its line and column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_import_and_export() {
    let s = Setup::new().await;
    let operator = s.config(Role::Operator).await;
    let netbox = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plan/tests/corpus/netbox/devices_all_data.csv");
    let netbox = netbox.to_str().unwrap();

    // Printed as a plan file to review first; nothing saved.
    let printed = s.run(&operator, &["plan", "import", netbox]).ok();
    assert!(
        printed.stdout.starts_with("# base_version: 0\n"),
        "{}",
        printed.stdout
    );
    assert!(
        printed.stdout.contains("address: 192.0.2.1\n"),
        "{}",
        printed.stdout
    );
    assert!(
        printed.stderr.contains("rows skipped"),
        "{}",
        printed.stderr
    );
    let json = s.run(&operator, &["plan", "get", "-o", "json"]).ok().json();
    assert_eq!(json["version"], 0);

    let saved = s
        .run(
            &operator,
            &[
                "plan",
                "import",
                netbox,
                "--check",
                "default",
                "--apply",
                "--comment",
                "from NetBox",
            ],
        )
        .ok()
        .stdout;
    assert!(saved.starts_with("version 1 saved: +1 site, +"), "{saved}");
    let csv = s.run(&operator, &["plan", "export"]).ok().stdout;
    assert!(csv.starts_with("name,address,site,checks,label_"), "{csv}");
    assert!(csv.contains("Device 1,192.0.2.1,Site 1,default,"), "{csv}");

    let bad = s.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "Name;Status;IPv4 Address\nr1;Active;10.0.0.1/24\nr2;Active;10.0.0.999\n",
    )
    .unwrap();
    let refused = s.run(
        &operator,
        &["plan", "import", bad.to_str().unwrap(), "--apply"],
    );
    assert_eq!(refused.code, Some(5), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("line 3, column \"ipv4 address\""),
        "{}",
        refused.stderr
    );
    let json = s.run(&operator, &["plan", "get", "-o", "json"]).ok().json();
    assert_eq!(json["version"], 1, "nothing saved from a bad file");
}
