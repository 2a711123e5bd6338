use super::*;
use crate::telemetry::import::parse_csv;

fn read(text: &str, options: &CircuitImportOptions) -> Result<CircuitRows, ImportError> {
    circuits_from_rows(&parse_csv(text).unwrap(), 1, options)
}

fn good(text: &str) -> Vec<CircuitRecord> {
    let rows = read(text, &CircuitImportOptions::default()).unwrap();
    assert!(rows.refused.is_empty(), "{:?}", rows.refused);
    rows.circuits.into_iter().map(|c| c.circuit).collect()
}

#[test]
fn a_good_file_imports_every_row() {
    let text = "Circuit ID,provisioned_mbps,burst_mbps,account,pop,provisioned_at\r\n\
                CIR-1,1000,1200,ACME,\"Sydney, Pitt St\",2024-03-01\r\n\
                CIR-2,500,,,,\r\n";
    let got = good(text);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].pop.as_deref(), Some("Sydney, Pitt St"));
    assert_eq!(got[0].burst_mbps, Some(1200.0));
    assert_eq!(
        got[0].provisioned_at.unwrap().to_rfc3339(),
        "2024-03-01T00:00:00+00:00"
    );
    assert_eq!(got[1].account, None);
}

#[test]
fn every_problem_is_named_by_row_and_column_and_good_rows_still_count() {
    let text = "circuit_id,provisioned_mbps,burst_mbps,provisioned_at\n\
                CIR-1,1000,900,\n\
                ,100,,\n\
                CIR-3,lots,,\n\
                CIR-1,100,,yesterday\n\
                CIR-6,100,,\n";
    let rows = read(text, &CircuitImportOptions::default()).unwrap();
    let got: Vec<String> = rows.refused.iter().map(|e| e.to_string()).collect();
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got[0].starts_with("row 2, column burst_mbps"), "{got:?}");
    assert!(
        got[0].contains("--burst-means headroom"),
        "the other reading is named: {got:?}"
    );
    assert!(got[1].starts_with("row 3, column circuit_id"), "{got:?}");
    assert!(
        got[2].starts_with("row 4, column provisioned_mbps"),
        "{got:?}"
    );
    assert!(
        got[3].contains("row 5, column circuit_id") && got[3].contains("row 2"),
        "{got:?}"
    );
    assert!(
        got[4].starts_with("row 5, column provisioned_at"),
        "{got:?}"
    );
    assert_eq!(rows.circuits.len(), 1);
    assert_eq!(rows.circuits[0].row, 6);
    let missing = read("id,speed\n1,2\n", &CircuitImportOptions::default()).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("no circuit_id column (the file's columns: id, speed)")
            && missing.to_string().contains("--map circuit_id="),
        "{missing}"
    );
}

#[test]
fn columns_are_mapped_and_rates_may_carry_units() {
    let mut options = CircuitImportOptions::default();
    options
        .columns
        .insert("circuit_id".into(), "Service ID".into());
    options
        .columns
        .insert("provisioned_mbps".into(), "Speed".into());
    options.columns.insert("account".into(), "Customer".into());
    let rows = read(
        "Service ID,Customer,Speed\nS-1,Acme Pty Ltd,1 Gbps\nS-2,Acme Pty Ltd,250\n",
        &options,
    )
    .unwrap();
    let got: Vec<(String, f64, Option<String>)> = rows
        .circuits
        .into_iter()
        .map(|c| {
            (
                c.circuit.circuit_id,
                c.circuit.provisioned_mbps,
                c.circuit.account,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("S-1".into(), 1000.0, Some("Acme Pty Ltd".into())),
            ("S-2".into(), 250.0, Some("Acme Pty Ltd".into()))
        ]
    );
    options.columns.remove("account");
    options.columns.insert("pop".into(), "Site".into());
    let err = read("Service ID,Speed\nS-1,1\n", &options).unwrap_err();
    assert!(err.to_string().contains("--map pop=\"Site\""), "{err}");
    let mut wrong = CircuitImportOptions::default();
    wrong.columns.insert("speed".into(), "x".into());
    assert!(read("circuit_id,provisioned_mbps\n", &wrong)
        .unwrap_err()
        .to_string()
        .contains("not a column of ours"));
}

#[test]
fn burst_as_headroom_adds_to_the_provisioned_rate() {
    let options = CircuitImportOptions {
        burst_means: BurstMeans::Headroom,
        ..CircuitImportOptions::default()
    };
    let rows = read(
        "circuit_id,provisioned_mbps,burst_mbps\nA,1000,200\nB,500,0\nC,500,\nD,500,-5\n",
        &options,
    )
    .unwrap();
    let got: Vec<Option<f64>> = rows.circuits.iter().map(|c| c.circuit.burst_mbps).collect();
    assert_eq!(got, vec![Some(1200.0), None, None]);
    assert_eq!(rows.refused.len(), 1);
    assert!(rows.refused[0]
        .to_string()
        .starts_with("row 5, column burst_mbps"));
}

#[test]
fn account_ids_derive_from_names() {
    assert_eq!(account_id_for("Acme Pty. Ltd"), "acme-pty-ltd");
    assert_eq!(account_id_for("  ACME pty ltd "), "acme-pty-ltd");
    assert_eq!(account_id_for("O'Brien & Sons (Tas)"), "o-brien-sons-tas");
    assert!(crate::telemetry::sample::valid_id(&account_id_for(
        "Ünïcødé — ★"
    )));
    assert_eq!(account_id_for("★★"), account_id_for("★★"));
    assert!(account_id_for(&"x".repeat(200)).len() <= 64);
}
