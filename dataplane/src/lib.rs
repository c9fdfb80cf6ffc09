//! synwall's dataplane: the safe DPDK layer (`dpdk`, the only module besides
//! `dpdk-sys` allowed `unsafe`) and the per-packet path, which is plain Rust
//! over byte slices and ids, testable without EAL.
#![deny(unsafe_code)]

pub mod checksum;
pub mod classify;
pub mod craft;
pub mod dpdk;
pub mod generation;
pub mod parse;
pub mod pcap;
pub mod reset;
pub mod shard;
pub mod verdict;
pub mod worker;
