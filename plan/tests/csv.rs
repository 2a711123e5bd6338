//! Inventory CSV import against files NetBox itself wrote (tests/corpus/netbox), plus the
//! messes people add (a byte-order mark, `;`, bad rows), and our own export read back.

use netwarden_plan::csv::{merge_targets, targets_from_csv, targets_to_csv, CsvError, CsvOptions};
use netwarden_plan::{validate, Plan, Target};

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/corpus/netbox/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn read(name: &str, options: &CsvOptions) -> netwarden_plan::csv::CsvImport {
    targets_from_csv(corpus(name).as_slice(), name, options).unwrap()
}

fn pairs(targets: &[Target]) -> Vec<(String, String)> {
    targets
        .iter()
        .map(|t| (t.name.clone(), t.address.clone()))
        .collect()
}

#[test]
fn a_netbox_device_export_gives_its_active_devices_with_their_primary_address() {
    let got = read("devices_current_view.csv", &CsvOptions::default());
    assert_eq!(
        pairs(&got.targets),
        [
            ("Device 1".to_string(), "2001:db8::1".to_string()),
            ("Device 4".to_string(), "2001:db8::4".to_string())
        ]
    );
    assert_eq!(got.targets[0].site.as_deref(), Some("Site 1"));
    assert_eq!(got.targets[0].labels["tenant"], "Tenant 1");
    assert_eq!(got.targets[0].labels["role"], "Device Role 1");
    // Planned, decommissioning and offline devices, and active ones without an address.
    assert_eq!(got.skipped.len(), 5, "{:#?}", got.skipped);
    assert!(got
        .skipped
        .iter()
        .any(|s| s.contains("Device 2") && s.contains("Planned")));
    assert!(got
        .skipped
        .iter()
        .any(|s| s.contains("Device 5") && s.contains("no address")));

    let all = read(
        "devices_current_view.csv",
        &CsvOptions {
            all_statuses: true,
            checks: vec!["fast".into()],
            site: None,
        },
    );
    assert_eq!(all.targets.len(), 3);
    assert_eq!(all.targets[1].address, "198.51.100.2");
    assert_eq!(all.targets[1].checks, ["fast"]);
}

#[test]
fn all_data_prefers_the_ipv4_address_and_semicolons_read_the_same() {
    let all = read("devices_all_data.csv", &CsvOptions::default());
    assert_eq!(all.targets[0].name, "Device 1");
    assert_eq!(all.targets[0].address, "192.0.2.1", "the host, not its /24");
    assert_eq!(all.targets[0].labels["platform"], "Platform 1");
    let semi = read(
        "devices_current_view_configured_semicolon.csv",
        &CsvOptions::default(),
    );
    let comma = read(
        "devices_current_view_configured.csv",
        &CsvOptions::default(),
    );
    assert_eq!(semi, comma);
    assert_eq!(
        pairs(&semi.targets)[0],
        ("Device 1".into(), "192.0.2.1".into())
    );
}

#[test]
fn an_ip_address_export_names_each_address_by_dns_name_or_device() {
    let got = read("ipaddresses_all_data.csv", &CsvOptions::default());
    let names: Vec<(String, String)> = pairs(&got.targets);
    assert!(names.contains(&("device1.example.com".into(), "192.0.2.1".into())));
    assert!(
        names.contains(&("Device 1 (ABCDEF)".into(), "2001:db8::1".into())),
        "{names:?}"
    );
    // FHRP virtual addresses have no device: named by their address.
    assert!(names.contains(&("192.0.2.4".into(), "192.0.2.4".into())));
    assert_eq!(got.targets.len(), 8);
    let current = read("ipaddresses_current_view.csv", &CsvOptions::default());
    assert_eq!(current.targets.len(), 8);
    let import = read(
        "ipaddresses_import__IPAddressTestCase.csv",
        &CsvOptions::default(),
    );
    assert_eq!(
        pairs(&import.targets),
        ["192.0.2.4", "192.0.2.5", "192.0.2.6"].map(|a| (a.to_string(), a.to_string()))
    );
}

#[test]
fn a_byte_order_mark_and_windows_line_ends_change_nothing() {
    let mut with_bom = "\u{feff}".as_bytes().to_vec();
    with_bom.extend(corpus("devices_current_view.csv"));
    let got = targets_from_csv(with_bom.as_slice(), "bom.csv", &CsvOptions::default()).unwrap();
    assert_eq!(
        got,
        read("devices_current_view.csv", &CsvOptions::default())
    );
}

#[test]
fn netboxs_device_import_format_has_no_address_and_says_which_columns_it_wanted() {
    let err = targets_from_csv(
        corpus("devices_import__DeviceTestCase.csv").as_slice(),
        "devices.csv",
        &CsvOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "devices.csv: line 1: no address column; expected one of address, ipv4 address"
        ),
        "{err}"
    );
}

#[test]
fn bad_rows_are_named_by_line_and_column_and_nothing_is_imported() {
    let text = "Name,Status,Site,IPv4 Address\nr1,Active,S,10.0.0.1/24\nr2,Active,S,10.0.0.300/24\nr3,Active,S,not an ip\n";
    let err = targets_from_csv(text.as_bytes(), "inv.csv", &CsvOptions::default()).unwrap_err();
    let CsvError::Rows { errors, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("line 3, column \"ipv4 address\": "),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("line 4, column \"ipv4 address\": "),
        "{errors:?}"
    );
    assert!(
        targets_from_csv(&b"\xff\xfe"[..], "x.csv", &CsvOptions::default())
            .unwrap_err()
            .to_string()
            .contains("not UTF-8")
    );
}

