//! Netwarden's own ICMP engine (see `engine.rs` for the design), its wire format and the
//! socket seam that keeps platform code in one place.

pub mod engine;
pub mod packet;
pub mod rate;
pub mod socket;

pub use engine::{EngineError, IcmpEngine, JobOutcome, PingJob, TimeoutPolicy};
pub use rate::RateLimiter;
pub use socket::{OpenError, SocketKind, SystemSocket};

use std::sync::Arc;

/// Opens the system's ICMP sockets for the families needed and starts the engine. IPv4 is
/// required when needed; an IPv6 socket that cannot be opened (IPv6 disabled, say) only
/// leaves IPv6 targets unprobed, each reported with the reason.
pub fn open_engine(
    need_v4: bool,
    need_v6: bool,
    rate: Arc<RateLimiter>,
) -> Result<IcmpEngine, OpenError> {
    let identifier: u16 = rand::random();
    let open = |v6: bool| -> Result<SystemSocket, OpenError> {
        let socket = SystemSocket::open(v6, identifier)?;
        tracing::debug!(
            family = if v6 { "IPv6" } else { "IPv4" },
            kind = ?socket.kind(),
            receive_buffer = socket.receive_buffer,
            "ICMP socket open"
        );
        Ok(socket)
    };
    let v4 = if need_v4 { Some(open(false)?) } else { None };
    let v6 = if need_v6 {
        match open(true) {
            Ok(socket) => Some(socket),
            Err(err) if v4.is_some() => {
                tracing::warn!("{err}");
                None
            }
            Err(err) => return Err(err),
        }
    } else {
        None
    };
    Ok(IcmpEngine::start(v4, v6, rate, identifier))
}
