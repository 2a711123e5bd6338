//! The fleet plan on the wire: one agent's share ([`netwarden_plan::AgentPlan`]). What an agent
//! receives is bounded here; it checks addresses and settings itself as it applies them.

use crate::convert::ConvertError;
use crate::v1;
use netwarden_plan as plan;

/// Most entries in one list of an agent's share.
pub const MAX_PLAN_ENTRIES: usize = 200_000;
const MAX_TEXT: usize = 255;
const MAX_URL: usize = 2048;

fn fail(field: impl Into<String>, message: impl Into<String>) -> ConvertError {
    ConvertError {
        field: field.into(),
        message: message.into(),
    }
}

fn text(field: impl Fn() -> String, value: String, max: usize) -> Result<String, ConvertError> {
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(fail(
            field(),
            format!("must be at most {max} bytes without control characters"),
        ));
    }
    Ok(value)
}

fn bounded<T>(field: &str, list: Vec<T>) -> Result<Vec<T>, ConvertError> {
    if list.len() > MAX_PLAN_ENTRIES {
        return Err(fail(
            field,
            format!("holds {} entries, more than {MAX_PLAN_ENTRIES}", list.len()),
        ));
    }
    Ok(list)
}

fn icmp_to_wire(c: &plan::Check) -> v1::IcmpSettings {
    v1::IcmpSettings {
        count: c.count,
        interval_secs: c.interval_secs,
        ping_interval_ms: c.ping_interval_ms,
        timeout_ms: c.timeout_ms,
        min_timeout_ms: c.min_timeout_ms,
        degraded_loss_pct: c.degraded_loss_pct,
        degraded_rtt_ms: c.degraded_rtt_ms,
    }
}

fn check_from_wire(name: String, icmp: v1::IcmpSettings) -> plan::Check {
    plan::Check {
        name,
        kind: plan::CheckKind::Icmp,
        count: icmp.count,
        interval_secs: icmp.interval_secs,
        ping_interval_ms: icmp.ping_interval_ms,
        timeout_ms: icmp.timeout_ms,
        min_timeout_ms: icmp.min_timeout_ms,
        degraded_loss_pct: icmp.degraded_loss_pct,
        degraded_rtt_ms: icmp.degraded_rtt_ms,
        ports: Vec::new(),
    }
}

fn tcp_to_wire(c: &plan::Check) -> v1::TcpSettings {
    v1::TcpSettings {
        ports: c.ports.iter().map(|p| u32::from(*p)).collect(),
        interval_secs: c.interval_secs,
        timeout_ms: c.timeout_ms,
    }
}

/// `{field}.ports`, each 1 to 65535.
fn ports_from_wire(field: &str, ports: Vec<u32>) -> Result<Vec<u16>, ConvertError> {
    ports
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| fail(format!("{field}.ports[{i}]"), "must be 1 to 65535"))
        })
        .collect()
}

fn tcp_from_wire(
    field: &str,
    name: String,
    tcp: v1::TcpSettings,
) -> Result<plan::Check, ConvertError> {
    if tcp.ports.len() > plan::MAX_CHECK_PORTS {
        return Err(fail(
            format!("{field}.ports"),
            format!(
                "holds {} ports, more than {}",
                tcp.ports.len(),
                plan::MAX_CHECK_PORTS
            ),
        ));
    }
    let ports = ports_from_wire(field, tcp.ports)?;
    Ok(plan::Check {
        name,
        kind: plan::CheckKind::Tcp,
        interval_secs: tcp.interval_secs,
        timeout_ms: tcp.timeout_ms,
        ports,
        ..plan::Check::default()
    })
}

fn targets_to_wire(targets: &[plan::PlannedTarget]) -> Vec<v1::PlannedTarget> {
    targets
        .iter()
        .map(|t| v1::PlannedTarget {
            name: t.name.clone(),
            address: t.address.clone(),
            force: t.force,
        })
        .collect()
}

fn targets_from_wire(
    field: &str,
    targets: Vec<v1::PlannedTarget>,
) -> Result<Vec<plan::PlannedTarget>, ConvertError> {
    bounded(&format!("{field}.targets"), targets)?
        .into_iter()
        .enumerate()
        .map(|(j, t)| {
            Ok(plan::PlannedTarget {
                name: text(|| format!("{field}.targets[{j}].name"), t.name, MAX_TEXT)?,
                address: text(
                    || format!("{field}.targets[{j}].address"),
                    t.address,
                    MAX_TEXT,
                )?,
                force: t.force,
            })
        })
        .collect()
}

