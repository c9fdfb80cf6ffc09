//! The control plane's tick: per-core counters → windows → limits → grants,
//! blocks and events.
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
//! A tick scans each core's seen counts once, linearly (one load from each
//! customer's 32-byte cell and a compare with a 4-byte baseline per
//! customer and core; every forwarded SYN also bumps seen, so forwarded
//! needn't be scanned), then works
//! only on customers that changed, have window state, are blocked or were
//! touched by an operator. Idle customers cost 8 bytes per core of
//! baselines plus ~8 bytes, and no work beyond the scan.
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use synwall_config::{Config, Mode};
use synwall_dataplane::shard::{CellRead, WorkerShard};
use synwall_dataplane::CustomerId;

use crate::event::{Event, EventKind, Setting, Timestamp};
use crate::fleet::lease::{Announcement, LeaseConnector, Said};
use crate::fleet::local::FleetLocal;
use crate::grant;
use crate::window::{IdMap, Windows, MAX_WINDOWS};

pub mod snapshot;

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
pub(crate) struct BlockState {
    pub(crate) since: Timestamp,
    pub(crate) until: Option<u64>,
    pub(crate) reason: Reason,
}

/// Everything beyond the dense per-customer fields; exists only for
/// customers that ever sent a watched SYN or were blocked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Record {
    pub(crate) block: Option<BlockState>,
    /// Limit blocks so far (drives escalation).
    pub(crate) offences: u32,
    pub(crate) history: VecDeque<Change>,
    pub(crate) seen: u64,
    pub(crate) forwarded: u64,
    pub(crate) attempts_while_blocked: u64,
    /// SYNs dropped while open: the grant of a tick ran out at the limit,
    /// before the block the next tick makes (or, in a fleet, before the
    /// lease came). `seen = forwarded + attempts_while_blocked + this`.
    pub(crate) dropped_at_limit: u64,
    /// Bit `w`: window `w` is at or above the near-limit mark (warned).
    pub(crate) near: u16,
    /// Bit `w`: window `w` is over its limit (monitor: reported).
    pub(crate) over: u16,
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
pub(crate) struct Dense {
    /// Index into `limit_sets`: customers share identical limit vectors.
    limits: u32,
    pub(crate) mode: Mode,
    pub(crate) config_blocked: bool,
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
pub(crate) struct BlockPolicy {
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
pub(crate) struct WallMapping {
    mono0: u64,
    wall0: u64,
}

impl WallMapping {
    pub(crate) fn wall(&self, mono: u64) -> Timestamp {
        // In i128: no sum of three u64s wraps (a block's `until` may be
        // far ahead); the result saturates to the u64 range.
        let ms = i128::from(self.wall0) + i128::from(mono) - i128::from(self.mono0);
        Timestamp(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
    }

    pub(crate) fn mono_of_wall(&self, wall: i64) -> i64 {
        let ms = i128::from(wall) - i128::from(self.wall0) + i128::from(self.mono0);
        i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
    }
}

/// Every customer's id, by name (`names` in id order).
pub(crate) fn ids_by_name(names: &[Box<str>]) -> rustc_hash::FxHashMap<&str, CustomerId> {
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
    pub(crate) windows_meta: Vec<WindowMeta>,
    pub(crate) policy: BlockPolicy,
    near_limit: f64,
    pub(crate) wall_mapping: WallMapping,
    pub(crate) names: Vec<Box<str>>,
    pub(crate) dense: Vec<Dense>,
    limit_sets: Vec<Box<[u64]>>,
    limit_index: HashMap<Box<[u64]>, u32>,
    pub(crate) windows: Windows,
    pub(crate) records: IdMap<Record>,
    /// Customers with a block in force (iterated for expiry and views).
    pub(crate) blocked: BTreeSet<CustomerId>,
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
    reads: Vec<u64>,
    /// Events raised outside a tick (config blocks), returned by the next.
    pending: Vec<Event>,
    /// `[fleet]`: floors, leases and the Redis link.
    pub(crate) fleet: Option<FleetLocal>,
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
            records: IdMap::default(),
            blocked: BTreeSet::new(),
            dirty: Vec::new(),
            all_dirty: true,
            base_seen: Vec::new(),
            base_fwd: Vec::new(),
            attached: Vec::new(),
            cands: Vec::new(),
            reads: Vec::new(),
            pending: Vec::new(),
            fleet: config.fleet.as_ref().map(|f| {
                FleetLocal::new(f, &lengths, config.control.tick, wall_mapping.wall0, now)
            }),
            connector: None,
            retired: None,
            #[cfg(test)]
            race: None,
        };
        for customer in &config.customers {
            let limits = plane.intern(config.effective_limits(customer));
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

    /// Gives customers with `blocked = true` their standing block if they
    /// have none; the events come out of the next tick.
    pub(crate) fn reapply_config_blocks(&mut self, now: u64) {
        for id in CustomerId::all(self.dense.len()) {
            if self.dense[id.index()].config_blocked && !self.blocked.contains(&id) {
                let e = self.start_block(id, now, None, Reason::Config);
                self.pending.push(e);
            }
        }
    }

    /// Re-evaluates `customer` at the next tick.
    pub(crate) fn mark_dirty(&mut self, customer: CustomerId) {
        self.dirty.push(customer);
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

    /// Number of customers.
    pub fn customers(&self) -> usize {
        self.dense.len()
    }

    /// The windows, in config order.
    pub fn windows(&self) -> &[WindowMeta] {
        &self.windows_meta
    }

    /// A customer's name.
    pub fn name(&self, customer: CustomerId) -> Option<&str> {
        self.names.get(customer.index()).map(|n| &**n)
    }

    /// The id of the customer called `name` (a linear scan: for operator
    /// requests, not per packet).
    pub fn find(&self, name: &str) -> Option<CustomerId> {
        self.names
            .iter()
            .position(|n| &**n == name)
            .and_then(CustomerId::from_index)
    }

    /// The index of the window called `name`.
    pub fn window_index(&self, name: &str) -> Option<usize> {
        self.windows_meta.iter().position(|w| w.name == name)
    }

    /// Wall-clock time of monotonic instant `now`.
    pub fn wall(&self, now: u64) -> Timestamp {
        self.wall_mapping.wall(now)
    }

    /// `customer`'s limits, one per window (0 = port closed).
    pub fn limits(&self, customer: CustomerId) -> Option<&[u64]> {
        let d = self.dense.get(customer.index())?;
        Some(&self.limit_sets[d.limits as usize])
    }

    /// `customer`'s mode.
    pub fn mode(&self, customer: CustomerId) -> Option<Mode> {
        self.dense.get(customer.index()).map(|d| d.mode)
    }

    /// Whether `customer` has a block in force.
    pub fn is_blocked(&self, customer: CustomerId) -> bool {
        self.blocked.contains(&customer)
    }

    /// `customer`'s limits (config order) if it is enforced and not
    /// blocked: the customers whose per-core allowances mean something.
    pub fn enforced_limits(&self, customer: CustomerId) -> Option<&[u64]> {
        let d = self.dense.get(customer.index())?;
        (d.mode == Mode::Enforce && !self.blocked.contains(&customer))
            .then(|| &*self.limit_sets[d.limits as usize])
    }

    /// After a restart: the fleet's floor windows were not saved, so every
    /// SYN the restored windows count is taken as spent from the floor
    /// (it may have been leased: then the floor is charged twice, which
    /// only shrinks the budget). Without it a restarted appliance could
    /// spend its floor a second time within a window.
    pub fn restored_counts_are_floor_spend(&mut self, now: u64) {
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        for c in self.windows.customers() {
            if let Some(rings) = self.windows.export(c, now) {
                f.charge_floor(c, &rings, now);
            }
        }
    }

    /// How long after a tick's start the grants it wrote may be spent
    /// where they hold a fleet lease (see [`crate::grant::stamp`]); `None`
    /// without `[fleet]` (grants never expire).
    pub fn grant_validity(&self) -> Option<Duration> {
        self.fleet.as_ref().map(FleetLocal::grant_validity)
    }

    /// The fleet's `/metrics` figures; `None` without `[fleet]`.
    pub fn fleet_metrics(&self) -> Option<crate::fleet::FleetMetrics> {
        self.fleet.as_ref().map(FleetLocal::metrics)
    }

    /// The fleet view (`synwallctl fleet`); `null` without `[fleet]`.
    pub fn fleet_view(&self) -> serde_json::Value {
        self.fleet
            .as_ref()
            .map_or(serde_json::Value::Null, |f| f.view())
    }

    /// Customers with window state.
    pub fn active(&self) -> usize {
        self.windows.active()
    }

    /// `customer`'s count in window `window` at `now`.
    pub fn count(&self, customer: CustomerId, window: usize, now: u64) -> u64 {
        self.windows.count(customer, window, now)
    }

    /// Sets `customer`'s limit in `window` until the next reload; takes
    /// effect at the next tick. With `[fleet]`, every appliance of the
    /// fleet applies it too (announced through Redis).
    pub fn set_limit(
        &mut self,
        customer: CustomerId,
        window: usize,
        value: u64,
    ) -> Result<(), PlaneError> {
        self.apply_limit(customer, window, value)?;
        if let Some(f) = &mut self.fleet {
            let i = customer.index();
            let limits = &self.limit_sets[self.dense[i].limits as usize];
            f.set_limit(&self.names[i], limits, window, value);
        }
        Ok(())
    }

    /// [`ControlPlane::set_limit`] on this appliance only.
    fn apply_limit(
        &mut self,
        customer: CustomerId,
        window: usize,
        value: u64,
    ) -> Result<(), PlaneError> {
        let i = self.check(customer)?;
        if window >= self.windows_meta.len() {
            return Err(PlaneError::UnknownWindow(window));
        }
        let mut limits = self.limit_sets[self.dense[i].limits as usize].to_vec();
        limits[window] = value;
        self.dense[i].limits = self.intern(limits);
        self.dirty.push(customer);
        Ok(())
    }

    /// Sets `customer`'s mode until the next reload; takes effect at the
    /// next tick. (A block in force stays: lift it with
    /// [`ControlPlane::unblock`].)
    pub fn set_mode(&mut self, customer: CustomerId, mode: Mode) -> Result<(), PlaneError> {
        let i = self.check(customer)?;
        self.dense[i].mode = mode;
        self.dirty.push(customer);
        Ok(())
    }

    /// An operator blocks `customer` for `duration` (`None` = until
    /// unblocked), replacing any block in force. Every core drops its SYNs
    /// from the next tick. Does not count as an offence.
    pub fn block(
        &mut self,
        customer: CustomerId,
        duration: Option<Duration>,
        reason: &str,
        by: &str,
        now: u64,
    ) -> Result<Event, PlaneError> {
        let i = self.check(customer)?;
        let ms = duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let until = ms.map(|ms| now.saturating_add(ms));
        if let Some(f) = &mut self.fleet {
            let limits = &self.limit_sets[self.dense[i].limits as usize];
            f.block(&self.names[i], limits, ms, reason, by);
        }
        let reason = Reason::Operator {
            by: by.to_owned(),
            reason: reason.to_owned(),
        };
        Ok(self.start_block(customer, now, until, reason))
    }

    /// An operator lifts `customer`'s block and clears its window counts;
    /// from the next tick its SYNs are forwarded again within a fresh budget.
    /// (Otherwise a customer still at a limit would be blocked again by its
    /// next SYN: an operator's unblock restores mail at once. A block that
    /// expires by itself forgives nothing.)
    pub fn unblock(
        &mut self,
        customer: CustomerId,
        reason: &str,
        by: &str,
        now: u64,
    ) -> Result<Event, PlaneError> {
        let event = self.lift(customer, reason, by, now)?;
        self.windows.remove(customer);
        if let Some(f) = &mut self.fleet {
            let i = customer.index();
            let limits = &self.limit_sets[self.dense[i].limits as usize];
            f.unblock(&self.names[i], limits);
            f.forgive(customer);
        }
        if let Some(rec) = self.records.get_mut(&customer) {
            rec.near = 0;
            rec.over = 0;
        }
        Ok(event)
    }

    /// Lifts `customer`'s block but keeps its window counts: a customer
    /// still at a limit is blocked again by its next SYN.
    pub fn lift(
        &mut self,
        customer: CustomerId,
        reason: &str,
        by: &str,
        now: u64,
    ) -> Result<Event, PlaneError> {
        let i = self.check(customer)?;
        if !self.blocked.contains(&customer) {
            return Err(PlaneError::NotBlocked(self.names[i].to_string()));
        }
        let reason = Reason::Operator {
            by: by.to_owned(),
            reason: reason.to_owned(),
        };
        Ok(self.end_block(customer, now, EventKind::Unblock, reason))
    }

    /// Applies what another appliance announced about customer `c` (heard
    /// on the channel, or read from the notes after a resubscription) and
    /// returns the event, if it changed anything here.
    fn announced(&mut self, c: CustomerId, a: &Announcement, now: u64) -> Option<Event> {
        let f = self.fleet.as_mut()?;
        if !f.fresh(c, a) {
            return None;
        }
        let event = match a.said {
            Said::Block => {
                // The block itself is read from Redis (it may have ended).
                let limits = &self.limit_sets[self.dense[c.index()].limits as usize];
                f.peek(c, &self.names[c.index()], limits);
                None
            }
            Said::Unblock => {
                let config_blocked = self.dense[c.index()].config_blocked;
                let since = self
                    .records
                    .get(&c)
                    .and_then(|r| r.block.as_ref())
                    .map(|b| {
                        // The block's start on the monotonic clock.
                        let age = self.wall_mapping.wall(now).0.saturating_sub(b.since.0);
                        now.saturating_sub(age)
                    });
                // A note may be older than a block made here since.
                let lifts = since.is_some_and(|t| !a.noted || f.said_after(a.version, t));
                if !(self.blocked.contains(&c) && !config_blocked && lifts) {
                    return None;
                }
                f.forgive(c);
                let reason = Reason::Operator {
                    by: format!("operator on {}", a.app),
                    reason: "unblocked fleet-wide".into(),
                };
                let e = self.end_block(c, now, EventKind::Unblock, reason);
                self.windows.remove(c);
                Some(e)
            }
            Said::Limit { window_ms, value } => {
                let w = f.window_of(window_ms)?;
                let old = self.limits(c).and_then(|l| l.get(w).copied())?;
                if old == value || self.apply_limit(c, w, value).is_err() {
                    return None;
                }
                let mut e = Event::new(EventKind::SetLimit, self.wall_mapping.wall(now));
                e.customer = Some(self.names[c.index()].to_string());
                e.by = Some(format!("operator on {}", a.app));
                e.window = Some(self.windows_meta[w].name.clone());
                e.old = Some(Setting::Limit(old));
                e.new = Some(Setting::Limit(value));
                e.reason = Some("set fleet-wide".into());
                Some(e)
            }
        };
        if let (true, Some(_), Some(f)) = (a.noted, &event, self.fleet.as_mut()) {
            f.stats.notes_applied += 1;
        }
        event
    }

    fn start_block(
        &mut self,
        c: CustomerId,
        now: u64,
        until: Option<u64>,
        reason: Reason,
    ) -> Event {
        let at = self.wall_mapping.wall(now);
        let until_wall = until.map(|u| self.wall_mapping.wall(u));
        let rec = self.records.entry(c).or_default();
        rec.block = Some(BlockState {
            since: at,
            until,
            reason: reason.clone(),
        });
        rec.push(Change {
            at,
            kind: EventKind::Block,
            reason: reason.clone(),
            until: until_wall,
        });
        self.blocked.insert(c);
        self.dirty.push(c);
        let mut e = Event::new(EventKind::Block, at);
        e.customer = Some(self.names[c.index()].to_string());
        e.until = until_wall;
        fill_reason(&mut e, &reason);
        e
    }

    fn end_block(&mut self, c: CustomerId, now: u64, kind: EventKind, reason: Reason) -> Event {
        let at = self.wall_mapping.wall(now);
        let rec = self.records.entry(c).or_default();
        rec.block = None;
        rec.push(Change {
            at,
            kind,
            reason: reason.clone(),
            until: None,
        });
        self.blocked.remove(&c);
        self.dirty.push(c);
        let mut e = Event::new(kind, at);
        e.customer = Some(self.names[c.index()].to_string());
        fill_reason(&mut e, &reason);
        e
    }

    /// Attaches shards that started at zero (a new generation's, already
    /// in the workers' hands): everything they counted so far is new and
    /// is counted by the next tick, so no SYN counted between the swap and
    /// this call is lost.
    pub fn attach_fresh(&mut self, shards: &[Arc<WorkerShard>]) {
        let n = self.dense.len();
        self.base_seen = vec![vec![0; n]; shards.len()];
        self.base_fwd = vec![vec![0; n]; shards.len()];
        self.attached = shards.iter().map(|s| Arc::as_ptr(s) as usize).collect();
        self.all_dirty = true;
    }

    /// Notices new or resized shards: keeps the baselines of the cores that
    /// remain (their counters continue, or were copied by id map), zero for
    /// new ones, and re-evaluates everyone.
    fn attach(&mut self, shards: &[Arc<WorkerShard>]) {
        let ids: Vec<usize> = shards.iter().map(|s| Arc::as_ptr(s) as usize).collect();
        let n = self.dense.len();
        if ids == self.attached && self.base_seen.iter().all(|b| b.len() == n) {
            return;
        }
        self.attached = ids;
        self.base_seen.resize_with(shards.len(), Vec::new);
        self.base_fwd.resize_with(shards.len(), Vec::new);
        for b in self.base_seen.iter_mut().chain(self.base_fwd.iter_mut()) {
            b.resize(n, 0);
        }
        self.all_dirty = true;
    }

    /// One tick at monotonic time `now` (ms): reads every shard's counters,
    /// counts new SYNs into the windows, runs the block state machine,
    /// writes grants and block bits, and returns the events to log.
    ///
    /// Customers beyond the smallest shard's size are skipped (the shards
    /// are being resized by a reload).
    pub fn tick(&mut self, now: u64, shards: &[Arc<WorkerShard>]) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.pending);
        if shards.is_empty() {
            return events;
        }
        self.attach(shards);
        self.windows.advance(now);
        let remote = match self.fleet.as_mut() {
            Some(f) => {
                let remote = f.begin_tick(now);
                for notice in std::mem::take(&mut f.notices) {
                    let mut e = Event::new(EventKind::Fleet, self.wall_mapping.wall(now));
                    e.by = Some(f.name().to_owned());
                    e.reason = Some(notice);
                    events.push(e);
                }
                remote
            }
            None => Vec::new(),
        };
        if let Some(f) = self.fleet.as_mut() {
            let heard = f.announcements();
            let noted = f.noted();
            for a in heard {
                if let Some(c) = self.find(&a.customer) {
                    events.extend(self.announced(c, &a, now));
                }
            }
            for (c, a) in noted {
                if c.index() < self.dense.len() {
                    events.extend(self.announced(c, &a, now));
                }
            }
        }
        for rb in remote {
            let c = rb.customer;
            if c.index() < self.dense.len() && !self.blocked.contains(&c) {
                let reason = Reason::Operator {
                    by: format!("{} on {}", rb.block.by, rb.block.app),
                    reason: rb.block.reason,
                };
                events.push(self.start_block(c, now, rb.until, reason));
                if let (true, Some(f)) = (rb.from_notes, self.fleet.as_mut()) {
                    f.stats.notes_applied += 1;
                }
            }
        }
        if let Some(f) = self.fleet.as_mut() {
            f.reread(&self.names, now);
        }
        let n = shards
            .iter()
            .map(|s| s.customers())
            .min()
            .unwrap_or(0)
            .min(self.dense.len());

        let mut cands = std::mem::take(&mut self.cands);
        cands.clear();
        if self.all_dirty {
            cands.extend(CustomerId::all(n));
        } else {
            // Core-major: each pass streams one core's array and its
            // baseline sequentially.
            for (shard, base) in shards.iter().zip(&self.base_seen) {
                for (c, (seen, b)) in CustomerId::all(n).zip(shard.seen_counts().zip(&base[..n])) {
                    if seen as u32 != *b {
                        cands.push(c);
                    }
                }
            }
            cands.extend(self.windows.customers());
            cands.extend(self.blocked.iter().copied());
            cands.extend(self.dirty.iter().copied());
            if let Some(f) = &self.fleet {
                // A lease must be stopped on time even if its customer
                // went quiet.
                cands.extend(f.lease_customers());
            }
            cands.retain(|&c| c.index() < n);
            cands.sort_unstable();
            cands.dedup();
        }
        let mut reads = std::mem::take(&mut self.reads);
        for &c in &cands {
            self.evaluate(c, now, shards, &mut reads, &mut events);
        }
        self.reads = reads;
        self.cands = cands;
        self.all_dirty = false;
        self.dirty.clear();
        if let Some(f) = &mut self.fleet {
            f.end_tick();
        }
        events
    }

