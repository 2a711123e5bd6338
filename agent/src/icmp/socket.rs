//! The platform seam: one ICMP socket per address family. Everything above it (scheduling,
//! matching, statistics) is tested with an in-memory socket; this file is the only part that
//! needs a raw socket, CAP_NET_RAW or `ping_group_range`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A reply as the socket delivered it.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub from: IpAddr,
    pub len: usize,
    /// When it arrived, in [`wall_ns`] time: the kernel's stamp where there is one.
    pub at_ns: u64,
}

pub trait EchoSocket: Send + Sync + 'static {
    fn is_v6(&self) -> bool;
    /// Raw IPv4 sockets deliver the IP header in front of the ICMP message.
    fn has_ip_header(&self) -> bool;
    /// The identifier our replies carry, when we choose it (raw sockets). Datagram ICMP
    /// sockets get theirs from the kernel, which also routes only our replies to us.
    fn identifier(&self) -> Option<u16>;
    fn send_to(&self, packet: &[u8], to: IpAddr) -> io::Result<()>;
    /// Waits up to the socket's read timeout; `Ok(None)` when nothing came.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>>;
    /// What is already queued, without waiting; `Ok(None)` when nothing is (or when the
    /// platform cannot tell without waiting).
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>>;
    /// True when receive times come from the kernel, so reading late costs no accuracy.
    fn kernel_timestamps(&self) -> bool {
        false
    }
}

/// Nanoseconds since the Unix epoch: the clock both send and receive stamps use, because
/// the kernel's receive timestamps (SO_TIMESTAMPNS) are in it.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// SOCK_RAW: root or CAP_NET_RAW.
    Raw,
    /// SOCK_DGRAM + IPPROTO_ICMP: unprivileged, where `net.ipv4.ping_group_range` allows.
    Datagram,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot open an ICMP socket for {family}: raw socket: {raw}; unprivileged ICMP socket: {datagram}. \
     Run as root, grant CAP_NET_RAW (setcap cap_net_raw+ep on the binary, or \
     AmbientCapabilities=CAP_NET_RAW in the systemd unit), or allow unprivileged ICMP for the \
     agent's group with sysctl net.ipv4.ping_group_range"
)]
pub struct OpenError {
    pub family: &'static str,
    pub raw: io::Error,
    pub datagram: io::Error,
}

/// An ICMP socket of the operating system.
pub struct SystemSocket {
    socket: UdpSocket,
    kind: SocketKind,
    v6: bool,
    identifier: u16,
    /// What the kernel granted for the receive buffer, for the log.
    pub receive_buffer: usize,
    timestamps: bool,
}

/// Large enough to hold a couple of seconds of replies at 10,000 probes/s, so a busy
/// moment on the receiving thread never becomes made-up loss.
const RECEIVE_BUFFER: usize = 8 << 20;

impl SystemSocket {
    /// A raw socket when we may, else an unprivileged datagram one.
    pub fn open(v6: bool, identifier: u16) -> Result<Self, OpenError> {
        let raw = match Self::open_kind(v6, SocketKind::Raw, identifier) {
            Ok(socket) => return Ok(socket),
            Err(err) => err,
        };
        Self::open_kind(v6, SocketKind::Datagram, identifier).map_err(|datagram| OpenError {
            family: if v6 { "IPv6" } else { "IPv4" },
            raw,
            datagram,
        })
    }

    pub fn open_kind(v6: bool, kind: SocketKind, identifier: u16) -> io::Result<Self> {
        use socket2::{Domain, Protocol, Socket, Type};
        let (domain, protocol) = if v6 {
            (Domain::IPV6, Protocol::ICMPV6)
        } else {
            (Domain::IPV4, Protocol::ICMPV4)
        };
        let ty = match kind {
            SocketKind::Raw => Type::RAW,
            SocketKind::Datagram => Type::DGRAM,
        };
        let socket = Socket::new(domain, ty, Some(protocol))?;
        let any: SocketAddr = if v6 {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        // Windows raw sockets must be bound before they receive; elsewhere it is harmless.
        socket.bind(&any.into())?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let receive_buffer = platform::grow_receive_buffer(&socket, RECEIVE_BUFFER);
        let timestamps = platform::enable_timestamps(&socket);
        Ok(SystemSocket {
            socket: socket.into(),
            kind,
            v6,
            identifier,
            receive_buffer,
            timestamps,
        })
    }

    pub fn kind(&self) -> SocketKind {
        self.kind
    }
}

impl EchoSocket for SystemSocket {
    fn is_v6(&self) -> bool {
        self.v6
    }

