//! The safe DPDK layer: the only crate of synwall, besides `dpdk-sys`, that
//! contains `unsafe`. Every FFI call is wrapped in a small function that
//! returns `Result`; ownership of DPDK objects lives in types.
//!
//! Two halves. [`memory`](HugeArray) (huge-page arrays, `prefetch`,
//! `cpu_node`) needs only libc and is all the pure packet path
//! (`synwall-dataplane`) uses, so it is always built. Everything else needs
//! the EAL and links libdpdk through `dpdk-sys`: it is the `eal` feature (on
//! by default; `synwall-dataplane` turns it off, so it builds and tests with
//! no DPDK on the machine).
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

mod memory;
mod port_stats;

pub use memory::{cpu_node, prefetch, Backing, HugeArray, HUGE_PAGE};
pub use port_stats::PortStats;

#[cfg(not(feature = "eal"))]
mod tsc;
#[cfg(not(feature = "eal"))]
pub use tsc::tsc_now;

#[cfg(feature = "eal")]
mod eal;
#[cfg(feature = "eal")]
mod error;
#[cfg(feature = "eal")]
mod lcore;
#[cfg(feature = "eal")]
mod mbuf;
#[cfg(feature = "eal")]
mod mempool;
#[cfg(feature = "eal")]
mod port;
#[cfg(feature = "eal")]
mod telemetry;

#[cfg(feature = "eal")]
pub use eal::Eal;
#[cfg(feature = "eal")]
pub use error::{DpdkError, Result};
#[cfg(feature = "eal")]
pub use lcore::{tsc_now, Launched, LcoreId};
#[cfg(feature = "eal")]
pub use mbuf::{Mbuf, MbufBurst, BURST};
#[cfg(feature = "eal")]
pub use mempool::Mempool;
#[cfg(feature = "eal")]
pub use port::{LinkStatus, Port, PortConfig, PortId, RxQueue, TxQueue};
#[cfg(feature = "eal")]
pub use telemetry::TelemetrySource;
