//! How a stored device row and an incoming sighting of it merge, defined once.
//!
//! Batches arrive late, twice and out of order (an agent replays its buffer after an outage),
//! so a device's columns cannot simply be overwritten: each column has a [`Rule`] here, and
//! [`device_assignments`] writes those rules into the `SET` list of each backend's upsert (the
//! merge has to happen inside the one statement, or two collectors on one PostgreSQL could
//! interleave a read and a write). The batch's own sightings are merged before that, in
//! [`super::BatchPlan`], by [`identities`], the same rule in Rust.

use super::plan::Identity;

/// How one column of a stored row takes an incoming value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The earlier of the two (a first sighting).
    Earliest,
    /// The later of the two; a missing value never wins.
    Latest,
    /// The incoming value where its clock is not older, else the stored one; either fills the
    /// other's gap (an old sighting that knew a hostname still gives one to a row without).
    NewerFills { clock: &'static str },
    /// The incoming value where its clock is not older, else the stored one, missing or not.
    NewerWins { clock: &'static str },
}

/// A device's columns and their rules. The clocks: `identity_at` (when the MAC, vendor and
/// name were seen) and `last_probe_at` (the round the status and figures come from).
pub const DEVICE: &[(&str, Rule)] = &[
    ("first_seen", Rule::Earliest),
    ("last_seen", Rule::Latest),
    ("mac", BY_IDENTITY),
    ("vendor", BY_IDENTITY),
    ("hostname", BY_IDENTITY),
    ("identity_at", Rule::Latest),
    ("status", BY_PROBE),
    ("alive_by", BY_PROBE),
    ("last_loss_pct", BY_PROBE),
    ("last_rtt_ms", BY_PROBE),
    ("last_probe_at", Rule::Latest),
];

const BY_IDENTITY: Rule = Rule::NewerFills {
    clock: "identity_at",
};
const BY_PROBE: Rule = Rule::NewerWins {
    clock: "last_probe_at",
};

/// Two sightings of a device's identity under [`DEVICE`]'s rule for its MAC, vendor and name
/// (`NewerFills` by `identity_at`), for the planner: what the store's upsert would make of them
/// one after the other, in either order.
pub fn identities(a: Identity, b: Identity) -> Identity {
    let (newer, older) = if b.at >= a.at { (b, a) } else { (a, b) };
    Identity {
        at: newer.at,
        mac: newer.mac.or(older.mac),
        vendor: newer.vendor.or(older.vendor),
        hostname: newer.hostname.or(older.hostname),
    }
}

/// What differs between the backends in writing a rule.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// A time earlier than any stored one.
    pub earliest: &'static str,
    /// `GREATEST`/`LEAST` that skip a missing value, as PostgreSQL's do.
    pub greatest: fn(&str, &str) -> String,
    pub least: fn(&str, &str) -> String,
}

/// SQLite stores times as Unix milliseconds; its two-argument `max`/`min` are NULL when either
/// argument is, so each side falls back to the other.
pub const SQLITE: Dialect = Dialect {
    earliest: "0",
    greatest: |a, b| format!("max(coalesce({a}, {b}), coalesce({b}, {a}))"),
    least: |a, b| format!("min(coalesce({a}, {b}), coalesce({b}, {a}))"),
};

pub const POSTGRES: Dialect = Dialect {
    earliest: "'-infinity'",
    greatest: |a, b| format!("GREATEST({a}, {b})"),
    least: |a, b| format!("LEAST({a}, {b})"),
};

