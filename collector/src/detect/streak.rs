//! Debounce and hysteresis: a condition becomes active after N bad observations in a row and
//! clears after M good ones in a row; observations in the dead band between the two
//! thresholds break both runs, so a value hovering at the edge neither fires nor clears.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Bad,
    Good,
    /// Between the firing and the clearing threshold.
    Between,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streak {
    bad: u32,
    good: u32,
    active: bool,
}

impl Streak {
    pub fn active(&self) -> bool {
        self.active
    }

    /// Feeds one observation; `Some(true)` when the condition becomes active, `Some(false)`
    /// when it clears, `None` otherwise.
    pub fn step(&mut self, reading: Reading, fire_after: u32, clear_after: u32) -> Option<bool> {
        match reading {
            Reading::Bad => {
                self.bad = self.bad.saturating_add(1);
                self.good = 0;
            }
            Reading::Good => {
                self.good = self.good.saturating_add(1);
                self.bad = 0;
            }
            Reading::Between => {
                self.good = 0;
                if !self.active {
                    self.bad = 0;
                }
            }
        }
        if !self.active && self.bad >= fire_after.max(1) {
            self.active = true;
            return Some(true);
        }
        if self.active && self.good >= clear_after.max(1) {
            self.active = false;
            self.bad = 0;
            return Some(false);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Reading::*;
    use super::*;

    #[test]
    fn fires_after_n_bad_and_clears_after_m_good() {
        let mut s = Streak::default();
        assert_eq!(s.step(Bad, 3, 2), None);
        assert_eq!(s.step(Bad, 3, 2), None);
        assert_eq!(s.step(Bad, 3, 2), Some(true));
        assert_eq!(s.step(Bad, 3, 2), None);
        assert_eq!(s.step(Good, 3, 2), None);
        assert_eq!(s.step(Good, 3, 2), Some(false));
        assert!(!s.active());
    }

    #[test]
    fn one_bad_round_is_not_an_alert() {
        let mut s = Streak::default();
        for _ in 0..10 {
            assert_eq!(s.step(Bad, 2, 2), None);
            assert_eq!(s.step(Good, 2, 2), None);
        }
    }

    #[test]
    fn the_dead_band_neither_fires_nor_clears() {
        let mut s = Streak::default();
        s.step(Bad, 2, 2);
        assert_eq!(s.step(Between, 2, 2), None);
        assert_eq!(s.step(Bad, 2, 2), None, "the run was broken");
        assert_eq!(s.step(Bad, 2, 2), Some(true));
        s.step(Good, 2, 2);
        assert_eq!(s.step(Between, 2, 2), None);
        assert_eq!(s.step(Good, 2, 2), None, "the recovery run was broken");
        assert!(s.active());
        assert_eq!(s.step(Good, 2, 2), Some(false));
    }
}
