//! Targets from an inventory's CSV export (NetBox's device or IP-address export, or this
//! crate's own [`targets_to_csv`]), and back. Columns are found by their header in any case,
//! with either `,` or `;` between fields and with or without a byte-order mark; a row that
//! cannot be a target is an error naming its line and column, never silently guessed.
//!
//! What is read, by header (the first present wins):
//! - name: `name`, `device`, `dns name`, `dns_name`, `hostname`, `parent` (else the address);
//!   a name already taken (one device with two addresses) gets the address after it;
//! - address: `address`, `ipv4 address`, `primary_ip4`, `ip address`, `primary ip`,
//!   `primary_ip`, `ipv6 address`, `primary_ip6`. NetBox writes an interface's address with its
//!   prefix length (`192.0.2.1/24`): that is the host `192.0.2.1`. A prefix written as its
//!   network (`10.0.0.0/29`) stays a prefix;
//! - site: `site`;
//! - checks: `checks` (names separated by spaces);
//! - status: `status`; only `active` rows (any case) are targets unless every status is asked
//!   for; the others are counted as skipped;
//! - labels: `label_<key>` columns, and `tenant`, `role` (`device_role`), `region`,
//!   `platform`, `circuit`, `customer`, `poi` and `pop` as labels of those names.

use crate::model::{Labels, Target};
use crate::validate::{parse_address, TargetAddress};
use std::collections::HashMap;
use std::io::Read;

/// Most rows read from one file.
pub const MAX_ROWS: usize = 200_000;

#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// Import rows whatever their `status` (NetBox: planned, offline, decommissioning...).
    pub all_statuses: bool,
    /// Checks the imported targets run (none: `default`).
    pub checks: Vec<String>,
    /// The site of rows that name none (an IP-address export has no site column).
    pub site: Option<String>,
}

/// What a file gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsvImport {
    pub targets: Vec<Target>,
    /// Rows left out, each with why (a status not active, no address).
    pub skipped: Vec<String>,
    /// Rows whose name was taken, named with their address instead.
    pub renamed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("{source_name}: {message}")]
    File {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: {}", .errors.join("; "))]
    Rows {
        source_name: String,
        errors: Vec<String>,
    },
}

const NAME: &[&str] = &[
    "name", "device", "dns name", "dns_name", "hostname", "parent",
];
const ADDRESS: &[&str] = &[
    "address",
    "ipv4 address",
    "primary_ip4",
    "ip address",
    "primary ip",
    "primary_ip",
    "ipv6 address",
    "primary_ip6",
];
const LABELS: &[(&str, &str)] = &[
    ("tenant", "tenant"),
    ("role", "role"),
    ("device_role", "role"),
    ("region", "region"),
    ("platform", "platform"),
    ("circuit", "circuit"),
    ("customer", "customer"),
    ("poi", "poi"),
    ("pop", "pop"),
];

struct Columns {
    /// Name columns present, in order of preference (a row takes the first it fills).
    names: Vec<usize>,
    address: Vec<(usize, String)>,
    site: Option<usize>,
    checks: Option<usize>,
    status: Option<usize>,
    labels: Vec<(usize, String)>,
}

fn columns(headers: &[String]) -> Columns {
    let find = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| headers.iter().position(|h| h == n))
    };
    let mut labels: Vec<(usize, String)> = LABELS
        .iter()
        .filter_map(|(header, label)| {
            headers
                .iter()
                .position(|h| h == header)
                .map(|i| (i, label.to_string()))
        })
        .collect();
    labels.extend(headers.iter().enumerate().filter_map(|(i, h)| {
        h.strip_prefix("label_")
            .filter(|k| !k.is_empty())
            .map(|k| (i, k.to_string()))
    }));
    Columns {
        names: NAME
            .iter()
            .filter_map(|n| headers.iter().position(|h| h == n))
            .collect(),
        address: ADDRESS
            .iter()
            .filter_map(|n| {
                headers
                    .iter()
                    .position(|h| h == n)
                    .map(|i| (i, n.to_string()))
            })
            .collect(),
        site: find(&["site"]),
        checks: find(&["checks"]),
        status: find(&["status"]),
        labels,
    }
}

/// An address cell as a target address: an interface address with its prefix length is the
/// host; a prefix written as its network stays a prefix.
fn address_of(cell: &str) -> Result<String, String> {
    if let Some((ip, len)) = cell.split_once('/') {
        if let (Ok(ip), Ok(len)) = (ip.parse::<std::net::IpAddr>(), len.parse::<u8>()) {
            let net = ipnet::IpNet::new(ip, len)
                .map_err(|_| format!("{cell:?} has a prefix length out of range"))?;
            return Ok(
                // A /31 or /127 is a point-to-point link: its network address is a host.
                if net.network() == ip && net.prefix_len() + 1 < net.max_prefix_len() {
                    net.to_string()
                } else {
                    ip.to_string()
                },
            );
        }
    }
    match parse_address(cell, false)? {
        TargetAddress::Ip(ip) => Ok(ip.to_string()),
        TargetAddress::Prefix(net) => Ok(net.to_string()),
        TargetAddress::Host(host) => Ok(host),
    }
}

