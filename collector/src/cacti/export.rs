//! Cacti's CSV graph export (`graph_xport.php`), read as a stream with bounds.
//!
//! The format: an optional UTF-8 BOM; a block of quoted `"Key","Value"` lines (`"Title"`,
//! `"Vertical Label"`, `"Start Date"`, `"End Date"`, `"Step"`, `"Total Rows"`, `"Graph ID"`,
//! `"Host ID"`, optional `"Nth Percentile"` / `"Summation"`; Cacti 0.8 wrote `"Title:"`); an
//! empty `""` line; then `"Date","<legend>",...` and one quoted row per step. Values may be
//! plain or scientific, or `NaN`, `U` or empty for a gap (kept as a gap). Dates are in the
//! Cacti server's local time, converted here with the source's configured time zone.
//!
//! Rows are parsed in place in the reader's buffer (a line split across two reads is copied
//! into one reused buffer first): memory stays flat however long the export, and no row
//! allocates. Rows exactly as Cacti writes them take a fast path (numbers in rrdtool's form
//! read eight digits at a time, the zone offset cached per day); anything else takes the
//! general path, and both give the same values bit for bit.

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
    /// Holds a line only when it is not whole in the reader's buffer (and for the header).
    line: Vec<u8>,
    rows: RowParser,
}

/// Everything a data row is parsed with, apart from the reader (so a row can be parsed in
/// place in the reader's buffer while this is updated).
struct RowParser {
    header: ExportHeader,
    tz: Tz,
    limits: Limits,
    line_no: u64,
    rows: u64,
    values: Vec<Option<f64>>,
    /// The span (a day, or an hour on a day the clocks change) of the last row, with one UTC
    /// offset: rows come in time order, so most rows reuse it and parse only their time of day.
    time_cache: Option<TimeCache>,
    last_at: Option<i64>,
}

impl<R: BufRead> ExportReader<R> {
    /// Reads the header block and the column line.
    pub fn new(reader: R, tz: Tz, limits: Limits) -> Result<Self, ExportError> {
        let mut this = ExportReader {
            reader,
            line: Vec::with_capacity(256),
            rows: RowParser {
                header: ExportHeader::default(),
                tz,
                limits,
                line_no: 0,
                rows: 0,
                values: Vec::new(),
                time_cache: None,
                last_at: None,
            },
        };
        this.read_header()?;
        Ok(this)
    }

    pub fn header(&self) -> &ExportHeader {
        &self.rows.header
    }

