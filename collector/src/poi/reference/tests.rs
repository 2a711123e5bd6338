use super::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/resources")
        .join(name)
}

#[test]
fn the_reference_sheet_and_columns_are_found_by_name() {
    let refs = load(&fixture("poi-reference.xlsx"), &ReferenceLayout::default()).unwrap();
    assert_eq!(refs.len(), 7);
    let mel = &refs["3MEL"];
    assert_eq!(mel.name.as_deref(), Some("Melbourne"));
    assert_eq!(mel.state.as_deref(), Some("VIC"));
    assert_eq!(mel.provider.as_deref(), Some("ExampleNet"));
    assert_eq!(mel.notes.as_deref(), Some("busy at night"));
    assert_eq!(mel.capacity_bps, Some(10_000_000_000), "10G");
    assert!((mel.latitude.unwrap() + 37.8136).abs() < 1e-9);
    assert_eq!(
        refs["4BRI"].capacity_bps,
        Some(2_500_000_000),
        "a number is bits/s"
    );
    assert_eq!(refs["6PER"].capacity_bps, Some(1_000_000_000), "1000 Mbps");
    assert_eq!(refs["2ABT"].capacity_bps, None);
    let prx = &refs["4PRX"];
    assert_eq!(
        (prx.latitude, prx.longitude),
        (None, None),
        "empty cells are absent, not zero"
    );
}

#[test]
fn a_bad_cell_is_named_by_file_sheet_row_and_column() {
    let err = load(
        &fixture("poi-reference-bad.xlsx"),
        &ReferenceLayout::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.ends_with("poi-reference-bad.xlsx, sheet \"POIs\", row 4, column F (Latitude): \"north-ish\" is not a number"),
        "{err}"
    );
}

#[test]
fn a_state_that_is_not_one_is_named_by_its_cell() {
    let err = load(
        &fixture("poi-reference-bad-state.xlsx"),
        &ReferenceLayout::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.ends_with("poi-reference-bad-state.xlsx, sheet \"POIs\", row 5, column D (State): \"Narnia\" is not an Australian state (NT, NSW, ACT, VIC, QLD, SA, WA or TAS)"),
        "{err}"
    );
}

#[test]
fn a_missing_sheet_or_column_says_what_there_is() {
    let layout = ReferenceLayout {
        sheet: Some("Sites".into()),
        ..ReferenceLayout::default()
    };
    let err = load(&fixture("poi-reference.xlsx"), &layout)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no sheet \"Sites\" (sheets: Read me, POIs)"),
        "{err}"
    );
    let layout = ReferenceLayout {
        code: "Site Code".into(),
        ..ReferenceLayout::default()
    };
    let err = load(&fixture("poi-reference.xlsx"), &layout)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no sheet has a \"Site Code\" column"), "{err}");
    let err = load(&fixture("missing.xlsx"), &ReferenceLayout::default()).unwrap_err();
    assert!(err.to_string().contains("missing.xlsx"), "{err}");
}

#[test]
fn the_file_is_reloaded_when_it_changes_and_a_bad_version_keeps_the_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reference.xlsx");
    std::fs::copy(fixture("poi-reference.xlsx"), &path).unwrap();
    let mut file = ReferenceFile::open(path.clone(), ReferenceLayout::default()).unwrap();
    assert_eq!(file.len(), 7);
    assert!(!file.refresh().unwrap(), "unchanged: not reloaded");
    std::fs::copy(fixture("poi-reference-v2.xlsx"), &path).unwrap();
    assert!(file.refresh().unwrap());
    assert_eq!(
        file.get("2syd").and_then(|p| p.name.as_deref()),
        Some("Sydney")
    );
    std::fs::copy(fixture("poi-reference-bad.xlsx"), &path).unwrap();
    assert!(file.refresh().is_err());
    assert_eq!(file.len(), 8, "the last good data is kept");
}

#[test]
fn column_letters() {
    assert_eq!(column_letter(0), "A");
    assert_eq!(column_letter(5), "F");
    assert_eq!(column_letter(25), "Z");
    assert_eq!(column_letter(26), "AA");
    assert_eq!(column_letter(27 * 26), "AAA");
}
