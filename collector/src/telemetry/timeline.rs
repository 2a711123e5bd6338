//! One circuit's maxout detection in time order, whatever order its samples arrive in.
//!
//! Network management systems deliver telemetry late and out of order. The detector
//! ([`CircuitState`]) follows time forwards, so a timeline keeps the samples of the last
//! `horizon` behind the newest one (the *window*) and the detector's state just before them
//! (*settled*). A sample newer than the newest is fed on (the common case, O(1)); a late one
//! within the window is put in its place and the window is replayed from the settled state, and
//! the events that come out are matched against the ones reported before: an event can open,
//! grow (either way), split in two, merge or be withdrawn. A sample older than the window is
//! beyond the horizon: the caller stores it and counts it; it changes nothing here.
//!
//! The same samples therefore give the same events whatever their arrival order and batching,
//! as long as each arrives within the horizon of the newest (proven by a property test).

use crate::detect::circuit::{Capacity, CircuitEvent, CircuitState, MaxoutRule, Transition};
use std::collections::VecDeque;

/// What a feed did. Empty vectors do not allocate: the common case (samples in order, no
/// event changing) costs no allocation.
#[derive(Debug, Default, PartialEq)]
pub struct Fed {
    /// Samples that were late within the horizon, put in their places.
    pub reordered: u32,
    /// Samples older than the window (beyond the horizon): not evaluated.
    pub beyond: Vec<(i64, f64)>,
    pub changes: Vec<Change>,
}

/// A change to the circuit's reported events. Keys are the timeline's own, stable for an
/// event's life; the caller maps them to stored events.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Opened {
        key: u64,
        event: CircuitEvent,
        open: bool,
    },
    Updated {
        key: u64,
        event: CircuitEvent,
        open: bool,
    },
    /// A late sample undid it (it fell short of the debounce, or merged into another).
    Withdrawn { key: u64, event: CircuitEvent },
}

/// An event as last reported.
#[derive(Debug, Clone, PartialEq)]
struct Reported {
    key: u64,
    event: CircuitEvent,
    open: bool,
}

#[derive(Debug, Clone)]
pub struct Timeline {
    horizon_ms: i64,
    max_window: usize,
    /// The detector after every sample older than the window.
    settled: CircuitState,
    /// Samples in time order, one per time (a repeated time keeps the larger value, so the
    /// outcome does not depend on which copy came first).
    window: VecDeque<(i64, f64)>,
    /// The detector after every sample.
    head: CircuitState,
    /// Events still open or ending inside the window, in time order.
    reported: Vec<Reported>,
    next_key: u64,
}

impl Timeline {
    /// `horizon_ms`: how far behind the newest sample a late one is still placed in order;
    /// `max_window`: at most this many samples are kept (a circuit reporting every second
    /// has a shorter horizon rather than an unbounded window).
    pub fn new(horizon_ms: i64, max_window: usize) -> Self {
        Timeline {
            horizon_ms: horizon_ms.max(0),
            max_window: max_window.max(1),
            settled: CircuitState::default(),
            window: VecDeque::new(),
            head: CircuitState::default(),
            reported: Vec::new(),
            next_key: 0,
        }
    }

    /// A circuit whose event was open when the process stopped: it goes on or closes with the
    /// next samples. Returns the timeline and the key it gave the event.
    pub fn resumed(horizon_ms: i64, max_window: usize, event: CircuitEvent) -> (Self, u64) {
        let mut timeline = Timeline::new(horizon_ms, max_window);
        timeline.settled = CircuitState::resumed(event.clone());
        timeline.head = timeline.settled.clone();
        timeline.reported.push(Reported {
            key: 0,
            event,
            open: true,
        });
        timeline.next_key = 1;
        (timeline, 0)
    }

    /// The newest sample's time.
    pub fn newest(&self) -> Option<i64> {
        self.window.back().map(|s| s.0).or(self.settled_last())
    }

    fn settled_last(&self) -> Option<i64> {
        self.settled.last_at()
    }

    /// The open event, if any.
    pub fn open_event(&self) -> Option<&CircuitEvent> {
        self.head.open_event()
    }

    /// Whether the event with this key can still change (it is open or ends in the window).
    pub fn is_live(&self, key: u64) -> bool {
        self.reported.iter().any(|r| r.key == key)
    }

