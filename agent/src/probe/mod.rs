//! Probe rounds: SmokePing-style rounds of pings per target through the ICMP engine, and
//! the statistics and status of each round (pure, unit-tested).

pub mod liveness;
pub mod stats;
pub mod tcp;

pub use stats::{judge, round_stats};

use crate::config::ProbePlan;
use crate::icmp::{EngineError, IcmpEngine, JobOutcome, PingJob};
use chrono::Utc;
use netwarden_shared::{ProbeRound, Record, RecordKind};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The slowest RTT each target showed in its last answered round: the starting point of its
/// adaptive timeout in the next.
pub type RttHints = HashMap<IpAddr, Duration>;

/// One round over every target of the plan. Targets whose pings could not be sent (no route,
/// no socket for the family) come back offline, with the reason logged.
pub async fn probe_round(
    engine: &IcmpEngine,
    plan: &ProbePlan,
    hints: &mut RttHints,
) -> Result<Vec<Record>, EngineError> {
    let job = PingJob {
        targets: plan.targets.clone(),
        count: plan.count,
        spacing: plan.ping_interval,
        timeout: plan.timeout_policy(),
        hints: plan.targets.iter().map(|t| hints.get(t).copied()).collect(),
    };
    let outcome = engine.run(job).await?;
    let observed_at = Utc::now();
    let mut records = Vec::with_capacity(outcome.targets.len());
    for (index, target) in outcome.targets.iter().enumerate() {
        if let Some(err) = &outcome.send_errors[index] {
            tracing::warn!(%target, error = %err, "cannot send echo requests");
        }
        if let Some(slowest) = outcome.rtts(index).flatten().max() {
            hints.insert(*target, slowest);
        }
        records.push(Record {
            record_id: 0,
            observed_at,
            kind: RecordKind::Probe(round_of(&outcome, index, plan)),
        });
    }
    Ok(records)
}

/// The statistics of one target's pings in a finished job.
pub fn round_of(outcome: &JobOutcome, index: usize, plan: &ProbePlan) -> ProbeRound {
    let rtts: Vec<f32> = outcome
        .rtts(index)
        .flatten()
        .map(|d| d.as_secs_f32() * 1000.0)
        .collect();
    let rtt = round_stats(&rtts);
    let sent = outcome.count;
    let received = rtts.len() as u32;
    ProbeRound {
        target: outcome.targets[index],
        sent,
        received,
        status: judge(sent, received, rtt.as_ref(), plan),
        alive_by: (received > 0).then_some(netwarden_shared::Evidence::Icmp),
        rtt,
        rtts_ms: rtts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_shared::DeviceStatus;

    fn plan() -> ProbePlan {
        ProbePlan {
            targets: vec!["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()],
            count: 5,
            interval: Duration::from_secs(300),
            ping_interval: Duration::from_millis(1000),
            timeout: Duration::from_millis(2000),
            min_timeout: Duration::from_millis(500),
            degraded_loss_pct: 5.0,
            degraded_rtt_ms: 250.0,
        }
    }

    #[test]
    fn a_round_keeps_replies_in_send_order_and_judges_the_target() {
        let ms = |v: u64| Some(Duration::from_millis(v));
        // Ping-major: (ping 0: t0, t1), (ping 1: t0, t1), ...
        let rtts = [
            ms(10),
            None,
            ms(30),
            None,
            None,
            None,
            ms(20),
            None,
            ms(10),
            None,
        ];
        let outcome = JobOutcome::new(plan().targets, 5, &rtts);
        let first = round_of(&outcome, 0, &plan());
        assert_eq!((first.sent, first.received), (5, 4));
        let want = [10.0, 30.0, 20.0, 10.0];
        assert_eq!(first.rtts_ms.len(), want.len());
        for (got, want) in first.rtts_ms.iter().zip(want) {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
        assert_eq!(first.status, DeviceStatus::Degraded, "20 % loss");
        assert!((first.rtt.unwrap().jitter - 40.0 / 3.0).abs() < 1e-3);
        let second = round_of(&outcome, 1, &plan());
        assert_eq!((second.received, second.status), (0, DeviceStatus::Offline));
        assert!(second.rtt.is_none());
    }
}
