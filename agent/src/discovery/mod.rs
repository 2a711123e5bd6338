//! Host discovery: an ICMP echo sweep of every address and, on directly attached IPv4
//! subnets (Linux), an ARP sweep through a raw packet socket, run side by side under the one
//! global packet rate. Live hosts then get their vendor (from the MAC), reverse-DNS name and
//! open TCP ports.

pub mod arp;
pub mod enrich;
pub mod oui;

use crate::icmp::{EngineError, IcmpEngine, PingJob, RateLimiter, TimeoutPolicy};
use netwarden_shared::{DiscoveredHost, DiscoveryMethod};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DiscoveryOptions {
    /// TCP ports to try on every live host.
    pub ports: Vec<u16>,
    /// Probes per address and method; later ones go only to addresses still silent.
    pub attempts: u32,
    pub timeout: TimeoutPolicy,
    pub reverse_dns: bool,
    /// Ask this DNS server for names instead of the system's resolvers.
    pub dns_server: Option<std::net::SocketAddr>,
    pub arp: bool,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            ports: Vec::new(),
            attempts: 2,
            timeout: default_timeout(),
            reverse_dns: true,
            dns_server: None,
            arp: true,
        }
    }
}

/// Waits 4 × the slowest reply seen, at least 50 ms and at most 1 s: on a LAN a sweep ends
/// 50 ms after its last probe, and a routed site 150 ms away still gets 600 ms. Each retry
/// doubles the floor (see [`for_attempt`]), so a slow responder gets a longer second chance.
pub fn default_timeout() -> TimeoutPolicy {
    TimeoutPolicy {
        floor: Duration::from_millis(50),
        ceiling: Duration::from_secs(1),
        multiplier: 4.0,
    }
}

/// The wait for attempt `attempt` (0-based): the floor doubles with each retry, as nmap's
/// retransmission timeouts do, up to the ceiling.
pub fn for_attempt(policy: TimeoutPolicy, attempt: u32) -> TimeoutPolicy {
    TimeoutPolicy {
        floor: (policy.floor * 2u32.saturating_pow(attempt.min(16))).min(policy.ceiling),
        ..policy
    }
}

#[derive(Debug, Clone)]
pub struct DiscoveryReport {
    pub addresses: usize,
    pub hosts: Vec<DiscoveredHost>,
    pub elapsed: Duration,
    /// Interfaces swept by ARP.
    pub arp_interfaces: Vec<String>,
    /// Why ARP could not run, if it could not (then discovery was ICMP only).
    pub arp_error: Option<String>,
}

impl DiscoveryReport {
    pub fn count(&self, method: DiscoveryMethod) -> usize {
        self.hosts.iter().filter(|h| h.method == method).count()
    }
}

/// Counters a progress line can show while a sweep runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub arp_sent: AtomicU64,
}

#[derive(Default)]
struct Seen {
    icmp_rtt: Option<Duration>,
    arp: Option<([u8; 6], Duration)>,
}

pub async fn discover(
    engine: &IcmpEngine,
    rate: Arc<RateLimiter>,
    targets: Vec<IpAddr>,
    options: &DiscoveryOptions,
    progress: Arc<Progress>,
) -> Result<DiscoveryReport, EngineError> {
    let started = Instant::now();
    let mut seen: BTreeMap<IpAddr, Seen> = BTreeMap::new();

    let (arp_interfaces, arp_task) = start_arp(&targets, options, rate.clone(), progress);

    let mut pending = targets.clone();
    // The slowest reply so far: a retry of silent addresses waits for what the network has
    // shown, not the full ceiling (none of them will have answered before).
    let mut slowest: Option<Duration> = None;
    for attempt in 0..options.attempts.max(1) {
        if pending.is_empty() {
            break;
        }
        let outcome = engine
            .run(PingJob {
                hints: vec![slowest; pending.len()],
                targets: pending,
                count: 1,
                spacing: Duration::ZERO,
                timeout: for_attempt(options.timeout, attempt),
            })
            .await?;
        let mut still_silent = Vec::new();
        for (index, target) in outcome.targets.iter().enumerate() {
            match outcome.rtts(index).next().flatten() {
                Some(rtt) => {
                    slowest = slowest.max(Some(rtt));
                    seen.entry(*target).or_default().icmp_rtt = Some(rtt);
                }
                None => still_silent.push(*target),
            }
        }
        pending = still_silent;
    }

    let mut arp_error = None;
    for (interface, result) in arp_task.await {
        match result {
            Ok(found) => {
                for (ip, hit) in found {
                    seen.entry(IpAddr::V4(ip)).or_default().arp = Some(hit);
                }
            }
            Err(err) => {
                arp_error = Some(format!("{interface}: {err}"));
            }
        }
    }

    let mut hosts: Vec<DiscoveredHost> = seen
        .into_iter()
        .map(|(address, s)| {
            let mac = s.arp.map(|(mac, _)| arp::format_mac(&mac));
            DiscoveredHost {
                address,
                vendor: mac.as_deref().and_then(oui::vendor).map(str::to_string),
                mac,
                hostname: None,
                open_ports: Vec::new(),
                rtt_ms: s
                    .icmp_rtt
                    .or(s.arp.map(|(_, rtt)| rtt))
                    .map(|d| d.as_secs_f32() * 1000.0),
                method: match (s.icmp_rtt.is_some(), s.arp.is_some()) {
                    (true, true) => DiscoveryMethod::IcmpAndArp,
                    (false, true) => DiscoveryMethod::Arp,
                    _ => DiscoveryMethod::Icmp,
                },
                site: None,
                local: is_local(address),
            }
        })
        .collect();

    let live: Vec<IpAddr> = hosts.iter().map(|h| h.address).collect();
    let names = async {
        if options.reverse_dns {
            enrich::reverse_names(&live, options.dns_server).await
        } else {
            Vec::new()
        }
    };
    let port_targets: Vec<(IpAddr, Duration)> = hosts
        .iter()
        .map(|h| {
            let rtt = h.rtt_ms.map(|ms| Duration::from_secs_f32(ms / 1000.0));
            let timeout = options
                .timeout
                .wait_for(rtt)
                .max(Duration::from_millis(250));
            (h.address, timeout)
        })
        .collect();
    let ports = enrich::open_ports(&port_targets, &options.ports, rate);
    let (names, ports) = tokio::join!(names, ports);
    for host in &mut hosts {
        host.hostname = names
            .iter()
            .find(|(ip, _)| *ip == host.address)
            .map(|(_, n)| n.clone());
        host.open_ports = ports
            .iter()
            .filter(|(ip, _)| *ip == host.address)
            .map(|(_, p)| *p)
            .collect();
    }
    Ok(DiscoveryReport {
        addresses: targets.len(),
        hosts,
        elapsed: started.elapsed(),
        arp_interfaces,
        arp_error,
    })
}

