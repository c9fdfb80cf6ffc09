//! The control thread's state during a run ([`Control`]): the config, the
//! control plane, the event log and stream, the published generation of
//! customers, and what operators ask of them through the control socket.
use std::collections::HashMap;

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use synwall_config::{Config, Mode};
use synwall_dataplane::classify::Classifier;
use synwall_dataplane::generation::SharedGeneration;
use synwall_dataplane::parse::Outcome;
use synwall_dataplane::shard::{FrameTotals, WorkerShard, WorkerStats};

use crate::commands::Operate;
use crate::event::{Event, EventKind, EventLog};
use crate::grant::{self, Carried};
use crate::hook::HookRunner;
use crate::metrics::{
    BlockEventCounts, CustomerMetrics, CustomerWindow, MetricsRegistry, MetricsSnapshot,
    PortMetrics, WorkerLoad,
};
use crate::notify::Notifier;
use crate::plane::ControlPlane;
use crate::setup::placed_classifier;
use crate::snapshot;
use crate::socket::{Dataplane, EventBus, Request};
use crate::summary::RemovedCustomers;

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

/// One port's counters and rates, refreshed by the main loop.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PortStatus {
    pub name: String,
    pub link: String,
    pub side: &'static str,
    pub link_up: bool,
    pub speed_mbps: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_nombuf: u64,
    pub rx_pps: f64,
    pub tx_pps: f64,
    pub rx_bps: f64,
    pub tx_bps: f64,
}

/// The control thread's side of a run.
pub struct Control {
    pub config: Config,
    pub plane: ControlPlane,
    pub events: EventLog,
    pub clock: MonoClock,
    pub gauges: Arc<Gauges>,
    /// Per customer name, SYNs seen and forwarded before this run (restored
    /// from the snapshot): the summary reports this run's counts.
    pub baseline: HashMap<String, (u64, u64)>,
    /// The customer set the workers use.
    pub generation: SharedGeneration,
    /// The published generation's classifier (only this thread swaps it).
    pub classifier: Arc<Classifier>,
    /// Each worker's frame counters.
    pub stats: Vec<Arc<WorkerStats>>,
    /// Followers of the event stream (once the socket is up).
    pub bus: Option<EventBus>,
    /// Ports as last refreshed.
    pub ports: Vec<PortStatus>,
    /// When the run started.
    pub started: Instant,
    /// The Prometheus registry, when `control.metrics_listen` is set.
    pub metrics: Option<Arc<Mutex<MetricsRegistry>>>,
    /// Events emitted so far, by kind (for metrics).
    pub block_events: BlockEventCounts,
    /// Runs `control.hook` on block, unblock and expire events.
    pub hooks: Option<HookRunner>,
    /// This run's SYNs of customers that a reload removed since.
    pub removed: RemovedCustomers,
    /// A reload being read on its own thread.
    pub reload: Option<PendingReload>,
    /// The EAL main lcore this thread runs on (once the EAL is up).
    pub main_lcore: Option<u32>,
    /// systemd's notify socket and watchdog.
    pub notifier: Notifier,
    /// Workers (by index) whose poll counter stood still at the last
    /// liveness check, and whether the tick did.
    pub stalled_workers: Vec<usize>,
    pub tick_stalled: bool,
    /// State snapshots written, and writes that failed, this run.
    pub snapshots_written: u64,
    pub snapshot_failures: u64,
    /// Announces blocks as FlowSpec through gobgpd (`[flowspec]`).
    pub flowspec: Option<crate::flowspec::FlowspecSpeaker>,
    /// The TSC frequency (once the EAL is up; 0 before): the fleet's grant
    /// stamps are TSC values.
    pub tsc_hz: u64,
}

/// A reload whose slow half runs on its own thread.
pub struct PendingReload {
    handle: std::thread::JoinHandle<Result<(Config, Classifier), String>>,
    /// Answered when it is applied.
    waiters: Vec<Request>,
    /// Who asked for it (callers, or the signal), for the event.
    by: Vec<String>,
    /// Asked for while it ran: answered by the next one.
    next_waiters: Vec<Request>,
    /// Who asked for the next one.
    next_by: Vec<String>,
    /// Another reload was asked for while it ran.
    again: bool,
}

