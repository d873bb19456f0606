//! Meridian: an authoritative GEO DNS server with health-checked records.
//!
//! Data flows one way: YAML files ([`config`]) are validated and compiled into an immutable
//! zone table ([`zone`]); the one decision path ([`resolve`]) turns a query and the table
//! into a plan of the response, which the DNS front end ([`dns`]) encodes. Health checkers
//! ([`health`]) write member state ([`model::health`]) that selection ([`select`]) reads
//! through atomics. The running state ([`state`]) holds what outlives a configuration;
//! [`server`] wires it all together, [`review`] compares the answers of two
//! configurations, and [`cli`] is the command line.
//!
//! Modules are layered; `tests/layers.rs` holds the order and fails on any import that goes
//! up it, and the README draws it.

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod cookie;
pub mod dns;
pub mod forward;
pub mod geo;
pub mod health;
pub mod metrics;
pub mod model;
pub mod resolve;
pub mod review;
pub mod rrl;
pub mod select;
pub mod server;
pub mod sign;
pub mod state;
pub mod xfr;
pub mod zone;
