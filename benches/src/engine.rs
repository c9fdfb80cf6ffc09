//! The generator's own dataplane, on the safe DPDK layer: a tx lcore that
//! copies pre-built frames into fresh mbufs and sends them, TSC-paced at the
//! asked rate (or as fast as it can), and an rx lcore that counts what
//! arrives, classifies SYNs to the profile's customers and reads the
//! timestamps of latency probes. With one lcore, one loop does both.
//!
//! Counters have one writer each (the lcore that owns them) and are read by
//! the main lcore once a second, as in synwall's own workers.
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::dpdk::{
    launch, tsc_hz, tsc_now, Eal, LcoreId, Mbuf, MbufBurst, Mempool, Port, PortConfig, RxQueue,
    TxQueue, BURST,
};
use synwall_dataplane::parse::{parse, Outcome, WatchedPorts};

use crate::profile::{Prefix, Profile};

/// The name of the loop device `ndr` calibrates on (`net_ring` with no
/// arguments: what is sent on it is received on it).
pub const CALIBRATION_PORT: &str = "net_ring_swgcal";

/// Marks a latency probe: 8 bytes at [`PROBE_OFFSET`], then the TSC.
const PROBE_MAGIC: [u8; 8] = *b"SWGPROBE";
/// Ethernet 14 + IPv4 20 + UDP 8.
const PROBE_OFFSET: usize = 42;

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

/// Counters of one trial; each has one writer lcore.
#[derive(Debug, Default)]
pub struct Counters {
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Offered to the port but not taken (tx ring full).
    pub tx_unsent: AtomicU64,
    /// Mempool empty when building a burst.
    pub alloc_fail: AtomicU64,
    /// Times the pacer fell more than a millisecond behind and gave up the
    /// backlog (the generator could not keep the asked rate).
    pub behind: AtomicU64,
    pub probes_tx: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub probes_rx: AtomicU64,
    /// Watched SYNs received, per profile customer.
    pub syns: Vec<AtomicU64>,
}

#[inline(always)]
fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// What to send in a trial.
#[derive(Debug, Clone, Serialize)]
pub struct TrialSpec {
    /// Frames per second, 0 = as fast as possible.
    pub rate_pps: f64,
    pub duration: f64,
    /// Every this many frames a latency probe (0 = none).
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
}

/// Latency percentiles, ns.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub probes: u64,
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
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
    pub syns: Vec<u64>,
    /// Port counters (tx port, rx port) at the end, from the PMDs.
    pub port_stats: Vec<(String, u64, u64, u64)>,
}

/// The frames the tx lcore loops over, and the probe.
#[derive(Debug)]
pub struct Templates {
    pub frames: Vec<Vec<u8>>,
    pub probe: Vec<u8>,
}

/// The generator's EAL, pool, ports and lcores.
pub struct Generator {
    tx_port: Port,
    rx_port: Option<Port>,
    txq: Option<TxQueue>,
    rxq: Option<RxQueue>,
    cal: Option<(Port, Option<TxQueue>, Option<RxQueue>)>,
    pool: Arc<Mempool>,
    lcores: Vec<LcoreId>,
    classes: Arc<Vec<(Prefix, usize)>>,
    watched: WatchedPorts,
    customers: usize,
    // Last: the ports and the pool must be gone before rte_eal_cleanup.
    _eal: Eal,
}

fn open_one(name: &str, pool: &Arc<Mempool>) -> Result<(Port, TxQueue, RxQueue), String> {
    let cfg = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 1024,
        tx_desc: 1024,
    };
    let (port, mut rxqs, mut txqs) =
        Port::open(name, &cfg, pool.clone()).map_err(|e| format!("opening {name}: {e}"))?;
    let rxq = rxqs.pop().ok_or("no rx queue")?;
    let txq = txqs.pop().ok_or("no tx queue")?;
    Ok((port, txq, rxq))
}

