//! Circuit telemetry: the committer and maxout detection over what it committed (which queues
//! the customer emails the dispatcher sends).

use super::shared::Shared;
use super::{Stage, StartError, Tasks};
use crate::config::Settings;
use crate::telemetry::detector::Detector;
use crate::telemetry::TelemetryCommitter;
use std::future::Future;
use std::pin::Pin;

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct Telemetry {
    /// The handle the HTTP and gRPC telemetry endpoints save through.
    pub committer: TelemetryCommitter,
    commit: Task,
    detect: Task,
}

impl Telemetry {
    pub fn build(settings: &Settings, shared: &Shared) -> Result<Self, StartError> {
        let (detector, detect) = Detector::new(
            shared.store.clone(),
            settings.telemetry_detection,
            shared.customer_email.clone(),
            Some(shared.engine.clone()),
            shared.metrics.clone(),
        );
        let (committer, commit) = TelemetryCommitter::new(shared.store.clone(), detector);
        Ok(Telemetry {
            committer,
            commit: Box::pin(commit),
            detect: Box::pin(detect),
        })
    }

    /// The committer and the detector end by themselves once the endpoints holding their
    /// handles are gone: after the listeners, so every accepted sample is committed and looked
    /// at.
    pub fn spawn(self, tasks: &mut Tasks) {
        let (commit, detect) = (self.commit, self.detect);
        drop(self.committer);
        tasks.spawn_infallible(Stage::Commit, "telemetry-commit", |_| commit);
        tasks.spawn_infallible(Stage::Detect, "telemetry-detection", |_| detect);
    }
}
