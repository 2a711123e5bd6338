use super::*;
use std::path::PathBuf;

fn seed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/resources/kpi")
        .join(name)
}

fn read(agg: &mut Aggregate, text: &str) -> (Result<FileStats, Issue>, Vec<Issue>) {
    let mut issues = Vec::new();
    let result = agg.add_reader(BufReader::new(text.as_bytes()), "f.txt", &mut issues, 100);
    (result, issues)
}

const HEADER: &str =
    "interval_start_timestamp,interval_end_timestamp,msisdn,bytes_uplink,bytes_downlink,service_id,cell_id\n";

#[test]
fn the_seed_files_give_the_known_kpis() {
    let mut agg = Aggregate::default();
    let mut issues = Vec::new();
    for name in [
        "ipflow_data.ts-1626566700000.1.txt",
        "ipflow_data.ts-1626566700000.2.txt",
    ] {
        agg.add_file(&seed(name), name, &mut issues, 100).unwrap();
    }
    assert!(issues.is_empty(), "{issues:?}");
    let mut services = agg.services();
    services.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    assert_eq!(
        services,
        vec![(1, 16100), (3, 11500), (2, 9260), (4, 6550), (5, 2910)]
    );
    let mut cells = agg.cells();
    cells.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    assert_eq!(&cells[..3], &[(1001, 4), (1000, 3), (5005, 3)]);
}

#[test]
fn crlf_lf_and_no_final_newline_read_the_same() {
    let rows = "1,2,100,5,7,1,10\n1,2,101,5,7,2,10\n1,2,100,1,1,1,11";
    let mut lf = Aggregate::default();
    read(&mut lf, &format!("{HEADER}{rows}")).0.unwrap();
    let mut crlf = Aggregate::default();
    let text = format!("{HEADER}{rows}\n").replace('\n', "\r\n");
    let stats = read(&mut crlf, &text).0.unwrap();
    assert_eq!(stats.rows, 3);
    assert_eq!(lf.services(), crlf.services());
    assert_eq!(lf.services(), vec![(1, 14), (2, 12)]);
    assert_eq!(lf.cells(), vec![(10, 2), (11, 1)]);
}

#[test]
fn columns_are_found_by_name() {
    let text = "cell_id,service_id,bytes_downlink,bytes_uplink,msisdn\n10,1,5,6,99\n10,1,1,1,98\n";
    let mut agg = Aggregate::default();
    read(&mut agg, text).0.unwrap();
    assert_eq!(agg.services(), vec![(1, 13)]);
    assert_eq!(agg.cells(), vec![(10, 2)]);
}

#[test]
fn malformed_rows_are_reported_with_their_line_and_skipped() {
    let text = format!(
        "{HEADER}1,2,100,5,7,1,10\n1,2,100,5,7,1\n1,2,abc,5,7,1,10\n1,2,100,-5,7,1,10\n1,2,100,5,7,1,10,9\n\n1,2,101,1,1,1,10\n"
    );
    let mut agg = Aggregate::default();
    let (stats, issues) = read(&mut agg, &text);
    let stats = stats.unwrap();
    assert_eq!((stats.rows, stats.skipped_rows), (2, 4));
    let lines: Vec<(Option<u64>, &str)> = issues
        .iter()
        .map(|i| (i.line, i.message.as_str()))
        .collect();
    assert_eq!(lines[0], (Some(3), "6 columns, the header has 7"));
    assert_eq!(lines[1].0, Some(4));
    assert!(
        lines[1].1.contains("msisdn") && lines[1].1.contains("abc"),
        "{lines:?}"
    );
    assert_eq!(lines[2], (Some(5), "bytes_uplink: -5 is negative"));
    assert!(lines[3].1.contains("more than 7"), "{lines:?}");
    assert!(issues.iter().all(|i| i.file == "f.txt"));
    assert_eq!(agg.services(), vec![(1, 14)]);
}

#[test]
fn a_file_without_the_needed_header_adds_nothing() {
    let mut agg = Aggregate::default();
    read(&mut agg, &format!("{HEADER}1,2,100,5,7,1,10\n"))
        .0
        .unwrap();
    let (result, _) = read(&mut agg, "a,b,c\n1,2,3\n");
    let err = result.unwrap_err();
    assert!(err.message.contains("no msisdn column"), "{err:?}");
    let (result, _) = read(&mut agg, "");
    assert!(result.unwrap_err().message.contains("empty"));
    assert_eq!(
        agg.services(),
        vec![(1, 12)],
        "the bad files changed nothing"
    );
}

