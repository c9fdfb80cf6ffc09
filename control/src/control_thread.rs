//! The control thread's state during a run ([`ControlThread`]): the config,
//! the control plane, the event log and stream, the published generation of
//! customers, a reload under way, and the telemetry it keeps for operators
//! ([`report`]: status, systemd's status line, metrics, the summary).
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::Receiver;
use rustc_hash::FxHashSet;
use serde::Serialize;
use serde_json::Value;
use synwall_config::{Config, Mode};
use synwall_dataplane::classify::{Classifier, CustomerId};
use synwall_dataplane::generation::SharedGeneration;
use synwall_dataplane::shard::{WorkerShard, WorkerStats};

use crate::commands::{execute, Operate};
use crate::flowspec::FlowspecSpeaker;
use crate::hook::HookRunner;
use crate::metrics::{BlockEventCounts, MetricsRegistry};
use crate::notify::{Liveness, Notifier};
use crate::reload::{self, Asked, HandOver, Prepared, Reading, HAND_OVER_DEADLINE};
use crate::socket::{EventBus, Request};
use crate::summary::{PortSummary, RemovedCustomers};
use synwall_engine::event::{Event, EventKind, EventLog};
use synwall_engine::grant;
use synwall_engine::plane::ControlPlane;
use synwall_engine::snapshot;
use synwall_protocol::Command;

mod report;
#[cfg(test)]
mod tests;

/// Customers besides the blocked ones that get their own metric series.
pub const TOP_CUSTOMERS: usize = 20;

/// Monotonic milliseconds since start, the control plane's clock.
#[derive(Debug, Clone, Copy)]
pub struct MonoClock(Instant);

impl MonoClock {
    /// The clock, reading 0 now.
    pub fn start() -> MonoClock {
        MonoClock(Instant::now())
    }

