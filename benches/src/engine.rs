//! The generator's own dataplane, on the safe DPDK layer. The ports have
//! one or more tx/rx queue pairs ("lanes"); each lane is driven by its own
//! lcore (tx and rx in one loop) or by two (a tx lcore and an rx lcore).
//! A tx loop fills bursts of fresh mbufs (one `rte_pktmbuf_alloc_bulk` per
//! burst) from pre-built frames and sends them, TSC-paced at its share of
//! the asked rate (or as fast as it can); an rx loop counts what arrives,
//! classifies SYNs to the profile's customers and reads the timestamps of
//! latency probes. The trace's flows are spread over the lanes by a hash of
//! their addresses and ports, so one flow always leaves on the same queue.
//!
//! Counters have one writer each (the lcore that owns them; tx and rx
//! counters sit on separate cache lines) and are read by the main lcore,
//! which sums the lanes once a second, as in synwall's own workers. Nothing
//! in the loops allocates, locks or makes a syscall.
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::{parse, Outcome, WatchedPorts};
use synwall_dataplane::shard::add;
use synwall_dpdk::{
    tsc_now, DpdkError, Eal, Launched, Mbuf, MbufBurst, Mempool, Port, PortConfig, RxQueue,
    TxQueue, BURST,
};

use crate::profile::{Lane, Prefix, Profile};

/// The name of the loop device `ndr` calibrates on (`net_ring` with no
/// arguments: what is sent on queue q is received on queue q).
pub const CALIBRATION_PORT: &str = "net_ring_swgcal";

/// Marks a latency probe: 8 bytes at [`PROBE_OFFSET`], then the TSC.
const PROBE_MAGIC: [u8; 8] = *b"SWGPROBE";
/// Ethernet 14 + IPv4 20 + UDP 8.
const PROBE_OFFSET: usize = 42;
/// A template frame that is no customer's watched SYN.
pub const NO_CUSTOMER: u32 = u32::MAX;

/// A UDP probe from an address no customer owns; the generator writes the
/// TSC of its departure into it.
pub fn probe_frame() -> Vec<u8> {
    let mut payload = PROBE_MAGIC.to_vec();
    payload.extend_from_slice(&[0; 16]);
    let mut f = FrameBuilder::udp_v4(
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv4Addr::new(192, 0, 2, 2),
        7,
        7,
    )
    .payload(&payload)
    .pad_to(60)
    .build();
    // No UDP checksum (allowed over IPv4): the timestamp changes per probe.
    f[40] = 0;
    f[41] = 0;
    f
}

/// What one lane's tx loop counted; written by its tx lcore only.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct TxCounters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Offered to the port but not taken (tx ring full).
    pub unsent: AtomicU64,
    /// Bursts the mempool could not fill (it had fewer free mbufs).
    pub alloc_fail: AtomicU64,
    /// Times the pacer fell more than a millisecond behind and gave up the
    /// backlog (the generator could not keep the asked rate).
    pub behind: AtomicU64,
    pub probes: AtomicU64,
    /// Watched SYNs the port took, per profile customer.
    pub syns: Vec<AtomicU64>,
}

/// What one lane's rx loop counted; written by its rx lcore only.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct RxCounters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub probes: AtomicU64,
    /// Watched SYNs received, per profile customer.
    pub syns: Vec<AtomicU64>,
}

/// One lane's counters.
#[derive(Debug)]
pub struct LaneCounters {
    pub tx: TxCounters,
    pub rx: RxCounters,
}

impl LaneCounters {
    fn new(customers: usize) -> LaneCounters {
        let syns = || (0..customers).map(|_| AtomicU64::new(0)).collect();
        LaneCounters {
            tx: TxCounters {
                syns: syns(),
                ..TxCounters::default()
            },
            rx: RxCounters {
                syns: syns(),
                ..RxCounters::default()
            },
        }
    }
}

/// What to send in a trial.
#[derive(Debug, Clone, Serialize)]
pub struct TrialSpec {
    /// Frames per second over all lanes, 0 = as fast as possible.
    pub rate_pps: f64,
    pub duration: f64,
    /// Every this many frames of a lane a latency probe (0 = none).
    pub probe_every: u64,
    /// Count watched SYNs per customer on rx.
    pub classify: bool,
    /// Print a stats line every second.
    pub print: bool,
    /// Which ports: the profile's, or the calibration loop.
    pub calibration: bool,
}

/// One second of a trial.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub t: f64,
    pub tx_mpps: f64,
    pub rx_mpps: f64,
    pub tx_gbps: f64,
    pub rx_gbps: f64,
    /// Per lane (tx Mpps, rx Mpps), when there is more than one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lanes: Vec<(f64, f64)>,
}

/// Latency percentiles, ns.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub probes: u64,
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

/// What one lane did in a trial.
#[derive(Debug, Clone, Serialize)]
pub struct LaneResult {
    pub queue: u16,
    pub tx_lcore: u32,
    pub rx_lcore: u32,
    /// Frames of the trace this lane loops over.
    pub frames: usize,
    pub rate_pps: f64,
    pub tx_packets: u64,
    pub tx_unsent: u64,
    pub alloc_fail: u64,
    pub behind: u64,
    pub rx_packets: u64,
    pub probes_tx: u64,
    pub probes_rx: u64,
}

