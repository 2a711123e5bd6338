//! Computes rollups every [`PERIOD`]: per resolution, from its watermark (or from the oldest
//! late round an agent delivered since the last run) to the last closed bucket, an hour of raw
//! rounds at a time. Writes replace, so several collectors running it at once (scale-out) agree.

use super::{aggregate, bucket_start, earliest, RESOLUTIONS};
use crate::storage::Store;
use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub const PERIOD: std::time::Duration = std::time::Duration::from_secs(30);
/// A bucket is rolled up this long after it closes, for rounds still on their way.
const GRACE: Duration = Duration::seconds(10);
/// Raw rounds read at once.
const CHUNK: Duration = Duration::hours(1);

/// The oldest observation time (ms) committed since the rollup last looked; `i64::MAX` when
/// none. The ingest path lowers it; the job takes it.
#[derive(Debug, Clone)]
pub struct Committed(Arc<AtomicI64>);

impl Default for Committed {
    fn default() -> Self {
        Committed(Arc::new(AtomicI64::new(i64::MAX)))
    }
}

impl Committed {
    pub fn saw(&self, observed: DateTime<Utc>) {
        self.0
            .fetch_min(observed.timestamp_millis(), Ordering::Relaxed);
    }

    fn take(&self) -> Option<DateTime<Utc>> {
        let ms = self.0.swap(i64::MAX, Ordering::Relaxed);
        (ms != i64::MAX)
            .then(|| DateTime::from_timestamp_millis(ms))
            .flatten()
    }
}

pub struct RollupJob {
    store: Arc<dyn Store>,
    raw_days: u32,
    committed: Committed,
}

impl RollupJob {
    pub fn new(store: Arc<dyn Store>, raw_days: u32, committed: Committed) -> Self {
        RollupJob {
            store,
            raw_days,
            committed,
        }
    }

    /// One pass; returns the rollup rows written.
    pub async fn run_once(&self, now: DateTime<Utc>) -> crate::storage::Result<usize> {
        let late = self.committed.take();
        let earliest = earliest(now, self.raw_days);
        let mut written = 0;
        for resolution in RESOLUTIONS {
            let closed = bucket_start(now - GRACE, resolution);
            let floor = bucket_start(earliest, resolution);
            let watermark = self.store.rollup_watermark(resolution).await?;
            let mut from = match watermark {
                Some(w) => w,
                // The first run starts at the oldest round (or, with none, at the present).
                None => match self.store.oldest_raw_round().await? {
                    Some(oldest) => bucket_start(oldest, resolution),
                    None => closed,
                },
            };
            if let Some(late) = late {
                from = from.min(bucket_start(late, resolution));
            }
            from = from.max(floor);
            while from < closed {
                let to = (from + CHUNK).min(closed);
                let rounds = self.store.raw_rounds(from, to).await?;
                let rows = aggregate(&rounds, resolution);
                self.store.save_rollups(resolution, &rows).await?;
                written += rows.len();
                if watermark.is_none_or(|w| to > w) {
                    self.store.set_rollup_watermark(resolution, to).await?;
                }
                from = to;
            }
            if watermark.is_none() && from >= closed {
                self.store.set_rollup_watermark(resolution, closed).await?;
            }
        }
        Ok(written)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(PERIOD);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            match self.run_once(Utc::now()).await {
                Ok(0) => {}
                Ok(rows) => tracing::debug!(rows, "probe rollups written"),
                Err(err) => tracing::error!(error = %err, "probe rollup failed; will retry"),
            }
        }
    }
}