    /// One customer's share of a tick. See the module docs for the grant
    /// argument.
    fn evaluate(
        &mut self,
        c: CustomerId,
        now: u64,
        shards: &[Arc<WorkerShard>],
        reads: &mut Vec<u64>,
        events: &mut Vec<Event>,
    ) {
        let ci = c.index();
        let d = self.dense[ci];
        reads.clear();
        let (mut dseen, mut dfwd) = (0u64, 0u64);
        for (s, shard) in shards.iter().enumerate() {
            // Forwarded before seen: the worker bumps seen first, so the
            // seen we read covers every forward we read and the drop count
            // below cannot go negative.
            let CellRead { seen, forwarded: f } = shard.read(c);
            dfwd += u64::from((f as u32).wrapping_sub(self.base_fwd[s][ci]));
            dseen += u64::from((seen as u32).wrapping_sub(self.base_seen[s][ci]));
            self.base_fwd[s][ci] = f as u32;
            self.base_seen[s][ci] = seen as u32;
            reads.push(f);
        }
        // Attempts the workers dropped (blocked, or out of grant).
        let dropped = dseen.saturating_sub(dfwd);
        let (counts, fresh) = self.windows.add_and_count(c, dfwd, now);
        if fresh {
            // All windows had drained since the last look: re-arm the
            // warnings.
            if let Some(rec) = self.records.get_mut(&c) {
                rec.near = 0;
                rec.over = 0;
            }
        }
        let nw = self.windows_meta.len();
        let mut limits = [0u64; MAX_WINDOWS];
        limits[..nw].copy_from_slice(&self.limit_sets[d.limits as usize]);

        let was_blocked = self.blocked.contains(&c);
        if dseen > 0 {
            let rec = self.records.entry(c).or_default();
            rec.seen += dseen;
            rec.forwarded += dfwd;
            if was_blocked {
                rec.attempts_while_blocked += dropped;
            } else {
                rec.dropped_at_limit += dropped;
            }
        }

        if was_blocked {
            let expired = self
                .records
                .get(&c)
                .and_then(|r| r.block.as_ref())
                .and_then(|b| b.until)
                .is_some_and(|until| until <= now);
            if expired {
                events.push(self.end_block(c, now, EventKind::Expire, Reason::Expired));
            }
        }

        if d.mode != Mode::Exempt && counts[..nw].iter().any(|&n| n > 0) {
            self.warn(c, d.mode, &counts[..nw], &limits[..nw], now, events);
        }

        if d.mode == Mode::Enforce && !was_blocked && dropped > 0 {
            // At the limit and still trying: the grant already held the
            // excess back; now block.
            if let Some(w) = (0..nw).find(|&w| counts[w] >= limits[w]) {
                let offences = {
                    let rec = self.records.entry(c).or_default();
                    rec.offences += 1;
                    rec.offences
                };
                let until = now.saturating_add(self.policy.duration_ms(offences));
                let reason = Reason::Limit {
                    window: self.windows_meta[w].name.clone(),
                    count: counts[w],
                    limit: limits[w],
                };
                events.push(self.start_block(c, now, Some(until), reason));
            }
        }

        let blocked = self.blocked.contains(&c);
        for shard in shards {
            if shard.is_blocked(c) != blocked {
                shard.set_blocked(c, blocked);
            }
        }

        if d.mode != Mode::Enforce {
            grant::unlimit(c, shards);
            return;
        }
        let mut budget = (0..nw)
            .map(|w| limits[w].saturating_sub(counts[w]))
            .min()
            .unwrap_or(0);
        if let Some(f) = &mut self.fleet {
            let name = &self.names[ci];
            budget = budget.min(f.budget(c, name, now, dfwd, dseen, &limits[..nw], blocked));
            // The fleet has used the window up (Redis's share, and this
            // appliance's floor) and the customer still tries: block it
            // here and, through Redis, everywhere.
            if !blocked && budget == 0 && dropped > 0 {
                if let Some((w, shared)) = f.exhausted(c) {
                    let floor = f.floor_count(c, w, now);
                    let offences = {
                        let rec = self.records.entry(c).or_default();
                        rec.offences += 1;
                        rec.offences
                    };
                    let ms = self.policy.duration_ms(offences);
                    let reason = Reason::Limit {
                        window: self.windows_meta[w].name.clone(),
                        count: shared + floor,
                        limit: limits[w],
                    };
                    if let Some(f) = self.fleet.as_mut() {
                        f.limit_blocked(c);
                        f.block(
                            &self.names[ci],
                            &limits[..nw],
                            Some(ms),
                            &reason.to_string(),
                            "limit",
                        );
                    }
                    events.push(self.start_block(c, now, Some(now.saturating_add(ms)), reason));
                }
            }
        }
        if let Some(f) = &self.fleet {
            grant::mark(c, f.holds_lease(c), shards);
        }
        #[cfg(test)]
        if let Some(race) = &mut self.race {
            (race.0)(c);
        }
        grant::regrant(c, budget, reads, shards);
    }

