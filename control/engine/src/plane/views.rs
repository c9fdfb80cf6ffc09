//! What the plane shows: one customer, the blocks, the top senders, the
//! fleet; read-only, for the socket's commands, the metrics and the
//! summary.
use std::time::Duration;

use synwall_config::Mode;
use synwall_dataplane::CustomerId;

use super::{BlockView, ControlPlane, CustomerView, TopEntry, WindowMeta, WindowView};
use crate::event::Timestamp;
use crate::fleet::local::FleetLocal;

impl ControlPlane {
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

    /// Per customer (by name), the SYNs seen and forwarded since the last
    /// call: what the history records for the minute just ended.
    pub fn take_recent(&mut self) -> Vec<(Box<str>, u64, u64)> {
        let names = &self.names;
        self.recent
            .drain()
            .map(|(c, (seen, fwd))| (names[c.index()].clone(), seen, fwd))
            .collect()
    }

    /// Ticks that found a worker's listing ring overflowed and scanned the
    /// whole table instead (see `WorkerShard::take_listed`).
    pub fn listing_overflows(&self) -> u64 {
        self.listing_overflows
    }

    /// Customers with window state.
    pub fn active(&self) -> usize {
        self.windows.active()
    }

    /// `customer`'s count in window `window` at `now`.
    pub fn count(&self, customer: CustomerId, window: usize, now: u64) -> u64 {
        self.windows.count(customer, window, now)
    }

    /// Customers that ever sent a watched SYN or were blocked, in id
    /// order: the only ones with anything to report beyond their limits,
    /// so a summary walks these, not the whole table.
    pub fn recorded(&self) -> Vec<CustomerId> {
        let mut ids: Vec<CustomerId> = self.records.keys().copied().collect();
        ids.sort_unstable();
        ids
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
}
