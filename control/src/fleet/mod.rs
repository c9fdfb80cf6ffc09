//! The fleet: several appliances enforce one limit per customer through
//! Redis (standalone or Cluster).
//!
//! Each appliance spends a floor of every limit (`floor × limit /
//! appliances`) with no Redis call, through the plane's own windows and
//! grants; the rest, `limit − Σ floors`, lives in Redis, and an appliance
//! whose customer needs more than its floor leases part of it: [`script`]
//! is the one atomic Lua script that keeps a customer's shared windows,
//! leases and block under one hash tag, [`node`] talks to one Redis node
//! (pipelines, timeouts, NOSCRIPT), and [`link`] runs that I/O on threads
//! of its own so that a slow Redis never stalls a tick.
pub mod cluster;
pub mod link;
pub mod local;
pub mod node;
pub mod script;
