//! Checks a plan as a whole before it is stored, collecting every error with the field it is
//! in (`targets[3].address: ...`), so one bulk import shows all its problems at once.

use crate::model::{Check, CheckKind, Labels, Plan, RunOn, MAX_CHECK_PORTS};

/// The most connections one target's tcp checks may make a round (a /16 on one port).
pub const MAX_PORT_CHECKS_PER_TARGET: u128 = 65_536;
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// At most this many entries in any one list: bounds what one request can make every
/// collector hold and every agent resolve.
pub const MAX_ENTRIES: usize = 200_000;
/// A prefix holding more addresses than this (a /16) needs `force`.
pub const LARGE_PREFIX: u128 = 65_536;
/// At most this many addresses in all (targets and discovery prefixes expanded, a host name
/// counting one): what an agent can be asked to hold, whatever `force` says.
pub const MAX_ADDRESSES: u128 = 4_194_304;
/// Longest speed-test URL (the wire's bound).
pub const MAX_URL: usize = 2048;
/// Errors reported, at most; the count says how many more there were.
const MAX_REPORTED: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Everything wrong with a plan, each naming its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanErrors(pub Vec<FieldError>);

impl std::fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, error) in self.0.iter().take(MAX_REPORTED).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        if self.0.len() > MAX_REPORTED {
            write!(f, "; and {} more", self.0.len() - MAX_REPORTED)?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanErrors {}

/// What a target's `address` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetAddress {
    Ip(IpAddr),
    Prefix(IpNet),
    Host(String),
}

/// Parses a target address: an IP, a CIDR prefix (at most a /16's worth unless `force`), or a
/// DNS host name.
pub fn parse_address(text: &str, force: bool) -> Result<TargetAddress, String> {
    if text != text.trim() || text.is_empty() {
        return Err(format!(
            "{text:?} must be an IP address, a CIDR prefix or a host name, without spaces"
        ));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(TargetAddress::Ip(ip));
    }
    if text.contains('/') {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("{text:?} is not a CIDR prefix (e.g. 10.0.0.0/24)"))?;
        let size = 1u128
            .checked_shl(u32::from(net.max_prefix_len() - net.prefix_len()))
            .unwrap_or(u128::MAX);
        if size > LARGE_PREFIX && !force {
            return Err(format!(
                "{text:?} holds {} addresses, more than a /16; narrow it or set force: true",
                if size == u128::MAX {
                    "2^128".to_string()
                } else {
                    size.to_string()
                }
            ));
        }
        return Ok(TargetAddress::Prefix(net.trunc()));
    }
    if is_host_name(text) {
        return Ok(TargetAddress::Host(text.trim_end_matches('.').to_string()));
    }
    Err(format!(
        "{text:?} is not an IP address, a CIDR prefix or a host name"
    ))
}

/// How many addresses a target address stands for (a host name: one).
pub fn address_count(address: &TargetAddress) -> u128 {
    match address {
        TargetAddress::Ip(_) | TargetAddress::Host(_) => 1,
        TargetAddress::Prefix(net) => 1u128
            .checked_shl(u32::from(net.max_prefix_len() - net.prefix_len()))
            .unwrap_or(u128::MAX),
    }
}

/// RFC 1123 host names (underscores allowed, as real inventories have them), whose last label
/// is not all digits (so `10.0.0` is a mistake, not a name).
fn is_host_name(text: &str) -> bool {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = name.split('.').collect();
    let good_label = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    labels.iter().all(good_label)
        && labels
            .last()
            .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()))
}

struct Checker {
    errors: Vec<FieldError>,
    sites: HashSet<String>,
}

impl Checker {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn name(&mut self, field: &str, name: &str) {
        if name.trim().is_empty() {
            self.fail(field, "is empty; name every entry");
        } else if name != name.trim() {
            self.fail(field, format!("{name:?} has leading or trailing spaces"));
        } else if name.len() > 255 || name.chars().any(char::is_control) {
            self.fail(
                field,
                "must be at most 255 bytes without control characters",
            );
        }
    }

