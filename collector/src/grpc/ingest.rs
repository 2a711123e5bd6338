//! `netwarden.v1.IngestService`: one bidirectional stream per agent connection. Each batch is
//! validated, committed, and only then acknowledged.

use super::AgentConnInfo;
use crate::alert::watch::Watch;
use crate::config::RecordWindow;
use crate::error::{grpc_status, ErrorCode, ServiceError};
use crate::metrics::Metrics;
use crate::storage::{GroupCommitter, IngestOutcome, StoreError};
use futures::stream::{FuturesOrdered, StreamExt};
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

/// Batches of one stream that may be committing at once.
const PIPELINE_DEPTH: usize = 8;

/// Metadata key carrying the sequence of a refused batch, so an agent can set it aside.
pub const REJECTED_SEQUENCE_HEADER: &str = "x-netwarden-rejected-sequence";

pub struct Ingest {
    store: GroupCommitter,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    watch: Option<Watch>,
    window: RecordWindow,
}

impl Ingest {
    /// `watch` gets every newly stored batch's records for detection.
    pub fn new(
        store: GroupCommitter,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        watch: Option<Watch>,
    ) -> Self {
        Ingest {
            store,
            metrics,
            shutdown,
            watch,
            window: RecordWindow::default(),
        }
    }

    /// Records must fall in `window` around the collector's clock.
    pub fn with_window(mut self, window: RecordWindow) -> Self {
        self.window = window;
        self
    }
}

type AckStream = Pin<Box<dyn Stream<Item = Result<Ack, Status>> + Send>>;

/// Why a stream or a batch was refused, each with its shared code.
#[derive(Debug, thiserror::Error)]
enum IngestError {
    #[error("no verified client certificate")]
    NoClientCertificate,
    #[error("batch {sequence}: {problem}")]
    Invalid { sequence: u64, problem: String },
    #[error("batch {sequence}: records[{index}].observed_at_unix_ms: {why}")]
    OutsideWindow {
        sequence: u64,
        index: usize,
        why: String,
    },
    #[error(
        "batch {sequence} claims agent {claimed:?} but the client certificate is for {agent:?}"
    )]
    ForeignIdentity {
        sequence: u64,
        claimed: String,
        agent: netwarden_shared::AgentId,
    },
    #[error("the collector could not store the batch; resend it later")]
    StoreUnavailable,
    /// The same batch would fail the same way: refused, so the agent sets it aside instead of
    /// resending it in front of everything behind it.
    #[error("batch {sequence}: the database refused it: {source}")]
    RefusedByStore { sequence: u64, source: StoreError },
}

impl ServiceError for IngestError {
    fn error_code(&self) -> ErrorCode {
        match self {
            IngestError::NoClientCertificate => ErrorCode::Unauthenticated,
            IngestError::Invalid { .. }
            | IngestError::OutsideWindow { .. }
            | IngestError::RefusedByStore { .. } => ErrorCode::InvalidArgument,
            IngestError::ForeignIdentity { .. } => ErrorCode::PermissionDenied,
            IngestError::StoreUnavailable => ErrorCode::Unavailable,
        }
    }
}

impl IngestError {
    /// The refused batch, which the status names in a header so the agent sets it aside.
    fn sequence(&self) -> Option<u64> {
        match self {
            IngestError::Invalid { sequence, .. }
            | IngestError::OutsideWindow { sequence, .. }
            | IngestError::ForeignIdentity { sequence, .. }
            | IngestError::RefusedByStore { sequence, .. } => Some(*sequence),
            IngestError::NoClientCertificate | IngestError::StoreUnavailable => None,
        }
    }
}

