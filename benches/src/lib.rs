//! Benchmarks: the realistic traffic mix and customer tables shared by the
//! micro benchmarks (`benches/packet_path.rs`), `synwall-mkpcap` and
//! `scripts/bench-dataplane`.
pub mod customers;
pub mod mix;
pub mod rng;
