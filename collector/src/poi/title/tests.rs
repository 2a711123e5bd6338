use super::*;

struct Want {
    poi: Option<&'static str>,
    name: Option<&'static str>,
    id: Option<&'static str>,
    bps: Option<u64>,
    tc: Option<&'static str>,
    dir: Option<&'static str>,
}

const fn want(poi: &'static str, name: &'static str, id: &'static str, bps: u64) -> Want {
    Want {
        poi: Some(poi),
        name: if name.is_empty() { None } else { Some(name) },
        id: if id.is_empty() { None } else { Some(id) },
        bps: if bps == 0 { None } else { Some(bps) },
        tc: None,
        dir: None,
    }
}

const G: u64 = 1_000_000_000;
const M: u64 = 1_000_000;

fn cases() -> Vec<(&'static str, Want)> {
    vec![
        (
            "2ABT Albert Park CVC000000123456 1000Mbps",
            want("2ABT", "Albert Park", "CVC000000123456", G),
        ),
        (
            "  2ABT   Albert   Park    CVC000000123456   1000 Mbps  ",
            want("2ABT", "Albert Park", "CVC000000123456", G),
        ),
        (
            "2abt_albert_park_cvc000000123456_1000M",
            want("2ABT", "Albert Park", "CVC000000123456", G),
        ),
        (
            "2ABT - Albert Park - CVC000000123456 - 1 Gbps",
            want("2ABT", "Albert Park", "CVC000000123456", G),
        ),
        (
            "POI: 2ABT | Albert Park | CVC000000123456 | 2.5 G",
            want("2ABT", "Albert Park", "CVC000000123456", 2_500 * M),
        ),
        (
            "Traffic - 3MEL Melbourne - NNI000000654321 - 10G",
            want("3MEL", "Melbourne", "NNI000000654321", 10 * G),
        ),
        (
            "CVC000000123456 (2ABT Albert Park) 500M",
            want("2ABT", "Albert Park", "CVC000000123456", 500 * M),
        ),
        (
            "CVC-000000123456 2ABT Albert Park 500 Mb/s",
            want("2ABT", "Albert Park", "CVC000000123456", 500 * M),
        ),
        (
            "Albert Park 2ABT CVC000000123456 1Gbps",
            want("2ABT", "Albert Park", "CVC000000123456", G),
        ),
        (
            "4BRI Brisbane AVC000012345678 100Mbps",
            want("4BRI", "Brisbane", "AVC000012345678", 100 * M),
        ),
        (
            "5ADL Adelaide CVC000000000001",
            want("5ADL", "Adelaide", "CVC000000000001", 0),
        ),
        ("6PER Perth 1000Mbps", want("6PER", "Perth", "", G)),
        ("7HOB Hobart", want("7HOB", "Hobart", "", 0)),
        (
            "1SYD St. Leonards CVC000000111111 1G",
            want("1SYD", "St. Leonards", "CVC000000111111", G),
        ),
        (
            "2ABT ALBERT PARK CVC000000123456 1GBPS",
            want("2ABT", "Albert Park", "CVC000000123456", G),
        ),
        (
            "[2ABT] [Albert Park] [CVC000000123456] [1000M]",
            want("2ABT", "Albert Park", "CVC000000123456", G),
        ),
        (
            "2ABT,Albert Park,CVC000000123456,1000Mbps",
            want("2ABT", "Albert Park", "CVC000000123456", G),
        ),
        (
            "CVC Utilisation: 3BAL Ballarat CVC000000222222 300 Mbps",
            want("3BAL", "Ballarat", "CVC000000222222", 300 * M),
        ),
        (
            "2ABT CVC000000123456 1G",
            want("2ABT", "", "CVC000000123456", G),
        ),
        (
            "2abt albert park cvc000000123456 1000mbps tc-4 inbound",
            Want {
                tc: Some("TC-4"),
                dir: Some("in"),
                ..want("2ABT", "Albert Park", "CVC000000123456", G)
            },
        ),
        (
            "2ABT Albert Park CVC000000123456 TC-1 250M Outbound",
            Want {
                tc: Some("TC-1"),
                dir: Some("out"),
                ..want("2ABT", "Albert Park", "CVC000000123456", 250 * M)
            },
        ),
        (
            "3MEL Melbourne NNI000000654321 10 G TC4 down",
            Want {
                tc: Some("TC-4"),
                dir: Some("down"),
                ..want("3MEL", "Melbourne", "NNI000000654321", 10 * G)
            },
        ),
        (
            "2ABT Albert Park CVC000000123456 1.5Tbps",
            want("2ABT", "Albert Park", "CVC000000123456", 1_500 * G),
        ),
    ]
}

