//! Evidence, for a target no ping reached, that it is there all the same: an ARP reply at the
//! round (ICMP-silent hosts on an attached subnet: printers, firewalled servers), or a
//! connection to a port discovery found open on it. The round then says `Online` and how it
//! knows; the collector judges no loss, latency or jitter from it. A host that answers none of
//! these stays offline: nothing older (a sweep minutes ago) stands in for evidence now.

use crate::discovery::{self, DiscoveryOptions};
use crate::icmp::RateLimiter;
use netwarden_shared::{DeviceStatus, Evidence, Record, RecordKind};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Open ports each discovered host had at its site's last sweep (filled by the discovery
/// loops, read by the probe loop).
pub type OpenPorts = Arc<Mutex<HashMap<IpAddr, Vec<u16>>>>;

/// How long a connection to a known open port may take.
const TCP_TIMEOUT: Duration = Duration::from_millis(500);
/// How long an ARP reply may take: on the attached LAN it comes in a millisecond or two, and
/// the round's records (every target's) wait for this check, so the outage of a whole LAN
/// must not hold them up for the sweep's 1 s ceiling per attempt.
const ARP_TIMEOUT: Duration = Duration::from_millis(250);

/// Looks for other evidence of the targets whose rounds got no reply and marks those it finds.
pub async fn corroborate(records: &mut [Record], ports: &OpenPorts, rate: Arc<RateLimiter>) {
    let silent: Vec<IpAddr> = records
        .iter()
        .filter_map(|r| match &r.kind {
            RecordKind::Probe(p) if p.alive_by.is_none() => Some(p.target),
            _ => None,
        })
        .collect();
    if silent.is_empty() {
        return;
    }
    let options = DiscoveryOptions {
        reverse_dns: false,
        timeout: crate::icmp::TimeoutPolicy {
            floor: Duration::from_millis(50),
            ceiling: ARP_TIMEOUT,
            multiplier: 4.0,
        },
        ..DiscoveryOptions::default()
    };
    let mut found: HashMap<IpAddr, Evidence> = discovery::arp_alive(&silent, &options, rate)
        .await
        .into_iter()
        .map(|ip| (ip, Evidence::Arp))
        .collect();
    let known: Vec<(IpAddr, Vec<u16>)> = {
        let ports = ports.lock().unwrap_or_else(|e| e.into_inner());
        silent
            .iter()
            .filter(|ip| !found.contains_key(ip))
            .filter_map(|ip| ports.get(ip).map(|p| (*ip, p.clone())))
            .filter(|(_, p)| !p.is_empty())
            .collect()
    };
    let checks = known.into_iter().map(|(ip, ports)| async move {
        for port in ports.into_iter().take(3) {
            let connect = tokio::net::TcpStream::connect(SocketAddr::new(ip, port));
            if let Ok(Ok(_)) = tokio::time::timeout(TCP_TIMEOUT, connect).await {
                return Some(ip);
            }
        }
        None
    });
    for ip in futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
    {
        found.insert(ip, Evidence::Tcp);
    }
    for record in records.iter_mut() {
        if let RecordKind::Probe(p) = &mut record.kind {
            if let (None, Some(how)) = (p.alive_by, found.get(&p.target)) {
                p.alive_by = Some(*how);
                p.status = DeviceStatus::Online;
            }
        }
    }
}