impl From<IngestError> for Status {
    fn from(err: IngestError) -> Self {
        let mut status = grpc_status(&err);
        if let Some(value) = err.sequence().and_then(|s| s.to_string().parse().ok()) {
            status
                .metadata_mut()
                .insert(REJECTED_SEQUENCE_HEADER, value);
        }
        status
    }
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
            .ok_or(IngestError::NoClientCertificate)?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(32);
        let worker = StreamWorker {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            shutdown: self.shutdown.clone(),
            info: info.clone(),
            watch: self.watch.clone(),
            window: self.window,
        };
        let span = tracing::info_span!("ingest_stream", agent = %info.agent, peer = %info.remote);
        tokio::spawn(worker.run(inbound, tx).instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct StreamWorker {
    store: GroupCommitter,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    info: AgentConnInfo,
    watch: Option<Watch>,
    window: RecordWindow,
}

impl StreamWorker {
    async fn run(self, mut inbound: Streaming<Batch>, tx: mpsc::Sender<Result<Ack, Status>>) {
        self.metrics.streams.inc();
        tracing::info!("agent stream opened");
        // Several batches of one stream may be committing at once (the agent keeps a window in
        // flight); acks still go out in order, each only after its own batch committed.
        let mut pending = FuturesOrdered::new();
        let mut reading = true;
        loop {
            tokio::select! {
                // A stop request ends reading, never a batch already received: those are
                // committed and acknowledged below before the stream closes.
                _ = self.shutdown.cancelled(), if reading => reading = false,
                message = inbound.message(), if reading && pending.len() < PIPELINE_DEPTH => {
                    match message {
                        Ok(Some(batch)) => pending.push_back(self.handle(batch)),
                        Ok(None) => reading = false,
                        Err(status) => {
                            reading = false;
                            self.refused_message(status, &tx).await;
                        }
                    }
                }
                Some(result) = pending.next() => {
                    let failed = result.is_err();
                    if tx.send(result).await.is_err() || failed {
                        break;
                    }
                }
                else => break,
            }
        }
        self.metrics.streams.dec();
        tracing::info!("agent stream closed");
    }

    /// A message that could not be decoded ends the stream; an oversized one is counted.
    async fn refused_message(&self, status: Status, tx: &mpsc::Sender<Result<Ack, Status>>) {
        let reason = match status.code() {
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => "too_large",
            _ => "decode",
        };
        if reason == "too_large" || status.code() == tonic::Code::Internal {
            self.metrics
                .rejected
                .get_or_create(&Metrics::label("reason", reason))
                .inc();
            tracing::warn!(reason, "refused a message: {}", status.message());
            let _ = tx.send(Err(status)).await;
        } else {
            tracing::info!("stream ended: {}", status.message());
        }
    }

    async fn handle(&self, wire: Batch) -> Result<Ack, Status> {
        let sequence = wire.sequence;
        let agent = &self.info.agent;
        let batch = netwarden_proto::batch_from_wire(wire).map_err(|err| {
            self.metrics
                .rejected
                .get_or_create(&Metrics::label("reason", "invalid"))
                .inc();
            tracing::warn!(sequence, "refused an invalid batch: {err}");
            IngestError::Invalid {
                sequence,
                problem: err.to_string(),
            }
        })?;
        if let Some((index, why)) = self
            .window
            .first_outside(&batch.records, chrono::Utc::now())
        {
            self.metrics
                .rejected
                .get_or_create(&Metrics::label("reason", "clock"))
                .inc();
            tracing::warn!(
                sequence,
                "refused a batch with a record outside the time window: records[{index}]: {why}"
            );
            return Err(IngestError::OutsideWindow {
                sequence,
                index,
                why: why.to_string(),
            }
            .into());
        }
        if let Some(claimed) = batch
            .claimed_agent_id
            .as_deref()
            .filter(|c| *c != agent.as_str())
        {
            self.metrics
                .rejected
                .get_or_create(&Metrics::label("reason", "identity"))
                .inc();
            tracing::warn!(
                sequence,
                claimed,
                "refused a batch claiming another agent's identity"
            );
            return Err(IngestError::ForeignIdentity {
                sequence,
                claimed: claimed.to_string(),
                agent: agent.clone(),
            }
            .into());
        }
        let status = batch.status;
        // What was stored goes on to detection and the network metrics.
        let committed = batch.records.clone();
        let started = std::time::Instant::now();
        let outcome = self
            .store
            .ingest(agent.clone(), batch)
            .await
            .map_err(|err| {
                if err.is_retryable() {
                    self.metrics.rejected.get_or_create(&Metrics::label("reason", "storage")).inc();
                    tracing::error!(sequence, error = %err, "could not store a batch; the agent will resend it");
                    IngestError::StoreUnavailable
                } else {
                    // The same batch would fail the same way: refused, so the agent sets it
                    // aside instead of resending it in front of everything behind it.
                    self.metrics.rejected.get_or_create(&Metrics::label("reason", "refused_by_store")).inc();
                    tracing::error!(sequence, error = %err, "the database refused a batch; the agent will set it aside");
                    IngestError::RefusedByStore { sequence, source: err }
                }
            })?;
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        let agent_label = Metrics::label("agent", agent.as_str());
        self.metrics
            .agent_backlog
            .get_or_create(&agent_label)
            .set(status.buffer_backlog);
        self.metrics
            .agent_dropped
            .get_or_create(&agent_label)
            .set(status.dropped_total);
        self.metrics
            .agent_last_seen
            .get_or_create(&agent_label)
            .set(chrono::Utc::now().timestamp());
        Ok(match outcome {
            IngestOutcome::Stored { records } => {
                self.metrics
                    .batches
                    .get_or_create(&Metrics::label("outcome", "stored"))
                    .inc();
                self.metrics.records.inc_by(u64::from(records));
                tracing::debug!(sequence, records, "batch stored");
                // Newest per series, so a batch sent late changes nothing it should not.
                self.metrics.network.observe(agent.as_str(), &committed);
                if let Some(watch) = &self.watch {
                    watch.committed(agent.clone(), committed).await;
                }
                Ack {
                    sequence,
                    stored: records,
                    duplicate: false,
                }
            }
            IngestOutcome::Duplicate => {
                self.metrics
                    .batches
                    .get_or_create(&Metrics::label("outcome", "duplicate"))
                    .inc();
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
