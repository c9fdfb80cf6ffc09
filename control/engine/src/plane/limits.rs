//! Limits and blocks: what an operator (or the fleet, or the config)
//! changes between ticks, and the block state machine's transitions.
use std::time::Duration;

use synwall_config::Mode;
use synwall_dataplane::CustomerId;

use super::{BlockState, Change, ControlPlane, PlaneError, Reason};
use crate::event::{Event, EventKind, Setting};
use crate::fleet::lease::{Announcement, Said};

impl ControlPlane {
    /// Gives customers with `blocked = true` their standing block if they
    /// have none; the events come out of the next tick.
    pub(super) fn reapply_config_blocks(&mut self, now: u64) {
        for id in CustomerId::all(self.dense.len()) {
            if self.dense[id.index()].config_blocked && !self.blocked.contains(&id) {
                let e = self.start_block(id, now, None, Reason::Config);
                self.pending.push(e);
            }
        }
    }

    /// Re-evaluates `customer` at the next tick.
    pub(super) fn mark_dirty(&mut self, customer: CustomerId) {
        self.dirty.push(customer);
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
    pub(super) fn apply_limit(
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
    pub(super) fn announced(&mut self, c: CustomerId, a: &Announcement, now: u64) -> Option<Event> {
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

    pub(super) fn start_block(
        &mut self,
        c: CustomerId,
        now: u64,
        until: Option<u64>,
        reason: Reason,
    ) -> Event {
        let at = self.wall_mapping.wall(now);
        let until_wall = until.map(|u| self.wall_mapping.wall(u));
        let rec = self.records.get_or_default(c);
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

    pub(super) fn end_block(
        &mut self,
        c: CustomerId,
        now: u64,
        kind: EventKind,
        reason: Reason,
    ) -> Event {
        let at = self.wall_mapping.wall(now);
        let rec = self.records.get_or_default(c);
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
}

pub(super) fn fill_reason(e: &mut Event, reason: &Reason) {
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
