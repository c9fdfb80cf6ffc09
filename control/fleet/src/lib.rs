//! The fleet's link to Redis (standalone or Cluster): several appliances
//! enforce one limit per customer through it.
//!
//! The budget rules (floors, leases, what to ask) are the engine's
//! (`synwall_engine::fleet`); this crate carries its rounds to Redis and
//! brings the other appliances' announcements back, implementing the
//! engine's [`LeaseConnector`](synwall_engine::fleet::lease::LeaseConnector)
//! as [`link::Redis`]: [`script`] is the one atomic Lua script that keeps a
//! customer's shared windows, leases and block under one hash tag,
//! [`node`] talks to one Redis node (pipelines, timeouts, NOSCRIPT),
//! [`cluster`] routes calls to a Cluster's masters, and [`link`] runs
//! that I/O on threads of its own so that a slow Redis never stalls a
//! tick.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod link;
pub mod node;
pub mod script;

pub use link::Redis;