    /// Feeds samples (Unix ms, Mbps) in any order (sorted here, in place). A resumed event
    /// whose first sample since comes more than `resume_gap_ms` after it is closed where it
    /// ended first.
    pub fn feed(
        &mut self,
        samples: &mut [(i64, f64)],
        capacity: Capacity,
        rule: MaxoutRule,
        resume_gap_ms: i64,
    ) -> Fed {
        let mut fed = Fed::default();
        if capacity.provisioned_mbps <= 0.0 || samples.is_empty() {
            return fed;
        }
        if !samples.is_sorted_by_key(|s| s.0) {
            samples.sort_by_key(|s| s.0);
        }
        let changes = &mut fed.changes;
        if let Some(event) = self.head.expire_resumed(samples[0].0, resume_gap_ms) {
            // Nothing was watched in between: the event ends where it was, as settled.
            self.settled = self.head.clone();
            if let Some(r) = self.reported.last_mut() {
                r.open = false;
                changes.push(Change::Updated {
                    key: r.key,
                    event,
                    open: false,
                });
            }
        }
        let mut replay = false;
        for &(at, mbps) in samples.iter() {
            if !mbps.is_finite() || self.settled_last().is_some_and(|last| at <= last) {
                fed.beyond.push((at, mbps));
                continue;
            }
            match self.window.back() {
                Some(&(newest, _)) if at <= newest => {
                    if newest - at > self.horizon_ms {
                        fed.beyond.push((at, mbps));
                        continue;
                    }
                    fed.reordered += 1;
                    let slot = self.window.partition_point(|s| s.0 < at);
                    match self.window.get_mut(slot) {
                        Some(same) if same.0 == at => {
                            if mbps > same.1 {
                                same.1 = mbps;
                                replay = true;
                            }
                        }
                        _ => {
                            self.window.insert(slot, (at, mbps));
                            replay = true;
                        }
                    }
                }
                _ if replay => self.window.push_back((at, mbps)),
                _ => {
                    self.window.push_back((at, mbps));
                    let transition = self.head.feed(at, mbps, capacity, rule);
                    self.apply(transition, changes);
                }
            }
        }
        if replay {
            self.replay(capacity, rule, changes);
        }
        self.settle(capacity, rule);
        fed
    }

    /// Records a transition of the head (in-order feeding).
    fn apply(&mut self, transition: Option<Transition>, changes: &mut Vec<Change>) {
        match transition {
            Some(Transition::Opened(event)) => {
                let key = self.next_key;
                self.next_key += 1;
                self.reported.push(Reported {
                    key,
                    event: event.clone(),
                    open: true,
                });
                changes.push(Change::Opened {
                    key,
                    event,
                    open: true,
                });
            }
            Some(Transition::Extended(event)) | Some(Transition::Closed(event)) => {
                let open = self.head.open_event().is_some();
                if let Some(r) = self.reported.last_mut() {
                    r.event = event.clone();
                    r.open = open;
                    changes.push(Change::Updated {
                        key: r.key,
                        event,
                        open,
                    });
                }
            }
            None => {}
        }
    }

    /// The events the window gives from the settled state, matched against those reported.
    fn replay(&mut self, capacity: Capacity, rule: MaxoutRule, changes: &mut Vec<Change>) {
        let mut state = self.settled.clone();
        let mut derived: Vec<CircuitEvent> = state.open_event().cloned().into_iter().collect();
        for &(at, mbps) in &self.window {
            match state.feed(at, mbps, capacity, rule) {
                Some(Transition::Opened(event)) => derived.push(event),
                Some(Transition::Extended(event)) | Some(Transition::Closed(event)) => {
                    if let Some(last) = derived.last_mut() {
                        *last = event;
                    }
                }
                None => {}
            }
        }
        let open_last = state.open_event().is_some();
        self.head = state;
        let count = derived.len();
        let mut matched = vec![false; self.reported.len()];
        let mut next: Vec<Reported> = Vec::with_capacity(count);
        for (n, event) in derived.into_iter().enumerate() {
            let open = open_last && n + 1 == count;
            let old = self
                .reported
                .iter()
                .enumerate()
                .find(|(i, r)| !matched[*i] && overlaps(&r.event, &event))
                .map(|(i, _)| i);
            match old {
                Some(i) => {
                    matched[i] = true;
                    let r = &self.reported[i];
                    if r.event != event || r.open != open {
                        changes.push(Change::Updated {
                            key: r.key,
                            event: event.clone(),
                            open,
                        });
                    }
                    next.push(Reported {
                        key: r.key,
                        event,
                        open,
                    });
                }
                None => {
                    let key = self.next_key;
                    self.next_key += 1;
                    changes.push(Change::Opened {
                        key,
                        event: event.clone(),
                        open,
                    });
                    next.push(Reported { key, event, open });
                }
            }
        }
        for (r, used) in self.reported.iter().zip(matched) {
            if !used {
                changes.push(Change::Withdrawn {
                    key: r.key,
                    event: r.event.clone(),
                });
            }
        }
        self.reported = next;
    }

    /// Moves samples out of the window once they are beyond the horizon (or the window is
    /// full) into the settled state, and forgets events that are over before the window.
    fn settle(&mut self, capacity: Capacity, rule: MaxoutRule) {
        let Some(&(newest, _)) = self.window.back() else {
            return;
        };
        while let Some(&(at, mbps)) = self.window.front() {
            if newest - at <= self.horizon_ms && self.window.len() <= self.max_window {
                break;
            }
            self.window.pop_front();
            self.settled.feed(at, mbps, capacity, rule);
        }
        // An event whose last sample is the settled state's last is still open there (the
        // sample under that closes it is in the window), so a replay derives it again: it is
        // forgotten only once that sample is settled too.
        let settled_last = self.settled_last();
        self.reported
            .retain(|r| r.open || settled_last.is_none_or(|last| r.event.end >= last));
    }
}

/// Two events share a sample time or lie across each other.
fn overlaps(a: &CircuitEvent, b: &CircuitEvent) -> bool {
    a.start <= b.end && b.start <= a.end
}

#[cfg(test)]
mod tests;