    /// Near-limit warnings (enforce, monitor) and would-block reports
    /// (monitor), once per crossing.
    fn warn(
        &mut self,
        c: CustomerId,
        mode: Mode,
        counts: &[u64],
        limits: &[u64],
        now: u64,
        events: &mut Vec<Event>,
    ) {
        let blocked = self.blocked.contains(&c);
        let near_limit = self.near_limit;
        let rec = self.records.entry(c).or_default();
        let mut fire = Vec::new();
        for (w, (&count, &limit)) in counts.iter().zip(limits).enumerate() {
            let bit = 1u16 << w;
            if limit > 0 {
                let mark = ((limit as f64 * near_limit).ceil() as u64).max(1);
                if count >= mark {
                    if rec.near & bit == 0 && !blocked {
                        fire.push((EventKind::NearLimit, w, count, limit));
                    }
                    rec.near |= bit;
                } else {
                    rec.near &= !bit;
                }
            }
            if mode == Mode::Monitor {
                if count > limit {
                    if rec.over & bit == 0 {
                        fire.push((EventKind::WouldBlock, w, count, limit));
                    }
                    rec.over |= bit;
                } else {
                    rec.over &= !bit;
                }
            }
        }
        for (kind, w, count, limit) in fire {
            let mut e = Event::new(kind, self.wall_mapping.wall(now));
            e.customer = Some(self.names[c.index()].to_string());
            e.window = Some(self.windows_meta[w].name.clone());
            e.count = Some(count);
            e.limit = Some(limit);
            events.push(e);
        }
    }

