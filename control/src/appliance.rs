//! The running appliance: EAL, ports, workers, and the main loop on the
//! main lcore that reads the workers' counters.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use synwall_config::{Config, LcoreChoice};
use synwall_dataplane::classify::ClassifierError;
use synwall_dataplane::generation::{Generation, SharedGeneration};
use synwall_dataplane::parse::Outcome;
use synwall_dataplane::shard::{FrameTotals, WorkerStats};
use synwall_dpdk::{
    DpdkError, Eal, Launched, Mempool, Port, PortConfig, PortStats, RxQueue, TxQueue, BURST,
};

use crossbeam::channel::Receiver;

use crate::control_thread::{ControlThread, Gauges, MonoClock, PortStatus, Start};
use crate::hook::HookRunner;
use crate::metrics::MetricsServer;
use crate::notify::{Liveness, Notifier};
use crate::setup::{placed_classifier, policy, worker_nodes};
use crate::socket::{ControlSocket, Dataplane, Request, SocketError, SocketOptions};
use crate::state_lock::{LockError, StateLock};
use crate::summary::{MempoolSummary, PortSummary, Summary};
use crate::worker::{Direction, RxPath, Worker};
use synwall_engine::event::{wall_now_ms, Event, EventKind, EventLog};
use synwall_engine::plane::ControlPlane;
use synwall_engine::snapshot;