    fn labels(&mut self, field: &str, labels: &Labels) {
        for (key, value) in labels {
            let good_key = key.len() <= 100
                && !key.starts_with("__")
                && key
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !good_key {
                self.fail(
                    format!("{field}.{key}"),
                    "a label name is letters, digits and underscores, not starting with a digit or \"__\" (as in Prometheus), at most 100 long",
                );
            }
            if value.len() > 255 || value.chars().any(char::is_control) {
                self.fail(
                    format!("{field}.{key}"),
                    "a label value is at most 255 bytes without control characters",
                );
            }
        }
    }

    fn site_ref(&mut self, field: &str, site: Option<&str>) {
        if let Some(site) = site {
            if !self.sites.contains(site) {
                self.fail(
                    field,
                    format!("{site:?} is not a site of the plan (declare it under sites)"),
                );
            }
        }
    }

    /// `run_on` and the entry's own `site` together must pick some agent.
    fn run_on(&mut self, field: &str, run_on: &RunOn, own_site: Option<&str>) {
        self.site_ref(&format!("{field}.run_on.site"), run_on.site.as_deref());
        self.labels(
            &format!("{field}.run_on.agent_labels"),
            &run_on.agent_labels,
        );
        for (i, agent) in run_on.agents.iter().enumerate() {
            self.name(&format!("{field}.run_on.agents[{i}]"), agent);
        }
        if run_on.is_empty() && own_site.is_none() {
            self.fail(
                format!("{field}.site"),
                "give a site (its agents run it) or run_on; as it is, no agent would",
            );
        }
    }

    fn unique<'a>(&mut self, list: &str, names: impl Iterator<Item = &'a str>) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in names.enumerate() {
            if let Some(first) = seen.insert(name, i) {
                seen.insert(name, first);
                self.fail(
                    format!("{list}[{i}].name"),
                    format!("{name:?} is also the name of {list}[{first}]; names must be unique"),
                );
            }
        }
    }

    fn check(&mut self, field: &str, c: &Check) {
        let mut range = |name: &str, ok: bool, what: &str| {
            if !ok {
                self.errors.push(FieldError {
                    field: format!("{field}.{name}"),
                    message: what.to_string(),
                });
            }
        };
        if c.kind == CheckKind::Tcp {
            range(
                "interval_secs",
                (1..=86_400).contains(&c.interval_secs),
                "must be between 1 and 86400 (a day)",
            );
            range(
                "timeout_ms",
                (1..=60_000).contains(&c.timeout_ms)
                    && c.timeout_ms <= c.interval_secs.saturating_mul(1000),
                "must be between 1 and 60000, and no longer than the interval",
            );
            range(
                "ports",
                (1..=MAX_CHECK_PORTS).contains(&c.ports.len()),
                "a tcp check needs 1 to 32 ports",
            );
            let mut seen = HashSet::new();
            for (i, port) in c.ports.iter().enumerate() {
                if *port == 0 {
                    self.fail(format!("{field}.ports[{i}]"), "must be between 1 and 65535");
                } else if !seen.insert(*port) {
                    self.fail(
                        format!("{field}.ports[{i}]"),
                        format!("{port} is listed twice"),
                    );
                }
            }
            return;
        }
        range(
            "ports",
            c.ports.is_empty(),
            "ports are for tcp checks (kind: tcp); an icmp check has none",
        );
        range(
            "count",
            (1..=1000).contains(&c.count),
            "must be between 1 and 1000",
        );
        range(
            "interval_secs",
            (1..=86_400).contains(&c.interval_secs),
            "must be between 1 and 86400 (a day)",
        );
        range(
            "ping_interval_ms",
            (1..=60_000).contains(&c.ping_interval_ms),
            "must be between 1 and 60000",
        );
        range(
            "timeout_ms",
            (1..=60_000).contains(&c.timeout_ms),
            "must be between 1 and 60000",
        );
        range(
            "min_timeout_ms",
            c.min_timeout_ms >= 1 && c.min_timeout_ms <= c.timeout_ms,
            "must be at least 1 and at most timeout_ms",
        );
        range(
            "degraded_loss_pct",
            (0.0..=100.0).contains(&c.degraded_loss_pct),
            "must be between 0 and 100",
        );
        range(
            "degraded_rtt_ms",
            c.degraded_rtt_ms.is_finite() && c.degraded_rtt_ms > 0.0,
            "must be above 0",
        );
        // One target's round alone must fit its interval.
        let round_ms = u64::from(c.count.saturating_sub(1))
            .saturating_mul(c.ping_interval_ms)
            .saturating_add(c.timeout_ms);
        if c.interval_secs > 0 && round_ms > c.interval_secs.saturating_mul(1000) {
            self.fail(
                format!("{field}.interval_secs"),
                format!(
                    "a round of {} pings {} ms apart plus a {} ms timeout takes {:.1} s, longer than the interval",
                    c.count,
                    c.ping_interval_ms,
                    c.timeout_ms,
                    round_ms as f64 / 1000.0
                ),
            );
        }
    }
}

