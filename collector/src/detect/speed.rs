//! Speed tests below a floor. Fires on the first test under the floor (tests are minutes
//! apart, so one is already a trend) and clears on a test 10% over it.

use super::{firing, Signal};
use crate::domain::alerting::AnomalyKind;
use crate::domain::alerting::Severity;
use netwarden_shared::{SpeedDirection, SpeedTest};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpeedFloors {
    pub download_mbps: f64,
    pub upload_mbps: f64,
}

/// `low` is whether this direction is currently below its floor; updated in place.
pub fn observe(floors: &SpeedFloors, agent: &str, test: &SpeedTest, low: &mut bool) -> Vec<Signal> {
    let (floor, direction) = match test.direction {
        SpeedDirection::Download => (floors.download_mbps, "download"),
        SpeedDirection::Upload => (floors.upload_mbps, "upload"),
    };
    if floor <= 0.0 || test.error.is_some() {
        return Vec::new();
    }
    let subject = format!("{agent}/{direction}");
    if !*low && test.mbps < floor {
        *low = true;
        return vec![firing(
            AnomalyKind::SpeedLow,
            &subject,
            agent,
            Severity::Medium,
            format!(
                "{agent} {direction} speed {:.1} Mbit/s is below {floor} Mbit/s",
                test.mbps
            ),
            serde_json::json!({ "mbps": test.mbps, "floor_mbps": floor, "url": test.url }),
        )];
    }
    if *low && test.mbps >= floor * 1.1 {
        *low = false;
        return vec![Signal::Clear {
            kind: AnomalyKind::SpeedLow,
            subject,
        }];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(mbps: f64) -> SpeedTest {
        SpeedTest {
            url: "http://c/speed".into(),
            direction: SpeedDirection::Download,
            bytes: 1,
            duration_us: 1,
            mbps,
            error: None,
        }
    }

    #[test]
    fn below_the_floor_fires_once_and_clears_with_margin() {
        let floors = SpeedFloors {
            download_mbps: 100.0,
            upload_mbps: 0.0,
        };
        let mut low = false;
        assert!(observe(&floors, "a", &test(150.0), &mut low).is_empty());
        assert_eq!(observe(&floors, "a", &test(50.0), &mut low).len(), 1);
        assert!(observe(&floors, "a", &test(40.0), &mut low).is_empty());
        assert!(
            observe(&floors, "a", &test(105.0), &mut low).is_empty(),
            "within the margin"
        );
        assert!(matches!(
            observe(&floors, "a", &test(111.0), &mut low)[..],
            [Signal::Clear { .. }]
        ));
    }
}
