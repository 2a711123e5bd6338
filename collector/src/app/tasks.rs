//! Every long-lived task of a running collector, spawned through one place: named, in a span of
//! its own, and stopped stage by stage on shutdown so that nothing a listener accepted is lost.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long the whole drain may take after a stop request.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// When a task is told to stop. Stages stop in this order, each once the one before has ended:
/// what takes new work in first, then what commits it, then what detects on the committed data,
/// then what delivers what was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Listeners, scrapers and periodic jobs: stop taking work in, finish what is open.
    Accept,
    /// The committers: write what the listeners handed over (they end when their last
    /// handle is dropped, so their stop signal is only a backstop).
    Commit,
    /// Detection over committed data.
    Detect,
    /// Notification delivery.
    Deliver,
}

impl Stage {
    const ORDER: [Stage; 4] = [Stage::Accept, Stage::Commit, Stage::Detect, Stage::Deliver];
}

type Outcome = (Stage, &'static str, Result<(), String>);

/// The running tasks, by stage.
pub struct Tasks {
    stops: HashMap<Stage, CancellationToken>,
    running: HashMap<Stage, usize>,
    set: JoinSet<Outcome>,
    /// Cancelled by the operator (a signal) or by a task that ended early.
    shutdown: CancellationToken,
}

impl Tasks {
    /// `shutdown` starts the drain; it is also the `Accept` stage's stop signal.
    pub fn new(shutdown: CancellationToken) -> Self {
        let stops = Stage::ORDER
            .into_iter()
            .map(|stage| {
                let stop = match stage {
                    Stage::Accept => shutdown.clone(),
                    _ => CancellationToken::new(),
                };
                (stage, stop)
            })
            .collect();
        Tasks {
            stops,
            running: HashMap::new(),
            set: JoinSet::new(),
            shutdown,
        }
    }

    /// The signal a task of `stage` stops on.
    pub fn stop_of(&self, stage: Stage) -> CancellationToken {
        self.stops[&stage].clone()
    }

    /// Spawns `task` (given its stage's stop signal) as `name`, in a span of that name.
    pub fn spawn<F, Fut>(&mut self, stage: Stage, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let future = task(self.stop_of(stage));
        let span = tracing::info_span!("task", name);
        *self.running.entry(stage).or_default() += 1;
        tracing::debug!(task = name, ?stage, "task started");
        self.set.spawn(
            async move {
                let result = future.await;
                tracing::debug!(task = name, "task ended");
                (stage, name, result)
            }
            .instrument(span),
        );
    }

    /// Like [`Tasks::spawn`] for a task that cannot fail.
    pub fn spawn_infallible<F, Fut>(&mut self, stage: Stage, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(stage, name, |stop| {
            let future = task(stop);
            async move {
                future.await;
                Ok(())
            }
        });
    }

    /// Runs until shutdown is asked for or a task ends on its own (which stops the rest), then
    /// drains stage by stage within [`DRAIN_DEADLINE`]. The first failure is returned.
    pub async fn wait(mut self) -> Result<(), String> {
        let mut failure = None;
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            Some(joined) = self.set.join_next() => {
                failure = self.ended(joined);
                self.shutdown.cancel();
            }
        }
        let drain = async {
            for stage in Stage::ORDER {
                self.stops[&stage].cancel();
                while self.running.get(&stage).copied().unwrap_or(0) > 0 {
                    let Some(joined) = self.set.join_next().await else {
                        break;
                    };
                    if let Some(err) = self.ended(joined) {
                        failure.get_or_insert(err);
                    }
                }
            }
        };
        if tokio::time::timeout(DRAIN_DEADLINE, drain).await.is_err() {
            let left: Vec<_> = Stage::ORDER
                .into_iter()
                .filter(|stage| self.running.get(stage).copied().unwrap_or(0) > 0)
                .collect();
            tracing::warn!(stages = ?left, "tasks still running after the drain deadline; exiting anyway");
        }
        tracing::info!("collector stopped");
        match failure {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Books an ended task; its failure, if it failed.
    fn ended(&mut self, joined: Result<Outcome, tokio::task::JoinError>) -> Option<String> {
        match joined {
            Ok((stage, name, result)) => {
                if let Some(count) = self.running.get_mut(&stage) {
                    *count = count.saturating_sub(1);
                }
                result.err().map(|err| format!("{name} failed: {err}"))
            }
            // A panicked task's stage is not known here; the stage count only shortens the
            // wait, and a panic is a failure whatever it was.
            Err(err) => Some(format!("a collector task failed: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn stages_stop_in_order_each_after_the_one_before_has_ended() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::new(shutdown.clone());
        let log = Arc::new(Mutex::new(Vec::new()));
        for (stage, name) in [
            (Stage::Deliver, "deliver"),
            (Stage::Detect, "detect"),
            (Stage::Commit, "commit"),
            (Stage::Accept, "accept"),
        ] {
            let log = log.clone();
            tasks.spawn_infallible(stage, name, move |stop| async move {
                stop.cancelled().await;
                // Slow to finish: a later stage told to stop meanwhile would log first.
                tokio::time::sleep(Duration::from_millis(20)).await;
                log.lock().unwrap().push(name);
            });
        }
        shutdown.cancel();
        tasks.wait().await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            vec!["accept", "commit", "detect", "deliver"]
        );
    }

    #[tokio::test]
    async fn a_task_that_fails_stops_the_rest_and_is_reported_by_name() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::new(shutdown.clone());
        tasks.spawn(Stage::Accept, "http", |_| async { Err("port gone".into()) });
        tasks.spawn_infallible(Stage::Commit, "commit", |stop| async move {
            stop.cancelled().await
        });
        let err = tasks.wait().await.unwrap_err();
        assert_eq!(err, "http failed: port gone");
        assert!(shutdown.is_cancelled());
    }
}
