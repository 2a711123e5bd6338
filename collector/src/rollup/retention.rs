//! Probe data retention: hourly, under the `probe-retention` lease, raw rounds and each rollup
//! resolution older than their `[retention]` ages are deleted in slices, so neither database is
//! locked for long.

use super::{RetentionConfig, RESOLUTIONS};
use crate::storage::Store;
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const JOB_NAME: &str = "probe-retention";
const SLICE: u32 = 50_000;

/// What one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub raw: u64,
    pub rollup_5m: u64,
    pub rollup_1h: u64,
}

pub async fn sweep(
    store: &dyn Store,
    config: &RetentionConfig,
    now: DateTime<Utc>,
) -> crate::storage::Result<Swept> {
    let mut swept = Swept::default();
    if config.raw_days > 0 {
        let cutoff = now - Duration::days(i64::from(config.raw_days));
        loop {
            let n = store.delete_raw_rounds_before(cutoff, SLICE).await?;
            swept.raw += n;
            if n < u64::from(SLICE) {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    for resolution in RESOLUTIONS {
        let days = config.days(resolution);
        if days == 0 {
            continue;
        }
        let cutoff = now - Duration::days(i64::from(days));
        loop {
            let n = store
                .delete_rollups_before(resolution, cutoff, SLICE)
                .await?;
            if resolution == 300 {
                swept.rollup_5m += n;
            } else {
                swept.rollup_1h += n;
            }
            if n < u64::from(SLICE) {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    Ok(swept)
}

pub async fn run(store: Arc<dyn Store>, config: RetentionConfig, shutdown: CancellationToken) {
    let holder = crate::storage::poi::lease_holder();
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        match store
            .claim_job(
                JOB_NAME,
                &holder,
                std::time::Duration::from_secs(3700),
                Utc::now(),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(err) => {
                tracing::warn!(error = %err, "cannot claim the probe retention lease");
                continue;
            }
        }
        if let Err(err) = store.prepare_partitions(Utc::now()).await {
            tracing::error!(error = %err, "cannot prepare probe partitions; will retry");
        }
        match sweep(store.as_ref(), &config, Utc::now()).await {
            Ok(swept) if swept == Swept::default() => {}
            Ok(swept) => tracing::info!(?swept, "old probe data deleted"),
            Err(err) => tracing::error!(error = %err, "probe retention failed; will retry"),
        }
    }
}