    /// Everything about `customer` at `now`.
    pub fn customer_view(&self, customer: CustomerId, now: u64) -> Option<CustomerView> {
        let d = self.dense.get(customer.index())?;
        let counts = self.windows.counts(customer, now);
        let limits = &self.limit_sets[d.limits as usize];
        let rec = self.records.get(&customer);
        let block = rec.and_then(|r| r.block.as_ref());
        Some(CustomerView {
            id: customer,
            name: self.names[customer.index()].to_string(),
            mode: d.mode,
            windows: self
                .windows_meta
                .iter()
                .enumerate()
                .map(|(w, m)| WindowView {
                    name: m.name.clone(),
                    count: counts[w],
                    limit: limits[w],
                })
                .collect(),
            state: if block.is_some() { "blocked" } else { "open" },
            since: block.map(|b| b.since),
            until: block
                .and_then(|b| b.until)
                .map(|u| self.wall_mapping.wall(u)),
            reason: block.map(|b| b.reason.clone()),
            offences: rec.map_or(0, |r| r.offences),
            history: rec.map_or_else(Vec::new, |r| r.history.iter().cloned().collect()),
            seen: rec.map_or(0, |r| r.seen),
            forwarded: rec.map_or(0, |r| r.forwarded),
            attempts_while_blocked: rec.map_or(0, |r| r.attempts_while_blocked),
            dropped_at_limit: rec.map_or(0, |r| r.dropped_at_limit),
        })
    }

