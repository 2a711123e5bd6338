//! Starts and stops the agent's loops to match its [`Work`]: a loop whose description is
//! unchanged keeps running (and keeps its schedule), one no longer wanted is stopped, a new one
//! is started. A probe loop whose targets alone changed is handed its new list and keeps its
//! schedule. Nothing restarts, and what a loop buffered stays buffered.

use super::work::{ProbeWork, Work};
use crate::buffer::SharedBuffer;
use crate::config::{ProbePlan, Site, SpeedTestPlan};
use crate::discovery::DiscoveryOptions;
use crate::probe::liveness::OpenPorts;
use crate::probe::tcp::PortPlan;
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
    /// By name and settings, as a probe loop.
    Ports {
        name: String,
        settings: PortPlan,
    },
}

/// The targets a loop is handed on a change: a probe loop's or a port loop's.
#[derive(Debug, Clone)]
enum Targets {
    Probe(ProbePlan),
    Ports(PortPlan),
}

/// Where a running loop takes new targets from.
enum Retarget {
    Probe(watch::Sender<ProbePlan>),
    Ports(watch::Sender<PortPlan>),
}

impl Retarget {
    /// Hands the loop `targets` if they differ from its own; whether they did.
    fn send(&self, targets: &Targets) -> bool {
        fn swap<T: Clone + PartialEq>(now: &mut Vec<T>, new: &[T]) -> bool {
            let changed = now.as_slice() != new;
            if changed {
                *now = new.to_vec();
            }
            changed
        }
        match (self, targets) {
            (Retarget::Probe(tx), Targets::Probe(plan)) => {
                tx.send_if_modified(|now| swap(&mut now.targets, &plan.targets))
            }
            (Retarget::Ports(tx), Targets::Ports(plan)) => {
                tx.send_if_modified(|now| swap(&mut now.targets, &plan.targets))
            }
            _ => false,
        }
    }
}

struct Running {
    what: Loop,
    /// A probe or port loop's targets, changed in place.
    targets: Option<Retarget>,
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
        let mut wanted: Vec<(Loop, Option<Targets>)> = work
            .probes
            .iter()
            .map(|p| (probe_loop(p), Some(Targets::Probe(p.plan.clone()))))
            .collect();
        wanted.extend(work.ports.iter().map(|p| {
            (
                Loop::Ports {
                    name: p.name.clone(),
                    settings: PortPlan {
                        targets: Vec::new(),
                        ..p.plan.clone()
                    },
                },
                Some(Targets::Ports(p.plan.clone())),
            )
        }));
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
                        if tx.send(plan) {
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
        plan: Option<Targets>,
        stop: CancellationToken,
    ) -> (JoinHandle<()>, Option<Retarget>) {
        match (what.clone(), plan) {
            (Loop::Probe { .. }, Some(Targets::Probe(plan))) => {
                let (tx, rx) = watch::channel(plan);
                let task = tokio::spawn(crate::probe_loop(
                    rx,
                    self.engine.clone(),
                    self.buffer.clone(),
                    self.open_ports.clone(),
                    stop,
                ));
                (task, Some(Retarget::Probe(tx)))
            }
            (Loop::Ports { .. }, Some(Targets::Ports(plan))) => {
                let (tx, rx) = watch::channel(plan);
                let task = tokio::spawn(crate::port_loop(rx, self.buffer.clone(), stop));
                (task, Some(Retarget::Ports(tx)))
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
            // A loop is always wanted with its own kind of targets.
            (Loop::Probe { .. } | Loop::Ports { .. }, _) => (tokio::spawn(async {}), None),
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
            .find_map(|r| match (&r.what, &r.targets) {
                (Loop::Probe { name, .. }, Some(Retarget::Probe(tx))) if name == "check:fast" => {
                    Some(tx.borrow().targets.len())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(fast, 2);
        // Its settings changed: that loop alone is replaced.
        let other = runner.apply(work(&["192.0.2.2", "192.0.2.3"], 5));
        assert_eq!((other.started, other.stopped, other.kept), (1, 1, 1));
        runner.stop_all().await;
    }

    #[tokio::test]
    async fn a_port_loop_is_retargeted_in_place_and_checks_its_ports() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = SharedBuffer::new(
            crate::buffer::Buffer::open(&dir.path().join("b.db"), 10_000).unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ports = |targets: &[&str], timeout_ms: u64| Work {
            ports: vec![super::super::work::PortWork {
                name: "ports:web".into(),
                plan: PortPlan {
                    targets: targets.iter().map(|t| t.parse().unwrap()).collect(),
                    ports: vec![port],
                    interval: Duration::from_secs(300),
                    timeout: Duration::from_millis(timeout_ms),
                },
            }],
            ..Work::default()
        };
        let stop = CancellationToken::new();
        let mut runner = Runner::new(
            Arc::new(LazyEngine::new(Arc::new(RateLimiter::new(100)), false)),
            buffer.clone(),
            OpenPorts::default(),
            DiscoveryOptions::default(),
            super::super::enrolment::Enrolment::open(buffer.clone()).await,
            stop.clone(),
        );
        assert_eq!(runner.apply(ports(&["127.0.0.1"], 500)).started, 1);
        // The first round runs at once: one record for the one target and port, open.
        let mut batch = None;
        for _ in 0..250 {
            batch = buffer.with(|b| b.next_batch(10)).await.unwrap();
            if batch.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let records = batch.expect("a round buffered").records;
        use netwarden_proto::v1;
        assert!(
            matches!(
                &records[..],
                [v1::Record { kind: Some(v1::record::Kind::PortCheck(c)), .. }]
                    if c.port == u32::from(port) && c.state == v1::PortState::Open as i32
            ),
            "{records:?}"
        );
        let more = runner.apply(ports(&["127.0.0.1", "127.0.0.2"], 500));
        assert_eq!((more.started, more.stopped, more.retargeted), (0, 0, 1));
        let other = runner.apply(ports(&["127.0.0.1", "127.0.0.2"], 900));
        assert_eq!(
            (other.started, other.stopped),
            (1, 1),
            "new settings, new loop"
        );
        runner.stop_all().await;
    }
}