impl Generator {
    /// Starts the EAL with the profile's arguments (plus the calibration
    /// loop device when `calibration`) and opens the ports.
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
        if d.queues != 1 {
            return Err("[dpdk] queues > 1 is not supported by this generator yet".into());
        }
        let cores = if d.cores.is_empty() {
            vec![1]
        } else {
            d.cores.clone()
        };
        let mut argv = vec!["synwall-gen".to_owned()];
        argv.extend(d.eal_args.iter().cloned());
        if !d
            .eal_args
            .iter()
            .any(|a| a == "-l" || a.starts_with("--lcores") || a == "-c")
        {
            let mut list = vec!["0".to_owned()];
            list.extend(cores.iter().map(|c| c.to_string()));
            argv.push("-l".into());
            argv.push(list.join(","));
        }
        if calibration {
            argv.push(format!("--vdev={CALIBRATION_PORT}"));
        }
        let eal = Eal::init(&argv).map_err(|e| format!("EAL: {e}"))?;
        let pool = Arc::new(
            Mempool::new("swgen_pool", 16383, 256, -1).map_err(|e| format!("mempool: {e}"))?,
        );
        let (tx_port, txq, rxq_same) = open_one(&tx_name, &pool)?;
        let (rx_port, rxq) = if rx_name == tx_name {
            (None, rxq_same)
        } else {
            drop(rxq_same);
            let (p, t, r) = open_one(&rx_name, &pool)?;
            drop(t);
            (Some(p), r)
        };
        let cal = if calibration {
            let (p, t, r) = open_one(CALIBRATION_PORT, &pool)?;
            Some((p, Some(t), Some(r)))
        } else {
            None
        };
        let classes = profile
            .customers
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.prefixes.iter().map(move |p| (*p, i)))
            .collect();
        Ok(Generator {
            tx_port,
            rx_port,
            txq: Some(txq),
            rxq: Some(rxq),
            cal,
            pool,
            lcores: cores.into_iter().map(LcoreId).collect(),
            classes: Arc::new(classes),
            watched: WatchedPorts::new(&profile.appliance.ports),
            customers: profile.customers.len(),
            _eal: eal,
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

    /// Runs one trial.
    pub fn trial(
        &mut self,
        spec: &TrialSpec,
        templates: &Arc<Templates>,
    ) -> Result<TrialResult, String> {
        let (txq, rxq) = if spec.calibration {
            let cal = self.cal.as_mut().ok_or("no calibration port")?;
            (cal.1.take(), cal.2.take())
        } else {
            (self.txq.take(), self.rxq.take())
        };
        let txq = txq.ok_or("tx queue in use")?;
        let rxq = rxq.ok_or("rx queue in use")?;
        let counters = Arc::new(Counters {
            syns: (0..self.customers).map(|_| AtomicU64::new(0)).collect(),
            ..Counters::default()
        });
        let stop_rx = Arc::new(AtomicBool::new(false));
        let tx_done = Arc::new(AtomicBool::new(false));
        let hz = tsc_hz();
        let start = tsc_now() + hz / 100;
        let end = start + (spec.duration * hz as f64) as u64;
        let tx = TxLoop {
            txq,
            pool: self.pool.clone(),
            templates: templates.clone(),
            rate: spec.rate_pps,
            start,
            end,
            hz,
            probe_every: spec.probe_every,
            counters: counters.clone(),
            done: tx_done.clone(),
        };
        let rx = RxLoop {
            rxq,
            counters: counters.clone(),
            classes: self.classes.clone(),
            watched: self.watched.clone(),
            classify: spec.classify,
            hz,
            stop: stop_rx.clone(),
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .map_err(|e| format!("histogram: {e}"))?,
        };
        let (back_tx, got_tx) = mpsc::channel();
        let (back_rx, got_rx) = mpsc::channel();
        let launched = if self.lcores.len() >= 2 {
            let a = launch(self.lcores[0], move || {
                let q = tx.run(None);
                let _ = back_tx.send(q);
            })
            .map_err(|e| e.to_string())?;
            let b = launch(self.lcores[1], move || {
                let r = rx.run_alone();
                let _ = back_rx.send(r);
            })
            .map_err(|e| e.to_string())?;
            vec![a, b]
        } else {
            let a = launch(self.lcores[0], move || {
                let mut rx = rx;
                let q = tx.run(Some(&mut rx));
                // Drain what is still in flight, then hand both back.
                let r = rx.run_alone();
                let _ = back_tx.send(q);
                let _ = back_rx.send(r);
            })
            .map_err(|e| e.to_string())?;
            vec![a]
        };
        let t0 = Instant::now();
        let mut seconds = Vec::new();
        let mut last = (0u64, 0u64, 0u64, 0u64, Instant::now());
        let (tx_name, rx_name) = if spec.calibration {
            (CALIBRATION_PORT.to_owned(), CALIBRATION_PORT.to_owned())
        } else {
            self.port_names()
        };
        while !tx_done.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            if last.4.elapsed() >= Duration::from_secs(1) {
                let now = Instant::now();
                let dt = now.duration_since(last.4).as_secs_f64();
                let c = (
                    counters.tx_packets.load(Relaxed),
                    counters.tx_bytes.load(Relaxed),
                    counters.rx_packets.load(Relaxed),
                    counters.rx_bytes.load(Relaxed),
                );
                // Gbps on the wire: + 4 B FCS + 20 B preamble and gap per frame.
                let s = Second {
                    t: t0.elapsed().as_secs_f64(),
                    tx_mpps: (c.0 - last.0) as f64 / dt / 1e6,
                    rx_mpps: (c.2 - last.2) as f64 / dt / 1e6,
                    tx_gbps: ((c.1 - last.1) + 24 * (c.0 - last.0)) as f64 * 8.0 / dt / 1e9,
                    rx_gbps: ((c.3 - last.3) + 24 * (c.2 - last.2)) as f64 * 8.0 / dt / 1e9,
                };
                if spec.print {
                    let lost = c.0.saturating_sub(c.2);
                    println!(
                        "  {:>5.1}s  {tx_name} tx {:>8.4} Mpps {:>7.3} Gbps | {rx_name} rx {:>8.4} Mpps {:>7.3} Gbps | tx {} rx {} missing {} ({:.4} %)",
                        s.t,
                        s.tx_mpps,
                        s.tx_gbps,
                        s.rx_mpps,
                        s.rx_gbps,
                        c.0,
                        c.2,
                        lost,
                        if c.0 > 0 { lost as f64 * 100.0 / c.0 as f64 } else { 0.0 }
                    );
                }
                seconds.push(s);
                last = (c.0, c.1, c.2, c.3, now);
            }
        }
        // Frames in flight through the device under test get a moment.
        std::thread::sleep(Duration::from_millis(200));
        stop_rx.store(true, Relaxed);
        for l in launched {
            l.wait().map_err(|e| format!("generator lcore: {e}"))?;
        }
        let elapsed = (end - start) as f64 / hz as f64;
        let txq = got_tx.recv().map_err(|_| "tx lcore lost its queue")?;
        let (rxq, hist) = got_rx.recv().map_err(|_| "rx lcore lost its queue")?;
        if spec.calibration {
            if let Some(cal) = self.cal.as_mut() {
                cal.1 = Some(txq);
                cal.2 = Some(rxq);
            }
        } else {
            self.txq = Some(txq);
            self.rxq = Some(rxq);
        }
        let mut port_stats = Vec::new();
        let ports: Vec<&Port> = if spec.calibration {
            self.cal.iter().map(|c| &c.0).collect()
        } else {
            std::iter::once(&self.tx_port)
                .chain(self.rx_port.as_ref())
                .collect()
        };
        for p in ports {
            if let Ok(s) = p.stats() {
                port_stats.push((p.name().to_owned(), s.tx_packets, s.rx_packets, s.rx_missed));
            }
        }
        let g = |c: &AtomicU64| c.load(Relaxed);
        let tx_packets = g(&counters.tx_packets);
        let tx_unsent = g(&counters.tx_unsent);
        let offered = tx_packets + tx_unsent;
        let rx_packets = g(&counters.rx_packets);
        let offered_pps = offered as f64 / elapsed;
        let loss_ratio = if offered == 0 {
            0.0
        } else {
            offered.saturating_sub(rx_packets) as f64 / offered as f64
        };
        let valid = spec.rate_pps <= 0.0 || offered_pps >= spec.rate_pps * 0.995;
        let latency = (!hist.is_empty()).then(|| Latency {
            probes: hist.len(),
            min_ns: hist.min(),
            p50_ns: hist.value_at_quantile(0.5),
            p99_ns: hist.value_at_quantile(0.99),
            p999_ns: hist.value_at_quantile(0.999),
            max_ns: hist.max(),
            mean_ns: hist.mean(),
        });
        Ok(TrialResult {
            spec: spec.clone(),
            elapsed,
            offered,
            tx_packets,
            tx_bytes: g(&counters.tx_bytes),
            tx_unsent,
            alloc_fail: g(&counters.alloc_fail),
            behind: g(&counters.behind),
            rx_packets,
            rx_bytes: g(&counters.rx_bytes),
            offered_pps,
            loss_ratio,
            valid,
            seconds,
            latency,
            syns: counters.syns.iter().map(g).collect(),
            port_stats,
        })
    }
}

