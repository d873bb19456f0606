//! Mutated queries, as a fuzzer would make them but from a fixed seed, against the
//! properties the fuzz targets check (`fuzz/fuzz_targets/dns_harness.rs`): over real UDP
//! and TCP to a running server, and in-process through both answer paths.

use std::net::UdpSocket;
use std::time::Duration;

use crate::common::*;

#[allow(dead_code)] // The harness's fuzzing entry points that these tests do not call.
#[path = "../../fuzz/fuzz_targets/dns_harness.rs"]
mod dns_harness;

/// A small, fixed pseudo-random sequence (xorshift), so that every run tries the same
/// inputs and a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The seed queries of the `query` fuzz target, without their source selector byte.
fn seeds() -> Vec<Vec<u8>> {
    let dir = repo().join("fuzz/corpus/query");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let mut bytes = std::fs::read(e.unwrap().path()).unwrap();
            bytes.pop();
            bytes
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 10, "seeds in {}", dir.display());
    seeds
}

/// One mutation: flip bits, overwrite, insert, delete or truncate, a few times over.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if m.is_empty() {
            m.push(rng.next() as u8);
        }
        let at = rng.below(m.len());
        match rng.below(5) {
            0 => m[at] ^= 1 << rng.below(8),
            1 => m[at] = rng.next() as u8,
            2 => m.insert(at, rng.next() as u8),
            3 => {
                m.remove(at);
            }
            _ => m.truncate(at),
        }
    }
    m
}

#[test]
fn mutated_queries_over_udp_and_tcp_get_well_formed_replies_or_none() {
    let zone = "zone: fuzz.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.1 }\nfqdns:\n  rr:\n    selection: round-robin\n    members: [{ address: 192.0.2.21 }, { address: 192.0.2.22 }]\n";
    let s = start(&[("fuzz.yaml", zone)]);
    let seeds = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (mut sent, mut answered) = (0, 0);
    let mut buf = [0u8; 4096];
    // Bursts of 500, each drained until the server falls silent; replies are matched to
    // their queries by id (each query gets its own).
    for burst in 0..40u32 {
        let mut queries = std::collections::HashMap::new();
        for j in 0..500u32 {
            let id = (burst * 500 + j) as u16;
            let seed = &seeds[rng.below(seeds.len())];
            let mut query = mutate(&mut rng, seed);
            if query.len() >= 2 {
                query[..2].copy_from_slice(&id.to_be_bytes());
            }
            sock.send_to(&query, s.addr).unwrap();
            sent += 1;
            queries.insert(id, query);
        }
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            let query = queries.get(&id).expect("a reply to a query of this burst");
            dns_harness::properties(query, Some(&buf[..n]));
            answered += 1;
        }
        // Over TCP as well, now and then: a reply parses, and none goes to QR=1.
        if burst % 4 == 0 {
            for query in queries.values().filter(|q| q.len() >= 12).take(3) {
                let wait = Duration::from_millis(200);
                if let Some(reply) = try_tcp_from(ip("127.0.0.1"), s.addr, query, wait) {
                    let m =
                        hickory_proto::op::Message::from_vec(&reply).expect("a TCP reply parses");
                    assert_eq!(reply[..2], query[..2]);
                    assert_eq!(query[2] & 0x80, 0, "a TCP reply to QR=1: {m:?}");
                }
            }
        }
    }
    assert!(answered > sent / 10, "{answered} replies of {sent}");
    // And the server is unmoved.
    let r = s.ask("www.fuzz.test.", hickory_proto::rr::RecordType::A);
    assert_eq!(addresses(&r), ["192.0.2.1"]);
}

#[test]
fn mutated_queries_get_the_same_answer_from_both_paths() {
    let seeds = seeds();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..5_000 {
        let seed = &seeds[rng.below(seeds.len())];
        let query = mutate(&mut rng, seed);
        dns_harness::check(&query, rng.next() as u8);
    }
}