    /// Milliseconds since start.
    pub fn now(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// Control-plane figures the telemetry thread may read.
#[derive(Debug, Default)]
pub struct Gauges {
    pub blocked_customers: AtomicU64,
    pub active_customers: AtomicU64,
    pub last_tick_us: AtomicU64,
    pub ticks: AtomicU64,
    /// The packet pool's size and mbufs handed out, refreshed once a second.
    pub mempool_size: AtomicU64,
    pub mempool_in_use: AtomicU64,
}

/// One port's counters and rates, refreshed by the main loop (`status`'s
/// port objects).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PortStatus {
    /// Name, place and counters.
    #[serde(flatten)]
    pub port: PortSummary,
    pub link_up: bool,
    pub speed_mbps: u32,
    pub rx_pps: f64,
    pub tx_pps: f64,
    pub rx_bps: f64,
    pub tx_bps: f64,
}

/// What the appliance has built before the control thread takes over.
pub struct Start {
    pub config: Config,
    /// The plane, restored from the snapshot if there was one.
    pub plane: ControlPlane,
    pub events: EventLog,
    pub clock: MonoClock,
    /// Per customer name, SYNs seen and forwarded before this run (restored
    /// from the snapshot): the summary reports this run's counts.
    pub baseline: HashMap<String, (u64, u64)>,
    /// The customer set the workers use, and its classifier.
    pub generation: SharedGeneration,
    pub classifier: Arc<Classifier>,
    pub hooks: Option<HookRunner>,
    pub notifier: Notifier,
    pub flowspec: Option<FlowspecSpeaker>,
}

/// Where a reload stands.
#[derive(Default)]
enum Reloading {
    #[default]
    Idle,
    /// The config is being read on its own thread.
    Reading(Reading),
    /// The workers are moving to the new generation.
    HandingOver(Box<HandOver>),
}

/// The control thread's side of a run.
pub struct ControlThread {
    config: Config,
    plane: ControlPlane,
    events: EventLog,
    clock: MonoClock,
    gauges: Arc<Gauges>,
    baseline: HashMap<String, (u64, u64)>,
    /// The customer set the workers use.
    generation: SharedGeneration,
    /// The classifier of the generation the plane speaks (only this thread
    /// swaps it, when a hand-over finishes).
    classifier: Arc<Classifier>,
    /// Each worker's frame counters.
    stats: Vec<Arc<WorkerStats>>,
    /// Followers of the event stream (once the socket is up).
    bus: Option<EventBus>,
    /// Ports as last refreshed.
    ports: Vec<PortStatus>,
    /// When the run started.
    started: Instant,
    /// The Prometheus registry, when `control.metrics_listen` is set.
    metrics: Option<Arc<Mutex<MetricsRegistry>>>,
    /// Events emitted so far, by kind (for metrics).
    block_events: BlockEventCounts,
    /// Runs `control.hook` on block, unblock and expire events.
    hooks: Option<HookRunner>,
    /// This run's SYNs of customers that a reload removed since.
    removed: RemovedCustomers,
    /// The reload under way.
    reloading: Reloading,
    /// Reloads asked for while one was under way: the next one.
    queued: Asked,
    /// How long a hand-over waits for the workers.
    hand_over_deadline: Duration,
    /// A tick fell due during a hand-over (it runs as the hand-over ends).
    tick_deferred: bool,
    /// The EAL main lcore this thread runs on (once the EAL is up).
    main_lcore: Option<u32>,
    /// systemd's notify socket and watchdog.
    notifier: Notifier,
    /// Workers (by index) whose poll counter stood still at the last
    /// liveness check, and whether the tick did.
    stalled_workers: Vec<usize>,
    tick_stalled: bool,
    /// State snapshots written, and writes that failed, this run.
    snapshots_written: u64,
    snapshot_failures: u64,
    /// The last snapshot write's error, while writes fail (`None` once
    /// one succeeds again).
    snapshot_error: Option<String>,
    /// Announces blocks as FlowSpec through gobgpd (`[flowspec]`).
    flowspec: Option<FlowspecSpeaker>,
    /// The TSC frequency (once the EAL is up; 0 before): the fleet's grant
    /// stamps are TSC values.
    tsc_hz: u64,
    /// The per-customer history's writer thread, once attached.
    history: Option<crate::history::HistoryWriter>,
    /// The wall-clock minute the plane's recent counts belong to, and the
    /// blocks since the last batch.
    history_minute: i64,
    history_blocks: Vec<synwall_history::BlockRecord>,
}

impl ControlThread {
    /// The control thread for what `start` holds, with one counter set per
    /// worker core of the config.
    pub fn new(start: Start) -> ControlThread {
        let Start {
            config,
            plane,
            events,
            clock,
            baseline,
            generation,
            classifier,
            hooks,
            notifier,
            flowspec,
        } = start;
        let stats = (0..config.dpdk.cores.len())
            .map(|_| Arc::new(WorkerStats::default()))
            .collect();
        let metrics = config
            .control
            .metrics_listen
            .map(|_| Arc::new(Mutex::new(MetricsRegistry::new(TOP_CUSTOMERS))));
        ControlThread {
            config,
            plane,
            events,
            clock,
            gauges: Arc::new(Gauges::default()),
            baseline,
            generation,
            classifier,
            stats,
            bus: None,
            ports: Vec::new(),
            started: Instant::now(),
            metrics,
            block_events: Default::default(),
            hooks,
            removed: Default::default(),
            reloading: Reloading::Idle,
            queued: Asked::default(),
            hand_over_deadline: HAND_OVER_DEADLINE,
            tick_deferred: false,
            main_lcore: None,
            notifier,
            stalled_workers: Vec::new(),
            tick_stalled: false,
            snapshots_written: 0,
            snapshot_failures: 0,
            snapshot_error: None,
            flowspec,
            tsc_hz: 0,
            history: None,
            history_minute: 0,
            history_blocks: Vec::new(),
        }
    }

    /// What the EAL tells once it is up: the main lcore this thread runs
    /// on and the TSC frequency; and the socket's event stream.
    pub fn attach(&mut self, main_lcore: u32, tsc_hz: u64, bus: EventBus) {
        self.main_lcore = Some(main_lcore);
        self.tsc_hz = tsc_hz;
        self.bus = Some(bus);
    }

    /// Starts keeping the per-customer history in the state directory
    /// (off this thread: [`crate::history`]).
    pub fn attach_history(&mut self) {
        let wall = self.plane.wall(self.clock.now()).0;
        self.history_minute = synwall_history::minute_of_ms(wall);
        self.history = Some(crate::history::HistoryWriter::start(
            &self.config.control.state_dir,
            wall,
        ));
        self.report_history_damage();
    }

