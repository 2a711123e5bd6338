//! MAC vendor lookup from the IEEE MA-L registry, embedded at build time (agent/data/oui.tsv,
//! from Debian's ieee-data; see scripts/update-oui.sh) so the agent needs no system package.

use std::sync::OnceLock;

static REGISTRY: &str = include_str!("../../data/oui.tsv");

fn table() -> &'static [(u32, &'static str)] {
    static TABLE: OnceLock<Vec<(u32, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut rows: Vec<(u32, &'static str)> = REGISTRY
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|line| {
                let (prefix, name) = line.split_once('\t')?;
                Some((u32::from_str_radix(prefix, 16).ok()?, name))
            })
            .collect();
        rows.sort_unstable_by_key(|r| r.0);
        rows
    })
}

/// The organisation a MAC address (`aa:bb:cc:dd:ee:ff`, `-` or no separators) was
/// assigned to. Locally administered addresses (second-lowest bit of the first octet) are
/// nobody's and say so.
pub fn vendor(mac: &str) -> Option<&'static str> {
    let hex: String = mac
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(6)
        .collect();
    if hex.len() != 6 {
        return None;
    }
    let prefix = u32::from_str_radix(&hex, 16).ok()?;
    if (prefix >> 16) & 0x02 != 0 {
        return Some("(locally administered)");
    }
    let table = table();
    table
        .binary_search_by_key(&prefix, |r| r.0)
        .ok()
        .map(|i| table[i].1)
}

pub fn registry_size() -> usize {
    table().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vendors_are_found_in_any_notation() {
        assert_eq!(vendor("00:00:0c:12:34:56"), Some("Cisco Systems, Inc"));
        assert_eq!(vendor("B8-27-EB-00-00-01"), Some("Raspberry Pi Foundation"));
        assert_eq!(vendor("b827eb000001"), Some("Raspberry Pi Foundation"));
        assert!(registry_size() > 30_000);
    }

    #[test]
    fn local_unknown_and_malformed_addresses() {
        assert_eq!(vendor("02:6c:61:62:00:01"), Some("(locally administered)"));
        assert_eq!(vendor("00:00:00:00:00:00"), Some("XEROX CORPORATION"));
        assert_eq!(vendor("zz:zz"), None);
        assert_eq!(vendor(""), None);
    }
}