/// What a trial did.
#[derive(Debug, Clone, Serialize)]
pub struct TrialResult {
    pub spec: TrialSpec,
    pub elapsed: f64,
    /// Frames offered: sent, plus those the tx ring refused.
    pub offered: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_unsent: u64,
    pub alloc_fail: u64,
    pub behind: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub offered_pps: f64,
    pub loss_ratio: f64,
    /// The generator offered what was asked (within 0.5 %).
    pub valid: bool,
    pub seconds: Vec<Second>,
    pub latency: Option<Latency>,
    /// Watched SYNs received, per customer (all lanes).
    pub syns: Vec<u64>,
    /// Watched SYNs the tx ports took, per customer (all lanes).
    pub syns_tx: Vec<u64>,
    /// Per lane (queue pair).
    pub lanes: Vec<LaneResult>,
    /// Port counters (tx port, rx port) at the end, from the PMDs.
    pub port_stats: Vec<(String, u64, u64, u64)>,
}

/// The frames the tx lcores loop over, and the probe.
#[derive(Debug)]
pub struct Templates {
    pub frames: Vec<Vec<u8>>,
    /// Per frame: the profile customer whose watched SYN it is, or
    /// [`NO_CUSTOMER`].
    pub syn_of: Vec<u32>,
    pub probe: Vec<u8>,
}

/// One lane's share of the templates, in trace order.
#[derive(Debug, Default)]
struct LaneFrames {
    frames: Vec<Vec<u8>>,
    syn_of: Vec<u32>,
}

/// The lane a frame's flow goes out on: FNV-1a over the IP addresses, the
/// protocol and the L4 ports (non-IP frames: over their first 64 bytes).
pub fn lane_of(frame: &[u8], lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    let p = parse(frame, &WatchedPorts::default());
    let l3 = usize::from(p.l3_offset);
    let v4 = frame.get(l3).is_some_and(|b| b >> 4 == 4);
    let key = match (l3, v4) {
        (0, _) => None,
        (_, true) => frame.get(l3 + 12..l3 + 20).zip(frame.get(l3 + 9..l3 + 10)),
        (_, false) => frame.get(l3 + 8..l3 + 40).zip(frame.get(l3 + 6..l3 + 7)),
    };
    match key {
        Some((addrs, proto)) => {
            eat(addrs);
            eat(proto);
            let l4 = usize::from(p.l4_offset);
            if let Some(ports) = (l4 != 0).then(|| frame.get(l4..l4 + 4)).flatten() {
                eat(ports);
            }
        }
        None => eat(&frame[..frame.len().min(64)]),
    }
    (h % lanes as u64) as usize
}

fn spread(t: &Templates, lanes: usize) -> Vec<LaneFrames> {
    let mut out: Vec<LaneFrames> = (0..lanes).map(|_| LaneFrames::default()).collect();
    for (i, f) in t.frames.iter().enumerate() {
        let l = &mut out[lane_of(f, lanes)];
        l.frames.push(f.clone());
        l.syn_of
            .push(t.syn_of.get(i).copied().unwrap_or(NO_CUSTOMER));
    }
    out
}

/// One lane's queues: the right to send on tx queue q and receive on rx
/// queue q.
type LaneQueues = (TxQueue, RxQueue);

/// The generator's EAL, pool, ports and lcores.
pub struct Generator {
    tx_port: Port,
    rx_port: Option<Port>,
    lanes: Option<Vec<LaneQueues>>,
    cal: Option<(Port, Option<Vec<LaneQueues>>)>,
    pool: Arc<Mempool>,
    plan: Vec<Lane>,
    classes: Arc<Vec<(Prefix, usize)>>,
    watched: WatchedPorts,
    customers: usize,
    // The ports and the pool hold shares of the EAL: it is cleaned up
    // after them, whatever order they drop in.
    eal: Eal,
}

/// Runs `f` on lcore `lcore` of the EAL's core list.
fn launch_on<F>(eal: &Eal, lcore: u32, f: F) -> Result<Launched, DpdkError>
where
    F: FnOnce() + Send + 'static,
{
    eal.lcore(lcore).and_then(|l| eal.launch(l, f))
}

/// How long a memif client port keeps trying to reach its server.
const MEMIF_CONNECT_WAIT: Duration = Duration::from_secs(10);

fn open_port(
    eal: &Eal,
    name: &str,
    pool: &Arc<Mempool>,
    queues: u16,
) -> Result<(Port, Vec<TxQueue>, Vec<RxQueue>), String> {
    let cfg = PortConfig {
        rx_queues: queues,
        tx_queues: queues,
        rx_desc: 1024,
        tx_desc: 1024,
    };
    let t0 = Instant::now();
    let mut said = false;
    let (port, rxqs, txqs) = loop {
        match Port::open(eal, name, &cfg, pool.clone()) {
            Ok(opened) => break opened,
            // A memif client's start connects to the server's socket, which
            // exists only once the peer (synwall) has started its ports.
            Err(DpdkError::Call { ref op, .. })
                if name.starts_with("net_memif")
                    && op.starts_with("rte_eth_dev_start")
                    && t0.elapsed() < MEMIF_CONNECT_WAIT =>
            {
                if !said {
                    println!(
                        "note: {name}: no memif server to connect to yet (is the peer started?); retrying for up to {} s",
                        MEMIF_CONNECT_WAIT.as_secs()
                    );
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e @ DpdkError::Call { .. })
                if said && matches!(&e, DpdkError::Call { op, .. } if op.starts_with("rte_eth_dev_start")) =>
            {
                return Err(format!(
                    "opening {name}: {e}: no memif server answered within {} s; start the peer (synwall) first and check the socket= path of both sides",
                    MEMIF_CONNECT_WAIT.as_secs()
                ))
            }
            Err(e) => return Err(format!("opening {name}: {e}")),
        }
    };
    if said {
        println!(
            "note: {name}: connected after {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
    if rxqs.len() != usize::from(queues) || txqs.len() != usize::from(queues) {
        return Err(format!("{name}: fewer queues than configured"));
    }
    Ok((port, txqs, rxqs))
}

/// The CPUs this process may run on, from `/proc/self/status`
/// (`Cpus_allowed_list: 0-1`); 0..available_parallelism if unreadable.
fn allowed_cpus() -> Vec<u32> {
    let list = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|l| crate::profile::parse_lcores(l.trim()))
        })
        .and_then(Result::ok)
        .filter(|v| !v.is_empty());
    list.unwrap_or_else(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n as u32).collect()
    })
}

