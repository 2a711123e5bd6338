//! What the gRPC benches share: a collector config for an in-process server, a scratch
//! PostgreSQL database, agent certificates, and a send window that keeps N batches in flight.

use netwarden_collector::config::CollectorConfig;
use netwarden_shared::tls::TlsFiles;
use sqlx::Connection;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

/// A config for a collector in this process: ephemeral ports, large messages, the PKI in `pki`.
pub fn collector_config(pki: &Path) -> CollectorConfig {
    let mut raw = CollectorConfig::default();
    raw.grpc.listen = "127.0.0.1:0".into();
    raw.http.listen = "127.0.0.1:0".into();
    raw.grpc.query_listen = "127.0.0.1:0".into();
    raw.grpc.max_message_bytes = 64 * 1024 * 1024;
    raw.tls.ca = pki.join("ca.pem");
    raw.tls.cert = pki.join("server.pem");
    raw.tls.key = pki.join("server.key");
    raw
}

/// A PostgreSQL database made for one run and dropped by `drop_database`.
pub struct Scratch {
    base: String,
    name: String,
}

/// The database URL for `backend` (a file in `dir`, or a scratch PostgreSQL database from
/// TEST_DATABASE_URL named after `name`).
pub async fn database_url(backend: &str, dir: &Path, name: &str) -> (String, Option<Scratch>) {
    match backend {
        "sqlite" => (format!("sqlite://{}", dir.join("bench.db").display()), None),
        "postgres" => {
            let base = std::env::var("TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let name = format!("{name}_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&base)
                .await
                .expect("PostgreSQL");
            for sql in [
                format!("DROP DATABASE IF EXISTS {name}"),
                format!("CREATE DATABASE {name}"),
            ] {
                sqlx::query(&sql).execute(&mut admin).await.unwrap();
            }
            let (prefix, _) = base.rsplit_once('/').unwrap();
            let url = format!("{prefix}/{name}");
            (url, Some(Scratch { base, name }))
        }
        other => panic!("unknown backend {other}"),
    }
}

impl Scratch {
    pub async fn drop_database(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.base).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

/// A client certificate named `name`, issued from the CA in `pki`.
pub fn client_files(pki: &Path, name: &str) -> TlsFiles {
    let issued = netwarden_collector::pki::issue_agent(pki, name, &pki.join("agents"), 30).unwrap();
    TlsFiles {
        ca: pki.join("ca.pem"),
        cert: issued.cert,
        key: issued.key,
    }
}

/// Feeds `items` to a request stream, at most `in_flight` unacknowledged: the caller returns
/// one permit per acknowledgement.
pub fn windowed<T: Send + 'static>(
    items: Vec<T>,
    in_flight: usize,
) -> (ReceiverStream<T>, Arc<Semaphore>) {
    let window = Arc::new(Semaphore::new(in_flight));
    let (tx, rx) = mpsc::channel(in_flight);
    let producer_window = window.clone();
    tokio::spawn(async move {
        for item in items {
            producer_window.acquire().await.unwrap().forget();
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    (ReceiverStream::new(rx), window)
}
