//! Per-device detection over probe rounds: offline for N rounds, packet loss over two
//! thresholds, latency over a learned baseline, jitter, and flapping.
//!
//! A round with no reply says nothing about loss, latency or jitter: it breaks their pending
//! runs, so the half-lost round as an outage begins cannot pair with the half-answered one
//! as it ends. A host that answers no ping but that the agent found by ARP or an open port at
//! the round is up (`alive_by`), not offline. Offline wins over flapping once the host stays
//! down.

use super::streak::{Reading, Streak};
use super::{firing, Signal};
use crate::domain::alerting::AnomalyKind;
use crate::domain::alerting::Severity;
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
    /// Rounds over `loss_pct` before it fires...
    pub loss_rounds: u32,
    /// ...which must span this long, first to last (a 10 s blip split over two rounds is not
    /// a lossy link).
    pub loss_min_secs: u64,
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
    /// While flapping, a device is offline all the same once it stays down longer than in
    /// any of its flaps (at least `offline_rounds`), and at the latest after this many rounds
    /// with no reply: the flapping gave way to an outage.
    pub offline_flapping_rounds: u32,
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
            loss_min_secs: 20,
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
            offline_flapping_rounds: 6,
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
        if self.offline_flapping_rounds < self.offline_rounds {
            return Err("detect.offline_flapping_rounds: must be at least offline_rounds".into());
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
    /// Down runs (their end, their rounds) within the flapping window.
    down_runs: VecDeque<(DateTime<Utc>, u32)>,
    flapping: bool,
}

/// The subject and incident of a device's anomalies.
pub struct DeviceRef<'a> {
    pub agent: &'a str,
    pub address: &'a str,
}

/// A number of milliseconds with as many decimals as its size needs: 80.6, 2.31, 0.034.
pub fn ms(value: f64) -> String {
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else if magnitude >= 0.1 {
        3
    } else {
        4
    };
    format!("{value:.decimals$}")
}

impl DeviceState {
    /// Whether this device's offline anomaly is open.
    pub fn offline_reported(&self) -> bool {
        self.offline_reported
    }

    /// Takes up an anomaly an earlier run left open (the collector restarted), so that this
    /// detector clears it when its condition ends, as if it had fired it, instead of leaving
    /// it open for good. A latency anomaly brings back the baseline it was judged against
    /// (a baseline relearnt from the slow rounds would call them normal).
    pub fn resume(
        &mut self,
        kind: AnomalyKind,
        severity: Severity,
        details: &serde_json::Value,
        rules: &DeviceRules,
        now: DateTime<Utc>,
    ) {
        match kind {
            AnomalyKind::DeviceOffline => {
                self.offline.resume_active();
                self.offline_reported = true;
            }
            AnomalyKind::PacketLoss => {
                self.loss.resume_active();
                self.loss_severity = Some(severity);
            }
            AnomalyKind::Latency => {
                self.latency.resume_active();
                if let (Some(mean), Some(spread)) = (
                    details["baseline_ms"].as_f64(),
                    details["spread_ms"].as_f64(),
                ) {
                    self.baseline = Baseline {
                        mean,
                        spread,
                        rounds: rules.baseline_rounds.max(self.baseline.rounds),
                    };
                }
            }
            AnomalyKind::Jitter => self.jitter.resume_active(),
            AnomalyKind::Flapping => {
                // Flapping until a whole window is quiet, as if its changes were just seen.
                self.flapping = true;
                self.changes = std::iter::repeat_n(now, rules.flap_changes as usize).collect();
            }
            _ => {}
        }
    }
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
    let fire = |kind: AnomalyKind, severity, summary: String, details| {
        firing(kind, &subject, device.agent, severity, summary, details)
    };
    let clear = |kind: AnomalyKind| Signal::Clear {
        kind,
        subject: subject.clone(),
    };
    let offline = round.status == DeviceStatus::Offline;

