//! POI maxouts, a pure function over a CVC's utilisation samples: utilisation at or over the
//! rule's threshold for enough consecutive samples, each direction on its own.

pub use crate::domain::maxout::MaxoutRule;
pub use crate::domain::poi::{Direction, Sample};
use serde::Serialize;

/// A maxout: from the start of the first interval of a run at or over the threshold to the
/// end of its last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Maxout {
    pub direction: Direction,
    /// The start of the first interval over (its sample's time - the step).
    pub start: i64,
    /// The end of the last interval over (its sample's time).
    pub end: i64,
    pub samples: u32,
    pub peak_bps: f64,
    pub peak_pct: f64,
}

impl Maxout {
    pub fn duration_secs(&self) -> i64 {
        self.end - self.start
    }
}

/// Maxouts in time order, each direction on its own. A gap ends a run (we do not know what
/// happened in it): a gap value, or a missing sample (more than a step since the last).
/// `step_secs` is the sample interval: a run starts a step before its first sample.
pub fn maxouts(
    samples: &[Sample],
    capacity_bps: u64,
    step_secs: u32,
    rule: MaxoutRule,
) -> Vec<Maxout> {
    if capacity_bps == 0 {
        return Vec::new();
    }
    let mut found = Vec::new();
    for direction in [Direction::In, Direction::Out] {
        let mut run: Option<Maxout> = None;
        let close = |run: &mut Option<Maxout>, found: &mut Vec<Maxout>| {
            if let Some(m) = run.take() {
                if m.samples >= rule.consecutive.max(1) {
                    found.push(m);
                }
            }
        };
        let mut previous: Option<i64> = None;
        for s in samples {
            // A missing sample (no row at all, e.g. between two scrapes) ends a run too.
            if previous.is_some_and(|p| s.at - p > i64::from(step_secs.max(1))) {
                close(&mut run, &mut found);
            }
            previous = Some(s.at);
            let value = match direction {
                Direction::In => s.in_bps,
                Direction::Out => s.out_bps,
            };
            let pct = value.map(|v| 100.0 * v / capacity_bps as f64);
            match (value, pct) {
                (Some(v), Some(p)) if p >= rule.threshold_pct() => {
                    let m = run.get_or_insert(Maxout {
                        direction,
                        start: s.at - i64::from(step_secs),
                        end: s.at,
                        samples: 0,
                        peak_bps: v,
                        peak_pct: p,
                    });
                    m.samples += 1;
                    m.end = s.at;
                    if v > m.peak_bps {
                        m.peak_bps = v;
                        m.peak_pct = p;
                    }
                }
                _ => close(&mut run, &mut found),
            }
        }
        close(&mut run, &mut found);
    }
    found.sort_by_key(|m| (m.start, m.direction as u8));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1_000_000_000;

    fn series(values: &[Option<f64>]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                at: 1_000_000 + 300 * i as i64,
                in_bps: *v,
                out_bps: Some(1.0),
            })
            .collect()
    }

    #[test]
    fn a_run_over_capacity_is_one_maxout_with_its_peak() {
        let s = series(&[
            Some(0.9e9),
            Some(1.0e9),
            Some(1.2e9),
            Some(1.05e9),
            Some(0.8e9),
        ]);
        let found = maxouts(&s, G, 300, MaxoutRule::POI);
        assert_eq!(found.len(), 1);
        let m = &found[0];
        // Samples at 1_000_300..=1_000_900 end the three intervals over capacity.
        assert_eq!(
            (m.direction, m.start, m.end, m.samples),
            (Direction::In, 1_000_000, 1_000_900, 3)
        );
        assert_eq!(m.duration_secs(), 900);
        assert!((m.peak_pct - 120.0).abs() < 1e-9);
    }

    #[test]
    fn gaps_break_runs_and_short_runs_do_not_count() {
        let s = series(&[
            Some(1.1e9),
            None,
            Some(1.1e9),
            Some(1.1e9),
            Some(0.5e9),
            Some(1.3e9),
        ]);
        let rule = MaxoutRule::percent(100.0, 2);
        let found = maxouts(&s, G, 300, rule);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].start, found[0].samples), (1_000_300, 2));
        // A lower threshold sees more; a zero capacity sees nothing (no division by zero).
        let rule = MaxoutRule::percent(90.0, 1);
        assert_eq!(maxouts(&s, G, 300, rule).len(), 3);
        assert!(maxouts(&s, 0, 300, rule).is_empty());
    }

    #[test]
    fn missing_samples_end_a_run() {
        let step = 300;
        let mut samples = series(&[Some(1.2e9), Some(1.2e9)]);
        let later: Vec<Sample> = series(&[Some(1.2e9), Some(1.2e9)])
            .into_iter()
            .map(|s| Sample {
                at: s.at + 3600,
                ..s
            })
            .collect();
        samples.extend(later);
        let found = maxouts(&samples, G, step, MaxoutRule::POI);
        let inbound: Vec<_> = found
            .iter()
            .filter(|m| m.direction == Direction::In)
            .collect();
        assert_eq!(inbound.len(), 2, "{found:?}");
        assert_eq!(inbound[0].samples, 2);
    }
}
