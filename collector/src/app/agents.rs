//! The agents' port: mutual TLS (refusing revoked certificates), the connection budget, the
//! ingest and telemetry gRPC services, the group committer behind ingest, and the watcher that
//! closes a revoked agent's open streams.

use super::alerting::Alerting;
use super::shared::{bind, Shared};
use super::telemetry::Telemetry;
use super::{Stage, StartError, Tasks};
use crate::config::Settings;
use crate::grpc::conns::{CountStreams, Registry};
use crate::grpc::incoming::{accept_loop, AcceptTask, AgentStream};
use crate::grpc::ingest::Ingest;
use crate::grpc::plan::{PlanFeed, PlanHub, PlanServer};
use crate::grpc::AgentConnInfo;
use crate::metrics::Metrics;
use crate::storage::{GroupCommitter, Store};
use netwarden_proto::v1::ingest_service_server::IngestServiceServer;
use netwarden_proto::v1::plan_service_server::PlanServiceServer;
use netwarden_proto::v1::telemetry_service_server::TelemetryServiceServer;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

pub struct Agents {
    pub addr: SocketAddr,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
    conns: Registry,
    revocations: crate::grpc::revoke::Revocations,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    commit: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Built with the stop signal of the listeners, which is only known at spawn.
    ingest: Box<dyn FnOnce(CancellationToken) -> IngestServiceServer<Ingest> + Send>,
    telemetry: TelemetryServiceServer<crate::grpc::telemetry::Telemetry>,
    plan: PlanHub,
    plan_feed: PlanFeed,
}

impl Agents {
    pub async fn build(
        settings: &Settings,
        shared: &Shared,
        alerting: &mut Alerting,
        telemetry: &Telemetry,
    ) -> Result<Self, StartError> {
        let tls = {
            let revocations = shared.revocations.clone();
            netwarden_shared::tls::server_config_refusing(
                &settings.tls,
                Arc::new(move |der: &[u8]| revocations.is_revoked_der(der)),
            )?
        };
        let (listener, addr) = bind("gRPC", settings.grpc_listen).await?;
        let (committer, commit) = GroupCommitter::new(shared.store.clone());
        let (metrics, watch, window, max_message_bytes) = (
            shared.metrics.clone(),
            alerting.watch.take(),
            settings.record_window,
            settings.max_message_bytes,
        );
        let ingest = Box::new(move |stop: CancellationToken| {
            IngestServiceServer::new(
                Ingest::new(committer, metrics, stop, watch).with_window(window),
            )
            .max_decoding_message_size(max_message_bytes)
        });
        let telemetry = TelemetryServiceServer::new(crate::grpc::telemetry::Telemetry::new(
            telemetry.committer.clone(),
            shared.guard.clone(),
            settings.telemetry_grpc_agents.clone(),
        ))
        .max_decoding_message_size(settings.max_message_bytes);
        let (plan, plan_feed) = PlanHub::new(
            shared.store.clone(),
            shared.metrics.clone(),
            shared.plan_saved.clone(),
        );
        Ok(Agents {
            addr,
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
            handshake_timeout: settings.handshake_timeout,
            conns: Registry::new("grpc", settings.grpc_limits, shared.metrics.clone()),
            revocations: shared.revocations.clone(),
            store: shared.store.clone(),
            metrics: shared.metrics.clone(),
            commit: Box::pin(commit),
            ingest,
            telemetry,
            plan,
            plan_feed,
        })
    }

    pub fn spawn(self, tasks: &mut Tasks) {
        let stop = tasks.stop_of(Stage::Accept);
        let (incoming, accept): (_, AcceptTask) = accept_loop(
            self.listener,
            self.acceptor,
            self.handshake_timeout,
            self.metrics.clone(),
            self.conns.clone(),
            self.revocations.clone(),
            stop.child_token(),
        );
        tasks.spawn_infallible(Stage::Accept, "grpc-accept", |_| accept);
        let plan_metrics = self.metrics.clone();
        let (store, revocations, conns, metrics) =
            (self.store, self.revocations, self.conns, self.metrics);
        tasks.spawn_infallible(Stage::Accept, "revocations", |stop| {
            crate::grpc::revoke::run(store, revocations, conns, metrics, stop)
        });
        let feed = self.plan_feed;
        tasks.spawn_infallible(Stage::Accept, "plan-feed", |stop| feed.run(stop));
        let plan = PlanServiceServer::new(PlanServer::new(self.plan, plan_metrics, stop.clone()));
        let (ingest, telemetry) = ((self.ingest)(stop), self.telemetry);
        tasks.spawn(Stage::Accept, "grpc", |stop| {
            serve(incoming, ingest, telemetry, plan, stop)
        });
        // Ends once the ingest service (and so every handle) is gone: after the listener.
        let commit = self.commit;
        tasks.spawn_infallible(Stage::Commit, "ingest-commit", |_| commit);
    }
}

async fn serve(
    incoming: tokio::sync::mpsc::Receiver<std::io::Result<AgentStream>>,
    ingest: IngestServiceServer<Ingest>,
    telemetry: TelemetryServiceServer<crate::grpc::telemetry::Telemetry>,
    plan: PlanServiceServer<PlanServer>,
    stop: CancellationToken,
) -> Result<(), String> {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(CountStreams::<AgentConnInfo>::new())
        .add_service(ingest)
        .add_service(telemetry)
        .add_service(plan)
        .serve_with_incoming_shutdown(ReceiverStream::new(incoming), stop.cancelled_owned())
        .await
        .map_err(|e| netwarden_shared::tls::error_chain(&e))
}
