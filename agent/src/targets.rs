//! Target lists as people write them: addresses and CIDR prefixes, expanded with bounds, and
//! TCP port lists with names. Every error names the entry that is wrong.

use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;

/// More addresses than this (a /16) need an explicit `force`.
pub const LARGE_SWEEP: u64 = 65_536;
/// Never more than this many targets, forced or not.
pub const MAX_TARGETS: u64 = 4_194_304;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    #[error("{entry:?} is not an IP address or CIDR prefix (e.g. 10.0.0.0/24)")]
    Invalid { entry: String },
    #[error(
        "{entry:?} holds {count} addresses, more than {LARGE_SWEEP}; narrow it, or pass --force \
         (force = true in config) if you really mean to sweep it"
    )]
    TooLarge { entry: String, count: u64 },
    #[error("the targets add up to {count} addresses; at most {MAX_TARGETS} are allowed")]
    Limit { count: u64 },
    #[error("no targets given")]
    Empty,
}

/// Expands addresses and prefixes, keeping the first occurrence of each address. IPv4
/// prefixes up to /30 leave out their network and broadcast addresses.
pub fn expand(entries: &[impl AsRef<str>], force: bool) -> Result<Vec<IpAddr>, TargetError> {
    let mut nets = Vec::with_capacity(entries.len());
    let mut total: u64 = 0;
    for entry in entries {
        let entry = entry.as_ref().trim();
        let net = parse_one(entry)?;
        let count = usable(&net);
        if count > LARGE_SWEEP && !force {
            return Err(TargetError::TooLarge {
                entry: entry.to_string(),
                count,
            });
        }
        total = total.saturating_add(count);
        if total > MAX_TARGETS {
            return Err(TargetError::Limit { count: total });
        }
        nets.push(net);
    }
    if nets.is_empty() {
        return Err(TargetError::Empty);
    }
    let mut seen = HashSet::with_capacity(total as usize);
    let mut out = Vec::with_capacity(total as usize);
    for net in nets {
        let hosts: Box<dyn Iterator<Item = IpAddr>> = match net {
            IpNet::V4(v4) => Box::new(v4.hosts().map(IpAddr::V4)),
            IpNet::V6(v6) => Box::new(v6.hosts().map(IpAddr::V6)),
        };
        for host in hosts {
            if seen.insert(host) {
                out.push(host);
            }
        }
    }
    Ok(out)
}

fn parse_one(entry: &str) -> Result<IpNet, TargetError> {
    let invalid = || TargetError::Invalid {
        entry: entry.to_string(),
    };
    if entry.contains('/') {
        let net: IpNet = entry.parse().map_err(|_| invalid())?;
        Ok(net.trunc())
    } else {
        let addr: IpAddr = entry.parse().map_err(|_| invalid())?;
        Ok(IpNet::from(addr))
    }
}

fn usable(net: &IpNet) -> u64 {
    let bits = u32::from(net.max_prefix_len() - net.prefix_len());
    let all = if bits >= 63 { u64::MAX } else { 1u64 << bits };
    // As ipnet's hosts(): IPv4 below /31 drops network and broadcast; IPv6 keeps all.
    match net {
        IpNet::V4(_) if net.prefix_len() < 31 => all - 2,
        _ => all,
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PortError {
    #[error(
        "unknown port {entry:?}: give a number 1-65535, a range like 8000-8010, or one of {}",
        known_names()
    )]
    Unknown { entry: String },
    #[error("port range {entry:?} is empty or reversed")]
    Range { entry: String },
}

const NAMED_PORTS: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("dns", 53),
    ("domain", 53),
    ("http", 80),
    ("pop3", 110),
    ("imap", 143),
    ("bgp", 179),
    ("ldap", 389),
    ("https", 443),
    ("smb", 445),
    ("microsoft-ds", 445),
    ("submission", 587),
    ("ldaps", 636),
    ("imaps", 993),
    ("pop3s", 995),
    ("mssql", 1433),
    ("mqtt", 1883),
    ("mysql", 3306),
    ("rdp", 3389),
    ("postgresql", 5432),
    ("winrm", 5985),
    ("http-alt", 8080),
    ("https-alt", 8443),
];

