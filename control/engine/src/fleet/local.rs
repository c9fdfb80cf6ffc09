//! This appliance's side of the fleet, driven by the plane's tick: which
//! part of a customer's forwards was spent from the local floor and which
//! from its Redis lease, what budget the workers may be granted, and which
//! lease calls to make.
//!
//! # Exactness
//!
//! Per customer and window, the appliance's floor spend is counted in its
//! own windows (`floors`) and never exceeds `floor_of(limit)`; everything
//! else it forwards comes out of a lease, which Redis counts in the shared
//! windows (reported spend, or the whole lease once it expires) against
//! `leased_of(limit) = limit − appliances × floor_of(limit)`. So the fleet's
//! forwards in any window are at most `appliances × floor + leased = limit`.
//!
//! A tick attributes the new forwards to the floor first (what the floor
//! had free can only have grown since the last tick: counts only expire),
//! the rest to the lease; the budget it hands to the plane's grants is the
//! floor's free part plus the lease's unspent part, so (by the plane's grant
//! argument) the next tick's lease part never exceeds what the lease had.
//! A lease stops counting in the budget at its local deadline, `sent +
//! ttl − margin − 2 ticks` (`sent`: when the call that last renewed it was
//! queued, before Redis stamped its expiry), and is dropped a tick later,
//! when the lowered grants have reached the workers: its spend ends before
//! Redis can have charged and forgotten it. The workers enforce the same
//! deadline on their own (a whole-process pause may wake them before the
//! control thread): a lease customer's grants are spent only until two
//! ticks after the start of the tick that wrote them ([`crate::grant`]'s
//! mark and stamp), so even a grant written just before the pause is not
//! spent after `sent + ttl − margin`.
use std::time::Duration;

use serde_json::{json, Value};
use synwall_config::Fleet;
use synwall_dataplane::CustomerId;

use std::sync::Arc;

use super::lease::{
    Announcement, Call, CallError, Heard, LeaseConnector, LeaseLink, Op, Reply, Said, SharedBlock,
    SharedWindow, Subscription, Tag,
};
use crate::window::{IdMap, Windows, MAX_WINDOWS};

/// Customers whose notes one round reads, at most, during a re-read.
const REREAD_ROUND: usize = 1024;
/// How long a re-read waits before asking a failed node again.
const REREAD_RETRY_MS: u64 = 1000;

/// A lease this appliance holds.
#[derive(Debug, Clone, Copy)]
struct Lease {
    id: u64,
    granted: u64,
    spent: u64,
    /// Local monotonic ms after which it is not spent any more.
    deadline: u64,
    /// When it stopped counting in the budget.
    stopped: Option<u64>,
    /// Ticks in a row without demand.
    idle: u32,
}

impl Lease {
    /// A lease new to this appliance, as Redis answered it.
    fn from_reply(reply: &Reply, deadline: u64) -> Lease {
        Lease {
            id: reply.lease,
            granted: reply.granted,
            spent: reply.spent,
            deadline,
            stopped: None,
            idle: 0,
        }
    }

    fn left(&self) -> u64 {
        if self.stopped.is_some() {
            0
        } else {
            self.granted.saturating_sub(self.spent)
        }
    }
}

/// A fleet-wide block to apply locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBlock {
    /// The customer.
    pub customer: CustomerId,
    /// Local monotonic end; `None`: indefinite.
    pub until: Option<u64>,
    /// As Redis holds it.
    pub block: SharedBlock,
    /// Read from the notes after a resubscription: a block this
    /// appliance may have missed.
    pub from_notes: bool,
}

/// Reading every customer's notes after a (re)subscription, a bounded
/// part per round, until every node has answered.
#[derive(Debug, Default)]
struct Reread {
    /// A subscription was made: start (again) at the next tick.
    requested: bool,
    /// Customers not asked yet (popped from the end).
    queue: Vec<CustomerId>,
    /// Customers whose node failed: asked again after `retry_at`.
    failed: Vec<CustomerId>,
    retry_at: u64,
    /// Notes calls in the round in flight.
    in_flight: usize,
    /// A re-read is under way.
    active: bool,
}

impl Announcing {
    /// Announcement `id` did not reach Redis: send it again.
    fn unsent(&mut self, id: u64) {
        if let Some((_, queued)) = self.calls.get_mut(&id) {
            *queued = false;
        }
    }
}

impl Reread {
    fn in_progress(&self) -> bool {
        self.requested || self.active
    }
}

/// Announcements (block, unblock, set-limit) kept while Redis cannot take
/// them: beyond this many the oldest is given up (counted, and said).
const MAX_KEPT_ANNOUNCEMENTS: usize = 10_000;

/// This appliance's announcements until Redis has taken them: sent again,
/// in the order they were made, once Redis answers after a failure.
#[derive(Debug, Default)]
struct Announcing {
    /// By id (= the order they were made): the call, and whether it is
    /// queued or in flight now.
    calls: std::collections::BTreeMap<u64, (Call, bool)>,
    next: u64,
}

