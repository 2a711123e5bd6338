//! Bulk circuit import from CSV or XLSX (`netwarden-collector import circuits FILE`): columns
//! found by header name, every row checked before anything is written, and every problem
//! named by row and column. All or nothing.

use crate::storage::telemetry::CircuitRecord;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use std::path::Path;

/// Most rows one file may hold.
pub const MAX_ROWS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// 1-based, as a spreadsheet shows it (the header is row 1).
    pub row: usize,
    pub column: String,
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.row == 0 {
            write!(f, "{}: {}", self.column, self.message)
        } else {
            write!(
                f,
                "row {}, column {}: {}",
                self.row, self.column, self.message
            )
        }
    }
}

/// A cell, as read from either format.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Time(NaiveDateTime),
}

const COLUMNS: [&str; 8] = [
    "circuit_id",
    "provisioned_mbps",
    "burst_mbps",
    "account",
    "pop",
    "provisioned_at",
    "upgraded_at",
    "decommissioned_at",
];

/// A circuit read from the file, with the row it came from (the header is row 1), so that a
/// problem found later (an unknown account) names the right row even after blank lines.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedCircuit {
    pub row: usize,
    pub circuit: CircuitRecord,
}

/// Reads the file (`.csv`, `.xlsx`) into circuits, or every problem found.
pub fn read_circuits(path: &Path) -> Result<Vec<ImportedCircuit>, Vec<ImportError>> {
    let whole = |message: String| {
        vec![ImportError {
            row: 0,
            column: path.display().to_string(),
            message,
        }]
    };
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    // The header's row in the file: a sheet's used range may start below empty rows.
    let (header_row, rows): (usize, Vec<Vec<Cell>>) = match extension.as_str() {
        "csv" => {
            let text = std::fs::read_to_string(path).map_err(|e| whole(e.to_string()))?;
            let rows =
                parse_csv(text.trim_start_matches('\u{feff}')).map_err(|(row, message)| {
                    vec![ImportError {
                        row,
                        column: "-".into(),
                        message,
                    }]
                })?;
            (1, rows)
        }
        "xlsx" | "xlsm" | "xls" | "ods" => read_sheet(path).map_err(whole)?,
        other => {
            return Err(whole(format!(
                "unknown file type {other:?}: use .csv or .xlsx"
            )))
        }
    };
    circuits_from_rows(&rows, header_row)
}

/// The first sheet with a `circuit_id` header: its header's row number and its rows.
fn read_sheet(path: &Path) -> Result<(usize, Vec<Vec<Cell>>), String> {
    use calamine::{open_workbook_auto, Data, Reader};
    let mut workbook = open_workbook_auto(path).map_err(|e| e.to_string())?;
    let sheets = workbook.sheet_names().to_vec();
    for name in sheets {
        let range = workbook.worksheet_range(&name).map_err(|e| e.to_string())?;
        let rows: Vec<Vec<Cell>> = range
            .rows()
            .take(MAX_ROWS + 2)
            .map(|row| {
                row.iter()
                    .map(|cell| match cell {
                        Data::Empty => Cell::Empty,
                        Data::String(s) => Cell::Text(s.clone()),
                        Data::Float(f) => Cell::Number(*f),
                        Data::Int(i) => Cell::Number(*i as f64),
                        Data::Bool(b) => Cell::Text(b.to_string()),
                        Data::DateTime(d) => excel_date(d.as_f64()).map_or(Cell::Empty, Cell::Time),
                        Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
                        Data::Error(e) => Cell::Text(format!("#{e:?}")),
                    })
                    .collect()
            })
            .collect();
        let has_header = rows.first().is_some_and(|header| {
            header
                .iter()
                .any(|c| matches!(c, Cell::Text(t) if t.trim().eq_ignore_ascii_case("circuit_id")))
        });
        if has_header {
            let first = range.start().map_or(0, |(row, _)| row as usize);
            return Ok((first + 1, rows));
        }
    }
    Err("no sheet has a circuit_id column".into())
}

