//! Reading telemetry history for `netwarden-collector import telemetry FILE`: NDJSON (one
//! sample object a line, as the batch endpoint takes it) or CSV with a header
//! (`circuit_id`, `utilization_mbps`, `timestamp`; `utilisation_mbps`, `mbps`, `time`, `ts`
//! are understood too). Samples of any age are accepted; each problem names its line and
//! field. Read as a stream into a compact table (a circuit index, a time, a value), so two
//! years of a few circuits' minutes fit in memory.

use super::{header_key, ImportError};
use crate::telemetry::sample::{check_aged, from_json_aged, parse_time};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// Most samples one file may hold (about 2.4 GB of memory at this size is refused first).
pub const MAX_SAMPLES: usize = 100_000_000;
/// Problems listed before the reader gives up.
const MAX_PROBLEMS: usize = 20;

/// Samples read from a file: circuits by index, and (circuit, Unix ms, Mbps) rows.
#[derive(Debug, Default)]
pub struct SampleSet {
    pub circuits: Vec<String>,
    pub rows: Vec<(u32, i64, f64)>,
}

impl SampleSet {
    fn push(&mut self, index: &mut HashMap<String, u32>, circuit: &str, at: i64, mbps: f64) {
        let id = match index.get(circuit) {
            Some(id) => *id,
            None => {
                let id = self.circuits.len() as u32;
                self.circuits.push(circuit.to_string());
                index.insert(circuit.to_string(), id);
                id
            }
        };
        self.rows.push((id, at, mbps));
    }

    /// Rows grouped by circuit, each in time order.
    pub fn sort(&mut self) {
        self.rows.sort_unstable_by_key(|r| (r.0, r.1));
    }
}

/// Reads the whole file, or the problems found (at most twenty, each with its line).
pub fn read_samples(path: &Path, now: DateTime<Utc>) -> Result<SampleSet, Vec<ImportError>> {
    let whole = |message: String| {
        vec![ImportError {
            row: 0,
            column: path.display().to_string(),
            message,
        }]
    };
    let file = std::fs::File::open(path).map_err(|e| whole(e.to_string()))?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "csv" => read_csv(reader, now),
        "ndjson" | "jsonl" | "json" => read_ndjson(reader, now),
        other => Err(whole(format!(
            "unknown file type {other:?}: use .ndjson (or .jsonl) or .csv"
        ))),
    }
}

fn read_ndjson(reader: impl BufRead, now: DateTime<Utc>) -> Result<SampleSet, Vec<ImportError>> {
    let mut set = SampleSet::default();
    let mut index = HashMap::new();
    let mut problems = Vec::new();
    for (n, line) in reader.split(b'\n').enumerate() {
        let line_no = n + 1;
        let line = line.map_err(|e| {
            vec![ImportError {
                row: line_no,
                column: "-".into(),
                message: e.to_string(),
            }]
        })?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let sample = serde_json::from_slice::<serde_json::Value>(&line)
            .map_err(|e| ("line", format!("is not a JSON object: {e}")))
            .and_then(|v| from_json_aged(&v, now, None).map_err(|e| (e.field, e.message)));
        match sample {
            Ok(s) => set.push(
                &mut index,
                &s.circuit_id,
                s.at.timestamp_millis(),
                s.utilization_mbps,
            ),
            Err((field, message)) => {
                problems.push(ImportError {
                    row: line_no,
                    column: field.into(),
                    message,
                });
                if problems.len() >= MAX_PROBLEMS {
                    break;
                }
            }
        }
        if set.rows.len() > MAX_SAMPLES {
            return Err(too_many(line_no));
        }
    }
    finish(set, problems)
}

