//! What changed between two plans, entry by entry (by name): for `netwarden plan diff` and the
//! audit line each stored version carries.

use crate::model::Plan;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `site`, `agent`, `check`, `target`, `discovery` or `speedtest`.
    pub what: &'static str,
    pub name: String,
    pub change: ChangeKind,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = match self.change {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Changed => '~',
        };
        write!(f, "{sign} {} {}", self.what, self.name)
    }
}

fn compare<T: PartialEq>(
    what: &'static str,
    old: &[T],
    new: &[T],
    name: fn(&T) -> &str,
    out: &mut Vec<Change>,
) {
    let before: std::collections::HashMap<&str, &T> = old.iter().map(|t| (name(t), t)).collect();
    let after: std::collections::HashMap<&str, &T> = new.iter().map(|t| (name(t), t)).collect();
    for entry in old {
        if !after.contains_key(name(entry)) {
            out.push(Change {
                what,
                name: name(entry).to_string(),
                change: ChangeKind::Removed,
            });
        }
    }
    for entry in new {
        let change = match before.get(name(entry)) {
            None => ChangeKind::Added,
            Some(old) if *old != entry => ChangeKind::Changed,
            Some(_) => continue,
        };
        out.push(Change {
            what,
            name: name(entry).to_string(),
            change,
        });
    }
}

/// Every entry added, removed or changed from `old` to `new`, list by list.
pub fn diff(old: &Plan, new: &Plan) -> Vec<Change> {
    let mut out = Vec::new();
    compare("site", &old.sites, &new.sites, |s| &s.name, &mut out);
    compare("agent", &old.agents, &new.agents, |a| &a.name, &mut out);
    compare("check", &old.checks, &new.checks, |c| &c.name, &mut out);
    compare("target", &old.targets, &new.targets, |t| &t.name, &mut out);
    compare(
        "discovery",
        &old.discovery,
        &new.discovery,
        |d| &d.name,
        &mut out,
    );
    compare(
        "speedtest",
        &old.speedtests,
        &new.speedtests,
        |s| &s.name,
        &mut out,
    );
    out
}

/// One line for the audit log: `+2 target, ~1 check` (or `no change`).
pub fn summary(changes: &[Change]) -> String {
    let mut counts: Vec<((&str, char), usize)> = Vec::new();
    for change in changes {
        let sign = match change.change {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Changed => '~',
        };
        match counts.iter_mut().find(|(k, _)| *k == (change.what, sign)) {
            Some((_, n)) => *n += 1,
            None => counts.push(((change.what, sign), 1)),
        }
    }
    if counts.is_empty() {
        return "no change".into();
    }
    counts
        .iter()
        .map(|((what, sign), n)| format!("{sign}{n} {what}"))
        .collect::<Vec<_>>()
        .join(", ")
}
