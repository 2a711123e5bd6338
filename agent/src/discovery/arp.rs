//! ARP discovery on directly attached IPv4 subnets: requests and replies through a raw packet
//! socket (pnet's datalink channel), never through the kernel's neighbour table, which
//! overflows at about 1,024 entries (gc_thresh3) and would turn a big sweep into missed hosts.

use std::net::Ipv4Addr;

pub const FRAME_LEN: usize = 42;

/// A broadcast who-has request for `target` from (`mac`, `ip`).
pub fn request_frame(mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    // target hardware address stays zero
    f[38..42].copy_from_slice(&target.octets());
    f
}

/// The sender of an ARP reply addressed to `our_ip`, if `frame` is one.
pub fn parse_reply(frame: &[u8], our_ip: Ipv4Addr) -> Option<(Ipv4Addr, [u8; 6])> {
    let f = frame.get(..FRAME_LEN)?;
    let be16 = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    if be16(12) != 0x0806 || be16(14) != 1 || be16(16) != 0x0800 || f[18] != 6 || f[19] != 4 {
        return None;
    }
    if be16(20) != 2 || f[38..42] != our_ip.octets() {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&f[22..28]);
    Some((Ipv4Addr::new(f[28], f[29], f[30], f[31]), mac))
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(target_os = "linux")]
pub use linux::{attached_interfaces, scan, ArpHits, ArpInterface};

#[cfg(target_os = "linux")]
mod linux {
    use super::{parse_reply, request_frame};
    use crate::icmp::{RateLimiter, TimeoutPolicy};
    use pnet_datalink::{Channel, Config, NetworkInterface};
    use std::collections::HashMap;
    use std::io;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// Replies so far: address -> (MAC, RTT).
    pub type ArpHits = HashMap<Ipv4Addr, ([u8; 6], Duration)>;

    /// An up, non-loopback interface with an IPv4 address, and the targets on its subnet.
    #[derive(Debug, Clone)]
    pub struct ArpInterface {
        pub name: String,
        pub mac: [u8; 6],
        pub ip: Ipv4Addr,
        interface: NetworkInterface,
    }

    /// Splits IPv4 targets by the attached interface whose subnet holds them; targets on no
    /// attached subnet are left for ICMP alone.
    pub fn attached_interfaces(targets: &[IpAddr]) -> Vec<(ArpInterface, Vec<Ipv4Addr>)> {
        let interfaces: Vec<ArpInterface> = pnet_datalink::interfaces()
            .into_iter()
            .filter(|i| i.is_up() && !i.is_loopback())
            .filter_map(|i| {
                let mac = i.mac?.octets();
                let ip = i.ips.iter().find_map(|n| match n.ip() {
                    IpAddr::V4(ip) => Some(ip),
                    IpAddr::V6(_) => None,
                })?;
                Some(ArpInterface {
                    name: i.name.clone(),
                    mac,
                    ip,
                    interface: i,
                })
            })
            .collect();
        let mut groups: Vec<(ArpInterface, Vec<Ipv4Addr>)> = Vec::new();
        for target in targets {
            let IpAddr::V4(v4) = target else { continue };
            let v4_nets = |i: &ArpInterface| {
                i.interface
                    .ips
                    .iter()
                    .filter(|n| n.is_ipv4())
                    .copied()
                    .collect::<Vec<_>>()
            };
            let Some(iface) = interfaces
                .iter()
                .find(|i| v4_nets(i).iter().any(|n| n.contains(*target)))
            else {
                continue;
            };
            // Our own address on that interface answers ICMP, not ARP.
            if v4_nets(iface).iter().any(|n| n.ip() == *target) {
                continue;
            }
            match groups.iter_mut().find(|(g, _)| g.name == iface.name) {
                Some((_, list)) => list.push(*v4),
                None => groups.push((iface.clone(), vec![*v4])),
            }
        }
        groups
    }

