//! Probe rollups: 5-minute and 1-hour buckets per device (rounds, replies, loss, RTT min / mean /
//! max / p95 over every reply), computed by [`job`] within a minute of each bucket closing, and
//! recomputed when an agent delivers rounds late (after an outage its buffer drains old rounds).
//! [`retention`] deletes raw rounds and each resolution after their own ages.

pub mod job;
pub mod retention;

use crate::storage::rollup::{loss_pct, RawRound, RollupRow};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The resolutions kept, in seconds.
pub const RESOLUTIONS: [u32; 2] = [300, 3600];

/// `[retention]`: how long probe data is kept at each resolution (0 keeps it forever).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub raw_days: u32,
    pub rollup_5m_days: u32,
    pub rollup_1h_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            raw_days: 7,
            rollup_5m_days: 90,
            rollup_1h_days: 730,
        }
    }
}

impl RetentionConfig {
    pub fn check(&self) -> Result<(), String> {
        let nonzero = |v: u32| if v == 0 { u32::MAX } else { v };
        if nonzero(self.rollup_5m_days) < nonzero(self.raw_days)
            || nonzero(self.rollup_1h_days) < nonzero(self.rollup_5m_days)
        {
            return Err("retention.rollup_5m_days: coarser data must be kept at least as long as finer (raw <= 5m <= 1h)".into());
        }
        Ok(())
    }

    pub fn days(&self, resolution_secs: u32) -> u32 {
        match resolution_secs {
            300 => self.rollup_5m_days,
            _ => self.rollup_1h_days,
        }
    }
}

/// The start of the bucket holding `t`.
pub fn bucket_start(t: DateTime<Utc>, resolution_secs: u32) -> DateTime<Utc> {
    let step = i64::from(resolution_secs) * 1000;
    let ms = t.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(step)).unwrap_or(t)
}

/// Buckets of these rounds at this resolution, one row per device and bucket.
pub fn aggregate(rounds: &[RawRound], resolution_secs: u32) -> Vec<RollupRow> {
    #[derive(Default)]
    struct Acc {
        rounds: i64,
        answered: i64,
        sent: i64,
        received: i64,
        rtts: Vec<f32>,
    }
    let mut buckets: BTreeMap<(i64, DateTime<Utc>), Acc> = BTreeMap::new();
    for r in rounds {
        let acc = buckets
            .entry((r.device_id, bucket_start(r.ts, resolution_secs)))
            .or_default();
        acc.rounds += 1;
        acc.answered += i64::from(r.received > 0);
        acc.sent += i64::from(r.sent);
        acc.received += i64::from(r.received);
        acc.rtts
            .extend(r.rtts_ms.iter().copied().filter(|v| v.is_finite()));
    }
    buckets
        .into_iter()
        .map(|((device_id, ts), mut acc)| {
            acc.rtts.sort_unstable_by(f32::total_cmp);
            let n = acc.rtts.len();
            let mean =
                (n > 0).then(|| acc.rtts.iter().map(|v| f64::from(*v)).sum::<f64>() / n as f64);
            // Nearest rank: the smallest value with at least 95 % of replies at or below it.
            let p95 =
                (n > 0).then(|| acc.rtts[((n as f64 * 0.95).ceil() as usize).clamp(1, n) - 1]);
            RollupRow {
                device_id,
                ts,
                rounds: acc.rounds,
                answered: acc.answered,
                sent: acc.sent,
                received: acc.received,
                loss_pct: loss_pct(acc.sent, acc.received),
                rtt_min_ms: acc.rtts.first().copied(),
                rtt_mean_ms: mean.map(|m| m as f32),
                rtt_max_ms: acc.rtts.last().copied(),
                rtt_p95_ms: p95,
            }
        })
        .collect()
}

/// The oldest time rollups may be (re)computed from: older raw rounds may already be gone.
pub fn earliest(now: DateTime<Utc>, raw_days: u32) -> DateTime<Utc> {
    if raw_days == 0 {
        now - Duration::days(3650)
    } else {
        now - Duration::days(i64::from(raw_days))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(device_id: i64, secs: i64, sent: i32, rtts: &[f32]) -> RawRound {
        RawRound {
            device_id,
            ts: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
            sent,
            received: rtts.len() as i32,
            rtts_ms: rtts.to_vec(),
        }
    }

    #[test]
    fn buckets_align_to_their_resolution() {
        let t = DateTime::parse_from_rfc3339("2026-11-21T10:07:31Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            bucket_start(t, 300).to_rfc3339(),
            "2026-11-21T10:05:00+00:00"
        );
        assert_eq!(
            bucket_start(t, 3600).to_rfc3339(),
            "2026-11-21T10:00:00+00:00"
        );
    }

    #[test]
    fn a_bucket_sums_rounds_and_takes_rtt_statistics_over_every_reply() {
        // 1_700_000_000 is 22:13:20 UTC, so +0..+99 s share a 5-minute bucket (22:10).
        let rtts: Vec<f32> = (1..=20).map(|v| v as f32).collect();
        let rows = aggregate(
            &[
                round(1, 0, 20, &rtts),
                round(1, 30, 4, &[]),
                round(1, 60, 4, &[100.0, 200.0]),
                round(2, 0, 4, &[5.0]),
            ],
            300,
        );
        assert_eq!(rows.len(), 2);
        let one = &rows[0];
        assert_eq!((one.device_id, one.rounds, one.answered), (1, 3, 2));
        assert_eq!((one.sent, one.received), (28, 22));
        assert!((one.loss_pct - 100.0 * 6.0 / 28.0).abs() < 1e-4);
        assert_eq!(one.rtt_min_ms, Some(1.0));
        assert_eq!(one.rtt_max_ms, Some(200.0));
        // 22 replies: the 21st smallest (ceil(20.9)) is 100.
        assert_eq!(one.rtt_p95_ms, Some(100.0));
        let mean = (210.0 + 300.0) / 22.0;
        assert!((one.rtt_mean_ms.unwrap() - mean).abs() < 1e-3);
        assert_eq!(rows[1].rtt_p95_ms, Some(5.0));
    }

    #[test]
    fn a_silent_bucket_has_full_loss_and_no_rtt() {
        let rows = aggregate(&[round(7, 0, 4, &[]), round(7, 10, 4, &[])], 3600);
        assert_eq!(rows[0].loss_pct, 100.0);
        assert_eq!(rows[0].answered, 0);
        assert!(rows[0].rtt_mean_ms.is_none() && rows[0].rtt_p95_ms.is_none());
    }

    #[test]
    fn retention_must_keep_coarser_data_longer() {
        assert!(RetentionConfig::default().check().is_ok());
        let bad = RetentionConfig {
            raw_days: 30,
            rollup_5m_days: 7,
            rollup_1h_days: 730,
        };
        assert!(bad.check().is_err());
        let forever = RetentionConfig {
            raw_days: 0,
            rollup_5m_days: 0,
            rollup_1h_days: 0,
        };
        assert!(forever.check().is_ok());
    }
}
