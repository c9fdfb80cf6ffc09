//! The control plane's tick: per-core counters → windows → limits → grants,
//! blocks and events.
//!
//! This file holds the plane's state (private fields: only this folder
//! touches them) and its construction; each idea is an `impl ControlPlane`
//! of its own: `limits.rs` (limits and blocks), `tick.rs`, `views.rs`,
//! `reconfigure.rs` and [`snapshot`].
//!
//! # Exact enforcement: the grant argument
//!
//! (The writes themselves live in [`crate::grant`].)
//!
//! Per customer `c` and core `s`, the worker keeps a cumulative forwarded
//! count `F_s` and forwards a SYN only while `F_s < G_s`, where `G_s` is the
//! cumulative grant this module writes. So at any moment the SYNs core `s`
//! can still forward are bounded by `G_s - F_s` ("outstanding").
//!
//! Each tick reads `r_s` (≤ the true `F_s`) and adds the new forwards to the
//! windows, so every window count includes every SYN up to `r_s`. With
//! `B = min over windows (limit - count)` the remaining budget, the tick
//! keeps this invariant:
//!
//! ```text
//!   Σ_s  max(G_s_old, G_s_new) - r_s   ≤   B
//! ```
//!
//! The left side bounds what can still be forwarded until the next read:
//! a worker that raced us (read the old grant just before our store) can use
//! at most the old grant, one that sees the new grant at most the new one.
//! Hence: a core whose outstanding `G_s_old - r_s` already exceeds its fair
//! share is *lowered* to `r_s + share`, but is charged its full old
//! outstanding this tick (the worker may still be spending it); it is freed
//! by the next read. Cores below their share are *raised* only out of
//! `B - Σ outstanding`, the budget nobody holds. Grants are never raised
//! past that, so `count + everything still forwardable ≤ limit` at every
//! read, and because window counts never miss a SYN of the last `length`
//! (see [`crate::window`]), no trailing window of a customer's exact length
//! ever forwards more than its limit — however fast the burst between ticks.
//!
//! The one assumption: a grant stored at one tick is visible to the worker
//! by the next tick (stores reach other cores in well under a microsecond;
//! a tick is at least 10 ms). `B` only grows between ticks (counts only
//! expire), so skipping a customer for a tick is always safe.
//!
//! The split is even (remainder to the first core), so a customer never sees
//! a false drop while its SYNs on any one core between two ticks stay below
//! `B / cores`. Before the first tick all grants are unlimited: run one tick
//! before starting the workers.
//!
//! # Cost
//!
//! A tick works on the customers that can have changed, not on the table:
//! each worker lists a customer in a bounded ring the first time it counts
//! one of its SYNs after the tick last took it (one load of a mark in the
//! cell the SYN touches anyway, and on that first SYN a store and a push),
//! and the tick takes every core's ring
//! ([`synwall_dataplane::shard::WorkerShard::take_listed`], where the
//! argument that no count is lost lives). It evaluates those, the ones it
//! cleared last tick whose counts moved since, and the customers with
//! window state, a block, an operator's change or a fleet lease. A ring
//! that overflowed (more customers listed in one tick than its slots,
//! `min(customers, 64 Ki)`) makes that tick scan the core's cells instead:
//! one load and a compare with a 4-byte baseline per customer, as every
//! tick did before the rings. Idle customers cost 8 bytes per core of
//! baselines plus ~8 bytes, and no work.
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use synwall_config::{Config, Mode};
use synwall_dataplane::CustomerId;

use crate::event::{Event, EventKind, Timestamp};
use crate::fleet::lease::LeaseConnector;
use crate::fleet::local::FleetLocal;
use crate::slab::IdSlab;
use crate::window::Windows;

mod limits;
mod reconfigure;
pub mod snapshot;
mod tick;
mod views;

/// State changes kept per customer.
pub const HISTORY: usize = 16;

/// Why a customer is (or was) blocked or unblocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Reason {
    /// A window reached its limit and the customer tried for more.
    Limit {
        /// The window's name.
        window: String,
        /// Its count at the time.
        count: u64,
        /// Its limit.
        limit: u64,
    },
    /// An operator's action.
    Operator {
        /// Who.
        by: String,
        /// Their words.
        reason: String,
    },
    /// `blocked = true` in the config: a standing block.
    Config,
    /// The block ran out.
    Expired,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Limit {
                window,
                count,
                limit,
            } => write!(f, "limit: {count} SYNs in {window}, limit {limit}"),
            Reason::Operator { by, reason } => write!(f, "operator {by}: {reason}"),
            Reason::Config => f.write_str("standing block in the config"),
            Reason::Expired => f.write_str("block expired"),
        }
    }
}

