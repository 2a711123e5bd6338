//! Any text into the title reader (operator patterns, then the built-in reader): a parse or
//! none, never a panic; what a parse gives is well formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_collector::poi::title::is_code_shape;
use netwarden_collector::poi::TitleParser;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static PARSER: OnceLock<TitleParser> = OnceLock::new();
    let parser = PARSER.get_or_init(|| {
        let ours = vec![(
            "ours".to_string(),
            r"^POI=(?P<poi>\w{4});CAP=(?P<cap_value>\d+)(?P<cap_unit>[MG])$".to_string(),
        )];
        TitleParser::new(&ours).expect("the pattern compiles")
    });
    if let Ok(title) = std::str::from_utf8(data) {
        if let Some(parsed) = parser.parse(title) {
            assert!(parsed.capacity_bps.is_none_or(|c| c > 0));
            assert!(parsed.poi_code.is_some() || parsed.circuit_id.is_some());
            if parsed.pattern != "ours" {
                assert!(parsed.poi_code.as_deref().is_none_or(is_code_shape));
                assert!(parsed
                    .circuit_id
                    .as_deref()
                    .is_none_or(|id| id.len() == 15 && id[3..].bytes().all(|b| b.is_ascii_digit())));
                assert!(parsed.poi_name.as_deref().is_none_or(|n| !n.trim().is_empty()));
            }
        }
    }
});
