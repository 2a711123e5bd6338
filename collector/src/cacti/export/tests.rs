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

#[test]
fn a_half_hour_clock_change_inside_an_hour_is_followed() {
    // Lord Howe Island moves its clocks back 30 minutes at 02:00 local (to 01:30) on the first
    // Sunday of April: 01:30-01:59 happens twice, in two offsets (+11 then +10:30).
    let text = "\"Title\",\"t\"\n\"\"\n\"Date\",\"Inbound\"\n\
        \"2025-04-06 01:00:00\",\"1\"\n\"2025-04-06 01:30:00\",\"2\"\n\"2025-04-06 01:45:00\",\"3\"\n\
        \"2025-04-06 01:30:00\",\"4\"\n\"2025-04-06 01:45:00\",\"5\"\n\"2025-04-06 02:00:00\",\"6\"\n";
    let rows = rows(text, chrono_tz::Australia::Lord_Howe).unwrap();
    let times: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let steps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(steps, vec![1800, 900, 900, 900, 900], "{times:?}");
}

#[test]
fn rows_within_one_hour_reuse_the_zone_lookup_and_still_check_the_time() {
    let text = "\"Title\",\"t\"\n\"\"\n\"Date\",\"Inbound\"\n\
        \"2025-01-15 10:00:00\",\"1\"\n\"2025-01-15 10:05:00\",\"2\"\n\"2025-01-15 10:65:00\",\"3\"\n";
    let err = rows(text, chrono_tz::Australia::Sydney)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 6") && err.contains("10:65:00"), "{err}");
}

#[test]
fn the_fast_number_path_agrees_with_the_standard_parser() {
    use super::fast_number;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut checked = 0;
    for _ in 0..200_000 {
        let r = next();
        let value = f64::from_bits(r).abs();
        if !value.is_finite() {
            continue;
        }
        let precision = (next() % 17) as usize;
        for text in [
            format!("{value:.precision$e}"),
            format!("{:.precision$e}", (r % 100_000_000_000) as f64),
            format!("{}", (r % 1_000_000_000) as f64 / 1000.0),
            format!("-{:.10e}", (r % 10_000_000_000_000) as f64),
        ] {
            let expected: f64 = text.parse().unwrap();
            if let Some(fast) = fast_number(text.as_bytes()) {
                assert_eq!(fast.to_bits(), expected.to_bits(), "{text}");
                checked += 1;
            }
        }
    }
    assert!(
        checked > 300_000,
        "the fast path took only {checked} values"
    );
    for text in [
        "",
        ".",
        "e5",
        "1e",
        "1e+",
        "1.2.3",
        "--1",
        "1e1234",
        "0x10",
        "1_000",
        "9007199254740993",
    ] {
        assert!(
            fast_number(text.as_bytes()).is_none_or(|v| Some(v) == text.parse().ok()),
            "{text}"
        );
    }
    assert_eq!(fast_number(b"1.2000000000e+09"), Some(1.2e9));
    assert_eq!(fast_number(b"-0"), Some(-0.0));
}

/// The in-place fast path and the general path (forced here by a buffer too small to hold a
/// line) read the same rows the same way, values bit for bit.
#[test]
fn the_fast_and_general_row_paths_agree() {
    let mut text =
        String::from("\u{feff}\"Title\",\"t\"\r\n\"\"\r\n\"Date\",\"Inbound\",\"Outbound\"\r\n");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..5000u64 {
        let at = 1_735_689_600 + 300 * i as i64;
        let date = chrono::DateTime::from_timestamp(at, 0)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S");
        let r = next();
        let value = |k: u64| match (r >> k) % 11 {
            0 => "NaN".to_string(),
            1 => "U".to_string(),
            2 => String::new(),
            3 => format!("{}", (r % 100_000) as f64 / 7.0),
            4 => format!("-{:.3e}", (r % 1_000_000) as f64),
            5 => format!("{:.10E}", f64::from_bits(r >> 2)),
            6 => format!("{}", r % 1000),
            _ => format!("{:.10e}", (r % 10_000_000_000) as f64 * 1.37),
        };
        let ending = if i % 7 == 0 { "\n" } else { "\r\n" };
        text.push_str(&format!(
            "\"{date}\",\"{}\",\"{}\"{ending}",
            value(3),
            value(9)
        ));
    }
    let read = |capacity: usize| {
        let reader = std::io::BufReader::with_capacity(capacity, text.as_bytes());
        let mut r =
            ExportReader::new(reader, chrono_tz::Australia::Sydney, Limits::default()).unwrap();
        let mut out = Vec::new();
        while let Some(row) = r.next_row().unwrap() {
            out.push((
                row.at,
                row.values
                    .iter()
                    .map(|v| v.map(f64::to_bits))
                    .collect::<Vec<_>>(),
            ));
        }
        out
    };
    let fast = read(64 * 1024);
    let general = read(16);
    assert_eq!(fast.len(), 5000);
    assert_eq!(fast, general);
}

#[test]
fn eight_digits_at_a_time() {
    use super::eight_digits;
    let read = |s: &[u8; 8]| eight_digits(u64::from_le_bytes(*s));
    assert_eq!(read(b"12345678"), Some(12_345_678));
    assert_eq!(read(b"00000000"), Some(0));
    assert_eq!(read(b"99999999"), Some(99_999_999));
    for bad in [b"1234567a", b"/2345678", b"12:45678", b"1234 678"] {
        assert_eq!(read(bad), None, "{}", String::from_utf8_lossy(bad));
    }
    let mut seed = 7u64;
    for _ in 0..100_000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = seed % 100_000_000;
        let text = format!("{n:08}");
        assert_eq!(
            eight_digits(u64::from_le_bytes(text.as_bytes().try_into().unwrap())),
            Some(n)
        );
        let mut bytes: [u8; 8] = text.as_bytes().try_into().unwrap();
        bytes[(seed >> 40) as usize % 8] = (seed >> 48) as u8;
        let expected = std::str::from_utf8(&bytes)
            .ok()
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .map(|t| t.parse().unwrap());
        assert_eq!(
            eight_digits(u64::from_le_bytes(bytes)),
            expected,
            "{bytes:?}"
        );
    }
}

/// A whole day in five-minute steps, as Cacti writes it on the day clocks go forward (the
/// hour from 02:00 does not exist in Sydney on 2025-10-05) and on an ordinary day: UTC time
/// advances by exactly one step per row either way, so no day or hour is cached wrongly.
#[test]
fn days_with_and_without_a_clock_change_step_evenly() {
    for day in ["2025-10-05", "2025-10-06"] {
        let mut text = String::from("\"Title\",\"t\"\n\"\"\n\"Date\",\"Inbound\"\n");
        for minute in (0..24 * 60).step_by(5) {
            let (h, m) = (minute / 60, minute % 60);
            if day == "2025-10-05" && h == 2 {
                continue;
            }
            text.push_str(&format!(
                "\"{day} {h:02}:{m:02}:00\",\"1.0000000000e+00\"\n"
            ));
        }
        let rows = rows(&text, chrono_tz::Australia::Sydney).unwrap();
        assert!(rows.len() >= 276, "{day}: {}", rows.len());
        for pair in rows.windows(2) {
            assert_eq!(pair[1].0 - pair[0].0, 300, "{day}");
        }
    }
}
