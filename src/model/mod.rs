//! The shared vocabulary: the types that every layer above speaks, importing nothing from
//! the rest of the crate.
//!
//! - [`policy`]: how a health-checked name chooses (`selection:`, `when-all-down:`).
//! - [`check`]: what a health check probes, and the key a probe is shared by.
//! - [`role`]: what an HTTP check's response says a member is, beyond up or down.
//! - [`transition`]: failovers as they happened, timed, for status and metrics.
//! - [`quorum`]: how the views of the servers of a cluster decide a probe's state.
//! - [`health`]: the handles that checkers write and selection reads through atomics.
//! - [`name`]: names as the table keys them, lower-cased wire form.
//! - [`wire`]: records as the table stores them, encoded once at load time for the UDP
//!   fast path.
//! - [`counters`]: the counters the query path bumps and `/metrics` reads.
//! - [`file`]: reading files the configuration names: regular files only, up to a size.
//! - [`log_limit`]: rate-limited log lines, for events hostile traffic can cause.

pub mod check;
pub mod counters;
pub mod events;
pub mod file;
pub mod health;
pub mod log_limit;
pub mod name;
pub mod policy;
pub mod quorum;
pub mod role;
pub mod transition;
pub mod wire;

pub use check::{Check, CheckSpec, HttpCheck, ProbeKey, Timing};
pub use counters::{Counters, MemberCounters, QueryCounters, rcode_name};
pub use health::{MemberHealth, ProbeSet, ProbeState, Recovery};
pub use log_limit::LogLimit;
pub use policy::{Policy, WhenAllDown};
pub use quorum::{Decision, PeerView, Quorum};
pub use role::{NO_ROLE, Roles};
pub use wire::{PackedRecords, StoredRecord, WireRef};

/// Whether serial `a` is above `b` in serial number arithmetic (RFC 1982 3.2), as
/// secondaries compare SOA serials.
pub fn serial_above(a: u32, b: u32) -> bool {
    a != b && (a.wrapping_sub(b) as i32) > 0
}