    /// Hands the plane's counts to the history writer once a wall-clock
    /// minute has ended (`force`: now, for the minute under way). The
    /// tick that crosses into a new minute carries at most one tick of
    /// SYNs of the new minute into the old one.
    fn record_history(&mut self, force: bool) {
        let Some(writer) = &self.history else {
            return;
        };
        let minute = synwall_history::minute_of_ms(self.plane.wall(self.clock.now()).0);
        if minute == self.history_minute && !force {
            return;
        }
        writer.send(crate::history::Batch {
            minute: self.history_minute,
            counts: self.plane.take_recent(),
            blocks: std::mem::take(&mut self.history_blocks),
            done: None,
        });
        self.history_minute = minute;
        self.report_history_damage();
    }

    /// A damaged history set aside and replaced: an event (the main loop
    /// asks once a second).
    pub fn report_history_damage(&mut self) {
        let Some(writer) = &self.history else {
            return;
        };
        let damage = writer.take_damage();
        self.history_damage_events(damage);
    }

    fn history_damage_events(&mut self, damage: Vec<synwall_history::Damage>) {
        let at = self.plane.wall(self.clock.now());
        let events: Vec<Event> = damage
            .into_iter()
            .map(|d| {
                let mut e = Event::new(EventKind::History, at);
                e.reason = Some(format!(
                    "history damaged ({}); moved to {} and started a new one",
                    d.why,
                    d.moved_to.display()
                ));
                e
            })
            .collect();
        self.emit(&events);
    }

    /// Writes the minute under way and stops the history writer.
    pub fn finish_history(&mut self) {
        if let Some(writer) = self.history.take() {
            let damage = writer.finish(crate::history::Batch {
                minute: self.history_minute,
                counts: self.plane.take_recent(),
                blocks: std::mem::take(&mut self.history_blocks),
                done: None,
            });
            self.history_damage_events(damage);
        }
    }

    /// The history writer's health (`None` before it is attached).
    pub fn history_health(&self) -> Option<crate::history::HistoryHealth> {
        self.history.as_ref().map(|h| h.health())
    }

    /// The running config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The customer set the workers use.
    pub fn generation(&self) -> &SharedGeneration {
        &self.generation
    }

    /// Each worker's frame counters (by worker index).
    pub fn stats(&self) -> &[Arc<WorkerStats>] {
        &self.stats
    }

    /// The figures the telemetry thread reads.
    pub fn gauges(&self) -> &Arc<Gauges> {
        &self.gauges
    }

    /// The Prometheus registry, when `control.metrics_listen` is set.
    pub fn metrics(&self) -> Option<&Arc<Mutex<MetricsRegistry>>> {
        self.metrics.as_ref()
    }

    /// Ports as last refreshed.
    pub fn ports(&self) -> &[PortStatus] {
        &self.ports
    }

    /// Replaces the ports' counters and rates.
    pub fn set_ports(&mut self, ports: Vec<PortStatus>) {
        self.ports = ports;
    }

    /// Writes events to the log, to stdout, to the event stream and to the
    /// hook's queue (which never blocks); a failing log is reported, never
    /// fatal: the appliance keeps forwarding and enforcing.
    pub fn emit(&mut self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        for e in events {
            crate::console::out(format!("synwall: event {}", e.to_line()));
            if let (
                Some(_),
                Some(customer),
                EventKind::Block | EventKind::Unblock | EventKind::Expire,
            ) = (&self.history, &e.customer, e.kind)
            {
                self.history_blocks.push(synwall_history::BlockRecord {
                    customer: customer.clone(),
                    at_ms: e.ts.0,
                    kind: match e.kind {
                        EventKind::Block => "block",
                        EventKind::Unblock => "unblock",
                        _ => "expire",
                    }
                    .to_owned(),
                    until_ms: e.until.map(|u| u.0),
                    reason: e.reason.clone().unwrap_or_default(),
                });
            }
            let c = &mut self.block_events;
            match e.kind {
                EventKind::Block => c.block += 1,
                EventKind::Unblock => c.unblock += 1,
                EventKind::Expire => c.expire += 1,
                EventKind::WouldBlock => c.would_block += 1,
                EventKind::NearLimit => c.near_limit += 1,
                _ => {}
            }
        }
        if let Err(e) = self.events.append(events) {
            crate::console::err(format!("synwall: {e}"));
        }
        if let Some(bus) = &self.bus {
            bus.publish(events);
        }
        if let Some(hooks) = &self.hooks {
            for e in events {
                hooks.enqueue(e);
            }
        }
    }

