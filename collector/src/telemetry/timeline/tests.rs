use super::*;
use crate::domain::telemetry::MaxoutClass;
use std::collections::BTreeMap;

const MIN: i64 = 60_000;
const HORIZON: i64 = 15 * MIN;
const CAP: Capacity = Capacity {
    provisioned_mbps: 1000.0,
    burst_mbps: Some(1200.0),
};
const RULE: MaxoutRule = MaxoutRule::CIRCUIT;

/// The events a stream of changes leaves, by key (what a store following them holds).
#[derive(Default)]
struct Ledger(BTreeMap<u64, (CircuitEvent, bool)>);

impl Ledger {
    fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Opened { key, event, open } | Change::Updated { key, event, open } => {
                    self.0.insert(*key, (event.clone(), *open));
                }
                Change::Withdrawn { key, .. } => {
                    self.0.remove(key);
                }
            }
        }
    }

    /// The events in time order, without the keys.
    fn events(&self) -> Vec<(CircuitEvent, bool)> {
        let mut all: Vec<_> = self.0.values().cloned().collect();
        all.sort_by_key(|(e, _)| e.start);
        all
    }
}

/// Feeds each chunk in turn: the events left, and (reordered, beyond) counts.
fn feed_all(chunks: &[Vec<(i64, f64)>]) -> (Ledger, (u32, usize)) {
    let mut timeline = Timeline::new(HORIZON, 4096);
    let mut ledger = Ledger::default();
    let mut counts = (0, 0);
    for chunk in chunks {
        let fed = timeline.feed(&mut chunk.clone(), CAP, RULE, HORIZON);
        ledger.apply(&fed.changes);
        counts.0 += fed.reordered;
        counts.1 += fed.beyond.len();
    }
    (ledger, counts)
}

/// One feed on a timeline: its changes, reordered count and what was beyond the horizon.
fn feed(timeline: &mut Timeline, samples: &[(i64, f64)]) -> Fed {
    timeline.feed(&mut samples.to_vec(), CAP, RULE, HORIZON)
}

fn in_order(samples: &[(i64, f64)]) -> Vec<(CircuitEvent, bool)> {
    let mut sorted = samples.to_vec();
    sorted.sort_by_key(|s| s.0);
    let singles: Vec<Vec<(i64, f64)>> = sorted.into_iter().map(|s| vec![s]).collect();
    feed_all(&singles).0.events()
}

/// xorshift64*: the same cases on every run, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A circuit's day in minutes: mostly under, runs over (some within burst, some above), a
/// missing sample now and then.
fn series(rng: &mut Rng, minutes: i64) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    let mut over = false;
    for m in 0..minutes {
        if rng.below(10) == 0 {
            over = !over;
        }
        if rng.below(25) == 0 {
            continue; // never sent
        }
        let mbps = if over {
            [1000.0, 1100.0, 1200.0, 1250.0][rng.below(4) as usize]
        } else {
            [400.0, 800.0, 999.99][rng.below(3) as usize]
        };
        out.push((m * MIN, mbps));
    }
    out
}

#[test]
fn any_arrival_order_and_batching_within_the_horizon_gives_the_same_events() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    for case in 0..300 {
        let samples = series(&mut rng, 240);
        let want = in_order(&samples);
        // Each sample is delayed by less than the horizon, so none arrives more than the
        // horizon behind the newest; some are sent twice.
        let mut arrivals: Vec<(i64, (i64, f64))> = samples
            .iter()
            .map(|&s| (s.0 + rng.below(HORIZON as u64) as i64, s))
            .collect();
        for i in 0..samples.len() / 20 {
            let s = samples[(i * 17) % samples.len()];
            arrivals.push((s.0 + rng.below(HORIZON as u64) as i64, s));
        }
        arrivals.sort_by_key(|a| a.0);
        let mut chunks: Vec<Vec<(i64, f64)>> = Vec::new();
        let mut rest: Vec<(i64, f64)> = arrivals.into_iter().map(|a| a.1).collect();
        while !rest.is_empty() {
            let take = (1 + rng.below(12) as usize).min(rest.len());
            chunks.push(rest.drain(..take).collect());
        }
        let (ledger, (_, beyond)) = feed_all(&chunks);
        assert_eq!(beyond, 0, "case {case}: nothing is beyond the horizon");
        assert_eq!(ledger.events(), want, "case {case}");
        compared += want.len();
    }
    assert!(compared > 300, "the cases hold events: {compared}");
}

