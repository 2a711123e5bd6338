//! `netwarden-collector import circuits FILE`: the customer's circuit list as it is. Columns are
//! found by header name (case, spaces and `_` ignored) or mapped (`--map
//! provisioned_mbps="Speed"`); the burst column is read as the file means it (a ceiling, or
//! headroom above the provisioned rate: `--burst-means`); accounts are named by id or by
//! display name, and created with an id derived from the name when asked
//! (`--create-accounts`). Good rows are imported; each refused row is named with its column.

use super::{header_key, parse_time, read_table, Cell, ImportError, MAX_ROWS};
use crate::poi::parse_capacity;
use crate::storage::customers::Account;
use crate::storage::telemetry::CircuitRecord;
use crate::storage::{Store, StoreError};
use crate::telemetry::sample::{check_rates, valid_id, ID_RULE, MAX_CIRCUIT_ID};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Our columns, as `--map` names them.
pub const COLUMNS: [&str; 8] = [
    "circuit_id",
    "provisioned_mbps",
    "burst_mbps",
    "account",
    "pop",
    "provisioned_at",
    "upgraded_at",
    "decommissioned_at",
];

/// What the file's burst column means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BurstMeans {
    /// The most the circuit may carry (at least the provisioned rate).
    #[default]
    Ceiling,
    /// Headroom above the provisioned rate: the ceiling is provisioned + burst.
    Headroom,
}

#[derive(Debug, Clone, Default)]
pub struct CircuitImportOptions {
    /// Our column -> the file's header for it.
    pub columns: BTreeMap<String, String>,
    pub burst_means: BurstMeans,
    /// Create accounts the file names that do not exist yet.
    pub create_accounts: bool,
}

/// A circuit read from the file, with its row (the header's is the row the file shows), so a
/// problem found later (an unknown account) names the right row even after blank lines. Its
/// `account` is as written until [`import`] resolves it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedCircuit {
    pub row: usize,
    pub circuit: CircuitRecord,
}

/// The rows read: good ones and refused ones.
#[derive(Debug, Default)]
pub struct CircuitRows {
    pub circuits: Vec<ImportedCircuit>,
    pub refused: Vec<ImportError>,
}

#[derive(Debug, thiserror::Error)]
pub enum CircuitImportError {
    #[error("{0}")]
    File(ImportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import did.
#[derive(Debug, Default)]
pub struct CircuitImportReport {
    /// Circuits that did not exist.
    pub new: usize,
    /// Circuits that existed and were different.
    pub changed: usize,
    pub unchanged: usize,
    /// Rows not imported, each naming its row and column.
    pub refused: Vec<ImportError>,
    pub accounts_created: Vec<Account>,
}

/// Reads the file into circuits and refused rows; a file that cannot be read at all (no
/// header, a mapping to a column it does not have) is an error.
pub fn read_circuits(
    path: &Path,
    options: &CircuitImportOptions,
) -> Result<CircuitRows, ImportError> {
    let key = options
        .columns
        .get("circuit_id")
        .map_or("circuit_id", String::as_str);
    let (header_row, rows) = read_table(path, key)?;
    circuits_from_rows(&rows, header_row, options)
}

/// An account id derived from a display name: `Acme Pty. Ltd` -> `acme-pty-ltd`. The same name
/// always gives the same id.
pub fn account_id_for(name: &str) -> String {
    let mut id = String::new();
    let mut gap = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !id.is_empty() {
                id.push('-');
            }
            id.push(c.to_ascii_lowercase());
            gap = false;
        } else {
            gap = true;
        }
    }
    if id.is_empty() {
        // A name of no ASCII letters or digits: a digest keeps it stable.
        use sha2::Digest;
        let digest = sha2::Sha256::digest(name.trim().as_bytes());
        id = format!("account-{:x}", digest)[..24].to_string();
    }
    id.truncate(MAX_CIRCUIT_ID);
    id.trim_end_matches('-').to_string()
}

