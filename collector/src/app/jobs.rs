//! The periodic jobs: probe rollups and retention, telemetry retention, the Cacti scraper and
//! the KPI job.

use super::alerting::Alerting;
use super::shared::Shared;
use super::{Stage, StartError, Tasks};
use crate::config::Settings;
use crate::rollup::RetentionConfig;
use crate::storage::Store;
use std::sync::Arc;

pub struct Jobs {
    store: Arc<dyn Store>,
    rollups: crate::rollup::job::RollupJob,
    retention: RetentionConfig,
    telemetry_retention_days: u32,
    /// The scraper with its source count and interval, for the log.
    scraper: Option<(crate::cacti::Scraper, usize, u64)>,
    kpi: Option<(crate::kpi::KpiJob, std::path::PathBuf)>,
}

impl Jobs {
    pub async fn build(
        settings: &Settings,
        shared: &Shared,
        alerting: &Alerting,
    ) -> Result<Self, StartError> {
        let scraper = match &settings.scrape {
            Some(scrape) => Some((
                crate::cacti::Scraper::new(scrape, shared.store.clone(), shared.metrics.clone())
                    .await?
                    .with_engine(shared.engine.clone()),
                scrape.sources.len(),
                scrape.interval.as_secs(),
            )),
            None => None,
        };
        let kpi = settings.kpi.as_ref().map(|kpi| {
            let job =
                crate::kpi::KpiJob::new(kpi.clone(), shared.store.clone(), shared.metrics.clone());
            (job, kpi.directory.clone())
        });
        Ok(Jobs {
            store: shared.store.clone(),
            rollups: crate::rollup::job::RollupJob::new(
                shared.store.clone(),
                settings.retention.raw_days,
                alerting.rollup.clone(),
            ),
            retention: settings.retention.clone(),
            telemetry_retention_days: settings.telemetry_retention_days,
            scraper,
            kpi,
        })
    }

    pub fn spawn(self, tasks: &mut Tasks) {
        let rollups = self.rollups;
        tasks.spawn_infallible(Stage::Accept, "probe-rollups", |stop| rollups.run(stop));
        let (store, retention) = (self.store.clone(), self.retention);
        tasks.spawn_infallible(Stage::Accept, "probe-retention", |stop| {
            crate::rollup::retention::run(store, retention, stop)
        });
        if let Some((scraper, sources, interval_secs)) = self.scraper {
            tracing::info!(sources, interval_secs, "Cacti scraper started");
            tasks.spawn_infallible(Stage::Accept, "cacti-scrape", |stop| scraper.run(stop));
        }
        if let Some((job, directory)) = self.kpi {
            tracing::info!(directory = %directory.display(), "KPI job started");
            tasks.spawn_infallible(Stage::Accept, "kpi", |stop| job.run(stop));
        }
        if self.telemetry_retention_days > 0 {
            let (store, days) = (self.store, self.telemetry_retention_days);
            tasks.spawn_infallible(Stage::Accept, "telemetry-retention", |stop| {
                crate::telemetry::retention::run(store, days, stop)
            });
        }
    }
}
