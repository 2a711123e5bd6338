//! `netwarden.v1.IngestService`: one bidirectional stream per agent connection. Each batch is
//! validated, committed, and only then acknowledged.

use super::AgentConnInfo;
use crate::metrics::Metrics;
use crate::storage::{IngestOutcome, Store};
use netwarden_proto::v1::ingest_service_server::IngestService;
use netwarden_proto::v1::{Ack, Batch};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

/// Metadata key carrying the sequence of a refused batch, so an agent can set it aside.
pub const REJECTED_SEQUENCE_HEADER: &str = "x-netwarden-rejected-sequence";

pub struct Ingest {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl Ingest {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Self {
        Ingest {
            store,
            metrics,
            shutdown,
        }
    }
}

type AckStream = Pin<Box<dyn Stream<Item = Result<Ack, Status>> + Send>>;

fn rejected(code: tonic::Code, sequence: u64, message: String) -> Status {
    let mut status = Status::new(code, message);
    if let Ok(value) = sequence.to_string().parse() {
        status.metadata_mut().insert(REJECTED_SEQUENCE_HEADER, value);
    }
    status
}

#[tonic::async_trait]
impl IngestService for Ingest {
    type StreamStream = AckStream;

    async fn stream(
        &self,
        request: Request<Streaming<Batch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let info = request
            .extensions()
            .get::<AgentConnInfo>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no verified client certificate"))?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(32);
        let worker = StreamWorker {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            shutdown: self.shutdown.clone(),
            info: info.clone(),
        };
        let span = tracing::info_span!("ingest_stream", agent = %info.agent, peer = %info.remote);
        tokio::spawn(worker.run(inbound, tx).instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct StreamWorker {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    info: AgentConnInfo,
}

impl StreamWorker {
    async fn run(self, mut inbound: Streaming<Batch>, tx: mpsc::Sender<Result<Ack, Status>>) {
        self.metrics.streams.inc();
        tracing::info!("agent stream opened");
        loop {
            // Between batches is the only place a stop request is honoured, so a batch that
            // was received is always committed and acknowledged.
            let message = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                message = inbound.message() => message,
            };
            let batch = match message {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(status) => {
                    let reason = match status.code() {
                        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => "too_large",
                        _ => "decode",
                    };
                    if reason == "too_large" || status.code() == tonic::Code::Internal {
                        self.metrics.rejected.get_or_create(&Metrics::label("reason", reason)).inc();
                        tracing::warn!(reason, "refused a message: {}", status.message());
                        let _ = tx.send(Err(status)).await;
                    } else {
                        tracing::info!("stream ended: {}", status.message());
                    }
                    break;
                }
            };
            match self.handle(batch).await {
                Ok(ack) => {
                    if tx.send(Ok(ack)).await.is_err() {
                        break;
                    }
                }
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    break;
                }
            }
        }
        self.metrics.streams.dec();
        tracing::info!("agent stream closed");
    }

    async fn handle(&self, wire: Batch) -> Result<Ack, Status> {
        let sequence = wire.sequence;
        let agent = &self.info.agent;
        let batch = netwarden_proto::batch_from_wire(wire).map_err(|err| {
            self.metrics.rejected.get_or_create(&Metrics::label("reason", "invalid")).inc();
            tracing::warn!(sequence, "refused an invalid batch: {err}");
            rejected(
                tonic::Code::InvalidArgument,
                sequence,
                format!("batch {sequence}: {err}"),
            )
        })?;
        if let Some(claimed) = batch.claimed_agent_id.as_deref().filter(|c| *c != agent.as_str()) {
            self.metrics.rejected.get_or_create(&Metrics::label("reason", "identity")).inc();
            tracing::warn!(sequence, claimed, "refused a batch claiming another agent's identity");
            return Err(rejected(
                tonic::Code::PermissionDenied,
                sequence,
                format!(
                    "batch {sequence} claims agent {claimed:?} but the client certificate is for {agent:?}"
                ),
            ));
        }
        let started = std::time::Instant::now();
        let outcome = self
            .store
            .ingest(agent, &batch, chrono::Utc::now())
            .await
            .map_err(|err| {
                self.metrics.rejected.get_or_create(&Metrics::label("reason", "storage")).inc();
                tracing::error!(sequence, error = %err, "could not store a batch; the agent will resend it");
                Status::unavailable("the collector could not store the batch; resend it later")
            })?;
        self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        let agent_label = Metrics::label("agent", agent.as_str());
        self.metrics.agent_backlog.get_or_create(&agent_label).set(batch.status.buffer_backlog);
        self.metrics.agent_dropped.get_or_create(&agent_label).set(batch.status.dropped_total);
        Ok(match outcome {
            IngestOutcome::Stored { records } => {
                self.metrics.batches.get_or_create(&Metrics::label("outcome", "stored")).inc();
                self.metrics.records.inc_by(u64::from(records));
                tracing::debug!(sequence, records, "batch stored");
                Ack {
                    sequence,
                    stored: records,
                    duplicate: false,
                }
            }
            IngestOutcome::Duplicate => {
                self.metrics.batches.get_or_create(&Metrics::label("outcome", "duplicate")).inc();
                tracing::debug!(sequence, "duplicate batch acknowledged");
                Ack {
                    sequence,
                    stored: 0,
                    duplicate: true,
                }
            }
        })
    }
}
