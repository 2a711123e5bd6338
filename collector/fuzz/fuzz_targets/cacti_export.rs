//! Any bytes into the Cacti export reader: it must return rows or an error, never panic,
//! hang or grow without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_collector::cacti::{ExportReader, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_line_bytes: 4096,
        max_columns: 16,
        max_header_lines: 32,
        max_rows: 10_000,
    };
    if let Ok(mut reader) = ExportReader::new(data, chrono_tz::Australia::Sydney, limits) {
        let columns = reader.header().columns.len();
        while let Ok(Some(row)) = reader.next_row() {
            assert_eq!(row.values.len(), columns);
        }
    }
});
