//! The plan model: the shipped example, errors that name their field, who runs what, diffs.

use netwarden_plan::*;

const EXAMPLE: &str = include_str!("../../deploy/examples/plan.yaml");

fn example() -> Plan {
    from_yaml(EXAMPLE).expect("the shipped example parses")
}

fn errors_of(yaml: &str) -> Vec<String> {
    let plan = from_yaml(yaml).expect("parses");
    match validate(&plan) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn has(errors: &[String], prefix: &str) -> bool {
    errors.iter().any(|e| e.starts_with(prefix))
}

#[test]
fn the_shipped_example_is_valid_and_round_trips_through_yaml_and_json() {
    let plan = example();
    validate(&plan).expect("the example validates");
    assert_eq!(plan.targets.len(), 5);
    assert_eq!(from_yaml(&to_yaml(&plan)).unwrap(), plan);
    let json = serde_json::to_string(&plan).unwrap();
    assert_eq!(from_json(&json).unwrap(), plan);
}

#[test]
fn an_empty_file_is_an_empty_plan() {
    assert_eq!(from_yaml("").unwrap(), Plan::default());
    assert_eq!(from_yaml("# nothing yet\n").unwrap(), Plan::default());
    validate(&Plan::default()).unwrap();
}

#[test]
fn windows_line_endings_tabs_in_comments_and_quoted_numbers_are_read() {
    let yaml = "sites:\r\n  - name: \"syd\"\t# the POP\r\ntargets:\r\n  - name: '1'\r\n    address: \"10.0.0.1\"\r\n    site: syd\r\n";
    let plan = from_yaml(yaml).unwrap();
    validate(&plan).unwrap();
    assert_eq!(plan.targets[0].name, "1");
}

#[test]
fn a_misspelt_field_is_named_with_its_path() {
    let err = from_yaml("targets:\n  - name: a\n    adress: 10.0.0.1\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("targets[0]"), "{err}");
    assert!(err.contains("adress"), "{err}");
    let err = from_yaml("checks:\n  - name: x\n    count: many\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("checks[0].count"), "{err}");
}

#[test]
fn every_error_names_its_field() {
    let errors = errors_of(
        r#"
sites: [{name: syd}, {name: syd}]
agents: [{name: a1, site: mel}]
checks:
  - {name: slow, count: 20, interval_secs: 10, ping_interval_ms: 1000}
  - {name: bad, count: 0, timeout_ms: 100, min_timeout_ms: 500, degraded_loss_pct: 150}
targets:
  - {name: t1, address: 10.0.0.300, site: syd}
  - {name: t2, address: 10.0.0.0/8, site: syd}
  - {name: t3, address: 10.0.0.1, site: syd, checks: [fastest]}
  - {name: t4, address: 10.0.0.2}
  - {name: t1, address: 10.0.0.3, site: syd}
  - {name: " t6", address: "-bad-.example", site: syd, labels: {"9lives": x, ok_key: "a\u0007"}}
discovery:
  - {name: d1, site: syd, cidrs: [host.example], interval_secs: 5}
  - {name: d2, site: syd, cidrs: []}
speedtests:
  - {name: s1, url: "ftp://x", site: syd, interval_secs: 5, download_bytes: 0, upload_bytes: 0}
"#,
    );
    for field in [
        "sites[1].name",
        "agents[0].site",
        "checks[0].interval_secs",
        "checks[1].count",
        "checks[1].min_timeout_ms",
        "checks[1].degraded_loss_pct",
        "targets[0].address",
        "targets[1].address",
        "targets[2].checks[0]",
        "targets[3].site",
        "targets[4].name",
        "targets[5].name",
        "targets[5].address",
        "targets[5].labels.9lives",
        "targets[5].labels.ok_key",
        "discovery[0].cidrs[0]",
        "discovery[0].interval_secs",
        "discovery[1].cidrs",
        "speedtests[0].url",
        "speedtests[0].interval_secs",
        "speedtests[0].download_bytes",
    ] {
        assert!(
            has(&errors, &format!("{field}: ")),
            "no error for {field}: {errors:#?}"
        );
    }
    // The slow check's message says why, with the figures.
    assert!(
        errors.iter().any(|e| e.contains("takes 21.0 s")),
        "{errors:#?}"
    );
}

#[test]
fn a_large_prefix_needs_force() {
    let base = "sites: [{name: s}]\ntargets:\n  - {name: big, address: 10.0.0.0/15, site: s";
    assert!(has(
        &errors_of(&format!("{base}}}\n")),
        "targets[0].address: "
    ));
    assert!(errors_of(&format!("{base}, force: true}}\n")).is_empty());
}

#[test]
fn addresses_people_write_are_told_apart() {
    use std::net::IpAddr;
    let ip: IpAddr = "10.1.2.3".parse().unwrap();
    assert_eq!(parse_address("10.1.2.3", false), Ok(TargetAddress::Ip(ip)));
    assert!(matches!(
        parse_address("10.1.2.7/29", false),
        Ok(TargetAddress::Prefix(p)) if p.to_string() == "10.1.2.0/29"
    ));
    assert!(matches!(
        parse_address("fe80::1", false),
        Ok(TargetAddress::Ip(_))
    ));
    assert_eq!(
        parse_address("core_rtr-1.syd.example.net.", false),
        Ok(TargetAddress::Host("core_rtr-1.syd.example.net".into()))
    );
    for bad in [
        "10.0.0",
        "",
        " 10.0.0.1",
        "a..b",
        "host name",
        "10.0.0.1/33",
        "2001:db8::/64",
    ] {
        assert!(parse_address(bad, false).is_err(), "{bad:?} accepted");
    }
    assert!(parse_address("2001:db8::/64", true).is_ok());
}

#[test]
fn each_agent_gets_its_sites_its_labels_and_its_name() {
    let plan = example();
    let resolver = Resolver::new(std::sync::Arc::new(plan), 7);

    let pop = resolver.resolve("agent-syd-1");
    assert_eq!(pop.version, 7);
    fn names(group: &ProbeGroup) -> Vec<String> {
        group.targets.iter().map(|t| t.name.clone()).collect()
    }
    let by_check = |plan: &AgentPlan, check: &str| {
        plan.probes
            .iter()
            .find(|g| g.check.name == check)
            .map(names)
            .unwrap_or_default()
    };
    // Its site's target with the fast check; the resolver by its role label; the v6 upstream
    // by name, under both checks.
    assert_eq!(by_check(&pop, "fast"), ["syd-core-1", "upstream-v6"]);
    assert_eq!(by_check(&pop, "default"), ["resolver", "upstream-v6"]);
    assert_eq!(
        pop.probes
            .iter()
            .find(|g| g.check.name == "fast")
            .unwrap()
            .check
            .count,
        10
    );
    assert!(pop.discovery.is_empty() && pop.speedtests.is_empty());

    let branch = resolver.resolve("agent-parra");
    assert_eq!(
        by_check(&branch, "default"),
        ["acme-cpe", "acme-lan", "upstream-v6"]
    );
    let default = &branch
        .probes
        .iter()
        .find(|g| g.check.name == "default")
        .unwrap()
        .check;
    assert_eq!((default.count, default.interval_secs), (20, 300));
    assert_eq!(branch.discovery[0].name, "parramatta-lan");
    assert_eq!(
        branch.speedtests[0].url,
        "https://collector.example.net:8080"
    );

    // An agent the plan does not list runs nothing; naming it in run_on gives it work.
    assert_eq!(resolver.resolve("stranger").target_count(), 0);
    let mut plan = example();
    plan.targets[3].run_on.agents.push("stranger".into());
    plan.targets[3].run_on.agent_labels.clear();
    let stranger = Resolver::new(std::sync::Arc::new(plan), 8).resolve("stranger");
    assert_eq!(stranger.target_count(), 1);
    assert!(!stranger.same_work(&resolver.resolve("stranger")));
}

#[test]
fn an_address_two_targets_name_is_probed_once_per_check() {
    let plan = from_yaml(
        "sites: [{name: s}]\nagents: [{name: a, site: s}]\ntargets:\n  - {name: x, address: 10.0.0.1, site: s}\n  - {name: y, address: 10.0.0.1, site: s}\n",
    )
    .unwrap();
    validate(&plan).unwrap();
    assert_eq!(
        Resolver::new(std::sync::Arc::new(plan), 1)
            .resolve("a")
            .target_count(),
        1
    );
}

#[test]
fn site_labels_reach_agents_and_the_agents_own_win() {
    let plan = from_yaml(
        r#"
sites: [{name: s, labels: {pop: SYD, tier: "1"}}]
agents: [{name: a, site: s, labels: {tier: "2"}}]
targets:
  - {name: by-pop, address: 10.0.0.1, run_on: {agent_labels: {pop: SYD}}}
  - {name: by-tier-1, address: 10.0.0.2, run_on: {agent_labels: {tier: "1"}}}
  - {name: by-tier-2, address: 10.0.0.3, run_on: {agent_labels: {tier: "2"}, site: s}}
"#,
    )
    .unwrap();
    validate(&plan).unwrap();
    let got = Resolver::new(std::sync::Arc::new(plan), 1).resolve("a");
    let names: Vec<_> = got.probes[0]
        .targets
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["by-pop", "by-tier-2"]);
}

#[test]
fn a_diff_names_each_entry_added_removed_or_changed() {
    let old = example();
    let mut new = example();
    new.targets.retain(|t| t.name != "acme-lan");
    new.targets[0]
        .labels
        .insert("circuit".into(), "AVC1".into());
    new.targets.push(Target {
        name: "new-one".into(),
        address: "10.9.9.9".into(),
        site: Some("syd-pop".into()),
        ..Target::default()
    });
    new.checks[0].count = 5;
    let changes = diff(&old, &new);
    let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "~ check fast",
            "- target acme-lan",
            "~ target syd-core-1",
            "+ target new-one"
        ]
    );
    assert_eq!(
        summary(&changes),
        "~1 check, -1 target, ~1 target, +1 target"
    );
    assert_eq!(summary(&diff(&old, &old)), "no change");
}

