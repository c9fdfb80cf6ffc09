//! The running appliance: EAL, ports, workers, and the main loop on the
//! main lcore that reads the workers' counters.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use synwall_config::{Config, Customer};
use synwall_dataplane::classify::{Classifier, ClassifierError};
use synwall_dataplane::dpdk::{
    self, DpdkError, Eal, Launched, LcoreId, Mempool, Port, PortConfig, RxQueue, TxQueue, BURST,
};
use synwall_dataplane::generation::{Generation, SharedGeneration};
use synwall_dataplane::parse::WatchedPorts;
use synwall_dataplane::shard::{WorkerShard, WorkerStats};
use synwall_dataplane::verdict::{BlockAction, BlockScope, MalformedPolicy, Policy};
use synwall_dataplane::worker::{Direction, Path, Worker};

use crate::summary::{PortSummary, Summary};

/// Why the appliance could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApplianceError {
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    #[error("building the customer table: {0}")]
    Classifier(#[from] ClassifierError),
    #[error("writing the summary to {path}: {source}")]
    Summary {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The dataplane policy the config describes.
pub fn policy(config: &Config) -> Policy {
    Policy {
        watched: WatchedPorts::new(&config.detect.ports),
        action: match config.block.action {
            synwall_config::BlockAction::Drop => BlockAction::Drop,
            synwall_config::BlockAction::Reset => BlockAction::Reset,
        },
        scope: match config.block.scope {
            synwall_config::BlockScope::Syn => BlockScope::Syn,
            synwall_config::BlockScope::Smtp => BlockScope::Smtp,
        },
        malformed: match config.detect.malformed {
            synwall_config::MalformedPolicy::Forward => MalformedPolicy::Forward,
            synwall_config::MalformedPolicy::Drop => MalformedPolicy::Drop,
        },
    }
}

/// The classifier over every customer's prefixes.
pub fn classifier(customers: &[Customer]) -> Result<Classifier, ClassifierError> {
    Classifier::build(
        customers.len(),
        customers
            .iter()
            .flat_map(|c| c.prefixes.iter().map(move |p| (p.addr, p.len, c.id))),
    )
}

/// The EAL argument vector: program name, the config's arguments, and the
/// core list (main lcore 0 plus the worker cores) unless the config maps
/// lcores to CPUs itself with `--lcores=`.
pub fn eal_argv(config: &Config) -> Vec<String> {
    let mut argv = vec!["synwall".to_owned()];
    argv.extend(config.dpdk.eal_args.iter().cloned());
    let has_cores = config
        .dpdk
        .eal_args
        .iter()
        .any(|a| a.starts_with("--lcores="));
    if !has_cores {
        let mut list = vec!["0".to_owned()];
        list.extend(config.dpdk.cores.iter().map(|c| c.to_string()));
        argv.push("-l".to_owned());
        argv.push(list.join(","));
    }
    argv
}

/// One port as opened, with where it sits.
struct OpenPort {
    port: Port,
    link: String,
    side: &'static str,
}

/// How the run ends.
pub struct RunOptions {
    /// Stop after this long (None: until a signal).
    pub duration: Option<Duration>,
    /// Print a stats line this often.
    pub stats_interval: Option<Duration>,
    /// Set by SIGINT/SIGTERM.
    pub stop: Arc<AtomicBool>,
}

/// Runs the appliance until `opts` says stop; returns the final counters.
pub fn run(config: &Config, opts: RunOptions) -> Result<Summary, ApplianceError> {
    let classifier = Arc::new(classifier(&config.customers)?);
    let policy = Arc::new(policy(config));
    let eal = Eal::init(&eal_argv(config))?;
    let result = run_with_eal(config, opts, classifier, policy);
    drop(eal);
    result
}

fn run_with_eal(
    config: &Config,
    opts: RunOptions,
    classifier: Arc<Classifier>,
    policy: Arc<Policy>,
) -> Result<Summary, ApplianceError> {
    let workers = config.dpdk.cores.len();
    let customers = config.customers.len();

    // Enough mbufs for every rx and tx ring, plus bursts in flight and the
    // per-lcore caches.
    let cache = 256u32;
    let mut mbufs: u32 = 0;
    for link in &config.links {
        let per_port =
            link.queues as u32 * link.rx_desc as u32 + workers as u32 * link.tx_desc as u32;
        mbufs += 2 * per_port;
    }
    mbufs += (workers as u32 + 1) * (cache + 4 * BURST as u32);
    let mbufs = (mbufs + 1).next_power_of_two() - 1;
    let pool = Arc::new(Mempool::new("synwall_mbufs", mbufs, cache, -1)?);

    // Ports, and for each worker its paths and tx queues.
    let mut ports: Vec<OpenPort> = Vec::new();
    let mut paths: Vec<Vec<Path>> = (0..workers).map(|_| Vec::new()).collect();
    let mut txs: Vec<Vec<TxQueue>> = (0..workers).map(|_| Vec::new()).collect();
    for link in &config.links {
        let cfg = PortConfig {
            rx_queues: link.queues,
            tx_queues: workers as u16,
            rx_desc: link.rx_desc,
            tx_desc: link.tx_desc,
        };
        let (inside, in_rx, in_tx) = Port::open(&link.inside, &cfg, pool.clone())?;
        let (outside, out_rx, out_tx) = Port::open(&link.outside, &cfg, pool.clone())?;
        // Each worker's tx vector gets [.., inside, outside] for this link.
        let base = txs.first().map_or(0, Vec::len);
        for (w, (ti, to)) in in_tx.into_iter().zip(out_tx).enumerate() {
            txs[w].push(ti);
            txs[w].push(to);
        }
        let assign = |paths: &mut Vec<Vec<Path>>, rxqs: Vec<RxQueue>, onward, back, direction| {
            for (q, rx) in rxqs.into_iter().enumerate() {
                paths[q % workers].push(Path {
                    rx,
                    tx_onward: onward,
                    tx_back: back,
                    direction,
                });
            }
        };
        assign(&mut paths, in_rx, base + 1, base, Direction::Outbound);
        assign(&mut paths, out_rx, base, base + 1, Direction::Inbound);
        ports.push(OpenPort {
            port: inside,
            link: link.name.clone(),
            side: "inside",
        });
        ports.push(OpenPort {
            port: outside,
            link: link.name.clone(),
            side: "outside",
        });
    }

    let generation: SharedGeneration = Generation::share(Generation::new(1, classifier, workers));
    let stats: Vec<Arc<WorkerStats>> = (0..workers)
        .map(|_| Arc::new(WorkerStats::default()))
        .collect();
    let shards: Vec<Arc<WorkerShard>> = generation.load().shards.clone();
    debug_assert!(shards.iter().all(|s| s.customers() == customers));
    // Operators' standing blocks from the config.
    for c in config.customers.iter().filter(|c| c.blocked) {
        for s in &shards {
            s.blocked.set(c.id, true);
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut launched: Vec<Launched> = Vec::new();
    let started = Instant::now();
    for (w, ((paths, tx), stats)) in paths.into_iter().zip(txs).zip(&stats).enumerate() {
        let worker = Worker {
            paths,
            tx,
            policy: policy.clone(),
            generation: generation.clone(),
            index: w,
            stats: stats.clone(),
            stop: stop.clone(),
        };
        let lcore = LcoreId(config.dpdk.cores[w] as u32);
        match dpdk::launch(lcore, move || worker.run()) {
            Ok(l) => launched.push(l),
            Err(e) => {
                stop.store(true, Relaxed);
                for l in launched {
                    let _ = l.wait();
                }
                return Err(e.into());
            }
        }
    }

    // The main loop: report once per stats interval until told to stop.
    let mut last = StatsSnapshot::take(&ports, &stats);
    let mut last_at = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if opts.stop.load(Relaxed) {
            break;
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if let Some(every) = opts.stats_interval {
            if last_at.elapsed() >= every {
                let now = StatsSnapshot::take(&ports, &stats);
                println!("{}", now.line(&last, last_at.elapsed()));
                last = now;
                last_at = Instant::now();
            }
        }
    }

    stop.store(true, Relaxed);
    let mut panicked = None;
    for l in launched {
        if let Err(e) = l.wait() {
            panicked = Some(e);
        }
    }
    let elapsed = started.elapsed();
    let port_summaries = ports
        .iter()
        .map(|p| PortSummary::new(&p.port, &p.link, p.side))
        .collect::<Result<Vec<_>, _>>()?;
    let summary = Summary::collect(config, elapsed, port_summaries, &stats, &shards, &pool);
    // Close the ports (net_pcap flushes its capture files here), then the pool.
    drop(ports);
    drop(pool);
    if let Some(e) = panicked {
        return Err(e.into());
    }
    Ok(summary)
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
        let syn_index = synwall_dataplane::parse::Outcome::WatchedSyn.index();
        let syn = shards
            .iter()
            .map(|s| s.outcomes[syn_index].load(Relaxed))
            .sum();
        let dropped = shards
            .iter()
            .map(|s| s.verdicts.dropped_blocked.load(Relaxed) + s.verdicts.reset_sent.load(Relaxed))
            .sum();
        StatsSnapshot {
            ports,
            syn,
            dropped,
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
