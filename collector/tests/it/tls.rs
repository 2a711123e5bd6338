//! The gRPC port refuses everything but an agent with a valid certificate from our CA.

use super::support::{exchange, probe_record, wire_batch, Backend, Pki, TestCollector};
use netwarden_shared::tls::TlsFiles;
use std::time::Duration;

async fn refused_count(collector: &TestCollector, reason: &str) -> u64 {
    let needle = format!("netwarden_grpc_connections_refused_total{{reason=\"{reason}\"}} ");
    collector
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&needle).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0)
}

/// Waits until the collector has counted a refusal (it is recorded asynchronously).
async fn wait_refused(collector: &TestCollector, reason: &str) -> u64 {
    for _ in 0..50 {
        let n = refused_count(collector, reason).await;
        if n > 0 {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    0
}

async fn try_send(collector: &TestCollector, files: &TlsFiles) -> Result<(), String> {
    let mut client = collector.client(files).await?;
    let (acks, error) = exchange(
        &mut client,
        vec![wire_batch(
            1,
            vec![probe_record(1, 1_790_000_000_000, "10.0.0.2", 4)],
        )],
    )
    .await;
    match error {
        Some(status) => Err(format!("{status}")),
        None if acks.len() == 1 => Ok(()),
        None => Err("no ack".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_agent_certificate_is_accepted() {
    let collector = TestCollector::start(Backend::Sqlite).await;
    let files = collector.pki.agent("good-agent");
    try_send(&collector, &files).await.unwrap();
    let agents = collector.store.agents().await.unwrap();
    assert_eq!(
        agents[0].id, "good-agent",
        "identity comes from the certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let collector = TestCollector::start(Backend::Sqlite).await;
    let stranger = Pki::new();
    let foreign = stranger.agent("intruder");
    // Trusts the right server, presents a client certificate the collector's CA never issued.
    let files = TlsFiles {
        ca: collector.pki.ca(),
        ..foreign
    };
    let err = try_send(&collector, &files).await.unwrap_err();
    assert!(!err.is_empty());
    assert!(wait_refused(&collector, "unknown_ca").await >= 1);
    assert!(
        collector.store.agents().await.unwrap().is_empty(),
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused() {
    let collector = TestCollector::start(Backend::Sqlite).await;
    let now = time::OffsetDateTime::now_utc();
    let expired = netwarden_collector::pki::issue_agent_with_validity(
        collector.pki.path(),
        "old-agent",
        &collector.pki.path().join("agents"),
        now - time::Duration::days(30),
        now - time::Duration::days(1),
    )
    .unwrap();
    let files = TlsFiles {
        ca: collector.pki.ca(),
        cert: expired.cert,
        key: expired.key,
    };
    // With TLS 1.3 the client may read the server's "certificate expired" alert or just a closed
    // connection, depending on timing; the server's reason below is the deterministic part (and
    // the agent checks its own certificate at start, see e2e::refusals_are_logged_on_both_sides).
    let err = try_send(&collector, &files).await.unwrap_err();
    assert!(!err.is_empty());
    assert!(wait_refused(&collector, "expired").await >= 1);
    assert!(collector.store.agents().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_refused() {
    let collector = TestCollector::start(Backend::Sqlite).await;
    // A TLS client that trusts the server but has no certificate of its own.
    let roots = {
        let mut store = rustls::RootCertStore::empty();
        for cert in netwarden_shared::tls::load_certs(&collector.pki.ca(), "CA").unwrap() {
            store.add(cert).unwrap();
        }
        store
    };
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(collector.grpc)
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    if let Ok(mut tls) = connector.connect(name, tcp).await {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut buf = [0u8; 64];
        // The server aborts the handshake: reading yields an error or EOF, never data.
        let read = tls.read(&mut buf).await;
        assert!(matches!(read, Err(_) | Ok(0)), "got {read:?}");
    }
    assert!(wait_refused(&collector, "no_client_certificate").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_refused() {
    let collector = TestCollector::start(Backend::Sqlite).await;
    // gRPC over cleartext HTTP/2, as a misconfigured client would try.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", collector.grpc))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    if let Ok(channel) = channel {
        let mut client =
            netwarden_proto::v1::ingest_service_client::IngestServiceClient::new(channel);
        let (acks, error) = exchange(&mut client, vec![wire_batch(1, vec![])]).await;
        assert!(acks.is_empty());
        assert!(error.is_some());
    }
    // The client may try more than once; each attempt is refused.
    assert!(wait_refused(&collector, "plaintext").await >= 1);
    assert!(collector.store.agents().await.unwrap().is_empty());
}