fn texts(field: &str, list: Vec<String>, max: usize) -> Result<Vec<String>, ConvertError> {
    bounded(field, list)?
        .into_iter()
        .enumerate()
        .map(|(i, t)| text(|| format!("{field}[{i}]"), t, max))
        .collect()
}

fn enrol_from_wire(field: &str, e: v1::EnrolPolicy) -> Result<plan::EnrolAssignment, ConvertError> {
    let icmp = e
        .icmp
        .ok_or_else(|| fail(format!("{field}.icmp"), "is missing"))?;
    let ports = ports_from_wire(field, bounded(&format!("{field}.ports"), e.ports)?)?;
    Ok(plan::EnrolAssignment {
        check: check_from_wire(text(|| format!("{field}.check"), e.check, MAX_TEXT)?, icmp),
        all: e.all,
        addresses: texts(&format!("{field}.addresses"), e.addresses, MAX_TEXT)?,
        vendors: texts(&format!("{field}.vendors"), e.vendors, MAX_TEXT)?,
        ports,
        hostname_suffixes: texts(
            &format!("{field}.hostname_suffixes"),
            e.hostname_suffixes,
            MAX_TEXT,
        )?,
    })
}

pub fn agent_plan_to_wire(p: &plan::AgentPlan) -> v1::AgentPlan {
    v1::AgentPlan {
        version: p.version,
        probes: p
            .probes
            .iter()
            .map(|g| v1::ProbeGroup {
                check: g.check.name.clone(),
                icmp: Some(icmp_to_wire(&g.check)),
                targets: targets_to_wire(&g.targets),
            })
            .collect(),
        ports: p
            .ports
            .iter()
            .map(|g| v1::PortGroup {
                check: g.check.name.clone(),
                tcp: Some(tcp_to_wire(&g.check)),
                targets: targets_to_wire(&g.targets),
            })
            .collect(),
        discovery: p
            .discovery
            .iter()
            .map(|d| v1::DiscoveryAssignment {
                name: d.name.clone(),
                cidrs: d.cidrs.clone(),
                interval_secs: d.interval_secs,
                force: d.force,
                enrol: d.enrol.as_ref().map(|e| v1::EnrolPolicy {
                    check: e.check.name.clone(),
                    icmp: Some(icmp_to_wire(&e.check)),
                    all: e.all,
                    addresses: e.addresses.clone(),
                    vendors: e.vendors.clone(),
                    ports: e.ports.iter().map(|p| u32::from(*p)).collect(),
                    hostname_suffixes: e.hostname_suffixes.clone(),
                }),
                ignore: d.ignore.clone(),
            })
            .collect(),
        speedtests: p
            .speedtests
            .iter()
            .map(|s| v1::SpeedTestAssignment {
                name: s.name.clone(),
                url: s.url.clone(),
                download_url: s.download_url.clone().unwrap_or_default(),
                upload_url: s.upload_url.clone().unwrap_or_default(),
                interval_secs: s.interval_secs,
                download_bytes: s.download_bytes,
                upload_bytes: s.upload_bytes,
                timeout_secs: s.timeout_secs,
            })
            .collect(),
    }
}