fn read_csv(reader: impl BufRead, now: DateTime<Utc>) -> Result<SampleSet, Vec<ImportError>> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let header_error = |message: String| {
        vec![ImportError {
            row: 1,
            column: "header".into(),
            message,
        }]
    };
    let headers = csv
        .byte_headers()
        .map_err(|e| header_error(e.to_string()))?
        .clone();
    let find = |names: &[&str]| {
        headers.iter().position(|h| {
            let key = header_key(String::from_utf8_lossy(h).trim_start_matches('\u{feff}'));
            names.iter().any(|n| header_key(n) == key)
        })
    };
    let circuit = find(&["circuit_id", "circuit"]);
    let value = find(&[
        "utilization_mbps",
        "utilisation_mbps",
        "utilization",
        "utilisation",
        "mbps",
    ]);
    let time = find(&["timestamp", "time", "ts"]);
    let (Some(circuit), Some(value), Some(time)) = (circuit, value, time) else {
        return Err(header_error(
            "needs circuit_id, utilization_mbps and timestamp columns".into(),
        ));
    };
    let mut set = SampleSet::default();
    let mut index = HashMap::new();
    let mut problems = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut line = 1;
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                problems.push(ImportError {
                    row: line + 1,
                    column: "-".into(),
                    message: e.to_string(),
                });
                break;
            }
        }
        line = record.position().map_or(line + 1, |p| p.line() as usize);
        let field = |i: usize| std::str::from_utf8(record.get(i).unwrap_or_default()).unwrap_or("");
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        let parsed = (|| {
            let mbps: f64 = field(value).parse().map_err(|_| {
                (
                    "utilization_mbps",
                    format!("{:?} is not a number", field(value)),
                )
            })?;
            let at = csv_time(field(time)).ok_or_else(|| {
                (
                    "timestamp",
                    format!("{:?} is not a time (ISO 8601 or Unix seconds)", field(time)),
                )
            })?;
            check_aged(field(circuit), mbps, Some(at), now, None).map_err(|e| (e.field, e.message))
        })();
        match parsed {
            Ok(s) => set.push(
                &mut index,
                &s.circuit_id,
                s.at.timestamp_millis(),
                s.utilization_mbps,
            ),
            Err((field, message)) => {
                problems.push(ImportError {
                    row: line,
                    column: field.into(),
                    message,
                });
                if problems.len() >= MAX_PROBLEMS {
                    break;
                }
            }
        }
        if set.rows.len() > MAX_SAMPLES {
            return Err(too_many(line));
        }
    }
    finish(set, problems)
}

/// An ISO 8601 time (a naive one is UTC) or Unix seconds.
fn csv_time(text: &str) -> Option<DateTime<Utc>> {
    parse_time(text).or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite())
            .and_then(|s| DateTime::from_timestamp_millis((s * 1000.0) as i64))
    })
}

fn too_many(line: usize) -> Vec<ImportError> {
    vec![ImportError {
        row: line,
        column: "-".into(),
        message: format!("more than {MAX_SAMPLES} samples: split the file"),
    }]
}

fn finish(set: SampleSet, problems: Vec<ImportError>) -> Result<SampleSet, Vec<ImportError>> {
    if !problems.is_empty() {
        return Err(problems);
    }
    if set.rows.is_empty() {
        return Err(vec![ImportError {
            row: 0,
            column: "-".into(),
            message: "the file holds no samples".into(),
        }]);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn ndjson_and_csv_of_any_age_are_read() {
        let ndjson = b"{\"circuit_id\":\"C-1\",\"utilization_mbps\":10,\"timestamp\":\"2024-11-30T10:00:00Z\"}\n\n\
                       {\"circuit_id\":\"C-2\",\"utilization_mbps\":5.5,\"timestamp\":1700000000}\n";
        let set = read_ndjson(&ndjson[..], now()).unwrap();
        assert_eq!(set.circuits, vec!["C-1", "C-2"]);
        assert_eq!(set.rows[1], (1, 1_700_000_000_000, 5.5));
        let csv = "\u{feff}Circuit ID,Utilisation Mbps,Time\nC-1,10,2024-11-30 10:00:00\nC-1,12,1700000000\n";
        let set = read_csv(csv.as_bytes(), now()).unwrap();
        assert_eq!(set.rows.len(), 2);
        assert_eq!(set.rows[0].1, 1_732_960_800_000);
    }

    #[test]
    fn problems_name_line_and_field() {
        let ndjson = b"{\"circuit_id\":\"C 1\",\"utilization_mbps\":10}\nnot json\n{\"circuit_id\":\"C-1\",\"utilization_mbps\":-1}\n";
        let errors = read_ndjson(&ndjson[..], now()).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].starts_with("row 1, column circuit_id"), "{text:?}");
        assert!(text[1].starts_with("row 2, column line"), "{text:?}");
        assert!(
            text[2].starts_with("row 3, column utilization_mbps"),
            "{text:?}"
        );
        let csv = "circuit_id,utilization_mbps,timestamp\nC-1,x,2024-01-01T00:00:00Z\nC-1,1,soon\n";
        let errors = read_csv(csv.as_bytes(), now()).unwrap_err();
        assert!(errors[0]
            .to_string()
            .starts_with("row 2, column utilization_mbps"));
        assert!(errors[1].to_string().starts_with("row 3, column timestamp"));
        let future = "circuit_id,utilization_mbps,timestamp\nC-1,1,2030-01-01T00:00:00Z\n";
        assert!(read_csv(future.as_bytes(), now()).unwrap_err()[0]
            .message
            .contains("in the future"));
        assert!(read_csv("a,b\n1,2\n".as_bytes(), now()).is_err());
    }
}
