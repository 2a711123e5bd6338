//! Starts the collector: storage, the mTLS gRPC listener and the HTTP listener, and stops them
//! in order (stop accepting, let open streams commit their batch, then exit).

use crate::config::Settings;
use crate::grpc::incoming::accept_loop;
use crate::grpc::ingest::Ingest;
use crate::metrics::Metrics;
use crate::rest::{router, AppState};
use crate::storage::{self, DatabaseLocation, Store};
use netwarden_proto::v1::ingest_service_server::IngestServiceServer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// How long open connections get to finish after a stop request.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] storage::StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] netwarden_shared::tls::TlsError),
    #[error("notifications: {0}")]
    Email(String),
    #[error("Cacti scraper: {0}")]
    Scraper(#[from] crate::cacti::job::ScrapeError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC reflection: {0}")]
    Reflection(String),
}

/// A started collector.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The operators' gRPC query port, when served.
    pub query_addr: Option<SocketAddr>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tasks: JoinSet<(&'static str, Result<(), String>)>,
}

pub fn describe_location(location: &DatabaseLocation) -> String {
    match location {
        DatabaseLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
        DatabaseLocation::Postgres(url) => storage::postgres::redact_url(url),
    }
}

/// Opens and migrates the database, binds both listeners and starts serving.
pub async fn start(
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    let store = storage::open(
        &settings.database,
        settings.max_connections,
        settings.sqlite_sync,
    )
    .await?;
    let applied = store.migrate().await?;
    tracing::info!(
        database = %describe_location(&settings.database),
        migrations_applied = applied.len(),
        "database ready"
    );
    // Revocations are read before the first connection is taken, then every second; the
    // handshake refuses a revoked certificate with a `certificate_revoked` alert.
    let revocations = crate::grpc::revoke::Revocations::default();
    revocations.load(store.as_ref()).await?;
    let tls = {
        let revocations = revocations.clone();
        netwarden_shared::tls::server_config_refusing(
            &settings.tls,
            Arc::new(move |der: &[u8]| revocations.is_revoked_der(der)),
        )?
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let metrics = Arc::new(Metrics::new());

    let bind = |what, addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { what, addr, source })
    };
    let grpc_listener = bind("gRPC", settings.grpc_listen).await?;
    let http_listener = bind("HTTP", settings.http_listen).await?;
    let bound = |listener: &TcpListener, what, addr| {
        listener
            .local_addr()
            .map_err(|source| StartError::Bind { what, addr, source })
    };
    let grpc_addr = bound(&grpc_listener, "gRPC", settings.grpc_listen)?;
    let http_addr = bound(&http_listener, "HTTP", settings.http_listen)?;
    let query_listener = match settings.query_listen {
        Some(addr) => Some(bind("gRPC query", addr).await?),
        None => None,
    };
    let query_addr = match (&query_listener, settings.query_listen) {
        (Some(listener), Some(addr)) => Some(bound(listener, "gRPC query", addr)?),
        _ => None,
    };

    let mut tasks = JoinSet::new();
    let accept_cancel = shutdown.child_token();
    let agent_conns =
        crate::grpc::conns::Registry::new("grpc", settings.grpc_limits, metrics.clone());
    let incoming = accept_loop(
        grpc_listener,
        acceptor,
        settings.handshake_timeout,
        metrics.clone(),
        agent_conns.clone(),
        revocations.clone(),
        accept_cancel.clone(),
    );
    {
        let (store, metrics, stop) = (store.clone(), metrics.clone(), shutdown.clone());
        tasks.spawn(async move {
            crate::grpc::revoke::run(store, revocations, agent_conns, metrics, stop).await;
            ("revocations", Ok(()))
        });
    }
    let engine = Arc::new(crate::alert::engine::Engine::new(
        store.clone(),
        settings.alerting.clone(),
        metrics.clone(),
    ));
    let notifier = match &settings.email {
        Some(email) => Some(Arc::new(
            crate::alert::customer::CustomerNotifier::new(
                email,
                store.clone(),
                metrics.clone(),
                Some(engine.clone()),
            )
            .map_err(StartError::Email)?,
        )),
        None => None,
    };
    let telemetry = crate::telemetry::TelemetryCommitter::start(
        store.clone(),
        crate::telemetry::detector::Detector::start(
            store.clone(),
            settings.telemetry_detection,
            notifier,
            Some(engine.clone()),
            metrics.clone(),
        ),
    );
    let guard = Arc::new(crate::auth::Guard::new(
        store.clone(),
        settings.auth.clone(),
    ));
    let telemetry_grpc =
        netwarden_proto::v1::telemetry_service_server::TelemetryServiceServer::new(
            crate::grpc::telemetry::Telemetry::new(
                telemetry.clone(),
                guard.clone(),
                settings.telemetry_grpc_agents.clone(),
            ),
        )
        .max_decoding_message_size(settings.max_message_bytes);
    let detectors = crate::alert::watch::Detectors::new(
        settings.detect.clone(),
        crate::detect::speed::SpeedFloors {
            download_mbps: settings.detect.speed_floor_download_mbps,
            upload_mbps: settings.detect.speed_floor_upload_mbps,
        },
    );
    let (watch, watch_task) =
        crate::alert::watch::start(store.clone(), engine.clone(), detectors, shutdown.clone());
    tasks.spawn(async move {
        let _ = watch_task.await;
        ("detection", Ok(()))
    });
    let dispatcher = dispatcher(
        settings,
        store.clone(),
        metrics.clone(),
        engine.wake.clone(),
    )?;
    if let Some(dispatcher) = dispatcher {
        let stop = shutdown.clone();
        tasks.spawn(async move {
            dispatcher.run(stop).await;
            ("notifications", Ok(()))
        });
    }
    let rollups = crate::rollup::job::RollupJob::new(
        store.clone(),
        settings.retention.raw_days,
        watch.rollup.clone(),
    );
    let stop = shutdown.clone();
    tasks.spawn(async move {
        rollups.run(stop).await;
        ("probe-rollups", Ok(()))
    });
    let (retention_store, retention, stop) =
        (store.clone(), settings.retention.clone(), shutdown.clone());
    tasks.spawn(async move {
        crate::rollup::retention::run(retention_store, retention, stop).await;
        ("probe-retention", Ok(()))
    });
    let ingest = IngestServiceServer::new(
        Ingest::new(
            storage::GroupCommitter::start(store.clone()),
            metrics.clone(),
            shutdown.clone(),
            Some(watch),
        )
        .with_window(settings.record_window),
    )
    .max_decoding_message_size(settings.max_message_bytes);
    let grpc_stop = shutdown.clone();
    tasks.spawn(async move {
        let result = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .layer(crate::grpc::conns::CountStreams::<crate::grpc::AgentConnInfo>::new())
            .add_service(ingest)
            .add_service(telemetry_grpc)
            .serve_with_incoming_shutdown(
                ReceiverStream::new(incoming),
                grpc_stop.cancelled_owned(),
            )
            .await
            .map_err(|e| netwarden_shared::tls::error_chain(&e));
        ("grpc", result)
    });

    if let Some(listener) = query_listener {
        let tls = netwarden_shared::tls::server_config_without_client_auth(&settings.tls)?;
        let incoming = crate::grpc::query::accept_loop(
            listener,
            tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
            settings.handshake_timeout,
            crate::grpc::conns::Registry::new("grpc-query", settings.grpc_limits, metrics.clone()),
            shutdown.child_token(),
        );
        let query = netwarden_proto::v1::query_service_server::QueryServiceServer::new(
            crate::grpc::query::Query::new(store.clone(), engine.clone(), guard.clone()),
        );
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(netwarden_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| StartError::Reflection(e.to_string()))?;
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let result = tonic::transport::Server::builder()
                .layer(crate::grpc::conns::CountStreams::<
                    crate::grpc::query::OperatorConnInfo,
                >::new())
                .add_service(query)
                .add_service(reflection)
                .serve_with_incoming_shutdown(ReceiverStream::new(incoming), stop.cancelled_owned())
                .await
                .map_err(|e| netwarden_shared::tls::error_chain(&e));
            ("grpc-query", result)
        });
    }
    let app = router(AppState::new(crate::rest::Services {
        store: store.clone(),
        metrics: metrics.clone(),
        telemetry: telemetry.clone(),
        engine: engine.clone(),
        auth: guard,
        retention: settings.retention.clone(),
    }));
    let (http_stop, http_limits, http_metrics) =
        (shutdown.clone(), settings.http_limits, metrics.clone());
    tasks.spawn(async move {
        let result =
            crate::rest::serve::serve(http_listener, app, http_limits, http_metrics, http_stop)
                .await;
        ("http", result)
    });

    if let Some(scrape) = &settings.scrape {
        let scraper = crate::cacti::Scraper::new(scrape, store.clone(), metrics.clone())
            .await?
            .with_engine(engine.clone());
        let stop = shutdown.clone();
        tracing::info!(
            sources = scrape.sources.len(),
            interval_secs = scrape.interval.as_secs(),
            "Cacti scraper started"
        );
        tasks.spawn(async move {
            scraper.run(stop).await;
            ("cacti-scrape", Ok(()))
        });
    }

    if let Some(kpi) = &settings.kpi {
        let job = crate::kpi::KpiJob::new(kpi.clone(), store.clone(), metrics.clone());
        let stop = shutdown.clone();
        tracing::info!(directory = %kpi.directory.display(), "KPI job started");
        tasks.spawn(async move {
            job.run(stop).await;
            ("kpi", Ok(()))
        });
    }

    if settings.telemetry_retention_days > 0 {
        let (store, stop, days) = (
            store.clone(),
            shutdown.clone(),
            settings.telemetry_retention_days,
        );
        tasks.spawn(async move {
            crate::telemetry::retention::run(store, days, stop).await;
            ("telemetry-retention", Ok(()))
        });
    }

    tracing::info!(%grpc_addr, %http_addr, query = ?query_addr, backend = store.backend(), "collector listening");
    Ok(Running {
        grpc_addr,
        http_addr,
        query_addr,
        store,
        metrics,
        shutdown,
        tasks,
    })
}

