//! Follows the collector's plan over the agent's mutual-TLS connection (`PlanService.Watch`),
//! keeps each version it gets in the buffer's SQLite file, and hands it on. Reconnects with
//! backoff; an older collector without the service is asked again every ten minutes.

use crate::buffer::SharedBuffer;
use crate::uplink::Backoff;
use netwarden_plan::AgentPlan;
use netwarden_proto::v1::plan_service_client::PlanServiceClient;
use netwarden_proto::v1::{self, WatchPlanRequest};
use netwarden_shared::tls::{connect_channel, error_chain, ClientConfig};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A plan is far smaller than this; the bound keeps a broken peer from exhausting memory.
const MAX_PLAN_BYTES: usize = 64 * 1024 * 1024;
/// How long to wait before asking a collector that has no plan service again.
const UNSUPPORTED_RETRY: Duration = Duration::from_secs(600);

pub struct PlanPull {
    pub url: String,
    pub server_name: Option<String>,
    pub tls: Arc<ClientConfig>,
    pub connect_timeout: Duration,
    pub buffer: SharedBuffer,
    pub plans: watch::Sender<AgentPlan>,
}

enum Ended {
    /// Try again after a backoff.
    Retry(String),
    /// The collector has no plan service.
    Unsupported,
}

/// The plan kept in the buffer file, if there is one that can be read.
pub async fn cached(buffer: &SharedBuffer) -> Option<AgentPlan> {
    let (version, body) = match buffer.with(|b| b.cached_plan()).await {
        Ok(found) => found?,
        Err(err) => {
            tracing::error!(error = %err, "cannot read the cached plan; waiting for the collector's");
            return None;
        }
    };
    let decoded = v1::AgentPlan::decode(body.as_slice())
        .map_err(|e| e.to_string())
        .and_then(|wire| netwarden_proto::agent_plan_from_wire(wire).map_err(|e| e.to_string()));
    match decoded {
        Ok(plan) => Some(plan),
        Err(err) => {
            tracing::error!(version, error = %err, "the cached plan cannot be read; waiting for the collector's");
            None
        }
    }
}

impl PlanPull {
    /// Runs until `stop`. `known` is the version the agent runs now.
    pub async fn run(self, mut known: u64, stop: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut told_unsupported = false;
        loop {
            let wait = match self.session(&mut known, &stop, &mut backoff).await {
                None => return,
                Some(Ended::Retry(why)) => {
                    tracing::warn!(error = %why, "plan stream ended; reconnecting");
                    backoff.next_delay()
                }
                Some(Ended::Unsupported) => {
                    if !told_unsupported {
                        tracing::info!("the collector serves no plan (an older version); running the local configuration");
                        told_unsupported = true;
                    }
                    UNSUPPORTED_RETRY
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One connection's stream; `None` when stopped.
    async fn session(
        &self,
        known: &mut u64,
        stop: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Option<Ended> {
        let channel = tokio::select! {
            _ = stop.cancelled() => return None,
            channel = connect_channel(&self.url, self.server_name.as_deref(), self.tls.clone(), self.connect_timeout) => channel,
        };
        let channel = match channel {
            Ok(channel) => channel,
            Err(err) => return Some(Ended::Retry(error_chain(&err))),
        };
        let mut client = PlanServiceClient::new(channel).max_decoding_message_size(MAX_PLAN_BYTES);
        let request = WatchPlanRequest {
            known_version: *known,
        };
        let mut stream = tokio::select! {
            _ = stop.cancelled() => return None,
            answer = client.watch(request) => match answer {
                Ok(response) => response.into_inner(),
                Err(status) if status.code() == tonic::Code::Unimplemented => return Some(Ended::Unsupported),
                Err(status) => return Some(Ended::Retry(status.message().to_string())),
            },
        };
        tracing::debug!(known = *known, "following the collector's plan");
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return None,
                message = stream.message() => message,
            };
            let wire = match message {
                Ok(Some(wire)) => wire,
                Ok(None) => return Some(Ended::Retry("the collector closed it".into())),
                Err(status) => return Some(Ended::Retry(status.message().to_string())),
            };
            backoff.reset();
            let body = wire.encode_to_vec();
            let plan = match netwarden_proto::agent_plan_from_wire(wire) {
                Ok(plan) => plan,
                Err(err) => {
                    // Not kept and not run: the plan in force stays.
                    tracing::error!(error = %err, "the collector sent a plan this agent cannot read");
                    continue;
                }
            };
            let version = plan.version;
            if let Err(err) = self.buffer.with(move |b| b.save_plan(version, &body)).await {
                tracing::error!(error = %err, "cannot keep the plan; it runs, but a restart without the collector would not have it");
            }
            tracing::info!(
                version,
                targets = plan.target_count(),
                discovery = plan.discovery.len(),
                speedtests = plan.speedtests.len(),
                "plan received"
            );
            *known = version;
            self.plans.send_replace(plan);
        }
    }
}
