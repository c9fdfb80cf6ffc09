//! synwall's control plane: it builds the dataplane from the config, starts
//! the workers, reads their per-core counters, and reports.
#![forbid(unsafe_code)]

pub mod appliance;
pub mod event;
pub mod plane;
pub mod snapshot;
pub mod summary;
pub mod window;