struct TxLoop {
    txq: TxQueue,
    pool: Arc<Mempool>,
    templates: Arc<Templates>,
    rate: f64,
    start: u64,
    end: u64,
    hz: u64,
    probe_every: u64,
    counters: Arc<Counters>,
    done: Arc<AtomicBool>,
}

impl TxLoop {
    /// Sends until `end`; with `rx`, polls it between bursts. Returns the
    /// queue.
    fn run(self, mut rx: Option<&mut RxLoop>) -> TxQueue {
        let TxLoop {
            mut txq,
            pool,
            templates,
            rate,
            start,
            end,
            hz,
            probe_every,
            counters,
            done,
        } = self;
        let frames = &templates.frames;
        let n_frames = frames.len();
        let mut next = 0usize;
        let mut sent: u64 = 0;
        let mut since_probe: u64 = 0;
        let mut burst = MbufBurst::new();
        // Packets per TSC cycle, and the backlog the pacer may catch up on.
        let per_cycle = rate / hz as f64;
        let slack = ((rate / 1000.0) as u64).max(4 * BURST as u64);
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
                    add(&counters.behind, 1);
                    sent += owed - BURST as u64;
                    owed = BURST as u64;
                }
                owed.min(BURST as u64)
            };
            if want == 0 {
                continue;
            }
            let mut bytes = 0u64;
            let mut probes = 0u64;
            for _ in 0..want {
                let Some(mut m) = Mbuf::alloc(&pool) else {
                    add(&counters.alloc_fail, 1);
                    break;
                };
                since_probe += 1;
                let probe = probe_every > 0 && since_probe >= probe_every;
                let tpl: &[u8] = if probe {
                    since_probe = 0;
                    &templates.probe
                } else {
                    let f = &frames[next];
                    next += 1;
                    if next == n_frames {
                        next = 0;
                    }
                    f
                };
                if !m.set_len(tpl.len()) {
                    continue;
                }
                let data = m.data_mut();
                data.copy_from_slice(tpl);
                if probe {
                    probes += 1;
                    if let Some(ts) = data.get_mut(PROBE_OFFSET + 8..PROBE_OFFSET + 16) {
                        ts.copy_from_slice(&tsc_now().to_le_bytes());
                    }
                }
                bytes += tpl.len() as u64;
                if burst.push(m).is_err() {
                    break;
                }
            }
            let n = burst.len() as u64;
            let took = txq.tx(&mut burst) as u64;
            if took < n {
                // The ring is full: what it did not take is offered and lost.
                add(&counters.tx_unsent, n - took);
                let avg = bytes / n.max(1);
                bytes -= avg * (n - took);
                burst.free_all();
            }
            sent += n;
            add(&counters.tx_packets, took);
            add(&counters.tx_bytes, bytes);
            add(&counters.probes_tx, probes);
        }
        done.store(true, Relaxed);
        txq
    }
}

struct RxLoop {
    rxq: RxQueue,
    counters: Arc<Counters>,
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
                add(&self.counters.probes_rx, 1);
                continue;
            }
            if self.classify {
                let p = parse(d, &self.watched);
                if p.outcome == Outcome::WatchedSyn {
                    if let Some(ip) = p.src.map(|s| s.to_ip()) {
                        if let Some(&(_, c)) = self.classes.iter().find(|(pr, _)| pr.contains(ip)) {
                            if let Some(ctr) = self.counters.syns.get(c) {
                                add(ctr, 1);
                            }
                        }
                    }
                }
            }
        }
        burst.free_all();
        add(&self.counters.rx_packets, n as u64);
        add(&self.counters.rx_bytes, bytes);
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
