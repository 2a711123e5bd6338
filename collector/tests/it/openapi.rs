//! The OpenAPI document at `/api/openapi.json`: that it is served, that every operation in it
//! is a route the collector answers (not the fallback), that no route is registered outside
//! it, that it states the auth layer's rules as the guard applies them, and that text holding
//! a NUL is refused with a 400 naming the field on both backends (PostgreSQL cannot store one).
//! schemathesis checks the document against the live API in `scripts/api-conformance.sh`.

use super::support::{Backend, TestCollector};
use netwarden_collector::auth::Role;
use netwarden_collector::rest::tokens::create_token;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn document(c: &TestCollector, token: &str) -> Value {
    let response = reqwest::Client::new()
        .get(c.api("/api/openapi.json"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    response.json().await.unwrap()
}

/// Each (method, path) the document lists.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                found.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_a_route() {
    let c = TestCollector::start_with(Backend::Sqlite, |c| c.auth.anonymous_role = None).await;
    let (_, admin) = create_token(c.store.as_ref(), "root", Role::Admin)
        .await
        .unwrap();
    let doc = document(&c, &admin).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    assert!(ops.len() >= 50, "only {} operations documented", ops.len());

    let client = reqwest::Client::new();
    for (method, path) in &ops {
        // Path parameters get a value of the right shape (an id nothing has, so DELETE
        // /api/tokens/{id} cannot revoke the token in use); what matters is which handler answers.
        let id = if path.contains("kpis") || path.contains("KPIs") {
            "1"
        } else {
            "999999"
        };
        let url = path.replace("{id}", id).replace("{code}", "2ABT");
        let request = client
            .request(method.parse().unwrap(), c.api(&url))
            .bearer_auth(&admin);
        let request = match method.as_str() {
            "POST" | "PUT" if !path.starts_with("/speedtest") => request.json(&json!({})),
            _ => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(
            body["error"]["message"], "no such endpoint",
            "{method} {path} is documented but not routed"
        );
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not routed for {method}"
        );
    }

    // Every operation states what a client needs to know to call it.
    for (method, path) in &ops {
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        assert!(
            op["description"]
                .as_str()
                .is_some_and(|d| d.contains("role") || d.contains("No token needed")),
            "{method} {path} does not say which role it needs"
        );
    }
}

#[test]
fn no_route_bypasses_the_document() {
    // Routes registered with `.route(...)` would be served but not documented; every handler
    // goes through `utoipa_axum::routes!`, which takes the path from its `#[utoipa::path]`.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rest");
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    assert!(
                        !line.contains(".route(") && !line.contains(".route_service("),
                        "{}:{}: a route outside the OpenAPI document",
                        path.display(),
                        n + 1
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_states_the_guards_rules() {
    let c = TestCollector::start_with(Backend::Sqlite, |c| {
        c.auth.anonymous_role = None;
        c.auth.open_metrics = false;
        c.auth.rate_per_sec = 100;
    })
    .await;
    let (_, viewer) = create_token(c.store.as_ref(), "wall", Role::Viewer)
        .await
        .unwrap();
    let doc = document(&c, &viewer).await;
    let op = |method: &str, path: &str| doc["paths"][path][method].clone();

    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Open by config: no requirement; closed by config: the bearer scheme and 401.
    assert_eq!(op("get", "/health")["security"], json!([{}]));
    assert_eq!(op("get", "/metrics")["security"], json!([{"bearer": []}]));
    assert!(op("get", "/metrics")["responses"]["401"].is_object());
    // Each class of route names the role the guard wants, with 401, 403 and 429.
    for (method, path, role) in [
        ("get", "/api/devices", "viewer"),
        ("post", "/api/anomalies/{id}/acknowledge", "operator"),
        ("post", "/api/v1/telemetry", "operator"),
        ("put", "/api/accounts/{id}", "admin"),
        ("post", "/api/tokens", "admin"),
    ] {
        let o = op(method, path);
        let description = o["description"].as_str().unwrap();
        assert!(
            description.contains(&format!("`{role}` role")),
            "{method} {path}: {description}"
        );
        for status in ["401", "429", "503"] {
            assert!(
                o["responses"][status].is_object(),
                "{method} {path} {status}"
            );
        }
        let error = &o["responses"]["401"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(error, "#/components/schemas/ErrorBody");
    }
    assert!(op("post", "/api/tokens")["responses"]["403"].is_object());
    // Inputs are described with the limits the handlers enforce.
    let params = op("get", "/api/devices")["parameters"].clone();
    let limit = params
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["maximum"], 1000);
    let status = params
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "status")
        .unwrap();
    assert_eq!(
        status["schema"]["enum"],
        json!(["online", "degraded", "offline"])
    );

    // Without a token the document itself is refused like any other /api call.
    let response = reqwest::get(c.api("/api/openapi.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn nul_characters_are_refused(backend: Backend) {
    let c = TestCollector::start(backend).await;
    let client = reqwest::Client::new();
    let cases = [
        (
            client.get(c.api("/api/devices?agent=site%00a")),
            "agent: must not contain NUL characters",
        ),
        (
            client.get(c.api("/api/anomalies?subject=a%00&limit=5")),
            "subject: must not contain NUL characters",
        ),
        (
            client.get(c.api("/api/accounts/a%00b")),
            "path: must not contain NUL characters",
        ),
        (
            client
                .put(c.api("/api/employees/e1"))
                .json(&json!({"name": "A\u{0}nn", "email": "ann@example.net"})),
            "name: must not contain NUL characters",
        ),
        (
            client
                .post(c.api("/api/silences"))
                .json(&json!({"subject": "x", "ends_at": "2099-01-01T00:00:00Z",
                              "created_by": "noc", "comment": "c\u{0}"})),
            "comment: must not contain NUL characters",
        ),
        (
            client
                .post(c.api("/api/anomalies/1/acknowledge"))
                .json(&json!({"note": "\u{0}"})),
            "note: must not contain NUL characters",
        ),
    ];
    for (request, message) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{message}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_argument");
        assert_eq!(body["error"]["message"], message);
    }
    // Nothing was stored, and the database still answers.
    let response = client.get(c.api("/api/employees/e1")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = client.get(c.api("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nul_characters_are_refused() {
        super::nul_characters_are_refused(Backend::Sqlite).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nul_characters_are_refused() {
        super::nul_characters_are_refused(Backend::Postgres).await;
    }
}
