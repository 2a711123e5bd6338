//! Per-device detection over probe rounds: offline for N rounds, packet loss over two
//! thresholds, latency over a learned baseline, jitter, and flapping.

use super::streak::{Reading, Streak};
use super::{firing, kinds, Signal};
use crate::storage::alerting::Severity;
use chrono::{DateTime, Duration, Utc};
use netwarden_shared::{DeviceStatus, ProbeRound};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// `[detect]` thresholds for probed devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceRules {
    /// Rounds with no reply before a device is offline.
    pub offline_rounds: u32,
    /// Good rounds in a row before any condition clears (hysteresis).
    pub clear_rounds: u32,
    /// Loss at or over this (%) is a medium anomaly...
    pub loss_pct: f64,
    /// ...and at or over this a high one.
    pub loss_high_pct: f64,
    /// Rounds over `loss_pct` before it fires.
    pub loss_rounds: u32,
    /// Latency fires when the median RTT exceeds this many times the learned baseline...
    pub latency_factor: f64,
    /// ...and the baseline plus this many robust spreads (mean absolute deviations)...
    pub latency_spreads: f64,
    /// ...and the baseline by at least this much (sub-millisecond LANs are noisy).
    pub latency_min_delta_ms: f64,
    pub latency_rounds: u32,
    /// Rounds the baseline learns from before latency can fire.
    pub baseline_rounds: u32,
    /// Weight of a new round in the baseline (EWMA).
    pub baseline_alpha: f64,
    /// Jitter over this (ms) fires after `jitter_rounds`.
    pub jitter_ms: f64,
    pub jitter_rounds: u32,
    /// Up/down changes within `flap_window_secs` that make a device flapping.
    pub flap_changes: u32,
    pub flap_window_secs: u64,
    /// Speed tests under these (Mbit/s) are `speed_low` anomalies; 0 turns the check off.
    pub speed_floor_download_mbps: f64,
    pub speed_floor_upload_mbps: f64,
}

impl Default for DeviceRules {
    fn default() -> Self {
        DeviceRules {
            offline_rounds: 2,
            clear_rounds: 2,
            loss_pct: 5.0,
            loss_high_pct: 20.0,
            loss_rounds: 2,
            latency_factor: 2.5,
            latency_spreads: 3.0,
            latency_min_delta_ms: 5.0,
            latency_rounds: 3,
            baseline_rounds: 10,
            baseline_alpha: 0.1,
            jitter_ms: 30.0,
            jitter_rounds: 3,
            flap_changes: 6,
            flap_window_secs: 600,
            speed_floor_download_mbps: 0.0,
            speed_floor_upload_mbps: 0.0,
        }
    }
}

impl DeviceRules {
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("detect.loss_pct", self.loss_pct),
            ("detect.latency_factor", self.latency_factor),
            ("detect.jitter_ms", self.jitter_ms),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("{name}: must be a positive number"));
            }
        }
        if self.loss_high_pct < self.loss_pct || self.loss_high_pct > 100.0 {
            return Err("detect.loss_high_pct: must be between loss_pct and 100".into());
        }
        if self.latency_factor <= 1.0 {
            return Err("detect.latency_factor: must be over 1".into());
        }
        if !(self.baseline_alpha > 0.0 && self.baseline_alpha <= 1.0) {
            return Err("detect.baseline_alpha: must be in (0, 1]".into());
        }
        if !(self.speed_floor_download_mbps >= 0.0 && self.speed_floor_upload_mbps >= 0.0) {
            return Err("detect.speed_floor_download_mbps: must be 0 or more".into());
        }
        if self.flap_changes < 2 {
            return Err("detect.flap_changes: must be at least 2".into());
        }
        Ok(())
    }
}

/// The learned normal RTT: an EWMA of the median and of its absolute deviation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Baseline {
    pub mean: f64,
    pub spread: f64,
    pub rounds: u32,
}

impl Baseline {
    fn learn(&mut self, rtt: f64, alpha: f64) {
        if self.rounds == 0 {
            self.mean = rtt;
            self.spread = 0.0;
        } else {
            // A faster start: plain averaging until 1/alpha rounds, then the EWMA.
            let weight = alpha.max(1.0 / f64::from(self.rounds + 1));
            let deviation = (rtt - self.mean).abs();
            self.mean += weight * (rtt - self.mean);
            self.spread += weight * (deviation - self.spread);
        }
        self.rounds = self.rounds.saturating_add(1);
    }
}

