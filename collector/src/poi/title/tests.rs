use super::*;

const G: u64 = 1_000_000_000;
const M: u64 = 1_000_000;

/// One corpus row: the title and every field it must be read as.
#[derive(Debug)]
struct Case {
    line: usize,
    title: String,
    poi: Option<String>,
    name: Option<String>,
    id: Option<String>,
    bps: Option<u64>,
    dir: Option<String>,
    tc: Option<String>,
}

fn corpus() -> Vec<Case> {
    let field = |f: &str| (f != "-").then(|| f.to_string());
    include_str!("corpus.tsv")
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(i, l)| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 7, "corpus.tsv line {}: {l:?}", i + 1);
            Case {
                line: i + 1,
                title: f[0].to_string(),
                poi: field(f[1]),
                name: field(f[2]),
                id: field(f[3]),
                bps: field(f[4]).map(|b| b.parse().expect("capacity in bits/s")),
                dir: field(f[5]),
                tc: field(f[6]),
            }
        })
        .collect()
}

#[test]
fn every_title_of_the_corpus_is_read_field_by_field() {
    let parser = TitleParser::new(&[]).unwrap();
    let cases = corpus();
    assert!(cases.len() >= 60, "the corpus has {} titles", cases.len());
    assert!(cases.iter().filter(|c| c.poi.is_none()).count() >= 5);
    let mut wrong = Vec::new();
    for case in &cases {
        let got = parser.parse(&case.title);
        let got = (
            got.as_ref().and_then(|p| p.poi_code.clone()),
            got.as_ref().and_then(|p| p.poi_name.clone()),
            got.as_ref().and_then(|p| p.circuit_id.clone()),
            got.as_ref().and_then(|p| p.capacity_bps),
            got.as_ref().and_then(|p| p.direction.map(str::to_string)),
            got.as_ref().and_then(|p| p.traffic_class.clone()),
        );
        let want = (
            case.poi.clone(),
            case.name.clone(),
            case.id.clone(),
            case.bps,
            case.dir.clone(),
            case.tc.clone(),
        );
        if got != want {
            wrong.push(format!(
                "line {} {:?}:\n   got {got:?}\n  want {want:?}",
                case.line, case.title
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} titles misread:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn a_title_naming_neither_code_nor_id_is_not_a_poi_title() {
    let parser = TitleParser::new(&[]).unwrap();
    for title in ["", "   ", "::", "Localhost - Memory Usage", "10G", "CVC 1G"] {
        assert_eq!(parser.parse(title), None, "{title:?}");
    }
    assert_eq!(parser.parse(&"2ABT ".repeat(200)), None, "bounded");
    // Parts found anywhere: the same facts in any order.
    let a = parser
        .parse("2ABT Albury CVC000000123456 1G TC-4 out")
        .unwrap();
    let b = parser
        .parse("out | TC-4 | 1G | CVC000000123456 | 2abt Albury")
        .unwrap();
    assert_eq!(
        (
            &a.poi_code,
            &a.circuit_id,
            a.capacity_bps,
            &a.traffic_class,
            a.direction
        ),
        (
            &b.poi_code,
            &b.circuit_id,
            b.capacity_bps,
            &b.traffic_class,
            b.direction
        )
    );
    assert_eq!(a.poi_name.as_deref(), Some("Albury"));
    assert_eq!(b.poi_name.as_deref(), Some("Albury"));
}

#[test]
fn poi_codes_are_a_state_digit_and_three_letters() {
    for code in ["0DAR", "2PAR", "3mel", "4IPS", "5SAL", "6FRE", "7LAU"] {
        assert!(is_poi_code(code), "{code}");
    }
    for word in [
        "1SYD", "8XYZ", "9ABC", "2AB", "2ABCD", "22AB", "5GHz", "2Mbs", "ABCD",
    ] {
        assert!(!is_poi_code(word), "{word}");
    }
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
    // The built-in reader still applies after them.
    assert_eq!(parser.parse("7HOB Hobart").unwrap().pattern, BUILT_IN);
    // A pattern that matches but yields neither code nor id does not stop the reader.
    let loose = vec![("loose".to_string(), r"^(?P<poi>x)?.*$".to_string())];
    let parser = TitleParser::new(&loose).unwrap();
    assert_eq!(parser.parse("7HOB Hobart").unwrap().pattern, BUILT_IN);

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