fn known_names() -> String {
    NAMED_PORTS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `22,80,https,8000-8010` (names case-insensitive), sorted and without repeats.
pub fn parse_ports(list: &[impl AsRef<str>]) -> Result<Vec<u16>, PortError> {
    let mut ports = Vec::new();
    for entry in list.iter().flat_map(|e| e.as_ref().split(',')) {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let unknown = || PortError::Unknown {
            entry: entry.to_string(),
        };
        let number = |s: &str| s.parse::<u16>().ok().filter(|&p| p != 0);
        // Names first: some contain a dash (http-alt) and are not ranges.
        let lower = entry.to_ascii_lowercase();
        if let Some((_, port)) = NAMED_PORTS.iter().find(|(name, _)| *name == lower) {
            ports.push(*port);
        } else if let Some(port) = number(entry) {
            ports.push(port);
        } else if let Some((from, to)) = entry.split_once('-').filter(|(a, _)| !a.is_empty()) {
            let (from, to) = (
                number(from).ok_or_else(unknown)?,
                number(to).ok_or_else(unknown)?,
            );
            if from > to {
                return Err(PortError::Range {
                    entry: entry.to_string(),
                });
            }
            ports.extend(from..=to);
        } else {
            return Err(unknown());
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_expand_to_their_hosts_once() {
        let got = expand(
            &["10.0.0.0/30", "10.0.0.2", "10.0.0.9/32", "10.0.1.0/31"],
            false,
        )
        .unwrap();
        let want: Vec<IpAddr> = ["10.0.0.1", "10.0.0.2", "10.0.0.9", "10.0.1.0", "10.0.1.1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            expand(&["10.1.2.3/24"], false).unwrap().len(),
            254,
            "host bits are ignored"
        );
        assert_eq!(expand(&["2001:db8::/120"], false).unwrap().len(), 256);
    }

    #[test]
    fn bad_and_huge_inputs_are_refused_with_the_entry_named() {
        assert_eq!(
            expand(&["10.0.0.0/33"], false),
            Err(TargetError::Invalid {
                entry: "10.0.0.0/33".into()
            })
        );
        assert!(matches!(
            expand(&["banana"], false),
            Err(TargetError::Invalid { .. })
        ));
        let err = expand(&["10.0.0.0/8"], false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(matches!(
            expand(&["10.0.0.0/8"], true),
            Err(TargetError::Limit { .. })
        ));
        assert!(matches!(
            expand(&["2001:db8::/64"], true),
            Err(TargetError::Limit { .. })
        ));
        let none: [&str; 0] = [];
        assert_eq!(expand(&none, false), Err(TargetError::Empty));
    }

    #[test]
    fn ports_take_numbers_names_and_ranges() {
        assert_eq!(
            parse_ports(&["22,HTTPS", "80", "8000-8002,22"]).unwrap(),
            vec![22, 80, 443, 8000, 8001, 8002]
        );
        let err = parse_ports(&["22,gopherx"]).unwrap_err();
        assert!(err.to_string().contains("\"gopherx\""), "{err}");
        assert!(matches!(
            parse_ports(&["0"]),
            Err(PortError::Unknown { .. })
        ));
        assert!(matches!(
            parse_ports(&["70000"]),
            Err(PortError::Unknown { .. })
        ));
        assert!(matches!(
            parse_ports(&["90-80"]),
            Err(PortError::Range { .. })
        ));
    }

    #[test]
    fn named_ports_with_a_dash_are_names_not_ranges() {
        // The quickstart's agent.toml uses "http-alt"; it was once read as a range and refused.
        assert_eq!(
            parse_ports(&["ssh", "http-alt", "HTTPS-ALT"]).unwrap(),
            vec![22, 8080, 8443]
        );
        assert!(matches!(
            parse_ports(&["http-80"]),
            Err(PortError::Unknown { .. })
        ));
    }
}
