//! Telemetry retention: every hour, samples older than `[telemetry] retention_days` are deleted
//! in slices (so the database is never locked for long), under the `telemetry-retention` lease.

use crate::storage::Store;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const JOB_NAME: &str = "telemetry-retention";
const SLICE: u32 = 50_000;

/// Deletes everything older than `days` before `now`, slice by slice; returns the count.
pub async fn sweep(
    store: &dyn Store,
    days: u32,
    now: chrono::DateTime<Utc>,
) -> crate::storage::Result<u64> {
    let cutoff = now - chrono::Duration::days(i64::from(days));
    let mut total = 0;
    loop {
        let gone = store.delete_telemetry_before(cutoff, SLICE).await?;
        total += gone;
        if gone < u64::from(SLICE) {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Runs [`sweep`] hourly until cancelled.
pub async fn run(store: Arc<dyn Store>, days: u32, shutdown: CancellationToken) {
    let holder = crate::storage::poi::lease_holder();
    let mut ticks = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        match store
            .claim_job(JOB_NAME, &holder, Duration::from_secs(3700), Utc::now())
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(err) => {
                tracing::warn!(error = %err, "cannot claim the telemetry retention lease");
                continue;
            }
        }
        match sweep(store.as_ref(), days, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, days, "old telemetry deleted"),
            Err(err) => tracing::error!(error = %err, "telemetry retention failed; will retry"),
        }
    }
}