    /// One control-plane tick over the current generation's shards; during
    /// a hand-over the tick waits, and runs as the hand-over ends.
    pub fn tick_current(&mut self) {
        if matches!(self.reloading, Reloading::HandingOver(_)) {
            self.tick_deferred = true;
            return;
        }
        let shards = self.generation.load().shards.clone();
        self.tick(&shards);
    }

    fn tick(&mut self, shards: &[Arc<WorkerShard>]) {
        let started = Instant::now();
        // Read before the tick's clock: a pause between the two only makes
        // the stamp earlier.
        let tsc0 = synwall_dpdk::tsc_now();
        let events = self.plane.tick(self.clock.now(), shards);
        if let Some(valid) = self.plane.grant_validity() {
            let hz = u128::from(self.tsc_hz);
            let ticks = (valid.as_nanos() * hz / 1_000_000_000).min(u128::from(u64::MAX));
            grant::stamp(shards, tsc0.saturating_add(ticks as u64));
        }
        let g = &self.gauges;
        g.last_tick_us
            .store(started.elapsed().as_micros() as u64, Relaxed);
        g.ticks.fetch_add(1, Relaxed);
        g.blocked_customers
            .store(self.plane.blocks().len() as u64, Relaxed);
        g.active_customers
            .store(self.plane.active() as u64, Relaxed);
        if let Some(m) = &self.metrics {
            if let Ok(m) = m.lock() {
                m.observe_tick(started.elapsed());
            }
        }
        self.emit(&events);
        self.record_history(false);
        if let Some(f) = &self.flowspec {
            let blocked = self.plane.blocks().into_iter().map(|b| b.id);
            f.set(crate::flowspec::desired(&self.config, blocked));
        }
    }

    /// Writes a snapshot; a failure (full disk, read-only state dir) is
    /// reported and retried at the next interval.
    pub fn save(&mut self) {
        match snapshot::save(
            &self.config.control.state_dir,
            &self.plane,
            self.clock.now(),
        ) {
            Ok(_) => {
                self.snapshots_written += 1;
                self.snapshot_error = None;
            }
            Err(e) => {
                self.snapshot_failures += 1;
                crate::console::err(format!("synwall: {e}; will retry"));
                self.snapshot_error = Some(e.to_string());
            }
        }
    }

    /// One turn of the control loop's request handling: answers every
    /// request waiting (a `reload` is answered when it is done), then moves
    /// a reload under way along.
    pub fn serve(&mut self, requests: &Receiver<Request>) {
        while let Ok(req) = requests.try_recv() {
            if req.cmd == Command::Reload {
                self.start_reload(Some(req));
                continue;
            }
            if let Command::WhatIf { .. } | Command::Suggest { .. } | Command::Report { .. } =
                req.cmd
            {
                // Every customer's history: read and replayed off this
                // thread (at most MAX_JOBS at once: each reads every
                // customer's history).
                let running = crate::choosing::JOBS.load(Relaxed);
                if running >= crate::choosing::MAX_JOBS {
                    req.answer(synwall_protocol::error(format!(
                        "{running} what-if/suggest/report runs are under way; ask again when one is done"
                    )));
                    continue;
                }
                match crate::choosing::prepare(&req.cmd, self) {
                    Ok(job) => {
                        crate::choosing::JOBS.fetch_add(1, Relaxed);
                        let spawned = std::thread::Builder::new()
                            .name("synwall-what-if".into())
                            .spawn(move || {
                                let reply = match job.run() {
                                    Ok(v) => synwall_protocol::ok(v),
                                    Err(e) => synwall_protocol::error(e),
                                };
                                crate::choosing::JOBS.fetch_sub(1, Relaxed);
                                req.answer(reply);
                            });
                        if spawned.is_err() {
                            crate::choosing::JOBS.fetch_sub(1, Relaxed);
                        }
                    }
                    Err(e) => req.answer(synwall_protocol::error(e)),
                }
                continue;
            }
            let reply = execute(req.cmd.clone(), &req.caller, self);
            req.answer(reply);
        }
        self.poll_reload();
    }

    /// Watches the workers' poll counters and the tick: pings systemd's
    /// watchdog while all move, withholds it otherwise. True when the
    /// verdict changed (the new status line is sent and logged).
    pub fn check_liveness(&mut self, liveness: &mut Liveness) -> bool {
        let was_ok = self.stalled_workers.is_empty() && !self.tick_stalled;
        let grace = 2 * self.config.control.tick;
        let ok = liveness.check(self.gauges.ticks.load(Relaxed), grace);
        self.stalled_workers = liveness.stalled.clone();
        self.tick_stalled = liveness.tick_stalled;
        if ok {
            self.notifier.ping();
        } else {
            self.notifier.withheld += 1;
        }
        if ok == was_ok {
            return false;
        }
        let line = self.status_line("forwarding");
        crate::console::err(format!("synwall: {line}"));
        self.notifier.status(&line);
        true
    }

