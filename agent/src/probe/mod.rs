//! ICMP probe rounds: the statistics (pure, unit-tested) and the platform part that sends
//! echo requests (surge-ping, behind [`EchoSender`] so scheduling is testable without root).

pub mod icmp;
pub mod stats;

pub use icmp::{IcmpError, SurgeSender};
pub use stats::{judge, round_stats};

use crate::config::ProbePlan;
use chrono::Utc;
use netwarden_shared::{ProbeRound, Record, RecordKind};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The seam between scheduling and the raw socket: sends one echo request and waits for its
/// reply. `Ok(Some(rtt))`, `Ok(None)` when it timed out, `Err` when it could not be sent at all.
pub trait EchoSender: Send + Sync + 'static {
    fn echo(
        &self,
        target: IpAddr,
        identifier: u16,
        sequence: u16,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Option<Duration>, IcmpError>> + Send;
}

/// Pings one target `count` times, `ping_interval` apart, and summarises the round. Each ping
/// goes out on its schedule whether or not earlier ones were answered, so a lossy target does
/// not stretch the round: it lasts `(count - 1) × ping_interval + timeout` at most.
pub async fn probe_target<S: EchoSender>(
    sender: &S,
    target: IpAddr,
    identifier: u16,
    plan: &ProbePlan,
) -> Result<ProbeRound, IcmpError> {
    let start = tokio::time::Instant::now();
    let pings = (0..plan.count).map(|sequence| async move {
        tokio::time::sleep_until(start + plan.ping_interval * sequence).await;
        sender
            .echo(target, identifier, sequence as u16, plan.timeout)
            .await
    });
    // join_all keeps send order, which jitter (consecutive differences) depends on.
    let replies = futures::future::join_all(pings).await;
    let sent = plan.count;
    let mut rtts = Vec::with_capacity(plan.count as usize);
    for reply in replies {
        if let Some(rtt) = reply? {
            rtts.push(rtt.as_secs_f32() * 1000.0);
        }
    }
    let rtt = round_stats(&rtts);
    let received = rtts.len() as u32;
    Ok(ProbeRound {
        target,
        sent,
        received,
        status: judge(sent, received, rtt.as_ref(), plan),
        rtt,
        rtts_ms: rtts,
    })
}

/// Probes every target concurrently; a target whose pings cannot even be sent is reported
/// as offline with the error logged, so one bad target never hides the others.
pub async fn probe_round<S: EchoSender>(
    sender: Arc<S>,
    plan: &ProbePlan,
    round: u64,
) -> Vec<Record> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, target) in plan.targets.iter().copied().enumerate() {
        let sender = sender.clone();
        let plan = plan.clone();
        // Identifiers differ per target and per round so a late reply never counts twice.
        let identifier = (index as u64).wrapping_mul(7919).wrapping_add(round) as u16;
        tasks.spawn(async move {
            let result = probe_target(sender.as_ref(), target, identifier, &plan).await;
            (target, result)
        });
    }
    let mut records = Vec::with_capacity(plan.targets.len());
    while let Some(joined) = tasks.join_next().await {
        let Ok((target, result)) = joined else {
            continue;
        };
        let round = result.unwrap_or_else(|err| {
            tracing::warn!(%target, error = %err, "cannot probe target");
            unreachable_round(target, plan.count)
        });
        records.push(Record {
            record_id: 0,
            observed_at: Utc::now(),
            kind: RecordKind::Probe(round),
        });
    }
    records
}

fn unreachable_round(target: IpAddr, count: u32) -> ProbeRound {
    ProbeRound {
        target,
        sent: count,
        received: 0,
        rtt: None,
        rtts_ms: Vec::new(),
        status: netwarden_shared::DeviceStatus::Offline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_shared::DeviceStatus;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Answers every `drop_every`-th ping with nothing and the rest after `rtt`.
    struct Scripted {
        rtt: Duration,
        drop_every: u32,
        calls: AtomicU32,
    }

    impl EchoSender for Scripted {
        async fn echo(
            &self,
            _: IpAddr,
            _: u16,
            _: u16,
            _: Duration,
        ) -> Result<Option<Duration>, IcmpError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            Ok((n % self.drop_every != 0).then_some(self.rtt))
        }
    }

    fn plan(targets: &[&str]) -> ProbePlan {
        ProbePlan {
            targets: targets.iter().map(|t| t.parse().unwrap()).collect(),
            count: 20,
            interval: Duration::from_secs(300),
            ping_interval: Duration::from_millis(1000),
            timeout: Duration::from_millis(2000),
            degraded_loss_pct: 5.0,
            degraded_rtt_ms: 250.0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_counts_every_ping_and_paces_them() {
        let sender = Scripted {
            rtt: Duration::from_millis(30),
            drop_every: 5,
            calls: AtomicU32::new(0),
        };
        let started = tokio::time::Instant::now();
        let round = probe_target(
            &sender,
            "10.0.0.2".parse().unwrap(),
            1,
            &plan(&["10.0.0.2"]),
        )
        .await
        .unwrap();
        assert_eq!((round.sent, round.received), (20, 16));
        assert_eq!(round.loss_pct(), 20.0);
        assert_eq!(round.status, DeviceStatus::Degraded);
        assert_eq!(round.rtt.unwrap().median, 30.0);
        // 20 pings one second apart: the last goes out 19 s after the first.
        assert_eq!(started.elapsed(), Duration::from_secs(19));
    }

    /// Never answers before its timeout: a lost ping.
    struct Silent;

    impl EchoSender for Silent {
        async fn echo(
            &self,
            _: IpAddr,
            _: u16,
            _: u16,
            timeout: Duration,
        ) -> Result<Option<Duration>, IcmpError> {
            tokio::time::sleep(timeout).await;
            Ok(None)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn lost_pings_do_not_stretch_the_round() {
        let started = tokio::time::Instant::now();
        let round = probe_target(
            &Silent,
            "10.0.0.2".parse().unwrap(),
            1,
            &plan(&["10.0.0.2"]),
        )
        .await
        .unwrap();
        assert_eq!((round.sent, round.received), (20, 0));
        assert_eq!(round.status, DeviceStatus::Offline);
        // Last ping at 19 s, its 2 s timeout ends at 21 s (not 20 × 2 s = 40 s).
        assert_eq!(started.elapsed(), Duration::from_secs(21));
    }

    #[tokio::test(start_paused = true)]
    async fn every_target_gets_a_record() {
        let sender = Arc::new(Scripted {
            rtt: Duration::from_millis(1),
            drop_every: u32::MAX,
            calls: AtomicU32::new(0),
        });
        let records = probe_round(sender, &plan(&["10.0.0.2", "10.0.0.3", "::1"]), 1).await;
        assert_eq!(records.len(), 3);
        assert!(records
            .iter()
            .all(|r| matches!(&r.kind, RecordKind::Probe(p) if p.status == DeviceStatus::Online)));
    }
}