/// Counters for `synwallctl fleet` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct FleetStats {
    /// Rounds sent.
    pub rounds: u64,
    /// Calls answered.
    pub replies: u64,
    /// Calls that got no usable answer (node unreachable, refused, bad).
    pub failures: u64,
    /// SYNs granted by leases.
    pub leased: u64,
    /// The last round trip.
    pub last_rtt: Option<Duration>,
    /// The last error.
    pub last_error: Option<String>,
    /// Whether the last round failed (the node is treated as down).
    pub down: bool,
    /// Ticks at which some customer wanted a lease and could not ask.
    pub fallback_ticks: u64,
    /// Forwards attributed to a lease that had already been dropped
    /// (charged in full by Redis): should stay 0.
    pub overrun: u64,
    /// Subscriptions to the announcements (the first, and every
    /// resubscription after a broken or silent connection).
    pub subscriptions: u64,
    /// Re-reads of every customer's notes completed.
    pub rereads: u64,
    /// Announcements this appliance had missed, applied from the notes.
    pub notes_applied: u64,
    /// Notes that could not be read (skipped).
    pub bad_notes: u64,
    /// Announcements given up: more than `MAX_KEPT_ANNOUNCEMENTS` waited,
    /// or Redis refused one.
    pub announcements_lost: u64,
}

/// The fleet's figures (`[fleet]` only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetMetrics {
    /// Leases held now, and their unspent SYNs.
    pub leases_held: u64,
    pub leased_outstanding: u64,
    /// SYNs granted by leases since start.
    pub leased_syns: u64,
    /// Rounds sent, calls answered, calls failed since start.
    pub rounds: u64,
    pub replies: u64,
    pub failures: u64,
    /// The Redis node (the `node` label).
    pub node: String,
    /// The last round trip, seconds.
    pub rtt_seconds: f64,
    /// 1 while Redis answers, 0 while customers fall back to their floors.
    pub redis_up: u64,
    /// Customers that wanted a lease at the last tick and got none
    /// (Redis down or quarantined): on their floors only.
    pub customers_on_floors: u64,
    /// Milliseconds left of a lost-state quarantine.
    pub quarantine_ms: u64,
    /// Subscriptions to the fleet's announcements since start.
    pub subscriptions: u64,
    /// Missed announcements applied from the notes since start.
    pub notes_applied: u64,
    /// 1 while every customer's notes are being re-read.
    pub reread_in_progress: u64,
    /// This appliance's blocks, unblocks and set-limits not yet taken by
    /// Redis (kept and sent again).
    pub announcements_waiting: u64,
    /// Announcements given up (too many waiting, or refused by Redis).
    pub announcements_lost: u64,
}

/// What this appliance last heard of one Redis node (a standalone Redis,
/// or one master of a Cluster).
#[derive(Debug, Clone)]
struct NodeState {
    url: String,
    /// `None`: not asked yet.
    up: Option<bool>,
    lost_state: bool,
    quarantine_ms: u64,
    rtt: Duration,
    error: Option<String>,
    /// Local ms of its last round.
    at: u64,
}

/// The fleet state of one appliance.
#[derive(Debug)]
pub struct FleetLocal {
    config: Fleet,
    tick_ms: u64,
    lengths_ms: Vec<u64>,
    floors: Windows,
    leases: IdMap<Lease>,
    /// Customers with a lease call in flight: when it was queued.
    pending: IdMap<u64>,
    /// The last reply said a window is used up fleet-wide.
    exhausted: IdMap<(usize, u64)>,
    outbox: Vec<(Tag, Call)>,
    announcing: Announcing,
    link: Option<Box<dyn LeaseLink>>,
    /// Opens the link and the subscription at the first tick.
    connector: Option<Arc<dyn LeaseConnector>>,
    seq: u64,
    /// While down: when to try again.
    retry_at: u64,
    /// The round in flight was tagged with ids from before a reload.
    discard: bool,
    /// The links are opened.
    started: bool,
    /// Announcements heard on the pub/sub channel.
    heard: Option<Box<dyn Subscription>>,
    /// Unblocks and set-limits read from notes, for the plane to weigh.
    noted: Vec<(CustomerId, Announcement)>,
    /// The version (server µs) of the newest announcement applied, per
    /// customer and kind (0: block or unblock, 1 + w: window w's limit).
    applied: std::collections::HashMap<(CustomerId, usize), u64>,
    /// Local ms of the start or last reload: a set-limit older than that
    /// is overruled by the operator's config.
    since: u64,
    /// The server's clock less the local one (ms), from the last reply.
    offset: Option<i64>,
    reread: Reread,
    /// Floors only until then (local ms): Redis lost its state.
    quarantine_until: u64,
    /// The last tick's time.
    last_now: u64,
    /// What happened to the link, for the event log (taken by the plane).
    pub notices: Vec<String>,
    /// Customers that wanted more than their floor this tick and could
    /// not ask Redis (it is down): on floors only.
    pub on_floors: usize,
    /// The counters.
    pub stats: FleetStats,
    /// Each node as last heard (seeds until a round names the nodes).
    nodes: Vec<NodeState>,
}

impl FleetLocal {
    /// The fleet state for windows of `lengths`, ticking every `tick`,
    /// started at wall-clock `wall_ms` (sequence numbers start there, so
    /// they keep growing across restarts).
    /// `now` (local ms) is the start: set-limits announced before it are
    /// not taken from the notes.
    pub fn new(
        config: &Fleet,
        lengths: &[Duration],
        tick: Duration,
        wall_ms: u64,
        now: u64,
    ) -> FleetLocal {
        FleetLocal {
            started: false,
            heard: None,
            noted: Vec::new(),
            applied: Default::default(),
            since: now,
            offset: None,
            reread: Reread::default(),
            config: config.clone(),
            tick_ms: (tick.as_millis() as u64).max(1),
            lengths_ms: lengths.iter().map(|l| l.as_millis() as u64).collect(),
            floors: Windows::new(lengths),
            leases: IdMap::default(),
            pending: IdMap::default(),
            exhausted: IdMap::default(),
            outbox: Vec::new(),
            announcing: Announcing::default(),
            link: None,
            connector: None,
            seq: wall_ms.saturating_mul(1000),
            retry_at: 0,
            discard: false,
            quarantine_until: 0,
            last_now: 0,
            notices: Vec::new(),
            on_floors: 0,
            stats: FleetStats::default(),
            nodes: Vec::new(),
        }
    }