/// Why the appliance could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApplianceError {
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    #[error("building the customer table: {0}")]
    Classifier(#[from] ClassifierError),
    #[error("{0} (start with --fresh-state to ignore it and start with no saved state)")]
    Snapshot(#[from] synwall_engine::snapshot::SnapshotError),
    #[error(transparent)]
    EventLog(#[from] synwall_engine::event::EventLogError),
    #[error(transparent)]
    Dir(#[from] synwall_engine::dirs::DirError),
    #[error(transparent)]
    Lock(#[from] crate::state_lock::LockError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("metrics listener on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// A net_pcap device replaying forever could not hold its capture.
    #[error("{source}: {hint}")]
    ReplayPool { source: DpdkError, hint: String },
    #[error("the EAL chose lcore {eal} as its main lcore, where the config expected lcore {config} (dpdk.eal_args and dpdk.cores); name it with --main-lcore")]
    MainLcore { config: usize, eal: u32 },
    #[error("{TEST_STOP_WORKER}={value:?}: {why} (a test hook: INDEX:SECS, worker INDEX stops polling SECS seconds after forwarding starts)")]
    TestHook { value: String, why: String },
    #[error("starting the FlowSpec speaker thread: {0}")]
    Flowspec(std::io::Error),
}

/// The EAL argument vector: program name, the config's arguments, and,
/// unless those choose the lcores themselves (`-l`, `-c`, `--lcores`; the
/// config checked them against `dpdk.cores`), the core list: the main
/// lcore, then the worker cores.
pub fn eal_argv(config: &Config) -> Vec<String> {
    let mut argv = vec!["synwall".to_owned()];
    argv.extend(config.dpdk.eal_args.iter().cloned());
    if config.dpdk.lcores == LcoreChoice::Synwall {
        let mut list = vec![config.dpdk.main_lcore.to_string()];
        list.extend(config.dpdk.cores.iter().map(|c| c.to_string()));
        argv.push("-l".to_owned());
        argv.push(list.join(","));
    }
    argv
}

/// The test hook that wedges a worker: `INDEX:SECS` makes worker INDEX
/// (0-based, in `dpdk.cores` order) stop polling SECS seconds after the
/// appliance reached `forwarding`, so a test can see the watchdog withheld.
/// Never set it in production.
pub const TEST_STOP_WORKER: &str = "SYNWALL_TEST_STOP_WORKER";

/// Reads [`TEST_STOP_WORKER`]: which worker to stop, and when.
fn test_stop_worker(workers: usize) -> Result<Option<(usize, Duration)>, ApplianceError> {
    let Some(value) = std::env::var_os(TEST_STOP_WORKER) else {
        return Ok(None);
    };
    let value = value.to_string_lossy().into_owned();
    let fail = |why: &str| ApplianceError::TestHook {
        value: value.clone(),
        why: why.to_owned(),
    };
    let (index, secs) = value.split_once(':').ok_or_else(|| fail("no ':'"))?;
    let index: usize = index
        .trim()
        .parse()
        .map_err(|_| fail("INDEX is not a number"))?;
    if index >= workers {
        return Err(fail(&format!("there are {workers} workers")));
    }
    let secs: f64 = secs
        .trim()
        .parse()
        .map_err(|_| fail("SECS is not a number"))?;
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(fail("SECS must be 0 or more"));
    }
    Ok(Some((index, Duration::from_secs_f64(secs))))
}

/// One port as opened, with where it sits.
struct OpenPort {
    port: Port,
    link: String,
    side: &'static str,
}

impl OpenPort {
    /// The port, where it sits, and `stats`.
    fn summary(&self, stats: PortStats) -> PortSummary {
        PortSummary {
            name: self.port.name().to_owned(),
            link: self.link.clone(),
            side: self.side.to_owned(),
            stats,
        }
    }
}

/// How the run starts and ends.
pub struct RunOptions {
    /// Ignore an unreadable snapshot (and say so) instead of refusing to start.
    pub fresh_state: bool,
    /// Set by SIGHUP: reload the config.
    pub reload: Arc<AtomicBool>,
    /// Stop after this long (None: until a signal).
    pub duration: Option<Duration>,
    /// Print a stats line this often.
    pub stats_interval: Option<Duration>,
    /// Set by SIGINT/SIGTERM.
    pub stop: Arc<AtomicBool>,
}

/// Runs the appliance until `opts` says stop; returns the final counters.
pub fn run(config: &Config, opts: RunOptions) -> Result<Summary, ApplianceError> {
    pin_housekeeping(&config.dpdk.main_cpus);
    // Everything that can be refused is checked before the EAL starts.
    let classifier = Arc::new(placed_classifier(config)?);
    let policy = Arc::new(policy(config));
    let clock = MonoClock::start();
    let mut plane = ControlPlane::new(config, clock.now(), wall_now_ms());
    plane.connect_fleet(std::sync::Arc::new(synwall_fleet::Redis));
    // Held until the run ends: a second synwall on this state dir refuses.
    let _lock = lock_state_dir(&config.control.state_dir)?;
    let mut restored = None;
    match snapshot::load_latest(&config.control.state_dir, wall_now_ms()) {
        Ok(Some(found)) => {
            let n = plane.restore(&found.snapshot, clock.now());
            plane.restored_counts_are_floor_spend(clock.now());
            let msg = if found.previous {
                format!(
                    "restored state of {n} customers from {} ({} is missing: the snapshot before it is used)",
                    found.path.display(),
                    snapshot::STATE_FILE
                )
            } else {
                format!(
                    "restored state of {n} customers from {}",
                    config.control.state_dir.display()
                )
            };
            crate::console::out(format!("synwall: {msg}"));
            let mut ev = Event::new(EventKind::Restore, plane.wall(clock.now()));
            ev.reason = Some(msg);
            restored = Some(ev);
        }
        Ok(None) => {}
        Err(e) if opts.fresh_state => {
            crate::console::err(format!(
                "synwall: {e}; starting with no saved state (--fresh-state)"
            ));
        }
        Err(e) => return Err(e.into()),
    }
    // Lifetime totals restored from the snapshot: the summary reports this
    // run's counts, so remember where each customer started.
    let now = clock.now();
    let baseline: HashMap<String, (u64, u64)> = plane
        .recorded()
        .into_iter()
        .filter_map(|id| plane.customer_view(id, now))
        .filter(|v| v.seen > 0)
        .map(|v| (v.name, (v.seen, v.forwarded)))
        .collect();
    let events = EventLog::open(&config.control.events)?;
    let mut control = ControlThread::new(Start {
        config: config.clone(),
        plane,
        events,
        clock,
        baseline,
        generation: Generation::share(Generation::on_nodes(
            1,
            classifier.clone(),
            policy.clone(),
            worker_nodes(config),
        )),
        classifier,
        hooks: config.control.hook.clone().map(|hook| match std::env::current_exe() {
            Ok(exe) => HookRunner::supervised(hook, exe),
            Err(e) => {
                crate::console::err(format!("synwall: cannot find its own binary to supervise hooks ({e}); a hook's children that leave its process group may outlive its timeout"));
                HookRunner::new(hook)
            }
        }),
        notifier: Notifier::from_env(),
        flowspec: match &config.flowspec {
            Some(f) => Some(
                crate::flowspec::FlowspecSpeaker::start(f.clone())
                    .map_err(ApplianceError::Flowspec)?,
            ),
            None => None,
        },
    });
    if let Some(ev) = restored {
        control.emit(&[ev]);
    }
    let metrics_server = match (config.control.metrics_listen, control.metrics()) {
        (Some(addr), Some(registry)) => Some(
            MetricsServer::start(addr, registry.clone())
                .map_err(|source| ApplianceError::Metrics { addr, source })?,
        ),
        _ => None,
    };
    if let Some(dir) = config.control.socket.parent() {
        synwall_engine::dirs::prepare("socket", dir)?;
    }
    // Bound before the EAL starts, so an operator sees a starting appliance
    // (`status` says `"dataplane": "starting"`) rather than none.
    let (socket, requests) = ControlSocket::bind_with(
        &config.control.socket,
        SocketOptions {
            mode: config.control.socket_mode,
            group: config.control.socket_group.clone(),
            dataplane: Dataplane::Starting,
            ..SocketOptions::default()
        },
    )?;
    // What the EAL serves (pool, ports, lcores) holds a share of it: the
    // EAL is cleaned up after the last of them, whatever order they go in.
    let eal = Eal::init(&eal_argv(config))?;
    let result = run_with_eal(&eal, control, config, opts, &socket, &requests);
    drop(metrics_server);
    result
}

/// Pins this thread to the main lcore's CPU before synwall makes any
/// other: every thread made from here on (socket, metrics, hooks and their
/// programs, FlowSpec, the fleet's links, a reload's classifier build, the
/// EAL's own control threads) inherits it, so none lands on a poll-mode
/// core. The EAL pins each worker lcore's thread to its own CPUs itself.
/// `core_affinity` takes one CPU: of a main lcore mapped to several
/// (`--lcores 0@(0,4)`), the first.
fn pin_housekeeping(cpus: &[usize]) {
    let Some(&cpu) = cpus.first() else { return };
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        crate::console::err(format!(
            "synwall: could not pin the control plane's threads to CPU {cpu} (the main lcore's); they may run on worker cores"
        ));
    }
}

/// Checks and creates the state directory and takes its lock. A
/// directory others can write, or a lock another synwall holds, stops the
/// start; a directory that cannot be created or locked (a read-only disk,
/// a file in its place) is reported and the run goes on without the lock:
/// the snapshot code then reports (and `--fresh-state` decides) as before.
fn lock_state_dir(dir: &std::path::Path) -> Result<Option<StateLock>, ApplianceError> {
    let unlocked = |e: &dyn std::fmt::Display| {
        crate::console::err(format!(
            "synwall: {e}; running without the state directory's lock"
        ));
        Ok(None)
    };
    match synwall_engine::dirs::prepare("state", dir) {
        Ok(()) => {}
        Err(e @ synwall_engine::dirs::DirError::Unsafe { .. }) => return Err(e.into()),
        Err(e) => return unlocked(&e),
    }
    match StateLock::take(dir) {
        Ok(lock) => Ok(Some(lock)),
        Err(e @ LockError::Held { .. }) => Err(e.into()),
        Err(e) => unlocked(&e),
    }
}

/// Registers synwall's DPDK telemetry commands and, when the EAL runs with
/// multi-process support, packet capture for `dpdk-dumpcap`. Failures are
/// reported, never fatal.
fn register_ecosystem(
    eal: &Eal,
    config: &Config,
    stats: &[Arc<WorkerStats>],
    gauges: &Arc<Gauges>,
) {
    let workers = stats.to_vec();
    let gauges = gauges.clone();
    let source = Box::new(move || {
        let totals = FrameTotals::sum(workers.iter().map(|w| &**w));
        let mut out: Vec<(String, u64)> = Vec::new();
        out.extend(totals.verdicts.named().map(|(k, v)| (k.to_owned(), v)));
        out.extend(Outcome::all().map(|o| (o.name().to_owned(), totals.outcome(o))));
        out.push((
            "blocked_customers".into(),
            gauges.blocked_customers.load(Relaxed),
        ));
        out.push((
            "active_customers".into(),
            gauges.active_customers.load(Relaxed),
        ));
        out.push(("last_tick_us".into(), gauges.last_tick_us.load(Relaxed)));
        out.push(("ticks".into(), gauges.ticks.load(Relaxed)));
        out.push(("mempool_size".into(), gauges.mempool_size.load(Relaxed)));
        out.push(("mempool_in_use".into(), gauges.mempool_in_use.load(Relaxed)));
        out
    });
    if let Err(e) = eal.register_telemetry(
        "/synwall/stats",
        "synwall frame outcomes, verdicts and control-plane gauges",
        source,
    ) {
        crate::console::err(format!("synwall: DPDK telemetry unavailable: {e}"));
    }
    let single_process = config
        .dpdk
        .eal_args
        .iter()
        .any(|a| a == "--no-shconf" || a == "--in-memory");
    if !single_process {
        if let Err(e) = eal.enable_capture() {
            crate::console::err(format!(
                "synwall: packet capture (dpdk-dumpcap) unavailable: {e}"
            ));
        }
    }
}

fn run_with_eal(
    eal: &Eal,
    mut control: ControlThread,
    config: &Config,
    opts: RunOptions,
    socket: &ControlSocket,
    requests: &Receiver<Request>,
) -> Result<Summary, ApplianceError> {
    // The control plane runs here, on the main lcore; the config chose it
    // by DPDK's rule, so a worker can never be launched onto it.
    let main = eal.main_lcore().get();
    if main as usize != config.dpdk.main_lcore {
        return Err(ApplianceError::MainLcore {
            config: config.dpdk.main_lcore,
            eal: main,
        });
    }
    control.attach(main, eal.tsc_hz(), socket.events().clone());
    control.attach_history();
    let stop_worker = test_stop_worker(config.dpdk.cores.len())?;

    let (mbufs, cache) = pool_size(config);
    let pool = Arc::new(Mempool::new(eal, "synwall_mbufs", mbufs, cache, -1)?);
    let Wiring { ports, paths, txs } = Wiring::open(eal, config, &pool)?;

    let generation: SharedGeneration = control.generation().clone();
    let stats: Vec<Arc<WorkerStats>> = control.stats().to_vec();
    debug_assert!(generation
        .load()
        .shards
        .iter()
        .all(|s| s.customers() == config.customers.len()));
    // Grants and block bits are in place before the first frame.
    control.tick_current();

    register_ecosystem(eal, config, &stats, control.gauges());

    // What the rx rings hold before any frame: a leak shows as more at the end.
    let in_use_at_start = pool.in_use();
    let gauges = control.gauges().clone();
    gauges.mempool_size.store(u64::from(pool.size()), Relaxed);
    gauges
        .mempool_in_use
        .store(u64::from(in_use_at_start), Relaxed);
    let started = Instant::now();
    let workers = Workers::launch(eal, config, &generation, &stats, paths, txs)?;

    let served = Served {
        socket,
        requests,
        ports: &ports,
        pool: &pool,
        stats: &stats,
        workers: &workers,
    };
    main_loop(&mut control, &opts, &served, stop_worker, started);

    socket.set_dataplane(Dataplane::Stopping);
    let line = control.status_line("stopping");
    control.notifier().stopping(&line);
    let stopped = workers.stop_and_wait();
    let elapsed = started.elapsed();
    // The workers are stopped: a reload under way is finished, and a last
    // tick takes every counted SYN.
    control.settle_reload();
    control.tick_current();
    control.save();
    control.finish_history();
    let port_summaries = ports
        .iter()
        .map(port_summary)
        .collect::<Result<Vec<_>, _>>()?;
    let summary = control.summary(
        elapsed,
        port_summaries,
        MempoolSummary {
            size: pool.size(),
            in_use: pool.in_use(),
            in_use_at_start,
        },
    );
    // The ports close when they go out of scope (net_pcap flushes its
    // capture files then), the pool after the last port that holds it.
    stopped?;
    Ok(summary)
}

/// The ports of every link, opened and started, and what each worker
/// polls (its rx paths) and sends on (its tx queues: two per link,
/// `[.., inside, outside]`).
struct Wiring {
    ports: Vec<OpenPort>,
    paths: Vec<Vec<RxPath>>,
    txs: Vec<Vec<TxQueue>>,
}

impl Wiring {
    /// Opens both ports of every link, one tx queue per worker on each,
    /// and deals each port's rx queues out to the workers in turn.
    fn open(eal: &Eal, config: &Config, pool: &Arc<Mempool>) -> Result<Wiring, ApplianceError> {
        let workers = config.dpdk.cores.len();
        let mut wiring = Wiring {
            ports: Vec::new(),
            paths: (0..workers).map(|_| Vec::new()).collect(),
            txs: (0..workers).map(|_| Vec::new()).collect(),
        };
        for link in &config.links {
            let cfg = PortConfig {
                rx_queues: link.queues,
                tx_queues: workers as u16,
                rx_desc: link.rx_desc,
                tx_desc: link.tx_desc,
            };
            let open = |name: &str| {
                Port::open(eal, name, &cfg, pool.clone())
                    .map_err(|e| explain_port_error(config, name, pool, e))
            };
            let (inside, in_rx, in_tx) = open(&link.inside)?;
            let (outside, out_rx, out_tx) = open(&link.outside)?;
            let base = wiring.txs.first().map_or(0, Vec::len);
            for (w, (ti, to)) in in_tx.into_iter().zip(out_tx).enumerate() {
                wiring.txs[w].push(ti);
                wiring.txs[w].push(to);
            }
            wiring.assign(in_rx, base + 1, base, Direction::Outbound);
            wiring.assign(out_rx, base, base + 1, Direction::Inbound);
            for (port, side) in [(inside, "inside"), (outside, "outside")] {
                wiring.ports.push(OpenPort {
                    port,
                    link: link.name.clone(),
                    side,
                });
            }
        }
        Ok(wiring)
    }

    /// Rx queue `q` of a port to worker `q % workers`, forwarding onward
    /// on tx slot `onward` and answering (RSTs) on `back`.
    fn assign(&mut self, rxqs: Vec<RxQueue>, onward: usize, back: usize, direction: Direction) {
        let workers = self.paths.len();
        for (q, rx) in rxqs.into_iter().enumerate() {
            self.paths[q % workers].push(RxPath {
                rx,
                tx_onward: onward,
                tx_back: back,
                direction,
            });
        }
    }
}

/// The workers, launched on their lcores, and the flags that stop them.
struct Workers {
    /// One per worker: shutdown sets them all, the test hook one.
    stops: Vec<Arc<AtomicBool>>,
    launched: Vec<Launched>,
}

impl Workers {
    /// Launches worker `w` (its `paths` and `txs`) on lcore
    /// `dpdk.cores[w]`; if one cannot be launched, stops those that were.
    fn launch(
        eal: &Eal,
        config: &Config,
        generation: &SharedGeneration,
        stats: &[Arc<WorkerStats>],
        paths: Vec<Vec<RxPath>>,
        txs: Vec<Vec<TxQueue>>,
    ) -> Result<Workers, ApplianceError> {
        let mut workers = Workers {
            stops: (0..stats.len())
                .map(|_| Arc::new(AtomicBool::new(false)))
                .collect(),
            launched: Vec::new(),
        };
        for (w, ((paths, tx), stats)) in paths.into_iter().zip(txs).zip(stats).enumerate() {
            let worker = Worker {
                paths,
                tx,
                generation: generation.clone(),
                index: w,
                stats: stats.clone(),
                stop: workers.stops[w].clone(),
                judge: Default::default(),
            };
            let lcore = eal.lcore(config.dpdk.cores[w] as u32);
            match lcore.and_then(|lcore| eal.launch(lcore, move || worker.run())) {
                Ok(l) => workers.launched.push(l),
                Err(e) => {
                    let _ = workers.stop_and_wait();
                    return Err(e.into());
                }
            }
        }
        Ok(workers)
    }

    /// Stops worker `w` alone (the test hook).
    fn stop(&self, w: usize) {
        if let Some(s) = self.stops.get(w) {
            s.store(true, Relaxed);
        }
    }

    /// Stops every worker and waits for each; the error of the last one
    /// that panicked.
    fn stop_and_wait(self) -> Result<(), DpdkError> {
        for s in &self.stops {
            s.store(true, Relaxed);
        }
        let mut result = Ok(());
        for l in self.launched {
            if let Err(e) = l.wait() {
                result = Err(e);
            }
        }
        result
    }
}

/// What the main loop serves and reads besides the control thread.
struct Served<'a> {
    socket: &'a ControlSocket,
    requests: &'a Receiver<Request>,
    ports: &'a [OpenPort],
    pool: &'a Mempool,
    stats: &'a [Arc<WorkerStats>],
    workers: &'a Workers,
}

/// The main loop on the main lcore, from the workers' launch until `opts`
/// says stop: requests, ticks, snapshots, port counters, readiness and
/// liveness, stats lines.
fn main_loop(
    control: &mut ControlThread,
    opts: &RunOptions,
    served: &Served,
    stop_worker: Option<(usize, Duration)>,
    started: Instant,
) {
    let gauges = control.gauges().clone();
    let mut startup = Startup {
        liveness: Liveness::new(served.stats, gauges.ticks.load(Relaxed)),
        forwarding_since: None,
        waiting_said: false,
        worker_stopped: false,
        last_status: Instant::now(),
        stop_worker,
        started,
    };
    let mut last = StatsSnapshot::take(served.ports, served.stats);
    let mut last_at = Instant::now();
    let mut next_tick = Instant::now() + control.config().control.tick;
    let mut next_save = Instant::now() + control.config().control.snapshot_interval;
    control.set_ports(refresh_ports(served.ports, &[], Duration::ZERO));
    let mut last_ports = Instant::now();
    loop {
        let nap = if control.handing_over() {
            HAND_OVER_POLL
        } else {
            Duration::from_millis(10)
        };
        let wake = next_tick.min(Instant::now() + nap);
        wait_for_request(served.requests, wake);
        if opts.stop.load(Relaxed) {
            break;
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if opts.reload.swap(false, Relaxed) {
            control.start_reload(None);
        }
        control.serve(served.requests);
        if Instant::now() >= next_tick {
            control.tick_current();
            next_tick += control.config().control.tick;
            if next_tick < Instant::now() {
                next_tick = Instant::now() + control.config().control.tick;
            }
        }
        if Instant::now() >= next_save {
            control.save();
            next_save = Instant::now() + control.config().control.snapshot_interval;
        }
        if last_ports.elapsed() >= Duration::from_secs(1) {
            let fresh = refresh_ports(served.ports, control.ports(), last_ports.elapsed());
            control.set_ports(fresh);
            last_ports = Instant::now();
            gauges
                .mempool_in_use
                .store(u64::from(served.pool.in_use()), Relaxed);
            control.update_metrics();
            control.report_history_damage();
        }
        startup.check(control, served, gauges.ticks.load(Relaxed));
        if let Some(every) = opts.stats_interval {
            if last_at.elapsed() >= every {
                let now = StatsSnapshot::take(served.ports, served.stats);
                crate::console::out(now.line(&last, last_at.elapsed()));
                last = now;
                last_at = Instant::now();
            }
        }
    }
}

/// Naps until `deadline`, or until a request arrives: a request is served
/// at once, not after the nap (1,000 requests pipelined on one connection
/// took 10 s when each waited for the 10 ms nap).
fn wait_for_request(requests: &Receiver<Request>, deadline: Instant) {
    let mut select = crossbeam::channel::Select::new();
    select.recv(requests);
    // Ready also when the socket server is gone: nap out the rest then.
    if select.ready_deadline(deadline).is_ok() && requests.is_empty() {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    }
}

/// Whether the appliance is forwarding yet, and once it is, the workers'
/// liveness and systemd's status line.
struct Startup {
    liveness: Liveness,
    /// Since every worker has polled (ports started, workers launched):
    /// `status` says forwarding, systemd has heard READY=1.
    forwarding_since: Option<Instant>,
    waiting_said: bool,
    worker_stopped: bool,
    last_status: Instant,
    stop_worker: Option<(usize, Duration)>,
    started: Instant,
}

impl Startup {
    fn check(&mut self, control: &mut ControlThread, served: &Served, ticks: u64) {
        match self.forwarding_since {
            None if self.liveness.all_polled() => {
                self.liveness.check(ticks, Duration::MAX);
                served.socket.set_dataplane(Dataplane::Forwarding);
                self.forwarding_since = Some(Instant::now());
                let line = control.status_line("forwarding");
                control.notifier().ready(&line);
                self.last_status = Instant::now();
                crate::console::out(
                    "synwall: forwarding (every port started, every worker polling)",
                );
            }
            None => {
                if !self.waiting_said && self.started.elapsed() >= Duration::from_secs(10) {
                    self.waiting_said = true;
                    crate::console::err(
                        "synwall: still starting: not every worker has polled its queues after 10 s",
                    );
                }
            }
            Some(since) => {
                if let Some((w, after)) = self.stop_worker.filter(|_| !self.worker_stopped) {
                    if since.elapsed() >= after {
                        self.worker_stopped = true;
                        crate::console::err(format!(
                            "synwall: {TEST_STOP_WORKER}: worker {w} stops polling now"
                        ));
                        served.workers.stop(w);
                    }
                }
                if self.liveness.checked.elapsed() >= control.notifier().check_period()
                    && control.check_liveness(&mut self.liveness)
                {
                    self.last_status = Instant::now();
                }
                if self.last_status.elapsed() >= STATUS_EVERY {
                    let line = control.status_line("forwarding");
                    control.notifier().status(&line);
                    self.last_status = Instant::now();
                }
            }
        }
    }
}

/// A port's final counters.
fn port_summary(p: &OpenPort) -> Result<PortSummary, DpdkError> {
    Ok(p.summary(p.port.stats()?))
}

/// The main loop's nap while a reload hands over: a worker that has moved
/// to the new generation forwards nothing on its new allowances until the
/// loop sees the move (the busy-wait before the hand-over saw it at once).
const HAND_OVER_POLL: Duration = Duration::from_micros(20);

/// How often systemd's `STATUS=` line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// `e`, from opening port `name`, with a hint where the cause is known: an
/// rx queue that net_pcap refuses (EINVAL) in `infinite_rx` mode is, most
/// likely, a capture with more frames than the pool has mbufs.
fn explain_port_error(config: &Config, name: &str, pool: &Mempool, e: DpdkError) -> ApplianceError {
    let refused_rx = matches!(&e, DpdkError::Call { op, errno, .. }
        if op.starts_with("rte_eth_rx_queue_setup") && *errno == nix::errno::Errno::EINVAL as i32);
    let Some(args) = vdev_args(&config.dpdk.eal_args, name).filter(|_| refused_rx) else {
        return e.into();
    };
    let params: Vec<(&str, &str)> = args
        .split(',')
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .collect();
    if !params
        .iter()
        .any(|&(k, v)| k == "infinite_rx" && v.trim() != "0")
    {
        return e.into();
    }
    let captures: Vec<&str> = params
        .iter()
        .filter(|(k, _)| *k == "rx_pcap")
        .map(|&(_, v)| v)
        .collect();
    let counted: Option<Vec<(&str, usize)>> = captures
        .iter()
        .map(|&path| {
            synwall_dataplane::pcap::read_pcap(path)
                .ok()
                .map(|f| (path, f.len()))
        })
        .collect();
    let need = pool_need(config);
    let (frames, suggest) = match counted.filter(|c| !c.is_empty()) {
        Some(counts) => {
            let total: usize = counts.iter().map(|c| c.1).sum();
            let each = counts
                .iter()
                .map(|(path, n)| format!("{path} holds {n} frames"))
                .collect::<Vec<_>>()
                .join(", ");
            (
                format!(": {each}"),
                format!(", e.g. dpdk.mbufs = {}", total as u64 + u64::from(need)),
            )
        }
        None => (String::new(), String::new()),
    };
    let hint = format!(
        "{name} replays its capture forever (infinite_rx=1), which keeps every frame of it \
         in the packet pool at once, and the pool has {} mbufs{frames}; set dpdk.mbufs to at \
         least the capture's frames plus {need} (what the rings, bursts and caches take){suggest}",
        pool.size()
    );
    ApplianceError::ReplayPool { source: e, hint }
}

/// The device arguments (`net_pcap0,rx_pcap=...`) of `--vdev` device `name`
/// in the EAL arguments, given as `--vdev=ARGS` or `--vdev ARGS`.
fn vdev_args<'a>(eal_args: &'a [String], name: &str) -> Option<&'a str> {
    let mut it = eal_args.iter();
    while let Some(a) = it.next() {
        let value = match a.strip_prefix("--vdev=") {
            Some(v) => Some(v),
            None if a == "--vdev" => it.next().map(String::as_str),
            None => None,
        };
        if let Some(v) = value {
            if v.split(',').next() == Some(name) {
                return Some(v);
            }
        }
    }
    None
}

