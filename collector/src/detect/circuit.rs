//! Circuit maxout detection, a pure function over each circuit's samples in time order:
//! utilisation at or over `threshold × provisioned` for `consecutive` samples in a row opens an
//! event; it stays open while samples stay over, and closes at the first sample under.
//! ([`crate::telemetry::timeline`] puts samples in time order whatever order they arrive in.)
//!
//! One class rule decides the stored event, the customer email and the API: a sample at or
//! below the burst ceiling is `burst`, above it `maxout` (the ceiling itself is the lower class,
//! as "at or over provisioned" counts provisioned itself as a breach); a circuit without a burst
//! ceiling above its provisioned rate has only `maxout`.

pub use crate::domain::maxout::MaxoutRule;
pub use crate::domain::telemetry::{CircuitEvent, MaxoutClass};

/// What a circuit is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub provisioned_mbps: f64,
    pub burst_mbps: Option<f64>,
}

impl Capacity {
    /// The severity of a sample over the threshold: the ceiling itself is still `burst`.
    pub fn severity(self, mbps: f64) -> MaxoutClass {
        match self.burst_mbps {
            Some(burst) if burst > self.provisioned_mbps && mbps <= burst => MaxoutClass::Burst,
            _ => MaxoutClass::Maxout,
        }
    }
}

/// Detector state of one circuit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CircuitState {
    /// Samples over the threshold in a row, not yet an event: (time, Mbps).
    pending: Vec<(i64, f64)>,
    open: Option<CircuitEvent>,
    last_at: Option<i64>,
    /// The open event was resumed after a restart and no sample has come since.
    resumed: bool,
}

/// What one sample did.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Opened(CircuitEvent),
    /// An open event went on (or became more severe).
    Extended(CircuitEvent),
    Closed(CircuitEvent),
}

impl CircuitState {
    /// The state of a circuit whose event was open when the process stopped: the next sample
    /// after its end goes on with it or closes it, instead of opening a second one.
    pub fn resumed(event: CircuitEvent) -> Self {
        CircuitState {
            pending: Vec::new(),
            last_at: Some(event.end),
            open: Some(event),
            resumed: true,
        }
    }

    /// Closes a resumed event at its stored end when the first sample since comes more than
    /// `gap` (ms) after it: the circuit was not watched meanwhile, so the event is not
    /// stretched over the downtime; that sample then starts afresh.
    pub fn expire_resumed(&mut self, at: i64, gap: i64) -> Option<CircuitEvent> {
        let event = self.open.as_ref()?;
        if !self.resumed || at.saturating_sub(event.end) <= gap {
            return None;
        }
        self.resumed = false;
        self.open.take()
    }

    pub fn open_event(&self) -> Option<&CircuitEvent> {
        self.open.as_ref()
    }

    /// The last sample fed.
    pub fn last_at(&self) -> Option<i64> {
        self.last_at
    }

