//! Cacti's CSV graph export (`graph_xport.php`), read as a stream with bounds.
//!
//! The format: an optional UTF-8 BOM; a block of quoted `"Key","Value"` lines (`"Title"`,
//! `"Vertical Label"`, `"Start Date"`, `"End Date"`, `"Step"`, `"Total Rows"`, `"Graph ID"`,
//! `"Host ID"`, optional `"Nth Percentile"` / `"Summation"`; Cacti 0.8 wrote `"Title:"`); an
//! empty `""` line; then `"Date","<legend>",...` and one quoted row per step. Values may be
//! plain or scientific, or `NaN`, `U` or empty for a gap (kept as a gap). Dates are in the
//! Cacti server's local time, converted here with the source's configured time zone.
//!
//! Rows are parsed in place from one reused line buffer: memory stays flat however long the
//! export, and no row allocates.

use chrono::{NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;
use std::io::BufRead;

/// Bounds on untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_line_bytes: usize,
    pub max_columns: usize,
    pub max_header_lines: usize,
    pub max_rows: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 64 * 1024,
            max_columns: 64,
            max_header_lines: 64,
            max_rows: 10_000_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Line { line: u64, message: String },
}

/// The key/value block and the column legends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportHeader {
    pub title: String,
    pub vertical_label: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub step_secs: Option<u32>,
    pub total_rows: Option<u64>,
    pub graph_id: Option<u64>,
    pub host_id: Option<u64>,
    /// Keys we do not interpret (`Nth Percentile`, `Summation`, ...), as given.
    pub extra: Vec<(String, String)>,
    /// Legends of the value columns, in file order (the `Date` column excluded).
    pub columns: Vec<String>,
}

impl ExportHeader {
    /// The value column whose legend is `name`, ignoring case and surrounding space.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.trim().eq_ignore_ascii_case(name.trim()))
    }
}

/// One row: its time (Unix seconds, UTC) and a value or a gap per column.
#[derive(Debug, PartialEq)]
pub struct Row<'a> {
    pub at: i64,
    pub values: &'a [Option<f64>],
}

pub struct ExportReader<R> {
    reader: R,
    header: ExportHeader,
    tz: Tz,
    limits: Limits,
    line: Vec<u8>,
    line_no: u64,
    rows: u64,
    values: Vec<Option<f64>>,
    /// (local hour, offset seconds) of the last conversion: rows come in time order, so the
    /// zone lookup runs about once an hour of data.
    offset_cache: Option<(i64, i64)>,
    last_at: Option<i64>,
}

impl<R: BufRead> ExportReader<R> {
    /// Reads the header block and the column line.
    pub fn new(reader: R, tz: Tz, limits: Limits) -> Result<Self, ExportError> {
        let mut this = ExportReader {
            reader,
            header: ExportHeader::default(),
            tz,
            limits,
            line: Vec::with_capacity(256),
            line_no: 0,
            rows: 0,
            values: Vec::new(),
            offset_cache: None,
            last_at: None,
        };
        this.read_header()?;
        Ok(this)
    }

    pub fn header(&self) -> &ExportHeader {
        &self.header
    }

    fn fail(&self, message: impl Into<String>) -> ExportError {
        ExportError::Line {
            line: self.line_no,
            message: message.into(),
        }
    }

