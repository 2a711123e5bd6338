//! Starts and stops the agent's loops to match its [`Work`]: a loop whose description is
//! unchanged keeps running (and keeps its schedule), one no longer wanted is stopped, a new one
//! is started. Nothing restarts, and what a loop buffered stays buffered.

use super::work::Work;
use crate::buffer::SharedBuffer;
use crate::config::{ProbePlan, Site, SpeedTestPlan};
use crate::discovery::DiscoveryOptions;
use crate::probe::liveness::OpenPorts;
use crate::LazyEngine;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq)]
enum Loop {
    Probe(ProbePlan),
    Discovery(Site),
    SpeedTest(SpeedTestPlan),
}

struct Running {
    what: Loop,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// What an [`Runner::apply`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub started: usize,
    pub stopped: usize,
    pub kept: usize,
}

pub struct Runner {
    engine: Arc<LazyEngine>,
    buffer: SharedBuffer,
    open_ports: OpenPorts,
    discovery: DiscoveryOptions,
    stop: CancellationToken,
    running: Vec<Running>,
}

impl Runner {
    pub fn new(
        engine: Arc<LazyEngine>,
        buffer: SharedBuffer,
        open_ports: OpenPorts,
        discovery: DiscoveryOptions,
        stop: CancellationToken,
    ) -> Self {
        Runner {
            engine,
            buffer,
            open_ports,
            discovery,
            stop,
            running: Vec::new(),
        }
    }

    pub fn apply(&mut self, work: Work) -> Applied {
        let wanted: Vec<Loop> = work
            .probes
            .into_iter()
            .map(Loop::Probe)
            .chain(work.sites.into_iter().map(Loop::Discovery))
            .chain(work.speedtests.into_iter().map(Loop::SpeedTest))
            .collect();
        let mut applied = Applied::default();
        let mut kept = Vec::new();
        for running in std::mem::take(&mut self.running) {
            if wanted.contains(&running.what) {
                kept.push(running);
            } else {
                // Stops at once; a round half done is not recorded, nothing buffered is lost.
                running.stop.cancel();
                applied.stopped += 1;
            }
        }
        applied.kept = kept.len();
        self.running = kept;
        for what in wanted {
            if self.running.iter().any(|r| r.what == what) {
                continue;
            }
            let stop = self.stop.child_token();
            let task = self.start(&what, stop.clone());
            self.running.push(Running { what, stop, task });
            applied.started += 1;
        }
        applied
    }

    fn start(&self, what: &Loop, stop: CancellationToken) -> JoinHandle<()> {
        match what.clone() {
            Loop::Probe(plan) => tokio::spawn(crate::probe_loop(
                plan,
                self.engine.clone(),
                self.buffer.clone(),
                self.open_ports.clone(),
                stop,
            )),
            Loop::Discovery(site) => tokio::spawn(crate::discovery_loop(
                site,
                self.discovery.clone(),
                self.engine.clone(),
                self.buffer.clone(),
                self.open_ports.clone(),
                stop,
            )),
            Loop::SpeedTest(plan) => {
                tokio::spawn(crate::speedtest_loop(plan, self.buffer.clone(), stop))
            }
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
