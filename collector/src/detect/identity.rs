//! Inventory changes from discovery: a device never seen before, a MAC address that changed
//! (a replaced box, or someone answering for it), ports that opened or closed. Each is a
//! one-off event: it resolves when acknowledged, or after `[alerting] one_off_resolve_secs`.
//!
//! A host is new only when it appears after its site's first sweep: that sweep is the site's
//! baseline (learnt, not raised), and so is the agent's own address.

use super::{firing, Signal};
use crate::domain::alerting::AnomalyKind;
use crate::domain::alerting::Severity;
use netwarden_shared::DiscoveredHost;
use std::collections::BTreeSet;

/// What is known of a device's identity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Known {
    pub mac: Option<String>,
    /// `None` until a sweep with a port scan has reported it.
    pub ports: Option<BTreeSet<u16>>,
}

/// Compares a sighting with what was known (`None`: never seen) and updates it. `baseline`:
/// the sighting is part of its site's first sweep, learnt without a `new_device`.
pub fn observe(
    agent: &str,
    known: &mut Option<Known>,
    host: &DiscoveredHost,
    baseline: bool,
) -> Vec<Signal> {
    let address = host.address.to_string();
    let subject = format!("{agent}/{address}");
    let mut out = Vec::new();
    let ports: BTreeSet<u16> = host.open_ports.iter().copied().collect();
    let Some(k) = known else {
        *known = Some(Known {
            mac: host.mac.clone(),
            ports: (!ports.is_empty()).then_some(ports),
        });
        if baseline || host.local {
            return out;
        }
        out.push(firing(
            AnomalyKind::NewDevice,
            &subject,
            agent,
            // Medium: the routes a NOC starts with (min_severity = "medium") deliver it.
            Severity::Medium,
            format!(
                "new device {address}{}",
                host.vendor
                    .as_deref()
                    .map(|v| if v.starts_with('(') {
                        format!(" {v}")
                    } else {
                        format!(" ({v})")
                    })
                    .unwrap_or_default()
            ),
            serde_json::json!({
                "mac": host.mac, "vendor": host.vendor, "hostname": host.hostname,
                "ports": host.open_ports, "site": host.site,
            }),
        ));
        return out;
    };
    if let (Some(old), Some(new)) = (&k.mac, &host.mac) {
        if !old.eq_ignore_ascii_case(new) {
            out.push(firing(
                AnomalyKind::MacChange,
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
                    AnomalyKind::PortsChanged,
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
            site: Some("hq".into()),
            local: false,
        }
    }

    fn kinds_of(signals: &[Signal]) -> Vec<AnomalyKind> {
        signals.iter().map(Signal::kind).collect()
    }

    #[test]
    fn new_then_unchanged_then_mac_change_then_ports() {
        let mut known = None;
        let mac = Some("00:11:22:33:44:55");
        assert_eq!(
            kinds_of(&observe("a", &mut known, &host(mac, &[22]), false)),
            vec![AnomalyKind::NewDevice]
        );
        assert!(observe("a", &mut known, &host(mac, &[22]), false).is_empty());
        assert!(
            observe("a", &mut known, &host(None, &[22]), false).is_empty(),
            "ICMP-only sighting"
        );
        assert_eq!(
            kinds_of(&observe(
                "a",
                &mut known,
                &host(Some("00:11:22:33:44:66"), &[22]),
                false
            )),
            vec![AnomalyKind::MacChange]
        );
        let signals = observe(
            "a",
            &mut known,
            &host(Some("00:11:22:33:44:66"), &[22, 443]),
            false,
        );
        assert_eq!(kinds_of(&signals), vec![AnomalyKind::PortsChanged]);
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
        assert!(observe("a", &mut known, &host(None, &[]), false).is_empty());
        assert!(
            observe("a", &mut known, &host(None, &[80]), false).is_empty(),
            "first port scan"
        );
        assert_eq!(
            kinds_of(&observe("a", &mut known, &host(None, &[]), false)),
            vec![AnomalyKind::PortsChanged]
        );
    }

    #[test]
    fn the_first_sweep_and_the_agent_itself_are_learnt_not_new() {
        let mut known = None;
        assert!(observe("a", &mut known, &host(None, &[]), true).is_empty());
        assert!(known.is_some(), "learnt");
        let mut own = None;
        let mut me = host(None, &[]);
        me.local = true;
        assert!(observe("a", &mut own, &me, false).is_empty());
        // A locally administered MAC's vendor is already in brackets.
        let mut fresh = None;
        let mut odd = host(Some("02:6c:61:62:00:01"), &[]);
        odd.vendor = Some("(locally administered)".into());
        let signals = observe("a", &mut fresh, &odd, false);
        let Signal::Firing(a) = &signals[0] else {
            panic!("{signals:?}")
        };
        assert_eq!(a.summary, "new device 10.0.0.9 (locally administered)");
        assert_eq!(a.severity, Severity::Medium);
    }
}