    /// Reads one line into `self.line` without its line ending; false at the end.
    fn read_line(&mut self) -> Result<bool, ExportError> {
        self.line.clear();
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                if self.line.is_empty() {
                    return Ok(false);
                }
                break;
            }
            let (take, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if self.line.len() + take > self.limits.max_line_bytes + 1 {
                self.line_no += 1;
                return Err(self.fail(format!("longer than {} bytes", self.limits.max_line_bytes)));
            }
            self.line.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            if done {
                break;
            }
        }
        self.line_no += 1;
        while matches!(self.line.last(), Some(b'\n' | b'\r')) {
            self.line.pop();
        }
        if self.line_no == 1 && self.line.starts_with(b"\xef\xbb\xbf") {
            self.line.drain(..3);
        }
        Ok(true)
    }

    fn read_header(&mut self) -> Result<(), ExportError> {
        let mut lines = 0;
        loop {
            if !self.read_line()? {
                return Err(self.fail("the export ended before its \"Date\" column line"));
            }
            lines += 1;
            if lines > self.limits.max_header_lines {
                return Err(self.fail(format!(
                    "no \"Date\" column line in the first {} lines",
                    self.limits.max_header_lines
                )));
            }
            let fields = split_text(&self.line).map_err(|m| self.fail(m))?;
            let first = fields.first().map(|f| f.trim()).unwrap_or("");
            if fields.iter().all(|f| f.trim().is_empty()) {
                continue; // the `""` separator (or a blank line)
            }
            if first.eq_ignore_ascii_case("date") {
                if fields.len() < 2 {
                    return Err(self.fail("the \"Date\" line names no value columns"));
                }
                if fields.len() - 1 > self.limits.max_columns {
                    return Err(self.fail(format!(
                        "{} value columns, more than the {} allowed",
                        fields.len() - 1,
                        self.limits.max_columns
                    )));
                }
                self.header.columns = fields[1..].iter().map(|f| f.trim().to_string()).collect();
                self.values = vec![None; self.header.columns.len()];
                return Ok(());
            }
            let key = first.trim_end_matches(':').trim();
            let value = fields
                .get(1)
                .map(|v| v.trim().to_string())
                .unwrap_or_default();
            let number = |what: &str| -> Result<u64, ExportError> {
                value
                    .parse::<u64>()
                    .map_err(|_| self.fail(format!("{what}: {value:?} is not a whole number")))
            };
            match key.to_ascii_lowercase().as_str() {
                "title" => self.header.title = value,
                "vertical label" => self.header.vertical_label = Some(value),
                "start date" => self.header.start_date = Some(value),
                "end date" => self.header.end_date = Some(value),
                "step" => {
                    let step = number("Step")?;
                    self.header.step_secs = Some(
                        u32::try_from(step)
                            .map_err(|_| self.fail(format!("Step: {step} is too large")))?,
                    );
                }
                "total rows" => self.header.total_rows = Some(number("Total Rows")?),
                "graph id" => self.header.graph_id = Some(number("Graph ID")?),
                "host id" => self.header.host_id = Some(number("Host ID")?),
                _ => self.header.extra.push((key.to_string(), value)),
            }
        }
    }

    /// The next data row, or `None` at the end. Blank lines are skipped.
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>, ExportError> {
        loop {
            if !self.read_line()? {
                return Ok(None);
            }
            if self.line.iter().all(|b| b.is_ascii_whitespace()) || self.line == b"\"\"" {
                continue;
            }
            break;
        }
        self.rows += 1;
        if self.rows > self.limits.max_rows {
            return Err(self.fail(format!("more than {} rows", self.limits.max_rows)));
        }
        let columns = self.values.len();
        // The line is taken out while its fields are read (so `local_to_unix` may update the cache)
        // and put back after, keeping its capacity. An error ends the export anyway.
        let line = std::mem::take(&mut self.line);
        let mut rest: Option<&[u8]> = Some(&line);
        let date = next_field(&mut rest).ok_or_else(|| self.fail("empty row"))?;
        let local = parse_local_date(date).ok_or_else(|| {
            self.fail(format!(
                "column 1 (Date): {:?} is not a date (YYYY-MM-DD HH:MM:SS)",
                String::from_utf8_lossy(date)
            ))
        })?;
        let at = self.local_to_unix(local)?;
        for index in 0..columns {
            let Some(field) = next_field(&mut rest) else {
                return Err(self.fail(format!(
                    "{} values, the \"Date\" line names {columns}",
                    index
                )));
            };
            self.values[index] = match parse_value(field) {
                Ok(value) => value,
                Err(()) => {
                    return Err(self.fail(format!(
                        "column {} ({:?}): {:?} is not a number",
                        index + 2,
                        self.header.columns[index],
                        String::from_utf8_lossy(field)
                    )))
                }
            };
        }
        if next_field(&mut rest).is_some() {
            return Err(self.fail(format!(
                "more values than the {columns} the \"Date\" line names"
            )));
        }
        self.line = line;
        Ok(Some(Row {
            at,
            values: &self.values,
        }))
    }

    /// Local wall time (seconds as if UTC) to Unix seconds, through the zone. In the repeated
    /// hour when clocks go back, the earlier instant is taken unless rows have already passed
    /// it (then the later one), so a series stays in order.
    fn local_to_unix(&mut self, local: i64) -> Result<i64, ExportError> {
        let hour = local.div_euclid(3600);
        if let Some((cached_hour, offset)) = self.offset_cache {
            if cached_hour == hour {
                let at = local - offset;
                self.last_at = Some(at);
                return Ok(at);
            }
        }
        let naive = chrono::DateTime::from_timestamp(local, 0)
            .map(|d| d.naive_utc())
            .ok_or_else(|| self.fail("date out of range"))?;
        let offset_of = |o: &<Tz as TimeZone>::Offset| i64::from(o.fix().local_minus_utc());
        let (offset, cacheable) = match self.tz.offset_from_local_datetime(&naive) {
            chrono::LocalResult::Single(o) => (offset_of(&o), true),
            chrono::LocalResult::Ambiguous(early, late) => {
                let early_at = local - offset_of(&early);
                if self.last_at.is_some_and(|last| early_at <= last) {
                    (offset_of(&late), false)
                } else {
                    (offset_of(&early), false)
                }
            }
            chrono::LocalResult::None => {
                return Err(self.fail(format!(
                    "{naive} does not exist in {} (a clock change skips it)",
                    self.tz.name()
                )))
            }
        };
        self.offset_cache = cacheable.then_some((hour, offset));
        let at = local - offset;
        self.last_at = Some(at);
        Ok(at)
    }
}

