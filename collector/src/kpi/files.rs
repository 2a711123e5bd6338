//! Flow files in the watched directory: `<prefix>.ts-<epoch_ms>.<index>.<ext>`, where the
//! timestamp (UTC) is the END of the 5-minute interval the file covers. Several files may
//! share an interval.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Five minutes, in milliseconds.
pub const INTERVAL_MS: i64 = 300_000;
pub const HOUR_MS: i64 = 3_600_000;

/// A flow file's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFileName {
    pub prefix: String,
    /// End of the interval the file covers, Unix milliseconds.
    pub interval_end_ms: i64,
    pub index: u32,
    pub extension: String,
}

/// Parses `<prefix>.ts-<epoch_ms>.<index>.<ext>`; the error says what is wrong.
pub fn parse_name(name: &str) -> Result<FlowFileName, String> {
    let (prefix, rest) = name
        .rsplit_once(".ts-")
        .ok_or_else(|| "does not contain \".ts-<epoch_ms>\"".to_string())?;
    let mut parts = rest.splitn(3, '.');
    let (Some(ts), Some(index), Some(extension)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("is not <prefix>.ts-<epoch_ms>.<index>.<ext>".into());
    };
    if prefix.is_empty() || extension.is_empty() {
        return Err("is not <prefix>.ts-<epoch_ms>.<index>.<ext>".into());
    }
    let last = extension
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ["gz", "bz2", "xz", "zst", "zip", "7z"].contains(&last.as_str()) {
        return Err(format!(
            "is compressed (.{last}); flow files are read as plain CSV, so decompress them first"
        ));
    }
    let interval_end_ms: i64 = ts
        .parse()
        .ok()
        .filter(|v| *v > 0 && ts.len() <= 15)
        .ok_or_else(|| format!("timestamp {ts:?} is not epoch milliseconds"))?;
    if interval_end_ms % INTERVAL_MS != 0 {
        return Err(format!(
            "timestamp {ts} is not on a 5-minute boundary (the end of an interval)"
        ));
    }
    let index = index
        .parse()
        .map_err(|_| format!("index {index:?} is not a number"))?;
    Ok(FlowFileName {
        prefix: prefix.to_string(),
        interval_end_ms,
        index,
        extension: extension.to_string(),
    })
}

/// A file found in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFile {
    pub path: PathBuf,
    /// The file name (unique within the directory): identifies it in the store.
    pub name: String,
    pub interval_end_ms: i64,
    pub size: i64,
    pub modified_ms: i64,
}

/// What a scan of the directory found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Files by interval end, each interval's files in name order.
    pub intervals: BTreeMap<i64, Vec<FlowFile>>,
    /// (file name, why it is not a flow file name).
    pub bad_names: Vec<(String, String)>,
}

/// Lists the flow files in `dir` (not recursive). Hidden files and files still being written
/// under a temporary name (`*.tmp`, `*.part`) are left out.
pub fn scan(dir: &Path) -> std::io::Result<Scan> {
    let mut found = Scan::default();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") {
            continue;
        }
        // A flow file that cannot be looked at (a dangling link, a permission problem) is
        // still listed, with size -1: reading it then fails and its interval waits.
        let meta = match std::fs::metadata(entry.path()) {
            Ok(meta) if meta.is_file() => Some(meta),
            Ok(_) => continue,
            Err(_) => None,
        };
        match parse_name(&name) {
            Ok(parsed) => {
                let modified_ms = meta
                    .as_ref()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as i64);
                found
                    .intervals
                    .entry(parsed.interval_end_ms)
                    .or_default()
                    .push(FlowFile {
                        path: entry.path(),
                        name,
                        interval_end_ms: parsed.interval_end_ms,
                        size: meta.as_ref().map_or(-1, |m| m.len() as i64),
                        modified_ms,
                    });
            }
            Err(why) => found.bad_names.push((name, why)),
        }
    }
    for files in found.intervals.values_mut() {
        files.sort_by(|a, b| a.name.cmp(&b.name));
    }
    found.bad_names.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_the_interval_end() {
        let name = parse_name("ipflow_data.ts-1626566700000.2.txt").unwrap();
        assert_eq!(name.prefix, "ipflow_data");
        assert_eq!(name.interval_end_ms, 1_626_566_700_000);
        assert_eq!(name.index, 2);
        assert_eq!(name.extension, "txt");
        let dotted = parse_name("core.eu-1.ts-1626566700000.10.flow.csv").unwrap();
        assert_eq!(dotted.prefix, "core.eu-1");
        assert_eq!(dotted.extension, "flow.csv");
    }

    #[test]
    fn bad_names_say_why() {
        for (name, why) in [
            ("notes.txt", ".ts-"),
            ("flows.ts-1626566700000.txt", "<index>"),
            ("flows.ts-abc.1.txt", "epoch milliseconds"),
            ("flows.ts-1626566712345.1.txt", "5-minute boundary"),
            ("flows.ts-1626566700000.x.txt", "index"),
            ("flows.ts-1626566700000.1.csv.gz", "compressed"),
        ] {
            let err = parse_name(name).unwrap_err();
            assert!(err.contains(why), "{name}: {err}");
        }
    }
}