/// One state change in a customer's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// When.
    pub at: Timestamp,
    /// `block`, `unblock` or `expire`.
    pub kind: EventKind,
    /// Why.
    pub reason: Reason,
    /// For a block: when it ends (absent = indefinite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
}

/// A block in force. Times: `since` is wall clock, `until` the plane's
/// monotonic clock.
#[derive(Debug, Clone, PartialEq)]
struct BlockState {
    since: Timestamp,
    until: Option<u64>,
    reason: Reason,
}

/// Everything beyond the dense per-customer fields; exists only for
/// customers that ever sent a watched SYN or were blocked.
#[derive(Debug, Clone, Default)]
struct Record {
    block: Option<BlockState>,
    /// Limit blocks so far (drives escalation).
    offences: u32,
    history: VecDeque<Change>,
    seen: u64,
    forwarded: u64,
    attempts_while_blocked: u64,
    /// SYNs dropped while open: the grant of a tick ran out at the limit,
    /// before the block the next tick makes (or, in a fleet, before the
    /// lease came). `seen = forwarded + attempts_while_blocked + this`.
    dropped_at_limit: u64,
    /// Bit `w`: window `w` is at or above the near-limit mark (warned).
    near: u16,
    /// Bit `w`: window `w` is over its limit (monitor: reported).
    over: u16,
}

impl Record {
    fn push(&mut self, change: Change) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(change);
    }
}

/// The few bytes every customer costs.
#[derive(Debug, Clone, Copy)]
struct Dense {
    /// Index into `limit_sets`: customers share identical limit vectors.
    limits: u32,
    mode: Mode,
    config_blocked: bool,
}

/// A window's name and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowMeta {
    /// As in the config (`"5m"`).
    pub name: String,
    /// Its length.
    pub length: Duration,
}

/// How long blocks last.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BlockPolicy {
    first_ms: u64,
    escalation: f64,
    max_ms: u64,
}

impl BlockPolicy {
    /// Length of the `offence`-th limit block (1-based), capped.
    fn duration_ms(&self, offence: u32) -> u64 {
        let exp = offence.saturating_sub(1).min(i32::MAX as u32) as i32;
        let ms = self.first_ms as f64 * self.escalation.powi(exp);
        ms.min(self.max_ms as f64) as u64
    }
}

/// The mapping between the plane's monotonic milliseconds and wall-clock
/// Unix milliseconds, fixed when the plane is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WallMapping {
    mono0: u64,
    wall0: u64,
}

impl WallMapping {
    fn wall(&self, mono: u64) -> Timestamp {
        // In i128: no sum of three u64s wraps (a block's `until` may be
        // far ahead); the result saturates to the u64 range.
        let ms = i128::from(self.wall0) + i128::from(mono) - i128::from(self.mono0);
        Timestamp(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
    }

    fn mono_of_wall(&self, wall: i64) -> i64 {
        let ms = i128::from(wall) - i128::from(self.wall0) + i128::from(self.mono0);
        i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
    }
}

/// Every customer's id, by name (`names` in id order).
fn ids_by_name(names: &[Box<str>]) -> rustc_hash::FxHashMap<&str, CustomerId> {
    let ids = CustomerId::all(names.len());
    names.iter().map(|n| &**n).zip(ids).collect()
}

/// An operator request the plane refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaneError {
    /// No customer has this id.
    #[error("no customer with id {0}")]
    UnknownCustomer(CustomerId),
    /// No window has this index.
    #[error("no window number {0}")]
    UnknownWindow(usize),
    /// Unblock of a customer that is not blocked.
    #[error("customer '{0}' is not blocked")]
    NotBlocked(String),
}

/// Count and limit of one window, for views.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowView {
    /// The window's name.
    pub name: String,
    /// The customer's count in it.
    pub count: u64,
    /// The customer's limit in it (0 = port closed).
    pub limit: u64,
}

