//! Circuit telemetry: the committer, maxout detection over what it committed, and the customer
//! emails.

use super::shared::Shared;
use super::{Stage, StartError, Tasks};
use crate::alert::customer::CustomerNotifier;
use crate::config::Settings;
use crate::telemetry::detector::Detector;
use crate::telemetry::TelemetryCommitter;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct Telemetry {
    /// The handle the HTTP and gRPC telemetry endpoints save through.
    pub committer: TelemetryCommitter,
    commit: Task,
    detect: Task,
}

impl Telemetry {
    pub fn build(settings: &Settings, shared: &Shared) -> Result<Self, StartError> {
        let notifier = match (&settings.email, &shared.mailer) {
            (Some(email), Some(mailer)) => Some(Arc::new(
                CustomerNotifier::new(
                    email,
                    mailer.clone(),
                    shared.store.clone(),
                    shared.metrics.clone(),
                    Some(shared.engine.clone()),
                )
                .map_err(StartError::Email)?,
            )),
            _ => None,
        };
        let (detector, detect) = Detector::new(
            shared.store.clone(),
            settings.telemetry_detection,
            notifier,
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
