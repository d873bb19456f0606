//! Any bytes as a frame off the AF_XDP ring: nothing, or a query whose message lies
//! inside the frame. An answer of any length the frame holds, written into that frame,
//! reads back as the reply to it (addresses and ports swapped, the message where it was
//! written) with checksums that verify, summed here apart from the server's own code.
#![no_main]

use std::net::IpAddr;

use meridian::dns::xdp::frame::{answer, parse};

/// An AF_XDP frame, as `ring::FRAME`: the most an answer can fill.
const FRAME: usize = 4096;

/// The Internet checksum (RFC 1071) over `parts`: all ones when it verifies.
fn ones_complement(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u64;
    for part in parts {
        for (i, b) in part.iter().enumerate() {
            sum += u64::from(*b) << if i % 2 == 0 { 8 } else { 0 };
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 2 || data.len() > FRAME {
        return;
    }
    let (choice, frame) = data.split_at(2);
    let Some(query) = parse(frame) else {
        return;
    };
    assert!(query.message.start <= query.message.end && query.message.end <= frame.len());
    let headers = query.headers();
    assert_eq!(
        headers,
        if query.source.is_ipv4() { 42 } else { 62 },
        "{query:?}"
    );
    assert_eq!(query.source.is_ipv4(), query.destination.is_ipv4());

    let mut buffer = vec![0u8; FRAME];
    buffer[..frame.len()].copy_from_slice(frame);
    let len = usize::from(u16::from_be_bytes([choice[0], choice[1]])) % (FRAME - headers + 1);
    for (i, b) in buffer[headers..headers + len].iter_mut().enumerate() {
        *b = i as u8;
    }
    let written = answer(&mut buffer, &query, len);
    assert_eq!(written, headers + len);
    let reply = &buffer[..written];

    let back = parse(reply).expect("an answer frame parses");
    assert_eq!(back.source, query.destination);
    assert_eq!(back.destination, query.source);
    assert_eq!(back.message, headers..headers + len);
    assert_eq!(
        &reply[..6],
        &frame[6..12],
        "destination MAC is the query's source"
    );
    assert_eq!(
        &reply[6..12],
        &frame[..6],
        "source MAC is the query's destination"
    );

    let udp = &reply[headers - 8..];
    let length = (udp.len() as u16).to_be_bytes();
    let pseudo: [&[u8]; 3] = match (back.source.ip(), back.destination.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            assert_eq!(ones_complement(&[&reply[14..34]]), 0xffff, "IPv4 header");
            [&reply[26..34], &[0, 17], &length]
        }
        (IpAddr::V6(_), IpAddr::V6(_)) => [&reply[22..54], &[0, 17], &length],
        _ => unreachable!("one family"),
    };
    let [addresses, protocol, length] = pseudo;
    assert_eq!(
        ones_complement(&[addresses, protocol, length, udp]),
        0xffff,
        "UDP checksum"
    );
});
