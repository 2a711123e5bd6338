//! KPI aggregation speed on a generated day of flow files (288 five-minute intervals, several
//! files each, realistic cardinalities) against pandas doing the same aggregation (per
//! interval: Σ uplink + downlink bytes per service, distinct MSISDNs per cell) on the same
//! files in the same run, both on one core; and our peak memory as the files grow.
//!
//!   cargo bench -p netwarden-collector --bench kpi_aggregate -- [--mb 1000] [--files 4]
//!       [--subscribers 200000] [--cells 5000] [--services 200]
//!
//! pandas must be importable by `python3` (pip install pandas); without it that row says so.

use netwarden_collector::kpi::aggregate::Aggregate;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const DAY_START_MS: i64 = 1_626_566_400_000; // 2021-07-18T00:00Z
const INTERVALS: i64 = 288;

struct Shape {
    bytes: u64,
    files: u32,
    subscribers: u64,
    cells: u64,
    services: u64,
    /// Each file's rows written this many times: more bytes, the same distinct keys.
    repeat: u32,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Skewed towards small values (a few services and cells carry most traffic).
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.next() % n;
        let b = self.next() % n;
        a.min(b)
    }
}

/// Writes the day's files; returns (files by interval end, total bytes, rows).
fn write_day(
    dir: &Path,
    shape: &Shape,
) -> std::io::Result<(BTreeMap<i64, Vec<PathBuf>>, u64, u64)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let per_file = shape.bytes / (INTERVALS as u64 * u64::from(shape.files));
    let mut files = BTreeMap::new();
    let (mut total, mut rows) = (0u64, 0u64);
    for i in 0..INTERVALS {
        let start = DAY_START_MS + i * 300_000;
        let end = start + 300_000;
        for index in 1..=shape.files {
            let path = dir.join(format!("ipflow_data.ts-{end}.{index}.txt"));
            let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
            let header = "interval_start_timestamp,interval_end_timestamp,msisdn,bytes_uplink,bytes_downlink,service_id,cell_id\r\n";
            out.write_all(header.as_bytes())?;
            let mut body = String::with_capacity(per_file as usize + 128);
            let mut body_rows = 0u64;
            while (body.len() + header.len()) < per_file as usize {
                let msisdn = 31_600_000_000 + rng.next() % shape.subscribers;
                let up = rng.next() % 50_000;
                let down = rng.next() % 500_000;
                let service = 1 + rng.skewed(shape.services);
                let cell = 1000 + rng.skewed(shape.cells);
                use std::fmt::Write as _;
                let _ = write!(
                    body,
                    "{start},{end},{msisdn},{up},{down},{service},{cell}\r\n"
                );
                body_rows += 1;
            }
            for _ in 0..shape.repeat {
                out.write_all(body.as_bytes())?;
            }
            out.flush()?;
            total += header.len() as u64 + body.len() as u64 * u64::from(shape.repeat);
            rows += body_rows * u64::from(shape.repeat);
            files.entry(end).or_insert_with(Vec::new).push(path);
        }
    }
    Ok((files, total, rows))
}

/// Our aggregation of every interval; returns a checksum of the results.
fn ours(files: &BTreeMap<i64, Vec<PathBuf>>) -> u64 {
    let mut checksum = 0u64;
    for paths in files.values() {
        let mut agg = Aggregate::default();
        let mut issues = Vec::new();
        for path in paths {
            agg.add_file(path, "f", &mut issues, 100)
                .expect("a readable file");
        }
        assert!(issues.is_empty(), "{issues:?}");
        checksum = checksum.wrapping_add(agg.services().iter().map(|s| s.1).sum::<u64>());
        checksum = checksum.wrapping_add(agg.cells().iter().map(|c| c.1).sum::<u64>());
    }
    checksum
}

const PANDAS: &str = "import sys, time, glob, collections, pandas as pd
groups = collections.defaultdict(list)
for f in sorted(glob.glob(sys.argv[1] + '/*.txt')):
    groups[int(f.rsplit('.ts-', 1)[1].split('.')[0])].append(f)
cols = ['msisdn', 'bytes_uplink', 'bytes_downlink', 'service_id', 'cell_id']
t = time.perf_counter()
check = 0
for end in sorted(groups):
    df = pd.concat([pd.read_csv(f, usecols=cols) for f in groups[end]], ignore_index=True)
    traffic = (df['bytes_uplink'] + df['bytes_downlink']).groupby(df['service_id']).sum()
    users = df.groupby('cell_id')['msisdn'].nunique()
    check += int(traffic.sum()) + int(users.sum())
print(time.perf_counter() - t, check)";

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

fn main() {
    let mut shape = Shape {
        bytes: 1_000_000_000,
        files: 4,
        subscribers: 200_000,
        cells: 5_000,
        services: 200,
        repeat: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a number")
        };
        match arg.as_str() {
            "--mb" => shape.bytes = value() * 1_000_000,
            "--files" => shape.files = value() as u32,
            "--subscribers" => shape.subscribers = value(),
            "--cells" => shape.cells = value(),
            "--services" => shape.services = value(),
            _ => {} // cargo bench passes --bench
        }
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let (files, bytes, rows) = write_day(dir.path(), &shape).expect("write the day");
    let mb = bytes as f64 / 1e6;
    println!(
        "day: {} intervals x {} files, {rows} rows, {mb:.0} MB ({} subscribers, {} cells, {} services)",
        INTERVALS, shape.files, shape.subscribers, shape.cells, shape.services
    );
    let before = high_water_kib();
    let started = Instant::now();
    let check = ours(&files);
    let secs = started.elapsed().as_secs_f64();
    let ours_mbs = mb / secs;
    let after = high_water_kib();
    println!(
        "netwarden Aggregate:  {secs:.2} s, {ours_mbs:.0} MB/s, {:.1} M rows/s (one core)",
        rows as f64 / secs / 1e6
    );

    match Command::new("python3")
        .arg("-c")
        .arg(PANDAS)
        .arg(dir.path())
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut parts = text.split_whitespace();
            let secs: f64 = parts
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            let pandas_check: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            assert_eq!(pandas_check, check, "pandas and we agree on the KPIs");
            let pandas_mbs = mb / secs;
            println!(
                "pandas groupby:       {secs:.2} s, {pandas_mbs:.0} MB/s -> ours is {:.2}x pandas (same results)",
                ours_mbs / pandas_mbs
            );
        }
        Ok(out) => println!(
            "pandas groupby:       failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(err) => println!("pandas groupby:       python3 not available: {err}"),
    }

    // Memory follows distinct keys, not file size: the same day with every file's rows
    // written four times (four times the bytes, the same distinct keys) must not raise it.
    drop(files);
    drop(dir);
    let big_dir = tempfile::tempdir().expect("a temp dir");
    let big_shape = Shape { repeat: 4, ..shape };
    let (big, big_bytes, _) = write_day(big_dir.path(), &big_shape).expect("write the larger day");
    let before_big = high_water_kib();
    ours(&big);
    let after_big = high_water_kib();
    println!(
        "peak RSS: {before} KiB before, {after} KiB after {mb:.0} MB; {before_big} KiB before, {after_big} KiB after {:.0} MB",
        big_bytes as f64 / 1e6
    );
}
