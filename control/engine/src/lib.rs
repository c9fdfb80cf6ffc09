//! synwall's control-plane engine: the pure logic the control thread
//! runs. Each tick reads the workers' per-core counters, adds them to the
//! customers' trailing windows, weighs the limits, writes the grants and
//! blocks the workers enforce, and says what happened as events.
//!
//! - [`plane`]: the [`plane::ControlPlane`], split by idea (limits and
//!   blocks, tick, views, reconfigure) with its [`snapshot`];
//! - [`window`]: trailing windows of 30 buckets;
//! - [`grant`]: the per-core grants the workers spend;
//! - [`event`]: what the plane reports, and the event log it is written to;
//! - [`fleet`]: the fleet's budget rules (floors and leases) and the
//!   [`fleet::lease::LeaseLink`] trait a store (Redis: `synwall-fleet`)
//!   implements;
//! - [`classifier`]: the customers' prefixes as the dataplane's classifier;
//! - [`dirs`]: the directories the engine writes in must be synwall's own.
//!
//! No threads, sockets, Redis, DPDK or Prometheus: the appliance crate
//! (`synwall-control`) brings those.
#![forbid(unsafe_code)]

pub mod classifier;
pub mod dirs;
pub mod event;
pub mod fleet;
pub mod grant;
pub mod plane;
pub mod slab;
pub mod window;

pub use plane::snapshot;