/// The EAL core option for main lcore 0 plus `workers`: `-l 0,1,2` when
/// every lcore is a CPU this process may use; otherwise an `--lcores` map
/// that puts each missing lcore on an allowed CPU other than the main
/// lcore's (round robin), with a note saying so.
fn lcore_args(workers: &[u32], cpus: &[u32]) -> (Vec<String>, Option<String>) {
    let missing: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|c| !cpus.contains(c))
        .collect();
    if missing.is_empty() && cpus.contains(&0) {
        let mut list = vec!["0".to_owned()];
        list.extend(workers.iter().map(u32::to_string));
        return (vec!["-l".into(), list.join(",")], None);
    }
    let main_cpu = if cpus.contains(&0) { 0 } else { cpus[0] };
    let others: Vec<u32> = cpus.iter().copied().filter(|&c| c != main_cpu).collect();
    let pool = if others.is_empty() {
        vec![main_cpu]
    } else {
        others
    };
    let mut map = vec![format!("0@{main_cpu}")];
    let mut next = 0usize;
    let mut moved = Vec::new();
    for &w in workers {
        let cpu = if cpus.contains(&w) && w != main_cpu {
            w
        } else {
            let c = pool[next % pool.len()];
            next += 1;
            moved.push(format!("lcore {w} on CPU {c}"));
            c
        };
        map.push(format!("{w}@{cpu}"));
    }
    let note = format!(
        "this process may use CPUs {cpus:?}: {} (--lcores={})",
        moved.join(", "),
        map.join(",")
    );
    (vec![format!("--lcores={}", map.join(","))], Some(note))
}