/// An Excel serial date (days since 1899-12-30, the fraction being the time of day).
fn excel_date(serial: f64) -> Option<NaiveDateTime> {
    if !serial.is_finite() || !(0.0..2_958_466.0).contains(&serial) {
        return None;
    }
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_hms_opt(0, 0, 0)?;
    let seconds = (serial * 86_400.0).round() as i64;
    epoch.checked_add_signed(chrono::Duration::seconds(seconds))
}

/// RFC 4180 CSV: quoted fields with `""` escapes, CRLF or LF. Errors: (line, message).
pub fn parse_csv(text: &str) -> Result<Vec<Vec<Cell>>, (usize, String)> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let finish = |field: &mut String, was_quoted: bool| -> Cell {
        let value = std::mem::take(field);
        if value.trim().is_empty() && !was_quoted {
            Cell::Empty
        } else {
            Cell::Text(value)
        }
    };
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            ',' => {
                row.push(finish(&mut field, was_quoted));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(finish(&mut field, was_quoted));
                was_quoted = false;
                rows.push(std::mem::take(&mut row));
                line += 1;
                if rows.len() > MAX_ROWS + 1 {
                    return Err((line, format!("more than {MAX_ROWS} rows")));
                }
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err((line, "a quoted field is not closed".into()));
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(finish(&mut field, was_quoted));
        rows.push(row);
    }
    Ok(rows)
}

