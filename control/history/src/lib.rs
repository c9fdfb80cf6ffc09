//! synwall's per-customer history: how many watched SYNs each customer sent
//! (and how many were forwarded) per minute, kept on disk in the state
//! directory, and the arithmetic that turns it into answers for operators
//! choosing limits (`synwallctl history`, `what-if`, `suggest`, `report`).
//!
//! - [`store`]: the SQLite file (`history.sqlite`), keyed by customer
//!   *name* so history follows a customer across reloads that renumber
//!   it; 1-minute buckets for [`MINUTES_KEPT`] minutes, hourly ones for
//!   [`HOURS_KEPT`] hours; a damaged file is set aside and a new one begun.
//! - [`series`]: a customer's counts as a series of buckets, resampled to
//!   a step, and its peak in a trailing window.
//! - [`stats`]: percentiles of peaks and the suggested limit.
//!
//! No threads, sockets or DPDK here: the appliance's history writer thread
//! and the socket commands call in.
#![forbid(unsafe_code)]

pub mod blob;
pub mod series;
pub mod stats;
pub mod store;

pub use series::{Bucket, Series};
pub use store::{BlockRecord, Damage, MinuteCount, Store, StoreError};

/// Minutes of 1-minute buckets kept: 49 hours (at least 48 h whatever the
/// hour of the last prune).
pub const MINUTES_KEPT: i64 = 49 * 60;

/// Hours of hourly buckets kept: 91 days (at least 90 days).
pub const HOURS_KEPT: i64 = 91 * 24;

/// The file in the state directory.
pub const FILE_NAME: &str = "history.sqlite";

/// Unix minute of a Unix millisecond time.
pub fn minute_of_ms(ms: u64) -> i64 {
    (ms / 60_000) as i64
}
