//! Conversions between wire messages and shared domain types. Wire input is untrusted: every
//! field is checked against bounds and an error names the field that failed.

use crate::v1;
use chrono::{DateTime, Utc};
use netwarden_shared as shared;
use std::net::IpAddr;

/// Most records one batch may carry; the message-size limit bounds it too.
pub const MAX_RECORDS_PER_BATCH: usize = 100_000;
/// Most pings one round may report.
pub const MAX_PINGS_PER_ROUND: u32 = 10_000;
const MAX_TEXT: usize = 255;
const MAX_URL: usize = 2048;
const MAX_PORTS: usize = 1024;

/// A wire message that does not make a valid domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConvertError {
    pub field: String,
    pub message: String,
}

fn fail(field: impl Into<String>, message: impl Into<String>) -> ConvertError {
    ConvertError {
        field: field.into(),
        message: message.into(),
    }
}

impl ConvertError {
    /// Puts `parent` in front of the field path. Paths are built only on the error path, so
    /// valid input costs no allocation for them.
    fn under(mut self, parent: impl std::fmt::Display) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

/// Validates a received batch. The claimed agent id is carried along only for comparison with
/// the certificate identity.
pub fn batch_from_wire(batch: v1::Batch) -> Result<shared::Batch, ConvertError> {
    if batch.sequence == 0 {
        return Err(fail("sequence", "must be 1 or more"));
    }
    if batch.records.len() > MAX_RECORDS_PER_BATCH {
        return Err(fail(
            "records",
            format!(
                "{} records is more than the limit of {MAX_RECORDS_PER_BATCH} per batch",
                batch.records.len()
            ),
        ));
    }
    let status = batch.status.unwrap_or_default();
    let records = batch
        .records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            record_from_wire(record).map_err(|e| e.under(format_args!("records[{i}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(shared::Batch {
        sequence: batch.sequence,
        claimed_agent_id: (!batch.agent_id.is_empty()).then_some(batch.agent_id),
        status: shared::AgentStatus {
            buffer_backlog: status.buffer_backlog,
            dropped_total: status.dropped_total,
        },
        records,
    })
}

fn record_from_wire(record: v1::Record) -> Result<shared::Record, ConvertError> {
    if record.record_id == 0 {
        return Err(fail("record_id", "must be 1 or more"));
    }
    let observed_at: DateTime<Utc> = DateTime::from_timestamp_millis(record.observed_at_unix_ms)
        .filter(|t| t.timestamp() > 0)
        .ok_or_else(|| {
            fail(
                "observed_at_unix_ms",
                format!("{} is not a valid time", record.observed_at_unix_ms),
            )
        })?;
    let kind = match record.kind {
        Some(v1::record::Kind::ProbeRound(p)) => {
            shared::RecordKind::Probe(probe_from_wire(p).map_err(|e| e.under("probe_round"))?)
        }
        Some(v1::record::Kind::DiscoveredHost(d)) => shared::RecordKind::Discovery(
            discovered_from_wire(d).map_err(|e| e.under("discovered_host"))?,
        ),
        Some(v1::record::Kind::SpeedTest(s)) => {
            shared::RecordKind::SpeedTest(speed_from_wire(s).map_err(|e| e.under("speed_test"))?)
        }
        Some(v1::record::Kind::PortCheck(c)) => {
            shared::RecordKind::Port(port_from_wire(c).map_err(|e| e.under("port_check"))?)
        }
        None => return Err(fail("kind", "missing or of an unknown kind")),
    };
    Ok(shared::Record {
        record_id: record.record_id,
        observed_at,
        kind,
    })
}

fn ip(field: &str, value: &str) -> Result<IpAddr, ConvertError> {
    value
        .parse()
        .map_err(|_| fail(field, format!("{:?} is not an IP address", truncate(value))))
}

fn truncate(value: &str) -> &str {
    match value.char_indices().nth(64) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

fn ms(field: &str, value: f32) -> Result<f32, ConvertError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(fail(field, format!("{value} is not a duration in ms")))
    }
}

fn text(field: &str, value: String, max: usize) -> Result<Option<String>, ConvertError> {
    if value.len() > max {
        return Err(fail(field, format!("longer than {max} bytes")));
    }
    // A NUL is refused by PostgreSQL and control characters would forge lines in logs; agents
    // clean what they discover (`shared::clean_text`), so one here is a bug or an attack.
    if let Some((at, c)) = value.char_indices().find(|(_, c)| c.is_control()) {
        return Err(fail(
            field,
            format!(
                "contains the control character U+{:04X} at byte {at}",
                u32::from(c)
            ),
        ));
    }
    Ok((!value.is_empty()).then_some(value))
}

fn probe_from_wire(p: v1::ProbeRound) -> Result<shared::ProbeRound, ConvertError> {
    let target = ip("target", &p.target)?;
    if p.sent > MAX_PINGS_PER_ROUND {
        return Err(fail(
            "sent",
            format!("{} is more than {MAX_PINGS_PER_ROUND}", p.sent),
        ));
    }
    if p.received > p.sent {
        return Err(fail(
            "received",
            format!("{} is more than sent ({})", p.received, p.sent),
        ));
    }
    if p.rtts_ms.len() != p.received as usize {
        return Err(fail(
            "rtts_ms",
            format!("{} values for {} replies", p.rtts_ms.len(), p.received),
        ));
    }
    if let Some(i) = p.rtts_ms.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(fail(
            format!("rtts_ms[{i}]"),
            format!("{} is not a duration in ms", p.rtts_ms[i]),
        ));
    }
    let status = match v1::DeviceStatus::try_from(p.status) {
        Ok(v1::DeviceStatus::Online) => shared::DeviceStatus::Online,
        Ok(v1::DeviceStatus::Degraded) => shared::DeviceStatus::Degraded,
        Ok(v1::DeviceStatus::Offline) => shared::DeviceStatus::Offline,
        _ => return Err(fail("status", format!("unknown status {}", p.status))),
    };
    let rtt = if p.received == 0 {
        None
    } else {
        Some(shared::RttStats {
            min: ms("rtt_min_ms", p.rtt_min_ms)?,
            median: ms("rtt_median_ms", p.rtt_median_ms)?,
            mean: ms("rtt_mean_ms", p.rtt_mean_ms)?,
            max: ms("rtt_max_ms", p.rtt_max_ms)?,
            p95: ms("rtt_p95_ms", p.rtt_p95_ms)?,
            stddev: ms("rtt_stddev_ms", p.rtt_stddev_ms)?,
            jitter: ms("jitter_ms", p.jitter_ms)?,
        })
    };
    // Agents before 0.2 say nothing: a round with replies is alive by ICMP.
    let alive_by = match v1::Evidence::try_from(p.alive_by) {
        Ok(v1::Evidence::Icmp) => Some(shared::Evidence::Icmp),
        Ok(v1::Evidence::Arp) => Some(shared::Evidence::Arp),
        Ok(v1::Evidence::Tcp) => Some(shared::Evidence::Tcp),
        Ok(v1::Evidence::Unspecified) if p.received > 0 => Some(shared::Evidence::Icmp),
        Ok(v1::Evidence::Unspecified) => None,
        Err(_) => return Err(fail("alive_by", format!("unknown evidence {}", p.alive_by))),
    };
    if alive_by.is_none() && status != shared::DeviceStatus::Offline {
        return Err(fail("alive_by", "an online round needs evidence"));
    }
    Ok(shared::ProbeRound {
        target,
        sent: p.sent,
        received: p.received,
        rtt,
        rtts_ms: p.rtts_ms,
        status,
        alive_by,
    })
}

