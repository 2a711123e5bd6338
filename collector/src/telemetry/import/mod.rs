//! Importing people's files: circuits (`import circuits`, [`circuits`]) and telemetry history
//! (`import telemetry`, [`samples`]). Both read CSV or a spreadsheet, find columns by header
//! name, and name every problem by row and column as the file shows them.

pub mod circuits;
pub mod samples;

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

/// Reads a table from a `.csv` file or a sheet (the first whose header names `key`): the
/// header's row number in the file and the rows, header first.
pub fn read_table(path: &Path, key: &str) -> Result<(usize, Vec<Vec<Cell>>), ImportError> {
    let whole = |message: String| ImportError {
        row: 0,
        column: path.display().to_string(),
        message,
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
                    ImportError {
                        row,
                        column: "-".into(),
                        message,
                    }
                })?;
            (1, rows)
        }
        "xlsx" | "xlsm" | "xls" | "ods" => read_sheet(path, key).map_err(whole)?,
        other => {
            return Err(whole(format!(
                "unknown file type {other:?}: use .csv or .xlsx"
            )))
        }
    };
    Ok((header_row, rows))
}

/// A header as compared: lower case, letters and digits only (`Circuit ID` = `circuit_id`).
pub fn header_key(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The first sheet with a `key` header: its header's row number and its rows.
fn read_sheet(path: &Path, key: &str) -> Result<(usize, Vec<Vec<Cell>>), String> {
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
                .any(|c| matches!(c, Cell::Text(t) if header_key(t) == header_key(key)))
        });
        if has_header {
            let first = range.start().map_or(0, |(row, _)| row as usize);
            return Ok((first + 1, rows));
        }
    }
    Err(format!("no sheet has a {key} column"))
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

/// A date or time cell: RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC), or a
/// spreadsheet date.
pub fn parse_time(cell: &Cell) -> Result<Option<DateTime<Utc>>, String> {
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

    #[test]
    fn csv_quotes_and_line_endings() {
        let parsed = parse_csv("a,\"b \"\"q\"\" ,c\",d\r\n1,2,3").unwrap();
        assert_eq!(parsed[0][1], Cell::Text("b \"q\" ,c".into()));
        assert_eq!(parsed[1].len(), 3);
        assert!(parse_csv("a,\"open\n").is_err());
    }

    #[test]
    fn headers_compare_by_letters_and_digits() {
        assert_eq!(header_key(" Circuit ID "), header_key("circuit_id"));
        assert_ne!(header_key("burst"), header_key("burst_mbps"));
    }
}