#[test]
fn what_one_plan_may_ask_of_agents_is_bounded() {
    // Forced /16s are each allowed, but not 65 of them together.
    let targets: String = (0..65)
        .map(|i| format!("  - {{name: n{i}, address: 10.{i}.0.0/16, site: s, force: true}}\n"))
        .collect();
    let errors = errors_of(&format!("sites: [{{name: s}}]\ntargets:\n{targets}"));
    assert!(has(&errors, "targets: "), "{errors:#?}");
    let long = format!("http://x.example/{}", "a".repeat(2100));
    let errors = errors_of(&format!(
        "sites: [{{name: s}}]\nspeedtests:\n  - {{name: st, url: \"{long}\", site: s, interval_secs: 99999999999}}\n"
    ));
    assert!(has(&errors, "speedtests[0].url: "), "{errors:#?}");
    assert!(has(&errors, "speedtests[0].interval_secs: "), "{errors:#?}");
    // Any server: `url` may be empty when each direction tested has its own URL, and each URL
    // is checked where it is.
    let errors = errors_of(
        "sites: [{name: s}]\nspeedtests:\n  - {name: st, site: s, download_url: http://m.example/f, upload_url: https://u.example/sink}\n",
    );
    assert!(errors.is_empty(), "{errors:#?}");
    let errors = errors_of(
        "sites: [{name: s}]\nspeedtests:\n  - {name: st, site: s, download_url: http://m.example/f}\n",
    );
    assert!(
        has(&errors, "speedtests[0].url: "),
        "the upload has bytes and no URL: {errors:#?}"
    );
    let errors = errors_of(
        "sites: [{name: s}]\nspeedtests:\n  - {name: st, site: s, upload_bytes: 0, download_url: 'ftp://m.example/f'}\n",
    );
    assert!(has(&errors, "speedtests[0].download_url: "), "{errors:#?}");
    assert!(!has(&errors, "speedtests[0].url: "), "{errors:#?}");
    // Settings that would overflow a round's length are refused, not a panic.
    let errors = errors_of("checks:\n  - {name: c, count: 4294967295, ping_interval_ms: 18446744073709551615, timeout_ms: 18446744073709551615}\n");
    assert!(has(&errors, "checks[0].count: "), "{errors:#?}");
}

