//! Streams flow files into the two KPIs: ServiceTrafficVolume (Σ uplink + downlink bytes per
//! service) and CellUniqueUsers (distinct MSISDNs per cell). Memory grows with the distinct
//! services and (cell, MSISDN) pairs, never with file size. A malformed row is reported with
//! its file and line and skipped; the rest of the file still counts.

use rustc_hash::{FxHashMap, FxHashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// The columns the KPIs need, found by header name (any order; others are ignored).
const REQUIRED: [&str; 5] = [
    "msisdn",
    "bytes_uplink",
    "bytes_downlink",
    "service_id",
    "cell_id",
];

/// One record's bytes above this are not plausible (1 PB in five minutes) and are refused,
/// which also keeps every sum inside 64 bits.
pub const MAX_RECORD_BYTES: u64 = 1_000_000_000_000_000;
/// Longest line read; longer is a malformed row, never a huge allocation.
pub const MAX_LINE_BYTES: usize = 4096;

/// A problem with a file or one of its rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issue {
    pub file: String,
    /// 1-based; `None` for a problem with the whole file.
    pub line: Option<u64>,
    pub message: String,
}

/// What reading one file gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStats {
    pub rows: u64,
    pub skipped_rows: u64,
}

/// The KPIs of one interval (or one hour) so far.
#[derive(Debug, Default)]
pub struct Aggregate {
    traffic: FxHashMap<u64, u64>,
    users: FxHashSet<(u64, u64)>,
}

impl Aggregate {
    /// (service_id, total bytes), by service.
    pub fn services(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = self.traffic.iter().map(|(k, v)| (*k, *v)).collect();
        out.sort_unstable();
        out
    }

    /// (cell_id, distinct MSISDNs), by cell.
    pub fn cells(&self) -> Vec<(u64, u64)> {
        let mut counts: FxHashMap<u64, u64> = FxHashMap::default();
        for (cell, _) in &self.users {
            *counts.entry(*cell).or_default() += 1;
        }
        let mut out: Vec<(u64, u64)> = counts.into_iter().collect();
        out.sort_unstable();
        out
    }

    /// Adds another aggregate (an interval into its hour): traffic sums, users unite.
    pub fn absorb(&mut self, other: Aggregate) {
        for (service, bytes) in other.traffic {
            let total = self.traffic.entry(service).or_default();
            *total = total.saturating_add(bytes);
        }
        self.users.extend(other.users);
    }

    /// Reads one flow file. Row problems go to `issues` (at most `max_issues` per file; the
    /// rest are only counted); an error is a problem with the whole file (unreadable, or no
    /// usable header), and then nothing of it was added.
    pub fn add_file(
        &mut self,
        path: &Path,
        name: &str,
        issues: &mut Vec<Issue>,
        max_issues: usize,
    ) -> Result<FileStats, Issue> {
        let file = std::fs::File::open(path).map_err(|e| Issue {
            file: name.to_string(),
            line: None,
            message: format!("cannot open: {e}"),
        })?;
        self.add_reader(
            BufReader::with_capacity(256 * 1024, file),
            name,
            issues,
            max_issues,
        )
    }

    /// [`Aggregate::add_file`] over any reader. The file's rows are gathered apart and
    /// merged only once the whole file was read, so a read error midway adds nothing.
    pub fn add_reader<R: Read>(
        &mut self,
        reader: BufReader<R>,
        name: &str,
        issues: &mut Vec<Issue>,
        max_issues: usize,
    ) -> Result<FileStats, Issue> {
        let mut file_agg = Aggregate::default();
        let stats = file_agg.read(reader, name, issues, max_issues)?;
        if self.traffic.is_empty() && self.users.is_empty() {
            *self = file_agg;
        } else {
            self.absorb(file_agg);
        }
        Ok(stats)
    }

