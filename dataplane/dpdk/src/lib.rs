//! The safe DPDK layer: with `dpdk-sys` and `synwall-memory` (its other
//! half, beside it in `dataplane/dpdk/memory/`) the only code of synwall
//! that contains `unsafe`. Every FFI call is wrapped in a small function
//! that returns `Result`; ownership of DPDK objects lives in types.
//!
//! This crate is the EAL half and links libdpdk through `dpdk-sys`. The
//! table memory and the cycle counter ([`HugeArray`], [`prefetch`],
//! [`cpu_node`], [`tsc_now`]) need only libc: they are `synwall-memory`,
//! re-exported here, which is all the pure packet path
//! (`synwall-dataplane`) depends on, so it builds and tests with no DPDK on
//! the machine.
//!
//! Who owns what:
//! - [`Eal`] is the initialised EAL: one per process. Everything that needs
//!   the EAL takes `&Eal` ([`Mempool::new`], [`Port::open`],
//!   [`Eal::launch`], [`Eal::main_lcore`], [`Eal::tsc_hz`], ...), so nothing
//!   can be called before `rte_eal_init`. `rte_eal_cleanup` runs when the
//!   `Eal` *and* every pool, port, queue and launched lcore made with it are
//!   gone (each holds a share of it), so no teardown order can be got wrong.
//! - [`Mempool`] owns a packet mempool; ports and mbufs borrow from it, so it
//!   is shared as `Arc<Mempool>` and outlives the ports that hold it.
//! - [`Port`] owns a configured, started ethdev; dropping it stops and closes
//!   the device (which is when `net_pcap` flushes its capture file).
//! - [`RxQueue`]/[`TxQueue`] are the right to poll one queue: each exists once
//!   and moves to the single lcore that polls it.
//! - [`Mbuf`] owns one packet buffer; [`MbufBurst`] owns up to 32 of them.
//!   Handing mbufs to the NIC consumes them; what the NIC did not take stays
//!   owned and is freed in bulk.
//! - [`LcoreId`] and [`PortId`] exist only as the EAL hands them out (an
//!   enabled lcore, a port found by name).
#![allow(unsafe_code)]

mod eal;
mod error;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod port_stats;
mod telemetry;

pub use eal::Eal;
pub use error::{DpdkError, Result};
pub use lcore::{Launched, LcoreId};
pub use mbuf::{Mbuf, MbufBurst, BURST};
pub use mempool::Mempool;
pub use port::{LinkStatus, Port, PortConfig, PortId, RxQueue, TxQueue};
pub use port_stats::PortStats;
pub use synwall_memory::{cpu_node, prefetch, tsc_now, Backing, HugeArray, HUGE_PAGE};
pub use telemetry::TelemetrySource;