#[test]
fn the_shipped_patterns_read_messy_titles() {
    let parser = TitleParser::new(&[]).unwrap();
    let cases = cases();
    assert!(cases.len() >= 20);
    for (title, want) in cases {
        let got = parser
            .parse(title)
            .unwrap_or_else(|| panic!("no pattern parsed {title:?}"));
        assert_eq!(
            got.poi_code.as_deref(),
            want.poi,
            "{title:?} ({})",
            got.pattern
        );
        assert_eq!(
            got.poi_name.as_deref(),
            want.name,
            "{title:?} ({})",
            got.pattern
        );
        assert_eq!(
            got.circuit_id.as_deref(),
            want.id,
            "{title:?} ({})",
            got.pattern
        );
        assert_eq!(got.capacity_bps, want.bps, "{title:?} ({})", got.pattern);
        assert_eq!(
            got.traffic_class.as_deref(),
            want.tc,
            "{title:?} ({})",
            got.pattern
        );
        assert_eq!(got.direction, want.dir, "{title:?} ({})", got.pattern);
    }
}

#[test]
fn titles_no_pattern_fully_parses_are_not_guessed() {
    let parser = TitleParser::new(&[]).unwrap();
    for title in [
        "",
        "Localhost - Memory Usage",
        "Interface Traffic eth0",
        "2ABT",                                    // a code alone says nothing
        "8XYZ Nowhere CVC000000123456 1G",         // no state 8
        "2ABT Albert Park CVC00000012345 1G",      // 11 digits
        "2ABT Albert Park CVC000000123456 1G %%%", // leftovers
        "2ABT Albert Park CVC000000123456 0M",     // zero capacity
    ] {
        assert_eq!(parser.parse(title), None, "{title:?}");
    }
    assert_eq!(parser.parse(&"2ABT ".repeat(200)), None, "bounded");
}

#[test]
fn operator_patterns_come_first_and_are_checked() {
    let mine = vec![(
        "portal-v2".to_string(),
        r"^POI=(?P<poi>\w{4});CAP=(?P<cap_value>\d+)(?P<cap_unit>[MG])$".to_string(),
    )];
    let parser = TitleParser::new(&mine).unwrap();
    let got = parser.parse("POI=2ABT;CAP=400M").unwrap();
    assert_eq!(got.pattern, "portal-v2");
    assert_eq!(
        (got.poi_code.as_deref(), got.capacity_bps),
        (Some("2ABT"), Some(400 * M))
    );
    // The defaults still apply after them.
    assert_eq!(parser.parse("7HOB Hobart").unwrap().pattern, "poi-name");

    let bad = vec![("broken".to_string(), "(?P<poi>[".to_string())];
    let err = TitleParser::new(&bad).err().unwrap();
    assert!(
        err.to_string().starts_with("title pattern \"broken\""),
        "{err}"
    );
    let unknown = vec![("typo".to_string(), "(?P<pio>.*)".to_string())];
    assert!(TitleParser::new(&unknown)
        .err()
        .unwrap()
        .to_string()
        .contains("unknown group \"pio\""));
    let useless = vec![("no-key".to_string(), "(?P<name>.*)".to_string())];
    assert!(TitleParser::new(&useless).is_err());
}

#[test]
fn capacities_as_people_write_them() {
    assert_eq!(parse_capacity("10G"), Some(10 * G));
    assert_eq!(parse_capacity("1000 Mbps"), Some(G));
    assert_eq!(parse_capacity("2.5 Gbit/s"), Some(2_500 * M));
    assert_eq!(parse_capacity("2500000000"), Some(2_500 * M));
    assert_eq!(parse_capacity("fast"), None);
    assert_eq!(parse_capacity("10 furlongs"), None);
    assert_eq!(parse_capacity(""), None);
}