    /// What opens the links to the store (the appliance gives Redis's).
    pub fn connect(&mut self, connector: Arc<dyn LeaseConnector>) {
        self.connector = Some(connector);
    }

    /// Opens the links on first use (a plane built and dropped by a
    /// reload never opens any). Without a connector there is no link:
    /// customers live on their floors.
    fn start(&mut self) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let Some(connector) = self.connector.clone() else {
            self.stats.last_error = Some("no link to the fleet's store".into());
            return;
        };
        let longest = self.lengths_ms.iter().copied().max().unwrap_or(0);
        match connector.link(&self.config, longest) {
            Ok(l) => self.link = Some(l),
            Err(e) => self.stats.last_error = Some(e),
        }
        match connector.subscribe(&self.config) {
            Ok(s) => self.heard = Some(s),
            Err(e) => self.stats.last_error = Some(e),
        }
    }

    /// Whether customer `c`'s grants may hold a lease: one is held (live
    /// or stopped) or asked for.
    pub fn holds_lease(&self, c: CustomerId) -> bool {
        self.leases.contains_key(&c) || self.pending.contains_key(&c)
    }

    /// How long the grants a tick writes may be spent where they hold a
    /// lease: two ticks from the tick's start (see [`crate::grant`]).
    pub fn grant_validity(&self) -> Duration {
        Duration::from_millis(2 * self.tick_ms)
    }

    /// Blocks and unblocks other appliances announced since the last tick
    /// (a resubscription starts a re-read of the notes).
    pub fn announcements(&mut self) -> Vec<Announcement> {
        let Some(heard) = self.heard.as_mut() else {
            return Vec::new();
        };
        let me = self.config.name.as_str();
        let mut out = Vec::new();
        for h in std::iter::from_fn(|| heard.try_next()) {
            match h {
                Heard::Subscribed => {
                    self.stats.subscriptions += 1;
                    self.reread.requested = true;
                }
                Heard::Said(a) if a.app != me => out.push(a),
                Heard::Said(_) => {}
            }
        }
        out
    }

    /// Unblocks and set-limits read from notes since the last tick, by
    /// customer id: each to be weighed with [`FleetLocal::fresh`].
    pub fn noted(&mut self) -> Vec<(CustomerId, Announcement)> {
        std::mem::take(&mut self.noted)
    }

    /// Whether announcement `a` about customer `c` is news: another
    /// appliance's, newer than what this one applied of its kind, and for
    /// a set-limit read from notes, newer than this appliance's start or
    /// last reload (the config is the operator's later word). Records it
    /// as applied if so.
    pub fn fresh(&mut self, c: CustomerId, a: &Announcement) -> bool {
        if a.app == self.config.name {
            return false;
        }
        let kind = match a.said {
            Said::Block | Said::Unblock => 0,
            Said::Limit { window_ms, .. } => match self.window_of(window_ms) {
                Some(w) => 1 + w,
                None => return false,
            },
        };
        if a.noted && kind > 0 && !self.said_after(a.version, self.since) {
            return false;
        }
        let seen = self.applied.entry((c, kind)).or_default();
        if a.version != 0 && a.version <= *seen {
            return false;
        }
        *seen = (*seen).max(a.version);
        true
    }

    /// Whether an announcement of `version` (server µs) was made after
    /// local time `local_ms`, by the server's clock as the last reply
    /// showed it (to within a round trip and a tick); `false` before any
    /// reply.
    pub fn said_after(&self, version: u64, local_ms: u64) -> bool {
        self.offset.is_some_and(|off| {
            let server_ms = i128::from(local_ms) + i128::from(off);
            i128::from(version / 1000) > server_ms
        })
    }

    /// Whether every customer's notes are being re-read.
    pub fn rereading(&self) -> bool {
        self.reread.in_progress()
    }

    /// After a (re)subscription: queues the next part of the re-read of
    /// every customer's notes (`names`, by id), if no round is in flight.
    pub fn reread(&mut self, names: &[Box<str>], now: u64) {
        let r = &mut self.reread;
        if std::mem::take(&mut r.requested) {
            r.queue = CustomerId::all(names.len()).rev().collect();
            r.failed.clear();
            r.active = true;
        }
        if !r.active || self.link.as_ref().is_none_or(|l| l.busy()) {
            return;
        }
        if r.queue.is_empty() && now >= r.retry_at {
            r.queue = std::mem::take(&mut r.failed);
        }
        if r.queue.is_empty() {
            if r.failed.is_empty() && r.in_flight == 0 {
                r.active = false;
                self.stats.rereads += 1;
            }
            return;
        }
        let start = r.queue.len().saturating_sub(REREAD_ROUND);
        let these: Vec<CustomerId> = r.queue.drain(start..).collect();
        for c in these {
            let Some(name) = names.get(c.index()) else {
                continue;
            };
            let call = self.call(name, &[], Op::Notes);
            self.outbox.push((Tag::Notes(c), call));
            self.reread.in_flight += 1;
        }
    }

    /// The unblocks and set-limits in `reply`'s notes for customer `c`,
    /// oldest first, for the plane; and the block note's version and
    /// whether this appliance made it, if there is one.
    fn take_notes(&mut self, c: CustomerId, reply: &Reply) -> Option<(u64, bool)> {
        self.stats.bad_notes += reply.bad_notes;
        let mut notes: Vec<_> = reply.notes.iter().collect();
        notes.sort_by_key(|n| n.version);
        let mut block = None;
        for n in notes {
            if n.said == Said::Block {
                block = Some(n);
                continue;
            }
            self.noted.push((
                c,
                Announcement {
                    said: n.said,
                    customer: String::new(),
                    app: n.app.clone(),
                    version: n.version,
                    noted: true,
                },
            ));
        }
        block.map(|n| (n.version, n.app == self.config.name))
    }

    /// A block Redis holds for `c`, read from its notes: to apply unless
    /// this appliance made it, or already applied that block (or a newer
    /// word). A block with no note (notes expired) is applied as a lease
    /// reply's would be.
    fn noted_block(&mut self, c: CustomerId, note: Option<(u64, bool)>) -> bool {
        match note {
            None => true,
            Some((_, true)) => false,
            Some((version, false)) => {
                let seen = self.applied.entry((c, 0)).or_default();
                let news = version > *seen;
                *seen = (*seen).max(version);
                news
            }
        }
    }

    /// Asks Redis for customer `c`'s block state at the next round (a
    /// lease call that reports and wants nothing).
    pub fn peek(&mut self, c: CustomerId, name: &str, limits: &[u64]) {
        if self.pending.contains_key(&c) {
            return;
        }
        let lease = self.leases.get(&c).filter(|l| l.stopped.is_none()).copied();
        let op = Op::Lease {
            seq: self.next_seq(),
            lease: lease.map_or(0, |l| l.id),
            spent: lease.map_or(0, |l| l.spent),
            want: 0,
            release: false,
        };
        let call = self.call(name, limits, op);
        self.outbox.push((Tag::Lease(c), call));
        self.pending.insert(c, self.last_now);
    }

    /// Counts `rings` (a customer's window buckets) as floor spend.
    pub fn charge_floor(&mut self, c: CustomerId, rings: &[crate::window::RingExport], now: u64) {
        for (w, ring) in rings.iter().enumerate() {
            self.floors.import(c, w, ring, now);
        }
    }

    /// An unblock forgives the floor windows too.
    pub fn forgive(&mut self, c: CustomerId) {
        self.floors.remove(c);
    }

    /// This appliance's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn shared(&self, limits: &[u64]) -> Vec<SharedWindow> {
        self.lengths_ms
            .iter()
            .zip(limits)
            .map(|(&length_ms, &l)| SharedWindow {
                length_ms,
                leased: self.config.leased_of(l),
            })
            .collect()
    }

    fn call(&self, customer: &str, limits: &[u64], op: Op) -> Call {
        Call {
            customer: customer.to_owned(),
            app: self.config.name.clone(),
            ttl_ms: self.config.lease_ttl.as_millis() as u64,
            windows: self.shared(limits),
            op,
        }
    }

    fn deadline(&self, sent: u64) -> u64 {
        (sent + self.config.lease_ttl.as_millis() as u64)
            .saturating_sub(self.config.lease_margin.as_millis() as u64 + 2 * self.tick_ms)
    }

    /// Start of a tick: takes the answers that came in and returns the
    /// fleet-wide blocks they carry. Kept announcements go again once
    /// Redis may answer, whether or not a round came in.
    pub fn begin_tick(&mut self, now: u64) -> Vec<RemoteBlock> {
        self.start();
        self.on_floors = 0;
        self.last_now = now;
        self.floors.advance(now);
        let blocks = self.take_round(now);
        self.resend_announcements(now);
        blocks
    }

    /// The answers of the last round, if one came in: node health, leases
    /// adopted, announcements settled; the fleet-wide blocks they carry.
    fn take_round(&mut self, now: u64) -> Vec<RemoteBlock> {
        let mut blocks = Vec::new();
        let Some(answers) = self.link.as_mut().and_then(|l| l.poll()) else {
            return blocks;
        };
        let (answers, rtt, health, reports) = answers;
        for r in reports {
            let i = match self.nodes.iter().position(|n| n.url == r.url) {
                Some(i) => i,
                None => {
                    self.nodes.push(NodeState {
                        url: r.url.clone(),
                        up: None,
                        lost_state: false,
                        quarantine_ms: 0,
                        rtt: Duration::ZERO,
                        error: None,
                        at: now,
                    });
                    self.nodes.len() - 1
                }
            };
            let n = &mut self.nodes[i];
            if !r.asked {
                continue;
            }
            n.up = Some(r.health.up);
            n.lost_state = r.health.lost_state;
            n.quarantine_ms = r.health.quarantine_ms;
            n.rtt = r.rtt;
            n.error = r.error;
            n.at = now;
        }
        let was_down = self.stats.down;
        if health.quarantine_ms > 0 {
            let until = now.saturating_add(health.quarantine_ms);
            if self.quarantine_until <= now {
                self.notices.push(format!(
                    "{}: {} Redis lost its state: floors only for {} s",
                    self.config.redis[0],
                    if health.lost_state {
                        "detected:"
                    } else {
                        "quarantine in force:"
                    },
                    health.quarantine_ms / 1000
                ));
            }
            self.quarantine_until = self.quarantine_until.max(until);
        }
        if std::mem::take(&mut self.discard) {
            for (tag, _) in &answers {
                if let Tag::Announce(id) = *tag {
                    self.announcing.unsent(id);
                }
            }
            return blocks;
        }
        self.stats.last_rtt = Some(rtt);
        // Down: nothing in the round got through (in a Cluster, a dead
        // master fails only its own customers' calls).
        let failed = !answers.is_empty()
            && answers
                .iter()
                .all(|(_, r)| matches!(r, Err(CallError::Unreachable { .. })));
        for (tag, r) in answers {
            let sent = match tag {
                Tag::Lease(c) => self.pending.remove(&c),
                Tag::Notes(_) => {
                    self.reread.in_flight = self.reread.in_flight.saturating_sub(1);
                    None
                }
                Tag::Announce(_) | Tag::Other => None,
            };
            match r {
                Ok(reply) => {
                    if let Tag::Announce(id) = tag {
                        self.announcing.calls.remove(&id);
                    }
                    self.stats.replies += 1;
                    self.offset = Some(reply.now as i64 - now as i64);
                    let (Tag::Lease(c) | Tag::Notes(c)) = tag else {
                        continue;
                    };
                    let block_note = self.take_notes(c, &reply);
                    let from_notes = matches!(tag, Tag::Notes(_));
                    if let Some(b) = &reply.block {
                        if !from_notes || self.noted_block(c, block_note) {
                            let until = b
                                .until
                                .map(|u| now.saturating_add(u.saturating_sub(reply.now)));
                            blocks.push(RemoteBlock {
                                customer: c,
                                until,
                                block: b.clone(),
                                from_notes,
                            });
                        }
                    }
                    if let Some(sent) = sent {
                        self.adopt(c, &reply, sent);
                    }
                }
                Err(e) => {
                    match (tag, &e) {
                        (Tag::Notes(c), _) => {
                            self.reread.failed.push(c);
                            self.reread.retry_at = now + REREAD_RETRY_MS;
                        }
                        (Tag::Announce(id), CallError::Unreachable { .. }) => {
                            self.announcing.unsent(id);
                        }
                        (Tag::Announce(id), _) => {
                            if let Some((call, _)) = self.announcing.calls.remove(&id) {
                                self.stats.announcements_lost += 1;
                                self.notices.push(format!(
                                    "{}: announcing {} of {} failed, not sent again: {e}",
                                    self.config.redis[0],
                                    call.op.kind(),
                                    call.customer
                                ));
                            }
                        }
                        _ => {}
                    }
                    self.stats.failures += 1;
                    self.stats.last_error = Some(e.to_string());
                }
            }
        }
        self.stats.down = failed;
        if failed && !was_down {
            self.notices.push(format!(
                "{} unreachable: customers above their floor fall back to it ({})",
                self.config.redis[0],
                self.stats.last_error.as_deref().unwrap_or("")
            ));
        } else if was_down && !failed {
            self.notices.push(format!(
                "{} reachable again: leases resume",
                self.config.redis[0]
            ));
        }
        if failed {
            // Probe again after a while, not every tick.
            self.retry_at = now + 500;
        }
        blocks
    }

    /// Queues again, in the order they were made, the announcements that a
    /// failed round did not get to Redis, once Redis may answer again.
    fn resend_announcements(&mut self, now: u64) {
        if self.stats.down && now < self.retry_at {
            return;
        }
        for (&id, (call, queued)) in self.announcing.calls.iter_mut() {
            if !*queued {
                *queued = true;
                self.outbox.push((Tag::Announce(id), call.clone()));
            }
        }
    }

    /// Queues `call` (a block, unblock or set-limit) and keeps it until
    /// Redis has taken it.
    fn announce(&mut self, call: Call) {
        if self.announcing.calls.len() >= MAX_KEPT_ANNOUNCEMENTS {
            // (One still queued or in flight may yet land; it is just not
            // sent again.)
            if let Some((_, (old, _))) = self.announcing.calls.pop_first() {
                self.stats.announcements_lost += 1;
                self.notices.push(format!(
                    "{}: more than {MAX_KEPT_ANNOUNCEMENTS} announcements wait for Redis: \
                     {} of {} given up",
                    self.config.redis[0],
                    old.op.kind(),
                    old.customer
                ));
            }
        }
        let id = self.announcing.next;
        self.announcing.next += 1;
        self.announcing.calls.insert(id, (call.clone(), true));
        self.outbox.push((Tag::Announce(id), call));
    }

    /// Takes the server's view of customer `c`'s lease from `reply` to a
    /// lease call queued at `sent`.
    fn adopt(&mut self, c: CustomerId, reply: &Reply, sent: u64) {
        match reply.exhausted {
            Some(e) => {
                self.exhausted.insert(c, e);
            }
            None => {
                self.exhausted.remove(&c);
            }
        }
        let deadline = self.deadline(sent);
        match self.leases.get_mut(&c) {
            Some(l) if l.stopped.is_some() => {}
            Some(l) if reply.lease == l.id => {
                if reply.granted > l.granted {
                    self.stats.leased += reply.granted - l.granted;
                }
                l.granted = l.granted.max(reply.granted);
                l.deadline = deadline;
            }
            // Redis no longer has it (expired, charged in full): stop.
            Some(l) if reply.lease == 0 => l.stopped = Some(0),
            // A new lease: the old one is gone on the server (charged in
            // full). Spend still attributed to it lands on the new one,
            // reported (clamped) as spent: more charged, never less.
            Some(l) => {
                self.stats.leased += reply.granted;
                *l = Lease::from_reply(reply, deadline);
            }
            None if reply.lease != 0 => {
                self.stats.leased += reply.granted;
                self.leases.insert(c, Lease::from_reply(reply, deadline));
            }
            None => {}
        }
    }

    /// Customer `c` (`name`) at `now`: `dfwd` new forwards, `dseen` new
    /// watched SYNs; returns the budget the workers may be granted beyond
    /// what they hold (the plane takes the smaller of this and its local
    /// windows' budget), and queues this customer's lease call if it needs
    /// one.
    #[allow(clippy::too_many_arguments)]
    pub fn budget(
        &mut self,
        c: CustomerId,
        name: &str,
        now: u64,
        dfwd: u64,
        dseen: u64,
        limits: &[u64],
        blocked: bool,
    ) -> u64 {
        let nw = limits.len();
        let mut floor = [0u64; MAX_WINDOWS];
        for (w, &l) in limits.iter().enumerate() {
            floor[w] = self.config.floor_of(l);
        }
        let free = |f: &Windows| {
            let counts = f.counts(c, now);
            (0..nw)
                .map(|w| floor[w].saturating_sub(counts[w]))
                .min()
                .unwrap_or(0)
        };
        let floor_part = dfwd.min(free(&self.floors));
        let lease_part = dfwd - floor_part;
        self.floors.add(c, floor_part, now);
        let floor_free = free(&self.floors);

        let mut release = None;
        if let Some(l) = self.leases.get_mut(&c) {
            let room = l.granted.saturating_sub(l.spent);
            if lease_part > room {
                self.stats.overrun += lease_part - room;
            }
            l.spent = l.spent.saturating_add(lease_part).min(l.granted);
            l.idle = if dseen == 0 { l.idle + 1 } else { 0 };
            let idle_ticks = (1000 / self.tick_ms).max(2) as u32;
            if l.stopped.is_none() && (now >= l.deadline || l.idle >= idle_ticks) {
                l.stopped = Some(now);
            } else if l.stopped.is_some_and(|t| t < now) {
                // A tick since its grants were lowered: final. Give the
                // rest back (if the call is lost, Redis charges it at
                // expiry) and forget it.
                release = Some(*l);
            }
        } else if lease_part > 0 {
            self.stats.overrun += lease_part;
        }
        if let Some(l) = release {
            self.leases.remove(&c);
            let op = Op::Lease {
                seq: self.next_seq(),
                lease: l.id,
                spent: l.spent,
                want: 0,
                release: true,
            };
            let call = self.call(name, limits, op);
            self.outbox.push((Tag::Other, call));
        }
        let left = self.leases.get(&c).map_or(0, Lease::left);

        // Demand: about `lease_demand` of this tick's rate.
        let target =
            dseen.saturating_mul(self.config.lease_demand.as_millis() as u64) / self.tick_ms;
        let renew = self.leases.get(&c).is_some_and(|l| {
            l.stopped.is_none()
                && dseen > 0
                && l.deadline < now + self.config.lease_ttl.as_millis() as u64 / 2
        });
        let wants = !blocked && dseen > 0 && (floor_free + left < target || renew);
        if wants && !self.pending.contains_key(&c) {
            // (A Cluster quarantines node by node: its router answers the
            // calls of a quarantined node's customers with errors.)
            if now < self.quarantine_until && self.config.redis.len() == 1 {
                self.on_floors += 1;
            } else if self.link.as_ref().is_some_and(|l| !l.busy())
                && (!self.stats.down || now >= self.retry_at)
            {
                let lease = self.leases.get(&c).filter(|l| l.stopped.is_none()).copied();
                let op = Op::Lease {
                    seq: self.next_seq(),
                    lease: lease.map_or(0, |l| l.id),
                    spent: lease.map_or(0, |l| l.spent),
                    want: target.saturating_sub(left),
                    release: false,
                };
                let call = self.call(name, limits, op);
                self.outbox.push((Tag::Lease(c), call));
                self.pending.insert(c, now);
            } else {
                self.on_floors += 1;
            }
        }
        floor_free.saturating_add(left)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The window the fleet has used up for `c`, per the last reply, and
    /// its count there (Redis's share; the floors come on top).
    pub fn exhausted(&self, c: CustomerId) -> Option<(usize, u64)> {
        self.exhausted.get(&c).copied()
    }

    /// Customer `c` was blocked by the limit: what the last reply said is
    /// spent, so that after the block the customer asks Redis again
    /// before it can be blocked again (the windows may have drained).
    pub fn limit_blocked(&mut self, c: CustomerId) {
        self.exhausted.remove(&c);
    }

    /// Blocks `customer` fleet-wide.
    pub fn block(
        &mut self,
        customer: &str,
        limits: &[u64],
        ms: Option<u64>,
        reason: &str,
        by: &str,
    ) {
        let op = Op::Block {
            ms,
            reason: reason.to_owned(),
            by: by.to_owned(),
        };
        let call = self.call(customer, limits, op);
        self.announce(call);
    }

    /// Announces an operator's new `value` for window `w` of `customer`
    /// to the fleet (each appliance applies it to its own limits).
    pub fn set_limit(&mut self, customer: &str, limits: &[u64], w: usize, value: u64) {
        let Some(&window_ms) = self.lengths_ms.get(w) else {
            return;
        };
        let call = self.call(customer, limits, Op::Limit { window_ms, value });
        self.announce(call);
    }

    /// The index of the window `window_ms` long.
    pub fn window_of(&self, window_ms: u64) -> Option<usize> {
        self.lengths_ms.iter().position(|&l| l == window_ms)
    }

    /// Lifts `customer`'s block fleet-wide (and forgives its windows).
    pub fn unblock(&mut self, customer: &str, limits: &[u64]) {
        let call = self.call(customer, limits, Op::Unblock);
        self.announce(call);
    }

    /// End of a tick: sends the calls queued, if no round is in flight
    /// (else they wait for the next tick; lease calls are asked again by
    /// then, so only releases and blocks are kept).
    pub fn end_tick(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let Some(link) = self.link.as_mut() else {
            self.outbox.clear();
            return;
        };
        if link.busy() {
            let (pending, reread) = (&mut self.pending, &mut self.reread);
            self.outbox.retain(|(tag, _)| match *tag {
                Tag::Lease(c) => {
                    pending.remove(&c);
                    false
                }
                Tag::Notes(c) => {
                    reread.queue.push(c);
                    reread.in_flight = reread.in_flight.saturating_sub(1);
                    false
                }
                Tag::Announce(_) | Tag::Other => true,
            });
            return;
        }
        let round = std::mem::take(&mut self.outbox);
        let announced: Vec<u64> = round
            .iter()
            .filter_map(|(tag, _)| match *tag {
                Tag::Announce(id) => Some(id),
                _ => None,
            })
            .collect();
        if link.send(round) {
            self.stats.rounds += 1;
        } else {
            self.pending.clear();
            self.reread.in_flight = 0;
            for id in announced {
                self.announcing.unsent(id);
            }
        }
    }

    /// Customers holding a lease.
    pub fn lease_customers(&self) -> impl Iterator<Item = CustomerId> + '_ {
        self.leases.keys().copied()
    }

    /// This appliance's floor spend of `c` in window `w`.
    pub fn floor_count(&self, c: CustomerId, w: usize, now: u64) -> u64 {
        self.floors.count(c, w, now)
    }

    /// A reload renumbered the customers: old id `i` is now `id_map[i]`.
    /// Floors and leases follow; a removed customer's lease is left to
    /// expire (Redis charges it).
    pub fn remap(&mut self, id_map: &[Option<CustomerId>], now: u64) {
        let mut floors = Windows::new(self.floors.lengths());
        for old in self.floors.customers().collect::<Vec<_>>() {
            if let (Some(Some(new)), Some(rings)) =
                (id_map.get(old.index()), self.floors.export(old, now))
            {
                for (w, ring) in rings.iter().enumerate() {
                    floors.import(*new, w, ring, now);
                }
            }
        }
        self.floors = floors;
        let leases = std::mem::take(&mut self.leases);
        for (k, v) in leases {
            if let Some(Some(new)) = id_map.get(k.index()) {
                self.leases.insert(*new, v);
            }
        }
        // Answers in flight are tagged with old ids: dropped (a lost reply
        // is safe: the next call adopts the server's view).
        self.pending.clear();
        self.discard = self.busy();
        self.exhausted.clear();
        // A reload is the operator's newer word on limits; a re-read under
        // way starts again with the new ids (the version rules make
        // reading a note twice harmless).
        self.since = now;
        self.applied = std::mem::take(&mut self.applied)
            .into_iter()
            .filter_map(|((c, kind), v)| match id_map.get(c.index()) {
                Some(Some(new)) => Some(((*new, kind), v)),
                _ => None,
            })
            .collect();
        self.noted.clear();
        if self.reread.in_progress() {
            self.reread = Reread {
                requested: true,
                ..Reread::default()
            };
        }
    }

    /// Whether a round is in flight.
    pub fn busy(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.busy())
    }

    /// Leases held now.
    pub fn leases_held(&self) -> usize {
        self.leases.len()
    }

    /// The `/metrics` figures.
    pub fn metrics(&self) -> FleetMetrics {
        let s = &self.stats;
        FleetMetrics {
            leases_held: self.leases.len() as u64,
            leased_outstanding: self
                .leases
                .values()
                .map(|l| l.granted.saturating_sub(l.spent))
                .sum(),
            leased_syns: s.leased,
            rounds: s.rounds,
            replies: s.replies,
            failures: s.failures,
            node: self.config.redis[0].clone(),
            rtt_seconds: s.last_rtt.map_or(0.0, |d| d.as_secs_f64()),
            redis_up: u64::from(self.link.is_some() && !s.down),
            customers_on_floors: self.on_floors as u64,
            quarantine_ms: self.quarantine_until.saturating_sub(self.last_now),
            subscriptions: s.subscriptions,
            notes_applied: s.notes_applied,
            reread_in_progress: u64::from(self.reread.in_progress()),
            announcements_waiting: self.announcing.calls.len() as u64,
            announcements_lost: s.announcements_lost,
        }
    }

    /// Each node's health for `synwallctl fleet`: the nodes the rounds
    /// went to (every master of a Cluster that served a call), else the
    /// configured seeds, not asked yet.
    fn node_views(&self) -> Vec<Value> {
        if self.nodes.is_empty() {
            return self
                .config
                .redis
                .iter()
                .map(|url| {
                    json!({
                        "url": url,
                        "healthy": Value::Null,
                        "last_error": self.stats.last_error,
                    })
                })
                .collect();
        }
        self.nodes
            .iter()
            .map(|n| {
                let quarantined = n.lost_state || n.quarantine_ms > 0;
                json!({
                    "url": n.url,
                    "healthy": n.up.map(|up| up && !quarantined),
                    "up": n.up,
                    "quarantine_left_ms": n.quarantine_ms,
                    "last_rtt_ms": n.rtt.as_secs_f64() * 1e3,
                    "last_error": n.error,
                    "last_round_ms_ago": self.last_now.saturating_sub(n.at),
                })
            })
            .collect()
    }

    /// `synwallctl fleet`.
    pub fn view(&self) -> Value {
        let s = &self.stats;
        json!({
            "name": self.config.name,
            "appliances": self.config.appliances,
            "floor": self.config.floor,
            "healthy": self.link.is_some() && !s.down,
            "nodes": self.node_views(),
            "leases_held": self.leases.len(),
            "leased_outstanding": self.leases.values().map(|l| l.granted.saturating_sub(l.spent)).sum::<u64>(),
            "customers_on_floors_only": self.on_floors,
            "quarantine_left_ms": self.quarantine_until.saturating_sub(self.last_now),
            "last_rtt_ms": s.last_rtt.map(|d| d.as_secs_f64() * 1e3),
            "rounds": s.rounds,
            "replies": s.replies,
            "failures": s.failures,
            "leased_syns": s.leased,
            "overrun": s.overrun,
            "subscriptions": s.subscriptions,
            "rereads": s.rereads,
            "reread_in_progress": self.reread.in_progress(),
            "reread_left": self.reread.queue.len() + self.reread.failed.len() + self.reread.in_flight,
            "notes_applied": s.notes_applied,
            "bad_notes": s.bad_notes,
            "announcements_waiting": self.announcing.calls.len(),
            "announcements_lost": s.announcements_lost,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(name: &str) -> FleetLocal {
        let config = Fleet {
            name: name.into(),
            redis: vec!["redis://127.0.0.1:1".into()],
            appliances: 2,
            floor: 0.2,
            lease_ttl: Duration::from_secs(3),
            lease_margin: Duration::from_millis(500),
            timeout: Duration::from_millis(300),
            lease_demand: Duration::from_secs(2),
        };
        let lengths = [Duration::from_secs(300), Duration::from_secs(3600)];
        // Started at local ms 10 000; the server's clock is 1 000 000 ms
        // ahead of the local one.
        let mut f = FleetLocal::new(&config, &lengths, Duration::from_millis(50), 0, 10_000);
        f.offset = Some(1_000_000);
        f
    }

    fn said(said: Said, app: &str, server_ms: u64, noted: bool) -> Announcement {
        Announcement {
            said,
            customer: "acme".into(),
            app: app.into(),
            version: server_ms * 1000 + 7,
            noted,
        }
    }

    #[test]
    fn notes_apply_only_when_newer_than_what_was_applied_and_the_start() {
        let mut f = fleet("edge-b");
        let limit = Said::Limit {
            window_ms: 3_600_000,
            value: 5,
        };
        // Started at server ms 1 010 000.
        assert!(
            !f.fresh(CustomerId::new(0), &said(limit, "edge-a", 1_009_000, true)),
            "before the start"
        );
        assert!(f.fresh(CustomerId::new(0), &said(limit, "edge-a", 1_011_000, true)));
        assert!(
            !f.fresh(CustomerId::new(0), &said(limit, "edge-a", 1_011_000, true)),
            "applied"
        );
        assert!(
            !f.fresh(CustomerId::new(0), &said(limit, "edge-b", 1_012_000, true)),
            "its own"
        );
        // Heard live, the start does not matter (it is news by definition).
        assert!(f.fresh(CustomerId::new(1), &said(limit, "edge-a", 1_009_000, false)));
        let unknown = Said::Limit {
            window_ms: 60_000,
            value: 5,
        };
        assert!(!f.fresh(
            CustomerId::new(0),
            &said(unknown, "edge-a", 1_020_000, true)
        ));
        // Blocks and unblocks share one order; windows have their own.
        assert!(f.fresh(
            CustomerId::new(0),
            &said(Said::Block, "edge-a", 1_012_000, false)
        ));
        assert!(
            !f.fresh(
                CustomerId::new(0),
                &said(Said::Unblock, "edge-a", 1_011_500, true)
            ),
            "older"
        );
        assert!(f.fresh(
            CustomerId::new(0),
            &said(Said::Unblock, "edge-a", 1_013_000, true)
        ));
        // A reload is the operator's newer word on limits.
        f.remap(
            &[Some(CustomerId::new(0)), Some(CustomerId::new(1))],
            30_000,
        );
        let later = Said::Limit {
            window_ms: 300_000,
            value: 9,
        };
        assert!(!f.fresh(CustomerId::new(0), &said(later, "edge-a", 1_020_000, true)));
        assert!(f.fresh(CustomerId::new(0), &said(later, "edge-a", 1_031_000, true)));
        assert!(
            !f.fresh(
                CustomerId::new(0),
                &said(Said::Unblock, "edge-a", 1_013_000, true)
            ),
            "kept"
        );
    }

    #[test]
    fn said_after_uses_the_servers_clock() {
        let mut f = fleet("edge-b");
        assert!(f.said_after(1_000_501_000, 500));
        assert!(!f.said_after(1_000_500_000, 500));
        f.offset = None;
        assert!(!f.said_after(u64::MAX, 0), "no reply yet: nothing is known");
    }
}