impl Checker {
    fn enrol(&mut self, field: &str, enrol: &crate::model::Enrol, checks: &HashSet<&str>) {
        use crate::model::EnrolMode;
        match enrol.mode {
            EnrolMode::Matching if !enrol.has_matchers() => self.fail(
                format!("{field}.mode"),
                "matching needs at least one of addresses, vendors, ports, hostname_suffixes",
            ),
            EnrolMode::None if enrol.has_matchers() || enrol.check.is_some() => self.fail(
                format!("{field}.mode"),
                "is none (enrol nothing) but matchers or a check are given; set mode: matching or all",
            ),
            _ => {}
        }
        for (i, address) in enrol.addresses.iter().enumerate() {
            if !matches!(
                parse_address(address, true),
                Ok(TargetAddress::Ip(_) | TargetAddress::Prefix(_))
            ) {
                self.fail(
                    format!("{field}.addresses[{i}]"),
                    format!("{address:?} is not an IP address or CIDR prefix"),
                );
            }
        }
        for (list, values) in [
            ("vendors", &enrol.vendors),
            ("hostname_suffixes", &enrol.hostname_suffixes),
        ] {
            for (i, value) in values.iter().enumerate() {
                if value.trim().is_empty()
                    || value.len() > 255
                    || value.chars().any(char::is_control)
                {
                    self.fail(
                        format!("{field}.{list}[{i}]"),
                        "must be 1 to 255 bytes without control characters",
                    );
                }
            }
        }
        for (i, port) in enrol.ports.iter().enumerate() {
            if *port == 0 {
                self.fail(format!("{field}.ports[{i}]"), "must be between 1 and 65535");
            }
        }
        if let Some(check) = &enrol.check {
            if !checks.contains(check.as_str()) {
                self.fail(
                    format!("{field}.check"),
                    format!("{check:?} is not a check of the plan (declare it under checks)"),
                );
            }
        }
    }
}

fn too_many(checker: &mut Checker, list: &str, len: usize) -> bool {
    if len > MAX_ENTRIES {
        checker.fail(
            list,
            format!("holds {len} entries; at most {MAX_ENTRIES} are allowed"),
        );
        return true;
    }
    false
}