/// The slow half of a reload: reads the config (and its customers file)
/// and builds the classifier. Touches nothing of the running appliance.
fn prepare_reload(path: &std::path::Path) -> Result<(Config, Classifier), String> {
    let new = Config::load(path).map_err(|e| e.to_string())?;
    let classifier = placed_classifier(&new).map_err(|e| e.to_string())?;
    Ok((new, classifier))
}

/// How a reload event names a SIGHUP (the sender is not known).
pub const SIGHUP_BY: &str = "signal SIGHUP";

/// Adds `who` to `by` unless it is there already.
fn add_by(by: &mut Vec<String>, who: impl IntoIterator<Item = String>) {
    for w in who {
        if !by.contains(&w) {
            by.push(w);
        }
    }
}

/// The socket reply to a `reload` request.
fn reload_reply(result: &Result<String, String>) -> Value {
    match result {
        Ok(message) => crate::protocol::ok(json!({ "message": message })),
        Err(why) => crate::protocol::error(why),
    }
}

impl Control {
    /// Writes events to the log, to stdout, to the event stream and to the
    /// hook's queue (which never blocks); a failing log is reported, never
    /// fatal: the appliance keeps forwarding and enforcing.
    pub fn emit(&mut self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        for e in events {
            println!("synwall: event {}", e.to_line());
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
            eprintln!("synwall: {e}");
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

    /// One control-plane tick over the current generation's shards.
    pub fn tick_current(&mut self) {
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
        if let Some(f) = &self.flowspec {
            let blocked = self.plane.blocks().into_iter().map(|b| b.id);
            f.set(crate::flowspec::desired(&self.config, blocked));
        }
    }

    /// Refreshes the Prometheus registry from the workers' counters, the
    /// ports and the control plane (blocked customers and the top senders
    /// of the shortest window only: cardinality stays bounded).
    pub fn update_metrics(&mut self) {
        let Some(registry) = self.metrics.clone() else {
            return;
        };
        let now = self.clock.now();
        let totals = FrameTotals::sum(self.stats.iter().map(|w| &**w));
        let outcomes: std::collections::BTreeMap<String, u64> = Outcome::all()
            .iter()
            .map(|&o| (o.name().to_owned(), totals.outcome(o)))
            .collect();
        let verdicts = totals.verdicts;
        let blocks = self.plane.blocks();
        let mut ids: Vec<u32> = blocks.iter().map(|b| b.id).collect();
        for t in self.plane.top(TOP_CUSTOMERS, 0, now) {
            if !ids.contains(&t.id) {
                ids.push(t.id);
            }
        }
        let customers = ids
            .into_iter()
            .filter_map(|id| self.plane.customer_view(id, now))
            .map(|v| CustomerMetrics {
                name: v.name,
                blocked: v.state != "open",
                windows: v
                    .windows
                    .into_iter()
                    .map(|w| CustomerWindow {
                        window: w.name,
                        syns: w.count,
                        limit: Some(w.limit),
                    })
                    .collect(),
                syn_seen: v.seen,
                syn_forwarded: v.forwarded,
            })
            .collect();
        // Watched SYNs as the workers counted them; "dropped" is every
        // frame a block stopped (dropped or answered with a reset).
        let syn_seen = outcomes
            .get(Outcome::WatchedSyn.name())
            .copied()
            .unwrap_or(0);
        let syn_dropped = verdicts.dropped_blocked + verdicts.reset_sent;
        let snapshot = MetricsSnapshot {
            fleet: self.plane.fleet_metrics(),
            ports: self
                .ports
                .iter()
                .map(|p| PortMetrics {
                    name: p.name.clone(),
                    link: p.link.clone(),
                    side: p.side.to_owned(),
                    rx_packets: p.rx_packets,
                    tx_packets: p.tx_packets,
                    rx_bytes: p.rx_bytes,
                    tx_bytes: p.tx_bytes,
                    rx_missed: p.rx_missed,
                    rx_errors: p.rx_errors,
                    tx_errors: p.tx_errors,
                    rx_nombuf: p.rx_nombuf,
                })
                .collect(),
            outcomes,
            verdicts,
            syn_seen,
            syn_forwarded: syn_seen.saturating_sub(syn_dropped),
            syn_dropped,
            blocked_customers: blocks.len() as u64,
            mempool_size: self.gauges.mempool_size.load(Relaxed),
            mempool_in_use: self.gauges.mempool_in_use.load(Relaxed),
            block_events: self.block_events,
            workers: self
                .stats
                .iter()
                .zip(&self.config.dpdk.cores)
                .map(|(s, &lcore)| WorkerLoad {
                    lcore,
                    busy_ratio: s.busy_ratio(),
                })
                .collect(),
            customers,
            tick_interval_seconds: self.config.control.tick.as_secs_f64(),
            hooks: self.hooks.as_ref().map(|h| h.stats()).unwrap_or_default(),
            snapshots_written: self.snapshots_written,
            snapshot_failures: self.snapshot_failures,
            workers_stalled: self.stalled_workers.len() as u64,
            watchdog_pings: self.notifier.pings,
            watchdog_withheld: self.notifier.withheld,
            notify_failures: self.notifier.failures,
            flowspec: self
                .flowspec
                .as_ref()
                .map(|f| f.status())
                .unwrap_or_default(),
        };
        if let Ok(mut m) = registry.lock() {
            m.update(&snapshot);
        };
    }

    /// Writes a snapshot; a failure (full disk, read-only state dir) is
    /// reported and retried at the next interval.
    pub fn save(&mut self) {
        match snapshot::save(
            &self.config.control.state_dir,
            &self.plane,
            self.clock.now(),
        ) {
            Ok(_) => self.snapshots_written += 1,
            Err(e) => {
                self.snapshot_failures += 1;
                eprintln!("synwall: {e}; will retry");
            }
        }
    }

    /// Re-reads the config file, all at once (see [`Self::start_reload`]
    /// for the way the control loop does it); `by` asked for it.
    pub fn reload_config(&mut self, by: &str) -> Result<String, String> {
        let prepared = prepare_reload(&self.config.path);
        self.apply_reload(prepared, by)
    }

    /// Starts a reload: the config and customers file are read and the
    /// classifier built on a thread of their own (seconds at a million
    /// customers) while the control loop goes on ticking;
    /// [`Self::poll_reload`] applies the result. `waiter` (a `reload`
    /// request) is answered then. A reload asked for while one is under
    /// way runs after it, so that it reads the files as they are by then.
    /// Without a waiter the reload is SIGHUP's.
    pub fn start_reload(&mut self, waiter: Option<Request>) {
        let by = match &waiter {
            Some(w) => w.caller.by(),
            None => SIGHUP_BY.to_owned(),
        };
        self.start_reload_for(waiter.into_iter().collect(), vec![by]);
    }

    fn start_reload_for(&mut self, waiters: Vec<Request>, by: Vec<String>) {
        if let Some(p) = &mut self.reload {
            p.again = true;
            p.next_waiters.extend(waiters);
            add_by(&mut p.next_by, by);
            return;
        }
        let path = self.config.path.clone();
        match std::thread::Builder::new()
            .name("synwall-reload".into())
            .spawn(move || prepare_reload(&path))
        {
            Ok(handle) => {
                self.reload = Some(PendingReload {
                    handle,
                    waiters,
                    by,
                    next_waiters: Vec::new(),
                    next_by: Vec::new(),
                    again: false,
                });
            }
            Err(_) => {
                // No thread to spare: do it here.
                let result = self.reload_config(&by.join(", "));
                for w in waiters {
                    w.answer(reload_reply(&result));
                }
            }
        }
    }

    /// Applies a finished reload started by [`Self::start_reload`] and
    /// answers its requests; starts the next one if more were asked for.
    pub fn poll_reload(&mut self) {
        if !self.reload.as_ref().is_some_and(|p| p.handle.is_finished()) {
            return;
        }
        let Some(p) = self.reload.take() else {
            return;
        };
        let prepared = p.handle.join().unwrap_or_else(|_| {
            Err("reading the config failed unexpectedly (thread panicked)".into())
        });
        let result = self.apply_reload(prepared, &p.by.join(", "));
        for w in p.waiters {
            w.answer(reload_reply(&result));
        }
        if p.again {
            self.start_reload_for(p.next_waiters, p.next_by);
        }
    }

    /// The fast half of a reload, on the control thread. A bad config
    /// changes nothing (the reason is logged as a `reload` event and
    /// returned); a good one swaps the customer set in without stopping the
    /// workers: a new generation (classifier + shards) is published, each
    /// worker's unspent allowances move over as it passes to it, the old
    /// shards' last counts are taken, and state follows customers by name.
    fn apply_reload(
        &mut self,
        prepared: Result<(Config, Classifier), String>,
        by: &str,
    ) -> Result<String, String> {
        let path = self.config.path.clone();
        let fail = |this: &mut Control, why: String| {
            eprintln!("synwall: reload rejected, keeping the running config: {why}");
            let mut ev = Event::reload(
                this.plane.wall(this.clock.now()),
                format!("rejected: {why}"),
            );
            ev.by = Some(by.to_owned());
            this.emit(&[ev]);
            Err(why)
        };
        let (new, classifier) = match prepared {
            Ok((new, classifier)) => (new, Arc::new(classifier)),
            Err(why) => return fail(self, why),
        };
        if let Some(why) = restart_needed(&self.config, &new) {
            return fail(self, format!("{why} changed; that needs a restart"));
        }
        let old = self.generation.load_full();
        self.classifier = classifier.clone();
        let next = old.next(classifier, Arc::new(crate::setup::policy(&new)));
        let now = self.clock.now();
        let old_ids: FxHashMap<&str, u32> = (0..self.plane.customers() as u32)
            .filter_map(|id| self.plane.name(id).map(|n| (n, id)))
            .collect();
        let same_windows = self.config.windows == new.windows;
        let k = next.shards.len() as u64;
        // Enforced customers that stay enforced with the same limits: their
        // per-core allowances move to the new shards below.
        let mut carried: Vec<Carried> = Vec::new();
        for c in &new.customers {
            let old_id = old_ids.get(&*c.name).copied();
            let blocked = old_id.is_some_and(|id| self.plane.is_blocked(id)) || c.blocked;
            let enforce = new.effective_mode(c) == Mode::Enforce;
            let limits = new.effective_limits(c);
            // What a new customer may send before the first tick: its
            // smallest limit, split as a tick would (nothing else can have
            // spent any of it).
            let mut fresh_budget = 0;
            if enforce && !blocked {
                match old_id {
                    None => fresh_budget = limits.iter().copied().min().unwrap_or(0),
                    Some(id) => {
                        if same_windows && self.plane.enforced_limits(id) == Some(&limits[..]) {
                            let budget = (0..limits.len())
                                .map(|w| limits[w].saturating_sub(self.plane.count(id, w, now)))
                                .min()
                                .unwrap_or(0);
                            carried.push(Carried {
                                old: id,
                                new: c.id,
                                budget,
                            });
                        }
                    }
                }
            }
            grant::seed(c.id, enforce.then_some(fresh_budget), &next.shards);
            for s in &next.shards {
                s.set_blocked(c.id, blocked);
            }
        }
        drop(old_ids);
        // The new shards hold carried grants from the old: the old stamp
        // bounds them until the next tick stamps them.
        for (from, to) in old.shards.iter().zip(&next.shards) {
            to.set_grants_until(from.grants_until());
        }
        let number = next.number;
        let next = Arc::new(next);
        self.generation.store(next.clone());
        // As each worker moves to the new generation its old shard is
        // final: hand what it had left of each carried customer's allowance
        // to its new shard (never more than a tick would grant). Until then
        // the new grants are 0, so no SYN is forwarded twice on one
        // allowance; a worker that does not move within the deadline keeps
        // 0 until the next tick.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut moved = vec![false; self.stats.len()];
        while moved.iter().any(|m| !m) && Instant::now() < deadline {
            for (w, stats) in self.stats.iter().enumerate() {
                if moved[w] || stats.generation.load(Relaxed) < number {
                    continue;
                }
                moved[w] = true;
                let (Some(from), Some(to)) = (old.shards.get(w), next.shards.get(w)) else {
                    continue;
                };
                grant::carry(from, to, &carried, k, w);
            }
            std::thread::yield_now();
        }
        self.tick(&old.shards);
        // The old shards are read to the last SYN: book what the customers
        // leaving now sent this run, so the totals still add up.
        let staying: FxHashSet<&str> = new.customers.iter().map(|c| &*c.name).collect();
        let now = self.clock.now();
        for id in 0..self.plane.customers() as u32 {
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
        let reload = self.plane.reconfigure(&new, self.clock.now());
        let current = self.generation.load_full();
        self.plane.attach_fresh(&current.shards);
        let msg = format!(
            "{}: {} customers ({} added, {} removed)",
            path.display(),
            new.customers.len(),
            reload.added,
            reload.removed
        );
        println!("synwall: reloaded {msg}");
        crate::plane::drop_in_background(std::mem::replace(&mut self.config, new));
        let mut ev = Event::reload(self.plane.wall(self.clock.now()), msg.clone());
        ev.by = Some(by.to_owned());
        self.emit(&[ev]);
        self.tick(&current.shards);
        Ok(msg)
    }

    /// The `status` reply: version, uptime, links and ports with rates,
    /// workers with their load, tick cost, customers.
    pub fn status_value(&self) -> Value {
        let workers: Vec<Value> = self
            .stats
            .iter()
            .zip(&self.config.dpdk.cores)
            .map(|(s, lcore)| {
                json!({
                    "lcore": lcore,
                    "rx": s.verdicts.rx.load(Relaxed),
                    "busy_ratio": s.busy_ratio(),
                    "generation": s.generation.load(Relaxed),
                })
            })
            .collect();
        let totals = FrameTotals::sum(self.stats.iter().map(|w| &**w));
        let frames: serde_json::Map<String, Value> = totals
            .verdicts
            .named()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            // The control loop answers only once ports are started and the
            // workers launched; before and after, the socket thread answers
            // `starting` / `stopping` (crate::socket::Dataplane).
            "state": Dataplane::Forwarding.state(),
            "dataplane": Dataplane::Forwarding.as_str(),
            "workers_polling": self.stalled_workers.is_empty(),
            "stalled_workers": self.stalled_workers.iter()
                .filter_map(|&w| self.config.dpdk.cores.get(w)).collect::<Vec<_>>(),
            "tick_running": !self.tick_stalled,
            "systemd": self.notifier.status_value(),
            "flowspec": self.flowspec.as_ref().map(|f| f.status_value()),
            "config": self.config.path.display().to_string(),
            "uptime_secs": self.started.elapsed().as_secs_f64(),
            "mode": self.config.control.mode.as_str(),
            "links": self.config.links.iter().map(|l| json!({
                "name": l.name, "inside": l.inside, "outside": l.outside, "queues": l.queues,
            })).collect::<Vec<_>>(),
            "ports": self.ports,
            "main_lcore": self.main_lcore,
            "workers": workers,
            "frames": frames,
            "customers": self.plane.customers(),
            "active_customers": self.plane.active(),
            "blocked_customers": self.gauges.blocked_customers.load(Relaxed),
            "tick_us": self.gauges.last_tick_us.load(Relaxed),
            "mempool": {
                "size": self.gauges.mempool_size.load(Relaxed),
                "in_use": self.gauges.mempool_in_use.load(Relaxed),
            },
            "ticks": self.gauges.ticks.load(Relaxed),
            "fleet": self.plane.fleet_view(),
            "generation": self.generation.load().number,
        })
    }
}

impl Operate for Control {
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

    fn reload(&mut self, by: &str) -> Result<String, String> {
        self.reload_config(by)
    }

    fn emit(&mut self, events: &[Event]) {
        Control::emit(self, events)
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
                self.plane.set_mode(c.id, mode).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// What a reload cannot change on a running appliance.
fn restart_needed(old: &Config, new: &Config) -> Option<&'static str> {
    if old.dpdk != new.dpdk {
        Some("[dpdk]")
    } else if old.links != new.links {
        Some("[[link]]")
    } else if old.detect.ports != new.detect.ports || old.detect.malformed != new.detect.malformed {
        Some("[detect] ports/malformed")
    } else if old.block.action != new.block.action || old.block.scope != new.block.scope {
        Some("[block] action/scope")
    } else if old.flowspec != new.flowspec {
        Some("[flowspec]")
    } else if old.control.state_dir != new.control.state_dir
        || old.control.events != new.control.events
    {
        Some("[control] state_dir/events")
    } else if old.fleet != new.fleet {
        // Floors and leases in hand were sized by the old split.
        Some("[fleet]")
    } else {
        None
    }
}
