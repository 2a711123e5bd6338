//! Starts and stops the agent's loops to match its [`Work`]: a loop whose description is
//! unchanged keeps running (and keeps its schedule), one no longer wanted is stopped, a new one
//! is started. A probe loop whose targets alone changed is handed its new list and keeps its
//! schedule. Nothing restarts, and what a loop buffered stays buffered.

use super::work::{ProbeWork, Work};
use crate::buffer::SharedBuffer;
use crate::config::{ProbePlan, Site, SpeedTestPlan};
use crate::discovery::DiscoveryOptions;
use crate::probe::liveness::OpenPorts;
use crate::LazyEngine;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq)]
enum Loop {
    /// By name and settings; the targets are not part of what the loop is.
    Probe {
        name: String,
        settings: ProbePlan,
    },
    Discovery(Site),
    SpeedTest(SpeedTestPlan),
}

struct Running {
    what: Loop,
    /// A probe loop's targets, changed in place.
    targets: Option<watch::Sender<ProbePlan>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// A probe loop's identity: its name and settings without its targets.
fn probe_loop(work: &ProbeWork) -> Loop {
    Loop::Probe {
        name: work.name.clone(),
        settings: ProbePlan {
            targets: Vec::new(),
            ..work.plan.clone()
        },
    }
}

/// What an [`Runner::apply`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub started: usize,
    pub stopped: usize,
    pub kept: usize,
    /// Kept probe loops handed a new target list.
    pub retargeted: usize,
}

pub struct Runner {
    engine: Arc<LazyEngine>,
    buffer: SharedBuffer,
    open_ports: OpenPorts,
    discovery: DiscoveryOptions,
    enrolment: super::enrolment::Enrolment,
    stop: CancellationToken,
    running: Vec<Running>,
}

impl Runner {
    pub fn new(
        engine: Arc<LazyEngine>,
        buffer: SharedBuffer,
        open_ports: OpenPorts,
        discovery: DiscoveryOptions,
        enrolment: super::enrolment::Enrolment,
        stop: CancellationToken,
    ) -> Self {
        Runner {
            engine,
            buffer,
            open_ports,
            discovery,
            enrolment,
            stop,
            running: Vec::new(),
        }
    }

    pub fn apply(&mut self, work: Work) -> Applied {
        let mut wanted: Vec<(Loop, Option<ProbePlan>)> = work
            .probes
            .iter()
            .map(|p| (probe_loop(p), Some(p.plan.clone())))
            .collect();
        wanted.extend(work.sites.into_iter().map(|s| (Loop::Discovery(s), None)));
        wanted.extend(
            work.speedtests
                .into_iter()
                .map(|s| (Loop::SpeedTest(s), None)),
        );
        let mut applied = Applied::default();
        let mut kept = Vec::new();
        for running in std::mem::take(&mut self.running) {
            match wanted.iter().find(|(what, _)| *what == running.what) {
                Some((_, plan)) => {
                    if let (Some(tx), Some(plan)) = (&running.targets, plan) {
                        if tx.send_if_modified(|now| {
                            let changed = now.targets != plan.targets;
                            if changed {
                                now.targets = plan.targets.clone();
                            }
                            changed
                        }) {
                            applied.retargeted += 1;
                        }
                    }
                    kept.push(running);
                }
                None => {
                    // Stops at once; a round half done is not recorded, nothing buffered is
                    // lost.
                    running.stop.cancel();
                    applied.stopped += 1;
                }
            }
        }
        applied.kept = kept.len();
        self.running = kept;
        for (what, plan) in wanted {
            if self.running.iter().any(|r| r.what == what) {
                continue;
            }
            let stop = self.stop.child_token();
            let (task, targets) = self.start(&what, plan, stop.clone());
            self.running.push(Running {
                what,
                targets,
                stop,
                task,
            });
            applied.started += 1;
        }
        applied
    }

