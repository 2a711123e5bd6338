//! Streams buffered records to the collector over mutual-TLS gRPC. Batches go out with a window
//! of unacknowledged ones in flight; each ack deletes its batch from the buffer. On any failure
//! the connection is dropped, the agent waits (capped exponential backoff with jitter) and sends
//! every unacknowledged batch again, in order, under its original sequence.

use crate::buffer::{BufferStats, PendingBatch, SharedBuffer};
use crate::config::UplinkConfig;
use netwarden_proto::v1::ingest_service_client::IngestServiceClient;
use netwarden_proto::v1::{self, Ack};
use netwarden_shared::tls::{connect_channel, error_chain, ClientConfig};
use rand::Rng;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// Must match the collector's header name.
const REJECTED_SEQUENCE_HEADER: &str = "x-netwarden-rejected-sequence";

pub struct Uplink {
    pub url: String,
    pub server_name: Option<String>,
    pub tls: Arc<ClientConfig>,
    pub connect_timeout: Duration,
    pub config: UplinkConfig,
    pub buffer: SharedBuffer,
}

/// Capped exponential backoff with full jitter.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The ceiling of the next wait (before jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next wait: uniformly random up to the ceiling, at least a tenth of it.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let low = ceiling / 10;
        rand::rng().random_range(low..=ceiling)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the collector closed the stream: {0}")]
    Status(String),
    #[error("the collector ended the stream")]
    Ended,
    #[error(transparent)]
    Buffer(#[from] crate::buffer::BufferError),
}

impl Uplink {
    /// Runs until `shutdown`, then keeps sending for up to the drain timeout.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.backoff_initial_ms),
            Duration::from_secs(self.config.backoff_max_secs),
        );
        let drain_deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(Duration::from_secs(self.config.drain_timeout_secs)).await;
        };
        tokio::pin!(drain_deadline);
        loop {
            let session = self.session(&shutdown, &mut backoff);
            let outcome = tokio::select! {
                outcome = session => outcome,
                _ = &mut drain_deadline => {
                    tracing::warn!("drain deadline reached; unsent records stay in the buffer for next time");
                    return;
                }
            };
            match outcome {
                Ok(()) => return,
                Err(err) => {
                    if shutdown.is_cancelled() {
                        tracing::warn!(error = %err, "stopping with records still buffered");
                        return;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        collector = %self.url,
                        retry_in_ms = delay.as_millis() as u64,
                        "uplink: {err}"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    /// One connection: resend what is pending, then stream new batches. Returns Ok when asked to
    /// stop and everything has been acknowledged.
    async fn session(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), SessionError> {
        let channel = connect_channel(
            &self.url,
            self.server_name.as_deref(),
            self.tls.clone(),
            self.connect_timeout,
        )
        .await
        .map_err(|e| SessionError::Connect(error_chain(&e)))?;
        let window = self.config.max_in_flight as usize;
        let (tx, rx) = mpsc::channel::<v1::Batch>(window);
        let mut client = IngestServiceClient::new(channel)
            .max_decoding_message_size(1024 * 1024)
            .max_encoding_message_size(256 * 1024 * 1024);
        let mut acks = client
            .stream(ReceiverStream::new(rx))
            .await
            .map_err(|s| SessionError::Status(describe(&s)))?
            .into_inner();
        tracing::info!(collector = %self.url, "connected to the collector");

        let mut resend: VecDeque<PendingBatch> = self.buffer.with(|b| b.pending()).await?.into();
        if !resend.is_empty() {
            tracing::info!(batches = resend.len(), "resending unacknowledged batches");
        }
        let mut in_flight: VecDeque<u64> = VecDeque::new();
        let max_records = self.config.batch_max_records;
        loop {
            // Fill the window: old batches first, then new ones.
            while in_flight.len() < window {
                let next = match resend.pop_front() {
                    Some(batch) => Some(batch),
                    None => self.buffer.with(move |b| b.next_batch(max_records)).await?,
                };
                let Some(batch) = next else { break };
                let stats = self.buffer.with(|b| b.stats()).await?;
                in_flight.push_back(batch.sequence);
                if tx.send(to_wire(batch, stats)).await.is_err() {
                    return Err(SessionError::Ended);
                }
            }
            if shutdown.is_cancelled() && in_flight.is_empty() {
                let empty = self.buffer.with(|b| Ok(b.is_empty())).await?;
                if empty {
                    tracing::info!("buffer drained");
                    return Ok(());
                }
            }
            tokio::select! {
                ack = acks.message() => match ack {
                    Ok(Some(ack)) => {
                        self.acknowledge(&ack, &mut in_flight).await?;
                        backoff.reset();
                    }
                    Ok(None) => return Err(SessionError::Ended),
                    Err(status) => return Err(self.refused(status).await),
                },
                _ = self.buffer.arrived.notified(), if in_flight.len() < window => {}
                _ = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
                // A safety net: re-check the buffer now and then even without a wake-up.
                _ = tokio::time::sleep(Duration::from_secs(1)), if in_flight.len() < window => {}
            }
        }
    }

    async fn acknowledge(
        &self,
        ack: &Ack,
        in_flight: &mut VecDeque<u64>,
    ) -> Result<(), SessionError> {
        let sequence = ack.sequence;
        let deleted = self.buffer.with(move |b| b.ack(sequence)).await?;
        in_flight.retain(|s| *s != sequence);
        tracing::debug!(
            sequence,
            deleted,
            duplicate = ack.duplicate,
            "batch acknowledged"
        );
        Ok(())
    }

    /// A refused batch (InvalidArgument naming its sequence) is set aside so it cannot block the
    /// stream forever; every other error just ends the session.
    async fn refused(&self, status: tonic::Status) -> SessionError {
        let rejected = status
            .metadata()
            .get(REJECTED_SEQUENCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let (tonic::Code::InvalidArgument, Some(sequence)) = (status.code(), rejected) {
            let reason = status.message().to_string();
            tracing::error!(sequence, "the collector refused a batch as malformed; it is kept in the buffer's rejected table: {reason}");
            if let Err(err) = self.buffer.with(move |b| b.reject(sequence, &reason)).await {
                return err.into();
            }
        }
        SessionError::Status(describe(&status))
    }
}

fn describe(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(source) = std::error::Error::source(status) {
        text.push_str(": ");
        text.push_str(&error_chain(source));
    }
    text
}

fn to_wire(batch: PendingBatch, stats: BufferStats) -> v1::Batch {
    v1::Batch {
        sequence: batch.sequence,
        agent_id: String::new(),
        status: Some(v1::AgentStatus {
            buffer_backlog: stats.backlog,
            dropped_total: stats.dropped_total,
            agent_version: netwarden_shared::VERSION.to_string(),
        }),
        records: batch.records,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(backoff.ceiling().as_millis());
            let delay = backoff.next_delay();
            assert!(delay <= Duration::from_secs(30));
        }
        assert_eq!(&ceilings[..7], &[500, 1000, 2000, 4000, 8000, 16000, 30000]);
        assert_eq!(ceilings[9], 30000);
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(500));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut backoff = Backoff::new(Duration::from_millis(1000), Duration::from_secs(30));
            seen.insert(backoff.next_delay().as_micros());
        }
        assert!(
            seen.len() > 10,
            "delays should differ between agents: {seen:?}"
        );
    }
}
