//! Round statistics, SmokePing-style: min, median, mean, max, p95, standard deviation and jitter
//! (mean absolute difference of consecutive RTTs).

use crate::config::ProbePlan;
use netwarden_shared::{DeviceStatus, RttStats};

/// Statistics over the replies' RTTs (ms, in send order); `None` when there were none.
pub fn round_stats(rtts: &[f32]) -> Option<RttStats> {
    if rtts.is_empty() {
        return None;
    }
    let n = rtts.len();
    let mut sorted = rtts.to_vec();
    sorted.sort_by(f32::total_cmp);
    let mean = rtts.iter().map(|v| f64::from(*v)).sum::<f64>() / n as f64;
    let variance = rtts
        .iter()
        .map(|v| (f64::from(*v) - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    // Nearest-rank percentile.
    let p95 = sorted[((0.95 * n as f64).ceil() as usize).clamp(1, n) - 1];
    let jitter = if n < 2 {
        0.0
    } else {
        rtts.windows(2)
            .map(|w| f64::from((w[1] - w[0]).abs()))
            .sum::<f64>()
            / (n - 1) as f64
    };
    Some(RttStats {
        min: sorted[0],
        median,
        mean: mean as f32,
        max: sorted[n - 1],
        p95,
        stddev: variance.sqrt() as f32,
        jitter: jitter as f32,
    })
}

/// Online, degraded (loss or median RTT over the plan's thresholds) or offline (no reply).
pub fn judge(sent: u32, received: u32, rtt: Option<&RttStats>, plan: &ProbePlan) -> DeviceStatus {
    if received == 0 {
        return DeviceStatus::Offline;
    }
    let loss = 100.0 * f64::from(sent - received) / f64::from(sent.max(1));
    let slow = rtt.is_some_and(|r| f64::from(r.median) >= plan.degraded_rtt_ms);
    if loss >= plan.degraded_loss_pct || slow {
        DeviceStatus::Degraded
    } else {
        DeviceStatus::Online
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_match_hand_computed_values() {
        let s = round_stats(&[10.0, 12.0, 11.0, 15.0]).unwrap();
        assert_eq!(s.min, 10.0);
        assert_eq!(s.max, 15.0);
        assert_eq!(s.median, 11.5);
        assert_eq!(s.mean, 12.0);
        assert_eq!(s.p95, 15.0);
        // |12-10| + |11-12| + |15-11| = 7 over 3 pairs
        assert!((s.jitter - 7.0 / 3.0).abs() < 1e-6);
        // population variance = (4 + 0 + 1 + 9) / 4 = 3.5
        assert!((s.stddev - 3.5f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn single_reply_and_no_reply() {
        let s = round_stats(&[7.5]).unwrap();
        assert_eq!(
            (s.min, s.median, s.max, s.p95, s.jitter, s.stddev),
            (7.5, 7.5, 7.5, 7.5, 0.0, 0.0)
        );
        assert!(round_stats(&[]).is_none());
    }

    #[test]
    fn p95_is_nearest_rank() {
        let rtts: Vec<f32> = (1..=20).map(|v| v as f32).collect();
        assert_eq!(round_stats(&rtts).unwrap().p95, 19.0);
    }
}