#[test]
fn a_sample_two_minutes_late_completes_the_debounce_it_belongs_to() {
    // 1000+ at minutes 1..=3, the one at minute 2 arrives after minute 4 (under).
    let singles = vec![
        vec![(0, 500.0)],
        vec![(MIN, 1300.0)],
        vec![(3 * MIN, 1300.0)],
        vec![(4 * MIN, 500.0)],
        vec![(2 * MIN, 1300.0)],
    ];
    let (ledger, (reordered, beyond)) = feed_all(&singles);
    assert_eq!((reordered, beyond), (1, 0));
    let events = ledger.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let (event, open) = &events[0];
    assert_eq!((event.start, event.end, event.samples), (MIN, 3 * MIN, 3));
    assert!(!open);
}

#[test]
fn a_late_sample_under_splits_or_withdraws_and_one_over_merges() {
    let over = |m: i64| (m * MIN, 1300.0);
    // Minutes 0..=7 over: one event. Minute 4 then turns out to have been under (a second
    // copy of that minute under changes nothing: the larger value of a minute counts).
    let (mut timeline, mut ledger) = (Timeline::new(HORIZON, 4096), Ledger::default());
    let c = feed(&mut timeline, &(0..8).map(over).collect::<Vec<_>>()).changes;
    ledger.apply(&c);
    assert_eq!(ledger.events().len(), 1);
    let c = feed(&mut timeline, &[(4 * MIN, 100.0)]).changes;
    assert!(c.is_empty(), "the larger value of a minute stands: {c:?}");

    // Minutes 0..=2 and 4..=6 arrive over, minute 3 missing: one run of six. Then minute 3
    // comes, under: two events (the first keeps its key).
    let (mut timeline, mut ledger) = (Timeline::new(HORIZON, 4096), Ledger::default());
    let first: Vec<_> = [0, 1, 2, 4, 5, 6].into_iter().map(over).collect();
    let c = feed(&mut timeline, &first).changes;
    ledger.apply(&c);
    let key = ledger.0.keys().copied().next().unwrap();
    let c = feed(&mut timeline, &[(3 * MIN, 100.0)]).changes;
    assert!(
        matches!(&c[0], Change::Updated { key: k, event, .. } if *k == key && event.end == 2 * MIN),
        "{c:?}"
    );
    assert!(
        matches!(&c[1], Change::Opened { event, .. } if event.start == 4 * MIN),
        "{c:?}"
    );
    ledger.apply(&c);
    assert_eq!(ledger.events().len(), 2);

    // Minutes 0..=3 over (an event), minute 1 turns out under: both halves fall short of
    // three in a row, so the event is withdrawn.
    let (mut timeline, mut ledger) = (Timeline::new(HORIZON, 4096), Ledger::default());
    let c = feed(&mut timeline, &[over(0), over(2), over(3)]).changes;
    ledger.apply(&c);
    assert_eq!(ledger.events().len(), 1);
    let c = feed(&mut timeline, &[(MIN, 100.0)]).changes;
    assert!(matches!(&c[..], [Change::Withdrawn { .. }]), "{c:?}");
    ledger.apply(&c);
    assert!(ledger.events().is_empty());

    // Two events with one minute under between them; that minute arrives again, over: one
    // event, the second withdrawn into the first.
    let (mut timeline, mut ledger) = (Timeline::new(HORIZON, 4096), Ledger::default());
    let mut run: Vec<_> = [0, 1, 2, 4, 5, 6].into_iter().map(over).collect();
    run.push((3 * MIN, 100.0));
    run.sort_by_key(|s| s.0);
    let c = feed(&mut timeline, &run).changes;
    ledger.apply(&c);
    assert_eq!(ledger.events().len(), 2);
    let c = feed(&mut timeline, &[(3 * MIN, 1300.0)]).changes;
    ledger.apply(&c);
    let events = ledger.events();
    assert_eq!(events.len(), 1, "{c:?}");
    assert_eq!(
        (events[0].0.start, events[0].0.end, events[0].0.samples),
        (0, 6 * MIN, 7)
    );
}

