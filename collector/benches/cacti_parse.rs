//! Parse speed of a large Cacti CSV export against pandas `read_csv` and Python's `csv`
//! module on the same file in the same run, and our memory as the file grows.
//!
//!   cargo bench -p netwarden-collector --bench cacti_parse -- [--rows 1000000] [--runs 3]
//!
//! pandas must be importable by `python3` for its row (pip install pandas); without it that
//! row says so. Our figure includes reading the file (from the page cache), the local-time
//! conversion of every date and the gap handling, i.e. everything the scraper needs.

use netwarden_collector::cacti::{ExportReader, Limits};
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const HEADER_LINES: usize = 11;

fn write_export(path: &Path, rows: u64) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    write!(
        out,
        "\u{feff}\"Title\",\"2ABT Albert Park CVC000000123456 1000Mbps\"\r\n\"Vertical Label\",\"bits per second\"\r\n\
         \"Start Date\",\"2025-01-01 00:00:00\"\r\n\"End Date\",\"2035-01-01 00:00:00\"\r\n\"Step\",\"300\"\r\n\
         \"Total Rows\",\"{rows}\"\r\n\"Graph ID\",\"1234\"\r\n\"Host ID\",\"56\"\r\n\"Nth Percentile\",\"95\"\r\n\
         \"\"\r\n\"Date\",\"Inbound\",\"Outbound\"\r\n"
    )?;
    // Five-minute steps from 2025-01-01, values like Cacti's (%e with 10 digits), a gap in 1 of 97.
    let start = chrono::NaiveDate::from_ymd_opt(2025, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date");
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..rows {
        let at = start + chrono::Duration::seconds(300 * i as i64);
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let inbound = (state % 1_000_000_000) as f64 * 1.000_001;
        let outbound = inbound / 7.3;
        if i % 97 == 13 {
            write!(
                out,
                "\"{}\",\"NaN\",\"NaN\"\r\n",
                at.format("%Y-%m-%d %H:%M:%S")
            )?;
        } else {
            write!(
                out,
                "\"{}\",\"{}\",\"{}\"\r\n",
                at.format("%Y-%m-%d %H:%M:%S"),
                rrdtool(inbound),
                rrdtool(outbound)
            )?;
        }
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// A value as rrdtool's xport prints it for Cacti (C's `%0.10e`: `1.2345678900e+08`); Rust's
/// `{:.10e}` would write `1.2345678900e8`.
fn rrdtool(value: f64) -> String {
    let text = format!("{value:.10e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let exponent: i32 = exponent.parse().unwrap_or(0);
            let sign = if exponent < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exponent.abs())
        }
        None => text,
    }
}

fn parse(path: &Path) -> (u64, f64) {
    let file = std::fs::File::open(path).expect("open the export");
    // A zone without daylight saving: the synthetic series steps through every local time,
    // including ones a DST zone skips (which a real Cacti export never contains).
    let tz: chrono_tz::Tz = "Australia/Brisbane".parse().expect("a zone");
    let mut reader = ExportReader::new(
        BufReader::with_capacity(256 * 1024, file),
        tz,
        Limits {
            max_rows: u64::MAX,
            ..Limits::default()
        },
    )
    .expect("a valid header");
    let (mut rows, mut sum) = (0u64, 0.0f64);
    while let Some(row) = reader.next_row().expect("valid rows") {
        rows += 1;
        sum += row.values.iter().flatten().sum::<f64>() + row.at as f64;
    }
    (rows, sum)
}

fn high_water_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn python(path: &Path, code: &str) -> Option<f64> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .arg(path)
        .arg(HEADER_LINES.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

const PANDAS: &str = "import sys, time, pandas as pd
best = 1e9
for _ in range(3):
    t = time.perf_counter(); df = pd.read_csv(sys.argv[1], skiprows=int(sys.argv[2])); best = min(best, time.perf_counter() - t)
print(best)";

/// pandas with its pyarrow engine (multithreaded), when pyarrow is installed.
const PANDAS_PYARROW: &str = "import sys, time, pandas as pd, pyarrow
best = 1e9
for _ in range(3):
    t = time.perf_counter(); df = pd.read_csv(sys.argv[1], skiprows=int(sys.argv[2]), engine='pyarrow'); best = min(best, time.perf_counter() - t)
print(best)";

const CSV: &str = "import sys, time, csv
best = 1e9
for _ in range(3):
    t = time.perf_counter()
    with open(sys.argv[1], newline='', encoding='utf-8-sig') as f:
        for row in csv.reader(f): pass
    best = min(best, time.perf_counter() - t)
print(best)";

fn main() {
    let mut rows: u64 = 1_000_000;
    let mut runs = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rows" => rows = args.next().and_then(|v| v.parse().ok()).expect("--rows N"),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            _ => {} // cargo bench passes --bench
        }
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("export.csv");
    let bytes = write_export(&path, rows).expect("write the export");
    let mb = bytes as f64 / 1e6;
    println!("export: {rows} rows, {mb:.1} MB");

    let before = high_water_kib();
    let mut best = f64::MAX;
    for _ in 0..runs {
        let started = Instant::now();
        let (parsed, sum) = parse(&path);
        best = best.min(started.elapsed().as_secs_f64());
        assert_eq!(parsed, rows, "every row parsed (checksum {sum})");
    }
    let ours = mb / best;
    println!("netwarden ExportReader: {best:.3} s, {ours:.0} MB/s (best of {runs})");
    let pandas = python(&path, PANDAS).map(|s| mb / s);
    let versions = "import pandas, importlib.util as u; print(pandas.__version__, 'with pyarrow' if u.find_spec('pyarrow') else 'without pyarrow')";
    if let Ok(out) = Command::new("python3").arg("-c").arg(versions).output() {
        println!("pandas {}", String::from_utf8_lossy(&out.stdout).trim());
    }
    match pandas {
        Some(p) => println!(
            "pandas read_csv:        {p:.0} MB/s -> ours is {:.2}x pandas",
            ours / p
        ),
        None => println!("pandas read_csv:        not available (pip install pandas)"),
    }
    if let Some(p) = python(&path, PANDAS_PYARROW).map(|s| mb / s) {
        println!(
            "pandas engine=pyarrow:  {p:.0} MB/s -> ours is {:.2}x",
            ours / p
        );
    }
    if let Some(c) = python(&path, CSV).map(|s| mb / s) {
        println!(
            "python csv module:      {c:.0} MB/s -> ours is {:.2}x csv",
            ours / c
        );
    }

    // Memory stays flat as the file grows: parse a file 4x as long and compare peaks.
    let after_small = high_water_kib();
    let big = dir.path().join("export4.csv");
    write_export(&big, rows * 4).expect("write the larger export");
    let (parsed, _) = parse(&big);
    assert_eq!(parsed, rows * 4);
    let after_big = high_water_kib();
    println!(
        "peak RSS: {before} KiB before, {after_small} KiB after {rows} rows, {after_big} KiB after {} rows",
        rows * 4
    );
}
