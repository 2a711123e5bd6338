//! Group commit: batches that arrive while commits are running wait here and go into the next
//! transaction together, so one commit (one fsync / WAL flush) covers many batches; under light
//! load a group is a single batch and adds no delay.
//!
//! With one commit at a time (SQLite: one writer) a group takes everything waiting. With several
//! (PostgreSQL) a group holds one agent's batches, and agents commit side by side: a batch locks
//! its agent's device rows until commit, so mixing agents would make concurrent groups queue
//! behind each other. An agent never has two groups committing at once.

use super::{IngestOutcome, Result, Store, StoreError};
use netwarden_shared::{AgentId, Batch};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most batches and records one transaction may take.
const MAX_GROUP_BATCHES: usize = 64;
const MAX_GROUP_RECORDS: usize = 50_000;

struct Pending {
    agent: AgentId,
    batch: Batch,
    reply: oneshot::Sender<Result<IngestOutcome>>,
}

/// Cloneable handle; the committing task ends when every handle is dropped and all is committed.
#[derive(Clone)]
pub struct GroupCommitter {
    queue: mpsc::UnboundedSender<Pending>,
}

impl GroupCommitter {
    /// Starts the committing task on its own (for tools and tests; the collector spawns the
    /// task [`GroupCommitter::new`] returns).
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (committer, task) = Self::new(store);
        tokio::spawn(task);
        committer
    }

    /// The handle and the committing task, which ends once every handle is dropped and what
    /// they handed over is committed.
    pub fn new(store: Arc<dyn Store>) -> (Self, impl std::future::Future<Output = ()>) {
        // Unbounded is safe: each stream has a bounded number of batches in progress.
        let (queue, receiver) = mpsc::unbounded_channel();
        (GroupCommitter { queue }, commit_loop(store, receiver))
    }

    /// Stores a batch (with whatever else is waiting) and returns once it is committed.
    pub async fn ingest(&self, agent: AgentId, batch: Batch) -> Result<IngestOutcome> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending {
                agent,
                batch,
                reply,
            })
            .map_err(|_| StoreError::Worker("the ingest queue has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Worker("the ingest queue dropped a batch".into()))?
    }
}

/// Takes the next group out of `backlog`: the oldest batch whose agent is not busy, with (when
/// `per_agent`) the other waiting batches of that agent, or (otherwise) everything waiting.
fn next_group(
    backlog: &mut VecDeque<Pending>,
    busy: &HashSet<AgentId>,
    per_agent: bool,
) -> Option<Vec<Pending>> {
    let first = backlog.iter().position(|p| !busy.contains(&p.agent))?;
    let agent = backlog[first].agent.clone();
    let mut group = Vec::new();
    let mut records = 0;
    let mut kept = VecDeque::with_capacity(backlog.len());
    for pending in backlog.drain(..) {
        let fits = group.len() < MAX_GROUP_BATCHES && records < MAX_GROUP_RECORDS;
        if fits && (!per_agent || pending.agent == agent) && !busy.contains(&pending.agent) {
            records += pending.batch.records.len();
            group.push(pending);
        } else {
            kept.push_back(pending);
        }
    }
    *backlog = kept;
    // One lock order (agent, then sequence) for every transaction.
    group.sort_by(|a, b| (&a.agent, a.batch.sequence).cmp(&(&b.agent, b.batch.sequence)));
    Some(group)
}