impl Generator {
    /// Starts the EAL with the profile's arguments (plus the calibration
    /// loop device when `calibration`), opens the ports with the profile's
    /// queue pairs and waits (up to 5 s) for their links.
    pub fn start(profile: &Profile, calibration: bool) -> Result<Generator, String> {
        let d = &profile.dpdk;
        let tx_name = d
            .tx_port
            .clone()
            .ok_or("the profile has no [dpdk] tx_port")?;
        let rx_name = d
            .rx_port
            .clone()
            .ok_or("the profile has no [dpdk] rx_port")?;
        let plan = d.lanes()?;
        let workers = d.worker_lcores();
        let mut argv = vec!["synwall-gen".to_owned()];
        argv.extend(d.eal_args.iter().cloned());
        if !d
            .eal_args
            .iter()
            .any(|a| a == "-l" || a.starts_with("--lcores") || a == "-c")
        {
            let (args, note) = lcore_args(&workers, &allowed_cpus());
            if let Some(n) = note {
                println!("note: {n}");
            }
            argv.extend(args);
        }
        if calibration {
            argv.push(format!("--vdev={CALIBRATION_PORT}"));
        }
        let eal = Eal::init(&argv).map_err(|e| format!("EAL: {e}"))?;
        let queues = d.queues;
        let pool_size = 16383 + 4096 * (u32::from(queues) - 1) * if calibration { 2 } else { 1 };
        let pool = Arc::new(
            Mempool::new(&eal, "swgen_pool", pool_size, 256, -1)
                .map_err(|e| format!("mempool: {e}"))?,
        );
        let (tx_port, txqs, rxqs_same) = open_port(&eal, &tx_name, &pool, queues)?;
        let (rx_port, rxqs) = if rx_name == tx_name {
            (None, rxqs_same)
        } else {
            drop(rxqs_same);
            let (p, t, r) = open_port(&eal, &rx_name, &pool, queues)?;
            drop(t);
            (Some(p), r)
        };
        let cal = if calibration {
            let (p, t, r) = open_port(&eal, CALIBRATION_PORT, &pool, queues)?;
            Some((p, Some(t.into_iter().zip(r).collect())))
        } else {
            None
        };
        for p in std::iter::once(&tx_port).chain(rx_port.as_ref()) {
            let t0 = Instant::now();
            while !p.link().is_ok_and(|l| l.up) && t0.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !p.link().is_ok_and(|l| l.up) {
                println!("note: {} reports its link down; sending anyway", p.name());
            }
        }
        let classes = profile
            .customers
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.prefixes.iter().map(move |p| (*p, i)))
            .collect();
        Ok(Generator {
            tx_port,
            rx_port,
            lanes: Some(txqs.into_iter().zip(rxqs).collect()),
            cal,
            pool,
            plan,
            classes: Arc::new(classes),
            watched: WatchedPorts::new(&profile.appliance.ports),
            customers: profile.customers.len(),
            eal,
        })
    }

    /// Names of the tx and rx ports.
    pub fn port_names(&self) -> (String, String) {
        (
            self.tx_port.name().to_owned(),
            self.rx_port
                .as_ref()
                .unwrap_or(&self.tx_port)
                .name()
                .to_owned(),
        )
    }

    /// The queue pairs and the lcores that drive them.
    pub fn lanes(&self) -> &[Lane] {
        &self.plan
    }

    /// Runs one trial: launches every lane, reports each second until the
    /// tx loops end, then takes the queues back and sums the counters.
    pub fn trial(
        &mut self,
        spec: &TrialSpec,
        templates: &Arc<Templates>,
    ) -> Result<TrialResult, String> {
        self.check_fits(templates)?;
        // Built before any lcore starts: an error here loses no queue.
        let mut hists = Vec::with_capacity(self.plan.len());
        for _ in 0..self.plan.len() {
            hists.push(
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                    .map_err(|e| format!("histogram: {e}"))?,
            );
        }
        let queues = self.take_queues(spec.calibration)?;
        let mut run = self.launch_lanes(spec, templates, queues, hists)?;
        let names = if spec.calibration {
            (CALIBRATION_PORT.to_owned(), CALIBRATION_PORT.to_owned())
        } else {
            self.port_names()
        };
        let seconds = run.watch(spec.print, &names);
        // Frames in flight through the device under test get a moment.
        std::thread::sleep(Duration::from_millis(200));
        let (back, hist) = run.join()?;
        self.give_back(spec.calibration, back);
        let port_stats = self.port_stats(spec.calibration);
        Ok(run.result(spec, &self.plan, self.customers, seconds, hist, port_stats))
    }

    /// Every template must fit one mbuf: the tx loop has no other check.
    fn check_fits(&self, templates: &Templates) -> Result<(), String> {
        if let Some(m) = Mbuf::alloc(&self.pool) {
            let room = m.capacity();
            let longest = templates
                .frames
                .iter()
                .map(Vec::len)
                .chain(std::iter::once(templates.probe.len()))
                .max()
                .unwrap_or(0);
            if longest > room {
                return Err(format!(
                    "a {longest}-byte frame does not fit an mbuf ({room} bytes)"
                ));
            }
        }
        Ok(())
    }

    /// The queue pairs of the profile's ports or of the calibration loop,
    /// until [`Self::give_back`].
    fn take_queues(&mut self, calibration: bool) -> Result<Vec<LaneQueues>, String> {
        let queues = if calibration {
            let cal = self.cal.as_mut().ok_or("no calibration port")?;
            cal.1.take()
        } else {
            self.lanes.take()
        };
        Ok(queues.ok_or("queues in use")?)
    }

    /// Returns what [`Self::take_queues`] took.
    fn give_back(&mut self, calibration: bool, queues: Vec<LaneQueues>) {
        if calibration {
            if let Some(cal) = self.cal.as_mut() {
                cal.1 = Some(queues);
            }
        } else {
            self.lanes = Some(queues);
        }
    }

    /// Starts a tx and an rx loop per lane, on one lcore or two. When a
    /// launch fails, the lanes already running are stopped and waited for.
    fn launch_lanes(
        &self,
        spec: &TrialSpec,
        templates: &Templates,
        queues: Vec<LaneQueues>,
        hists: Vec<Histogram<u64>>,
    ) -> Result<TrialRun, String> {
        let n_lanes = queues.len();
        let shares = spread(templates, n_lanes);
        let total_frames = templates.frames.len().max(1) as f64;
        let hz = self.eal.tsc_hz();
        let start = tsc_now() + hz / 100;
        let (back_tx, got_tx) = mpsc::channel::<(usize, TxQueue)>();
        let (back_rx, got_rx) = mpsc::channel::<(usize, RxQueue, Histogram<u64>)>();
        let mut run = TrialRun {
            counters: (0..n_lanes)
                .map(|_| Arc::new(LaneCounters::new(self.customers)))
                .collect(),
            stop_rx: Arc::new(AtomicBool::new(false)),
            tx_done: Arc::new(AtomicUsize::new(0)),
            hz,
            start,
            end: start + (spec.duration * hz as f64) as u64,
            launched: Vec::new(),
            rates: Vec::with_capacity(n_lanes),
            got_tx,
            got_rx,
        };
        let probe = Arc::new(templates.probe.clone());
        for (i, (((txq, rxq), share), hist)) in
            queues.into_iter().zip(shares).zip(hists).enumerate()
        {
            let lane = self.plan[i];
            let rate = if spec.rate_pps > 0.0 {
                spec.rate_pps * share.frames.len() as f64 / total_frames
            } else {
                0.0
            };
            run.rates.push((share.frames.len(), rate));
            let tx = TxLoop {
                txq,
                pool: self.pool.clone(),
                frames: share,
                probe: probe.clone(),
                rate,
                start: run.start,
                end: run.end,
                hz,
                probe_every: spec.probe_every,
                counters: run.counters[i].clone(),
                done: run.tx_done.clone(),
            };
            let rx = RxLoop {
                rxq,
                counters: run.counters[i].clone(),
                classes: self.classes.clone(),
                watched: self.watched.clone(),
                classify: spec.classify,
                hz,
                stop: run.stop_rx.clone(),
                hist,
            };
            let launched = launch_lane(
                &self.eal,
                i,
                lane,
                tx,
                rx,
                &back_tx,
                &back_rx,
                &mut run.launched,
            );
            if let Err(e) = launched {
                // The lanes already running stop by themselves at `end`.
                run.stop_rx.store(true, Relaxed);
                for l in run.launched {
                    let _ = l.wait();
                }
                return Err(format!("launching lane {i}: {e}"));
            }
        }
        Ok(run)
    }

    /// The ports' own counters: (name, tx packets, rx packets, rx missed).
    fn port_stats(&self, calibration: bool) -> Vec<(String, u64, u64, u64)> {
        let ports: Vec<&Port> = if calibration {
            self.cal.iter().map(|c| &c.0).collect()
        } else {
            std::iter::once(&self.tx_port)
                .chain(self.rx_port.as_ref())
                .collect()
        };
        ports
            .into_iter()
            .filter_map(|p| {
                let s = p.stats().ok()?;
                Some((p.name().to_owned(), s.tx_packets, s.rx_packets, s.rx_missed))
            })
            .collect()
    }
}