#[test]
fn an_enrolment_policy_is_checked_and_reaches_the_sweeping_agent_with_its_check() {
    let errors = errors_of(
        r#"
sites: [{name: s}]
discovery:
  - {name: a, site: s, cidrs: [10.0.0.0/24], enrol: {mode: matching}}
  - {name: b, site: s, cidrs: [10.0.1.0/24], enrol: {vendors: [Cisco]}}
  - {name: c, site: s, cidrs: [10.0.2.0/24], enrol: {mode: all, check: nope, ports: [0], addresses: [x]}, ignore: [10.0.2.300]}
"#,
    );
    for field in [
        "discovery[0].enrol.mode: ",
        "discovery[1].enrol.mode: ",
        "discovery[2].enrol.check: ",
        "discovery[2].enrol.ports[0]: ",
        "discovery[2].enrol.addresses[0]: ",
        "discovery[2].ignore[0]: ",
    ] {
        assert!(has(&errors, field), "no error for {field}: {errors:#?}");
    }

    let plan = example();
    let branch = Resolver::new(std::sync::Arc::new(plan), 1).resolve("agent-parra");
    let site = &branch.discovery[0];
    assert_eq!(site.ignore, ["192.168.10.128/25"]);
    let enrol = site.enrol.as_ref().expect("the example enrols");
    assert!(!enrol.all);
    assert_eq!(enrol.ports, [22]);
    // The named check's settings travel with the policy.
    assert_eq!((enrol.check.name.as_str(), enrol.check.count), ("fast", 10));
}

