//! Any bytes as a UDP query, through the fast path and the general path: both must agree,
//! and every reply must keep the properties of `dns_harness::properties`.
#![no_main]

#[path = "dns_harness.rs"]
mod dns_harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, msg)) = data.split_last() else {
        return;
    };
    dns_harness::check(msg, selector);
});
