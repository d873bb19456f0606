//! Meridian: an authoritative GEO DNS server with health-checked records.
//!
//! Data flows one way: YAML files ([`config`]) are validated and compiled into an immutable
//! zone table ([`zone`]), which the DNS handler ([`dns`]) reads through an atomic pointer.
//! Health checkers ([`health`]) write member state that the table's selection policies
//! ([`select`]) read with atomics.

pub mod admin;
pub mod cli;
pub mod config;
pub mod dns;
pub mod forward;
pub mod geo;
pub mod health;
pub mod metrics;
pub mod select;
pub mod server;
pub mod zone;