/// Checks the whole plan; `Err` lists every problem found.
pub fn validate(plan: &Plan) -> Result<(), PlanErrors> {
    let mut c = Checker {
        errors: Vec::new(),
        sites: plan.sites.iter().map(|s| s.name.clone()).collect(),
    };
    let lists = [
        ("sites", plan.sites.len()),
        ("agents", plan.agents.len()),
        ("checks", plan.checks.len()),
        ("targets", plan.targets.len()),
        ("discovery", plan.discovery.len()),
        ("speedtests", plan.speedtests.len()),
    ];
    let mut oversized = false;
    for (list, len) in lists {
        oversized |= too_many(&mut c, list, len);
    }
    if oversized {
        return Err(PlanErrors(c.errors));
    }

    for (i, site) in plan.sites.iter().enumerate() {
        c.name(&format!("sites[{i}].name"), &site.name);
        c.labels(&format!("sites[{i}].labels"), &site.labels);
    }
    c.unique("sites", plan.sites.iter().map(|s| s.name.as_str()));

    for (i, agent) in plan.agents.iter().enumerate() {
        c.name(&format!("agents[{i}].name"), &agent.name);
        c.site_ref(&format!("agents[{i}].site"), agent.site.as_deref());
        c.labels(&format!("agents[{i}].labels"), &agent.labels);
    }
    c.unique("agents", plan.agents.iter().map(|a| a.name.as_str()));

    for (i, check) in plan.checks.iter().enumerate() {
        c.name(&format!("checks[{i}].name"), &check.name);
        c.check(&format!("checks[{i}]"), check);
    }
    c.unique("checks", plan.checks.iter().map(|k| k.name.as_str()));
    let checks: HashSet<&str> = plan
        .checks
        .iter()
        .map(|k| k.name.as_str())
        .chain([crate::model::DEFAULT_CHECK])
        .collect();
    // Enrolled hosts are probed by ICMP rounds; a tcp check cannot be their check.
    let tcp_checks: HashMap<&str, &Check> = plan
        .checks
        .iter()
        .filter(|k| k.kind == CheckKind::Tcp)
        .map(|k| (k.name.as_str(), k))
        .collect();

    let mut addresses: u128 = 0;
    for (i, target) in plan.targets.iter().enumerate() {
        let field = format!("targets[{i}]");
        c.name(&format!("{field}.name"), &target.name);
        let count = match parse_address(&target.address, target.force) {
            Ok(address) => address_count(&address),
            Err(message) => {
                c.fail(format!("{field}.address"), message);
                0
            }
        };
        addresses = addresses.saturating_add(count);
        // Its tcp checks: no port twice (one port is one series), and a bounded round.
        let mut ports: HashMap<u16, &str> = HashMap::new();
        let mut connections: u128 = 0;
        let named: Vec<&str> = if target.checks.is_empty() {
            vec![crate::model::DEFAULT_CHECK]
        } else {
            target.checks.iter().map(String::as_str).collect()
        };
        for name in named {
            let Some(check) = tcp_checks.get(name) else {
                continue;
            };
            connections =
                connections.saturating_add(count.saturating_mul(check.ports.len() as u128));
            for port in &check.ports {
                if let Some(first) = ports.insert(*port, name) {
                    if first != name {
                        c.fail(
                            format!("{field}.checks"),
                            format!("tcp checks {first:?} and {name:?} both check port {port}; keep it in one"),
                        );
                    }
                }
            }
        }
        if connections > MAX_PORT_CHECKS_PER_TARGET {
            c.fail(
                format!("{field}.checks"),
                format!(
                    "its tcp checks make {connections} connections a round, more than {MAX_PORT_CHECKS_PER_TARGET}; narrow the address or the ports"
                ),
            );
        }
        c.site_ref(&format!("{field}.site"), target.site.as_deref());
        c.labels(&format!("{field}.labels"), &target.labels);
        for (j, check) in target.checks.iter().enumerate() {
            if !checks.contains(check.as_str()) {
                c.fail(
                    format!("{field}.checks[{j}]"),
                    format!("{check:?} is not a check of the plan (declare it under checks)"),
                );
            }
        }
        c.run_on(&field, &target.run_on, target.site.as_deref());
    }
    c.unique("targets", plan.targets.iter().map(|t| t.name.as_str()));

    for (i, site) in plan.discovery.iter().enumerate() {
        let field = format!("discovery[{i}]");
        c.name(&format!("{field}.name"), &site.name);
        c.site_ref(&format!("{field}.site"), site.site.as_deref());
        if site.cidrs.is_empty() {
            c.fail(
                format!("{field}.cidrs"),
                "is empty; give the prefixes to sweep",
            );
        }
        for (j, cidr) in site.cidrs.iter().enumerate() {
            match parse_address(cidr, site.force) {
                Ok(address @ (TargetAddress::Ip(_) | TargetAddress::Prefix(_))) => {
                    addresses = addresses.saturating_add(address_count(&address));
                }
                Ok(TargetAddress::Host(_)) => c.fail(
                    format!("{field}.cidrs[{j}]"),
                    format!("{cidr:?} is a host name; discovery sweeps addresses and prefixes"),
                ),
                Err(message) => c.fail(format!("{field}.cidrs[{j}]"), message),
            }
        }
        for (j, entry) in site.ignore.iter().enumerate() {
            match parse_address(entry, true) {
                Ok(TargetAddress::Ip(_) | TargetAddress::Prefix(_)) => {}
                _ => c.fail(
                    format!("{field}.ignore[{j}]"),
                    format!("{entry:?} is not an IP address or CIDR prefix"),
                ),
            }
        }
        c.enrol(&format!("{field}.enrol"), &site.enrol, &checks);
        let enrol_check = site
            .enrol
            .check
            .as_deref()
            .unwrap_or(crate::model::DEFAULT_CHECK);
        if site.enrol.mode != crate::model::EnrolMode::None {
            let check = enrol_check;
            if tcp_checks.contains_key(check) {
                c.fail(
                    format!("{field}.enrol.check"),
                    format!("{check:?} is a tcp check; enrolled hosts are probed by an icmp check"),
                );
            }
        }
        if !(10..=7 * 86_400).contains(&site.interval_secs) {
            c.fail(
                format!("{field}.interval_secs"),
                "must be between 10 and 604800 (a week)",
            );
        }
        c.run_on(&field, &site.run_on, site.site.as_deref());
    }
    c.unique("discovery", plan.discovery.iter().map(|d| d.name.as_str()));

    for (i, test) in plan.speedtests.iter().enumerate() {
        let field = format!("speedtests[{i}]");
        c.name(&format!("{field}.name"), &test.name);
        let own_urls = [
            ("download_url", &test.download_url, test.download_bytes),
            ("upload_url", &test.upload_url, test.upload_bytes),
        ];
        // `url` may be empty only when every direction that moves bytes has its own URL.
        let base_needed = own_urls
            .iter()
            .any(|(_, own, bytes)| own.is_none() && *bytes > 0);
        if base_needed || !test.url.is_empty() {
            check_test_url(&mut c, format!("{field}.url"), &test.url);
        }
        for (name, own, _) in own_urls {
            if let Some(url) = own {
                check_test_url(&mut c, format!("{field}.{name}"), url);
            }
        }
        if !(60..=7 * 86_400).contains(&test.interval_secs) {
            c.fail(
                format!("{field}.interval_secs"),
                "must be between 60 and 604800 (a week)",
            );
        }
        if !(1..=3600).contains(&test.timeout_secs) {
            c.fail(
                format!("{field}.timeout_secs"),
                "must be between 1 and 3600",
            );
        }
        const GIB: u64 = 1 << 30;
        if test.download_bytes > GIB || test.upload_bytes > GIB {
            c.fail(
                format!("{field}.download_bytes"),
                "download_bytes and upload_bytes are at most 1 GiB each",
            );
        }
        if test.download_bytes == 0 && test.upload_bytes == 0 {
            c.fail(
                format!("{field}.download_bytes"),
                "download_bytes and upload_bytes are both 0: nothing to test",
            );
        }
        c.site_ref(&format!("{field}.site"), test.site.as_deref());
        c.run_on(&field, &test.run_on, test.site.as_deref());
    }
    c.unique(
        "speedtests",
        plan.speedtests.iter().map(|s| s.name.as_str()),
    );

    if addresses > MAX_ADDRESSES {
        c.fail(
            "targets",
            format!(
                "the targets and discovery prefixes add up to {addresses} addresses; at most {MAX_ADDRESSES} are allowed"
            ),
        );
    }

    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(PlanErrors(c.errors))
    }
}

/// Checks one check's settings alone (an agent checks what it is sent with this).
pub fn validate_check(check: &Check) -> Result<(), PlanErrors> {
    let mut c = Checker {
        errors: Vec::new(),
        sites: HashSet::new(),
    };
    c.check(&format!("checks[{}]", check.name), check);
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(PlanErrors(c.errors))
    }
}

/// A speed-test URL: http(s), no spaces or control characters, within the wire's bound.
fn check_test_url(c: &mut Checker, field: String, url: &str) {
    // A host after the scheme (as agent.toml requires): "http://" or "http:///x" is none.
    let scheme_ok = ["http://", "https://"].iter().any(|scheme| {
        url.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
    });
    if !scheme_ok
        || url.len() > MAX_URL
        || url.chars().any(|ch| ch.is_whitespace() || ch.is_control())
    {
        c.fail(
            field,
            format!("must be an http:// or https:// URL without spaces, at most {MAX_URL} bytes"),
        );
    }
}
