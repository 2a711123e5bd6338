//! Assembles a running collector. Each part is first built (the database opened, the ports
//! bound, every service constructed; nothing runs yet), then [`Built::spawn`] starts every task
//! through [`Tasks`], which names it, gives it a span and stops the stages in order.

mod agents;
mod alerting;
mod http;
mod jobs;
mod query;
mod shared;
mod tasks;
mod telemetry;

pub use tasks::{Stage, Tasks, DRAIN_DEADLINE};

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::storage::{self, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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

/// Every part of the collector, built and not yet running.
pub struct Built {
    shared: shared::Shared,
    alerting: alerting::Alerting,
    telemetry: telemetry::Telemetry,
    agents: agents::Agents,
    query: Option<query::Query>,
    http: http::Http,
    jobs: jobs::Jobs,
}

/// Builds every part: opens and migrates the database, binds the listeners.
pub async fn build(settings: &Settings) -> Result<Built, StartError> {
    let shared = shared::Shared::build(settings).await?;
    let mut alerting = alerting::Alerting::build(settings, &shared)?;
    let telemetry = telemetry::Telemetry::build(settings, &shared)?;
    let agents = agents::Agents::build(settings, &shared, &mut alerting, &telemetry).await?;
    let query = query::Query::build(settings, &shared).await?;
    let http = http::Http::build(settings, &shared, &telemetry).await?;
    let jobs = jobs::Jobs::build(settings, &shared, &alerting).await?;
    Ok(Built {
        shared,
        alerting,
        telemetry,
        agents,
        query,
        http,
        jobs,
    })
}

/// Builds and spawns.
pub async fn start(
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    Ok(build(settings).await?.spawn(shutdown))
}

impl Built {
    /// Starts every task; `shutdown` begins the drain.
    pub fn spawn(self, shutdown: CancellationToken) -> Running {
        let mut tasks = Tasks::new(shutdown);
        let running = Running {
            grpc_addr: self.agents.addr,
            http_addr: self.http.addr,
            query_addr: self.query.as_ref().map(|q| q.addr),
            store: self.shared.store.clone(),
            metrics: self.shared.metrics.clone(),
            tasks: None,
        };
        tracing::info!(
            grpc_addr = %running.grpc_addr,
            http_addr = %running.http_addr,
            query = ?running.query_addr,
            backend = self.shared.store.backend(),
            "collector listening"
        );
        self.agents.spawn(&mut tasks);
        if let Some(query) = self.query {
            query.spawn(&mut tasks);
        }
        self.http.spawn(&mut tasks);
        self.jobs.spawn(&mut tasks);
        self.telemetry.spawn(&mut tasks);
        self.alerting.spawn(&mut tasks);
        Running {
            tasks: Some(tasks),
            ..running
        }
    }
}

/// A started collector.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The operators' gRPC query port, when served.
    pub query_addr: Option<SocketAddr>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    tasks: Option<Tasks>,
}

impl Running {
    /// Runs until shutdown is asked for (or a task fails), then drains stage by stage within
    /// [`DRAIN_DEADLINE`]. Returns an error if a task failed.
    pub async fn wait(self) -> Result<(), String> {
        match self.tasks {
            Some(tasks) => tasks.wait().await,
            None => Ok(()),
        }
    }
}
