//! ICMP echo request/reply encoding. Pure functions over byte slices, bounded on every read,
//! so a malformed or foreign packet is ignored and never trusted.

pub const ECHO_REQUEST_V4: u8 = 8;
pub const ECHO_REPLY_V4: u8 = 0;
pub const ECHO_REQUEST_V6: u8 = 128;
pub const ECHO_REPLY_V6: u8 = 129;
const HEADER: usize = 8;
/// key (4) + job (4) + slot (4) + reserved (4)
pub const TOKEN_LEN: usize = 16;

/// What we put in each request and expect back: which engine (a random key, so replies to a
/// previous run or another process never match), which job and which probe of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub key: u32,
    pub job: u32,
    pub slot: u32,
}

/// A parsed echo reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoReply {
    pub identifier: u16,
    pub sequence: u16,
    pub token: Token,
}

/// Writes an echo request into `buf` (cleared first) with `payload_len` bytes of payload
/// (at least [`TOKEN_LEN`]). IPv4 gets its checksum here; for ICMPv6 the kernel computes it.
pub fn encode_request(
    buf: &mut Vec<u8>,
    v6: bool,
    identifier: u16,
    sequence: u16,
    token: Token,
    payload_len: usize,
) {
    buf.clear();
    buf.push(if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 });
    buf.push(0);
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&identifier.to_be_bytes());
    buf.extend_from_slice(&sequence.to_be_bytes());
    buf.extend_from_slice(&token.key.to_be_bytes());
    buf.extend_from_slice(&token.job.to_be_bytes());
    buf.extend_from_slice(&token.slot.to_be_bytes());
    buf.extend_from_slice(&[0; 4]);
    // Recognisable filler, like ping's, so a capture shows whose packets these are.
    let filler = payload_len.max(TOKEN_LEN) - TOKEN_LEN;
    buf.extend((0..filler).map(|i| 0x20 + (i % 0x5f) as u8));
    if !v6 {
        let sum = checksum(buf);
        buf[2..4].copy_from_slice(&sum.to_be_bytes());
    }
}

/// Parses what a socket returned. `ip_header` is true for raw IPv4 sockets, which hand over
/// the IP header too. Anything that is not one of our echo replies gives `None`.
pub fn decode_reply(data: &[u8], v6: bool, ip_header: bool) -> Option<EchoReply> {
    let icmp = if ip_header {
        let first = *data.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let header_len = usize::from(first & 0x0f) * 4;
        if header_len < 20 {
            return None;
        }
        data.get(header_len..)?
    } else {
        data
    };
    let want = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    if icmp.len() < HEADER + TOKEN_LEN || icmp[0] != want || icmp[1] != 0 {
        return None;
    }
    let be16 = |at: usize| u16::from_be_bytes([icmp[at], icmp[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes([icmp[at], icmp[at + 1], icmp[at + 2], icmp[at + 3]]);
    Some(EchoReply {
        identifier: be16(4),
        sequence: be16(6),
        token: Token {
            key: be32(8),
            job: be32(12),
            slot: be32(16),
        },
    })
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What a host sends back for `request`: the same message as an echo reply, checksum redone.
/// For tests (the engine's in-memory network and the codec's own).
#[cfg(test)]
pub(crate) fn reply_to(request: &[u8], v6: bool) -> Vec<u8> {
    let mut reply = request.to_vec();
    reply[0] = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    reply[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(&reply);
    reply[2..4].copy_from_slice(&sum.to_be_bytes());
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: Token = Token {
        key: 0xdead_beef,
        job: 7,
        slot: 123_456,
    };

    fn as_reply(request: &[u8], v6: bool) -> Vec<u8> {
        reply_to(request, v6)
    }

    #[test]
    fn a_request_round_trips_through_a_reply() {
        let mut buf = Vec::new();
        encode_request(&mut buf, false, 0x1234, 42, TOKEN, 56);
        assert_eq!(buf.len(), 64, "8-byte header + 56 bytes, as ping sends");
        assert_eq!(checksum(&buf), 0, "a correct checksum sums to zero");
        let reply = decode_reply(&as_reply(&buf, false), false, false).unwrap();
        assert_eq!(
            reply,
            EchoReply {
                identifier: 0x1234,
                sequence: 42,
                token: TOKEN
            }
        );
    }

    #[test]
    fn raw_ipv4_replies_skip_the_ip_header_whatever_its_length() {
        let mut buf = Vec::new();
        encode_request(&mut buf, false, 1, 2, TOKEN, 16);
        let mut packet = vec![0x46]; // version 4, 24-byte header (with options)
        packet.extend_from_slice(&[0; 23]);
        packet.extend_from_slice(&as_reply(&buf, false));
        assert_eq!(decode_reply(&packet, false, true).unwrap().token, TOKEN);
    }

    #[test]
    fn requests_foreign_types_and_short_packets_are_ignored() {
        let mut buf = Vec::new();
        encode_request(&mut buf, true, 1, 2, TOKEN, 56);
        // Our own request (seen on loopback by a raw socket) is not a reply.
        assert_eq!(decode_reply(&buf, true, false), None);
        let reply = as_reply(&buf, true);
        assert!(decode_reply(&reply, true, false).is_some());
        assert_eq!(decode_reply(&reply, false, false), None, "wrong family");
        for len in 0..(HEADER + TOKEN_LEN) {
            assert_eq!(decode_reply(&reply[..len], true, false), None, "len {len}");
        }
        assert_eq!(decode_reply(&[0x45], false, true), None);
        assert_eq!(decode_reply(&[0x41, 0, 0, 0], false, true), None, "IHL < 5");
        assert_eq!(decode_reply(&[0x60; 40], false, true), None, "not IPv4");
    }

    #[test]
    fn odd_length_checksums_pad_with_zero() {
        assert_eq!(checksum(&[0xff]), !0xff00);
        assert_eq!(checksum(&[]), 0xffff);
    }
}