#[test]
fn a_device_with_two_addresses_gets_two_targets() {
    let text = "name,address\ncore,10.0.0.1\ncore,10.0.0.2\n";
    let got = targets_from_csv(text.as_bytes(), "x.csv", &CsvOptions::default()).unwrap();
    assert_eq!(
        pairs(&got.targets),
        [
            ("core".to_string(), "10.0.0.1".to_string()),
            ("core 10.0.0.2".to_string(), "10.0.0.2".to_string())
        ]
    );
    assert_eq!(got.renamed.len(), 1);
}

#[test]
fn our_export_reads_back_and_merges_into_a_valid_plan() {
    let mut plan = Plan::default();
    let imported = read("devices_all_data.csv", &CsvOptions::default());
    merge_targets(&mut plan, imported.targets);
    validate(&plan).expect("the import makes a valid plan (sites declared)");
    assert_eq!(plan.sites.len(), 1);
    let text = targets_to_csv(&plan.targets);
    let back = targets_from_csv(text.as_bytes(), "export.csv", &CsvOptions::default()).unwrap();
    assert_eq!(back.targets, plan.targets);
    // A prefix stays a prefix; the same name imported again replaces, not duplicates.
    let more = targets_from_csv(
        "name,address,site,label_circuit\nDevice 1,192.0.2.9,Site 1,AVC1\nlan,10.1.0.0/29,Branch,\n".as_bytes(),
        "more.csv",
        &CsvOptions::default(),
    )
    .unwrap();
    merge_targets(&mut plan, more.targets);
    validate(&plan).unwrap();
    let device1 = plan.targets.iter().find(|t| t.name == "Device 1").unwrap();
    assert_eq!(
        (device1.address.as_str(), device1.labels["circuit"].as_str()),
        ("192.0.2.9", "AVC1")
    );
    assert_eq!(
        plan.targets.iter().filter(|t| t.name == "Device 1").count(),
        1
    );
    assert!(plan.targets.iter().any(|t| t.address == "10.1.0.0/29"));
    assert!(plan.sites.iter().any(|s| s.name == "Branch"));
}

#[test]
fn an_ip_export_names_no_site_so_the_import_is_given_one() {
    let options = CsvOptions {
        site: Some("Site 1".into()),
        ..CsvOptions::default()
    };
    let mut plan = Plan::default();
    merge_targets(
        &mut plan,
        read("ipaddresses_all_data.csv", &options).targets,
    );
    validate(&plan).expect("every address runs on Site 1's agents");
    assert!(plan
        .targets
        .iter()
        .all(|t| t.site.as_deref() == Some("Site 1")));
    // Without one, the plan says which target runs nowhere.
    let mut bare = Plan::default();
    merge_targets(
        &mut bare,
        read("ipaddresses_all_data.csv", &CsvOptions::default()).targets,
    );
    assert!(validate(&bare)
        .unwrap_err()
        .to_string()
        .contains("targets[0].site: "));
}

#[test]
fn point_to_point_links_and_multi_line_cells_are_read_as_written() {
    let text = "name,address,comments\n\
                p2p-a,10.0.0.0/31,\"a link\nover two lines\"\n\
                p2p-b,2001:db8::/127,\n\
                lan,10.1.0.0/29,\n\
                bad,10.0.0.999/24,\n";
    let err = targets_from_csv(text.as_bytes(), "x.csv", &CsvOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("line 6, column \"address\""),
        "{err}"
    );
    let good = text.lines().take(5).collect::<Vec<_>>().join("\n");
    let got = targets_from_csv(good.as_bytes(), "x.csv", &CsvOptions::default()).unwrap();
    assert_eq!(
        got.targets
            .iter()
            .map(|t| t.address.as_str())
            .collect::<Vec<_>>(),
        ["10.0.0.0", "2001:db8::", "10.1.0.0/29"]
    );
}

#[test]
fn reimporting_keeps_what_a_csv_cannot_say() {
    let mut plan = netwarden_plan::from_yaml(
        "sites: [{name: s}]\ntargets:\n  - {name: core, address: 10.0.0.1, site: s, checks: [fast], force: false, run_on: {agents: [a1]}, labels: {pop: SYD}}\nchecks: [{name: fast, count: 5, interval_secs: 30}]\n",
    )
    .unwrap();
    let csv = targets_to_csv(&plan.targets);
    let edited = csv.replace("10.0.0.1", "10.0.0.7");
    let back = targets_from_csv(edited.as_bytes(), "t.csv", &CsvOptions::default()).unwrap();
    merge_targets(&mut plan, back.targets);
    let core = &plan.targets[0];
    assert_eq!(core.address, "10.0.0.7");
    assert_eq!(core.run_on.agents, ["a1"], "run_on kept");
    assert_eq!(core.checks, ["fast"]);
    assert_eq!(core.labels["pop"], "SYD");
    validate(&plan).unwrap();
}
