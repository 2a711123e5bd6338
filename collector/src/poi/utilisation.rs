//! Pure functions over a POI's utilisation samples: maxouts (utilisation at or over a
//! threshold for enough consecutive samples) and the daily figures a NOC reports (average,
//! peak, and the 7-10 pm busy hour in the POI's local time).

use chrono::{NaiveDate, TimeZone, Timelike};
use chrono_tz::Tz;
use serde::Serialize;

/// One sample of a CVC: the average bits/s each way over the interval that ends at `at`
/// (one step long); `None` is a gap in Cacti's data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: i64,
    pub in_bps: Option<f64>,
    pub out_bps: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxoutRule {
    /// Utilisation (% of capacity) at which a sample counts as maxed out.
    pub threshold_pct: f64,
    /// How many consecutive such samples make a maxout.
    pub consecutive: u32,
}

impl Default for MaxoutRule {
    fn default() -> Self {
        MaxoutRule {
            threshold_pct: 100.0,
            consecutive: 1,
        }
    }
}

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
                (Some(v), Some(p)) if p >= rule.threshold_pct => {
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

/// A POI's day, in its local time.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DailyFigure {
    pub date: NaiveDate,
    /// Mean and peak of the busier direction's utilisation (%), over the samples there are.
    pub average_pct: f64,
    pub peak_pct: f64,
    /// Mean utilisation from 19:00 to 22:00 local (the NBN busy hour), if there are samples.
    pub busy_hour_pct: Option<f64>,
    pub samples: u32,
}

/// Daily figures per local date, in date order; samples with no value either way are gaps.
/// A sample counts in the day and hour its interval starts in (`at - step_secs`): the one
/// stamped 22:00 covers 21:55-22:00, inside the busy hour.
pub fn daily(samples: &[Sample], capacity_bps: u64, step_secs: u32, tz: Tz) -> Vec<DailyFigure> {
    use std::collections::BTreeMap;
    if capacity_bps == 0 {
        return Vec::new();
    }
    #[derive(Default)]
    struct Acc {
        sum: f64,
        n: u32,
        peak: f64,
        busy_sum: f64,
        busy_n: u32,
    }
    let mut days: BTreeMap<NaiveDate, Acc> = BTreeMap::new();
    for s in samples {
        let busier = match (s.in_bps, s.out_bps) {
            (Some(a), Some(b)) => a.max(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => continue,
        };
        let pct = 100.0 * busier / capacity_bps as f64;
        let Some(local) = tz.timestamp_opt(s.at - i64::from(step_secs), 0).single() else {
            continue;
        };
        let acc = days.entry(local.date_naive()).or_default();
        acc.sum += pct;
        acc.n += 1;
        acc.peak = acc.peak.max(pct);
        if (19..22).contains(&local.hour()) {
            acc.busy_sum += pct;
            acc.busy_n += 1;
        }
    }
    days.into_iter()
        .map(|(date, a)| DailyFigure {
            date,
            average_pct: a.sum / f64::from(a.n),
            peak_pct: a.peak,
            busy_hour_pct: (a.busy_n > 0).then(|| a.busy_sum / f64::from(a.busy_n)),
            samples: a.n,
        })
        .collect()
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
        let found = maxouts(&s, G, 300, MaxoutRule::default());
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
        let rule = MaxoutRule {
            threshold_pct: 100.0,
            consecutive: 2,
        };
        let found = maxouts(&s, G, 300, rule);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].start, found[0].samples), (1_000_300, 2));
        // A lower threshold sees more; a zero capacity sees nothing (no division by zero).
        let rule = MaxoutRule {
            threshold_pct: 90.0,
            consecutive: 1,
        };
        assert_eq!(maxouts(&s, G, 300, rule).len(), 3);
        assert!(maxouts(&s, 0, 300, rule).is_empty());
    }

    #[test]
    fn daily_figures_use_local_days_and_the_busy_hour() {
        // Brisbane is UTC+10 without daylight saving. 2025-01-15 00:00 local = 14:00 UTC the
        // day before. Samples are stamped at their intervals' ends: 00:05 .. 24:00.
        let day_start = 1_736_863_200;
        let samples: Vec<Sample> = (0..288)
            .map(|i| {
                let at = day_start + 300 * (i + 1);
                let hour = i / 12;
                let bps = if (19..22).contains(&hour) {
                    0.9e9
                } else {
                    0.3e9
                };
                Sample {
                    at,
                    in_bps: Some(bps),
                    out_bps: Some(bps / 10.0),
                }
            })
            .collect();
        let days = daily(&samples, G, 300, chrono_tz::Australia::Brisbane);
        assert_eq!(days.len(), 1, "{days:?}");
        let d = &days[0];
        assert_eq!(d.date, NaiveDate::from_ymd_opt(2025, 1, 15).unwrap());
        assert_eq!(d.samples, 288);
        assert!((d.peak_pct - 90.0).abs() < 1e-9);
        assert!((d.busy_hour_pct.unwrap() - 90.0).abs() < 1e-9);
        assert!((d.average_pct - (21.0 * 30.0 + 3.0 * 90.0) / 24.0).abs() < 1e-9);
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
        let found = maxouts(&samples, G, step, MaxoutRule::default());
        let inbound: Vec<_> = found
            .iter()
            .filter(|m| m.direction == Direction::In)
            .collect();
        assert_eq!(inbound.len(), 2, "{found:?}");
        assert_eq!(inbound[0].samples, 2);
    }
}