/// Everything about one customer, for `synwallctl customer`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerView {
    /// Dense id.
    pub id: CustomerId,
    /// Name.
    pub name: String,
    /// Effective mode.
    pub mode: Mode,
    /// Per window, in config order.
    pub windows: Vec<WindowView>,
    /// `"open"` or `"blocked"`.
    pub state: &'static str,
    /// Start of the current block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// End of the current block (absent: open, or indefinite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// Why the current block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Limit blocks so far.
    pub offences: u32,
    /// The last [`HISTORY`] state changes, oldest first.
    pub history: Vec<Change>,
    /// Watched SYNs seen, all cores, as of the last tick.
    pub seen: u64,
    /// Of those, forwarded.
    pub forwarded: u64,
    /// SYNs dropped while blocked.
    pub attempts_while_blocked: u64,
    /// SYNs dropped while open, at the limit: the grant ran out before the
    /// block took effect.
    pub dropped_at_limit: u64,
}

/// A block in force, for `synwallctl blocks`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockView {
    /// Dense id.
    pub id: CustomerId,
    /// Name.
    pub customer: String,
    /// Start.
    pub since: Timestamp,
    /// End; absent = indefinite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// Why.
    pub reason: Reason,
}

/// One line of [`ControlPlane::top`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopEntry {
    /// Dense id.
    pub id: CustomerId,
    /// Name.
    pub customer: String,
    /// Count in the window asked for.
    pub count: u64,
    /// Limit in that window.
    pub limit: u64,
}

/// What [`ControlPlane::reconfigure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    /// For each old id, the new id of the same customer (by name), or `None`
    /// if it was removed. Use it to carry the shards' counters over.
    pub id_map: Vec<Option<CustomerId>>,
    /// Customers in the new config that were not in the old.
    pub added: usize,
    /// Customers of the old config that are gone.
    pub removed: usize,
}

/// The control plane's state: limits, windows, blocks, and what it last read
/// from each worker shard. Single-threaded: owned by the control thread.
#[derive(Debug)]
pub struct ControlPlane {
    windows_meta: Vec<WindowMeta>,
    policy: BlockPolicy,
    near_limit: f64,
    wall_mapping: WallMapping,
    names: Vec<Box<str>>,
    dense: Vec<Dense>,
    limit_sets: Vec<Box<[u64]>>,
    limit_index: HashMap<Box<[u64]>, u32>,
    windows: Windows,
    records: IdSlab<Record>,
    /// Customers with a block in force (iterated for expiry and views).
    blocked: BTreeSet<CustomerId>,
    /// Customers to re-evaluate at the next tick (operator changes).
    dirty: Vec<CustomerId>,
    /// Re-evaluate everyone (first tick, new shards, reload).
    all_dirty: bool,
    /// Low 32 bits of each core's counters at the last read, per core then
    /// customer. 32 bits suffice: a core cannot forward 2^32 SYNs of one
    /// customer within one tick (≤ 10 s), and deltas wrap correctly.
    base_seen: Vec<Vec<u32>>,
    base_fwd: Vec<Vec<u32>>,
    /// Identity of the shards last ticked with.
    attached: Vec<usize>,
    cands: Vec<CustomerId>,
    /// The customers whose listing marks the last tick cleared: this tick
    /// looks at their counts again (`WorkerShard::take_listed`).
    recheck: Vec<CustomerId>,
    /// A spare buffer for the next tick's cleared marks.
    cleared: Vec<CustomerId>,
    /// Ticks that found a worker's listing ring overflowed and scanned
    /// the table instead.
    listing_overflows: u64,
    reads: Vec<u64>,
    /// Events raised outside a tick (config blocks), returned by the next.
    pending: Vec<Event>,
    /// `[fleet]`: floors, leases and the Redis link.
    fleet: Option<FleetLocal>,
    /// SYNs seen and forwarded per customer since the history last took
    /// them ([`ControlPlane::take_recent`]).
    recent: IdSlab<(u64, u64)>,
    /// What opens the fleet's links (a reload's new fleet state gets it).
    connector: Option<Arc<dyn LeaseConnector>>,
    /// The plane a reload replaced, for the caller to free
    /// ([`ControlPlane::take_retired`]).
    retired: Option<Box<ControlPlane>>,
    /// Tests: runs between reading a customer's counters and writing its
    /// grants, to play the worker racing the tick.
    #[cfg(test)]
    race: Option<RaceHook>,
}

/// A test hook called with the customer id mid-evaluation.
#[cfg(test)]
struct RaceHook(Box<dyn FnMut(CustomerId) + Send>);

