//! The CLI: `validate` names the file and field on bad input; `migrate` is idempotent.

use super::support::{binary, PgDatabase, Pki};
use std::process::Command;

fn collector(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("netwarden-collector"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn agent(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(binary("netwarden-agent"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn collector_toml(pki: &Pki, extra: &str) -> String {
    format!(
        "[tls]\nca = \"{0}/ca.pem\"\ncert = \"{0}/server.pem\"\nkey = \"{0}/server.key\"\n{extra}",
        pki.path().display()
    )
}

#[test]
fn collector_validate_names_the_file_and_field() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.toml");
    let file = path.to_str().unwrap();

    std::fs::write(
        &path,
        collector_toml(&pki, "[database]\nurl = \"sqlite://c.db\"\n"),
    )
    .unwrap();
    let (ok, stdout, _) = collector(&["validate", "--config", file]);
    assert!(ok && stdout.contains("OK"), "{stdout}");
    // The test PKI is valid for 30 days: validate says so before it bites.
    assert!(
        stdout.contains("warning: the server certificate") && stdout.contains("expires in"),
        "{stdout}"
    );

    let cases = [
        ("[grpc]\nlisten = \"nowhere\"\n", "grpc.listen"),
        ("[database]\nurl = \"mysql://x\"\n", "database.url"),
        (
            "[database]\nurl = \"sqlite://c.db\"\nmax_conections = 3\n",
            "max_conections",
        ),
        ("[grpc]\nmax_message_bytes = 12\n", "grpc.max_message_bytes"),
        ("[http]\nlisten = 8080\n", "http.listen"),
    ];
    for (extra, field) in cases {
        std::fs::write(&path, collector_toml(&pki, extra)).unwrap();
        let (ok, _, stderr) = collector(&["validate", "--config", file]);
        assert!(!ok, "{extra} should fail");
        assert!(
            stderr.contains("collector.toml"),
            "names the file: {stderr}"
        );
        assert!(stderr.contains(field), "names {field}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    std::fs::write(&path, "[tls]\nca = \"/nonexistent/ca.pem\"\n").unwrap();
    let (ok, _, stderr) = collector(&["validate", "--config", file]);
    assert!(!ok && stderr.contains("/nonexistent/ca.pem"), "{stderr}");

    let (ok, _, stderr) = collector(&["validate", "--config", "/nonexistent/collector.toml"]);
    assert!(
        !ok && stderr.contains("/nonexistent/collector.toml"),
        "{stderr}"
    );
}

#[test]
fn agent_validate_names_the_file_and_field() {
    let pki = Pki::new();
    let files = pki.agent("cli-agent");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    let file = path.to_str().unwrap();
    let base = format!(
        "[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        files.ca.display(),
        files.cert.display(),
        files.key.display()
    );
    std::fs::write(
        &path,
        format!("[collector]\nurl = \"https://127.0.0.1:1\"\n{base}"),
    )
    .unwrap();
    let (ok, stdout, stderr) = agent(&["validate", "--config", file], &[]);
    assert!(ok && stdout.contains("OK"), "{stdout}{stderr}");
    assert!(
        stdout.contains("warning: the agent certificate") && stdout.contains("expires in"),
        "{stdout}"
    );
    // The buffer is sized in time and its size said: 4 targets... here none, so the floor.
    assert!(
        stdout.contains("records") && stdout.contains(" MB)"),
        "{stdout}"
    );

    let cases = [
        ("", "collector.url"),
        ("[collector]\nurl = \"http://127.0.0.1:1\"\n", "collector.url"),
        ("[collector]\nurl = \"https://c:1\"\n[probe]\ntargets = [\"10.0.0.1\", \"not-a-host\"]\n", "probe.targets[1]"),
        ("[collector]\nurl = \"https://c:1\"\n[probe]\ncount = 20\ninterval_secs = 5\n", "probe.interval_secs"),
        ("[collector]\nurl = \"https://c:1\"\n[buffer]\nmax_records = 10\n", "buffer.max_records"),
        ("[collector]\nurl = \"https://c:1\"\n[buffer]\nmax_hours = 0\n", "buffer.max_hours"),
        // A buffer the disk cannot hold (a trillion records) is refused, with what it needs.
        ("[collector]\nurl = \"https://c:1\"\n[buffer]\nmax_records = 1000000000000\n", "MB free"),
        ("[collector]\nurl = \"https://c:1\"\n[probe]\ncuont = 3\n", "cuont"),
        ("[collector]\nurl = \"https://c:1\"\n[metrics]\nlisten = \"9464\"\n", "metrics.listen"),
    ];
    for (extra, field) in cases {
        std::fs::write(&path, format!("{extra}{base}")).unwrap();
        let (ok, _, stderr) = agent(&["validate", "--config", file], &[]);
        assert!(!ok, "{extra} should fail");
        assert!(
            stderr.contains("agent.toml") && stderr.contains(field),
            "names {field}: {stderr}"
        );
    }

    // Environment overrides win over the file.
    std::fs::write(&path, base).unwrap();
    let (ok, stdout, stderr) = agent(
        &["validate", "--config", file],
        &[(
            "NETWARDEN_AGENT_COLLECTOR__URL",
            "https://collector.noc.test:50051",
        )],
    );
    assert!(
        ok && stdout.contains("collector.noc.test"),
        "{stdout}{stderr}"
    );
    // The packaged example's reserved address is refused, by name.
    let (ok, _, stderr) = agent(
        &["validate", "--config", file],
        &[(
            "NETWARDEN_AGENT_COLLECTOR__URL",
            "https://collector.example:50051",
        )],
    );
    assert!(
        !ok && stderr.contains("collector.url") && stderr.contains("example address"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_once_on_both_backends() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let db = PgDatabase::create().await;
    for url in ["sqlite://m.db".to_string(), db.url.clone()] {
        let path = dir.path().join("collector.toml");
        std::fs::write(
            &path,
            collector_toml(&pki, &format!("[database]\nurl = \"{url}\"\n")),
        )
        .unwrap();
        let file = path.to_str().unwrap().to_string();
        let first = tokio::task::spawn_blocking({
            let file = file.clone();
            move || collector(&["migrate", "--config", &file])
        })
        .await
        .unwrap();
        assert!(first.0 && first.1.contains("applied"), "{url}: {first:?}");
        let second =
            tokio::task::spawn_blocking(move || collector(&["migrate", "--config", &file]))
                .await
                .unwrap();
        assert!(
            second.0 && second.1.contains("up to date"),
            "{url}: {second:?}"
        );
    }
}

#[test]
fn pki_refuses_to_overwrite_a_ca_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(collector(&["pki", "init", "--dir", d]).0);
    let (ok, _, stderr) = collector(&["pki", "init", "--dir", d]);
    assert!(!ok && stderr.contains("--force"), "{stderr}");
    let (ok, _, stderr) = collector(&["pki", "issue-agent", "--dir", d, "--name", "no spaces"]);
    assert!(!ok && stderr.contains("invalid agent id"), "{stderr}");
}

/// The configs `scripts/quickstart.sh` writes (the README's first command) pass `validate` in
/// both binaries; a quickstart that fails at start is caught here, not by a new user.
#[test]
fn the_quickstart_configs_validate() {
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/quickstart.sh"),
    )
    .unwrap();
    let heredoc = |file: &str| -> String {
        let start = format!("cat > \"$work/{file}\" <<CONF\n");
        let from = script
            .find(&start)
            .unwrap_or_else(|| panic!("no {file} in quickstart.sh"))
            + start.len();
        let to = from + script[from..].find("\nCONF\n").unwrap();
        script[from..to]
            .replace("$grpc_port", "50051")
            .replace("$http_port", "8080")
            .replace("$query_port", "50052")
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let pki_arg = pki.to_str().unwrap();
    let (ok, _, err) = collector(&[
        "pki",
        "init",
        "--dir",
        pki_arg,
        "--host",
        "localhost",
        "--host",
        "127.0.0.1",
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = collector(&[
        "pki",
        "issue-agent",
        "--dir",
        pki_arg,
        "--name",
        "quickstart-agent",
    ]);
    assert!(ok, "{err}");
    for (file, binary) in [("collector.toml", "collector"), ("agent.toml", "agent")] {
        let path = dir.path().join(file);
        std::fs::write(&path, heredoc(file)).unwrap();
        let args = ["validate", "--config", path.to_str().unwrap()];
        let (ok, stdout, stderr) = if binary == "collector" {
            collector(&args)
        } else {
            agent(&args, &[])
        };
        assert!(ok, "{file}: {stdout}{stderr}");
        if binary == "collector" {
            // As the script does: the agent's speed-test token, made before it is validated.
            let config = path.to_str().unwrap();
            let (ok, token, err) = collector(&[
                "token",
                "create",
                "--role",
                "viewer",
                "--name",
                "quickstart-agent-speedtest",
                "--config",
                config,
            ]);
            assert!(ok, "{err}");
            std::fs::write(dir.path().join("speedtest.token"), token).unwrap();
        }
    }
}