    /// systemd's notify socket and watchdog.
    pub fn notifier(&mut self) -> &mut Notifier {
        &mut self.notifier
    }

    /// Starts a reload: the config and customers file are read and the
    /// classifier built on a thread of their own while the control loop
    /// goes on; [`Self::poll_reload`] hands the result over to the workers
    /// and finishes it. `waiter` (a `reload` request) is answered then. A
    /// reload asked for while one is under way runs after it, so that it
    /// reads the files as they are by then. Without a waiter the reload is
    /// SIGHUP's.
    pub fn start_reload(&mut self, waiter: Option<Request>) {
        self.start_reload_for(Asked::one(waiter));
    }

    fn start_reload_for(&mut self, asked: Asked) {
        // SIGHUP and `reload` are also how logrotate has the log reopened
        // (its postrotate), whether or not the config then loads.
        if let Err(e) = self.events.reopen() {
            crate::console::err(format!(
                "synwall: {e}; still writing to the event log opened before"
            ));
        }
        if !matches!(self.reloading, Reloading::Idle) {
            self.queued.join(asked);
            return;
        }
        match Reading::start(&self.config.path, asked) {
            Ok(reading) => self.reloading = Reloading::Reading(reading),
            Err(asked) => {
                // No thread to spare: read it here.
                let prepared = reload::prepare(&self.config.path);
                self.hand_over(prepared, asked);
            }
        }
    }

    /// Moves a reload under way along: hands a finished reading over to
    /// the workers, and finishes a hand-over once every worker has moved
    /// or the deadline has passed; then starts the next reload if more
    /// were asked for.
    pub fn poll_reload(&mut self) {
        match std::mem::take(&mut self.reloading) {
            Reloading::Idle => {}
            Reloading::Reading(r) if !r.is_finished() => self.reloading = Reloading::Reading(r),
            Reloading::Reading(r) => {
                let (prepared, asked) = r.join();
                self.hand_over(prepared, asked);
            }
            Reloading::HandingOver(h) => self.reloading = Reloading::HandingOver(h),
        }
        let Reloading::HandingOver(h) = &mut self.reloading else {
            return self.start_queued();
        };
        let all_moved = h.poll(&self.stats);
        if !all_moved && !h.overdue() {
            return;
        }
        let Reloading::HandingOver(h) = std::mem::take(&mut self.reloading) else {
            return;
        };
        if !all_moved {
            let lcores: Vec<String> = h
                .stragglers()
                .into_iter()
                .filter_map(|w| self.config.dpdk.cores.get(w))
                .map(|c| c.to_string())
                .collect();
            crate::console::err(format!(
                "synwall: reload: the worker on lcore {} did not move to generation {} within {:?}; its new allowances stay 0 until the next tick",
                lcores.join(","),
                h.next.number,
                self.hand_over_deadline
            ));
        }
        self.finish_reload(*h);
        self.start_queued();
    }

    /// Starts the reload asked for while one was under way.
    fn start_queued(&mut self) {
        if matches!(self.reloading, Reloading::Idle) && self.queued.any() {
            let asked = std::mem::take(&mut self.queued);
            self.start_reload_for(asked);
        }
    }

    /// Whether a reload is handing over to the workers: the main loop
    /// then polls it without sleeping its usual 10 ms, since a moved
    /// worker's new allowances stay 0 until the poll sees it move.
    pub fn handing_over(&self) -> bool {
        matches!(self.reloading, Reloading::HandingOver(_))
    }

    /// Finishes a hand-over under way without waiting for the workers (they
    /// are stopped: every old shard is final).
    pub fn settle_reload(&mut self) {
        if let Reloading::HandingOver(mut h) = std::mem::take(&mut self.reloading) {
            h.poll(&self.stats);
            self.finish_reload(*h);
        }
    }

    /// Rejects a reload: the reason is logged as a `reload` event, the
    /// running config stays.
    fn reject_reload(&mut self, why: String, asked: Asked) {
        crate::console::err(format!(
            "synwall: reload rejected, keeping the running config: {why}"
        ));
        let mut ev = Event::reload(
            self.plane.wall(self.clock.now()),
            format!("rejected: {why}"),
        );
        ev.by = Some(asked.names());
        self.emit(&[ev]);
        asked.answer(&Err(why));
    }

