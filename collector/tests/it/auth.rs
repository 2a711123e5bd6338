//! API tokens and roles over real HTTP: 401 without or with a bad token, 403 for the wrong
//! role, each role's allowed actions, revocation, the per-token rate limit, that only hashes
//! are stored, and the `token` CLI against a running collector binary.

use super::support::{binary, free_port, Backend, Pki, TestCollector};
use netwarden_collector::auth::Role;
use netwarden_collector::rest::tokens::create_token;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

async fn locked(backend: Backend, rate_per_sec: u32) -> TestCollector {
    TestCollector::start_with(backend, |c| {
        c.auth.anonymous_role = None;
        c.auth.rate_per_sec = rate_per_sec;
        c.auth.burst = rate_per_sec;
    })
    .await
}

async fn call(
    c: &TestCollector,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, c.api(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn silence() -> Value {
    json!({"kind": "packet_loss", "ends_at": "2099-01-01T00:00:00Z",
           "created_by": "noc", "comment": "maintenance"})
}

async fn roles_are_enforced(backend: Backend) {
    let c = locked(backend, 0).await;
    let (_, admin) = create_token(c.store.as_ref(), "root", Role::Admin)
        .await
        .unwrap();

    // No token, a malformed header, an unknown token: 401 in the shared error shape.
    let (status, body) = call(&c, None, Method::GET, "/api/devices", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");
    let response = reqwest::Client::new()
        .get(c.api("/api/devices"))
        .header("Authorization", "Basic cm9vdDpyb290")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, _) = call(&c, Some("nwt_00"), Method::GET, "/api/devices", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Unknown paths under /api do not reveal themselves without a token.
    let (status, _) = call(&c, None, Method::GET, "/api/nothing-here", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&c, Some(&admin), Method::GET, "/api/nothing-here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Open by default: health and metrics.
    assert_eq!(
        call(&c, None, Method::GET, "/health", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&c, None, Method::GET, "/metrics", None).await.0,
        StatusCode::OK
    );

    // Admin makes a viewer and an operator over the API; the secret comes back once.
    let mut secrets = Vec::new();
    for (name, role) in [("wall", "viewer"), ("noc-1", "operator")] {
        let (status, body) = call(
            &c,
            Some(&admin),
            Method::POST,
            "/api/tokens",
            Some(json!({"name": name, "role": role})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["role"], role);
        secrets.push((
            body["id"].as_i64().unwrap(),
            body["secret"].as_str().unwrap().to_string(),
        ));
    }
    let (viewer, operator) = (secrets[0].1.clone(), secrets[1].1.clone());
    let (status, body) = call(
        &c,
        Some(&admin),
        Method::POST,
        "/api/tokens",
        Some(json!({"name": "wall", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "already_exists");
    let (status, body) = call(
        &c,
        Some(&admin),
        Method::POST,
        "/api/tokens",
        Some(json!({"name": "x", "role": "root"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, list) = call(&c, Some(&admin), Method::GET, "/api/tokens", None).await;
    let listed = list.to_string();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(!listed.contains(&viewer) && !listed.contains("secret") && !listed.contains("hash"));

    // Viewer: reads only.
    for path in [
        "/api/devices",
        "/api/anomalies",
        "/api/circuits",
        "/api/agents",
    ] {
        assert_eq!(
            call(&c, Some(&viewer), Method::GET, path, None).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    let (status, body) = call(
        &c,
        Some(&viewer),
        Method::POST,
        "/api/silences",
        Some(silence()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "permission_denied");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("operator"));
    let (status, _) = call(&c, Some(&viewer), Method::GET, "/api/tokens", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Operator: silences and telemetry, not configuration.
    let (status, _) = call(
        &c,
        Some(&operator),
        Method::POST,
        "/api/silences",
        Some(silence()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        &c,
        Some(&operator),
        Method::POST,
        "/api/v1/telemetry",
        Some(json!({"circuit_id": "C-1", "utilization_mbps": 5.0})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let circuit = json!({"provisioned_mbps": 100.0});
    let (status, _) = call(
        &c,
        Some(&operator),
        Method::PUT,
        "/api/circuits/C-1",
        Some(circuit.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &c,
        Some(&admin),
        Method::PUT,
        "/api/circuits/C-1",
        Some(circuit),
    )
    .await;
    assert!(status.is_success(), "{status}");

    // Revoking takes effect at once on this collector, though the token was just cached.
    let (status, _) = call(
        &c,
        Some(&admin),
        Method::DELETE,
        &format!("/api/tokens/{}", secrets[0].0),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&c, Some(&viewer), Method::GET, "/api/devices", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &c,
        Some(&admin),
        Method::DELETE,
        &format!("/api/tokens/{}", secrets[0].0),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An admin token cannot revoke itself (a lock-out by mistake); it still works after.
    let (root, _) = c
        .store
        .token_by_hash(&netwarden_collector::auth::hash_token(&admin))
        .await
        .unwrap()
        .map(|t| (t.id, t.name))
        .unwrap();
    let (status, body) = call(
        &c,
        Some(&admin),
        Method::DELETE,
        &format!("/api/tokens/{root}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("making this request"));
    let (status, _) = call(&c, Some(&admin), Method::GET, "/api/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn closed_health_and_metrics_need_a_viewer(backend: Backend) {
    let c = TestCollector::start_with(backend, |c| {
        c.auth.anonymous_role = None;
        c.auth.open_health = false;
        c.auth.open_metrics = false;
    })
    .await;
    let (_, viewer) = create_token(c.store.as_ref(), "prom", Role::Viewer)
        .await
        .unwrap();
    for path in ["/health", "/metrics"] {
        assert_eq!(
            call(&c, None, Method::GET, path, None).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&c, Some(&viewer), Method::GET, path, None).await.0,
            StatusCode::OK
        );
    }
}

async fn each_token_has_its_own_rate_limit(backend: Backend) {
    let c = locked(backend, 5).await;
    let (_, busy) = create_token(c.store.as_ref(), "busy", Role::Viewer)
        .await
        .unwrap();
    let (_, quiet) = create_token(c.store.as_ref(), "quiet", Role::Viewer)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let mut limited = None;
    for _ in 0..20 {
        let response = client
            .get(c.api("/api/agents"))
            .bearer_auth(&busy)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("20 requests at once never hit a limit of 5/s");
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "resource_exhausted");
    assert_eq!(
        call(&c, Some(&quiet), Method::GET, "/api/agents", None)
            .await
            .0,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        call(&c, Some(&busy), Method::GET, "/api/agents", None)
            .await
            .0,
        StatusCode::OK
    );
}

/// Guessing tokens is slowed: every unknown token shares one bucket of the configured rate,
/// however many different ones are tried, and a real token is not held back by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tokens_share_one_rate_limit() {
    let c = locked(Backend::Sqlite, 5).await;
    let (_, real) = create_token(c.store.as_ref(), "real", Role::Viewer)
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for i in 0..20 {
        let guess = format!("nw_guess{i:04}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        statuses.push(
            call(&c, Some(&guess), Method::GET, "/api/agents", None)
                .await
                .0,
        );
    }
    let unauthenticated = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(unauthenticated + limited, 20, "{statuses:?}");
    assert!(
        (5..=7).contains(&unauthenticated) && limited >= 13,
        "20 different guesses at once against a limit of 5/s: {statuses:?}"
    );
    assert_eq!(
        call(&c, Some(&real), Method::GET, "/api/agents", None)
            .await
            .0,
        StatusCode::OK
    );
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn roles_are_enforced() {
        super::roles_are_enforced(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_health_and_metrics_need_a_viewer() {
        super::closed_health_and_metrics_need_a_viewer(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_token_has_its_own_rate_limit() {
        super::each_token_has_its_own_rate_limit(Backend::Sqlite).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn roles_are_enforced() {
        super::roles_are_enforced(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_token_has_its_own_rate_limit() {
        super::each_token_has_its_own_rate_limit(Backend::Postgres).await;
    }
}

fn cli(config: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("netwarden-collector"))
        .arg("token")
        .args(args)
        .args(["--config", config])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `token create` prints a working token once and stores only its hash; `token revoke` shuts
/// it out of a running collector binary within the cache's few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_cli_works_against_a_running_collector() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[grpc]\nlisten = \"127.0.0.1:{}\"\nquery_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
             [tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\
             [database]\nurl = \"sqlite://{}\"\n[alerting]\nagent_silent_secs = 0\n",
            free_port(),
            pki.ca().display(),
            pki.path().join("server.pem").display(),
            pki.path().join("server.key").display(),
            dir.path().join("c.db").display(),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let (ok, token, stderr) = cli(config, &["create", "--role", "viewer", "--name", "wall"]);
    assert!(ok, "{stderr}");
    let token = token.trim().to_string();
    assert!(
        token.starts_with("nwt_") && stderr.contains("shown only now"),
        "{stderr}"
    );
    let (ok, _, stderr) = cli(config, &["create", "--role", "viewer", "--name", "wall"]);
    assert!(!ok && stderr.contains("exists"), "{stderr}");
    let (ok, _, stderr) = cli(config, &["create", "--role", "root", "--name", "x"]);
    assert!(!ok && stderr.contains("root"), "{stderr}");
    let (ok, list, _) = cli(config, &["list"]);
    assert!(
        ok && list.contains("wall\tviewer") && !list.contains(&token),
        "{list}"
    );
    // The rows may still be in the write-ahead log.
    let mut db = std::fs::read(dir.path().join("c.db")).unwrap();
    db.extend(std::fs::read(dir.path().join("c.db-wal")).unwrap_or_default());
    let hash = netwarden_collector::auth::hash_token(&token);
    let contains = |needle: &str| db.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        contains(&hash) && !contains(&token),
        "the database must hold the hash only"
    );

    let mut child = Command::new(binary("netwarden-collector"))
        .args(["serve", "--config", config])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{http}/api/devices");
    let client = reqwest::Client::new();
    let status = |token: Option<String>| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let mut request = client.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await.map(|r| r.status()).ok()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(None).await.is_none() {
        assert!(Instant::now() < deadline, "collector did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(None).await, Some(StatusCode::UNAUTHORIZED));
    assert_eq!(status(Some(token.clone())).await, Some(StatusCode::OK));

    let (ok, _, stderr) = cli(config, &["revoke", "wall"]);
    assert!(ok, "{stderr}");
    let revoked_at = Instant::now();
    while status(Some(token.clone())).await != Some(StatusCode::UNAUTHORIZED) {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "a revoked token still works after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}