    // Flapping: count up/down changes in the window, and remember how long it was down each
    // time.
    if state.last_up.is_some_and(|up| up == offline) {
        state.changes.push_back(at);
        if !offline {
            state.down_runs.push_back((at, state.offline.bad()));
        }
    }
    state.last_up = Some(!offline);
    let window = Duration::seconds(rules.flap_window_secs as i64);
    while state.changes.front().is_some_and(|t| at - *t > window) {
        state.changes.pop_front();
    }
    while state
        .down_runs
        .front()
        .is_some_and(|(t, _)| at - *t > window)
    {
        state.down_runs.pop_front();
    }
    let changes = state.changes.len() as u32;
    if !state.flapping && changes >= rules.flap_changes {
        state.flapping = true;
        out.push(fire(
            AnomalyKind::Flapping,
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
        out.push(clear(AnomalyKind::Flapping));
    }

    // Offline: while flapping, the flapping anomaly speaks for it (no chatter), until the
    // device stays down longer than it did in any of its flaps (or `offline_flapping_rounds`,
    // whichever comes first): that is an outage, not flapping, and offline wins.
    let reading = if offline { Reading::Bad } else { Reading::Good };
    state
        .offline
        .step(reading, rules.offline_rounds, rules.clear_rounds);
    let down_for = state.offline.bad();
    let longest_flap = state.down_runs.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let outage_after = (longest_flap + 1)
        .max(rules.offline_rounds)
        .min(rules.offline_flapping_rounds);
    let offline_now = state.offline.active() && (!state.flapping || down_for >= outage_after);
    if offline_now && !state.offline_reported {
        state.offline_reported = true;
        if state.flapping {
            state.flapping = false;
            state.changes.clear();
            state.down_runs.clear();
            out.push(clear(AnomalyKind::Flapping));
        }
        out.push(fire(
            AnomalyKind::DeviceOffline,
            Severity::Critical,
            format!(
                "{} is offline: no reply for {} rounds",
                device.address,
                down_for.max(rules.offline_rounds)
            ),
            serde_json::json!({ "sent": round.sent, "received": round.received }),
        ));
    } else if !state.offline.active() && state.offline_reported {
        state.offline_reported = false;
        out.push(clear(AnomalyKind::DeviceOffline));
    }
    if round.received == 0 {
        // Nothing else can be judged from a round with no replies (down, or ICMP-silent):
        // runs not yet firing are broken, so what came before cannot pair with what comes
        // after.
        state.loss.interrupt();
        state.latency.interrupt();
        state.jitter.interrupt();
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
    match state.loss.step_for(
        reading,
        at.timestamp(),
        rules.loss_rounds,
        rules.loss_min_secs as i64,
        rules.clear_rounds,
    ) {
        Some(true) => {
            state.loss_severity = Some(severity);
            out.push(fire(
                AnomalyKind::PacketLoss,
                severity,
                format!("{} is losing {loss:.0}% of packets", device.address),
                serde_json::json!({ "loss_pct": loss }),
            ));
        }
        Some(false) => {
            state.loss_severity = None;
            out.push(clear(AnomalyKind::PacketLoss));
        }
        None if state.loss.active() && state.loss_severity < Some(severity) => {
            state.loss_severity = Some(severity);
            out.push(fire(
                AnomalyKind::PacketLoss,
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
            AnomalyKind::Latency,
            Severity::Medium,
            format!(
                "{} latency {} ms is {}x its baseline {} ms",
                device.address,
                ms(median),
                ms(median / b.mean.max(f64::EPSILON)),
                ms(b.mean)
            ),
            serde_json::json!({
                "rtt_ms": median, "baseline_ms": b.mean, "spread_ms": b.spread, "limit_ms": limit
            }),
        )),
        Some(false) => out.push(clear(AnomalyKind::Latency)),
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
            AnomalyKind::Jitter,
            Severity::Low,
            format!("{} jitter is {} ms", device.address, ms(jitter)),
            serde_json::json!({ "jitter_ms": jitter, "threshold_ms": rules.jitter_ms }),
        )),
        Some(false) => out.push(clear(AnomalyKind::Jitter)),
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
            alive_by: (received > 0).then_some(netwarden_shared::Evidence::Icmp),
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
        fn feed(&mut self, r: ProbeRound) -> Vec<(AnomalyKind, bool)> {
            self.at += Duration::seconds(10);
            let device = DeviceRef {
                agent: "branch-7",
                address: "10.0.0.1",
            };
            observe(&self.rules, &mut self.state, &device, &r, self.at)
                .into_iter()
                .map(|s| (s.kind(), matches!(s, Signal::Firing(_))))
                .collect()
        }
        fn feed_n(&mut self, n: usize, r: ProbeRound) -> Vec<(AnomalyKind, bool)> {
            (0..n).flat_map(|_| self.feed(r.clone())).collect()
        }
    }

    fn sig(kind: AnomalyKind, firing: bool) -> (AnomalyKind, bool) {
        (kind, firing)
    }

    #[test]
    fn offline_fires_after_two_rounds_and_clears_after_two_good() {
        let mut run = Run::new();
        assert!(run.feed_n(5, round(10, 1.0, 0.1)).is_empty());
        assert!(run.feed(round(0, 0.0, 0.0)).is_empty(), "one bad round");
        assert_eq!(
            run.feed(round(0, 0.0, 0.0)),
            vec![sig(AnomalyKind::DeviceOffline, true)]
        );
        assert!(run.feed_n(3, round(0, 0.0, 0.0)).is_empty(), "fires once");
        assert!(run.feed(round(10, 1.0, 0.1)).is_empty(), "one good round");
        assert_eq!(
            run.feed(round(10, 1.0, 0.1)),
            vec![sig(AnomalyKind::DeviceOffline, false)]
        );
    }

    #[test]
    fn loss_fires_medium_then_raises_to_high_and_clears_with_hysteresis() {
        let mut run = Run::new();
        // Rounds 10 s apart: two rounds are 10 s of loss, three the 20 s it must last.
        assert!(run.feed_n(2, round(9, 1.0, 0.1)).is_empty());
        let fired = run.feed(round(9, 1.0, 0.1));
        assert_eq!(fired, vec![sig(AnomalyKind::PacketLoss, true)]);
        assert_eq!(run.state.loss_severity, Some(Severity::Medium));
        assert_eq!(
            run.feed(round(7, 1.0, 0.1)),
            vec![sig(AnomalyKind::PacketLoss, true)],
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
            vec![sig(AnomalyKind::PacketLoss, false)]
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
            vec![sig(AnomalyKind::Latency, true)]
        );
        // The incident did not teach the baseline that 80 ms is normal.
        assert!(run.state.baseline.mean < 30.0);
        assert!(run.feed(round(10, 21.0, 0.5)).is_empty());
        assert_eq!(
            run.feed(round(10, 21.0, 0.5)),
            vec![sig(AnomalyKind::Latency, false)]
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
            vec![sig(AnomalyKind::Jitter, true)]
        );
        run.feed(round(10, 10.0, 5.0));
        assert_eq!(
            run.feed(round(10, 10.0, 5.0)),
            vec![sig(AnomalyKind::Jitter, false)]
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
            .position(|s| *s == sig(AnomalyKind::Flapping, true))
            .unwrap_or_else(|| panic!("{signals:?}"));
        let after = &signals[flapping_at + 1..];
        assert!(
            !after.contains(&sig(AnomalyKind::DeviceOffline, true))
                && !after.contains(&sig(AnomalyKind::Flapping, true)),
            "once flapping, no more offline chatter: {signals:?}"
        );
        // Stable for the whole window: flapping clears.
        let later = run.feed_n(61, round(10, 1.0, 0.1));
        assert!(
            later.contains(&sig(AnomalyKind::Flapping, false)),
            "{later:?}"
        );
    }

    /// The seven findings of the noise hunt (issue 27), each failing on the code before.
    #[test]
    fn half_answered_rounds_around_an_outage_are_not_loss() {
        let mut run = Run::new();
        run.feed_n(5, round(10, 1.0, 0.1));
        let mut signals = run.feed(round(5, 1.0, 0.1)); // the outage begins mid-round
        signals.extend(run.feed_n(6, round(0, 0.0, 0.0)));
        signals.extend(run.feed(round(5, 1.0, 0.1))); // it ends mid-round
        signals.extend(run.feed_n(4, round(10, 1.0, 0.1)));
        assert!(
            !signals.iter().any(|s| s.0 == AnomalyKind::PacketLoss),
            "{signals:?}"
        );
        assert_eq!(
            signals,
            vec![
                sig(AnomalyKind::DeviceOffline, true),
                sig(AnomalyKind::DeviceOffline, false)
            ]
        );
    }

    /// Flaps `flaps` times, down `down` rounds each, then stays down: returns the rounds of
    /// the final outage at which something fired, and what.
    fn flap_then_down(
        offline_rounds: u32,
        down: usize,
        flaps: usize,
    ) -> Vec<(u32, Vec<(AnomalyKind, bool)>)> {
        let mut run = Run::new();
        run.rules.offline_rounds = offline_rounds;
        run.feed_n(3, round(10, 1.0, 0.1));
        let mut signals = Vec::new();
        for _ in 0..flaps {
            signals.extend(run.feed_n(down, round(0, 0.0, 0.0)));
            signals.extend(run.feed(round(10, 1.0, 0.1)));
        }
        assert!(
            signals.contains(&sig(AnomalyKind::Flapping, true)),
            "{signals:?}"
        );
        assert!(
            !signals.contains(&sig(AnomalyKind::DeviceOffline, true)),
            "no offline chatter while flapping: {signals:?}"
        );
        let mut fired = Vec::new();
        for n in 1..=12 {
            let got = run.feed(round(0, 0.0, 0.0));
            if !got.is_empty() {
                fired.push((n, got));
            }
        }
        fired
    }

    #[test]
    fn a_device_that_flaps_then_stays_down_is_offline() {
        let won = vec![
            sig(AnomalyKind::Flapping, false),
            sig(AnomalyKind::DeviceOffline, true),
        ];
        // Down a round at a time while flapping: two rounds down is already longer.
        assert_eq!(flap_then_down(2, 1, 4), vec![(2, won.clone())]);
        // Down two rounds at a time: the third says it is more than a flap.
        assert_eq!(flap_then_down(3, 2, 4), vec![(3, won.clone())]);
        // Never sooner than offline_rounds.
        assert_eq!(flap_then_down(4, 1, 4), vec![(4, won)]);
    }

    #[test]
    fn an_icmp_silent_host_the_agent_finds_by_arp_is_up() {
        let mut run = Run::new();
        let mut silent = round(0, 0.0, 0.0);
        silent.status = DeviceStatus::Online;
        silent.alive_by = Some(netwarden_shared::Evidence::Arp);
        assert!(
            run.feed_n(10, silent).is_empty(),
            "not offline, and no 100 % loss either"
        );
        // The evidence gone too: offline.
        assert_eq!(
            run.feed_n(2, round(0, 0.0, 0.0)),
            vec![sig(AnomalyKind::DeviceOffline, true)]
        );
    }

    #[test]
    fn a_blip_split_over_two_rounds_is_not_a_lossy_link() {
        let mut run = Run::new();
        run.feed_n(5, round(10, 1.0, 0.1));
        // Ten seconds of nothing straddling two rounds: 60 % of one, 40 % of the next.
        let mut signals = run.feed(round(4, 1.0, 0.1));
        signals.extend(run.feed(round(6, 1.0, 0.1)));
        signals.extend(run.feed_n(5, round(10, 1.0, 0.1)));
        assert!(signals.is_empty(), "{signals:?}");
    }

    #[test]
    fn numbers_carry_the_precision_their_size_needs() {
        assert_eq!(ms(80.64), "80.6");
        assert_eq!(ms(0.031), "0.0310");
        assert_eq!(ms(0.31), "0.310");
        assert_eq!(ms(2.304), "2.30");
        assert_eq!(ms(2601.6), "2602");
        let mut run = Run::new();
        run.rules.latency_min_delta_ms = 1.0;
        run.feed_n(20, round(10, 0.03, 0.01));
        let mut fired = Vec::new();
        for _ in 0..3 {
            let device = DeviceRef {
                agent: "a",
                address: "10.0.0.1",
            };
            run.at += Duration::seconds(10);
            fired.extend(observe(
                &run.rules,
                &mut run.state,
                &device,
                &round(10, 80.6, 0.01),
                run.at,
            ));
        }
        let Some(Signal::Firing(a)) = fired.first() else {
            panic!("{fired:?}")
        };
        assert!(
            a.summary
                .ends_with("latency 80.6 ms is 2687x its baseline 0.0300 ms"),
            "{}",
            a.summary
        );
    }
}
