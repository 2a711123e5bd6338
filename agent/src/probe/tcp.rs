//! TCP port checks: one connection attempt to each port of each target per round, judged
//! open, refused, timed out or unreachable, with the time an accepted connection took. The
//! connection is closed at once (nothing is sent), as blackbox_exporter's plain `tcp` module
//! and Uptime Kuma's TCP monitor do.

use chrono::Utc;
use futures::StreamExt;
use netwarden_shared::{PortCheck, PortState, Record, RecordKind};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// One `tcp` check's loop: its targets, ports and timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    pub targets: Vec<IpAddr>,
    pub ports: Vec<u16>,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Connections in flight at once, all port loops together: enough for thousands of checks
/// within a short timeout, few enough to stay far below the agent's file-descriptor limit.
pub const CONNECTIONS_AT_ONCE: usize = 256;

/// The agent's connection slots, shared by every port loop.
static SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(CONNECTIONS_AT_ONCE));

/// Every (target, port) of the plan, once; the records share the time the round ended.
pub async fn check_round(plan: &PortPlan) -> Vec<Record> {
    // Collected first: a borrowing iterator inside the stream would tie the spawned loop's
    // future to a lifetime it cannot name.
    let attempts: Vec<(IpAddr, u16)> = plan
        .targets
        .iter()
        .flat_map(|ip| plan.ports.iter().map(|port| (*ip, *port)))
        .collect();
    let mut checks: Vec<PortCheck> = futures::stream::iter(attempts)
        .map(|(ip, port)| async move {
            // The semaphore is never closed; without a slot the check is skipped, not faked.
            let _slot = SLOTS.acquire().await.ok()?;
            check_port(ip, port, plan.timeout).await
        })
        .buffer_unordered(CONNECTIONS_AT_ONCE)
        .filter_map(std::future::ready)
        .collect()
        .await;
    checks.sort_by_key(|c| (c.target, c.port));
    let observed_at = Utc::now();
    checks
        .into_iter()
        .map(|check| Record {
            record_id: 0,
            observed_at,
            kind: RecordKind::Port(check),
        })
        .collect()
}

/// One connection attempt; `None` when the agent itself could not make it (no file
/// descriptor or local port left, a local firewall): that says nothing about the port, so it
/// is logged, not reported as the port down.
pub async fn check_port(target: IpAddr, port: u16, timeout: Duration) -> Option<PortCheck> {
    let started = Instant::now();
    let attempt = tokio::net::TcpStream::connect(SocketAddr::new(target, port));
    let (state, connect_ms) = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(_stream)) => (
            PortState::Open,
            Some(started.elapsed().as_secs_f32() * 1000.0),
        ),
        Ok(Err(err)) => match state_of(&err) {
            Some(state) => (state, None),
            None => {
                tracing::warn!(%target, port, error = %err, "cannot attempt a TCP port check here; no result recorded");
                return None;
            }
        },
        Err(_) => (PortState::Timeout, None),
    };
    Some(PortCheck {
        target,
        port,
        state,
        connect_ms,
    })
}

/// What a failed connection's error says about the port; `None` for an error of the agent's
/// own side.
fn state_of(err: &std::io::Error) -> Option<PortState> {
    match err.kind() {
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => Some(PortState::Refused),
        ErrorKind::TimedOut => Some(PortState::Timeout),
        // An ICMP unreachable from the path, or no route from here.
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => Some(PortState::Unreachable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listening_port_is_open_and_a_closed_one_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port();
        // A port that was listening a moment ago and is not now: refused.
        let closed = {
            let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            gone.local_addr().unwrap().port()
        };
        let plan = PortPlan {
            targets: vec!["127.0.0.1".parse().unwrap()],
            ports: vec![closed, open],
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
        };
        let records = check_round(&plan).await;
        assert_eq!(records.len(), 2);
        let by_port = |port: u16| {
            records
                .iter()
                .find_map(|r| match &r.kind {
                    RecordKind::Port(c) if c.port == port => Some(c.clone()),
                    _ => None,
                })
                .unwrap()
        };
        let (open, closed) = (by_port(open), by_port(closed));
        assert_eq!(open.state, PortState::Open);
        assert!(open
            .connect_ms
            .is_some_and(|ms| (0.0..2000.0).contains(&ms)));
        assert_eq!(
            (closed.state, closed.connect_ms),
            (PortState::Refused, None)
        );
    }

    #[test]
    fn errors_name_what_they_say_about_the_port() {
        let of = |kind| state_of(&std::io::Error::from(kind));
        assert_eq!(of(ErrorKind::ConnectionRefused), Some(PortState::Refused));
        assert_eq!(of(ErrorKind::TimedOut), Some(PortState::Timeout));
        assert_eq!(of(ErrorKind::HostUnreachable), Some(PortState::Unreachable));
        assert_eq!(
            of(ErrorKind::NetworkUnreachable),
            Some(PortState::Unreachable)
        );
        // Out of descriptors or local ports, or a local firewall: not the port's doing.
        assert_eq!(state_of(&std::io::Error::from_raw_os_error(24)), None);
        assert_eq!(of(ErrorKind::AddrNotAvailable), None);
        assert_eq!(of(ErrorKind::PermissionDenied), None);
    }
}