    /// Sends `attempts` rounds of who-has requests (the later ones only to addresses that
    /// have not answered) under the global rate cap, and collects replies with their RTT.
    pub fn scan(
        iface: &ArpInterface,
        targets: &[Ipv4Addr],
        rate: &RateLimiter,
        policy: TimeoutPolicy,
        attempts: u32,
        sent_counter: &AtomicU64,
    ) -> io::Result<ArpHits> {
        let config = Config {
            read_timeout: Some(Duration::from_millis(5)),
            read_buffer_size: 1 << 20,
            ..Config::default()
        };
        let (mut tx, mut rx) = match pnet_datalink::channel(&iface.interface, config)? {
            Channel::Ethernet(tx, rx) => (tx, rx),
            _ => return Err(io::Error::other("not an Ethernet interface")),
        };
        let wanted: Arc<HashMap<Ipv4Addr, ()>> =
            Arc::new(targets.iter().map(|t| (*t, ())).collect());
        let sent_at: Arc<Mutex<HashMap<Ipv4Addr, Instant>>> = Arc::default();
        let found: Arc<Mutex<ArpHits>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let (sent_at, found, stop, wanted) =
                (sent_at.clone(), found.clone(), stop.clone(), wanted.clone());
            let our_ip = iface.ip;
            std::thread::Builder::new()
                .name("arp-rx".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(frame) = rx.next() else { continue };
                        let Some((ip, mac)) = parse_reply(frame, our_ip) else {
                            continue;
                        };
                        if !wanted.contains_key(&ip) {
                            continue;
                        }
                        let rtt = sent_at
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&ip)
                            .map(|t| t.elapsed())
                            .unwrap_or_default();
                        found
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(ip)
                            .or_insert((mac, rtt));
                    }
                })?
        };
        let mut result = Ok(());
        for attempt in 0..attempts.max(1) {
            let policy = crate::discovery::for_attempt(policy, attempt);
            let pending: Vec<Ipv4Addr> = {
                let found = found.lock().unwrap_or_else(|e| e.into_inner());
                targets
                    .iter()
                    .filter(|t| !found.contains_key(t))
                    .copied()
                    .collect()
            };
            if pending.is_empty() {
                break;
            }
            let mut last_send = Instant::now();
            for target in &pending {
                rate.acquire_blocking();
                let frame = request_frame(iface.mac, iface.ip, *target);
                last_send = Instant::now();
                sent_at
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(*target, last_send);
                if let Some(Err(err)) = tx.send_to(&frame, None) {
                    result = Err(err);
                    break;
                }
                sent_counter.fetch_add(1, Ordering::Relaxed);
            }
            if result.is_err() {
                break;
            }
            // Wait as the ICMP engine does: the slowest answer so far, times the multiplier.
            loop {
                let (answered, slowest) = {
                    let found = found.lock().unwrap_or_else(|e| e.into_inner());
                    (found.len(), found.values().map(|v| v.1).max())
                };
                if answered == targets.len() || last_send.elapsed() >= policy.wait_for(slowest) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        stop.store(true, Ordering::Relaxed);
        let _ = receiver.join();
        result?;
        let found = found.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_to_our_request_is_understood() {
        let ours = [2, 0x6c, 0x61, 0x62, 0, 0];
        let theirs = [2, 0x6c, 0x61, 0x62, 0, 7];
        let me = Ipv4Addr::new(10, 77, 0, 1);
        let them = Ipv4Addr::new(10, 77, 0, 8);
        let request = request_frame(ours, me, them);
        assert_eq!(parse_reply(&request, me), None, "a request is not a reply");
        // The reply: op 2, sender = them, target = us.
        let mut reply = request;
        reply[0..6].copy_from_slice(&ours);
        reply[6..12].copy_from_slice(&theirs);
        reply[20..22].copy_from_slice(&2u16.to_be_bytes());
        reply[22..28].copy_from_slice(&theirs);
        reply[28..32].copy_from_slice(&them.octets());
        reply[32..38].copy_from_slice(&ours);
        reply[38..42].copy_from_slice(&me.octets());
        assert_eq!(parse_reply(&reply, me), Some((them, theirs)));
        assert_eq!(parse_reply(&reply, them), None, "addressed to someone else");
        assert_eq!(parse_reply(&reply[..41], me), None, "truncated");
        assert_eq!(format_mac(&theirs), "02:6c:61:62:00:07");
    }
}