type ArpResults = Vec<(String, std::io::Result<ArpHits>)>;

#[cfg(target_os = "linux")]
use arp::ArpHits;
/// Replies per address: (MAC, RTT).
#[cfg(not(target_os = "linux"))]
type ArpHits = std::collections::HashMap<std::net::Ipv4Addr, ([u8; 6], Duration)>;

/// Starts an ARP sweep per attached interface on blocking threads; the returned future
/// yields each interface's replies (or its error).
#[cfg(target_os = "linux")]
fn start_arp(
    targets: &[IpAddr],
    options: &DiscoveryOptions,
    rate: Arc<RateLimiter>,
    progress: Arc<Progress>,
) -> (Vec<String>, impl std::future::Future<Output = ArpResults>) {
    let groups = if options.arp {
        arp::attached_interfaces(targets)
    } else {
        Vec::new()
    };
    let names = groups.iter().map(|(i, _)| i.name.clone()).collect();
    let (policy, attempts) = (options.timeout, options.attempts);
    let tasks: Vec<_> = groups
        .into_iter()
        .map(|(iface, list)| {
            let (rate, progress) = (rate.clone(), progress.clone());
            let name = iface.name.clone();
            let task = tokio::task::spawn_blocking(move || {
                arp::scan(&iface, &list, &rate, policy, attempts, &progress.arp_sent)
            });
            (name, task)
        })
        .collect();
    let joined = async move {
        let mut out = Vec::new();
        for (name, task) in tasks {
            let result = task
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            out.push((name, result));
        }
        out
    };
    (names, joined)
}

/// Without a packet socket (Windows and others) discovery is ICMP only.
#[cfg(not(target_os = "linux"))]
fn start_arp(
    _: &[IpAddr],
    _: &DiscoveryOptions,
    _: Arc<RateLimiter>,
    _: Arc<Progress>,
) -> (Vec<String>, impl std::future::Future<Output = ArpResults>) {
    (Vec::new(), async { Vec::new() })
}

/// The targets that answer ARP now (on attached subnets, with the privilege a packet socket
/// needs; none otherwise).
pub async fn arp_alive(
    targets: &[IpAddr],
    options: &DiscoveryOptions,
    rate: Arc<RateLimiter>,
) -> Vec<IpAddr> {
    let (_, results) = start_arp(targets, options, rate, Arc::new(Progress::default()));
    let mut alive = Vec::new();
    for (_, result) in results.await {
        if let Ok(hits) = result {
            alive.extend(hits.into_keys().map(IpAddr::V4));
        }
    }
    alive
}

/// Whether `address` is one of this host's own: the address the system would send from to
/// reach it is itself. (A UDP socket's `connect` only picks a route; nothing is sent.) Works
/// the same on every platform, without listing interfaces.
pub fn is_local(address: IpAddr) -> bool {
    let unspecified: IpAddr = match address {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    std::net::UdpSocket::bind((unspecified, 0))
        .and_then(|socket| {
            socket.connect((address, 9))?;
            socket.local_addr()
        })
        .is_ok_and(|local| local.ip() == address)
}