/// Launches lane `i`'s loops: both on the tx lcore when the plan gives the
/// lane one lcore (rx polled between tx bursts), else one each. The loops
/// hand their queues (and the rx loop its latency histogram) back on
/// `back_tx` and `back_rx` when they end.
#[allow(clippy::too_many_arguments)]
fn launch_lane(
    eal: &Eal,
    i: usize,
    lane: Lane,
    tx: TxLoop,
    rx: RxLoop,
    back_tx: &mpsc::Sender<(usize, TxQueue)>,
    back_rx: &mpsc::Sender<(usize, RxQueue, Histogram<u64>)>,
    launched: &mut Vec<Launched>,
) -> Result<(), DpdkError> {
    let (back_tx, back_rx) = (back_tx.clone(), back_rx.clone());
    if lane.tx_lcore == lane.rx_lcore {
        launched.push(launch_on(eal, lane.tx_lcore, move || {
            let mut rx = rx;
            let q = tx.run(Some(&mut rx));
            // Drain what is still in flight, then hand both back.
            let (r, h) = rx.run_alone();
            let _ = back_tx.send((i, q));
            let _ = back_rx.send((i, r, h));
        })?);
    } else {
        launched.push(launch_on(eal, lane.tx_lcore, move || {
            let q = tx.run(None);
            let _ = back_tx.send((i, q));
        })?);
        launched.push(launch_on(eal, lane.rx_lcore, move || {
            let (r, h) = rx.run_alone();
            let _ = back_rx.send((i, r, h));
        })?);
    }
    Ok(())
}

/// The summed counters of all lanes at one moment.
#[derive(Debug, Clone, Copy)]
struct Totals {
    tx_packets: u64,
    tx_bytes: u64,
    rx_packets: u64,
    rx_bytes: u64,
    at: Instant,
}

/// A trial whose lanes are running: their counters, the flags they watch
/// and the channels they hand their queues back on.
struct TrialRun {
    counters: Vec<Arc<LaneCounters>>,
    stop_rx: Arc<AtomicBool>,
    tx_done: Arc<AtomicUsize>,
    hz: u64,
    start: u64,
    end: u64,
    launched: Vec<Launched>,
    /// Per lane: (frames of the trace it loops over, its rate).
    rates: Vec<(usize, f64)>,
    got_tx: mpsc::Receiver<(usize, TxQueue)>,
    got_rx: mpsc::Receiver<(usize, RxQueue, Histogram<u64>)>,
}

impl TrialRun {
    /// One counter summed over the lanes.
    fn sum(&self, f: impl Fn(&LaneCounters) -> &AtomicU64) -> u64 {
        self.counters.iter().map(|c| f(c).load(Relaxed)).sum()
    }

    /// One counter per customer, summed over the lanes.
    fn per_customer(
        &self,
        customers: usize,
        f: impl Fn(&LaneCounters) -> &Vec<AtomicU64>,
    ) -> Vec<u64> {
        (0..customers)
            .map(|i| {
                self.counters
                    .iter()
                    .map(|c| f(c).get(i).map_or(0, |a| a.load(Relaxed)))
                    .sum()
            })
            .collect()
    }

    fn totals(&self) -> Totals {
        Totals {
            tx_packets: self.sum(|l| &l.tx.packets),
            tx_bytes: self.sum(|l| &l.tx.bytes),
            rx_packets: self.sum(|l| &l.rx.packets),
            rx_bytes: self.sum(|l| &l.rx.bytes),
            at: Instant::now(),
        }
    }

    /// Per lane: (tx packets, rx packets).
    fn lane_packets(&self) -> Vec<(u64, u64)> {
        self.counters
            .iter()
            .map(|c| (c.tx.packets.load(Relaxed), c.rx.packets.load(Relaxed)))
            .collect()
    }

    /// Until every tx loop has ended: a [`Second`] each second (printed
    /// when `print`, naming the (tx, rx) ports `names`).
    fn watch(&self, print: bool, names: &(String, String)) -> Vec<Second> {
        let t0 = Instant::now();
        let mut seconds = Vec::new();
        let mut last = Totals {
            tx_packets: 0,
            tx_bytes: 0,
            rx_packets: 0,
            rx_bytes: 0,
            at: Instant::now(),
        };
        let mut last_lanes = self.lane_packets();
        while self.tx_done.load(Relaxed) < self.counters.len() {
            std::thread::sleep(Duration::from_millis(50));
            if last.at.elapsed() >= Duration::from_secs(1) {
                let now = self.totals();
                let per_lane = self.lane_packets();
                let s = second(t0, &last, &now, &last_lanes, &per_lane);
                if print {
                    print_second(&s, &now, names);
                }
                seconds.push(s);
                last = now;
                last_lanes = per_lane;
            }
        }
        seconds
    }

