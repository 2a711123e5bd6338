//! Echo requests through surge-ping: one client (socket) per address family, shared by every
//! target; replies are matched by identifier and sequence.

use super::EchoSender;
use std::net::IpAddr;
use std::time::Duration;
use surge_ping::{Client, Config, PingIdentifier, PingSequence, SurgeError, ICMP};

#[derive(Debug, thiserror::Error)]
pub enum IcmpError {
    #[error(
        "cannot open an ICMP socket ({family}): {source}. Run as root, grant CAP_NET_RAW \
         (setcap cap_net_raw+ep, or AmbientCapabilities=CAP_NET_RAW in the unit), or allow \
         unprivileged ICMP for this group with sysctl net.ipv4.ping_group_range"
    )]
    Socket {
        family: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot send an echo request to {target}: {message}")]
    Send { target: IpAddr, message: String },
}

pub struct SurgeSender {
    v4: Option<Client>,
    v6: Option<Client>,
    payload: [u8; 56],
}

impl SurgeSender {
    /// Opens the sockets the targets need (IPv4, IPv6 or both).
    pub fn new(need_v4: bool, need_v6: bool) -> Result<Self, IcmpError> {
        let open = |kind: ICMP, bind: &str, family| -> Result<Client, IcmpError> {
            // Binding explicitly is what Windows needs; it is harmless elsewhere.
            let config = Config::builder()
                .kind(kind)
                .bind(bind.parse().expect("literal socket address"))
                .build();
            Client::new(&config).map_err(|source| IcmpError::Socket { family, source })
        };
        Ok(SurgeSender {
            v4: if need_v4 {
                Some(open(ICMP::V4, "0.0.0.0:0", "IPv4")?)
            } else {
                None
            },
            v6: if need_v6 {
                Some(open(ICMP::V6, "[::]:0", "IPv6")?)
            } else {
                None
            },
            payload: [0x4e; 56],
        })
    }
}

impl EchoSender for SurgeSender {
    async fn echo(
        &self,
        target: IpAddr,
        identifier: u16,
        sequence: u16,
        timeout: Duration,
    ) -> Result<Option<Duration>, IcmpError> {
        let client = match target {
            IpAddr::V4(_) => self.v4.as_ref(),
            IpAddr::V6(_) => self.v6.as_ref(),
        }
        .ok_or_else(|| IcmpError::Send {
            target,
            message: "no socket for this address family".into(),
        })?;
        let mut pinger = client.pinger(target, PingIdentifier(identifier)).await;
        pinger.timeout(timeout);
        match pinger.ping(PingSequence(sequence), &self.payload).await {
            Ok((_, rtt)) => Ok(Some(rtt)),
            Err(SurgeError::Timeout { .. }) => Ok(None),
            Err(err) => Err(IcmpError::Send {
                target,
                message: err.to_string(),
            }),
        }
    }
}
