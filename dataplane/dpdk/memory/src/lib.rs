//! The half of the DPDK layer that needs no EAL: memory for the big
//! per-customer tables ([`HugeArray`], [`prefetch`], [`cpu_node`]) and the
//! cycle counter ([`tsc_now`]). It needs only libc, so `synwall-dataplane`
//! (the pure packet path) depends on it alone and builds, tests and fuzzes
//! with no DPDK on the machine; `synwall-dpdk` (the EAL half) re-exports it.
//!
//! It lives beside `synwall-dpdk` in `dataplane/dpdk/` because it is the
//! same layer: with `dpdk-sys` and `synwall-dpdk` it is the only code of
//! synwall allowed `unsafe` (`mmap`/`mbind`, `prefetch`, `rdtsc`), each
//! block with a `// SAFETY:` line.
#![allow(unsafe_code)]

mod array;
mod tsc;

pub use array::{cpu_node, prefetch, Backing, HugeArray, HUGE_PAGE};
pub use tsc::tsc_now;