    /// Stops the rx loops, waits for every lcore, and takes the queues and
    /// the merged latency histogram back.
    fn join(&mut self) -> Result<(Vec<LaneQueues>, Option<Histogram<u64>>), String> {
        self.stop_rx.store(true, Relaxed);
        let mut joined = Ok(());
        for l in self.launched.drain(..) {
            if let Err(e) = l.wait() {
                joined = Err(format!("generator lcore: {e}"));
            }
        }
        joined?;
        let n_lanes = self.counters.len();
        let mut txqs: Vec<Option<TxQueue>> = (0..n_lanes).map(|_| None).collect();
        let mut rxqs: Vec<Option<RxQueue>> = (0..n_lanes).map(|_| None).collect();
        let mut hist: Option<Histogram<u64>> = None;
        for (i, q) in self.got_tx.try_iter() {
            txqs[i] = Some(q);
        }
        for (i, q, h) in self.got_rx.try_iter() {
            rxqs[i] = Some(q);
            match hist.as_mut() {
                None => hist = Some(h),
                Some(all) => all.add(&h).map_err(|e| format!("latency histogram: {e}"))?,
            }
        }
        let back: Option<Vec<LaneQueues>> =
            txqs.into_iter().zip(rxqs).map(|(t, r)| t.zip(r)).collect();
        let back = back.ok_or("a generator lcore lost its queues")?;
        Ok((back, hist))
    }

    /// The trial's result from the final counters.
    fn result(
        &self,
        spec: &TrialSpec,
        plan: &[Lane],
        customers: usize,
        seconds: Vec<Second>,
        hist: Option<Histogram<u64>>,
        port_stats: Vec<(String, u64, u64, u64)>,
    ) -> TrialResult {
        let n_lanes = self.counters.len();
        let elapsed = (self.end - self.start) as f64 / self.hz as f64;
        let tx_packets = self.sum(|l| &l.tx.packets);
        let tx_unsent = self.sum(|l| &l.tx.unsent);
        let offered = tx_packets + tx_unsent;
        let rx_packets = self.sum(|l| &l.rx.packets);
        let offered_pps = offered as f64 / elapsed;
        let loss_ratio = if offered == 0 {
            0.0
        } else {
            offered.saturating_sub(rx_packets) as f64 / offered as f64
        };
        // Within 0.5 %, and a frame per lane: at a few frames per second
        // the last frame, due at the end, is not sent.
        let valid = spec.rate_pps <= 0.0
            || offered as f64 + n_lanes as f64 >= spec.rate_pps * elapsed * 0.995;
        let latency = hist.filter(|h| !h.is_empty()).map(|hist| Latency {
            probes: hist.len(),
            min_ns: hist.min(),
            p50_ns: hist.value_at_quantile(0.5),
            p90_ns: hist.value_at_quantile(0.9),
            p99_ns: hist.value_at_quantile(0.99),
            p999_ns: hist.value_at_quantile(0.999),
            max_ns: hist.max(),
            mean_ns: hist.mean(),
        });
        let g = |c: &AtomicU64| c.load(Relaxed);
        let lanes = self
            .counters
            .iter()
            .zip(plan)
            .zip(&self.rates)
            .map(|((c, lane), &(frames, rate))| LaneResult {
                queue: lane.queue,
                tx_lcore: lane.tx_lcore,
                rx_lcore: lane.rx_lcore,
                frames,
                rate_pps: rate,
                tx_packets: g(&c.tx.packets),
                tx_unsent: g(&c.tx.unsent),
                alloc_fail: g(&c.tx.alloc_fail),
                behind: g(&c.tx.behind),
                rx_packets: g(&c.rx.packets),
                probes_tx: g(&c.tx.probes),
                probes_rx: g(&c.rx.probes),
            })
            .collect();
        TrialResult {
            spec: spec.clone(),
            elapsed,
            offered,
            tx_packets,
            tx_bytes: self.sum(|l| &l.tx.bytes),
            tx_unsent,
            alloc_fail: self.sum(|l| &l.tx.alloc_fail),
            behind: self.sum(|l| &l.tx.behind),
            rx_packets,
            rx_bytes: self.sum(|l| &l.rx.bytes),
            offered_pps,
            loss_ratio,
            valid,
            seconds,
            latency,
            syns: self.per_customer(customers, |l| &l.rx.syns),
            syns_tx: self.per_customer(customers, |l| &l.tx.syns),
            lanes,
            port_stats,
        }
    }
}

/// The second from `last` to `now` (lanes: from `last_lanes` to
/// `per_lane`, listed only when there is more than one).
fn second(
    t0: Instant,
    last: &Totals,
    now: &Totals,
    last_lanes: &[(u64, u64)],
    per_lane: &[(u64, u64)],
) -> Second {
    let dt = now.at.duration_since(last.at).as_secs_f64();
    let lanes = if per_lane.len() > 1 {
        per_lane
            .iter()
            .zip(last_lanes)
            .map(|(a, b)| ((a.0 - b.0) as f64 / dt / 1e6, (a.1 - b.1) as f64 / dt / 1e6))
            .collect()
    } else {
        Vec::new()
    };
    let tx = now.tx_packets - last.tx_packets;
    let rx = now.rx_packets - last.rx_packets;
    // Gbps on the wire: + 4 B FCS + 20 B preamble and gap per frame.
    Second {
        t: t0.elapsed().as_secs_f64(),
        tx_mpps: tx as f64 / dt / 1e6,
        rx_mpps: rx as f64 / dt / 1e6,
        tx_gbps: ((now.tx_bytes - last.tx_bytes) + 24 * tx) as f64 * 8.0 / dt / 1e9,
        rx_gbps: ((now.rx_bytes - last.rx_bytes) + 24 * rx) as f64 * 8.0 / dt / 1e9,
        lanes,
    }
}

