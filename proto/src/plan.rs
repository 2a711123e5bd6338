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
    }
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
    let ports = bounded(&format!("{field}.ports"), e.ports)?
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| fail(format!("{field}.ports[{i}]"), "must be 1 to 65535"))
        })
        .collect::<Result<_, _>>()?;
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
                targets: g
                    .targets
                    .iter()
                    .map(|t| v1::PlannedTarget {
                        name: t.name.clone(),
                        address: t.address.clone(),
                        force: t.force,
                    })
                    .collect(),
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
        let mut targets = Vec::new();
        for (j, t) in bounded(&format!("probes[{i}].targets"), g.targets)?
            .into_iter()
            .enumerate()
        {
            targets.push(plan::PlannedTarget {
                name: text(
                    || format!("probes[{i}].targets[{j}].name"),
                    t.name,
                    MAX_TEXT,
                )?,
                address: text(
                    || format!("probes[{i}].targets[{j}].address"),
                    t.address,
                    MAX_TEXT,
                )?,
                force: t.force,
            });
        }
        probes.push(plan::ProbeGroup {
            check: check_from_wire(
                text(|| format!("probes[{i}].check"), g.check, MAX_TEXT)?,
                icmp,
            ),
            targets,
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
    })
}