#[test]
fn samples_beyond_the_horizon_change_nothing() {
    let (mut timeline, mut ledger) = (Timeline::new(HORIZON, 4096), Ledger::default());
    let c = feed(&mut timeline, &[(0, 500.0), (30 * MIN, 500.0)]).changes;
    ledger.apply(&c);
    let fed = feed(
        &mut timeline,
        &[
            (20 * MIN, 1300.0),
            (MIN, 1300.0),
            (2 * MIN, 1300.0),
            (3 * MIN, 1300.0),
        ],
    );
    assert_eq!(fed.reordered, 1);
    assert_eq!(
        fed.beyond,
        vec![(MIN, 1300.0), (2 * MIN, 1300.0), (3 * MIN, 1300.0)]
    );
    assert!(fed.changes.is_empty(), "{:?}", fed.changes);
    assert_eq!(timeline.newest(), Some(30 * MIN));
}

#[test]
fn the_window_is_bounded_in_samples_too() {
    let mut timeline = Timeline::new(HORIZON, 8);
    let points: Vec<_> = (0..20).map(|s| (s * 1000, 500.0)).collect();
    feed(&mut timeline, &points);
    assert_eq!(timeline.window.len(), 8);
    let fed = feed(&mut timeline, &[(5_000, 1300.0)]);
    assert_eq!(fed.beyond, vec![(5_000, 1300.0)], "older than the window");
}

#[test]
fn a_resumed_event_goes_on_or_ends_where_it_was() {
    let event = CircuitEvent {
        start: 0,
        end: 2 * MIN,
        samples: 3,
        peak_mbps: 1300.0,
        peak_at: MIN,
        severity: MaxoutClass::Maxout,
    };
    let (mut timeline, key) = Timeline::resumed(HORIZON, 4096, event.clone());
    let c = feed(&mut timeline, &[(3 * MIN, 1300.0)]).changes;
    assert!(
        matches!(&c[..], [Change::Updated { key: k, event, open: true }] if *k == key && event.samples == 4),
        "{c:?}"
    );
    // Long after: it ends where it was, and the sample starts afresh.
    let (mut timeline, key) = Timeline::resumed(HORIZON, 4096, event.clone());
    let c = feed(&mut timeline, &[(60 * MIN, 1300.0)]).changes;
    assert!(
        matches!(&c[..], [Change::Updated { key: k, event: e, open: false }] if *k == key && *e == event),
        "{c:?}"
    );
    assert!(timeline.open_event().is_none());
}

#[test]
fn severity_at_the_boundaries() {
    let rule = MaxoutRule::fraction(1.0, 1);
    let run = |mbps: f64| {
        let mut timeline = Timeline::new(HORIZON, 4096);
        let fed = timeline.feed(&mut [(0, mbps)], CAP, rule, HORIZON);
        match fed.changes.first() {
            Some(Change::Opened { event, .. }) => Some(event.severity),
            _ => None,
        }
    };
    assert_eq!(run(999.99), None, "under provisioned: nothing");
    assert_eq!(
        run(1000.0),
        Some(MaxoutClass::Burst),
        "exactly provisioned is a breach"
    );
    assert_eq!(
        run(1200.0),
        Some(MaxoutClass::Burst),
        "exactly the ceiling is still burst"
    );
    assert_eq!(run(1200.01), Some(MaxoutClass::Maxout), "above the ceiling");
}