    fn start(
        &self,
        what: &Loop,
        plan: Option<ProbePlan>,
        stop: CancellationToken,
    ) -> (JoinHandle<()>, Option<watch::Sender<ProbePlan>>) {
        match (what.clone(), plan) {
            (Loop::Probe { .. }, Some(plan)) => {
                let (tx, rx) = watch::channel(plan);
                let task = tokio::spawn(crate::probe_loop(
                    rx,
                    self.engine.clone(),
                    self.buffer.clone(),
                    self.open_ports.clone(),
                    stop,
                ));
                (task, Some(tx))
            }
            (Loop::Discovery(site), _) => (
                tokio::spawn(crate::discovery_loop(
                    site,
                    self.discovery.clone(),
                    self.engine.clone(),
                    self.buffer.clone(),
                    self.open_ports.clone(),
                    self.enrolment.clone(),
                    stop,
                )),
                None,
            ),
            (Loop::SpeedTest(plan), _) => (
                tokio::spawn(crate::speedtest_loop(plan, self.buffer.clone(), stop)),
                None,
            ),
            (Loop::Probe { .. }, None) => (tokio::spawn(async {}), None),
        }
    }

    /// Stops every loop and waits for each to end.
    pub async fn stop_all(self) {
        for running in &self.running {
            running.stop.cancel();
        }
        for running in self.running {
            let _ = running.task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmp::RateLimiter;
    use std::net::IpAddr;
    use std::time::Duration;

    fn plan(targets: &[&str], count: u32) -> ProbePlan {
        ProbePlan {
            targets: targets
                .iter()
                .map(|t| t.parse::<IpAddr>().unwrap())
                .collect(),
            count,
            interval: Duration::from_secs(300),
            ping_interval: Duration::from_millis(100),
            timeout: Duration::from_millis(200),
            min_timeout: Duration::from_millis(100),
            degraded_loss_pct: 5.0,
            degraded_rtt_ms: 250.0,
        }
    }

    fn work(fast: &[&str], count: u32) -> Work {
        Work {
            probes: vec![
                ProbeWork {
                    name: "agent.toml".into(),
                    plan: plan(&["192.0.2.1"], 3),
                },
                ProbeWork {
                    name: "check:fast".into(),
                    plan: plan(fast, count),
                },
            ],
            ..Work::default()
        }
    }

    #[tokio::test]
    async fn loops_are_kept_retargeted_or_replaced_as_little_as_the_work_changes() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = SharedBuffer::new(
            crate::buffer::Buffer::open(&dir.path().join("b.db"), 10_000).unwrap(),
        );
        let stop = CancellationToken::new();
        let mut runner = Runner::new(
            Arc::new(LazyEngine::new(Arc::new(RateLimiter::new(100)), false)),
            buffer.clone(),
            OpenPorts::default(),
            DiscoveryOptions::default(),
            super::super::enrolment::Enrolment::open(buffer).await,
            stop.clone(),
        );
        let first = runner.apply(work(&["192.0.2.2"], 3));
        assert_eq!((first.started, first.stopped), (2, 0));
        let same = runner.apply(work(&["192.0.2.2"], 3));
        assert_eq!(
            (same.started, same.stopped, same.kept, same.retargeted),
            (0, 0, 2, 0)
        );
        // A target added to a check: the same loop, handed its new list.
        let more = runner.apply(work(&["192.0.2.2", "192.0.2.3"], 3));
        assert_eq!((more.started, more.stopped, more.retargeted), (0, 0, 1));
        let fast = runner
            .running
            .iter()
            .find_map(|r| match &r.what {
                Loop::Probe { name, .. } if name == "check:fast" => r.targets.clone(),
                _ => None,
            })
            .unwrap();
        assert_eq!(fast.borrow().targets.len(), 2);
        // Its settings changed: that loop alone is replaced.
        let other = runner.apply(work(&["192.0.2.2", "192.0.2.3"], 5));
        assert_eq!((other.started, other.stopped, other.kept), (1, 1, 1));
        runner.stop_all().await;
    }
}