    /// Blocks in force, by customer id. (Blocks that ran out since the last
    /// tick are still listed until that tick ends them.)
    pub fn blocks(&self) -> Vec<BlockView> {
        self.blocked
            .iter()
            .filter_map(|&c| {
                let b = self.records.get(&c)?.block.as_ref()?;
                Some(BlockView {
                    id: c,
                    customer: self.names[c.index()].to_string(),
                    since: b.since,
                    until: b.until.map(|u| self.wall_mapping.wall(u)),
                    reason: b.reason.clone(),
                })
            })
            .collect()
    }

    /// The `n` customers with the highest count in `window` at `now`,
    /// highest first (ties by id).
    pub fn top(&self, n: usize, window: usize, now: u64) -> Vec<TopEntry> {
        if window >= self.windows_meta.len() {
            return Vec::new();
        }
        let mut all: Vec<(u64, CustomerId)> = self
            .windows
            .customers()
            .map(|c| (self.windows.count(c, window, now), c))
            .filter(|&(count, _)| count > 0)
            .collect();
        all.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        all.truncate(n);
        all.into_iter()
            .map(|(count, c)| TopEntry {
                id: c,
                customer: self.names[c.index()].to_string(),
                count,
                limit: self.limit_sets[self.dense[c.index()].limits as usize][window],
            })
            .collect()
    }