    /// The fast half of a reload, on the control thread. A bad config
    /// changes nothing; a good one swaps the customer set in without
    /// stopping the workers: a new generation is published and the
    /// hand-over begins ([`crate::reload`]).
    fn hand_over(&mut self, prepared: Result<Prepared, String>, asked: Asked) {
        let prepared = match prepared {
            Ok(p) => p,
            Err(why) => return self.reject_reload(why, asked),
        };
        if let Some(why) = reload::restart_needed(&self.config, &prepared.config) {
            return self.reject_reload(format!("{why} changed; that needs a restart"), asked);
        }
        let h = HandOver::begin(
            &self.plane,
            &self.config,
            &self.generation,
            prepared,
            self.stats.len(),
            self.clock.now(),
            self.hand_over_deadline,
            asked,
        );
        self.reloading = Reloading::HandingOver(Box::new(h));
    }

    /// Ends a hand-over: the old shards are read to the last SYN, what the
    /// customers leaving sent this run is booked, state follows customers
    /// by name onto the new shards, and the askers are answered.
    fn finish_reload(&mut self, h: HandOver) {
        let HandOver {
            old,
            next,
            config: new,
            classifier,
            asked,
            ..
        } = h;
        self.tick(&old.shards);
        // The old shards are read to the last SYN: book what the customers
        // leaving now sent this run, so the totals still add up.
        let staying: FxHashSet<&str> = new.customers.iter().map(|c| &*c.name).collect();
        let now = self.clock.now();
        for id in CustomerId::all(self.plane.customers()) {
            if self.plane.name(id).is_none_or(|n| staying.contains(n)) {
                continue;
            }
            let Some(v) = self.plane.customer_view(id, now) else {
                continue;
            };
            let (seen0, fwd0) = self.baseline.remove(&v.name).unwrap_or((0, 0));
            self.removed.add(
                v.seen.saturating_sub(seen0),
                v.forwarded.saturating_sub(fwd0),
            );
        }
        drop(staying);
        // The history takes this minute's counts under the old names.
        self.record_history(true);
        let reload = self.plane.reconfigure(&new, self.clock.now());
        if let Some(old) = self.plane.take_retired() {
            crate::reload::drop_in_background(old);
        }
        self.plane.attach_fresh(&next.shards);
        self.classifier = classifier;
        let msg = format!(
            "{}: {} customers ({} added, {} removed)",
            self.config.path.display(),
            new.customers.len(),
            reload.added,
            reload.removed
        );
        crate::console::out(format!("synwall: reloaded {msg}"));
        crate::reload::drop_in_background(std::mem::replace(&mut self.config, new));
        let mut ev = Event::reload(self.plane.wall(self.clock.now()), msg.clone());
        ev.by = Some(asked.names());
        self.emit(&[ev]);
        // The tick that fell due meanwhile, if one did.
        self.tick_deferred = false;
        self.tick(&next.shards);
        asked.answer(&Ok(msg));
    }
}

impl Operate for ControlThread {
    fn plane(&mut self) -> &mut ControlPlane {
        &mut self.plane
    }

    fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn status(&self) -> Value {
        self.status_value()
    }

    /// The control loop answers `reload` requests itself when the reload is
    /// done ([`ControlThread::serve`]); asked here, the reload starts and
    /// its `reload` event tells how it went.
    fn reload(&mut self, by: &str) -> Result<String, String> {
        self.start_reload_for(Asked::by(by));
        Ok(format!(
            "reloading {}: the reload event tells how it went",
            self.config.path.display()
        ))
    }

    fn emit(&mut self, events: &[Event]) {
        ControlThread::emit(self, events)
    }

    fn metrics_text(&self) -> String {
        match &self.metrics {
            Some(m) => m.lock().map(|m| m.encode()).unwrap_or_default(),
            None => String::new(),
        }
    }

    fn set_global_mode(&mut self, mode: Mode) -> Result<(), String> {
        if mode == Mode::Exempt {
            return Err("the global mode is enforce or monitor".to_owned());
        }
        self.config.control.mode = mode;
        for c in &self.config.customers {
            if c.mode.is_none() {
                self.plane
                    .set_mode(CustomerId::new(c.id), mode)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}