    /// Feeds one sample (Unix milliseconds, Mbps). Samples older than the last one seen are
    /// ignored here (they are stored all the same): detection follows time forwards.
    pub fn feed(
        &mut self,
        at: i64,
        mbps: f64,
        capacity: Capacity,
        rule: MaxoutRule,
    ) -> Option<Transition> {
        if self.last_at.is_some_and(|last| at <= last) || capacity.provisioned_mbps <= 0.0 {
            return None;
        }
        self.last_at = Some(at);
        self.resumed = false;
        let over = mbps >= rule.threshold_fraction() * capacity.provisioned_mbps;
        if !over {
            self.pending.clear();
            return self.open.take().map(Transition::Closed);
        }
        let severity = capacity.severity(mbps);
        if let Some(event) = &mut self.open {
            event.end = at;
            event.samples += 1;
            if mbps > event.peak_mbps {
                event.peak_mbps = mbps;
                event.peak_at = at;
            }
            event.severity = event.severity.max(severity);
            return Some(Transition::Extended(event.clone()));
        }
        self.pending.push((at, mbps));
        if self.pending.len() < rule.consecutive.max(1) as usize {
            return None;
        }
        // The first sample at the peak, so a tie does not depend on anything but time.
        let (peak_at, peak_mbps) =
            self.pending.iter().copied().fold(
                (at, f64::MIN),
                |best, p| if p.1 > best.1 { p } else { best },
            );
        let event = CircuitEvent {
            start: self.pending[0].0,
            end: at,
            samples: self.pending.len() as u32,
            peak_mbps,
            peak_at,
            severity: self
                .pending
                .iter()
                .map(|p| capacity.severity(p.1))
                .max()
                .unwrap_or(severity),
        };
        self.pending.clear();
        self.open = Some(event.clone());
        Some(Transition::Opened(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Capacity = Capacity {
        provisioned_mbps: 1000.0,
        burst_mbps: Some(1200.0),
    };

    fn run(values: &[f64], rule: MaxoutRule) -> Vec<Transition> {
        let mut state = CircuitState::default();
        values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| state.feed(60 * i as i64, *v, CAP, rule))
            .collect()
    }

    #[test]
    fn a_single_spike_under_the_debounce_is_nothing() {
        assert!(run(
            &[500.0, 1300.0, 500.0, 1300.0, 1300.0, 400.0],
            MaxoutRule::CIRCUIT
        )
        .is_empty());
    }

    #[test]
    fn a_sustained_maxout_opens_once_goes_on_and_closes() {
        let t = run(
            &[500.0, 1300.0, 1250.0, 1400.0, 1300.0, 900.0],
            MaxoutRule::CIRCUIT,
        );
        assert_eq!(t.len(), 3, "{t:?}");
        let Transition::Opened(open) = &t[0] else {
            panic!("{t:?}")
        };
        assert_eq!((open.start, open.end, open.samples), (60, 180, 3));
        assert_eq!(open.peak_mbps, 1400.0);
        assert_eq!(open.severity, MaxoutClass::Maxout);
        assert!(matches!(&t[1], Transition::Extended(e) if e.samples == 4));
        let Transition::Closed(closed) = &t[2] else {
            panic!("{t:?}")
        };
        assert_eq!((closed.start, closed.end), (60, 240));
    }

    #[test]
    fn within_burst_is_the_lower_severity_until_it_passes_burst() {
        let t = run(&[1100.0, 1050.0, 1100.0], MaxoutRule::CIRCUIT);
        assert!(matches!(&t[0], Transition::Opened(e) if e.severity == MaxoutClass::Burst));
        let t = run(&[1100.0, 1050.0, 1100.0, 1250.0], MaxoutRule::CIRCUIT);
        assert!(matches!(&t[1], Transition::Extended(e) if e.severity == MaxoutClass::Maxout));
    }

    #[test]
    fn a_resumed_event_goes_on_or_closes_and_never_opens_twice() {
        let event = CircuitEvent {
            start: 60,
            end: 180,
            samples: 3,
            peak_mbps: 1300.0,
            peak_at: 120,
            severity: MaxoutClass::Maxout,
        };
        let mut state = CircuitState::resumed(event.clone());
        assert_eq!(state.feed(120, 1500.0, CAP, MaxoutRule::CIRCUIT), None);
        let Some(Transition::Extended(on)) = state.feed(240, 1500.0, CAP, MaxoutRule::CIRCUIT)
        else {
            panic!("a sample over goes on with the resumed event")
        };
        assert_eq!(
            (on.start, on.end, on.samples, on.peak_mbps),
            (60, 240, 4, 1500.0)
        );
        let mut state = CircuitState::resumed(event.clone());
        assert!(matches!(
            state.feed(240, 100.0, CAP, MaxoutRule::CIRCUIT),
            Some(Transition::Closed(e)) if e.end == 180
        ));
        // The first sample long after: the event ends where it was, and the sample counts
        // afresh (the start of a new debounce, not a stretch over the downtime).
        let mut state = CircuitState::resumed(event.clone());
        assert_eq!(state.expire_resumed(240, 600), None, "within the gap");
        assert_eq!(state.expire_resumed(10_000, 600), Some(event.clone()));
        assert_eq!(state.feed(10_000, 1500.0, CAP, MaxoutRule::CIRCUIT), None);
        assert!(state.open_event().is_none());
        // Only the first sample after a resume is measured so.
        let mut state = CircuitState::resumed(event);
        state.feed(240, 1500.0, CAP, MaxoutRule::CIRCUIT);
        assert_eq!(state.expire_resumed(10_000, 600), None);
    }

    #[test]
    fn the_threshold_and_debounce_are_configurable_and_old_samples_ignored() {
        let rule = MaxoutRule::fraction(0.9, 1);
        let t = run(&[950.0], rule);
        assert!(matches!(&t[0], Transition::Opened(_)));
        let mut state = CircuitState::default();
        assert!(state.feed(100, 1300.0, CAP, rule).is_some());
        assert!(
            state.feed(50, 100.0, CAP, rule).is_none(),
            "older than the last: ignored"
        );
        assert!(state.open_event().is_some());
    }
}