    /// Hot reload: a plane for `config` that carries windows, blocks,
    /// offences, history and totals over by customer name. New customers
    /// start clean; removed ones are dropped; runtime `set_limit`/`set_mode`
    /// changes give way to the new config. Baselines follow the id map, so
    /// the caller should give the workers new shards whose counters are
    /// copied old id → new id (then nothing is lost or counted twice), or
    /// call [`ControlPlane::attach_fresh`] with fresh shards.
    pub fn reconfigure(&mut self, config: &Config, now: u64) -> Reload {
        let snapshot = self.snapshot(now);
        let mut next = ControlPlane::with_wall_mapping(config, self.wall_mapping, now);
        let index = ids_by_name(&next.names);
        let id_map: Vec<Option<CustomerId>> = self
            .names
            .iter()
            .map(|n| index.get(&**n).copied())
            .collect();
        drop(index);
        let kept = id_map.iter().flatten().count();
        let n = next.dense.len();
        let carry = |old: &Vec<Vec<u32>>| -> Vec<Vec<u32>> {
            old.iter()
                .map(|b| {
                    let mut v = vec![0u32; n];
                    for (o, new) in id_map.iter().enumerate() {
                        if let (Some(new), Some(&x)) = (new, b.get(o)) {
                            v[new.index()] = x;
                        }
                    }
                    v
                })
                .collect()
        };
        next.base_seen = carry(&self.base_seen);
        next.base_fwd = carry(&self.base_fwd);
        next.attached = std::mem::take(&mut self.attached);
        if let Some(c) = self.connector.clone() {
            next.connect_fleet(c);
        }
        // The fleet state carries over when the windows stay (a reload
        // that changes them starts the floors afresh).
        if let Some(mut f) = self.fleet.take() {
            if next.fleet.is_some() && next.windows.lengths() == self.windows.lengths() {
                f.remap(&id_map, now);
                next.fleet = Some(f);
            }
        }
        next.restore(&snapshot, now);
        let removed = self.names.len() - kept;
        // The old plane (a million names and limit sets at scale) is left
        // for the caller to free off the control thread, which has ticks
        // to run.
        self.retired = None;
        let old = std::mem::replace(self, next);
        self.retired = Some(Box::new(old));
        Reload {
            id_map,
            added: n - kept,
            removed,
        }
    }
}

fn fill_reason(e: &mut Event, reason: &Reason) {
    match reason {
        Reason::Limit {
            window,
            count,
            limit,
        } => {
            e.window = Some(window.clone());
            e.count = Some(*count);
            e.limit = Some(*limit);
            e.reason = Some(reason.to_string());
        }
        Reason::Operator { by, reason } => {
            e.by = Some(by.clone());
            e.reason = Some(reason.clone());
        }
        Reason::Config | Reason::Expired => e.reason = Some(reason.to_string()),
    }
}

#[cfg(test)]
mod tests;
