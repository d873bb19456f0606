//! A well-formed question with any bytes as its OPT record's options (ECS, COOKIE and the
//! rest), and any buffer size and version: both paths must agree, and every reply keep
//! the properties of `dns_harness::properties`.
#![no_main]

#[path = "dns_harness.rs"]
mod dns_harness;

/// Questions the options are tried against: a plain name, a proximity name, a large set,
/// a name that does not exist.
const NAMES: [&[u8]; 4] = [
    b"\x03www\x04fuzz\x04test\x00",
    b"\x04prox\x04fuzz\x04test\x00",
    b"\x03big\x04fuzz\x04test\x00",
    b"\x04nope\x04fuzz\x04test\x00",
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (head, options) = data.split_at(4);
    let mut msg = vec![head[0], head[1], 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    msg.extend_from_slice(NAMES[usize::from(head[2] % 4)]);
    msg.extend_from_slice(&[0, 1, 0, 1]); // A, IN
    // OPT: root owner, type 41, the buffer size, extended rcode 0, version, flags.
    let payload = u16::from_be_bytes([head[3], head[0]]);
    msg.extend_from_slice(&[0, 0, 41]);
    msg.extend_from_slice(&payload.to_be_bytes());
    msg.extend_from_slice(&[0, head[1] & 0x01, 0, 0]);
    let options = &options[..options.len().min(1000)];
    msg.extend_from_slice(&(options.len() as u16).to_be_bytes());
    msg.extend_from_slice(options);
    dns_harness::check(&msg, head[2] / 4);
});