/// The `column = expression` list that merges `incoming` into `stored` under [`DEVICE`]'s
/// rules; `stored` and `incoming` name each side of a column (`devices.mac`, `excluded.mac`,
/// or a placeholder).
pub fn device_assignments(
    dialect: Dialect,
    stored: impl Fn(&str) -> String,
    incoming: impl Fn(&str) -> String,
) -> String {
    DEVICE
        .iter()
        .map(|&(column, rule)| {
            let (old, new) = (stored(column), incoming(column));
            let expression = match rule {
                Rule::Earliest => (dialect.least)(&old, &new),
                Rule::Latest => (dialect.greatest)(&old, &new),
                Rule::NewerFills { clock } => format!(
                    "CASE WHEN {} >= COALESCE({}, {}) THEN COALESCE({new}, {old}) ELSE COALESCE({old}, {new}) END",
                    incoming(clock),
                    stored(clock),
                    dialect.earliest
                ),
                Rule::NewerWins { clock } => format!(
                    "CASE WHEN {} >= COALESCE({}, {}) THEN {new} ELSE {old} END",
                    incoming(clock),
                    stored(clock),
                    dialect.earliest
                ),
            };
            format!("{column} = {expression}")
        })
        .collect::<Vec<_>>()
        .join(",\n    ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules, run on a real SQLite through the very statement text the SQLite store uses:
    /// every order of two sightings gives the row the merge rules promise.
    #[test]
    fn rules_hold_whichever_sighting_arrives_first() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE devices (id INTEGER PRIMARY KEY, first_seen INTEGER, last_seen INTEGER,
                 mac TEXT, vendor TEXT, hostname TEXT, identity_at INTEGER, status INTEGER,
                 alive_by TEXT, last_loss_pct REAL, last_rtt_ms REAL, last_probe_at INTEGER)",
        )
        .unwrap();
        let columns: Vec<&str> = DEVICE.iter().map(|(c, _)| *c).collect();
        let upsert = format!(
            "INSERT INTO devices (id, {}) VALUES (1, {}) ON CONFLICT (id) DO UPDATE SET {}",
            columns.join(", "),
            (1..=columns.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", "),
            device_assignments(SQLITE, |c| c.to_string(), |c| format!("excluded.{c}"))
        );
        type Sighting = (
            i64,
            i64,
            Option<&'static str>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        // (first_seen, last_seen, hostname, identity_at, status, last_probe_at)
        let old: Sighting = (100, 100, Some("old-name"), Some(100), Some(1), Some(100));
        let new: Sighting = (200, 200, None, Some(200), Some(2), Some(200));
        let write = |s: Sighting| {
            conn.execute(
                &upsert,
                rusqlite::params![
                    s.0,
                    s.1,
                    "aa:bb",
                    None::<String>,
                    s.2,
                    s.3,
                    s.4,
                    None::<String>,
                    1.5,
                    2.5,
                    s.5
                ],
            )
            .unwrap();
        };
        for order in [[old, new], [new, old]] {
            conn.execute("DELETE FROM devices", []).unwrap();
            for s in order {
                write(s);
            }
            let row: (i64, i64, Option<String>, i64, i64, i64) = conn
                .query_row(
                    "SELECT first_seen, last_seen, hostname, identity_at, status, last_probe_at FROM devices",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                )
                .unwrap();
            // The newer sighting had no name: the older one's fills the gap either way.
            assert_eq!(
                row,
                (100, 200, Some("old-name".into()), 200, 2, 200),
                "order {order:?}"
            );
        }
    }

    #[test]
    fn a_missing_incoming_time_never_wins_on_either_dialect() {
        let sqlite = device_assignments(SQLITE, |c| c.into(), |c| format!("excluded.{c}"));
        assert!(sqlite.contains(
            "identity_at = max(coalesce(identity_at, excluded.identity_at), coalesce(excluded.identity_at, identity_at))"
        ));
        let postgres = device_assignments(
            POSTGRES,
            |c| format!("devices.{c}"),
            |c| format!("EXCLUDED.{c}"),
        );
        assert!(postgres
            .contains("last_probe_at = GREATEST(devices.last_probe_at, EXCLUDED.last_probe_at)"));
        assert!(postgres.contains("COALESCE(devices.identity_at, '-infinity')"));
    }
}
