//! synwall's control plane: it builds the dataplane from the config, starts
//! the workers, reads their per-core counters, and reports.
//!
//! The running appliance (`appliance`: EAL, ports, lcores; `worker`: the
//! poll loop over mbufs) is the `eal` feature, on by default. Without it the
//! rest builds with no DPDK on the machine (the fuzz targets use that).
#![forbid(unsafe_code)]

#[cfg(feature = "eal")]
pub mod appliance;
pub mod choosing;
pub mod commands;
pub mod console;
pub mod control_thread;
pub mod dirs;
pub mod event;
pub mod fleet;
pub mod flowspec;
pub mod grant;
pub mod history;
pub mod hook;
pub mod metrics;
pub mod notify;
pub mod plane;
pub mod preflight;
pub mod protocol;
pub mod reload;
pub mod setup;
pub mod snapshot;
pub mod socket;
pub mod state_lock;
pub mod summary;
pub mod supervise;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod whatif;
pub mod window;
#[cfg(feature = "eal")]
pub mod worker;
