//! `netwarden.v1.TelemetryService`: circuit telemetry batches over the mutual-TLS gRPC port,
//! checked like the REST batch (all or nothing, the first bad item named) and acknowledged
//! once committed.

use crate::error::ApiError;
use crate::telemetry::sample::{self, MAX_BATCH};
use crate::telemetry::{TelemetryCommitter, TelemetrySample};
use chrono::{DateTime, Utc};
use netwarden_proto::v1::telemetry_service_server::TelemetryService;
use netwarden_proto::v1::{TelemetryAck, TelemetryBatch};
use std::pin::Pin;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

pub struct Telemetry {
    committer: TelemetryCommitter,
    guard: std::sync::Arc<crate::auth::Guard>,
    agents: std::collections::HashSet<String>,
}

impl Telemetry {
    /// `agents` may post without a token; anyone else needs an operator token.
    pub fn new(
        committer: TelemetryCommitter,
        guard: std::sync::Arc<crate::auth::Guard>,
        agents: Vec<String>,
    ) -> Self {
        Telemetry {
            committer,
            guard,
            agents: agents.into_iter().collect(),
        }
    }

    /// Telemetry drives customer emails: an agent certificate alone is not enough unless the
    /// agent is listed in `[telemetry] grpc_agents`; otherwise an operator token is needed,
    /// as on REST.
    async fn permitted<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let agent = request
            .extensions()
            .get::<crate::grpc::AgentConnInfo>()
            .map(|info| info.agent.as_str());
        if agent.is_some_and(|a| self.agents.contains(a)) {
            return Ok(());
        }
        let presented = request
            .metadata()
            .get("authorization")
            .map(|value| crate::auth::guard::bearer_token(value.to_str().ok()));
        self.guard
            .authorise(crate::auth::Role::Operator, presented)
            .await
            .map(|_| ())
            .map_err(|refusal| {
                crate::auth::guard::Refusal {
                    error: ApiError::new(
                        refusal.error.code,
                        format!(
                            "{}; telemetry over gRPC needs an operator token (authorization: Bearer ...) or the agent {:?} listed in [telemetry] grpc_agents",
                            refusal.error.message,
                            agent.unwrap_or("?")
                        ),
                    ),
                    retry_after: refusal.retry_after,
                }
                .into()
            })
    }
}

/// A wire batch as samples, or the first problem (item and field named).
pub fn from_wire(
    batch: TelemetryBatch,
    now: DateTime<Utc>,
) -> Result<Vec<TelemetrySample>, Status> {
    if batch.samples.is_empty() {
        return Err(ApiError::invalid("samples: the batch holds none").into());
    }
    if batch.samples.len() > MAX_BATCH {
        return Err(
            ApiError::invalid(format!("samples: more than {MAX_BATCH}; split the batch")).into(),
        );
    }
    batch
        .samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let at = match s.timestamp_ms {
                0 => None,
                ms => Some(DateTime::from_timestamp_millis(ms).ok_or_else(|| {
                    ApiError::invalid(format!("samples[{i}].timestamp_ms: {ms} is out of range"))
                })?),
            };
            sample::check(&s.circuit_id, s.utilization_mbps, at, now).map_err(|e| {
                ApiError::invalid(format!("samples[{i}].{}: {}", e.field, e.message)).into()
            })
        })
        .collect()
}

async fn record(
    committer: &TelemetryCommitter,
    batch: TelemetryBatch,
) -> Result<TelemetryAck, Status> {
    let samples = from_wire(batch, Utc::now())?;
    let count = samples.len() as u64;
    let unknown = committer
        .save(samples)
        .await
        .map_err(|e| Status::from(crate::error::ApiError::from(e)))?;
    Ok(TelemetryAck {
        recorded: count,
        unknown_circuits: unknown.into_iter().collect(),
    })
}

type AckStream = Pin<Box<dyn Stream<Item = Result<TelemetryAck, Status>> + Send>>;

#[tonic::async_trait]
impl TelemetryService for Telemetry {
    async fn record(
        &self,
        request: Request<TelemetryBatch>,
    ) -> Result<Response<TelemetryAck>, Status> {
        self.permitted(&request).await?;
        record(&self.committer, request.into_inner())
            .await
            .map(Response::new)
    }

    type StreamStream = AckStream;

    async fn stream(
        &self,
        request: Request<Streaming<TelemetryBatch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        self.permitted(&request).await?;
        let mut inbound = request.into_inner();
        let committer = self.committer.clone();
        let outbound = async_stream(move |tx| async move {
            while let Some(next) = inbound.next().await {
                let reply = match next {
                    Ok(batch) => record(&committer, batch).await,
                    Err(status) => Err(status),
                };
                let stop = reply.is_err();
                if tx.send(reply).await.is_err() || stop {
                    break;
                }
            }
        });
        Ok(Response::new(outbound))
    }
}

/// A stream fed by a task through a small channel (answers go out in order).
fn async_stream<F, Fut>(body: F) -> AckStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<TelemetryAck, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
