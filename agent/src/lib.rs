//! Netwarden agent: probes targets, buffers every result in SQLite and streams it to the
//! collector. `main.rs` is a thin CLI over [`run`] so tests drive the real thing.

pub mod buffer;
pub mod config;
pub mod probe;
pub mod uplink;

use buffer::{Buffer, SharedBuffer};
use config::{ProbePlan, Settings};
use netwarden_shared::tls::{cert_file_info, client_config};
use netwarden_shared::AgentId;
use probe::{probe_round, SurgeSender};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uplink::Uplink;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Tls(#[from] netwarden_shared::tls::TlsError),
    #[error(transparent)]
    Buffer(#[from] buffer::BufferError),
    #[error("the agent certificate {path} does not name a valid agent: {message}")]
    Identity { path: String, message: String },
}

/// Runs the agent until `shutdown`, then drains the buffer to the collector for up to the
/// configured drain timeout. Whatever is not acknowledged by then stays buffered.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), AgentError> {
    let cert = cert_file_info(&settings.tls.cert)?;
    let agent = AgentId::new(cert.common_name.clone()).map_err(|e| AgentError::Identity {
        path: settings.tls.cert.display().to_string(),
        message: e.to_string(),
    })?;
    let now = chrono::Utc::now().timestamp();
    if cert.not_after < now {
        tracing::error!(
            %agent,
            cert = %settings.tls.cert.display(),
            "the agent certificate has expired; the collector will refuse it. Issue a new one with `netwarden-collector pki issue-agent`"
        );
    } else if cert.not_after - now < 14 * 86_400 {
        tracing::warn!(%agent, days_left = (cert.not_after - now) / 86_400, "the agent certificate expires soon");
    }
    let tls = Arc::new(client_config(&settings.tls)?);
    let buffer = Buffer::open(&settings.buffer_path, settings.buffer_max_records)?;
    let stats = buffer.stats()?;
    tracing::info!(
        %agent,
        collector = %settings.collector_url,
        buffer = %settings.buffer_path.display(),
        backlog = stats.backlog,
        targets = settings.probe.targets.len(),
        "agent starting"
    );
    let buffer = SharedBuffer::new(buffer);

    let uplink = Uplink {
        url: settings.collector_url.clone(),
        server_name: settings.server_name.clone(),
        tls,
        connect_timeout: settings.connect_timeout,
        config: settings.uplink.clone(),
        buffer: buffer.clone(),
    };
    let probing = shutdown.child_token();
    let probe_task = tokio::spawn(probe_loop(
        settings.probe.clone(),
        buffer.clone(),
        probing.clone(),
    ));
    let uplink_task = tokio::spawn(uplink.run(shutdown.clone()));

    shutdown.cancelled().await;
    probing.cancel();
    // The probe loop stops at once (a half-finished round is not recorded); then the uplink drains.
    let _ = probe_task.await;
    let _ = uplink_task.await;
    let stats = buffer.with(|b| b.stats()).await?;
    tracing::info!(
        backlog = stats.backlog,
        produced = stats.produced_total,
        dropped = stats.dropped_total,
        "agent stopped"
    );
    Ok(())
}

/// Probes every interval and writes each round to the buffer. If the ICMP socket cannot be
/// opened (no privilege), says why and tries again next interval instead of exiting, so the
/// uplink keeps draining and a service manager does not crash-loop.
async fn probe_loop(plan: ProbePlan, buffer: SharedBuffer, stop: CancellationToken) {
    if plan.targets.is_empty() {
        tracing::info!("no probe targets configured");
        return;
    }
    let need_v4 = plan.targets.iter().any(|t| t.is_ipv4());
    let need_v6 = plan.targets.iter().any(|t| t.is_ipv6());
    let mut sender: Option<Arc<SurgeSender>> = None;
    let mut next = tokio::time::Instant::now();
    let mut round: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        next += plan.interval;
        let now = tokio::time::Instant::now();
        if next < now {
            // A round overran: skip ahead rather than firing a burst of catch-up rounds.
            next = now + plan.interval;
        }
        let sender = match &sender {
            Some(s) => s.clone(),
            None => match SurgeSender::new(need_v4, need_v6) {
                Ok(s) => sender.insert(Arc::new(s)).clone(),
                Err(err) => {
                    tracing::error!("{err}");
                    continue;
                }
            },
        };
        let records = tokio::select! {
            _ = stop.cancelled() => return,
            records = probe_round(sender, &plan, round) => records,
        };
        round += 1;
        let count = records.len();
        match buffer.push(records).await {
            Ok(0) => tracing::debug!(round, results = count, "round buffered"),
            Ok(dropped) => tracing::warn!(dropped, "buffer full: dropped the oldest records"),
            Err(err) => tracing::error!(error = %err, "cannot write results to the buffer"),
        }
    }
}
