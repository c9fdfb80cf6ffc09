//! Shared helpers for the integration tests: run the real `synwall` binary
//! under EAL on `net_pcap` virtual devices, with crafted input captures, and
//! read back what came out of each port and the `--summary-json` counters.
//!
//! Every run gets its own temporary directory (removed when the test passes,
//! kept and printed when it fails) and its own EAL `--file-prefix`, so tests
//! can run in parallel.
//!
//! One file per idea: [`dir`] (temporary directories), [`bins`] (building
//! the binaries), [`process`] (running `synwall` with a time limit),
//! [`toml`] (config files), [`scenario`] (a run's inputs and config),
//! [`running`] (a run in the background), [`summary`] (what a run left, and
//! the assertions over it), [`frames`] (frame diffs), [`client`] (control
//! socket and HTTP), [`fixtures`] (the customers and addresses tests share),
//! [`redis`] (real Redis servers for the fleet).

pub mod bins;
pub mod client;
pub mod dir;
pub mod fixtures;
pub mod frames;
pub mod process;
pub mod redis;
pub mod running;
pub mod scenario;
pub mod summary;
pub mod toml;

pub use bins::*;
pub use client::*;
pub(crate) use dir::serial;
pub use dir::TestDir;
pub use frames::*;
pub use process::{cpus, is_root, reap, run_synwall, wait_timeout, Exit, RUN_TIMEOUT};
pub use redis::free_port;
pub use running::*;
pub use scenario::*;
pub use serde_json::Value;
pub use summary::*;
pub use toml::*;