/// A display name as compared: case and runs of space ignored.
fn name_key(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Imports the file: reads it, resolves accounts (creating them when asked), and saves every
/// good row in one transaction.
pub async fn import(
    store: &dyn Store,
    path: &Path,
    options: &CircuitImportOptions,
    now: DateTime<Utc>,
) -> Result<CircuitImportReport, CircuitImportError> {
    let rows = read_circuits(path, options).map_err(CircuitImportError::File)?;
    let mut report = CircuitImportReport {
        refused: rows.refused,
        ..CircuitImportReport::default()
    };
    let accounts = store.accounts().await?;
    let mut by_id: HashMap<String, String> = accounts
        .iter()
        .map(|a| (a.id.clone(), a.id.clone()))
        .collect();
    let mut by_name: HashMap<String, String> = accounts
        .iter()
        .map(|a| (name_key(&a.name), a.id.clone()))
        .collect();
    let mut circuits = Vec::new();
    for mut imported in rows.circuits {
        if let Some(written) = imported.circuit.account.take() {
            let found = by_id
                .get(&written)
                .or_else(|| by_name.get(&name_key(&written)))
                .cloned();
            let id = match found {
                Some(id) => id,
                None if options.create_accounts => {
                    let id = account_id_for(&written);
                    let account = Account {
                        id: id.clone(),
                        name: written.clone(),
                        contact_name: None,
                        contact_email: None,
                        account_manager: None,
                        cx_manager: None,
                    };
                    by_id.insert(id.clone(), id.clone());
                    by_name.insert(name_key(&written), id.clone());
                    report.accounts_created.push(account);
                    id
                }
                None => {
                    report.refused.push(ImportError {
                        row: imported.row,
                        column: "account".into(),
                        message: format!(
                            "no account has the id or name {written:?}; import with --create-accounts to create it (as {:?})",
                            account_id_for(&written)
                        ),
                    });
                    continue;
                }
            };
            imported.circuit.account = Some(id);
        }
        circuits.push(imported.circuit);
    }
    let ids: Vec<String> = circuits.iter().map(|c| c.circuit_id.clone()).collect();
    let existing: HashMap<String, CircuitRecord> = store
        .circuits_by_ids(&ids)
        .await?
        .into_iter()
        .map(|c| (c.circuit_id.clone(), c))
        .collect();
    for c in &circuits {
        match existing.get(&c.circuit_id) {
            None => report.new += 1,
            Some(old) if old != c => report.changed += 1,
            Some(_) => report.unchanged += 1,
        }
    }
    for account in &report.accounts_created {
        store.save_account(account, now).await?;
    }
    store.save_circuits(&circuits, now).await?;
    report.refused.sort_by_key(|e| e.row);
    Ok(report)
}

/// `header_row` is the file's row number of `rows[0]`, so errors name the file's rows.
fn circuits_from_rows(
    rows: &[Vec<Cell>],
    header_row: usize,
    options: &CircuitImportOptions,
) -> Result<CircuitRows, ImportError> {
    let header_error = |message: String| ImportError {
        row: header_row,
        column: "header".into(),
        message,
    };
    let header = rows
        .first()
        .ok_or_else(|| header_error("the file is empty".into()))?;
    let headers: Vec<String> = header
        .iter()
        .map(|c| match c {
            Cell::Text(t) => t.trim().to_string(),
            _ => String::new(),
        })
        .collect();
    let shown = headers
        .iter()
        .filter(|h| !h.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(unknown) = options
        .columns
        .keys()
        .find(|k| !COLUMNS.contains(&k.as_str()))
    {
        return Err(header_error(format!(
            "--map {unknown}=...: not a column of ours ({})",
            COLUMNS.join(", ")
        )));
    }
    let mut at: HashMap<&str, usize> = HashMap::new();
    for ours in COLUMNS {
        let (wanted, mapped) = match options.columns.get(ours) {
            Some(theirs) => (theirs.as_str(), true),
            None => (ours, false),
        };
        match headers
            .iter()
            .position(|h| header_key(h) == header_key(wanted))
        {
            Some(i) => {
                at.insert(ours, i);
            }
            None if mapped => {
                return Err(header_error(format!(
                    "--map {ours}={wanted:?}: the file has no such column (its columns: {shown})"
                )))
            }
            None => {}
        }
    }
    for required in ["circuit_id", "provisioned_mbps"] {
        if !at.contains_key(required) {
            return Err(header_error(format!(
                "no {required} column (the file's columns: {shown}); name it, or map one with --map {required}=\"...\""
            )));
        }
    }
    if rows.len() > MAX_ROWS + 1 {
        return Err(header_error(format!("more than {MAX_ROWS} rows")));
    }
    let column = |ours: &str| -> String {
        match options.columns.get(ours) {
            Some(theirs) => format!("{ours} ({theirs})"),
            None => ours.to_string(),
        }
    };
    let mut out = CircuitRows::default();
    let mut seen = HashMap::new();
    for (i, row) in rows.iter().enumerate().skip(1) {
        let row_no = header_row + i;
        if row.iter().all(|c| *c == Cell::Empty) {
            continue;
        }
        let cell = |name: &str| {
            at.get(name)
                .and_then(|i| row.get(*i))
                .unwrap_or(&Cell::Empty)
        };
        let mut errors: Vec<ImportError> = Vec::new();
        let mut fail = |ours: &str, message: String| {
            errors.push(ImportError {
                row: row_no,
                column: column(ours),
                message,
            })
        };
        let id = match cell("circuit_id") {
            Cell::Text(t) => t.trim().to_string(),
            Cell::Number(n) if n.fract() == 0.0 => format!("{n:.0}"),
            _ => String::new(),
        };
        if !valid_id(&id) {
            fail("circuit_id", format!("{id:?} {ID_RULE}"));
        } else if let Some(first) = seen.insert(id.clone(), row_no) {
            fail("circuit_id", format!("{id} is also on row {first}"));
        }
        let provisioned = match mbps(cell("provisioned_mbps")) {
            Ok(Some(v)) => match check_rates(v, None) {
                Ok(()) => Some(v),
                Err((field, message)) => {
                    fail(field, message);
                    None
                }
            },
            Ok(None) => {
                fail("provisioned_mbps", "is required".into());
                None
            }
            Err(e) => {
                fail("provisioned_mbps", e);
                None
            }
        };
        let burst = match (mbps(cell("burst_mbps")), provisioned) {
            (Ok(Some(b)), Some(p)) => match burst_ceiling(b, p, options.burst_means) {
                Ok(ceiling) => ceiling,
                Err(message) => {
                    fail("burst_mbps", message);
                    None
                }
            },
            // The provisioned rate is already at fault.
            (Ok(_), _) => None,
            (Err(e), _) => {
                fail("burst_mbps", e);
                None
            }
        };
        let text = |c: &Cell| match c {
            Cell::Text(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
            Cell::Number(n) => Some(format!("{n}")),
            _ => None,
        };
        let mut time = |name: &str| -> Option<DateTime<Utc>> {
            match parse_time(cell(name)) {
                Ok(t) => t,
                Err(e) => {
                    fail(name, e);
                    None
                }
            }
        };
        let (provisioned_at, upgraded_at, decommissioned_at) = (
            time("provisioned_at"),
            time("upgraded_at"),
            time("decommissioned_at"),
        );
        match provisioned {
            Some(provisioned_mbps) if errors.is_empty() => {
                out.circuits.push(ImportedCircuit {
                    row: row_no,
                    circuit: CircuitRecord {
                        circuit_id: id,
                        account: text(cell("account")),
                        provisioned_mbps,
                        burst_mbps: burst,
                        pop: text(cell("pop")),
                        provisioned_at,
                        upgraded_at,
                        decommissioned_at,
                    },
                });
            }
            _ => out.refused.extend(errors),
        }
    }
    Ok(out)
}

/// A rate in Mbps: a number (Mbps), or text with a unit (`1 Gbps`, `500M`).
fn mbps(cell: &Cell) -> Result<Option<f64>, String> {
    match cell {
        Cell::Empty => Ok(None),
        Cell::Number(n) => Ok(Some(*n)),
        Cell::Text(t) => {
            let t = t.trim();
            if let Ok(v) = t.parse::<f64>() {
                return Ok(Some(v));
            }
            match parse_capacity(t) {
                Some(bps) if t.chars().any(|c| c.is_ascii_alphabetic()) => {
                    Ok(Some(bps as f64 / 1e6))
                }
                _ => Err(format!(
                    "{t:?} is not a rate (Mbps, or with a unit: 1 Gbps)"
                )),
            }
        }
        Cell::Time(_) => Err("is a date, not a rate".into()),
    }
}

/// The burst ceiling a cell gives, as the file means it. A zero headroom is no burst; a
/// ceiling below the provisioned rate is an error that names the other reading.
fn burst_ceiling(value: f64, provisioned: f64, means: BurstMeans) -> Result<Option<f64>, String> {
    let ceiling = match means {
        BurstMeans::Headroom if value < 0.0 => {
            return Err(format!("{value} is negative: headroom is 0 or more"))
        }
        BurstMeans::Headroom if value == 0.0 => return Ok(None),
        BurstMeans::Headroom => provisioned + value,
        BurstMeans::Ceiling if value < provisioned => {
            return Err(format!(
                "{value} is below provisioned_mbps {provisioned}; if the file's burst is headroom above the provisioned rate, import with --burst-means headroom"
            ))
        }
        BurstMeans::Ceiling => value,
    };
    check_rates(provisioned, Some(ceiling))
        .map(|()| Some(ceiling))
        .map_err(|(_, message)| message)
}

#[cfg(test)]
mod tests;
