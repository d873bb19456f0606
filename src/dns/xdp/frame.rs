//! The Ethernet, IP and UDP headers around a DNS message on the AF_XDP path, where no
//! kernel stack reads or writes them. Only what the XDP program hands over is read:
//! Ethernet II, then IPv4 without options or fragments, or IPv6 with UDP straight after
//! its fixed header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

const ETHERNET: usize = 14;
const IPV4: usize = 20;
const IPV6: usize = 40;
const UDP: usize = 8;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTOCOL_UDP: u8 = 17;
/// Hop limit of answers, as Linux's default for sockets.
const TTL: u8 = 64;

/// A query as the frame carries it.
#[derive(Debug, PartialEq, Eq)]
pub struct Query {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// Where the DNS message is in the frame.
    pub message: Range<usize>,
}

impl Query {
    /// Bytes of headers before the DNS message, in the query and in its answer alike.
    pub fn headers(&self) -> usize {
        self.message.start
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// The query in `frame`, or `None` when its headers are not what the XDP program lets
/// through or their lengths do not add up.
pub fn parse(frame: &[u8]) -> Option<Query> {
    if frame.len() < ETHERNET + IPV4 + UDP {
        return None;
    }
    let ip = &frame[ETHERNET..];
    let (source, destination, udp) = match u16_at(frame, 12) {
        ETHERTYPE_IPV4 => {
            let total = usize::from(u16_at(ip, 2));
            // Version 4 with no options; neither a fragment nor more to come.
            if ip[0] != 0x45 || u16_at(ip, 6) & 0x3fff != 0 || ip[9] != PROTOCOL_UDP {
                return None;
            }
            if total < IPV4 + UDP || total > ip.len() {
                return None;
            }
            let s: [u8; 4] = ip[12..16].try_into().ok()?;
            let d: [u8; 4] = ip[16..20].try_into().ok()?;
            let s = IpAddr::from(Ipv4Addr::from(s));
            let d = IpAddr::from(Ipv4Addr::from(d));
            (s, d, ETHERNET + IPV4..ETHERNET + total)
        }
        ETHERTYPE_IPV6 => {
            if ip.len() < IPV6 + UDP || ip[0] >> 4 != 6 || ip[6] != PROTOCOL_UDP {
                return None;
            }
            let payload = usize::from(u16_at(ip, 4));
            if payload < UDP || payload > ip.len() - IPV6 {
                return None;
            }
            let s: [u8; 16] = ip[8..24].try_into().ok()?;
            let d: [u8; 16] = ip[24..40].try_into().ok()?;
            let s = IpAddr::from(Ipv6Addr::from(s));
            let d = IpAddr::from(Ipv6Addr::from(d));
            (s, d, ETHERNET + IPV6..ETHERNET + IPV6 + payload)
        }
        _ => return None,
    };
    let len = usize::from(u16_at(frame, udp.start + 4));
    if len < UDP || len > udp.len() {
        return None;
    }
    Some(Query {
        source: SocketAddr::new(source, u16_at(frame, udp.start)),
        destination: SocketAddr::new(destination, u16_at(frame, udp.start + 2)),
        message: udp.start + UDP..udp.start + len,
    })
}

/// Turns the query's frame into its answer's: the message of `len` bytes must already
/// be in place after the headers (`query.headers()`). Swaps the Ethernet and IP
/// addresses and the ports, and writes lengths and checksums. Returns the frame's
/// length.
pub fn answer(frame: &mut [u8], query: &Query, len: usize) -> usize {
    let udp_len = UDP + len;
    let (mac, rest) = frame.split_at_mut(6);
    mac.swap_with_slice(&mut rest[..6]);
    let ip = ETHERNET;
    let udp = query.headers() - UDP;
    let pseudo = match (query.source.ip(), query.destination.ip()) {
        (IpAddr::V4(client), IpAddr::V4(server)) => {
            let h = &mut frame[ip..ip + IPV4];
            h[2..4].copy_from_slice(&((IPV4 + udp_len) as u16).to_be_bytes());
            // No identification: don't fragment (RFC 9715 3.1), as the sockets send.
            h[4..8].copy_from_slice(&[0, 0, 0x40, 0]);
            h[8] = TTL;
            h[10..12].fill(0);
            h[12..16].copy_from_slice(&server.octets());
            h[16..20].copy_from_slice(&client.octets());
            let check = !fold(sum(h, 0));
            h[10..12].copy_from_slice(&check.to_be_bytes());
            sum(&server.octets(), sum(&client.octets(), 0))
                + u32::from(PROTOCOL_UDP)
                + udp_len as u32
        }
        (IpAddr::V6(client), IpAddr::V6(server)) => {
            let h = &mut frame[ip..ip + IPV6];
            h[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            h[7] = TTL;
            h[8..24].copy_from_slice(&server.octets());
            h[24..40].copy_from_slice(&client.octets());
            sum(&server.octets(), sum(&client.octets(), 0))
                + u32::from(PROTOCOL_UDP)
                + udp_len as u32
        }
        _ => unreachable!("a query's addresses are of one family"),
    };
    let u = &mut frame[udp..udp + udp_len];
    u[0..2].copy_from_slice(&query.destination.port().to_be_bytes());
    u[2..4].copy_from_slice(&query.source.port().to_be_bytes());
    u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    u[6..8].fill(0);
    // Zero means "no checksum" in IPv4 and is not allowed in IPv6: all ones stands for it.
    let check = match !fold(sum(u, pseudo)) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&check.to_be_bytes());
    udp + udp_len
}

/// The Internet checksum's running sum (RFC 1071) of `data` added to `start`.
fn sum(data: &[u8], start: u32) -> u32 {
    let mut s = u64::from(start);
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        s += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        s += u64::from(*last) << 8;
    }
    while s >> 32 != 0 {
        s = (s & 0xffff_ffff) + (s >> 32);
    }
    s as u32
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DNS query for `a.` as captured on a link: Ethernet, IPv4, UDP 40000 -> 53.
    fn ipv4_query() -> Vec<u8> {
        let dns = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
        ];
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = (IPV4 + UDP + dns.len()) as u16;
        f.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, 17, 0, 0]);
        f[ETHERNET + 2..ETHERNET + 4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 53]);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&53u16.to_be_bytes());
        f.extend_from_slice(&((UDP + dns.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&dns);
        f
    }

    #[test]
    fn a_query_frame_gives_its_addresses_and_message() {
        let f = ipv4_query();
        let q = parse(&f).unwrap();
        assert_eq!(q.source, "192.0.2.1:40000".parse().unwrap());
        assert_eq!(q.destination, "192.0.2.53:53".parse().unwrap());
        assert_eq!(&f[q.message.clone()], &f[42..]);
        // Padding after the IP packet, as short Ethernet frames carry, is not message.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(parse(&padded).unwrap().message, q.message);
    }

    #[test]
    fn frames_the_path_does_not_answer_are_refused() {
        let f = ipv4_query();
        let mut fragment = f.clone();
        fragment[ETHERNET + 6] = 0x20; // more fragments
        let mut options = f.clone();
        options[ETHERNET] = 0x46;
        let mut tcp = f.clone();
        tcp[ETHERNET + 9] = 6;
        let mut long_ip = f.clone();
        long_ip[ETHERNET + 3] += 1;
        let mut long_udp = f.clone();
        long_udp[ETHERNET + IPV4 + 5] += 1;
        for (what, frame) in [
            ("fragment", &fragment[..]),
            ("options", &options[..]),
            ("tcp", &tcp[..]),
            ("ip length past the frame", &long_ip[..]),
            ("udp length past the packet", &long_udp[..]),
            ("cut short", &f[..40]),
        ] {
            assert_eq!(parse(frame), None, "{what}");
        }
    }

    #[test]
    fn any_bytes_parse_to_a_message_inside_the_frame_or_to_nothing() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid = ipv4_query();
        for _ in 0..20_000 {
            // A valid frame with a few bytes changed and cut anywhere, so that most get
            // past the first checks.
            let mut f = valid.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % f.len() as u64) as usize;
                f[at] = next() as u8;
            }
            f.truncate((next() % (f.len() as u64 + 1)) as usize);
            if let Some(q) = parse(&f) {
                assert!(q.message.start <= q.message.end && q.message.end <= f.len());
                assert_eq!(q.headers(), 42);
            }
        }
    }

    /// The sum of a header or datagram that carries its checksum folds to all ones.
    fn verifies(data: &[u8], start: u32) -> bool {
        fold(sum(data, start)) == 0xffff
    }

    #[test]
    fn an_answer_frame_goes_back_with_valid_checksums() {
        let mut f = ipv4_query();
        let q = parse(&f).unwrap();
        let message = b"answer!";
        f.resize(q.headers() + message.len(), 0);
        f[q.headers()..].copy_from_slice(message);
        let len = answer(&mut f, &q, message.len());
        assert_eq!(len, f.len());
        assert_eq!(&f[..12], &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        let back = parse(&f).unwrap();
        assert_eq!(back.source, q.destination);
        assert_eq!(back.destination, q.source);
        assert_eq!(&f[back.message], message);
        assert!(
            verifies(&f[ETHERNET..ETHERNET + IPV4], 0),
            "IPv4 header checksum"
        );
        let pseudo = sum(&f[ETHERNET + 12..ETHERNET + 20], 0) + 17 + (len - 34) as u32;
        assert!(verifies(&f[34..], pseudo), "UDP checksum");
    }

    #[test]
    fn an_ipv6_answer_has_its_udp_checksum() {
        let v4 = ipv4_query();
        let dns = &v4[42..];
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((UDP + dns.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[17, 64]);
        f.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&"2001:db8::53".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&v4[34..42]);
        f.extend_from_slice(dns);
        let q = parse(&f).unwrap();
        assert_eq!(q.source, "[2001:db8::1]:40000".parse().unwrap());
        let len = answer(&mut f, &q, dns.len());
        let back = parse(&f[..len]).unwrap();
        assert_eq!(back.destination, q.source);
        let pseudo = sum(&f[ETHERNET + 8..ETHERNET + 40], 0) + 17 + (len - 54) as u32;
        assert!(verifies(&f[54..len], pseudo), "UDP checksum");
    }
}
