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
    pub reason: IssueReason,
    pub message: String,
}

/// What kind of problem an issue is, for machines (the message says it for people).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IssueReason {
    /// A row with more or fewer columns than the header.
    ColumnCount,
    /// A value that is not a whole number.
    NonNumeric,
    /// A byte count below zero.
    NegativeBytes,
    /// A value over its bound (bytes one record may carry, an id over 63 bits, a total over
    /// 64 bits).
    OutOfRange,
    /// A line over the length bound.
    LineTooLong,
    /// The header is missing, not UTF-8, or lacks a needed column.
    BadHeader,
    /// The file could not be opened or read.
    Unreadable,
    /// More rows were malformed than are listed.
    NotListed,
    /// Files an interval or hour was computed from are gone, so it was not recomputed.
    FilesGone,
    /// Files older than the look-back, not computed (`kpi run --once --from --to` does).
    TooOld,
}

impl IssueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueReason::ColumnCount => "column_count",
            IssueReason::NonNumeric => "non_numeric",
            IssueReason::NegativeBytes => "negative_bytes",
            IssueReason::OutOfRange => "out_of_range",
            IssueReason::LineTooLong => "line_too_long",
            IssueReason::BadHeader => "bad_header",
            IssueReason::Unreadable => "unreadable",
            IssueReason::NotListed => "not_listed",
            IssueReason::FilesGone => "files_gone",
            IssueReason::TooOld => "too_old",
        }
    }

    pub fn parse(text: &str) -> Option<IssueReason> {
        [
            IssueReason::ColumnCount,
            IssueReason::NonNumeric,
            IssueReason::NegativeBytes,
            IssueReason::OutOfRange,
            IssueReason::LineTooLong,
            IssueReason::BadHeader,
            IssueReason::Unreadable,
            IssueReason::NotListed,
            IssueReason::FilesGone,
            IssueReason::TooOld,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
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
    /// rest are only counted); an error is a problem with the whole file (see
    /// [`Aggregate::add_reader`] for what was added then).
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
            reason: IssueReason::Unreadable,
            message: format!("cannot open: {e}"),
        })?;
        self.add_reader(
            BufReader::with_capacity(256 * 1024, file),
            name,
            issues,
            max_issues,
        )
    }

    /// [`Aggregate::add_file`] over any reader. A file whose header is unusable adds nothing
    /// (that is known before its first row); one whose reading fails midway has added the rows
    /// before the failure, so its caller must drop this aggregate (the KPI job does: the
    /// interval waits for the next run).
    pub fn add_reader<R: Read>(
        &mut self,
        reader: BufReader<R>,
        name: &str,
        issues: &mut Vec<Issue>,
        max_issues: usize,
    ) -> Result<FileStats, Issue> {
        self.read(reader, name, issues, max_issues)
    }

    fn read<R: Read>(
        &mut self,
        mut reader: BufReader<R>,
        name: &str,
        issues: &mut Vec<Issue>,
        max_issues: usize,
    ) -> Result<FileStats, Issue> {
        let mut file = FileState {
            name,
            issues,
            max_issues,
            columns: None,
            stats: FileStats::default(),
            reported: 0,
            line_no: 0,
        };
        // Lines are read in place in the reader's buffer; only a line split across two
        // reads is copied (into `carry`, at most MAX_LINE_BYTES of it).
        let mut carry: Vec<u8> = Vec::new();
        let mut carry_overlong = false;
        loop {
            let buf = match reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) => {
                    return Err(file.whole(
                        IssueReason::Unreadable,
                        format!("read failed at line {}: {e}", file.line_no + 1),
                    ))
                }
            };
            if buf.is_empty() {
                if !carry.is_empty() || carry_overlong {
                    self.line(&mut file, &carry, carry_overlong)?;
                }
                break;
            }
            let len = buf.len();
            let mut pos = 0;
            if !carry.is_empty() || carry_overlong {
                match memchr::memchr(b'\n', buf) {
                    Some(i) => {
                        append_bounded(&mut carry, &mut carry_overlong, &buf[..i]);
                        self.line(&mut file, &carry, carry_overlong)?;
                        carry.clear();
                        carry_overlong = false;
                        pos = i + 1;
                    }
                    None => {
                        append_bounded(&mut carry, &mut carry_overlong, buf);
                        reader.consume(len);
                        continue;
                    }
                }
            }
            let base = pos;
            for newline in memchr::memchr_iter(b'\n', &buf[base..]) {
                let line = &buf[pos..base + newline];
                self.line(&mut file, line, line.len() > MAX_LINE_BYTES)?;
                pos = base + newline + 1;
            }
            append_bounded(&mut carry, &mut carry_overlong, &buf[pos..]);
            reader.consume(len);
        }
        if file.columns.is_none() {
            return Err(file.whole(IssueReason::BadHeader, "empty: no header line".into()));
        }
        if file.reported > max_issues {
            let more = file.reported - max_issues;
            file.issues.push(Issue {
                file: name.to_string(),
                line: None,
                reason: IssueReason::NotListed,
                message: format!("{more} more malformed rows not listed"),
            });
        }
        Ok(file.stats)
    }

    /// One line (without its `\n`): the header, a row, or a blank line.
    #[inline]
    fn line(&mut self, file: &mut FileState<'_>, line: &[u8], overlong: bool) -> Result<(), Issue> {
        file.line_no += 1;
        if overlong {
            file.skipped(
                IssueReason::LineTooLong,
                format!("longer than {MAX_LINE_BYTES} bytes"),
            );
            return Ok(());
        }
        let text = trim_line_end(line);
        if text.is_empty() {
            return Ok(());
        }
        let Some(cols) = &file.columns else {
            let header = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
            file.columns = Some(
                Columns::from_header(header).map_err(|m| file.whole(IssueReason::BadHeader, m))?,
            );
            return Ok(());
        };
        let row = match cols.fast_row(text) {
            Some(row) => row,
            None => match cols.parse_row(text) {
                Ok(row) => row,
                Err((reason, message)) => {
                    file.skipped(reason, message);
                    return Ok(());
                }
            },
        };
        let total = self.traffic.entry(row.service).or_default();
        match total
            .checked_add(row.uplink + row.downlink)
            .filter(|t| *t <= i64::MAX as u64)
        {
            Some(sum) => *total = sum,
            None => {
                file.skipped(
                    IssueReason::OutOfRange,
                    format!("service {}'s total would overflow 64 bits", row.service),
                );
                return Ok(());
            }
        }
        self.users.insert((row.cell, row.msisdn));
        file.stats.rows += 1;
        Ok(())
    }
}

