//! synwall's configuration: the TOML schema ([`raw`]), its validation into typed
//! values ([`Config`]), and the duration and prefix types both use.
//!
//! ```no_run
//! # use std::path::Path;
//! let config = synwall_config::Config::load(Path::new("/etc/synwall/synwall.toml"))?;
//! for customer in &config.customers {
//!     let limits = config.effective_limits(customer); // one per config.windows entry
//!     let mode = config.effective_mode(customer);
//!     println!("{} {mode} {limits:?}", customer.name);
//! }
//! # Ok::<(), synwall_config::ConfigError>(())
//! ```
//!
//! Errors ([`ConfigError`]) name the file, the key and what to do; a config either
//! loads completely or not at all.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod duration;
mod error;
#[cfg(feature = "fixtures")]
pub mod fixtures;
mod lcores;
mod lean;
mod load;
mod model;
mod prefix;
pub mod raw;
mod read;

pub use duration::{format_duration, parse_duration, DurationError};
pub use error::ConfigError;
pub use load::{
    DEFAULT_BLOCK_DURATION, DEFAULT_DESC, DEFAULT_ESCALATION, DEFAULT_EVENTS,
    DEFAULT_FLEET_TIMEOUT, DEFAULT_FLOWSPEC_COMMUNITY, DEFAULT_HOOK_TIMEOUT, DEFAULT_LEASE_DEMAND,
    DEFAULT_LEASE_MARGIN, DEFAULT_LEASE_TTL, DEFAULT_MAX_BLOCK_DURATION, DEFAULT_NEAR_LIMIT,
    DEFAULT_PORTS, DEFAULT_QUEUES, DEFAULT_SNAPSHOT_INTERVAL, DEFAULT_SOCKET, DEFAULT_SOCKET_MODE,
    DEFAULT_STATE_DIR, DEFAULT_STATS_INTERVAL, DEFAULT_TICK, DEFAULT_WINDOWS, MAX_DESC, MAX_QUEUES,
    MAX_SOCKET_PATH,
};
pub use model::{
    Block, BlockAction, BlockScope, Config, Control, Customer, CustomerList, Detect, Dpdk, Fleet,
    Flowspec, Hook, LcoreChoice, Limits, Link, MalformedPolicy, Mode, UnknownName, Window,
    MAX_EXEMPT_DESTINATIONS, MAX_WINDOWS,
};
pub use prefix::{Prefix, PrefixError};
pub use read::{read_bounded, show_bytes, Links, MAX_CONFIG_BYTES};