    fn fail(&self, message: impl Into<String>) -> ExportError {
        self.rows.fail(message)
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
            if self.line.len() + take > self.rows.limits.max_line_bytes + 1 {
                self.rows.line_no += 1;
                return Err(self.fail(format!(
                    "longer than {} bytes",
                    self.rows.limits.max_line_bytes
                )));
            }
            self.line.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            if done {
                break;
            }
        }
        self.rows.line_no += 1;
        while matches!(self.line.last(), Some(b'\n' | b'\r')) {
            self.line.pop();
        }
        if self.rows.line_no == 1 && self.line.starts_with(b"\xef\xbb\xbf") {
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
            if lines > self.rows.limits.max_header_lines {
                return Err(self.fail(format!(
                    "no \"Date\" column line in the first {} lines",
                    self.rows.limits.max_header_lines
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
                if fields.len() - 1 > self.rows.limits.max_columns {
                    return Err(self.fail(format!(
                        "{} value columns, more than the {} allowed",
                        fields.len() - 1,
                        self.rows.limits.max_columns
                    )));
                }
                let header = &mut self.rows.header;
                header.columns = fields[1..].iter().map(|f| f.trim().to_string()).collect();
                self.rows.values = vec![None; header.columns.len()];
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
                "title" => self.rows.header.title = value,
                "vertical label" => self.rows.header.vertical_label = Some(value),
                "start date" => self.rows.header.start_date = Some(value),
                "end date" => self.rows.header.end_date = Some(value),
                "step" => {
                    let step = number("Step")?;
                    self.rows.header.step_secs = Some(
                        u32::try_from(step)
                            .map_err(|_| self.fail(format!("Step: {step} is too large")))?,
                    );
                }
                "total rows" => self.rows.header.total_rows = Some(number("Total Rows")?),
                "graph id" => self.rows.header.graph_id = Some(number("Graph ID")?),
                "host id" => self.rows.header.host_id = Some(number("Host ID")?),
                _ => self.rows.header.extra.push((key.to_string(), value)),
            }
        }
    }

    /// The next data row, or `None` at the end. Blank lines are skipped.
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>, ExportError> {
        loop {
            // The common case: the whole line is in the reader's buffer; parse it there.
            let buf = self.reader.fill_buf()?;
            if let Some(used) = self.rows.fast_row(buf) {
                self.rows.line_no += 1;
                self.rows.rows += 1;
                if self.rows.rows > self.rows.limits.max_rows {
                    return Err(self.fail(format!("more than {} rows", self.rows.limits.max_rows)));
                }
                self.reader.consume(used);
                break;
            }
            let whole = memchr::memchr(b'\n', buf)
                .filter(|end| *end <= self.rows.limits.max_line_bytes + 1);
            let Some(end) = whole else {
                // A line across a buffer boundary, the last line without a newline, or an
                // overlong one: copy it out (read_line enforces the length bound).
                if !self.read_line()? {
                    return self.end_of_rows();
                }
                if is_blank(&self.line) {
                    continue;
                }
                self.rows.parse_row(&self.line)?;
                break;
            };
            let mut line = &buf[..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            self.rows.line_no += 1;
            if !is_blank(line) {
                let parsed = self.rows.parse_row(line);
                self.reader.consume(end + 1);
                parsed?;
                break;
            }
            self.reader.consume(end + 1);
        }
        Ok(Some(Row {
            at: self.rows.last_at.unwrap_or_default(),
            values: &self.rows.values,
        }))
    }
}

impl<R: BufRead> ExportReader<R> {
    /// The end of the file: an export that says how many rows it has must have them all (a
    /// body cut short by a proxy or a dropped connection would otherwise pass as a short one).
    fn end_of_rows(&self) -> Result<Option<Row<'_>>, ExportError> {
        match self.rows.header.total_rows {
            Some(total) if self.rows.rows < total => Err(self.fail(format!(
                "the export ends after {} of its {total} rows (\"Total Rows\"): cut short",
                self.rows.rows
            ))),
            _ => Ok(None),
        }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace()) || line == b"\"\""
}

/// A span of local time with one UTC offset, named by its date prefix: `YYYY-MM-DD ` (a whole
/// day) or `YYYY-MM-DD HH:` (one hour, on a day the clocks change).
#[derive(Debug, Clone, Copy)]
struct TimeCache {
    prefix: [u8; 14],
    len: usize,
    /// Local wall time of the span's start, in seconds as if UTC.
    start: i64,
    offset: i64,
}

impl TimeCache {
    /// Local wall time of a `YYYY-MM-DD HH:MM:SS` inside the span, or `None`.
    #[inline]
    fn local(&self, date: &[u8]) -> Option<i64> {
        if date.len() != 19 || date[..self.len] != self.prefix[..self.len] {
            return None;
        }
        let hour = if self.len == 11 {
            let hour = two_digits(&date[11..13]).filter(|h| *h <= 23)?;
            (date[13] == b':').then_some(hour)?
        } else {
            0 // the hour is part of the prefix
        };
        let minute = two_digits(&date[14..16]).filter(|m| *m <= 59)?;
        let second = two_digits(&date[17..19]).filter(|s| *s <= 60)?;
        (date[16] == b':').then(|| self.start + i64::from(hour * 3600 + minute * 60 + second))
    }
}

impl RowParser {
    fn fail(&self, message: impl Into<String>) -> ExportError {
        ExportError::Line {
            line: self.line_no,
            message: message.into(),
        }
    }

    /// A row exactly as Cacti writes it (`"date","value",...` then `\r\n` or `\n`), in the
    /// hour of the row before, parsed straight from the reader's buffer: no search for the
    /// line's end, no copy. Returns the bytes the row took, or `None` for anything else
    /// (another hour, a line not whole in `buf`, other syntax), which the general path reads.
    #[inline]
    fn fast_row(&mut self, buf: &[u8]) -> Option<usize> {
        let cache = self.time_cache?;
        if buf.len() < 22 || buf[0] != b'"' || buf[20] != b'"' {
            return None;
        }
        let at = cache.local(&buf[1..20])? - cache.offset;
        let mut pos = 21;
        for index in 0..self.values.len() {
            if buf.get(pos..pos + 2) != Some(b",\"") {
                return None;
            }
            pos += 2;
            let (value, used) = quoted_value(buf.get(pos..)?)?;
            self.values[index] = value;
            pos += used + 1;
        }
        pos += match buf.get(pos..pos + 2) {
            Some(b"\r\n") => 2,
            _ if buf.get(pos) == Some(&b'\n') => 1,
            _ => return None,
        };
        self.last_at = Some(at);
        Some(pos)
    }

    /// Parses a data row into `values` and `last_at`.
    #[inline]
    fn parse_row(&mut self, line: &[u8]) -> Result<(), ExportError> {
        self.rows += 1;
        if self.rows > self.limits.max_rows {
            return Err(self.fail(format!("more than {} rows", self.limits.max_rows)));
        }
        let columns = self.values.len();
        let mut rest: Option<&[u8]> = Some(line);
        let date = next_field(&mut rest).ok_or_else(|| self.fail("empty row"))?;
        let at = self.date_to_unix(date)?;
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
        self.last_at = Some(at);
        Ok(())
    }

    /// A row's date field to Unix seconds. Within the hour of the previous row only the
    /// minutes and seconds are parsed; anything else takes the full path.
    #[inline]
    fn date_to_unix(&mut self, date: &[u8]) -> Result<i64, ExportError> {
        if let Some(local) = self
            .time_cache
            .and_then(|c| c.local(date).map(|l| l - c.offset))
        {
            return Ok(local);
        }
        let local = parse_local_date(date).ok_or_else(|| {
            self.fail(format!(
                "column 1 (Date): {:?} is not a date (YYYY-MM-DD HH:MM:SS)",
                String::from_utf8_lossy(date)
            ))
        })?;
        let (at, offset, cacheable) = self.local_to_unix(local)?;
        // Cache the day when it has one offset throughout (checked every six hours: no zone
        // changes its offset twice within six hours); else the hour, when it has one offset
        // from its first second to its last (Lord Howe shifts by half an hour inside one).
        let same = |local: i64| self.single_offset(local) == Some(offset);
        let day_start = local - local.rem_euclid(86_400);
        let hour_start = local - local.rem_euclid(3600);
        let span = if !cacheable || date.len() != 19 {
            None
        } else if [0, 6, 12, 18].iter().all(|h| same(day_start + h * 3600))
            && same(day_start + 86_399)
        {
            Some((11, day_start))
        } else if same(hour_start) && same(hour_start + 3599) {
            Some((14, hour_start))
        } else {
            None
        };
        self.time_cache = span.map(|(len, start)| {
            let mut prefix = [0u8; 14];
            prefix[..len].copy_from_slice(&date[..len]);
            TimeCache {
                prefix,
                len,
                start,
                offset,
            }
        });
        Ok(at)
    }

    fn single_offset(&self, local: i64) -> Option<i64> {
        let naive = chrono::DateTime::from_timestamp(local, 0)?.naive_utc();
        match self.tz.offset_from_local_datetime(&naive) {
            chrono::LocalResult::Single(o) => Some(i64::from(o.fix().local_minus_utc())),
            _ => None,
        }
    }

    /// Local wall time (seconds as if UTC) to Unix seconds through the zone, with the offset
    /// used and whether it holds for the whole hour. In the repeated hour when clocks go back,
    /// the earlier instant is taken unless rows have already passed it (then the later one),
    /// so a series stays in order.
    fn local_to_unix(&self, local: i64) -> Result<(i64, i64, bool), ExportError> {
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
        Ok((local - offset, offset, cacheable))
    }
}

#[inline]
fn two_digits(pair: &[u8]) -> Option<u32> {
    match pair {
        [a @ b'0'..=b'9', b @ b'0'..=b'9'] => Some(u32::from(a - b'0') * 10 + u32::from(b - b'0')),
        _ => None,
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
    let value = match fast_number(field) {
        Some(value) => value,
        None => std::str::from_utf8(field)
            .map_err(|_| ())?
            .parse()
            .map_err(|_| ())?,
    };
    if value.is_nan() {
        Ok(None)
    } else if value.is_finite() {
        Ok(Some(value))
    } else {
        Err(())
    }
}

/// Powers of ten that f64 holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Numbers as Cacti writes them (`1.2345678900e+08`, `3000`, `-0.5`) by Clinger's fast path:
/// when the digits fit in 2^53 and the power of ten is exact, one multiplication or division
/// of two exact values is correctly rounded, the same result as `str::parse`. Anything else
/// (more digits, a large exponent, odd syntax) returns `None` for the full parser.
#[inline]
fn fast_number(field: &[u8]) -> Option<f64> {
    scan_number(field)
        .filter(|(_, used)| *used == field.len())
        .map(|(value, _)| value)
}

/// The number at the start of `bytes` (see [`fast_number`]) and how many bytes it took.
#[inline]
fn scan_number(bytes: &[u8]) -> Option<(f64, usize)> {
    let (negative, mut i) = match bytes.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    let mut fraction_digits = 0i32;
    let mut seen_point = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
                fraction_digits += i32::from(seen_point);
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 || digits > 18 || mantissa > (1u64 << 53) {
        return None;
    }
    let mut exponent: i32 = 0;
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_negative = match bytes.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let exp_start = i;
        while let Some(&b @ b'0'..=b'9') = bytes.get(i) {
            if i - exp_start == 3 {
                return None;
            }
            exponent = exponent * 10 + i32::from(b - b'0');
            i += 1;
        }
        if i == exp_start {
            return None;
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    let power = exponent - fraction_digits;
    let value = mantissa as f64;
    let value = if (0..=22).contains(&power) {
        value * EXACT_POWERS_OF_TEN[power as usize]
    } else if (-22..0).contains(&power) {
        value / EXACT_POWERS_OF_TEN[(-power) as usize]
    } else {
        return None;
    };
    Some((if negative { -value } else { value }, i))
}

/// The form rrdtool's xport gives Cacti, `D.DDDDDDDDDDe±DD` followed by the closing quote,
/// read eight digits at a time (SWAR). The eleven digits fit in 2^53, so with an exact power
/// of ten this is Clinger's fast path: correctly rounded, the same as `str::parse`.
#[inline]
fn rrdtool_number(b: &[u8]) -> Option<f64> {
    let b: &[u8; 17] = b.get(..17)?.try_into().ok()?;
    if b[1] != b'.' || !matches!(b[12], b'e' | b'E') || b[16] != b'"' {
        return None;
    }
    let lead = u64::from(b[0].wrapping_sub(b'0'));
    let middle = eight_digits(u64::from_le_bytes(b[2..10].try_into().ok()?))?;
    let last = u64::from(two_digits(&b[10..12])?);
    if lead > 9 {
        return None;
    }
    let exponent = i32::try_from(two_digits(&b[14..16])?).ok()?;
    let exponent = match b[13] {
        b'+' => exponent,
        b'-' => -exponent,
        _ => return None,
    };
    let mantissa = (lead * 100_000_000 + middle) * 100 + last;
    let power = exponent - 10;
    let value = mantissa as f64;
    if (0..=22).contains(&power) {
        Some(value * EXACT_POWERS_OF_TEN[power as usize])
    } else if (-22..0).contains(&power) {
        Some(value / EXACT_POWERS_OF_TEN[(-power) as usize])
    } else {
        None
    }
}

/// Eight ASCII digits (the first in the lowest byte) as a number, or `None` if any byte is not
/// a digit.
#[inline]
fn eight_digits(chunk: u64) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let all_digits = (chunk & 0xF0F0_F0F0_F0F0_F0F0)
        | ((chunk.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4);
    if all_digits != 0x3333_3333_3333_3333 {
        return None;
    }
    let v = chunk - ZEROS;
    let v = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v * 100 + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((v * 10_000 + (v >> 32)) & 0xFFFF_FFFF)
}

/// A quoted value's body up to its closing quote: (value or gap, bytes before the quote).
/// `None` for anything [`scan_number`] does not take (the general path then reads the row).
#[inline]
fn quoted_value(bytes: &[u8]) -> Option<(Option<f64>, usize)> {
    match bytes {
        [b'"', ..] => Some((None, 0)),
        [b'N', b'a', b'N', b'"', ..] => Some((None, 3)),
        [b'U', b'"', ..] => Some((None, 1)),
        _ => {
            if let Some(value) = rrdtool_number(bytes) {
                return Some((Some(value), 16));
            }
            let (value, used) = scan_number(bytes)?;
            (bytes.get(used) == Some(&b'"')).then_some((Some(value), used))
        }
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
