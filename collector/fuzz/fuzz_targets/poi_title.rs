//! Any text into the title patterns: a parse or none, never a panic; a parsed capacity is
//! positive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_collector::poi::TitleParser;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static PARSER: OnceLock<TitleParser> = OnceLock::new();
    let parser = PARSER.get_or_init(|| TitleParser::new(&[]).expect("the shipped patterns compile"));
    if let Ok(title) = std::str::from_utf8(data) {
        if let Some(parsed) = parser.parse(title) {
            assert!(parsed.capacity_bps.is_none_or(|c| c > 0));
            assert!(parsed.poi_code.is_some() || parsed.circuit_id.is_some());
        }
    }
});
