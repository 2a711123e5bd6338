//! The operator's POI reference workbook (XLSX, read with calamine): per POI code its name,
//! state, location, provider, a capacity override and notes. The sheet and its columns are
//! found by name, so people can reorder and add columns freely; every error names the file,
//! sheet, row and column. [`ReferenceFile`] reloads it when the file changes.

use super::title::parse_capacity;
use calamine::{open_workbook_auto, Data, Reader};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Which sheet and which header names to read. Header matching ignores case and spaces at
/// the ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceLayout {
    /// The sheet's name; unset: the first sheet with a `code` column.
    pub sheet: Option<String>,
    pub code: String,
    pub name: String,
    pub state: String,
    pub latitude: String,
    pub longitude: String,
    pub provider: String,
    pub capacity: String,
    pub notes: String,
}

impl Default for ReferenceLayout {
    fn default() -> Self {
        ReferenceLayout {
            sheet: None,
            code: "POI Code".into(),
            name: "POI Name".into(),
            state: "State".into(),
            latitude: "Latitude".into(),
            longitude: "Longitude".into(),
            provider: "Provider".into(),
            capacity: "Capacity Override".into(),
            notes: "Notes".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PoiReference {
    pub code: String,
    pub name: Option<String>,
    pub state: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub provider: Option<String>,
    pub capacity_bps: Option<u64>,
    pub notes: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file}, sheet {sheet:?}, row {row}, column {column}: {message}")]
    Cell {
        file: String,
        sheet: String,
        row: u32,
        column: String,
        message: String,
    },
}

/// At most this many rows are read: a reference of POIs is hundreds, not millions.
pub const MAX_ROWS: usize = 100_000;

/// Reads the reference: POI code (upper case) -> facts. Rows without a code are skipped.
pub fn load(
    path: &Path,
    layout: &ReferenceLayout,
) -> Result<HashMap<String, PoiReference>, ReferenceError> {
    let file = path.display().to_string();
    let file_error = |message: String| ReferenceError::File {
        file: file.clone(),
        message,
    };
    let mut workbook = open_workbook_auto(path).map_err(|e| file_error(e.to_string()))?;
    let names = workbook.sheet_names().to_vec();
    let candidates: Vec<String> = match &layout.sheet {
        Some(sheet) => {
            if !names.iter().any(|n| n == sheet) {
                return Err(file_error(format!(
                    "no sheet {sheet:?} (sheets: {})",
                    names.join(", ")
                )));
            }
            vec![sheet.clone()]
        }
        None => names.clone(),
    };
    for sheet in candidates {
        let range = workbook
            .worksheet_range(&sheet)
            .map_err(|e| file_error(format!("sheet {sheet:?}: {e}")))?;
        let (first_row, first_col) = range.start().unwrap_or((0, 0));
        let mut rows = range.rows();
        let Some(header) = rows.next() else { continue };
        let find = |name: &str| {
            header
                .iter()
                .position(|cell| cell.to_string().trim().eq_ignore_ascii_case(name.trim()))
        };
        let Some(code_col) = find(&layout.code) else {
            if layout.sheet.is_some() {
                return Err(file_error(format!(
                    "sheet {sheet:?} has no {:?} column in its first row",
                    layout.code
                )));
            }
            continue;
        };
        let columns = Columns {
            code: code_col,
            name: find(&layout.name),
            state: find(&layout.state),
            latitude: find(&layout.latitude),
            longitude: find(&layout.longitude),
            provider: find(&layout.provider),
            capacity: find(&layout.capacity),
            notes: find(&layout.notes),
        };
        let mut out = HashMap::new();
        for (index, row) in rows.enumerate() {
            if index >= MAX_ROWS {
                return Err(file_error(format!(
                    "sheet {sheet:?} has more than {MAX_ROWS} rows"
                )));
            }
            // Row numbers as a spreadsheet shows them: 1-based, the header is the first.
            let row_number = first_row + index as u32 + 2;
            let at = |col: usize, header: &str, message: String| ReferenceError::Cell {
                file: file.clone(),
                sheet: sheet.clone(),
                row: row_number,
                column: format!("{} ({header})", column_letter(first_col as usize + col)),
                message,
            };
            let text = |col: Option<usize>| -> Option<String> {
                let cell = row.get(col?)?;
                let value = cell.to_string();
                let value = value.trim();
                (!value.is_empty()).then(|| value.to_string())
            };
            let Some(code) = text(Some(columns.code)) else {
                continue;
            };
            let code = code.to_ascii_uppercase();
            if !is_poi_code(&code) {
                return Err(at(
                    columns.code,
                    &layout.code,
                    format!("{code:?} is not a POI code (a state digit 0 or 2-7 and 3 letters, e.g. 2ABT)"),
                ));
            }
            let number = |col: Option<usize>,
                          header: &str,
                          range: std::ops::RangeInclusive<f64>|
             -> Result<Option<f64>, ReferenceError> {
                let Some(c) = col else { return Ok(None) };
                let value = match row.get(c) {
                    None | Some(Data::Empty) => return Ok(None),
                    Some(Data::Float(v)) => *v,
                    Some(Data::Int(v)) => *v as f64,
                    Some(Data::String(s)) if s.trim().is_empty() => return Ok(None),
                    Some(Data::String(s)) => s
                        .trim()
                        .parse()
                        .map_err(|_| at(c, header, format!("{s:?} is not a number")))?,
                    Some(other) => return Err(at(c, header, format!("{other:?} is not a number"))),
                };
                if !range.contains(&value) {
                    return Err(at(c, header, format!("{value} is outside {range:?}")));
                }
                Ok(Some(value))
            };
            let capacity_bps = match columns
                .capacity
                .and_then(|c| row.get(c).map(|cell| (c, cell)))
            {
                None | Some((_, Data::Empty)) => None,
                Some((_, Data::Float(v))) if *v > 0.0 => Some(*v as u64),
                Some((_, Data::Int(v))) if *v > 0 => Some(*v as u64),
                Some((c, cell)) => {
                    let written = cell.to_string();
                    if written.trim().is_empty() {
                        None
                    } else {
                        Some(parse_capacity(&written).ok_or_else(|| {
                            at(c, &layout.capacity, format!("{written:?} is not a capacity (e.g. 10G, 1000 Mbps, or bits/s)"))
                        })?)
                    }
                }
            };
            let state = text(columns.state);
            if let (Some(written), Some(c)) = (&state, columns.state) {
                if super::state::State::from_name(written).is_none() {
                    return Err(at(
                        c,
                        &layout.state,
                        format!("{written:?} is not an Australian state (NT, NSW, ACT, VIC, QLD, SA, WA or TAS)"),
                    ));
                }
            }
            let reference = PoiReference {
                name: text(columns.name),
                state,
                latitude: number(columns.latitude, &layout.latitude, -90.0..=90.0)?,
                longitude: number(columns.longitude, &layout.longitude, -180.0..=180.0)?,
                provider: text(columns.provider),
                capacity_bps,
                notes: text(columns.notes),
                code: code.clone(),
            };
            if out.insert(code.clone(), reference).is_some() {
                return Err(at(
                    columns.code,
                    &layout.code,
                    format!("{code} appears twice"),
                ));
            }
        }
        return Ok(out);
    }
    Err(file_error(format!(
        "no sheet has a {:?} column in its first row (sheets: {})",
        layout.code,
        names.join(", ")
    )))
}

struct Columns {
    code: usize,
    name: Option<usize>,
    state: Option<usize>,
    latitude: Option<usize>,
    longitude: Option<usize>,
    provider: Option<usize>,
    capacity: Option<usize>,
    notes: Option<usize>,
}

fn is_poi_code(code: &str) -> bool {
    super::title::is_code_shape(code)
}

/// 0 -> A, 25 -> Z, 26 -> AA.
fn column_letter(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// The reference with its file, reloaded when the file's modification time or size changes.
/// A reload that fails keeps the last good data (and returns the error to be logged).
pub struct ReferenceFile {
    path: PathBuf,
    layout: ReferenceLayout,
    stamp: Option<(SystemTime, u64)>,
    data: HashMap<String, PoiReference>,
}

impl ReferenceFile {
    pub fn open(path: PathBuf, layout: ReferenceLayout) -> Result<Self, ReferenceError> {
        let mut this = ReferenceFile {
            path,
            layout,
            stamp: None,
            data: HashMap::new(),
        };
        this.refresh()?;
        Ok(this)
    }

    pub fn get(&self, code: &str) -> Option<&PoiReference> {
        self.data.get(&code.to_ascii_uppercase())
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Reloads if the file changed; true when it did.
    pub fn refresh(&mut self) -> Result<bool, ReferenceError> {
        let meta = std::fs::metadata(&self.path).map_err(|e| ReferenceError::File {
            file: self.path.display().to_string(),
            message: e.to_string(),
        })?;
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        if self.stamp == Some(stamp) {
            return Ok(false);
        }
        self.data = load(&self.path, &self.layout)?;
        self.stamp = Some(stamp);
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