pub fn agent_plan_from_wire(p: v1::AgentPlan) -> Result<plan::AgentPlan, ConvertError> {
    let mut probes = Vec::new();
    for (i, g) in bounded("probes", p.probes)?.into_iter().enumerate() {
        let icmp = g
            .icmp
            .ok_or_else(|| fail(format!("probes[{i}].icmp"), "is missing"))?;
        let targets = targets_from_wire(&format!("probes[{i}]"), g.targets)?;
        probes.push(plan::ProbeGroup {
            check: check_from_wire(
                text(|| format!("probes[{i}].check"), g.check, MAX_TEXT)?,
                icmp,
            ),
            targets,
        });
    }
    let mut ports = Vec::new();
    for (i, g) in bounded("ports", p.ports)?.into_iter().enumerate() {
        let field = format!("ports[{i}]");
        let tcp = g
            .tcp
            .ok_or_else(|| fail(format!("{field}.tcp"), "is missing"))?;
        let name = text(|| format!("{field}.check"), g.check, MAX_TEXT)?;
        ports.push(plan::ProbeGroup {
            check: tcp_from_wire(&format!("{field}.tcp"), name, tcp)?,
            targets: targets_from_wire(&field, g.targets)?,
        });
    }
    let mut discovery = Vec::new();
    for (i, d) in bounded("discovery", p.discovery)?.into_iter().enumerate() {
        discovery.push(plan::DiscoveryAssignment {
            name: text(|| format!("discovery[{i}].name"), d.name, MAX_TEXT)?,
            cidrs: texts(&format!("discovery[{i}].cidrs"), d.cidrs, MAX_TEXT)?,
            interval_secs: d.interval_secs,
            force: d.force,
            enrol: d
                .enrol
                .map(|e| enrol_from_wire(&format!("discovery[{i}].enrol"), e))
                .transpose()?,
            ignore: texts(&format!("discovery[{i}].ignore"), d.ignore, MAX_TEXT)?,
        });
    }
    let mut speedtests = Vec::new();
    for (i, s) in bounded("speedtests", p.speedtests)?.into_iter().enumerate() {
        speedtests.push(plan::SpeedTestAssignment {
            name: text(|| format!("speedtests[{i}].name"), s.name, MAX_TEXT)?,
            url: text(|| format!("speedtests[{i}].url"), s.url, MAX_URL)?,
            download_url: optional_url(format!("speedtests[{i}].download_url"), s.download_url)?,
            upload_url: optional_url(format!("speedtests[{i}].upload_url"), s.upload_url)?,
            interval_secs: s.interval_secs,
            download_bytes: s.download_bytes,
            upload_bytes: s.upload_bytes,
            timeout_secs: s.timeout_secs,
        });
    }
    Ok(plan::AgentPlan {
        version: p.version,
        probes,
        discovery,
        speedtests,
        ports,
    })
}

/// An optional URL on the wire: empty is none.
fn optional_url(field: String, url: String) -> Result<Option<String>, ConvertError> {
    if url.is_empty() {
        return Ok(None);
    }
    text(|| field.clone(), url, MAX_URL).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(kind: plan::CheckKind, ports: Vec<u16>) -> plan::ProbeGroup {
        plan::ProbeGroup {
            check: plan::Check {
                name: format!("{kind:?}"),
                kind,
                ports,
                ..plan::Check::default()
            },
            targets: vec![plan::PlannedTarget {
                name: "web".into(),
                address: "192.0.2.10".into(),
                force: false,
            }],
        }
    }

    #[test]
    fn port_groups_travel_beside_probe_groups() {
        let share = plan::AgentPlan {
            version: 4,
            probes: vec![group(plan::CheckKind::Icmp, vec![])],
            ports: vec![group(plan::CheckKind::Tcp, vec![22, 443])],
            ..plan::AgentPlan::default()
        };
        let wire = agent_plan_to_wire(&share);
        assert_eq!(wire.ports[0].tcp.as_ref().unwrap().ports, [22, 443]);
        assert_eq!(agent_plan_from_wire(wire).unwrap(), share);
    }

    #[test]
    fn a_port_group_out_of_bounds_is_refused_by_field() {
        let share = plan::AgentPlan {
            ports: vec![group(plan::CheckKind::Tcp, vec![22])],
            ..plan::AgentPlan::default()
        };
        let mut wire = agent_plan_to_wire(&share);
        wire.ports[0].tcp.as_mut().unwrap().ports = vec![22, 0];
        assert_eq!(
            agent_plan_from_wire(wire.clone()).unwrap_err().to_string(),
            "ports[0].tcp.ports[1]: must be 1 to 65535"
        );
        wire.ports[0].tcp.as_mut().unwrap().ports = (1..=33).collect();
        assert_eq!(
            agent_plan_from_wire(wire.clone()).unwrap_err().field,
            "ports[0].tcp.ports"
        );
        wire.ports[0].tcp = None;
        assert_eq!(
            agent_plan_from_wire(wire).unwrap_err().field,
            "ports[0].tcp"
        );
    }
}