#[cfg(test)]
impl std::fmt::Debug for RaceHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaceHook")
    }
}

impl ControlPlane {
    /// A plane for `config`'s customers, with the monotonic clock reading
    /// `now` (ms) at wall-clock Unix time `wall_ms`. Customers with
    /// `blocked = true` start with an indefinite standing block.
    pub fn new(config: &Config, now: u64, wall_ms: u64) -> ControlPlane {
        ControlPlane::with_wall_mapping(
            config,
            WallMapping {
                mono0: now,
                wall0: wall_ms,
            },
            now,
        )
    }

    /// Gives the fleet state (`[fleet]`) what opens its links to the
    /// shared store; without it a fleet's customers live on their floors.
    pub fn connect_fleet(&mut self, connector: Arc<dyn LeaseConnector>) {
        if let Some(f) = self.fleet.as_mut() {
            f.connect(connector.clone());
        }
        self.connector = Some(connector);
    }

    /// The plane the last [`ControlPlane::reconfigure`] replaced: freeing
    /// a million customers' worth of memory takes long enough to delay a
    /// tick, so the caller frees it where that does not matter.
    pub fn take_retired(&mut self) -> Option<Box<ControlPlane>> {
        self.retired.take()
    }

    fn with_wall_mapping(config: &Config, wall_mapping: WallMapping, now: u64) -> ControlPlane {
        let windows_meta: Vec<WindowMeta> = config
            .windows
            .iter()
            .map(|w| WindowMeta {
                name: w.name.clone(),
                length: w.length,
            })
            .collect();
        let lengths: Vec<Duration> = windows_meta.iter().map(|w| w.length).collect();
        let mut plane = ControlPlane {
            windows: Windows::new(&lengths),
            windows_meta,
            policy: BlockPolicy {
                first_ms: config.block.duration.as_millis() as u64,
                escalation: config.block.escalation.max(1.0),
                max_ms: config.block.max_duration.as_millis() as u64,
            },
            near_limit: config.detect.near_limit,
            wall_mapping,
            names: Vec::with_capacity(config.customers.len()),
            dense: Vec::with_capacity(config.customers.len()),
            limit_sets: Vec::new(),
            limit_index: HashMap::new(),
            records: IdSlab::default(),
            blocked: BTreeSet::new(),
            dirty: Vec::new(),
            all_dirty: true,
            base_seen: Vec::new(),
            base_fwd: Vec::new(),
            attached: Vec::new(),
            cands: Vec::new(),
            recheck: Vec::new(),
            cleared: Vec::new(),
            listing_overflows: 0,
            reads: Vec::new(),
            pending: Vec::new(),
            fleet: config.fleet.as_ref().map(|f| {
                FleetLocal::new(f, &lengths, config.control.tick, wall_mapping.wall0, now)
            }),
            connector: None,
            retired: None,
            recent: IdSlab::default(),
            #[cfg(test)]
            race: None,
        };
        // Most customers have neither a plan nor limits of their own: their
        // set is the windows' defaults, looked up once, not a million times.
        let mut defaults = None;
        for customer in &config.customers {
            let limits = match defaults {
                Some(i) if customer.plan.is_none() && customer.overrides.is_unset() => i,
                _ => {
                    let i = plane.intern(config.effective_limits(customer));
                    if customer.plan.is_none() && customer.overrides.is_unset() {
                        defaults = Some(i);
                    }
                    i
                }
            };
            plane.names.push(customer.name.as_str().into());
            plane.dense.push(Dense {
                limits,
                mode: config.effective_mode(customer),
                config_blocked: customer.blocked,
            });
        }
        plane.reapply_config_blocks(now);
        plane
    }

    fn intern(&mut self, limits: Vec<u64>) -> u32 {
        let limits = limits.into_boxed_slice();
        if let Some(&i) = self.limit_index.get(&limits) {
            return i;
        }
        let i = self.limit_sets.len() as u32;
        self.limit_sets.push(limits.clone());
        self.limit_index.insert(limits, i);
        i
    }

    fn check(&self, customer: CustomerId) -> Result<usize, PlaneError> {
        if customer.index() < self.dense.len() {
            Ok(customer.index())
        } else {
            Err(PlaneError::UnknownCustomer(customer))
        }
    }
}

#[cfg(test)]
mod tests;