#[test]
fn a_tcp_check_is_checked_and_reaches_its_agents_as_port_checks() {
    let resolver = Resolver::new(std::sync::Arc::new(example()), 3);
    let pop = resolver.resolve("agent-syd-1");
    assert!(
        pop.probes.iter().all(|g| g.check.kind == CheckKind::Icmp),
        "a tcp check is no ICMP round"
    );
    let [group] = &pop.ports[..] else {
        panic!("one port group: {:?}", pop.ports);
    };
    assert_eq!(group.check.name, "mgmt-ports");
    assert_eq!(group.check.ports, [22, 443]);
    assert_eq!(group.targets[0].name, "syd-core-1");
    assert_eq!(pop.target_count(), 5, "4 probed, 1 port-checked");
    // The same target without the tcp check: a change the agent is sent.
    let mut plan = example();
    plan.targets[0].checks.retain(|c| c != "mgmt-ports");
    let without = Resolver::new(std::sync::Arc::new(plan), 4).resolve("agent-syd-1");
    assert!(without.ports.is_empty());
    assert!(!without.same_work(&pop));

    let base = "sites: [{name: s}]\nagents: [{name: a, site: s}]\n";
    let errors = errors_of(&format!(
        "{base}checks:\n  - {{name: t, kind: tcp, ports: [], interval_secs: 5, timeout_ms: 9000}}\n"
    ));
    assert!(
        has(&errors, "checks[0].ports: a tcp check needs 1 to 32 ports"),
        "{errors:?}"
    );
    assert!(
        has(
            &errors,
            "checks[0].timeout_ms: must be between 1 and 60000, and no longer than the interval"
        ),
        "{errors:?}"
    );
    let errors = errors_of(&format!(
        "{base}checks:\n  - {{name: t, kind: tcp, ports: [22, 0, 22]}}\n"
    ));
    assert!(
        has(&errors, "checks[0].ports[1]: must be between 1 and 65535"),
        "{errors:?}"
    );
    assert!(
        has(&errors, "checks[0].ports[2]: 22 is listed twice"),
        "{errors:?}"
    );
    let errors = errors_of(&format!("{base}checks:\n  - {{name: i, ports: [22]}}\n"));
    assert!(
        has(&errors, "checks[0].ports: ports are for tcp checks"),
        "{errors:?}"
    );
    let errors = errors_of(&format!(
        "{base}checks:\n  - {{name: t, kind: tcp, ports: [22]}}\ndiscovery:\n  - {{name: lan, site: s, cidrs: [10.0.0.0/24], enrol: {{mode: all, check: t}}}}\n"
    ));
    assert!(
        has(&errors, "discovery[0].enrol.check: \"t\" is a tcp check"),
        "{errors:?}"
    );
    let unknown = from_yaml(&format!(
        "{base}checks:\n  - {{name: t, kind: udp, ports: [53]}}\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("checks[0].kind"), "{unknown}");
    // The default check redefined as tcp cannot be an enrolment's check either.
    let errors = errors_of(&format!(
        "{base}checks:\n  - {{name: default, kind: tcp, ports: [22]}}\ndiscovery:\n  - {{name: lan, site: s, cidrs: [10.0.0.0/24], enrol: {{mode: all}}}}\n"
    ));
    assert!(
        has(
            &errors,
            "discovery[0].enrol.check: \"default\" is a tcp check"
        ),
        "{errors:?}"
    );
    // One port in two tcp checks of a target; a round too large.
    let errors = errors_of(&format!(
        "{base}checks:\n  - {{name: a, kind: tcp, ports: [22, 80]}}\n  - {{name: b, kind: tcp, ports: [443, 22]}}\ntargets:\n  - {{name: t, address: 10.0.0.1, site: s, checks: [a, b]}}\n  - {{name: big, address: 10.1.0.0/16, site: s, checks: [b]}}\n"
    ));
    assert!(
        has(
            &errors,
            "targets[0].checks: tcp checks \"a\" and \"b\" both check port 22"
        ),
        "{errors:?}"
    );
    assert!(
        has(
            &errors,
            "targets[1].checks: its tcp checks make 131072 connections a round, more than 65536"
        ),
        "{errors:?}"
    );
    // ICMP's own settings do not bind a tcp check (its count of pings means nothing).
    assert_eq!(
        errors_of(&format!(
            "{base}checks:\n  - {{name: t, kind: tcp, ports: [443], count: 0, interval_secs: 30, timeout_ms: 2000}}\n"
        )),
        Vec::<String>::new()
    );
}