async fn commit_loop(store: Arc<dyn Store>, mut receiver: mpsc::UnboundedReceiver<Pending>) {
    let slots = store.concurrent_commits().max(1);
    let per_agent = slots > 1;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Vec<AgentId>>();
    let mut backlog: VecDeque<Pending> = VecDeque::new();
    let mut busy: HashSet<AgentId> = HashSet::new();
    let mut running = 0usize;
    let mut open = true;
    loop {
        while let Ok(pending) = receiver.try_recv() {
            backlog.push_back(pending);
        }
        while running < slots {
            let Some(group) = next_group(&mut backlog, &busy, per_agent) else {
                break;
            };
            let agents: Vec<AgentId> = group.iter().map(|p| p.agent.clone()).collect();
            if per_agent {
                busy.extend(agents.iter().cloned());
            }
            running += 1;
            let store = store.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                commit(store.as_ref(), group).await;
                let _ = done.send(agents);
            });
        }
        if !open && backlog.is_empty() && running == 0 {
            return;
        }
        tokio::select! {
            pending = receiver.recv(), if open => match pending {
                Some(pending) => backlog.push_back(pending),
                None => open = false,
            },
            Some(agents) = done_rx.recv() => {
                running -= 1;
                for agent in agents {
                    busy.remove(&agent);
                }
            }
        }
    }
}

async fn commit(store: &dyn Store, group: Vec<Pending>) {
    let (items, replies): (Vec<_>, Vec<_>) = group
        .into_iter()
        .map(|p| ((p.agent, p.batch), p.reply))
        .unzip();
    let size = items.len();
    // Shared so that a group refused for a permanent reason can be committed batch by batch,
    // refusing the bad batch alone and storing the others.
    let items = Arc::new(items);
    match store.ingest_group(items.clone(), chrono::Utc::now()).await {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(err) if !err.is_retryable() && size > 1 => {
            tracing::warn!(batches = size, error = %err, "a group of batches was refused; committing them one by one");
            let items = Arc::try_unwrap(items).unwrap_or_else(|shared| shared.as_ref().clone());
            for (item, reply) in items.into_iter().zip(replies) {
                let outcome = store
                    .ingest_group(Arc::new(vec![item]), chrono::Utc::now())
                    .await
                    .and_then(|mut outcomes| {
                        outcomes.pop().unwrap_or_else(|| {
                            Err(StoreError::Worker("a commit returned no outcome".into()))
                        })
                    });
                let _ = reply.send(outcome);
            }
        }
        Err(err) => {
            tracing::error!(batches = size, error = %err, "a group of batches could not be committed");
            let (message, retryable) = (err.to_string(), err.is_retryable());
            for reply in replies {
                // One error for several waiters: each gets its text (the error itself is
                // logged above).
                let _ = reply.send(Err(StoreError::own(
                    "committing a group of batches",
                    message.clone(),
                    retryable,
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(agent: &str, sequence: u64) -> Pending {
        Pending {
            agent: AgentId::new(agent).unwrap(),
            batch: Batch {
                sequence,
                claimed_agent_id: None,
                status: Default::default(),
                records: Vec::new(),
            },
            reply: oneshot::channel().0,
        }
    }

    fn names(group: &[Pending]) -> Vec<(String, u64)> {
        group
            .iter()
            .map(|p| (p.agent.to_string(), p.batch.sequence))
            .collect()
    }

    #[test]
    fn one_writer_takes_everything_in_lock_order() {
        let mut backlog: VecDeque<_> = [pending("b", 2), pending("a", 9), pending("b", 1)].into();
        let group = next_group(&mut backlog, &HashSet::new(), false).unwrap();
        assert_eq!(
            names(&group),
            [("a".into(), 9), ("b".into(), 1), ("b".into(), 2)]
        );
        assert!(backlog.is_empty());
    }

    #[test]
    fn several_writers_group_by_agent_and_skip_busy_agents() {
        let mut backlog: VecDeque<_> = [
            pending("a", 1),
            pending("b", 1),
            pending("a", 2),
            pending("c", 1),
        ]
        .into();
        let busy: HashSet<_> = [AgentId::new("a").unwrap()].into();
        let group = next_group(&mut backlog, &busy, true).unwrap();
        assert_eq!(names(&group), [("b".into(), 1)]);
        let group = next_group(&mut backlog, &HashSet::new(), true).unwrap();
        assert_eq!(names(&group), [("a".into(), 1), ("a".into(), 2)]);
        assert_eq!(
            names(&backlog.into_iter().collect::<Vec<_>>()),
            [("c".into(), 1)]
        );
        assert!(next_group(&mut VecDeque::new(), &HashSet::new(), true).is_none());
    }
}
