use super::*;
use chrono_tz::Tz;

const SAMPLE: &str = "\u{feff}\"Title\",\"2ABT Albert Park CVC000000123456 1000Mbps\"\r
\"Vertical Label\",\"bits per second\"\r
\"Start Date\",\"2025-04-06 01:50:00\"\r
\"End Date\",\"2025-04-06 03:10:00\"\r
\"Step\",\"300\"\r
\"Total Rows\",\"4\"\r
\"Graph ID\",\"1234\"\r
\"Host ID\",\"56\"\r
\"Nth Percentile\",\"95\"\r
\"\"\r
\"Date\",\"Inbound\",\"Outbound\"\r
\"2025-01-15 10:00:00\",\"1.2345678900e+08\",\"2.5e+07\"\r
\"2025-01-15 10:05:00\",\"NaN\",\"\"\r
\"2025-01-15 10:10:00\",\"U\",\"3000\"\r
\"2025-01-15 10:15:00\",\"-0\",\"4.0E3\"\r
";

fn reader(text: &str, tz: Tz) -> ExportReader<&[u8]> {
    ExportReader::new(text.as_bytes(), tz, Limits::default()).unwrap()
}

/// (Unix time, values) per row.
type Rows = Vec<(i64, Vec<Option<f64>>)>;

fn rows(text: &str, tz: Tz) -> Result<Rows, ExportError> {
    let mut r = ExportReader::new(text.as_bytes(), tz, Limits::default())?;
    let mut out = Vec::new();
    while let Some(row) = r.next_row()? {
        out.push((row.at, row.values.to_vec()));
    }
    Ok(out)
}

#[test]
fn the_header_block_and_columns_are_read() {
    let r = reader(SAMPLE, chrono_tz::UTC);
    let h = r.header();
    assert_eq!(h.title, "2ABT Albert Park CVC000000123456 1000Mbps");
    assert_eq!(h.vertical_label.as_deref(), Some("bits per second"));
    assert_eq!(
        (h.step_secs, h.total_rows, h.graph_id, h.host_id),
        (Some(300), Some(4), Some(1234), Some(56))
    );
    assert_eq!(
        h.extra,
        vec![("Nth Percentile".to_string(), "95".to_string())]
    );
    assert_eq!(h.columns, vec!["Inbound", "Outbound"]);
    assert_eq!(
        h.column("outbound "),
        Some(1),
        "matched by name, not position"
    );
    assert_eq!(h.column("Total"), None);
}

#[test]
fn values_gaps_and_scientific_notation() {
    let got = rows(SAMPLE, chrono_tz::UTC).unwrap();
    let t0 = 1_736_935_200; // 2025-01-15 10:00:00 UTC
    assert_eq!(
        got,
        vec![
            (t0, vec![Some(123_456_789.0), Some(25_000_000.0)]),
            (t0 + 300, vec![None, None]),
            (t0 + 600, vec![None, Some(3000.0)]),
            (t0 + 900, vec![Some(-0.0), Some(4000.0)]),
        ]
    );
}

#[test]
fn dates_are_server_local_time() {
    // Sydney is UTC+11 in January (daylight saving).
    let got = rows(SAMPLE, chrono_tz::Australia::Sydney).unwrap();
    assert_eq!(got[0].0, 1_736_935_200 - 11 * 3600);
}

#[test]
fn the_repeated_hour_when_clocks_go_back_stays_in_order() {
    // Sydney leaves daylight saving on 2025-04-06 at 03:00 local: 02:00-02:59 happens twice.
    let mut text = String::from("\"Title\",\"x\"\n\"\"\n\"Date\",\"Inbound\"\n");
    for (h, m) in [
        (1, 55),
        (2, 0),
        (2, 30),
        (2, 55),
        (2, 0),
        (2, 30),
        (2, 55),
        (3, 0),
    ] {
        text.push_str(&format!("\"2025-04-06 {h:02}:{m:02}:00\",\"1\"\n"));
    }
    let got = rows(&text, chrono_tz::Australia::Sydney).unwrap();
    let times: Vec<i64> = got.iter().map(|r| r.0).collect();
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    assert_eq!(
        times[4] - times[3],
        5 * 60,
        "02:55 AEDT to 02:00 AEST is 5 minutes"
    );
}

