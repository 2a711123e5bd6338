//! Any bytes as a flow file, read through a small buffer so lines split across reads: never a
//! panic; every line is counted, skipped or the header; totals stay within 63 bits; and a
//! buffer of any size gives the same KPIs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_collector::kpi::aggregate::Aggregate;
use std::io::BufReader;

fuzz_target!(|data: &[u8]| {
    let read = |capacity: usize| {
        let mut agg = Aggregate::default();
        let mut issues = Vec::new();
        let stats = agg.add_reader(BufReader::with_capacity(capacity, data), "f", &mut issues, 10);
        (stats.ok(), agg.services(), agg.cells(), issues.len())
    };
    let whole = read(64 * 1024);
    assert_eq!(read(5), whole);
    for (_, total) in &whole.1 {
        assert!(*total <= i64::MAX as u64);
    }
    if let Some(stats) = &whole.0 {
        assert!(stats.rows <= data.len() as u64);
    }
});