/// Reading state of one file.
struct FileState<'a> {
    name: &'a str,
    issues: &'a mut Vec<Issue>,
    max_issues: usize,
    columns: Option<Columns>,
    stats: FileStats,
    reported: usize,
    line_no: u64,
}

impl FileState<'_> {
    fn whole(&self, reason: IssueReason, message: String) -> Issue {
        Issue {
            file: self.name.to_string(),
            line: None,
            reason,
            message,
        }
    }

    fn skipped(&mut self, reason: IssueReason, message: String) {
        self.stats.skipped_rows += 1;
        self.reported += 1;
        if self.reported <= self.max_issues {
            self.issues.push(Issue {
                file: self.name.to_string(),
                line: Some(self.line_no),
                reason,
                message,
            });
        }
    }
}

/// Appends to a carried partial line, keeping at most MAX_LINE_BYTES (beyond that the line
/// is only marked overlong).
fn append_bounded(carry: &mut Vec<u8>, overlong: &mut bool, bytes: &[u8]) {
    if carry.len() + bytes.len() > MAX_LINE_BYTES {
        *overlong = true;
        carry.clear();
    } else if !*overlong {
        carry.extend_from_slice(bytes);
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
    /// For each column, its place in [`REQUIRED`], or `NOT_NEEDED`.
    slot_of: [u8; 64],
    names: Vec<String>,
}

const NOT_NEEDED: u8 = u8::MAX;

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
        let mut slot_of = [NOT_NEEDED; 64];
        for (slot, column) in at.iter().enumerate() {
            slot_of[*column] = slot as u8;
        }
        Ok(Columns {
            count: names.len(),
            at,
            slot_of,
            names,
        })
    }

    /// A row of plain digits and commas, parsed in one pass; `None` for anything else
    /// (spaces, signs, text, wrong column count, too many digits, out-of-bounds values),
    /// which [`Columns::parse_row`] then reads and names the problem of.
    #[inline]
    fn fast_row(&self, line: &[u8]) -> Option<Row> {
        let mut values = [0u64; 5];
        let mut column = 0usize;
        let mut field_start = 0usize;
        // Commas found with SIMD; only the needed fields' bytes are looked at.
        let ends = memchr::memchr_iter(b',', line).chain(std::iter::once(line.len()));
        for field_end in ends {
            if column >= self.count {
                return None;
            }
            let slot = self.slot_of[column];
            if slot != NOT_NEEDED {
                values[slot as usize] = digits_only(&line[field_start..field_end])?;
            }
            column += 1;
            field_start = field_end + 1;
        }
        if column != self.count {
            return None;
        }
        let row = Row {
            msisdn: values[0],
            uplink: values[1],
            downlink: values[2],
            service: values[3],
            cell: values[4],
        };
        let in_bounds = row.uplink <= MAX_RECORD_BYTES
            && row.downlink <= MAX_RECORD_BYTES
            && row.service <= i64::MAX as u64
            && row.cell <= i64::MAX as u64;
        in_bounds.then_some(row)
    }

    #[inline]
    fn parse_row(&self, line: &[u8]) -> Result<Row, (IssueReason, String)> {
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
            return Err((
                IssueReason::ColumnCount,
                format!(
                    "{} columns, the header has {}",
                    if n > self.count {
                        format!("more than {}", self.count)
                    } else {
                        n.to_string()
                    },
                    self.count
                ),
            ));
        }
        let value = |i: usize| -> Result<u64, (IssueReason, String)> {
            let field = fields[self.at[i]];
            parse_u64(field).ok_or_else(|| {
                let name = &self.names[self.at[i]];
                let text = String::from_utf8_lossy(field);
                if text.trim().starts_with('-')
                    && text.trim()[1..].bytes().all(|b| b.is_ascii_digit())
                {
                    (
                        IssueReason::NegativeBytes,
                        format!("{name}: {text} is negative"),
                    )
                } else {
                    (
                        IssueReason::NonNumeric,
                        format!("{name}: {text:?} is not a whole number"),
                    )
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
                return Err((
                    IssueReason::OutOfRange,
                    format!(
                        "{}: {bytes} is more than the {MAX_RECORD_BYTES} bytes one record may carry",
                        self.names[self.at[i]]
                    ),
                ));
            }
        }
        for (i, id) in [(3, row.service), (4, row.cell)] {
            if id > i64::MAX as u64 {
                return Err((
                    IssueReason::OutOfRange,
                    format!("{}: {id} does not fit 63 bits", self.names[self.at[i]]),
                ));
            }
        }
        Ok(row)
    }
}

/// One to 19 ASCII digits, nothing else.
#[inline]
fn digits_only(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 19 {
        return None;
    }
    let mut value = 0u64;
    for &b in field {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value * 10 + u64::from(d);
    }
    Some(value)
}

/// A plain unsigned decimal (spaces and double quotes around allowed), at most 19 digits.
#[inline]
fn parse_u64(field: &[u8]) -> Option<u64> {
    let field = field.trim_ascii();
    let field = match field {
        [b'"', inner @ .., b'"'] => inner.trim_ascii(),
        _ => field,
    };
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
