//! Group commit for telemetry: requests that arrive while a commit runs go into the next
//! transaction together, so 64 clients posting single samples cost a few commits, not 64,
//! and every request is answered only after its samples are committed.

use super::detector::Detector;
use super::sample::TelemetrySample;
use crate::storage::telemetry::BlockingTelemetrySaver;
use crate::storage::{Result, Store, StoreError};
use chrono::Utc;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Most samples one transaction takes.
const MAX_GROUP_SAMPLES: usize = 50_000;
/// A request with at least this many samples may commit beside another commit; smaller ones
/// wait for every commit to finish, and join the next group instead.
const LARGE_REQUEST: usize = 1_000;

/// Where a request waits for the unknown circuit ids among its samples.
type Reply = oneshot::Sender<Result<BTreeSet<String>>>;

struct Pending {
    samples: Vec<TelemetrySample>,
    reply: Reply,
}

/// Cloneable handle to the committing task.
#[derive(Clone)]
pub struct TelemetryCommitter {
    queue: mpsc::UnboundedSender<Pending>,
    detector: Detector,
}

impl TelemetryCommitter {
    /// The handle and the committing task (committed samples then go to `detector`); the task
    /// ends once every handle is dropped and what they handed over is committed.
    pub fn new(
        store: Arc<dyn Store>,
        detector: Detector,
    ) -> (Self, impl std::future::Future<Output = ()>) {
        // Unbounded is safe: each HTTP request waits for its answer, so what waits here is
        // bounded by the open requests (and their body limits).
        let (queue, receiver) = mpsc::unbounded_channel();
        let task = {
            let detector = detector.clone();
            async move {
                match store.blocking_telemetry_saver() {
                    Some(saver) => {
                        let (done, finished) = tokio::sync::oneshot::channel::<()>();
                        let spawned = std::thread::Builder::new()
                            .name("telemetry-commit".into())
                            .spawn(move || {
                                commit_thread(saver, detector, receiver);
                                let _ = done.send(());
                            });
                        match spawned {
                            Ok(_) => {
                                let _ = finished.await;
                            }
                            // The receiver went with the closure: saves fail with "stopped".
                            Err(err) => {
                                tracing::error!(error = %err, "cannot start the telemetry commit thread")
                            }
                        }
                    }
                    None => commit_loop(store, detector, receiver).await,
                }
            }
        };
        (TelemetryCommitter { queue, detector }, task)
    }

    /// A circuit was registered or changed here: detection reads it again before the next
    /// samples.
    pub fn circuits_changed(&self) {
        self.detector.circuits_changed();
    }

    /// Stores samples (with whatever else is waiting); returns the unknown circuit ids among
    /// them once committed.
    pub async fn save(&self, samples: Vec<TelemetrySample>) -> Result<BTreeSet<String>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { samples, reply })
            .map_err(|_| StoreError::Worker("the telemetry queue has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Worker("the telemetry queue dropped a request".into()))?
    }
}

/// Takes what waits (up to [`MAX_GROUP_SAMPLES`]) after `first`.
fn gather(first: Pending, receiver: &mut mpsc::UnboundedReceiver<Pending>) -> Vec<Pending> {
    let mut count = first.samples.len();
    let mut group = vec![first];
    while count < MAX_GROUP_SAMPLES {
        match receiver.try_recv() {
            Ok(next) => {
                count += next.samples.len();
                group.push(next);
            }
            Err(_) => break,
        }
    }
    group
}

/// One group's samples in one vector, moved, not cloned; each request's share is a range of it.
struct Group {
    samples: Vec<TelemetrySample>,
    shares: Vec<(std::ops::Range<usize>, Reply)>,
}

impl Group {
    fn new(pending: Vec<Pending>) -> Self {
        let mut samples = Vec::with_capacity(pending.iter().map(|p| p.samples.len()).sum());
        let mut shares = Vec::with_capacity(pending.len());
        for p in pending {
            let start = samples.len();
            samples.extend(p.samples);
            shares.push((start..samples.len(), p.reply));
        }
        Group { samples, shares }
    }

    /// Answers each request with the unknown circuit ids among its own samples, or the
    /// error; committed samples then go to detection.
    fn answer(self, saved: Result<BTreeSet<String>>, detector: &Detector) {
        match saved {
            Ok(unknown) => {
                for (range, reply) in self.shares {
                    let mine = self.samples[range]
                        .iter()
                        .filter(|s| unknown.contains(&s.circuit_id))
                        .map(|s| s.circuit_id.clone())
                        .collect();
                    let _ = reply.send(Ok(mine));
                }
                detector.committed(self.samples);
            }
            Err(err) => {
                let message = err.to_string();
                for (_, reply) in self.shares {
                    let _ = reply.send(Err(StoreError::Worker(message.clone())));
                }
            }
        }
    }
}

/// The committer on a thread of its own, for a blocking backend: no task spawned and no hop
/// to a blocking pool per commit, and while it commits, the next group gathers.
fn commit_thread(
    mut save: BlockingTelemetrySaver,
    detector: Detector,
    mut receiver: mpsc::UnboundedReceiver<Pending>,
) {
    while let Some(first) = receiver.blocking_recv() {
        let group = Group::new(gather(first, &mut receiver));
        let saved = save(&group.samples, Utc::now());
        group.answer(saved, &detector);
    }
}

async fn commit_loop(
    store: Arc<dyn Store>,
    detector: Detector,
    mut receiver: mpsc::UnboundedReceiver<Pending>,
) {
    // At most two commits at once, and two only for large requests. Each commit costs a
    // statement and a WAL flush whatever its size, so small ones run one at a time and the
    // requests that arrive meanwhile make the next group larger (PostgreSQL took single
    // POSTs faster, and with less of its CPU, one commit at a time than two). Batches gain
    // from the overlap: about 1.6 times the samples a second of one at a time.
    let slots = store.concurrent_commits().clamp(1, 2) as u32;
    let semaphore = Arc::new(Semaphore::new(slots as usize));
    while let Some(first) = receiver.recv().await {
        // Wait for the commit slots first: while waiting, more requests pile up and join.
        let needed = if first.samples.len() >= LARGE_REQUEST {
            1
        } else {
            slots
        };
        let Ok(permit) = semaphore.clone().acquire_many_owned(needed).await else {
            break;
        };
        let group = Group::new(gather(first, &mut receiver));
        let store = store.clone();
        let detector = detector.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let saved = store.save_telemetry(&group.samples, Utc::now()).await;
            group.answer(saved, &detector);
        });
    }
}