/// The stats line of a second (and its per-queue line).
fn print_second(s: &Second, now: &Totals, (tx_name, rx_name): &(String, String)) {
    let lost = now.tx_packets.saturating_sub(now.rx_packets);
    println!(
        "  {:>5.1}s  {tx_name} tx {:>8.4} Mpps {:>7.3} Gbps | {rx_name} rx {:>8.4} Mpps {:>7.3} Gbps | tx {} rx {} missing {} ({:.4} %)",
        s.t,
        s.tx_mpps,
        s.tx_gbps,
        s.rx_mpps,
        s.rx_gbps,
        now.tx_packets,
        now.rx_packets,
        lost,
        if now.tx_packets > 0 {
            lost as f64 * 100.0 / now.tx_packets as f64
        } else {
            0.0
        }
    );
    if !s.lanes.is_empty() {
        let parts: Vec<String> = s
            .lanes
            .iter()
            .enumerate()
            .map(|(q, (t, r))| format!("q{q} tx {t:.4} rx {r:.4}"))
            .collect();
        println!("          per queue (Mpps): {}", parts.join(" | "));
    }
}

struct TxLoop {
    txq: TxQueue,
    pool: Arc<Mempool>,
    frames: LaneFrames,
    probe: Arc<Vec<u8>>,
    rate: f64,
    start: u64,
    end: u64,
    hz: u64,
    probe_every: u64,
    counters: Arc<LaneCounters>,
    done: Arc<AtomicUsize>,
}

impl TxLoop {
    /// Sends until `end`; with `rx`, polls it between bursts. Returns the
    /// queue.
    fn run(self, mut rx: Option<&mut RxLoop>) -> TxQueue {
        let TxLoop {
            mut txq,
            pool,
            frames: LaneFrames { frames, syn_of },
            probe,
            rate,
            start,
            end,
            hz,
            probe_every,
            counters,
            done,
        } = self;
        let c = &counters.tx;
        let n_frames = frames.len();
        let mut next = 0usize;
        let mut sent: u64 = 0;
        let mut since_probe: u64 = 0;
        let mut burst = MbufBurst::new();
        // Per slot of the burst: its length and whose SYN it is.
        let mut lens = [0u16; BURST];
        let mut whose = [NO_CUSTOMER; BURST];
        // Packets per TSC cycle, and the backlog the pacer may catch up on:
        // a millisecond's frames, at least four bursts, and at low rates up
        // to 20 ms (at most a ring's worth), which a preempted lcore on a
        // shared CPU catches up on at once.
        let per_cycle = rate / hz as f64;
        let slack = ((rate / 1000.0) as u64)
            .max(((rate / 50.0) as u64).min(1024))
            .max(4 * BURST as u64);
        // At low rates the lane sleeps until a burst is due instead of
        // spinning, leaving the CPU to whoever shares it (in the demo, the
        // appliance's worker). Not while it times latency probes: the sleep
        // would delay polling rx and count as latency.
        let nap = low_rate_nap(rate, hz, probe_every);
        let mut napped = false;
        while tsc_now() < start {
            std::hint::spin_loop();
        }
        loop {
            let now = tsc_now();
            if now >= end || n_frames == 0 {
                break;
            }
            if let Some(rx) = rx.as_deref_mut() {
                rx.poll();
            }
            let want = if rate <= 0.0 {
                BURST as u64
            } else {
                let due = ((now - start) as f64 * per_cycle) as u64;
                let mut owed = due.saturating_sub(sent);
                if owed > slack {
                    // Preempted or too slow: give the backlog up, and say so.
                    add(&c.behind, 1);
                    sent += owed - BURST as u64;
                    owed = BURST as u64;
                }
                owed.min(BURST as u64)
            };
            // Sleep until a full burst is due, or for at most `nap`; after a
            // sleep, send what is owed, even less than a burst (at very low
            // rates a burst would take longer to come due than the run).
            if let Some(nap) = nap {
                if want < BURST as u64 && !(napped && want > 0) {
                    let due = (BURST as u64 - want) as f64 / per_cycle;
                    let wait = Duration::from_secs_f64(due / hz as f64).min(nap);
                    std::thread::sleep(wait);
                    napped = true;
                    continue;
                }
            }
            napped = false;
            if want == 0 {
                continue;
            }
            if !pool.alloc_bulk(&mut burst, want as usize) {
                add(&c.alloc_fail, 1);
                continue;
            }
            let mut probes = 0u64;
            let mut filled = 0usize;
            for (slot, m) in burst.as_mut_slice().iter_mut().enumerate() {
                since_probe += 1;
                let is_probe = probe_every > 0 && since_probe >= probe_every;
                let (tpl, who): (&[u8], u32) = if is_probe {
                    since_probe = 0;
                    (&probe, NO_CUSTOMER)
                } else {
                    let i = next;
                    next += 1;
                    if next == n_frames {
                        next = 0;
                    }
                    (&frames[i], syn_of.get(i).copied().unwrap_or(NO_CUSTOMER))
                };
                // Cannot fail: `trial` checked every template fits an mbuf.
                if !m.set_len(tpl.len()) {
                    break;
                }
                let data = m.data_mut();
                data.copy_from_slice(tpl);
                if is_probe {
                    probes += 1;
                    if let Some(ts) = data.get_mut(PROBE_OFFSET + 8..PROBE_OFFSET + 16) {
                        ts.copy_from_slice(&tsc_now().to_le_bytes());
                    }
                }
                lens[slot] = tpl.len() as u16;
                whose[slot] = who;
                filled += 1;
            }
            burst.truncate(filled);
            let n = burst.len();
            let took = txq.tx(&mut burst);
            if took < n {
                // The ring is full: what it did not take is offered and lost.
                add(&c.unsent, (n - took) as u64);
                burst.free_all();
            }
            let mut bytes = 0u64;
            for (len, who) in lens.iter().zip(&whose).take(took) {
                bytes += u64::from(*len);
                if *who != NO_CUSTOMER {
                    if let Some(s) = c.syns.get(*who as usize) {
                        add(s, 1);
                    }
                }
            }
            sent += n as u64;
            add(&c.packets, took as u64);
            add(&c.bytes, bytes);
            add(&c.probes, probes);
        }
        done.fetch_add(1, Relaxed);
        txq
    }
}