    fn has_ip_header(&self) -> bool {
        self.kind == SocketKind::Raw && !self.v6
    }

    fn identifier(&self) -> Option<u16> {
        (self.kind == SocketKind::Raw).then_some(self.identifier)
    }

    fn send_to(&self, packet: &[u8], to: IpAddr) -> io::Result<()> {
        self.socket
            .send_to(packet, SocketAddr::new(to, 0))
            .map(|_| ())
    }

    fn kernel_timestamps(&self) -> bool {
        self.timestamps
    }

    fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        if !self.timestamps {
            return Ok(None);
        }
        quiet_timeouts(platform::recv_stamped(&self.socket, buf, false))
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let result = if self.timestamps {
            platform::recv_stamped(&self.socket, buf, true)
        } else {
            self.socket.recv_from(buf).map(|(len, from)| Received {
                from: from.ip(),
                len,
                at_ns: wall_ns(),
            })
        };
        quiet_timeouts(result)
    }
}

/// A read that found nothing (timeout, would block, signal) is not an error.
fn quiet_timeouts(result: io::Result<Received>) -> io::Result<Option<Received>> {
    match result {
        Ok(received) => Ok(Some(received)),
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use super::{wall_ns, Received};
    use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
    use std::io::{self, IoSliceMut};
    use std::net::{IpAddr, UdpSocket};
    use std::os::fd::AsRawFd;

    /// SO_RCVBUFFORCE passes net.core.rmem_max when we have CAP_NET_ADMIN; otherwise ask for
    /// what we want and take what the kernel allows.
    pub fn grow_receive_buffer(socket: &socket2::Socket, bytes: usize) -> usize {
        if socket::setsockopt(socket, sockopt::RcvBufForce, &bytes).is_err() {
            let _ = socket.set_recv_buffer_size(bytes);
        }
        socket.recv_buffer_size().unwrap_or(0)
    }

    /// Kernel receive timestamps make the RTT independent of how soon our thread runs.
    pub fn enable_timestamps(socket: &socket2::Socket) -> bool {
        socket::setsockopt(socket, sockopt::ReceiveTimestampns, &true).is_ok()
    }

    pub fn recv_stamped(socket: &UdpSocket, buf: &mut [u8], wait: bool) -> io::Result<Received> {
        let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let mut iov = [IoSliceMut::new(buf)];
        let flags = if wait {
            MsgFlags::empty()
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let msg = socket::recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            flags,
        )
        .map_err(io::Error::from)?;
        let mut at_ns = 0;
        if let Ok(cmsgs) = msg.cmsgs() {
            for cmsg in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
                    at_ns = (ts.tv_sec() as u64)
                        .saturating_mul(1_000_000_000)
                        .saturating_add(ts.tv_nsec() as u64);
                }
            }
        }
        if at_ns == 0 {
            at_ns = wall_ns();
        }
        let from = msg
            .address
            .and_then(|a: SockaddrStorage| {
                a.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })
            .ok_or_else(|| io::Error::other("reply without a source address"))?;
        Ok(Received {
            from,
            len: msg.bytes,
            at_ns,
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use super::Received;
    use std::io;
    use std::net::UdpSocket;

    pub fn grow_receive_buffer(socket: &socket2::Socket, bytes: usize) -> usize {
        let _ = socket.set_recv_buffer_size(bytes);
        socket.recv_buffer_size().unwrap_or(0)
    }

    pub fn enable_timestamps(_: &socket2::Socket) -> bool {
        false
    }

    pub fn recv_stamped(_: &UdpSocket, _: &mut [u8], _: bool) -> io::Result<Received> {
        Err(io::Error::other("kernel timestamps are Linux-only"))
    }
}
