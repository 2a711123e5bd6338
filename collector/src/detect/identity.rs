//! Inventory changes from discovery: a device never seen before, a MAC address that changed
//! (a replaced box, or someone answering for it), ports that opened or closed. Each is a
//! one-off event: it stays open until an operator resolves it.

use super::{firing, kinds, Signal};
use crate::storage::alerting::Severity;
use netwarden_shared::DiscoveredHost;
use std::collections::BTreeSet;

/// What is known of a device's identity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Known {
    pub mac: Option<String>,
    /// `None` until a sweep with a port scan has reported it.
    pub ports: Option<BTreeSet<u16>>,
}

/// Compares a sighting with what was known (`None`: never seen) and updates it.
pub fn observe(agent: &str, known: &mut Option<Known>, host: &DiscoveredHost) -> Vec<Signal> {
    let address = host.address.to_string();
    let subject = format!("{agent}/{address}");
    let mut out = Vec::new();
    let ports: BTreeSet<u16> = host.open_ports.iter().copied().collect();
    let Some(k) = known else {
        out.push(firing(
            kinds::NEW_DEVICE,
            &subject,
            agent,
            Severity::Low,
            format!(
                "new device {address}{}",
                host.vendor
                    .as_deref()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default()
            ),
            serde_json::json!({
                "mac": host.mac, "vendor": host.vendor, "hostname": host.hostname,
                "ports": host.open_ports,
            }),
        ));
        *known = Some(Known {
            mac: host.mac.clone(),
            ports: (!ports.is_empty()).then_some(ports),
        });
        return out;
    };
    if let (Some(old), Some(new)) = (&k.mac, &host.mac) {
        if !old.eq_ignore_ascii_case(new) {
            out.push(firing(
                kinds::MAC_CHANGE,
                &subject,
                agent,
                Severity::High,
                format!("{address} changed MAC address from {old} to {new}"),
                serde_json::json!({ "old_mac": old, "new_mac": new, "vendor": host.vendor }),
            ));
        }
    }
    if host.mac.is_some() {
        k.mac = host.mac.clone();
    }
    // Only a sweep that scanned ports says anything about them.
    if !ports.is_empty() || k.ports.as_ref().is_some_and(|p| !p.is_empty()) {
        if let Some(old) = &k.ports {
            let opened: Vec<u16> = ports.difference(old).copied().collect();
            let closed: Vec<u16> = old.difference(&ports).copied().collect();
            if !opened.is_empty() || !closed.is_empty() {
                out.push(firing(
                    kinds::PORTS_CHANGED,
                    &subject,
                    agent,
                    Severity::Medium,
                    format!("{address}: ports opened {opened:?}, closed {closed:?}"),
                    serde_json::json!({ "opened": opened, "closed": closed }),
                ));
            }
        }
        k.ports = Some(ports);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_shared::DiscoveryMethod;

    fn host(mac: Option<&str>, ports: &[u16]) -> DiscoveredHost {
        DiscoveredHost {
            address: "10.0.0.9".parse().unwrap(),
            mac: mac.map(str::to_string),
            vendor: Some("Cisco".into()),
            hostname: None,
            open_ports: ports.to_vec(),
            rtt_ms: Some(1.0),
            method: DiscoveryMethod::Arp,
        }
    }

    fn kinds_of(signals: &[Signal]) -> Vec<&str> {
        signals.iter().map(Signal::kind).collect()
    }

    #[test]
    fn new_then_unchanged_then_mac_change_then_ports() {
        let mut known = None;
        let mac = Some("00:11:22:33:44:55");
        assert_eq!(
            kinds_of(&observe("a", &mut known, &host(mac, &[22]))),
            vec![kinds::NEW_DEVICE]
        );
        assert!(observe("a", &mut known, &host(mac, &[22])).is_empty());
        assert!(
            observe("a", &mut known, &host(None, &[22])).is_empty(),
            "ICMP-only sighting"
        );
        assert_eq!(
            kinds_of(&observe(
                "a",
                &mut known,
                &host(Some("00:11:22:33:44:66"), &[22])
            )),
            vec![kinds::MAC_CHANGE]
        );
        let signals = observe(
            "a",
            &mut known,
            &host(Some("00:11:22:33:44:66"), &[22, 443]),
        );
        assert_eq!(kinds_of(&signals), vec![kinds::PORTS_CHANGED]);
        let Signal::Firing(a) = &signals[0] else {
            panic!()
        };
        assert_eq!(a.details["opened"], serde_json::json!([443]));
    }

    #[test]
    fn a_sweep_without_a_port_scan_does_not_close_ports() {
        let mut known = Some(Known {
            mac: None,
            ports: None,
        });
        assert!(observe("a", &mut known, &host(None, &[])).is_empty());
        assert!(
            observe("a", &mut known, &host(None, &[80])).is_empty(),
            "first port scan"
        );
        assert_eq!(
            kinds_of(&observe("a", &mut known, &host(None, &[]))),
            vec![kinds::PORTS_CHANGED]
        );
    }
}
