//! The safe DPDK layer: the only module of synwall, besides `dpdk-sys`, that
//! contains `unsafe`. Every FFI call is wrapped in a small function that
//! returns `Result`; ownership of DPDK objects lives in types.
//!
//! Who owns what:
//! - [`Eal`] owns the EAL: one per process; dropping it runs `rte_eal_cleanup`.
//! - [`Mempool`] owns a packet mempool; ports and mbufs borrow from it, so it
//!   is shared as `Arc<Mempool>` and outlives the ports that hold it.
//! - [`Port`] owns a configured, started ethdev; dropping it stops and closes
//!   the device (which is when `net_pcap` flushes its capture file).
//! - [`RxQueue`]/[`TxQueue`] are the right to poll one queue: each exists once
//!   and moves to the single lcore that polls it.
//! - [`Mbuf`] owns one packet buffer; [`MbufBurst`] owns up to 32 of them.
//!   Handing mbufs to the NIC consumes them; what the NIC did not take stays
//!   owned and is freed in bulk.
#![allow(unsafe_code)]

mod eal;
mod error;
mod lcore;
mod mbuf;
mod memory;
mod mempool;
mod port;
mod telemetry;

pub use eal::Eal;
pub use error::{DpdkError, Result};
pub use lcore::{launch, lcore_node, main_lcore, tsc_hz, tsc_now, Launched, LcoreId};
pub use mbuf::{Mbuf, MbufBurst, BURST};
pub use memory::{cpu_node, prefetch, Backing, HugeArray, HUGE_PAGE};
pub use mempool::Mempool;
pub use port::{
    port_by_name, port_name, LinkStatus, Port, PortConfig, PortId, PortStats, RxQueue, TxQueue,
};
pub use telemetry::{enable_capture, register_telemetry, TelemetrySource};