/// What the rx and tx rings, the bursts in flight and the per-lcore caches
/// take of the packet pool.
fn pool_need(config: &Config) -> u32 {
    let workers = config.dpdk.cores.len() as u32;
    let mut need: u32 = 0;
    for link in &config.links {
        let per_port = link.queues as u32 * link.rx_desc as u32 + workers * link.tx_desc as u32;
        need = need.saturating_add(2 * per_port);
    }
    need.saturating_add((workers + 1) * (POOL_CACHE + 4 * BURST as u32))
}

/// The per-lcore mbuf cache of the packet pool.
const POOL_CACHE: u32 = 256;

/// The packet pool's size and per-lcore cache: `dpdk.mbufs` if set, else
/// enough for every rx and tx ring, the bursts in flight and the caches. A
/// set size below that is allowed (a vdev has no rings to fill) but warned
/// about: rx then runs short of mbufs, which the ports count as `rx_nombuf`.
fn pool_size(config: &Config) -> (u32, u32) {
    let cache = POOL_CACHE;
    let need = pool_need(config);
    match config.dpdk.mbufs {
        None => ((need.saturating_add(1)).next_power_of_two() - 1, cache),
        Some(n) => {
            if n < need {
                crate::console::err(format!(
                    "synwall: warning: dpdk.mbufs = {n} is below the {need} that the rings, bursts and caches need; receiving will run short of mbufs (counted per port as rx_nombuf)"
                ));
            }
            // DPDK wants a cache of at most 2/3 of the pool; an eighth keeps
            // most mbufs shared between lcores.
            (n, cache.min(n / 8))
        }
    }
}

