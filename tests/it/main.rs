//! Integration tests, one binary (as hickory-dns does): a real server on 127.0.0.0/8,
//! queried over real UDP and TCP sockets, with real backends to check.

mod access;
mod bombs;
mod cases;
mod cli;
mod cluster;
mod common;
mod compose;
mod contrib;
mod cookies;
mod differential;
mod dns_core;
mod dnssec;
mod geo;
mod hardening;
mod health;
mod kemp;
mod knot;
mod kubernetes;
mod mutations;
mod operator;
mod ops;
mod privileges;
mod readme;
mod review;
mod rrl;
mod scale;
mod service;
mod tcp;
mod transfer;
mod vault;
mod xdp;
