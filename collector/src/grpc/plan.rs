//! `netwarden.v1.PlanService`: each connected agent's share of the fleet plan, sent when its
//! stream opens and again whenever a saved version changes what that agent runs.
//!
//! One [`PlanHub`] per collector watches the database for a new version (a cheap read of the
//! newest version number every second, so a plan saved through any collector on the same
//! database reaches agents on every collector, and at once after a save through this one),
//! parses it once and hands it to every stream.

use super::AgentConnInfo;
use crate::error::{grpc_status, ErrorCode, ServiceError};
use crate::metrics::Metrics;
use crate::storage::Store;
use netwarden_plan::{AgentPlan, Plan, Resolver};
use netwarden_proto::v1::plan_service_server::PlanService;
use netwarden_proto::v1::{self, WatchPlanRequest};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// How often the hub reads the newest version number.
pub const PLAN_POLL: Duration = Duration::from_secs(1);

/// The newest plan, indexed once for every stream (version 0: no plan saved). `None` while
/// none is loaded, or while the newest cannot be read: then streams send nothing and agents
/// keep what they run, rather than being handed an older version as if it were current.
type Snapshot = Option<Arc<Resolver>>;

/// The newest plan, shared by every agent stream of this collector.
#[derive(Clone)]
pub struct PlanHub {
    rx: watch::Receiver<Snapshot>,
}

/// The other end of a [`PlanHub`]: [`PlanFeed::run`] keeps it current.
pub struct PlanFeed {
    tx: watch::Sender<Snapshot>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    saved: Arc<tokio::sync::Notify>,
}

impl PlanHub {
    /// `saved` is rung when this collector saves a version: the feed looks at once.
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        saved: Arc<tokio::sync::Notify>,
    ) -> (PlanHub, PlanFeed) {
        let (tx, rx) = watch::channel(None);
        (
            PlanHub { rx },
            PlanFeed {
                tx,
                store,
                metrics,
                saved,
            },
        )
    }
}

impl PlanFeed {
    /// Polls until `stop`. A version that cannot be read keeps the one before in force (and
    /// says so every poll), rather than emptying every agent.
    pub async fn run(self, stop: CancellationToken) {
        let mut loaded: Option<i64> = None;
        let mut ticker = tokio::time::interval(PLAN_POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
                _ = self.saved.notified() => {}
            }
            let head = match self.store.plan_head().await {
                Ok(head) => head,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the plan's version; agents keep the plan they have");
                    continue;
                }
            };
            if loaded == Some(head) {
                continue;
            }
            let plan = match self.load(head).await {
                Ok(plan) => plan,
                Err(err) => {
                    tracing::error!(version = head, error = %err, "cannot load the plan; agents keep the plan they have");
                    // Once: streams wake for a change, not for every failed look.
                    self.tx.send_if_modified(|now| now.take().is_some());
                    continue;
                }
            };
            tracing::info!(
                version = head,
                targets = plan.targets.len(),
                "plan version in force"
            );
            let version = u64::try_from(head).unwrap_or(0);
            // Indexing a large plan is CPU work: off the runtime that serves ingest.
            let resolver =
                tokio::task::spawn_blocking(move || Resolver::new(Arc::new(plan), version)).await;
            let Ok(resolver) = resolver else {
                continue;
            };
            self.metrics.plan_version.set(head);
            self.metrics.network.set_plan(&resolver);
            loaded = Some(head);
            self.tx.send_replace(Some(Arc::new(resolver)));
        }
    }

    async fn load(&self, head: i64) -> Result<Plan, String> {
        if head == 0 {
            return Ok(Plan::default());
        }
        let version = self
            .store
            .plan_version(head)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the version vanished".to_string())?;
        netwarden_plan::from_json(&version.document).map_err(|e| e.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
enum PlanError {
    #[error("no verified client certificate")]
    NoClientCertificate,
}

impl ServiceError for PlanError {
    fn error_code(&self) -> ErrorCode {
        match self {
            PlanError::NoClientCertificate => ErrorCode::Unauthenticated,
        }
    }
}

pub struct PlanServer {
    hub: PlanHub,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

impl PlanServer {
    pub fn new(hub: PlanHub, metrics: Arc<Metrics>, stop: CancellationToken) -> Self {
        PlanServer { hub, metrics, stop }
    }
}

type PlanStream = Pin<Box<dyn Stream<Item = Result<v1::AgentPlan, Status>> + Send>>;

#[tonic::async_trait]
impl PlanService for PlanServer {
    type WatchStream = PlanStream;

    async fn watch(
        &self,
        request: Request<WatchPlanRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let info = request
            .extensions()
            .get::<AgentConnInfo>()
            .cloned()
            .ok_or_else(|| grpc_status(&PlanError::NoClientCertificate))?;
        let known = request.into_inner().known_version;
        let (tx, rx) = mpsc::channel(2);
        let span = tracing::info_span!("plan_stream", agent = %info.agent, peer = %info.remote);
        let (hub, metrics, stop) = (self.hub.clone(), self.metrics.clone(), self.stop.clone());
        tokio::spawn(
            async move {
                metrics.plan_streams.inc();
                follow(hub, info.agent.to_string(), known, tx, stop).await;
                metrics.plan_streams.dec();
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Sends `agent` its share at once and after every version that changes it, until the agent
/// goes or the collector stops. The first is sent even when the agent says it runs that version
/// already: a version number alone does not prove the agent's copy is its share (a cloned
/// buffer file, a database restored with its numbers starting again), and an agent applies an
/// unchanged share without restarting anything.
async fn follow(
    mut hub: PlanHub,
    agent: String,
    known: u64,
    tx: mpsc::Sender<Result<v1::AgentPlan, Status>>,
    stop: CancellationToken,
) {
    let mut sent: Option<AgentPlan> = None;
    tracing::debug!(known, "agent follows the plan");
    loop {
        let snapshot = hub.rx.borrow_and_update().clone();
        if let Some(resolver) = snapshot {
            let mine = resolver.resolve(&agent);
            let send = match &sent {
                None => true,
                Some(before) => !before.same_work(&mine),
            };
            if send {
                tracing::info!(
                    version = mine.version,
                    targets = mine.target_count(),
                    discovery = mine.discovery.len(),
                    speedtests = mine.speedtests.len(),
                    "plan sent to the agent"
                );
                let wire = netwarden_proto::agent_plan_to_wire(&mine);
                if tx.send(Ok(wire)).await.is_err() {
                    return;
                }
            }
            sent = Some(mine);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tx.closed() => return,
            changed = hub.rx.changed() => if changed.is_err() { return },
        }
    }
}