/// Rates at which a burst takes at least this long to come due are paced
/// by sleeping (the kernel's timer slack, ~50 us, is small beside it).
const NAP_FROM: Duration = Duration::from_micros(200);

/// The longest a lane sleeps between bursts (its rx waits as long).
const NAP_MAX: Duration = Duration::from_millis(1);

/// How long a lane pacing `rate` frames/s may sleep between bursts, if it
/// sleeps at all: at rates where a burst comes due every [`NAP_FROM`] or
/// slower, and never when `probe_every` (latency probes are timed).
fn low_rate_nap(rate: f64, hz: u64, probe_every: u64) -> Option<Duration> {
    let burst_secs = BURST as f64 / rate;
    (rate > 0.0 && probe_every == 0 && hz > 0 && burst_secs >= NAP_FROM.as_secs_f64())
        .then_some(NAP_MAX)
}

struct RxLoop {
    rxq: RxQueue,
    counters: Arc<LaneCounters>,
    classes: Arc<Vec<(Prefix, usize)>>,
    watched: WatchedPorts,
    classify: bool,
    hz: u64,
    stop: Arc<AtomicBool>,
    hist: Histogram<u64>,
}

impl RxLoop {
    /// One rx burst: count, classify, time probes, free.
    #[inline]
    fn poll(&mut self) -> usize {
        let mut burst = MbufBurst::new();
        let n = self.rxq.rx(&mut burst);
        if n == 0 {
            return 0;
        }
        let c = &self.counters.rx;
        let now = tsc_now();
        let mut bytes = 0u64;
        for m in burst.as_slice() {
            let d = m.data();
            bytes += u64::from(m.pkt_len());
            if d.len() >= PROBE_OFFSET + 16 && d[PROBE_OFFSET..PROBE_OFFSET + 8] == PROBE_MAGIC {
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&d[PROBE_OFFSET + 8..PROBE_OFFSET + 16]);
                let sent = u64::from_le_bytes(ts);
                let ns =
                    (now.saturating_sub(sent) as u128 * 1_000_000_000 / self.hz as u128) as u64;
                let _ = self.hist.record(ns.max(1));
                add(&c.probes, 1);
                continue;
            }
            if self.classify {
                let p = parse(d, &self.watched);
                if p.outcome == Outcome::WatchedSyn {
                    if let Some(ip) = p.src.map(|s| s.to_ip()) {
                        if let Some(&(_, i)) = self.classes.iter().find(|(pr, _)| pr.contains(ip)) {
                            if let Some(ctr) = c.syns.get(i) {
                                add(ctr, 1);
                            }
                        }
                    }
                }
            }
        }
        burst.free_all();
        add(&c.packets, n as u64);
        add(&c.bytes, bytes);
        n
    }

    /// Polls until told to stop; returns the queue and the latencies.
    fn run_alone(mut self) -> (RxQueue, Histogram<u64>) {
        while !self.stop.load(Relaxed) {
            self.poll();
        }
        // One last sweep of what already arrived.
        while self.poll() > 0 {}
        (self.rxq, self.hist)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_flow_one_lane_and_flows_spread() {
        use synwall_dataplane::parse::tcp_flags::{ACK, SYN};
        let mx = Ipv4Addr::new(93, 184, 216, 34);
        let f = |src: u8, sport: u16, flags| {
            FrameBuilder::tcp_v4(Ipv4Addr::new(10, 0, 0, src), mx, sport, 443, flags).build()
        };
        // Same 5-tuple, other flags/payload: same lane.
        assert_eq!(lane_of(&f(1, 1000, SYN), 4), lane_of(&f(1, 1000, ACK), 4));
        assert_eq!(lane_of(&f(1, 1000, SYN), 1), 0);
        let mut per = [0usize; 4];
        for s in 0..200u8 {
            per[lane_of(&f(s, 2000 + u16::from(s), ACK), 4)] += 1;
        }
        assert!(per.iter().all(|&n| n > 20), "{per:?}");
        // Short junk is not a panic.
        assert!(lane_of(&[0u8; 3], 2) < 2);
    }

    #[test]
    fn lcore_list_or_map() {
        let (a, n) = lcore_args(&[1], &[0, 1]);
        assert_eq!(a, vec!["-l", "0,1"]);
        assert!(n.is_none());
        let (a, n) = lcore_args(&[1, 2], &[0, 1]);
        assert_eq!(a, vec!["--lcores=0@0,1@1,2@1"]);
        assert!(n.unwrap().contains("lcore 2 on CPU 1"));
        let (a, _) = lcore_args(&[1, 2, 3], &[0, 1, 2]);
        assert_eq!(a, vec!["--lcores=0@0,1@1,2@2,3@1"]);
        let (a, _) = lcore_args(&[1, 2], &[0]);
        assert_eq!(a, vec!["--lcores=0@0,1@0,2@0"]);
    }
}
