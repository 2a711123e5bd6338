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
    /// When the current bad run began (the time given to [`Streak::step_for`]).
    bad_since: Option<i64>,
}

impl Streak {
    pub fn active(&self) -> bool {
        self.active
    }

    /// Bad observations in the current run.
    pub fn bad(&self) -> u32 {
        self.bad
    }

    /// Breaks a bad run that has not fired (an observation that says nothing either way, as
    /// a round with no reply says nothing about loss): it cannot pair with what comes after.
    pub fn interrupt(&mut self) {
        if !self.active {
            self.bad = 0;
            self.bad_since = None;
        }
    }

    /// [`Streak::step`], with time: the condition also needs its bad run to have lasted
    /// `min_secs` (from its first bad observation at `at_secs` to this one), so a short blip
    /// split over two observations is not taken for a lasting fault.
    pub fn step_for(
        &mut self,
        reading: Reading,
        at_secs: i64,
        fire_after: u32,
        min_secs: i64,
        clear_after: u32,
    ) -> Option<bool> {
        if reading == Reading::Bad && self.bad == 0 {
            self.bad_since = Some(at_secs);
        }
        let lasted = self
            .bad_since
            .is_some_and(|since| at_secs - since >= min_secs);
        let changed = if reading == Reading::Bad && !self.active && !lasted {
            // Count the observation but hold the firing until the run has lasted.
            self.bad = self.bad.saturating_add(1);
            self.good = 0;
            None
        } else {
            self.step(reading, fire_after, clear_after)
        };
        if self.bad == 0 {
            self.bad_since = None;
        }
        changed
    }

    /// Takes up a condition an earlier run reported and left open (the collector restarted):
    /// active, with no run counted, so good observations clear it as usual.
    pub fn resume_active(&mut self) {
        self.active = true;
        self.bad = 0;
        self.good = 0;
        self.bad_since = None;
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
    fn a_timed_run_fires_only_once_it_has_lasted() {
        let mut s = Streak::default();
        // Two bad observations 10 s apart: enough rounds, not long enough.
        assert_eq!(s.step_for(Bad, 0, 2, 20, 2), None);
        assert_eq!(s.step_for(Bad, 10, 2, 20, 2), None);
        assert_eq!(s.step_for(Good, 20, 2, 20, 2), None);
        // Three, 20 s from the first to the last: it fires.
        assert_eq!(s.step_for(Bad, 30, 2, 20, 2), None);
        assert_eq!(s.step_for(Bad, 40, 2, 20, 2), None);
        assert_eq!(s.step_for(Bad, 50, 2, 20, 2), Some(true));
        // An interruption breaks a run that has not fired, not an active condition.
        let mut t = Streak::default();
        t.step_for(Bad, 0, 2, 20, 2);
        t.interrupt();
        assert_eq!(t.bad(), 0);
        assert!(s.active());
        s.interrupt();
        assert!(s.active());
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