/// Reads targets from `input` (named `source_name` in errors).
pub fn targets_from_csv(
    mut input: impl Read,
    source_name: &str,
    options: &CsvOptions,
) -> Result<CsvImport, CsvError> {
    let file_error = |message: String| CsvError::File {
        source_name: source_name.to_string(),
        message,
    };
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| file_error(format!("is not UTF-8 (at byte {})", e.valid_up_to())))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line = text.lines().next().unwrap_or("");
    let delimiter = if first_line.matches(';').count() > first_line.matches(',').count() {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| file_error(format!("line 1: {e}")))?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let cols = columns(&headers);
    if cols.address.is_empty() {
        return Err(file_error(format!(
            "line 1: no address column; expected one of {} (found: {})",
            ADDRESS.join(", "),
            headers.join(", ")
        )));
    }
    let mut import = CsvImport::default();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        if i >= MAX_ROWS {
            return Err(file_error(format!("more than {MAX_ROWS} rows")));
        }
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(i + 2, |p| p.line() as usize);
                errors.push(format!("line {line}: {e}"));
                continue;
            }
        };
        // Where the row starts: a quoted cell may hold line breaks (NetBox's comments do).
        let line = record.position().map_or(i + 2, |p| p.line() as usize);
        let cell = |col: Option<usize>| {
            col.and_then(|c| record.get(c))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let row_name = cols.names.iter().find_map(|c| cell(Some(*c)));
        let label =
            row_name.map_or_else(|| format!("line {line}"), |n| format!("line {line} ({n})"));
        if let Some(status) = cell(cols.status) {
            if !options.all_statuses && !status.eq_ignore_ascii_case("active") {
                import
                    .skipped
                    .push(format!("{label}: status {status:?}, not active"));
                continue;
            }
        }
        let Some((column, raw)) = cols
            .address
            .iter()
            .find_map(|(c, name)| cell(Some(*c)).map(|v| (name, v)))
        else {
            import.skipped.push(format!("{label}: no address"));
            continue;
        };
        let address = match address_of(raw) {
            Ok(address) => address,
            Err(why) => {
                errors.push(format!("line {line}, column {column:?}: {why}"));
                continue;
            }
        };
        let mut labels = Labels::new();
        for (c, key) in &cols.labels {
            if let Some(value) = cell(Some(*c)) {
                labels.insert(key.clone(), value.to_string());
            }
        }
        let mut name = match row_name {
            Some(n) if n != "Unnamed device" => n.to_string(),
            _ => address.clone(),
        };
        if let Some(&first) = seen.get(&name) {
            let unique = format!("{name} {address}");
            import.renamed.push(format!(
                "line {line}: {name:?} is also the name on line {first}; named {unique:?}"
            ));
            name = unique;
        }
        if let Some(first) = seen.insert(name.clone(), line) {
            errors.push(format!(
                "line {line}, column \"name\": {name:?} is also the name on line {first}; names must be unique"
            ));
            continue;
        }
        let checks = match cell(cols.checks) {
            Some(list) => list.split_whitespace().map(str::to_string).collect(),
            None => options.checks.clone(),
        };
        import.targets.push(Target {
            name,
            address,
            site: cell(cols.site)
                .map(str::to_string)
                .or_else(|| options.site.clone()),
            labels,
            checks,
            ..Target::default()
        });
    }
    if errors.is_empty() {
        Ok(import)
    } else {
        Err(CsvError::Rows {
            source_name: source_name.to_string(),
            errors,
        })
    }
}

/// The targets as CSV this module reads back: name, address, site, checks, then one
/// `label_<key>` column per label key used.
pub fn targets_to_csv(targets: &[Target]) -> String {
    let mut keys: Vec<&String> = targets.iter().flat_map(|t| t.labels.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "name".to_string(),
        "address".into(),
        "site".into(),
        "checks".into(),
    ];
    header.extend(keys.iter().map(|k| format!("label_{k}")));
    let _ = writer.write_record(&header);
    for t in targets {
        let mut row = vec![
            t.name.clone(),
            t.address.clone(),
            t.site.clone().unwrap_or_default(),
            t.checks.join(" "),
        ];
        row.extend(
            keys.iter()
                .map(|k| t.labels.get(*k).cloned().unwrap_or_default()),
        );
        let _ = writer.write_record(&row);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Puts `imported` into `plan`: a new target is added; one of the same name takes the file's
/// address, site (when it names one), checks (when it gives any) and labels over its own, and
/// keeps what a CSV cannot say (`run_on`, `force`). Each site named but not declared is declared.
pub fn merge_targets(plan: &mut crate::model::Plan, imported: Vec<Target>) {
    let mut index: HashMap<String, usize> = plan
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    for target in imported {
        if let Some(site) = &target.site {
            if !plan.sites.iter().any(|s| &s.name == site) {
                plan.sites.push(crate::model::Site {
                    name: site.clone(),
                    labels: Labels::new(),
                });
            }
        }
        match index.get(&target.name) {
            Some(&i) => {
                let existing = &mut plan.targets[i];
                existing.address = target.address;
                if target.site.is_some() {
                    existing.site = target.site;
                }
                if !target.checks.is_empty() {
                    existing.checks = target.checks;
                }
                existing.labels.extend(target.labels);
            }
            None => {
                index.insert(target.name.clone(), plan.targets.len());
                plan.targets.push(target);
            }
        }
    }
}
