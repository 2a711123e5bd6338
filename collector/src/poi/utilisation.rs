//! The daily figures a NOC reports for a POI (average, peak, and the 7-10 pm busy hour in the
//! POI's local time). Its maxouts are found by [`crate::detect::poi`].

pub use crate::domain::poi::{Direction, Sample};
use chrono::{NaiveDate, TimeZone, Timelike};
use chrono_tz::Tz;
use serde::Serialize;

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
}