impl Running {
    /// Runs until the shutdown token is cancelled (or a server fails), then drains with a
    /// deadline. Returns an error if a server failed.
    pub async fn wait(mut self) -> Result<(), String> {
        let mut failure = None;
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            Some(joined) = self.tasks.join_next() => {
                failure = Some(describe(joined));
                self.shutdown.cancel();
            }
        }
        let drain = async {
            while let Some(joined) = self.tasks.join_next().await {
                if let Some(err) = describe(joined) {
                    failure.get_or_insert(Some(err));
                }
            }
        };
        if tokio::time::timeout(DRAIN_DEADLINE, drain).await.is_err() {
            tracing::warn!("connections still open after the drain deadline; exiting anyway");
        }
        tracing::info!("collector stopped");
        match failure.flatten() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// The notification dispatcher, when any channel is configured.
fn dispatcher(
    settings: &Settings,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    wake: Arc<tokio::sync::Notify>,
) -> Result<Option<Arc<crate::alert::dispatch::Dispatcher>>, StartError> {
    use crate::alert::dispatch::{Channel, DispatchSettings, Dispatcher, EmailChannel};
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    if let Some(email) = &settings.email {
        channels.push(Arc::new(EmailChannel {
            mailer: crate::alert::email::Mailer::new(email).map_err(StartError::Email)?,
            template: crate::alert::templates::Template::load(
                "anomaly",
                email.templates.as_deref(),
                crate::alert::templates::ANOMALY_FIELDS,
            )
            .map_err(|e| StartError::Email(e.to_string()))?,
        }));
    }
    if let Some(t) = &settings.telegram {
        channels.push(Arc::new(
            crate::alert::telegram::Telegram::new(t).map_err(StartError::Email)?,
        ));
    }
    if channels.is_empty() {
        return Ok(None);
    }
    let a = &settings.alerting;
    let holder = a
        .instance
        .clone()
        .unwrap_or_else(crate::storage::poi::lease_holder);
    Ok(Some(Arc::new(Dispatcher::new(
        store,
        metrics,
        DispatchSettings {
            holder,
            lease: Duration::from_secs(a.claim_lease_secs),
            retries: a.retries,
            backoff: Duration::from_millis(a.backoff_ms),
            clock: crate::alert::clock::system(),
        },
        channels,
        wake,
    ))))
}

fn describe(
    joined: Result<(&'static str, Result<(), String>), tokio::task::JoinError>,
) -> Option<String> {
    match joined {
        Ok((_, Ok(()))) => None,
        Ok((name, Err(err))) => Some(format!("{name} server failed: {err}")),
        Err(err) => Some(format!("a server task failed: {err}")),
    }
}
