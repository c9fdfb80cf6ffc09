//! `what-if`: replays customers' recorded SYNs against candidate limits
//! through synwall's own control plane ([`ControlPlane`] over a real
//! [`WorkerShard`], each SYN through the worker's `try_forward`), so the
//! trailing windows, grants, blocks, block durations and escalation are
//! the enforcing code itself, not a model of it.
//!
//! The timeline: the SYNs a customer tried in minute `m` (the history's
//! `seen`, which blocks and limits do not change) are sent at `m:00`,
//! after a tick at `m:00` (which ends blocks that ran out) and before one
//! at `m:00 + SETTLE_MS` (which counts them and blocks). Where the
//! history has 1-minute buckets and the windows' buckets (length / 30)
//! are a minute or longer (windows of 30 minutes and more), this is what
//! the plane itself would decide when a minute's SYNs arrive together;
//! shorter windows, and hourly buckets (history older than 48 h), make it
//! an estimate, and the reply says so ([`estimate_notes`]).
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use synwall_config::{Config, Customer, Limits, Mode};
use synwall_dataplane::shard::WorkerShard;
use synwall_dataplane::CustomerId;
use synwall_history::Series;

use synwall_engine::event::EventKind;
use synwall_engine::plane::ControlPlane;

/// How long after a minute's SYNs the tick that counts them runs.
pub const SETTLE_MS: u64 = 1_000;

/// A customer to replay and the limits to replay it with (one per
/// window, in config order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its name.
    pub name: String,
    /// Its limits.
    pub limits: Vec<u64>,
}

/// A block the replay made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayBlock {
    /// When (Unix ms).
    pub at_ms: u64,
    /// When it would have ended (Unix ms).
    pub until_ms: Option<u64>,
    /// The window that was over, its count and limit.
    pub window: String,
    pub count: u64,
    pub limit: u64,
}

/// One customer's replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    /// Its name.
    pub customer: String,
    /// SYNs it tried.
    pub seen: u64,
    /// Of those, dropped (blocked, or held back at the limit).
    pub dropped: u64,
    /// Its blocks, oldest first.
    pub blocks: Vec<ReplayBlock>,
}

/// Replays `series[i]` (the history of `who[i]`) from Unix minute `from`
/// to `to` with `who[i].limits`, every customer enforced, no block in
/// force at the start, `config`'s windows and `[block]` policy.
pub fn replay(
    config: &Config,
    who: &[Candidate],
    series: &[Series],
    from: i64,
    to: i64,
) -> Vec<Replayed> {
    let mut cfg = config.clone();
    cfg.fleet = None;
    cfg.customers = who
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut overrides = Limits::unset(cfg.windows.len());
            for (w, &l) in c.limits.iter().enumerate().take(cfg.windows.len()) {
                overrides.set(w, Some(l));
            }
            Customer {
                id: i as u32,
                name: c.name.clone(),
                prefixes: Vec::new(),
                plan: None,
                overrides,
                mode: Some(Mode::Enforce),
                blocked: false,
            }
        })
        .collect();
    // What each customer tried, by minute.
    let mut timeline: BTreeMap<i64, Vec<(CustomerId, u64)>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        for b in &s.buckets {
            if b.start >= from && b.start < to && b.seen > 0 {
                timeline
                    .entry(b.start)
                    .or_default()
                    .push((CustomerId::new(i as u32), b.seen));
            }
        }
    }
    let wall0 = (from.max(0) as u64) * 60_000;
    let mut plane = ControlPlane::new(&cfg, 0, wall0);
    let shards = vec![Arc::new(WorkerShard::new(who.len()))];
    let mut out: Vec<Replayed> = who
        .iter()
        .map(|c| Replayed {
            customer: c.name.clone(),
            seen: 0,
            dropped: 0,
            blocks: Vec::new(),
        })
        .collect();
    let mut events = plane.tick(0, &shards);
    for (&minute, tried) in &timeline {
        let now = ((minute - from).max(0) as u64) * 60_000;
        events.extend(plane.tick(now, &shards));
        for &(c, n) in tried {
            for _ in 0..n {
                shards[0].try_forward(c);
            }
        }
        events.extend(plane.tick(now + SETTLE_MS, &shards));
        for e in events.drain(..) {
            collect(&plane, &mut out, e);
        }
    }
    for (i, r) in out.iter_mut().enumerate() {
        let read = shards[0].read(CustomerId::new(i as u32));
        r.seen = read.seen;
        r.dropped = read.seen - read.forwarded;
    }
    out
}

fn collect(plane: &ControlPlane, out: &mut [Replayed], e: synwall_engine::event::Event) {
    if e.kind != EventKind::Block {
        return;
    }
    let Some(id) = e.customer.as_deref().and_then(|n| plane.find(n)) else {
        return;
    };
    let (window, count, limit) = (
        e.window.unwrap_or_default(),
        e.count.unwrap_or(0),
        e.limit.unwrap_or(0),
    );
    out[id.index()].blocks.push(ReplayBlock {
        at_ms: e.ts.0,
        until_ms: e.until.map(|u| u.0),
        window,
        count,
        limit,
    });
}

/// Why a replay over `series` with `config`'s windows is an estimate
/// (empty: exact as far as a minute's SYNs arriving together allows).
pub fn estimate_notes(config: &Config, series: &[Series]) -> Vec<String> {
    let mut notes = Vec::new();
    for w in &config.windows {
        if w.length.as_secs() < 30 * 60 {
            notes.push(format!(
                "window {}: its buckets ({} s) are finer than the history's minute; a minute's SYNs are replayed as arriving together",
                w.name,
                (w.length.as_millis() / 30) as f64 / 1000.0
            ));
        }
    }
    if series.iter().any(Series::has_hourly) {
        notes.push(
            "history older than 48 h is kept by the hour; an hour's SYNs are replayed in its first minute (blocks come earlier and may be more)".into(),
        );
    }
    notes
}

#[cfg(test)]
#[path = "whatif_tests.rs"]
mod tests;