/// Every port's counters and link state, with rates over `dt` since
/// `before` (zero, or no port before: rates 0).
fn refresh_ports(ports: &[OpenPort], before: &[PortStatus], dt: Duration) -> Vec<PortStatus> {
    let secs = dt.as_secs_f64();
    ports
        .iter()
        .zip(before.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(p, before)| {
            let s = p.port.stats().unwrap_or_default();
            let link = p.port.link().ok();
            let rate = |now: u64, then: Option<u64>| match then {
                Some(t) if secs > 0.0 => now.saturating_sub(t) as f64 / secs,
                _ => 0.0,
            };
            PortStatus {
                port: p.summary(s),
                link_up: link.is_some_and(|l| l.up),
                speed_mbps: link.map_or(0, |l| l.speed_mbps),
                rx_pps: rate(s.rx_packets, before.map(|b| b.port.stats.rx_packets)),
                tx_pps: rate(s.tx_packets, before.map(|b| b.port.stats.tx_packets)),
                rx_bps: 8.0 * rate(s.rx_bytes, before.map(|b| b.port.stats.rx_bytes)),
                tx_bps: 8.0 * rate(s.tx_bytes, before.map(|b| b.port.stats.tx_bytes)),
            }
        })
        .collect()
}

/// Counters at one instant, for the once-a-second line.
struct StatsSnapshot {
    ports: Vec<(String, u64, u64)>,
    syn: u64,
    dropped: u64,
}