/// What one device's detector remembers between rounds.
#[derive(Debug, Clone, Default)]
pub struct DeviceState {
    offline: Streak,
    /// Whether an offline anomaly was reported (not held back by flapping).
    offline_reported: bool,
    loss: Streak,
    loss_severity: Option<Severity>,
    latency: Streak,
    jitter: Streak,
    pub baseline: Baseline,
    last_up: Option<bool>,
    changes: VecDeque<DateTime<Utc>>,
    flapping: bool,
}

/// The subject and incident of a device's anomalies.
pub struct DeviceRef<'a> {
    pub agent: &'a str,
    pub address: &'a str,
}

impl DeviceRef<'_> {
    pub fn subject(&self) -> String {
        format!("{}/{}", self.agent, self.address)
    }
}

/// Feeds one probe round of a device to its detectors.
pub fn observe(
    rules: &DeviceRules,
    state: &mut DeviceState,
    device: &DeviceRef<'_>,
    round: &ProbeRound,
    at: DateTime<Utc>,
) -> Vec<Signal> {
    let mut out = Vec::new();
    let subject = device.subject();
    let fire = |kind: &str, severity, summary: String, details| {
        firing(kind, &subject, device.agent, severity, summary, details)
    };
    let clear = |kind: &'static str| Signal::Clear {
        kind,
        subject: subject.clone(),
    };
    let offline = round.status == DeviceStatus::Offline;

    // Flapping: count up/down changes in the window.
    if state.last_up.is_some_and(|up| up == offline) {
        state.changes.push_back(at);
    }
    state.last_up = Some(!offline);
    let window = Duration::seconds(rules.flap_window_secs as i64);
    while state.changes.front().is_some_and(|t| at - *t > window) {
        state.changes.pop_front();
    }
    let changes = state.changes.len() as u32;
    if !state.flapping && changes >= rules.flap_changes {
        state.flapping = true;
        out.push(fire(
            kinds::FLAPPING,
            Severity::Medium,
            format!(
                "{} is flapping: {changes} up/down changes in {} min",
                device.address,
                rules.flap_window_secs / 60
            ),
            serde_json::json!({ "changes": changes, "window_secs": rules.flap_window_secs }),
        ));
    } else if state.flapping && changes == 0 {
        state.flapping = false;
        out.push(clear(kinds::FLAPPING));
    }

    // Offline: while flapping, the flapping anomaly speaks for it (no chatter).
    let reading = if offline { Reading::Bad } else { Reading::Good };
    state
        .offline
        .step(reading, rules.offline_rounds, rules.clear_rounds);
    let offline_now = state.offline.active() && !state.flapping;
    if offline_now && !state.offline_reported {
        state.offline_reported = true;
        out.push(fire(
            kinds::DEVICE_OFFLINE,
            Severity::Critical,
            format!(
                "{} is offline: no reply for {} rounds",
                device.address, rules.offline_rounds
            ),
            serde_json::json!({ "sent": round.sent, "received": round.received }),
        ));
    } else if !state.offline.active() && state.offline_reported {
        state.offline_reported = false;
        out.push(clear(kinds::DEVICE_OFFLINE));
    }
    if offline {
        // Nothing else can be judged from a round with no replies.
        return out;
    }

    // Packet loss with two thresholds; clears under half the lower one.
    let loss = round.loss_pct();
    let reading = if loss >= rules.loss_pct {
        Reading::Bad
    } else if loss < rules.loss_pct / 2.0 {
        Reading::Good
    } else {
        Reading::Between
    };
    let severity = if loss >= rules.loss_high_pct {
        Severity::High
    } else {
        Severity::Medium
    };
    match state
        .loss
        .step(reading, rules.loss_rounds, rules.clear_rounds)
    {
        Some(true) => {
            state.loss_severity = Some(severity);
            out.push(fire(
                kinds::PACKET_LOSS,
                severity,
                format!("{} is losing {loss:.0}% of packets", device.address),
                serde_json::json!({ "loss_pct": loss }),
            ));
        }
        Some(false) => {
            state.loss_severity = None;
            out.push(clear(kinds::PACKET_LOSS));
        }
        None if state.loss.active() && state.loss_severity < Some(severity) => {
            state.loss_severity = Some(severity);
            out.push(fire(
                kinds::PACKET_LOSS,
                severity,
                format!("{} is losing {loss:.0}% of packets", device.address),
                serde_json::json!({ "loss_pct": loss }),
            ));
        }
        None => {}
    }

    let Some(rtt) = round.rtt else {
        return out;
    };

    // Latency over the learned baseline; the baseline learns only from normal rounds, so an
    // incident does not teach it that slow is normal.
    let median = f64::from(rtt.median);
    let b = state.baseline;
    let learned = b.rounds >= rules.baseline_rounds;
    let limit = (b.mean * rules.latency_factor)
        .max(b.mean + rules.latency_spreads * b.spread)
        .max(b.mean + rules.latency_min_delta_ms);
    let recovered = b.mean + (limit - b.mean) / 2.0;
    let reading = if !learned {
        Reading::Good
    } else if median > limit {
        Reading::Bad
    } else if median <= recovered {
        Reading::Good
    } else {
        Reading::Between
    };
    if reading == Reading::Good && !state.latency.active() {
        state.baseline.learn(median, rules.baseline_alpha);
    }
    match state
        .latency
        .step(reading, rules.latency_rounds, rules.clear_rounds)
    {
        Some(true) => out.push(fire(
            kinds::LATENCY,
            Severity::Medium,
            format!(
                "{} latency {median:.1} ms is {:.1}x its baseline {:.1} ms",
                device.address,
                median / b.mean.max(f64::EPSILON),
                b.mean
            ),
            serde_json::json!({
                "rtt_ms": median, "baseline_ms": b.mean, "spread_ms": b.spread, "limit_ms": limit
            }),
        )),
        Some(false) => out.push(clear(kinds::LATENCY)),
        None => {}
    }

    // Jitter; clears under 70% of the threshold.
    let jitter = f64::from(rtt.jitter);
    let reading = if jitter > rules.jitter_ms {
        Reading::Bad
    } else if jitter < rules.jitter_ms * 0.7 {
        Reading::Good
    } else {
        Reading::Between
    };
    match state
        .jitter
        .step(reading, rules.jitter_rounds, rules.clear_rounds)
    {
        Some(true) => out.push(fire(
            kinds::JITTER,
            Severity::Low,
            format!("{} jitter is {jitter:.1} ms", device.address),
            serde_json::json!({ "jitter_ms": jitter, "threshold_ms": rules.jitter_ms }),
        )),
        Some(false) => out.push(clear(kinds::JITTER)),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_shared::RttStats;

    fn round(received: u32, median: f32, jitter: f32) -> ProbeRound {
        let sent = 10;
        ProbeRound {
            target: "10.0.0.1".parse().unwrap(),
            sent,
            received,
            rtt: (received > 0).then_some(RttStats {
                min: median,
                median,
                mean: median,
                max: median,
                p95: median,
                stddev: 0.0,
                jitter,
            }),
            rtts_ms: vec![median; received as usize],
            status: if received == 0 {
                DeviceStatus::Offline
            } else if received < sent {
                DeviceStatus::Degraded
            } else {
                DeviceStatus::Online
            },
        }
    }

    struct Run {
        rules: DeviceRules,
        state: DeviceState,
        at: DateTime<Utc>,
    }

    impl Run {
        fn new() -> Run {
            Run {
                rules: DeviceRules::default(),
                state: DeviceState::default(),
                at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            }
        }
        fn feed(&mut self, r: ProbeRound) -> Vec<(String, bool)> {
            self.at += Duration::seconds(10);
            let device = DeviceRef {
                agent: "branch-7",
                address: "10.0.0.1",
            };
            observe(&self.rules, &mut self.state, &device, &r, self.at)
                .into_iter()
                .map(|s| (s.kind().to_string(), matches!(s, Signal::Firing(_))))
                .collect()
        }
        fn feed_n(&mut self, n: usize, r: ProbeRound) -> Vec<(String, bool)> {
            (0..n).flat_map(|_| self.feed(r.clone())).collect()
        }
    }

    fn sig(kind: &str, firing: bool) -> (String, bool) {
        (kind.to_string(), firing)
    }

    #[test]
    fn offline_fires_after_two_rounds_and_clears_after_two_good() {
        let mut run = Run::new();
        assert!(run.feed_n(5, round(10, 1.0, 0.1)).is_empty());
        assert!(run.feed(round(0, 0.0, 0.0)).is_empty(), "one bad round");
        assert_eq!(
            run.feed(round(0, 0.0, 0.0)),
            vec![sig(kinds::DEVICE_OFFLINE, true)]
        );
        assert!(run.feed_n(3, round(0, 0.0, 0.0)).is_empty(), "fires once");
        assert!(run.feed(round(10, 1.0, 0.1)).is_empty(), "one good round");
        assert_eq!(
            run.feed(round(10, 1.0, 0.1)),
            vec![sig(kinds::DEVICE_OFFLINE, false)]
        );
    }

    #[test]
    fn loss_fires_medium_then_raises_to_high_and_clears_with_hysteresis() {
        let mut run = Run::new();
        assert!(run.feed(round(9, 1.0, 0.1)).is_empty());
        let fired = run.feed(round(9, 1.0, 0.1));
        assert_eq!(fired, vec![sig(kinds::PACKET_LOSS, true)]);
        assert_eq!(run.state.loss_severity, Some(Severity::Medium));
        assert_eq!(
            run.feed(round(7, 1.0, 0.1)),
            vec![sig(kinds::PACKET_LOSS, true)],
            "30% raises it to high"
        );
        assert_eq!(run.state.loss_severity, Some(Severity::High));
        assert!(run.feed(round(7, 1.0, 0.1)).is_empty(), "no repeat at high");
        // 3% is under 5% but not under 2.5%: the dead band holds it.
        let mut hover = round(10, 1.0, 0.1);
        hover.sent = 100;
        hover.received = 97;
        assert!(run.feed_n(4, hover).is_empty());
        assert!(run.feed(round(10, 1.0, 0.1)).is_empty());
        assert_eq!(
            run.feed(round(10, 1.0, 0.1)),
            vec![sig(kinds::PACKET_LOSS, false)]
        );
    }

    #[test]
    fn latency_learns_a_baseline_and_fires_over_it() {
        let mut run = Run::new();
        for i in 0..20 {
            let rtt = 20.0 + (i % 3) as f32; // 20-22 ms
            assert!(run.feed(round(10, rtt, 0.5)).is_empty());
        }
        let baseline = run.state.baseline.mean;
        assert!((20.0..22.0).contains(&baseline), "{baseline}");
        // 2x is under the 2.5x factor: normal variation, not an anomaly.
        assert!(run.feed_n(5, round(10, 42.0, 0.5)).is_empty());
        assert!(run.feed_n(2, round(10, 80.0, 0.5)).is_empty(), "debounce");
        assert_eq!(
            run.feed(round(10, 80.0, 0.5)),
            vec![sig(kinds::LATENCY, true)]
        );
        // The incident did not teach the baseline that 80 ms is normal.
        assert!(run.state.baseline.mean < 30.0);
        assert!(run.feed(round(10, 21.0, 0.5)).is_empty());
        assert_eq!(
            run.feed(round(10, 21.0, 0.5)),
            vec![sig(kinds::LATENCY, false)]
        );
    }

    #[test]
    fn latency_waits_for_a_learned_baseline() {
        let mut run = Run::new();
        run.feed_n(3, round(10, 1.0, 0.1));
        assert!(run.feed_n(5, round(10, 100.0, 0.1)).is_empty());
    }

    #[test]
    fn sub_millisecond_noise_is_not_latency() {
        let mut run = Run::new();
        run.feed_n(20, round(10, 0.2, 0.01));
        assert!(run.feed_n(10, round(10, 1.5, 0.01)).is_empty());
    }

    #[test]
    fn jitter_fires_and_clears() {
        let mut run = Run::new();
        run.feed_n(2, round(10, 10.0, 40.0));
        assert_eq!(
            run.feed(round(10, 10.0, 40.0)),
            vec![sig(kinds::JITTER, true)]
        );
        run.feed(round(10, 10.0, 5.0));
        assert_eq!(
            run.feed(round(10, 10.0, 5.0)),
            vec![sig(kinds::JITTER, false)]
        );
    }

    #[test]
    fn a_flapping_host_is_one_flapping_anomaly_not_chatter() {
        let mut run = Run::new();
        run.feed_n(3, round(10, 1.0, 0.1));
        let mut signals = Vec::new();
        // Down two rounds, up two rounds, six times over.
        for _ in 0..6 {
            signals.extend(run.feed_n(2, round(0, 0.0, 0.0)));
            signals.extend(run.feed_n(2, round(10, 1.0, 0.1)));
        }
        let flapping_at = signals
            .iter()
            .position(|s| *s == sig(kinds::FLAPPING, true))
            .unwrap_or_else(|| panic!("{signals:?}"));
        let after = &signals[flapping_at + 1..];
        assert!(
            !after.contains(&sig(kinds::DEVICE_OFFLINE, true))
                && !after.contains(&sig(kinds::FLAPPING, true)),
            "once flapping, no more offline chatter: {signals:?}"
        );
        // Stable for the whole window: flapping clears.
        let later = run.feed_n(61, round(10, 1.0, 0.1));
        assert!(later.contains(&sig(kinds::FLAPPING, false)), "{later:?}");
    }
}
