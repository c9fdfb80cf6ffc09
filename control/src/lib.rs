//! The synwall appliance: it builds the dataplane from the config, starts
//! the workers, runs the engine ([`synwall_engine`]) on the control
//! thread, serves the control socket ([`synwall_protocol`]), and reports
//! (hooks, FlowSpec, systemd, metrics, the summary). Nothing depends on
//! this crate: it is the `synwall` binary's.
#![forbid(unsafe_code)]

pub mod appliance;
pub mod choosing;
pub mod commands;
pub mod console;
pub mod control_thread;
pub mod flowspec;
pub mod history;
pub mod hook;
pub mod metrics;
pub mod notify;
pub mod preflight;
pub mod reload;
pub mod setup;
pub mod socket;
pub mod state_lock;
pub mod summary;
pub mod supervise;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod whatif;
pub mod worker;
