//! synwall's per-packet path: plain Rust over byte slices and ids (parse,
//! classify, count, verdict), testable without EAL. It builds and tests with
//! no DPDK on the machine: of the DPDK layer it uses only `synwall-memory`
//! (huge-page table memory, prefetch, the TSC), which needs no EAL. The worker
//! loop that feeds it mbufs lives with the appliance (`synwall-control`).
#![forbid(unsafe_code)]

pub mod checksum;
pub mod classify;
pub mod counters;
pub mod craft;
pub mod generation;
pub mod listing;
pub mod parse;
pub mod pcap;
pub mod reset;
pub mod shard;
pub mod verdict;

pub use classify::CustomerId;
/// The cache-line hint the tables are read with, for the control plane
/// that walks the same tables.
pub use synwall_memory::prefetch;
