//! Detection over agent records and the notification dispatcher.

use super::shared::Shared;
use super::{Stage, StartError, Tasks};
use crate::alert::dispatch::{DispatchSettings, Dispatcher};
use crate::alert::watch::{self, Detectors, Watch, WatchTask};
use crate::config::Settings;
use std::sync::Arc;
use std::time::Duration;

pub struct Alerting {
    /// The ingest path's handle to detection (taken by the agents' part).
    pub watch: Option<Watch>,
    /// What the probe rollups learn from the ingest path (taken by the jobs).
    pub rollup: crate::rollup::job::Committed,
    task: WatchTask,
    dispatcher: Option<Arc<Dispatcher>>,
}

impl Alerting {
    pub fn build(settings: &Settings, shared: &Shared) -> Result<Self, StartError> {
        let detectors = Detectors::new(
            settings.detect.clone(),
            crate::detect::speed::SpeedFloors {
                download_mbps: settings.detect.speed_floor_download_mbps,
                upload_mbps: settings.detect.speed_floor_upload_mbps,
            },
        );
        let (watch, task) = watch::new(shared.store.clone(), shared.engine.clone(), detectors);
        Ok(Alerting {
            rollup: watch.rollup.clone(),
            watch: Some(watch),
            task,
            dispatcher: dispatcher(settings, shared)?,
        })
    }

    pub fn spawn(self, tasks: &mut Tasks) {
        let task = self.task;
        tasks.spawn_infallible(Stage::Detect, "detection", |stop| task.run(stop));
        if let Some(dispatcher) = self.dispatcher {
            tasks.spawn_infallible(Stage::Deliver, "notifications", |stop| dispatcher.run(stop));
        }
    }
}

/// The notification dispatcher, when any channel is configured.
fn dispatcher(settings: &Settings, shared: &Shared) -> Result<Option<Arc<Dispatcher>>, StartError> {
    let channels = shared.channels.clone();
    let a = &settings.alerting;
    if channels.is_empty() {
        return Ok(None);
    }
    let holder = a
        .instance
        .clone()
        .unwrap_or_else(crate::storage::poi::lease_holder);
    Ok(Some(Arc::new(Dispatcher::new(
        shared.store.clone(),
        shared.metrics.clone(),
        DispatchSettings {
            holder,
            lease: Duration::from_secs(a.claim_lease_secs),
            retries: a.retries,
            backoff: Duration::from_millis(a.backoff_ms),
            clock: crate::alert::clock::system(),
        },
        channels,
        shared.engine.wake.clone(),
    ))))
}