    fn read<R: Read>(
        &mut self,
        mut reader: BufReader<R>,
        name: &str,
        issues: &mut Vec<Issue>,
        max_issues: usize,
    ) -> Result<FileStats, Issue> {
        let whole_file = |message: String| Issue {
            file: name.to_string(),
            line: None,
            message,
        };
        let mut line = Vec::with_capacity(128);
        let mut line_no = 0u64;
        let mut stats = FileStats::default();
        let mut reported = 0usize;
        let mut columns: Option<Columns> = None;
        loop {
            line.clear();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| whole_file(format!("read failed at line {}: {e}", line_no + 1)))?;
            if read == 0 {
                break;
            }
            line_no += 1;
            let complete = line.last() == Some(&b'\n');
            if !complete && line.len() > MAX_LINE_BYTES {
                // Skip the rest of the overlong line, then report it.
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    let n = (&mut reader)
                        .take(64 * 1024)
                        .read_until(b'\n', &mut rest)
                        .map_err(|e| whole_file(format!("read failed at line {line_no}: {e}")))?;
                    if n == 0 || rest.last() == Some(&b'\n') {
                        break;
                    }
                }
                stats.skipped_rows += 1;
                report(
                    issues,
                    &mut reported,
                    max_issues,
                    name,
                    line_no,
                    format!("longer than {MAX_LINE_BYTES} bytes"),
                );
                continue;
            }
            let text = trim_line_end(&line);
            if text.is_empty() {
                continue;
            }
            let Some(cols) = &columns else {
                if line_no == 1 && text.starts_with(b"\xef\xbb\xbf") {
                    columns = Some(Columns::from_header(&text[3..]).map_err(whole_file)?);
                } else {
                    columns = Some(Columns::from_header(text).map_err(whole_file)?);
                }
                continue;
            };
            match cols.parse_row(text) {
                Ok(row) => {
                    let bytes = row.uplink + row.downlink;
                    let total = self.traffic.entry(row.service).or_default();
                    match total.checked_add(bytes).filter(|t| *t <= i64::MAX as u64) {
                        Some(sum) => *total = sum,
                        None => {
                            stats.skipped_rows += 1;
                            report(
                                issues,
                                &mut reported,
                                max_issues,
                                name,
                                line_no,
                                format!("service {}'s total would overflow 64 bits", row.service),
                            );
                            continue;
                        }
                    }
                    self.users.insert((row.cell, row.msisdn));
                    stats.rows += 1;
                }
                Err(message) => {
                    stats.skipped_rows += 1;
                    report(issues, &mut reported, max_issues, name, line_no, message);
                }
            }
        }
        if columns.is_none() {
            return Err(whole_file("empty: no header line".into()));
        }
        if reported > max_issues {
            issues.push(Issue {
                file: name.to_string(),
                line: None,
                message: format!("{} more malformed rows not listed", reported - max_issues),
            });
        }
        Ok(stats)
    }
}

fn report(
    issues: &mut Vec<Issue>,
    reported: &mut usize,
    max: usize,
    file: &str,
    line: u64,
    message: String,
) {
    *reported += 1;
    if *reported <= max {
        issues.push(Issue {
            file: file.to_string(),
            line: Some(line),
            message,
        });
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    msisdn: u64,
    uplink: u64,
    downlink: u64,
    service: u64,
    cell: u64,
}

/// Where each needed column is, from the header.
#[derive(Debug)]
struct Columns {
    count: usize,
    /// Position of each of [`REQUIRED`].
    at: [usize; 5],
    names: Vec<String>,
}

impl Columns {
    fn from_header(line: &[u8]) -> Result<Columns, String> {
        let text =
            std::str::from_utf8(line).map_err(|_| "the header is not UTF-8 text".to_string())?;
        let names: Vec<String> = text
            .split(',')
            .map(|n| n.trim().trim_matches('"').to_ascii_lowercase())
            .collect();
        if names.len() > 64 {
            return Err(format!(
                "the header has {} columns; at most 64",
                names.len()
            ));
        }
        let mut at = [0usize; 5];
        for (slot, wanted) in at.iter_mut().zip(REQUIRED) {
            *slot = names.iter().position(|n| n == wanted).ok_or_else(|| {
                format!(
                    "the header has no {wanted} column (it has: {})",
                    names.join(", ")
                )
            })?;
        }
        Ok(Columns {
            count: names.len(),
            at,
            names,
        })
    }

    #[inline]
    fn parse_row(&self, line: &[u8]) -> Result<Row, String> {
        let mut fields = [&[][..]; 64];
        let mut n = 0;
        for field in line.split(|b| *b == b',') {
            if n == self.count {
                n += 1;
                break;
            }
            fields[n] = field;
            n += 1;
        }
        if n != self.count {
            return Err(format!(
                "{} columns, the header has {}",
                if n > self.count {
                    format!("more than {}", self.count)
                } else {
                    n.to_string()
                },
                self.count
            ));
        }
        let value = |i: usize| -> Result<u64, String> {
            let field = fields[self.at[i]];
            parse_u64(field).ok_or_else(|| {
                let name = &self.names[self.at[i]];
                let text = String::from_utf8_lossy(field);
                if text.trim().starts_with('-')
                    && text.trim()[1..].bytes().all(|b| b.is_ascii_digit())
                {
                    format!("{name}: {text} is negative")
                } else {
                    format!("{name}: {text:?} is not a whole number")
                }
            })
        };
        let row = Row {
            msisdn: value(0)?,
            uplink: value(1)?,
            downlink: value(2)?,
            service: value(3)?,
            cell: value(4)?,
        };
        for (i, bytes) in [(1, row.uplink), (2, row.downlink)] {
            if bytes > MAX_RECORD_BYTES {
                return Err(format!(
                    "{}: {bytes} is more than the {MAX_RECORD_BYTES} bytes one record may carry",
                    self.names[self.at[i]]
                ));
            }
        }
        for (i, id) in [(3, row.service), (4, row.cell)] {
            if id > i64::MAX as u64 {
                return Err(format!(
                    "{}: {id} does not fit 63 bits",
                    self.names[self.at[i]]
                ));
            }
        }
        Ok(row)
    }
}

/// A plain unsigned decimal (spaces around allowed), at most 19 digits.
#[inline]
fn parse_u64(field: &[u8]) -> Option<u64> {
    let field = field.trim_ascii();
    if field.is_empty() || field.len() > 19 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in field {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    Some(value)
}

#[cfg(test)]
mod tests;
