//! Benchmarks: the realistic traffic mix, the many-customer floods and the
//! customer tables shared by the micro benchmarks (`benches/packet_path.rs`),
//! `synwall-mkpcap` and `scripts/bench-dataplane`; and `synwall-gen`, the
//! traffic generator bench (profiles, traffic, its own dataplane, the NDR
//! search, verify, reports).
#![forbid(unsafe_code)]
pub mod appliance;
pub mod bench;
pub mod cli;
pub mod customers;
pub mod engine;
pub mod flood;
pub mod mix;
pub mod ndr;
pub mod profile;
pub mod report;
pub mod rng;
pub mod traffic;
pub mod verify;
