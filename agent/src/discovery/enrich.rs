//! What discovery adds to a live host: its reverse-DNS name and its open TCP ports. Both are
//! bounded (timeouts, concurrency, the global packet rate) so a silent DNS server or a
//! filtering firewall slows a sweep down by seconds at most.

use crate::icmp::RateLimiter;
use futures::stream::{self, StreamExt};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

const DNS_TIMEOUT: Duration = Duration::from_secs(1);
const DNS_CONCURRENCY: usize = 64;
const CONNECT_CONCURRENCY: usize = 256;

/// PTR names for `hosts` (trailing dot removed); hosts without one are absent. Asks
/// `server` when given, else the system's resolvers; with no configuration, returns nothing
/// and says why.
pub async fn reverse_names(hosts: &[IpAddr], server: Option<SocketAddr>) -> Vec<(IpAddr, String)> {
    use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
    use hickory_resolver::name_server::TokioConnectionProvider;
    use hickory_resolver::Resolver;
    let mut builder = match server {
        Some(server) => Resolver::builder_with_config(
            ResolverConfig::from_parts(
                None,
                Vec::new(),
                NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true),
            ),
            TokioConnectionProvider::default(),
        ),
        None => match Resolver::builder_tokio() {
            Ok(builder) => builder,
            Err(err) => {
                tracing::info!(error = %err, "no DNS resolver configuration; skipping reverse lookups");
                return Vec::new();
            }
        },
    };
    builder.options_mut().timeout = DNS_TIMEOUT;
    builder.options_mut().attempts = 1;
    let resolver = Arc::new(builder.build());
    let hosts: Vec<IpAddr> = hosts.to_vec();
    stream::iter(hosts)
        .map(|ip| {
            let resolver = resolver.clone();
            async move {
                let lookup =
                    tokio::time::timeout(DNS_TIMEOUT * 2, resolver.reverse_lookup(ip)).await;
                let name = lookup.ok()?.ok()?.iter().next()?.to_string();
                // A PTR name is anyone's bytes: no control characters (a NUL would be refused
                // by the collector), and no more than the wire's 255 bytes.
                let name = netwarden_shared::clean_text(name.trim_end_matches('.'), 255);
                (!name.is_empty()).then(|| (ip, name.into_owned()))
            }
        })
        .buffer_unordered(DNS_CONCURRENCY)
        .filter_map(futures::future::ready)
        .collect()
        .await
}

/// Which of `ports` accept a TCP connection on each host. `timeout_for` gives the connect
/// timeout per host (adapted to its RTT). Every attempt takes a token from the global rate.
pub async fn open_ports(
    hosts: &[(IpAddr, Duration)],
    ports: &[u16],
    rate: Arc<RateLimiter>,
) -> Vec<(IpAddr, u16)> {
    if ports.is_empty() {
        return Vec::new();
    }
    // Owned items: a stream borrowing the slices would not be Send across the spawn.
    let mut attempts = Vec::with_capacity(hosts.len() * ports.len());
    for &(ip, timeout) in hosts {
        for &port in ports {
            attempts.push((ip, port, timeout));
        }
    }
    let mut open: Vec<(IpAddr, u16)> = stream::iter(attempts)
        .map(|(ip, port, timeout)| {
            let rate = rate.clone();
            async move {
                rate.acquire().await;
                let connect = tokio::net::TcpStream::connect(SocketAddr::new(ip, port));
                matches!(tokio::time::timeout(timeout, connect).await, Ok(Ok(_)))
                    .then_some((ip, port))
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .filter_map(futures::future::ready)
        .collect()
        .await;
    open.sort_unstable();
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listening_port_is_open_and_a_closed_one_is_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port();
        // A port we just released: nothing listens there.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let host: IpAddr = "127.0.0.1".parse().unwrap();
        let found = open_ports(
            &[(host, Duration::from_millis(500))],
            &[open, closed],
            Arc::new(RateLimiter::new(1000)),
        )
        .await;
        assert_eq!(found, vec![(host, open)]);
    }
}