/// Splits a header line into unquoted text fields (`""` inside quotes is one quote).
fn split_text(line: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8 text".to_string())?;
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".into()),
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                chars.next(); // stray text after the closing quote
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        fields.push(field);
        match chars.next() {
            Some(',') => continue,
            _ => return Ok(fields),
        }
    }
}

/// The next comma-separated field of a data row, quotes stripped. `rest` is `None` once no
/// field is left; `Some(b"")` is one more, empty, field (after a trailing comma).
#[inline]
fn next_field<'a>(rest: &mut Option<&'a [u8]>) -> Option<&'a [u8]> {
    let line = (*rest)?;
    let (field, after): (&[u8], &[u8]) = match line.first() {
        Some(b'"') => {
            let body = &line[1..];
            let close = memchr::memchr(b'"', body).unwrap_or(body.len());
            (&body[..close], body.get(close + 1..).unwrap_or(&[]))
        }
        _ => match memchr::memchr(b',', line) {
            Some(i) => (&line[..i], &line[i..]),
            None => (line, &[]),
        },
    };
    *rest = memchr::memchr(b',', after).map(|i| &after[i + 1..]);
    Some(field)
}

/// A value, or `None` for a gap (`NaN`, `U`, `nan`, `-nan`, empty).
#[inline]
fn parse_value(field: &[u8]) -> Result<Option<f64>, ()> {
    let field = field.trim_ascii();
    match field {
        b"" | b"U" | b"u" | b"NaN" | b"nan" | b"NAN" | b"-nan" | b"-NaN" => return Ok(None),
        _ => {}
    }
    let text = std::str::from_utf8(field).map_err(|_| ())?;
    let value: f64 = text.parse().map_err(|_| ())?;
    if value.is_nan() {
        Ok(None)
    } else if value.is_finite() {
        Ok(Some(value))
    } else {
        Err(())
    }
}

/// `YYYY-MM-DD HH:MM:SS` (also `/` between date parts, or `T`) as seconds since the epoch
/// of the same wall time in UTC.
#[inline]
fn parse_local_date(field: &[u8]) -> Option<i64> {
    let f = field.trim_ascii();
    if f.len() != 19 {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        f[range].iter().try_fold(0u32, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let sep_ok = matches!(f[4], b'-' | b'/')
        && f[7] == f[4]
        && matches!(f[10], b' ' | b'T')
        && f[13] == b':'
        && f[16] == b':';
    if !sep_ok {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let days = i64::from(date.num_days_from_ce()) - 719_163; // 1970-01-01
    Some(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second))
}

use chrono::Datelike;

#[cfg(test)]
mod tests;