/// `header_row` is the file's row number of `rows[0]`, so errors name the file's rows.
fn circuits_from_rows(
    rows: &[Vec<Cell>],
    header_row: usize,
) -> Result<Vec<ImportedCircuit>, Vec<ImportError>> {
    let header_error = |message: String| {
        vec![ImportError {
            row: header_row,
            column: "header".into(),
            message,
        }]
    };
    let header = rows
        .first()
        .ok_or_else(|| header_error("the file is empty".into()))?;
    let names: Vec<String> = header
        .iter()
        .map(|c| match c {
            Cell::Text(t) => t.trim().to_ascii_lowercase(),
            _ => String::new(),
        })
        .collect();
    let at = |name: &str| names.iter().position(|n| n == name);
    for required in ["circuit_id", "provisioned_mbps"] {
        if at(required).is_none() {
            return Err(header_error(format!(
                "no {required} column (columns: {})",
                COLUMNS.join(", ")
            )));
        }
    }
    if rows.len() > MAX_ROWS + 1 {
        return Err(header_error(format!("more than {MAX_ROWS} rows")));
    }
    let mut errors = Vec::new();
    let mut circuits = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (i, row) in rows.iter().enumerate().skip(1) {
        let row_no = header_row + i;
        if row.iter().all(|c| *c == Cell::Empty) {
            continue;
        }
        let cell = |name: &str| at(name).and_then(|i| row.get(i)).unwrap_or(&Cell::Empty);
        let mut fail = |column: &str, message: String| {
            errors.push(ImportError {
                row: row_no,
                column: column.into(),
                message,
            })
        };
        let id = match cell("circuit_id") {
            Cell::Text(t) => t.trim().to_string(),
            Cell::Number(n) if n.fract() == 0.0 => format!("{n:.0}"),
            _ => String::new(),
        };
        if !crate::telemetry::sample::valid_id(&id) {
            fail(
                "circuit_id",
                format!("{id:?} {}", crate::telemetry::sample::ID_RULE),
            );
        } else if let Some(first) = seen.insert(id.clone(), row_no) {
            fail("circuit_id", format!("{id} is also on row {first}"));
        }
        let number = |c: &Cell| -> Result<Option<f64>, String> {
            match c {
                Cell::Empty => Ok(None),
                Cell::Number(n) => Ok(Some(*n)),
                Cell::Text(t) => t
                    .trim()
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| format!("{t:?} is not a number")),
                Cell::Time(_) => Err("is a date, not a number".into()),
            }
        };
        let provisioned = match number(cell("provisioned_mbps")) {
            Ok(Some(v)) => match super::sample::check_rates(v, None) {
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
        let burst = match number(cell("burst_mbps")) {
            Ok(Some(b)) => match provisioned.map(|p| super::sample::check_rates(p, Some(b))) {
                Some(Ok(())) => Some(b),
                Some(Err((field, message))) => {
                    fail(field, message);
                    None
                }
                // The provisioned rate is already at fault.
                None => None,
            },
            Ok(None) => None,
            Err(e) => {
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
        if let Some(provisioned_mbps) = provisioned {
            circuits.push(ImportedCircuit {
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
    }
    if errors.is_empty() {
        Ok(circuits)
    } else {
        Err(errors)
    }
}

fn parse_time(cell: &Cell) -> Result<Option<DateTime<Utc>>, String> {
    match cell {
        Cell::Empty => Ok(None),
        Cell::Time(t) => Ok(Some(t.and_utc())),
        Cell::Number(_) => Err("is a number, not a date (YYYY-MM-DD)".into()),
        Cell::Text(t) => {
            let t = t.trim();
            if let Ok(d) = DateTime::parse_from_rfc3339(t) {
                return Ok(Some(d.with_timezone(&Utc)));
            }
            if let Ok(d) = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S") {
                return Ok(Some(d.and_utc()));
            }
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| Some(d.and_utc()))
                .ok_or_else(|| format!("{t:?} is not a date (YYYY-MM-DD)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Result<Vec<CircuitRecord>, Vec<ImportError>> {
        circuits_from_rows(&parse_csv(text).unwrap(), 1)
            .map(|read| read.into_iter().map(|c| c.circuit).collect())
    }

    #[test]
    fn a_good_file_imports_every_row() {
        let text = "Circuit_ID,provisioned_mbps,burst_mbps,account,pop,provisioned_at\r\n\
                    CIR-1,1000,1200,ACME,\"Sydney, Pitt St\",2024-03-01\r\n\
                    CIR-2,500,,,,\r\n";
        let got = rows(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].pop.as_deref(), Some("Sydney, Pitt St"));
        assert_eq!(got[0].burst_mbps, Some(1200.0));
        assert_eq!(
            got[0].provisioned_at.unwrap().to_rfc3339(),
            "2024-03-01T00:00:00+00:00"
        );
        assert_eq!(got[1].account, None);
    }

    #[test]
    fn every_problem_is_named_by_row_and_column_and_nothing_is_taken() {
        let text = "circuit_id,provisioned_mbps,burst_mbps,provisioned_at\n\
                    CIR-1,1000,900,\n\
                    ,100,,\n\
                    CIR-3,lots,,\n\
                    CIR-1,100,,yesterday\n";
        let errors = rows(text).unwrap_err();
        let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(got[0].starts_with("row 2, column burst_mbps"), "{got:?}");
        assert!(got[1].starts_with("row 3, column circuit_id"), "{got:?}");
        assert!(
            got[2].starts_with("row 4, column provisioned_mbps"),
            "{got:?}"
        );
        assert!(
            got[3].contains("row 5, column circuit_id") && got[3].contains("row 2"),
            "{got:?}"
        );
        assert!(
            got[4].starts_with("row 5, column provisioned_at"),
            "{got:?}"
        );
        let missing = rows("id,speed\n1,2\n").unwrap_err();
        assert!(missing[0].to_string().contains("no circuit_id column"));
    }

    #[test]
    fn csv_quotes_and_line_endings() {
        let parsed = parse_csv("a,\"b \"\"q\"\" ,c\",d\r\n1,2,3").unwrap();
        assert_eq!(parsed[0][1], Cell::Text("b \"q\" ,c".into()));
        assert_eq!(parsed[1].len(), 3);
        assert!(parse_csv("a,\"open\n").is_err());
    }
}