#[test]
fn old_cacti_keys_with_colons_and_no_bom() {
    let text = "\"Title:\",\"Old style\"\n\"Step:\",\"60\"\n\"\"\n\"Date\",\"in\",\"out\"\n\"2025-01-15 10:00:00\",\"1\",\"2\"\n";
    let mut r = reader(text, chrono_tz::UTC);
    assert_eq!(r.header().title, "Old style");
    assert_eq!(r.header().step_secs, Some(60));
    assert_eq!(
        r.next_row().unwrap().unwrap().values,
        &[Some(1.0), Some(2.0)]
    );
    assert!(r.next_row().unwrap().is_none());
}

#[test]
fn malformed_input_names_the_line_and_column() {
    let bad_value = "\"Title\",\"x\"\n\"\"\n\"Date\",\"Inbound\",\"Outbound\"\n\"2025-01-15 10:00:00\",\"1\",\"abc\"\n";
    let err = rows(bad_value, chrono_tz::UTC).unwrap_err().to_string();
    assert_eq!(
        err,
        "line 4: column 3 (\"Outbound\"): \"abc\" is not a number"
    );

    let bad_date = "\"\"\n\"Date\",\"Inbound\"\n\"2025-13-15 10:00:00\",\"1\"\n";
    let err = rows(bad_date, chrono_tz::UTC).unwrap_err().to_string();
    assert!(err.starts_with("line 3: column 1 (Date)"), "{err}");

    let short = "\"\"\n\"Date\",\"Inbound\",\"Outbound\"\n\"2025-01-15 10:00:00\",\"1\"\n";
    assert!(rows(short, chrono_tz::UTC)
        .unwrap_err()
        .to_string()
        .contains("line 3"));

    let long = "\"\"\n\"Date\",\"Inbound\"\n\"2025-01-15 10:00:00\",\"1\",\"2\"\n";
    assert!(rows(long, chrono_tz::UTC)
        .unwrap_err()
        .to_string()
        .contains("more values"));

    let no_columns = "\"Title\",\"x\"\n\"\"\n";
    assert!(ExportReader::new(no_columns.as_bytes(), chrono_tz::UTC, Limits::default()).is_err());

    let bad_step = "\"Step\",\"five\"\n\"\"\n\"Date\",\"in\"\n";
    let err = ExportReader::new(bad_step.as_bytes(), chrono_tz::UTC, Limits::default())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "line 1: Step: \"five\" is not a whole number"
    );

    for inf in ["inf", "1e999"] {
        let text = format!("\"\"\n\"Date\",\"in\"\n\"2025-01-15 10:00:00\",\"{inf}\"\n");
        assert!(rows(&text, chrono_tz::UTC).is_err(), "{inf}");
    }
}

#[test]
fn limits_bound_lines_columns_and_rows() {
    let limits = Limits {
        max_line_bytes: 64,
        max_columns: 2,
        max_header_lines: 4,
        max_rows: 1,
    };
    let long_line = format!("\"Title\",\"{}\"\n", "x".repeat(100));
    let err = ExportReader::new(long_line.as_bytes(), chrono_tz::UTC, limits)
        .err()
        .unwrap();
    assert!(err.to_string().contains("longer than 64 bytes"), "{err}");

    let wide = "\"\"\n\"Date\",\"a\",\"b\",\"c\"\n";
    assert!(ExportReader::new(wide.as_bytes(), chrono_tz::UTC, limits).is_err());

    let headerless = "\"a\",\"1\"\n\"b\",\"2\"\n\"c\",\"3\"\n\"d\",\"4\"\n\"e\",\"5\"\n";
    let err = ExportReader::new(headerless.as_bytes(), chrono_tz::UTC, limits)
        .err()
        .unwrap();
    assert!(err.to_string().contains("first 4 lines"), "{err}");

    let two_rows =
        "\"\"\n\"Date\",\"a\"\n\"2025-01-15 10:00:00\",\"1\"\n\"2025-01-15 10:05:00\",\"1\"\n";
    let mut r = ExportReader::new(two_rows.as_bytes(), chrono_tz::UTC, limits).unwrap();
    assert!(r.next_row().unwrap().is_some());
    assert!(r
        .next_row()
        .unwrap_err()
        .to_string()
        .contains("more than 1 rows"));
}

#[test]
fn unquoted_fields_and_trailing_empty_values() {
    let text = "\"\"\nDate,Inbound,Outbound\n2025-01-15 10:00:00,5,\n";
    let got = rows(text, chrono_tz::UTC).unwrap();
    assert_eq!(got[0].1, vec![Some(5.0), None]);
}
