//! What counts as a maxout, for POI bandwidth (Cacti) and customer circuits (telemetry) alike:
//! a sample at or over a share of its capacity, so many samples in a row.

/// The one maxout rule. The threshold is kept in hundredths of a percent, so a threshold given
/// as a percent (`threshold_pct = 95.5`) or as a fraction (`maxout_threshold = 0.9`) reads back
/// as exactly the number written, in either unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxoutRule {
    threshold_basis_points: u32,
    /// Samples in a row at or over the threshold before a maxout opens (debounce).
    pub consecutive: u32,
}

impl MaxoutRule {
    /// POI graphs: any interval at or over 100 % (Cacti's samples are already 5-minute
    /// averages).
    pub const POI: MaxoutRule = MaxoutRule {
        threshold_basis_points: 10_000,
        consecutive: 1,
    };
    /// Customer circuits: three samples in a row at or over the provisioned rate.
    pub const CIRCUIT: MaxoutRule = MaxoutRule {
        threshold_basis_points: 10_000,
        consecutive: 3,
    };

    /// A threshold in percent of capacity (rounded to 0.01 %).
    pub fn percent(threshold_pct: f64, consecutive: u32) -> Self {
        MaxoutRule {
            threshold_basis_points: (threshold_pct * 100.0).round().clamp(0.0, u32::MAX as f64)
                as u32,
            consecutive,
        }
    }

    /// A threshold as a fraction of capacity, 1.0 = 100 % (rounded to 0.01 %).
    pub fn fraction(threshold: f64, consecutive: u32) -> Self {
        Self::percent(threshold * 100.0, consecutive)
    }

    /// The threshold in percent of capacity.
    pub fn threshold_pct(&self) -> f64 {
        f64::from(self.threshold_basis_points) / 100.0
    }

    /// The threshold as a fraction of capacity.
    pub fn threshold_fraction(&self) -> f64 {
        f64::from(self.threshold_basis_points) / 10_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_reads_back_as_written_in_either_unit() {
        for (fraction, pct) in [
            (0.9, 90.0),
            (0.95, 95.0),
            (1.0, 100.0),
            (1.1, 110.0),
            (0.875, 87.5),
        ] {
            assert_eq!(
                MaxoutRule::fraction(fraction, 1).threshold_fraction(),
                fraction
            );
            assert_eq!(MaxoutRule::fraction(fraction, 1).threshold_pct(), pct);
            assert_eq!(MaxoutRule::percent(pct, 1).threshold_fraction(), fraction);
            assert_eq!(
                MaxoutRule::percent(pct, 1),
                MaxoutRule::fraction(fraction, 1)
            );
        }
        assert_eq!(MaxoutRule::percent(95.55, 2).threshold_pct(), 95.55);
    }
}