fn discovered_from_wire(d: v1::DiscoveredHost) -> Result<shared::DiscoveredHost, ConvertError> {
    let address = ip("address", &d.address)?;
    let mac = text("mac", d.mac, 17)?;
    if let Some(mac) = &mac {
        let ok = mac.len() == 17
            && mac.split(':').count() == 6
            && mac
                .split(':')
                .all(|o| o.len() == 2 && u8::from_str_radix(o, 16).is_ok());
        if !ok {
            return Err(fail("mac", format!("{mac:?} is not a MAC address")));
        }
    }
    if d.open_ports.len() > MAX_PORTS {
        return Err(fail("open_ports", "too many ports"));
    }
    let open_ports = d
        .open_ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            u16::try_from(*p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| fail(format!("open_ports[{i}]"), format!("{p} is not a port")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let method = match v1::DiscoveryMethod::try_from(d.method) {
        Ok(v1::DiscoveryMethod::Icmp) => shared::DiscoveryMethod::Icmp,
        Ok(v1::DiscoveryMethod::Arp) => shared::DiscoveryMethod::Arp,
        Ok(v1::DiscoveryMethod::IcmpAndArp) => shared::DiscoveryMethod::IcmpAndArp,
        _ => return Err(fail("method", format!("unknown method {}", d.method))),
    };
    Ok(shared::DiscoveredHost {
        address,
        mac: mac.map(|m| m.to_ascii_lowercase()),
        vendor: text("vendor", d.vendor, MAX_TEXT)?,
        hostname: text("hostname", d.hostname, MAX_TEXT)?,
        open_ports,
        rtt_ms: if d.rtt_ms > 0.0 {
            Some(ms("rtt_ms", d.rtt_ms)?)
        } else {
            None
        },
        method,
        site: text("site", d.site, MAX_TEXT)?,
        local: d.local,
    })
}

fn speed_from_wire(s: v1::SpeedTest) -> Result<shared::SpeedTest, ConvertError> {
    let url = text("url", s.url, MAX_URL)?.ok_or_else(|| fail("url", "missing"))?;
    let direction = match v1::SpeedDirection::try_from(s.direction) {
        Ok(v1::SpeedDirection::Download) => shared::SpeedDirection::Download,
        Ok(v1::SpeedDirection::Upload) => shared::SpeedDirection::Upload,
        _ => {
            return Err(fail(
                "direction",
                format!("unknown direction {}", s.direction),
            ))
        }
    };
    if !(s.mbps.is_finite() && s.mbps >= 0.0) {
        return Err(fail("mbps", format!("{} is not a rate", s.mbps)));
    }
    Ok(shared::SpeedTest {
        url,
        direction,
        bytes: s.bytes,
        duration_us: s.duration_us,
        mbps: s.mbps,
        error: text("error", s.error, 1024)?,
    })
}

/// The longest connection time a port check can report (its timeout is capped below this).
const MAX_CONNECT_MS: f32 = 600_000.0;

fn port_from_wire(c: v1::PortCheck) -> Result<shared::PortCheck, ConvertError> {
    let target = ip("target", &c.target)?;
    let port = u16::try_from(c.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| fail("port", format!("{} is not 1 to 65535", c.port)))?;
    let state = match v1::PortState::try_from(c.state) {
        Ok(v1::PortState::Open) => shared::PortState::Open,
        Ok(v1::PortState::Refused) => shared::PortState::Refused,
        Ok(v1::PortState::Timeout) => shared::PortState::Timeout,
        Ok(v1::PortState::Unreachable) => shared::PortState::Unreachable,
        _ => return Err(fail("state", format!("unknown state {}", c.state))),
    };
    let connect_ms = match c.connect_ms {
        Some(ms) if state != shared::PortState::Open => {
            return Err(fail(
                "connect_ms",
                format!("{ms} given for a port that is not open"),
            ))
        }
        Some(ms) if !(ms.is_finite() && (0.0..=MAX_CONNECT_MS).contains(&ms)) => {
            return Err(fail(
                "connect_ms",
                format!("{ms} is not 0 to {MAX_CONNECT_MS}"),
            ))
        }
        other => other,
    };
    Ok(shared::PortCheck {
        target,
        port,
        state,
        connect_ms,
    })
}

/// Encodes a domain record for the wire (agent side).
pub fn record_to_wire(record: &shared::Record) -> v1::Record {
    let kind = match &record.kind {
        shared::RecordKind::Probe(p) => {
            let rtt = p.rtt.unwrap_or_default();
            v1::record::Kind::ProbeRound(v1::ProbeRound {
                target: p.target.to_string(),
                sent: p.sent,
                received: p.received,
                rtt_min_ms: rtt.min,
                rtt_median_ms: rtt.median,
                rtt_mean_ms: rtt.mean,
                rtt_max_ms: rtt.max,
                rtt_p95_ms: rtt.p95,
                rtt_stddev_ms: rtt.stddev,
                jitter_ms: rtt.jitter,
                rtts_ms: p.rtts_ms.clone(),
                status: match p.status {
                    shared::DeviceStatus::Online => v1::DeviceStatus::Online,
                    shared::DeviceStatus::Degraded => v1::DeviceStatus::Degraded,
                    shared::DeviceStatus::Offline => v1::DeviceStatus::Offline,
                } as i32,
                alive_by: match p.alive_by {
                    None => v1::Evidence::Unspecified,
                    Some(shared::Evidence::Icmp) => v1::Evidence::Icmp,
                    Some(shared::Evidence::Arp) => v1::Evidence::Arp,
                    Some(shared::Evidence::Tcp) => v1::Evidence::Tcp,
                } as i32,
            })
        }
        shared::RecordKind::Discovery(d) => v1::record::Kind::DiscoveredHost(v1::DiscoveredHost {
            address: d.address.to_string(),
            mac: d.mac.clone().unwrap_or_default(),
            vendor: d.vendor.clone().unwrap_or_default(),
            hostname: d.hostname.clone().unwrap_or_default(),
            open_ports: d.open_ports.iter().map(|p| u32::from(*p)).collect(),
            rtt_ms: d.rtt_ms.unwrap_or(0.0),
            method: match d.method {
                shared::DiscoveryMethod::Icmp => v1::DiscoveryMethod::Icmp,
                shared::DiscoveryMethod::Arp => v1::DiscoveryMethod::Arp,
                shared::DiscoveryMethod::IcmpAndArp => v1::DiscoveryMethod::IcmpAndArp,
            } as i32,
            site: d.site.clone().unwrap_or_default(),
            local: d.local,
        }),
        shared::RecordKind::SpeedTest(s) => v1::record::Kind::SpeedTest(v1::SpeedTest {
            url: s.url.clone(),
            direction: match s.direction {
                shared::SpeedDirection::Download => v1::SpeedDirection::Download,
                shared::SpeedDirection::Upload => v1::SpeedDirection::Upload,
            } as i32,
            bytes: s.bytes,
            duration_us: s.duration_us,
            mbps: s.mbps,
            error: s.error.clone().unwrap_or_default(),
        }),
        shared::RecordKind::Port(c) => v1::record::Kind::PortCheck(v1::PortCheck {
            target: c.target.to_string(),
            port: u32::from(c.port),
            state: match c.state {
                shared::PortState::Open => v1::PortState::Open,
                shared::PortState::Refused => v1::PortState::Refused,
                shared::PortState::Timeout => v1::PortState::Timeout,
                shared::PortState::Unreachable => v1::PortState::Unreachable,
            } as i32,
            connect_ms: c.connect_ms,
        }),
    };
    v1::Record {
        record_id: record.record_id,
        observed_at_unix_ms: record.observed_at.timestamp_millis(),
        kind: Some(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(record_id: u64) -> shared::Record {
        shared::Record {
            record_id,
            observed_at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            kind: shared::RecordKind::Probe(shared::ProbeRound {
                target: "2001:db8::1".parse().unwrap(),
                sent: 3,
                received: 2,
                rtt: Some(shared::RttStats {
                    min: 1.0,
                    median: 1.5,
                    mean: 1.5,
                    max: 2.0,
                    p95: 2.0,
                    stddev: 0.5,
                    jitter: 1.0,
                }),
                rtts_ms: vec![1.0, 2.0],
                status: shared::DeviceStatus::Degraded,
                alive_by: Some(shared::Evidence::Icmp),
            }),
        }
    }

    fn batch(records: Vec<v1::Record>) -> v1::Batch {
        v1::Batch {
            sequence: 7,
            agent_id: String::new(),
            status: Some(v1::AgentStatus {
                buffer_backlog: 3,
                dropped_total: 1,
                agent_version: "0.1.0".into(),
            }),
            records,
        }
    }

    #[test]
    fn every_record_kind_survives_the_round_trip() {
        let records = vec![
            probe(1),
            shared::Record {
                record_id: 2,
                observed_at: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
                kind: shared::RecordKind::Discovery(shared::DiscoveredHost {
                    address: "10.0.0.9".parse().unwrap(),
                    mac: Some("02:6c:61:62:00:01".into()),
                    vendor: Some("Acme".into()),
                    hostname: None,
                    open_ports: vec![22, 443],
                    rtt_ms: Some(0.4),
                    method: shared::DiscoveryMethod::IcmpAndArp,
                    site: Some("hq".into()),
                    local: true,
                }),
            },
            shared::Record {
                record_id: 3,
                observed_at: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
                kind: shared::RecordKind::SpeedTest(shared::SpeedTest {
                    url: "https://c/speedtest/download".into(),
                    direction: shared::SpeedDirection::Download,
                    bytes: 10_000_000,
                    duration_us: 800_000,
                    mbps: 100.0,
                    error: None,
                }),
            },
            port_check(4, shared::PortState::Open, Some(0.35)),
            port_check(5, shared::PortState::Refused, None),
            port_check(6, shared::PortState::Timeout, None),
            port_check(7, shared::PortState::Unreachable, None),
        ];
        let wire = batch(records.iter().map(record_to_wire).collect());
        let back = batch_from_wire(wire).unwrap();
        assert_eq!(back.records, records);
        assert_eq!(back.sequence, 7);
        assert_eq!(back.status.buffer_backlog, 3);
        assert_eq!(back.claimed_agent_id, None);
    }

    fn port_check(record_id: u64, state: shared::PortState, ms: Option<f32>) -> shared::Record {
        shared::Record {
            record_id,
            observed_at: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
            kind: shared::RecordKind::Port(shared::PortCheck {
                target: "2001:db8::7".parse().unwrap(),
                port: 443,
                state,
                connect_ms: ms,
            }),
        }
    }

    #[test]
    fn a_port_check_out_of_bounds_is_refused_by_field() {
        let bad = |edit: fn(&mut v1::PortCheck)| {
            let mut wire = record_to_wire(&port_check(1, shared::PortState::Open, Some(1.0)));
            if let Some(v1::record::Kind::PortCheck(c)) = wire.kind.as_mut() {
                edit(c);
            }
            batch_from_wire(batch(vec![wire])).unwrap_err().to_string()
        };
        assert_eq!(
            bad(|c| c.port = 0),
            "records[0].port_check.port: 0 is not 1 to 65535"
        );
        assert_eq!(
            bad(|c| c.port = 70_000),
            "records[0].port_check.port: 70000 is not 1 to 65535"
        );
        assert_eq!(
            bad(|c| c.state = 9),
            "records[0].port_check.state: unknown state 9"
        );
        assert_eq!(
            bad(|c| c.connect_ms = Some(f32::INFINITY)),
            "records[0].port_check.connect_ms: inf is not 0 to 600000"
        );
        assert_eq!(
            bad(|c| c.state = v1::PortState::Refused as i32),
            "records[0].port_check.connect_ms: 1 given for a port that is not open"
        );
        assert_eq!(
            bad(|c| c.target = "host".into()),
            "records[0].port_check.target: \"host\" is not an IP address"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let mut wire = record_to_wire(&probe(1));
        if let Some(v1::record::Kind::ProbeRound(p)) = wire.kind.as_mut() {
            p.target = "not-an-ip".into();
        }
        let err = batch_from_wire(batch(vec![record_to_wire(&probe(1)), wire])).unwrap_err();
        assert_eq!(err.field, "records[1].probe_round.target");

        let mut wire = record_to_wire(&probe(1));
        if let Some(v1::record::Kind::ProbeRound(p)) = wire.kind.as_mut() {
            p.received = 5;
        }
        let err = batch_from_wire(batch(vec![wire])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "records[0].probe_round.received: 5 is more than sent (3)"
        );

        let mut wire = record_to_wire(&probe(1));
        if let Some(v1::record::Kind::ProbeRound(p)) = wire.kind.as_mut() {
            p.rtts_ms[0] = f32::NAN;
        }
        let err = batch_from_wire(batch(vec![wire])).unwrap_err();
        assert_eq!(err.field, "records[0].probe_round.rtts_ms[0]");

        let mut wire = record_to_wire(&probe(1));
        wire.kind = None;
        assert_eq!(
            batch_from_wire(batch(vec![wire])).unwrap_err().field,
            "records[0].kind"
        );

        let mut zero = batch(vec![]);
        zero.sequence = 0;
        assert_eq!(batch_from_wire(zero).unwrap_err().field, "sequence");
    }

    #[test]
    fn control_characters_in_text_are_refused_with_their_place() {
        let host = |hostname: &str| v1::Record {
            record_id: 1,
            observed_at_unix_ms: 1_700_000_000_000,
            kind: Some(v1::record::Kind::DiscoveredHost(v1::DiscoveredHost {
                address: "10.0.0.9".into(),
                hostname: hostname.into(),
                method: v1::DiscoveryMethod::Arp as i32,
                ..Default::default()
            })),
        };
        for (name, code, at) in [
            ("printer\0.lan", "U+0000", 7),
            ("a\nforged log line", "U+000A", 1),
            ("x\u{85}", "U+0085", 1),
        ] {
            let err = batch_from_wire(batch(vec![host(name)])).unwrap_err();
            assert_eq!(err.field, "records[0].discovered_host.hostname");
            assert!(
                err.message.contains(code) && err.message.contains(&format!("byte {at}")),
                "{err}"
            );
        }
        let ok = batch_from_wire(batch(vec![host("printer-2.büro.lan")])).unwrap();
        assert_eq!(ok.records.len(), 1);
    }

    #[test]
    fn claimed_identity_is_carried_for_comparison() {
        let mut wire = batch(vec![]);
        wire.agent_id = "someone-else".into();
        assert_eq!(
            batch_from_wire(wire).unwrap().claimed_agent_id.as_deref(),
            Some("someone-else")
        );
    }
}