#[test]
fn a_huge_line_or_value_is_a_row_error_not_a_crash() {
    let long = "9".repeat(MAX_LINE_BYTES * 3);
    let text = format!(
        "{HEADER}{long}\n1,2,100,99999999999999999999,7,1,10\n1,2,100,2000000000000000,7,1,10\n1,2,100,5,7,1,10\n"
    );
    let mut agg = Aggregate::default();
    let (stats, issues) = read(&mut agg, &text);
    assert_eq!(stats.unwrap().rows, 1);
    assert_eq!(issues.len(), 3, "{issues:?}");
    assert!(issues[0].message.contains("longer than"));
    assert_eq!(issues[0].line, Some(2));
    assert_eq!(issues[1].line, Some(3));
    assert!(issues[2].message.contains("more than the"), "{issues:?}");
}

#[test]
fn issues_per_file_are_capped_and_the_rest_counted() {
    let mut text = HEADER.to_string();
    for _ in 0..250 {
        text.push_str("x\n");
    }
    let mut agg = Aggregate::default();
    let mut issues = Vec::new();
    let stats = agg
        .add_reader(BufReader::new(text.as_bytes()), "f", &mut issues, 100)
        .unwrap();
    assert_eq!(stats.skipped_rows, 250);
    assert_eq!(issues.len(), 101);
    assert_eq!(issues[100].message, "150 more malformed rows not listed");
}

#[test]
fn an_hour_counts_a_user_seen_in_several_intervals_once() {
    let mut hour = Aggregate::default();
    for interval in 0..3 {
        let mut agg = Aggregate::default();
        read(
            &mut agg,
            &format!(
                "{HEADER}1,2,555,10,0,1,7\n1,2,{},10,0,1,7\n",
                600 + interval
            ),
        )
        .0
        .unwrap();
        assert_eq!(agg.cells(), vec![(7, 2)]);
        hour.absorb(agg);
    }
    assert_eq!(hour.cells(), vec![(7, 4)], "555 once, 600, 601, 602");
    assert_eq!(hour.services(), vec![(1, 60)]);
}

/// The one-pass row parser and the general one agree on every row the fast one takes, and the
/// fast one takes plain rows.
#[test]
fn the_fast_row_path_agrees_with_the_general_one() {
    let cols = Columns::from_header(HEADER.trim_end().as_bytes()).unwrap();
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces = [
        "",
        "0",
        "7",
        "123",
        "-5",
        " 9",
        "x",
        "99999999999999999999",
        "1e3",
        "2000000000000000",
    ];
    let mut taken = 0;
    for _ in 0..200_000 {
        let fields: Vec<String> = (0..(5 + next() % 4))
            .map(|_| match next() % 4 {
                0 => pieces[(next() % pieces.len() as u64) as usize].to_string(),
                _ => (next() % 1_000_000).to_string(),
            })
            .collect();
        let line = fields.join(",");
        let general = cols.parse_row(line.as_bytes());
        if let Some(fast) = cols.fast_row(line.as_bytes()) {
            assert_eq!(Ok(fast), general, "{line}");
            taken += 1;
        }
    }
    assert!(taken > 1000, "the fast path took {taken}");
    assert!(cols.fast_row(b"1,2,31619690654,100,200,1,1001").is_some());
}

/// Lines split across the reader's refills (a tiny buffer) read the same as whole ones.
#[test]
fn lines_split_across_reads_give_the_same_kpis() {
    let mut text = std::fs::read_to_string(seed("ipflow_data.ts-1626566700000.1.txt")).unwrap();
    text.push_str(&format!(
        "{}\r\n1,2,100,5,7,1,10",
        "8".repeat(MAX_LINE_BYTES + 10)
    ));
    let read_with = |capacity: usize| {
        let mut agg = Aggregate::default();
        let mut issues = Vec::new();
        let stats = agg
            .add_reader(
                BufReader::with_capacity(capacity, text.as_bytes()),
                "f",
                &mut issues,
                100,
            )
            .unwrap();
        (agg.services(), agg.cells(), stats, issues)
    };
    let whole = read_with(64 * 1024);
    assert_eq!(whole.2.rows, 11);
    assert_eq!(whole.3.len(), 1, "the overlong line: {:?}", whole.3);
    assert_eq!(whole.3[0].line, Some(12));
    for capacity in [1, 3, 7, 64, 1000] {
        assert_eq!(read_with(capacity), whole, "buffer of {capacity}");
    }
}