impl StatsSnapshot {
    fn take(ports: &[OpenPort], shards: &[Arc<WorkerStats>]) -> Self {
        let ports = ports
            .iter()
            .map(|p| {
                let s = p.port.stats().unwrap_or_default();
                (format!("{}/{}", p.link, p.side), s.rx_packets, s.tx_packets)
            })
            .collect();
        let totals = FrameTotals::sum(shards.iter().map(|s| &**s));
        StatsSnapshot {
            ports,
            syn: totals.outcome(Outcome::WatchedSyn),
            dropped: totals.verdicts.dropped_blocked + totals.verdicts.reset_sent,
        }
    }

    fn line(&self, before: &StatsSnapshot, dt: Duration) -> String {
        let secs = dt.as_secs_f64().max(1e-9);
        let mut out = String::new();
        for ((name, rx, tx), (_, rx0, tx0)) in self.ports.iter().zip(&before.ports) {
            out.push_str(&format!(
                "{name} rx {:.3} tx {:.3} Mpps | ",
                (rx - rx0) as f64 / secs / 1e6,
                (tx - tx0) as f64 / secs / 1e6
            ));
        }
        out.push_str(&format!(
            "syn {} (+{}) blocked {} (+{})",
            self.syn,
            self.syn - before.syn,
            self.dropped,
            self.dropped - before.dropped
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(eal_args: &str, cores: &str) -> Config {
        let text = format!(
            "[dpdk]\neal_args = [{eal_args}]\ncores = [{cores}]\n\
             [[link]]\ninside = \"a\"\noutside = \"b\"\n"
        );
        Config::from_str(&text, std::path::Path::new("/nonexistent/synwall.toml")).unwrap()
    }

    #[test]
    fn eal_argv_adds_the_core_list_only_when_eal_args_give_none() {
        let argv = eal_argv(&config(r#""--no-pci""#, "1, 2"));
        assert_eq!(argv, ["synwall", "--no-pci", "-l", "0,1,2"]);
        let argv = eal_argv(&config(r#""--main-lcore", "2""#, "0, 1"));
        assert_eq!(argv, ["synwall", "--main-lcore", "2", "-l", "2,0,1"]);
        for args in [r#""-l", "0-3""#, r#""-l0-3""#, r#""-c", "0xf""#] {
            let c = config(args, "1, 3");
            let argv = eal_argv(&c);
            let n = argv.iter().filter(|a| a.starts_with("-l")).count();
            assert_eq!(n, usize::from(!args.contains("-c")), "{argv:?}");
            assert_eq!(argv.len(), 1 + c.dpdk.eal_args.len(), "{argv:?}");
        }
        let argv = eal_argv(&config(r#""--lcores=0@0,1@0""#, "1"));
        assert_eq!(argv, ["synwall", "--lcores=0@0,1@0"]);
    }
}
