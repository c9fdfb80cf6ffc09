//! The tick: read each core's counters, add the deltas to the windows,
//! weigh the limits, write the grants, block or warn (the argument is in
//! the module docs of [`super`]).
use std::sync::Arc;

use synwall_config::Mode;
use synwall_dataplane::shard::{CellRead, WorkerShard};
use synwall_dataplane::{prefetch, CustomerId};

use super::{ControlPlane, Reason};
use crate::event::{Event, EventKind};
use crate::grant;
use crate::window::MAX_WINDOWS;

/// How many candidates ahead of the one evaluated the tick prefetches: a
/// few customers' evaluation covers a memory access.
const PREFETCH_AHEAD: usize = 8;

impl ControlPlane {
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
    pub(super) fn attach(&mut self, shards: &[Arc<WorkerShard>]) {
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
        // Until a bucket boundary passes, a customer with window state
        // that sent nothing has the counts (and so the grant) it had.
        let expired = self.windows.take_moved();
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
        // The customers the workers listed since the last tick, their
        // marks cleared: these and last tick's (`recheck`) are the ones
        // whose counts can have changed (see `WorkerShard::take_listed`
        // for why last tick's too).
        let recheck = std::mem::take(&mut self.recheck);
        let mut cleared = std::mem::take(&mut self.cleared);
        cleared.clear();
        let mut complete = true;
        for shard in shards {
            complete &= shard.take_listed(&mut cleared);
        }
        if !complete {
            self.listing_overflows += 1;
        }
        if self.all_dirty {
            if !complete {
                for shard in shards {
                    shard.sweep(n, &mut cleared, |_, _| {});
                }
            }
            cands.extend(CustomerId::all(n));
        } else {
            cands.extend(cleared.iter().copied());
            if !complete {
                // A ring overflowed: some listed customers are not in it.
                // Scan every core's counts (core-major: each pass streams
                // one core's cells and its baselines).
                for (shard, base) in shards.iter().zip(&self.base_seen) {
                    shard.sweep(n, &mut cleared, |c, seen| {
                        if base.get(c.index()).is_some_and(|&b| seen as u32 != b) {
                            cands.push(c);
                        }
                    });
                }
            }
            for &c in &recheck {
                let changed = shards.iter().zip(&self.base_seen).any(|(shard, base)| {
                    base.get(c.index())
                        .is_some_and(|&b| shard.seen(c) as u32 != b)
                });
                if changed {
                    cands.push(c);
                }
            }
            if expired || self.fleet.is_some() {
                // Their counts fell (a fleet's budgets move with the
                // other appliances' counts, so those look every tick).
                cands.extend(self.windows.customers());
            }
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
        cleared.sort_unstable();
        cleared.dedup();
        self.recheck = cleared;
        self.cleared = recheck;
        let mut reads = std::mem::take(&mut self.reads);
        for (k, &c) in cands.iter().enumerate() {
            if let Some(&ahead) = cands.get(k + PREFETCH_AHEAD) {
                self.prefetch(ahead, shards);
            }
            if let Some(&ahead) = cands.get(k + PREFETCH_AHEAD / 2) {
                // Their slot entries were asked for half a lookahead ago.
                self.windows.prefetch_header(ahead);
                self.records.prefetch_value(ahead);
                self.recent.prefetch_value(ahead);
            }
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

    /// Starts loading what [`evaluate`](Self::evaluate) reads first of
    /// `c`: its dense entry, its baselines and its cell on every core. The
    /// candidates are scattered over tables of a million entries, so each
    /// is a cache miss; a profile of the appliance's tick at 8,192 active
    /// of 1M customers put 42 % of the tick's samples on the dense entry's
    /// load alone.
    fn prefetch(&self, c: CustomerId, shards: &[Arc<WorkerShard>]) {
        let ci = c.index();
        if let Some(d) = self.dense.get(ci) {
            prefetch(d);
        }
        self.windows.prefetch_slot(c);
        self.records.prefetch_slot(c);
        self.recent.prefetch_slot(c);
        for (s, shard) in shards.iter().enumerate() {
            shard.prefetch(c);
            for base in [&self.base_seen, &self.base_fwd] {
                if let Some(b) = base.get(s).and_then(|b| b.get(ci)) {
                    prefetch(b);
                }
            }
        }
    }

    /// One customer's share of a tick. See the module docs for the grant
    /// argument.
    pub(super) fn evaluate(
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
            let r = self.recent.get_or_default(c);
            r.0 += dseen;
            r.1 += dfwd;
            let rec = self.records.get_or_default(c);
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
                    let rec = self.records.get_or_default(c);
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
                        let rec = self.records.get_or_default(c);
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
    pub(super) fn warn(
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
        let rec = self.records.get_or_default(c);
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
}
