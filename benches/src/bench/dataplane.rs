//! `synwall-bench dataplane` (`scripts/bench-dataplane`): the whole
//! appliance on one worker core against dpdk-testpmd on the same virtual
//! devices and the same core, back to back:
//!
//! ```text
//! net_pcap (rx_pcap=MIX, infinite_rx=1)  ──►  app on lcore CORE  ──►  net_null (no-rx=1)
//! ```
//!
//! The mixes (A/B rounds of testpmd io, testpmd 5tswap, synwall and the
//! `--baseline` synwall), the 1M-customer run, the scaling table and the
//! flood table; every round's values go to the JSON result (`--json`).
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::host::{self, Machine};
use super::inputs::{flood_frames, mean_wire_size, mkpcap, pool_mbufs, strings, Common};
use super::rates::{after_warmup, synwall_outside_tx_mpps, testpmd_tx_mpps};
use super::result::{cpu_sum, Begun, BenchRun, Ratio, Round, Row, RowKind, Settings};
use super::rounds::{ab_rounds, Runs};
use super::sampled::{command_line, run_sampled, Timing};
use super::stats::{fmt2, fmt2_dash, median, ratio, round_ratios, thousands};

/// Seconds of per-second rates ignored at the start of each run.
const WARMUP: u64 = 2;
/// The EAL main lcore of every app.
const MAIN_CORE: u32 = 0;
const MIXES: [&str; 4] = ["mix64", "imix", "mix15", "imix15"];
/// EAL memory of the flood, MB (-m): a pool of 2^18 - 1 mbufs of ~2.4 KB
/// and the 1M-customer table fit in it.
const FLOOD_MEM_MB: u64 = 1024;
/// The largest pool the flood's memory holds, mbufs: `--flood-frames` is
/// at most the capture it can keep ([`pool_mbufs`]).
const FLOOD_MAX_MBUFS: u64 = (1 << 18) - 1;

/// `synwall-bench dataplane`'s options: the ones `scripts/bench-dataplane`
/// always took (lists are space-separated, as the script took them).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Seconds per run (more than 4: 2 s warm-up, CPU sampled from 3 s).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Rounds (every app once per round).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// The worker lcore (the main lcore is 0).
    #[arg(long, default_value_t = 1)]
    pub core: u32,
    /// Skip the 64 B mix against 1M customers.
    #[arg(long)]
    pub no_1m: bool,
    /// Use --no-huge (4 KB pages) even where hugepages are free.
    #[arg(long)]
    pub no_huge: bool,
    /// Add the scaling table (synwall alone, --workers x --customers).
    #[arg(long)]
    pub scaling: bool,
    /// Skip the testpmd ratio rounds (and the 1M run).
    #[arg(long)]
    pub no_ratio: bool,
    /// Worker counts of the scaling table.
    #[arg(long, default_value = "1 2")]
    pub workers: String,
    /// Customer table sizes of the scaling table.
    #[arg(long, default_value = "1000 100000 1000000")]
    pub customers: String,
    /// `default` (the mixes) or `flood` (many active customers).
    #[arg(long, default_value = "default")]
    pub mix: String,
    /// Active customers of the flood rows.
    #[arg(long, default_value = "1000 8192 100000")]
    pub flood_customers: String,
    /// Mixes of the default table: mix64 imix mix15 imix15.
    #[arg(long, default_value = "mix64 imix mix15 imix15")]
    pub mixes: String,
    /// Customer-table layouts of the flood: bench billing (or billing-sorted).
    #[arg(long, default_value = "bench billing")]
    pub layouts: String,
    /// Customers of the established-SMTP flood row (0 skips it).
    #[arg(long, default_value_t = 10000)]
    pub smtp_customers: u64,
    /// Customers in synwall's table for the flood.
    #[arg(long, default_value_t = 1_000_000)]
    pub flood_table: u64,
    /// Frames of every flood and SMTP capture: max(FRAMES, active)
    /// (default max(8192, active)), so that rows of different active
    /// customers play captures of one size.
    #[arg(long, value_name = "FRAMES")]
    pub flood_frames: Option<u64>,
    /// A second synwall binary run right after synwall in every round.
    #[arg(long, value_name = "SYNWALL_BIN")]
    pub baseline: Option<PathBuf>,
}

/// The checked options.
#[derive(Debug)]
pub(crate) struct Plan {
    flood: bool,
    ratio: bool,
    run_1m: bool,
    workers: Vec<u32>,
    customers: Vec<u64>,
    flood_customers: Vec<u64>,
    /// `--flood-frames`: the least frames of a flood capture.
    flood_frames: Option<u64>,
    mixes: Vec<String>,
    layouts: Vec<String>,
}

fn words<T: std::str::FromStr>(
    flag: &str,
    list: &str,
    ok: impl Fn(&T) -> bool,
    what: &str,
) -> Result<Vec<T>, String> {
    list.split_whitespace()
        .map(|w| {
            w.parse::<T>()
                .ok()
                .filter(|v| ok(v))
                .ok_or_else(|| format!("{flag}: {w} is not {what}"))
        })
        .collect()
}

pub(crate) fn plan(a: &Args) -> Result<Plan, String> {
    if a.duration <= WARMUP + 2 {
        return Err(format!("--duration must be > {}", WARMUP + 2));
    }
    if a.repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    if a.core == MAIN_CORE {
        return Err(format!("--core must not be {MAIN_CORE} (the main lcore)"));
    }
    let workers = words(
        "--workers",
        &a.workers,
        |w: &u32| (1..=99).contains(w),
        "a number of workers (1..99)",
    )?;
    let customers = words(
        "--customers",
        &a.customers,
        |c: &u64| *c > 0,
        "a number of customers",
    )?;
    let mixes = words(
        "--mixes",
        &a.mixes,
        |m: &String| MIXES.contains(&m.as_str()),
        "mix64, imix, mix15 or imix15",
    )?;
    let layouts = words(
        "--layouts",
        &a.layouts,
        |l: &String| crate::customers::LayoutKind::parse(l).is_some(),
        "bench, billing or billing-sorted",
    )?;
    if mixes.is_empty() || layouts.is_empty() {
        return Err("--mixes and --layouts need at least one".into());
    }
    let mut p = Plan {
        flood: false,
        ratio: !a.no_ratio,
        run_1m: !a.no_1m && !a.no_ratio,
        workers,
        customers,
        flood_customers: vec![],
        flood_frames: None,
        mixes,
        layouts,
    };
    match a.mix.as_str() {
        "default" => {
            if !p.ratio && !a.scaling {
                return Err("--no-ratio without --scaling leaves nothing to run".into());
            }
            if a.flood_frames.is_some() {
                return Err("--flood-frames sizes the flood's captures; add --mix flood".into());
            }
        }
        "flood" => {
            if a.scaling {
                return Err("--scaling runs the default mix; leave out --mix flood".into());
            }
            if a.flood_table == 0 || a.flood_table > 1_048_576 {
                return Err(format!(
                    "--flood-table: {} is not a table size (1..1048576)",
                    a.flood_table
                ));
            }
            let t = a.flood_table;
            p.flood_customers = words(
                "--flood-customers",
                &a.flood_customers,
                |c: &u64| (1..=t).contains(c),
                &format!("a number of customers (1..{t})"),
            )?;
            if a.smtp_customers > t {
                return Err(format!(
                    "--smtp-customers: {} is not a number of customers (0..{t})",
                    a.smtp_customers
                ));
            }
            if let Some(f) = a.flood_frames {
                // mkpcap's least; the pool must fit in the flood's memory.
                if f < 100 || pool_mbufs(f) > FLOOD_MAX_MBUFS {
                    return Err(format!(
                        "--flood-frames: {f} is not a number of frames (100..{}: \
                         the capture and 8192 more mbufs must fit in -m {FLOOD_MEM_MB})",
                        FLOOD_MAX_MBUFS - 8192
                    ));
                }
                p.flood_frames = Some(f);
            }
            if p.flood_customers.is_empty() && a.smtp_customers == 0 {
                return Err(
                    "no --flood-customers and --smtp-customers 0 leave nothing to run".into(),
                );
            }
            p.flood = true;
            p.ratio = false;
            p.run_1m = false;
        }
        m => return Err(format!("--mix: {m} is not default or flood")),
    }
    Ok(p)
}

/// The apps a row's rounds run, in order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum App {
    Testpmd(&'static str),
    Synwall,
    Baseline,
}

impl App {
    fn key(self) -> &'static str {
        match self {
            App::Testpmd(mode) => mode,
            App::Synwall => "synwall",
            App::Baseline => "baseline",
        }
    }
}

/// How a row's runs are made (not part of the result).
#[derive(Debug, Clone)]
struct Setup {
    pcap: PathBuf,
    customers_file: PathBuf,
    mbufs: Option<u64>,
    /// `[block] scope`.
    scope: Option<&'static str>,
    workers: u32,
    /// Check synwall's summary as a flood (`flood`/`smtp`, active customers).
    check: Option<(&'static str, u64)>,
}

/// Everything a run needs to know about the bench.
struct Bench {
    args: Args,
    out: PathBuf,
    mem: Vec<String>,
    synwall: PathBuf,
    baseline: Option<PathBuf>,
    ncpu: u32,
    tag: String,
    runs: Runs,
}

impl Bench {
    fn timing(&self, stop_after: u64) -> Timing {
        Timing {
            duration: self.args.duration,
            warmup: WARMUP,
            stop_after,
        }
    }

    /// One run of `app` on a row: the round's values, logged as it goes.
    fn run(&mut self, round: usize, row: &mut (Row, Setup), app: App) {
        let start = self.runs.start();
        let (r, s) = (&row.0, &row.1);
        let name = format!("run{}-{}-{}", start.run, app.key(), r.id.replace(':', "-"));
        let log = self.out.join(format!("{name}.log"));
        let mut result = match app {
            App::Testpmd(mode) => self.testpmd(mode, s, &log, start.run),
            App::Synwall | App::Baseline => {
                let bin = if app == App::Synwall {
                    self.synwall.clone()
                } else {
                    self.baseline.clone().unwrap_or_default()
                };
                self.synwall(
                    &bin,
                    s,
                    &log,
                    &self.out.join(format!("{name}.json")),
                    start.run,
                )
            }
        };
        result.round = round;
        result.run = start.run;
        result.compilers_at_start = start.compilers;
        result.loadavg = host::loadavg();
        result.log = log.display().to_string();
        if result.failed.is_some() {
            self.runs.failed += 1;
        }
        let what = match app {
            App::Testpmd(mode) => format!("testpmd-{mode}"),
            App::Synwall => "synwall".into(),
            App::Baseline => "baseline synwall".into(),
        };
        let rate = match (result.mpps, result.mean_mpps) {
            (Some(m), Some(w)) => format!("{m:.2} Mpps median/s, {w:.2} Mpps whole run"),
            (Some(m), None) => format!("{m:.2} Mpps"),
            _ => "FAILED".into(),
        };
        let cpu: Vec<String> = result.cpu.iter().map(|c| fmt2(*c)).collect();
        let note = match (&result.failed, &result.note) {
            (Some(f), _) => format!("; FAILED: {f}"),
            (None, Some(n)) => format!("; {n}"),
            _ => String::new(),
        };
        println!(
            "   round {round} {} {what}: {rate}, worker CPU share {}{note} ({})",
            r.id,
            cpu.join("+"),
            Runs::load_note(start)
        );
        row.0.push(app.key(), result);
    }

    fn testpmd(&self, mode: &str, s: &Setup, log: &Path, n: usize) -> Round {
        let mut cmd = Command::new("dpdk-testpmd");
        cmd.arg("-l").arg(format!("{MAIN_CORE},{}", self.args.core));
        cmd.args(&self.mem).arg("--no-pci");
        cmd.arg(format!("--file-prefix={}_tp_{n}", self.tag))
            .arg("--log-level=*:notice");
        cmd.arg(format!(
            "--vdev=net_pcap0,rx_pcap={},infinite_rx=1",
            s.pcap.display()
        ));
        cmd.arg("--vdev=net_null0,no-rx=1").arg("--");
        cmd.arg(format!("--forward-mode={mode}"));
        cmd.args(["--nb-cores=1", "--stats-period=1", "--rxq=1", "--txq=1"]);
        if let Some(m) = s.mbufs {
            cmd.arg(format!("--total-num-mbufs={m}"));
        }
        let command = command_line(&cmd);
        let cpu = run_sampled(
            &mut cmd,
            log,
            &[self.args.core],
            self.timing(self.args.duration + 3),
        );
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut round = measured(testpmd_tx_mpps(&text, 1), command, cpu);
        if round.failed.is_none() && round.mpps.is_none() {
            let why = text
                .lines()
                .find(|l| {
                    let l = l.to_lowercase();
                    l.contains("error") || l.contains("fail") || l.contains("cannot")
                })
                .unwrap_or("no error line");
            round.failed = Some(format!("no Tx-pps of port 1 in {} ({why})", log.display()));
        }
        round.mpps_per_cpu = ratio(round.mpps, cpu_sum(&round.cpu));
        round
    }

    fn synwall(&self, bin: &Path, s: &Setup, log: &Path, summary: &Path, n: usize) -> Round {
        let dir = self.out.join(format!("synwall-{n}"));
        let lcores: Vec<u32> = (0..s.workers).map(|w| self.args.core + w).collect();
        let config = synwall_config(self, s, &dir, n, &lcores);
        let written = std::fs::create_dir_all(dir.join("state"))
            .and_then(|()| std::fs::write(dir.join("synwall.toml"), config))
            .map_err(|e| format!("writing {}: {e}", dir.display()));
        let _ = std::fs::remove_file(summary);
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(dir.join("synwall.toml"));
        cmd.arg("--duration").arg(self.args.duration.to_string());
        cmd.arg("--summary-json").arg(summary);
        let command = command_line(&cmd);
        let cpu = written.and_then(|()| {
            run_sampled(
                &mut cmd,
                log,
                &lcores,
                self.timing(self.args.duration + 120),
            )
        });
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut round = measured(synwall_outside_tx_mpps(&text), command, cpu);
        let summary = std::fs::read_to_string(summary)
            .map_err(|e| format!("no summary ({e})"))
            .and_then(|t| {
                serde_json::from_str::<Value>(&t).map_err(|e| format!("no summary ({e})"))
            });
        match &summary {
            Ok(v) => round.mean_mpps = summary_mean_mpps(v),
            Err(e) if round.failed.is_none() => {
                let last = text.lines().last().unwrap_or("");
                round.failed = Some(format!("{e}; synwall's last words: {last}"));
            }
            Err(_) => {}
        }
        if let Ok(v) = &summary {
            match s.check {
                Some((shape, active)) => match check_summary(v, shape, active) {
                    Ok(ok) => round.note = Some(format!("ok: {ok}")),
                    Err(bad) => round.failed = round.failed.take().or(Some(bad)),
                },
                None => {
                    round.note = Some(format!(
                        "dropped_blocked {}",
                        v["verdicts"]["dropped_blocked"]
                    ))
                }
            }
        }
        if round.failed.is_none() && round.mpps.is_none() {
            round.failed = Some(format!("no outside tx rate in {}", log.display()));
        }
        round.mpps_per_cpu = ratio(round.mpps, cpu_sum(&round.cpu));
        round
    }
}

/// A run's round from its per-second rates (the median after warm-up; a
/// rate of 0 is none) and its CPU sample (or why the run could not be made).
fn measured(
    per_second: Vec<f64>,
    command: Vec<String>,
    cpu: Result<Vec<Option<f64>>, String>,
) -> Round {
    let mpps = median(&after_warmup(&per_second, WARMUP as usize)).filter(|m| *m > 0.0);
    let mut round = Round {
        per_second,
        mpps,
        command,
        ..Round::default()
    };
    match cpu {
        Ok(cpu) => round.cpu = cpu,
        Err(e) => round.failed = Some(e),
    }
    round
}

/// synwall's config for one run: `queues = W` rx queues on the inside port,
/// each replaying its own copy of the pcap; limits far above what a run can
/// reach, so the only blocked customer is `acme` and the verdict mix stays
/// the same for the whole run and across runs.
fn synwall_config(b: &Bench, s: &Setup, dir: &Path, n: usize, lcores: &[u32]) -> String {
    let q = |v: &str| format!("{v:?}");
    let mut eal: Vec<String> = b.mem.iter().map(|m| q(m)).collect();
    eal.push(q("--no-pci"));
    eal.push(q(&format!("--file-prefix={}_sw_{n}", b.tag)));
    eal.push(q("--log-level=*:notice"));
    if lcores.len() > 1 {
        // Pin every worker lcore to a CPU that exists (L mod nproc).
        let mut arg = format!("--lcores={MAIN_CORE}@{}", MAIN_CORE % b.ncpu);
        for l in lcores {
            let _ = write!(arg, ",{l}@{}", l % b.ncpu);
        }
        eal.push(q(&arg));
    }
    let rx: String = lcores
        .iter()
        .map(|_| format!("rx_pcap={},", s.pcap.display()))
        .collect();
    eal.push(q(&format!("--vdev=net_pcap0,{rx}infinite_rx=1")));
    eal.push(q("--vdev=net_null0,no-rx=1"));
    let cores: Vec<String> = lcores.iter().map(u32::to_string).collect();
    let state = dir.join("state");
    let mut c = format!(
        "customers_file = {}\n[dpdk]\neal_args = [{}]\ncores = [{}]\n",
        q(&s.customers_file.display().to_string()),
        eal.join(", "),
        cores.join(", ")
    );
    if let Some(m) = s.mbufs {
        let _ = writeln!(c, "mbufs = {m}");
    }
    let _ = write!(
        c,
        "[[link]]\ninside = \"net_pcap0\"\noutside = \"net_null0\"\nqueues = {}\n[control]\nstate_dir = {}\nsocket = {}\nevents = {}\nstats_interval = \"1s\"\n\
         [windows]\n\"5m\" = 1000000000000\n\"1h\" = 1000000000000\n\"1d\" = 1000000000000\n\
         [[customer]]\nname = \"acme\"\nprefixes = [\"198.51.100.0/24\", \"2001:db8:ffff:ffff::/64\"]\nblocked = true\n",
        lcores.len(),
        q(&state.display().to_string()),
        q(&state.join("control.sock").display().to_string()),
        q(&state.join("events.jsonl").display().to_string()),
    );
    if let Some(scope) = s.scope {
        let _ = write!(c, "[block]\nscope = \"{scope}\"\n");
    }
    c
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// outside tx packets / elapsed seconds of a `--summary-json`, in Mpps.
pub fn summary_mean_mpps(d: &Value) -> Option<f64> {
    summary_mpps(d, "outside", "tx_packets")
}

/// `counter` (`tx_packets`, `rx_packets`) of the ports on `side` over the
/// elapsed seconds of a `--summary-json`, in Mpps.
pub fn summary_mpps(d: &Value, side: &str, counter: &str) -> Option<f64> {
    let ports = d["ports"].as_array()?;
    let packets: u64 = ports
        .iter()
        .filter(|p| p["side"] == side)
        .map(|p| u(&p[counter]))
        .sum();
    let secs = d["elapsed_secs"].as_f64().filter(|s| *s > 0.0)?;
    Some(packets as f64 / secs / 1e6)
}

/// Checks a synwall summary of a flood run (`shape` flood: SYNs only; smtp:
/// established SMTP with a few SYNs): forwarded = rx, no drops, every frame
/// a watched SYN / SMTP segment, every active customer counted, the mempool
/// as full at the end as at the start. `Ok` says what it saw.
pub fn check_summary(d: &Value, shape: &str, active: u64) -> Result<String, String> {
    let (v, o, m) = (&d["verdicts"], &d["outcomes"], &d["mempool"]);
    let ports = d["ports"].as_array().ok_or("summary without ports")?;
    let side = |s: &str, k: &str| -> u64 {
        ports
            .iter()
            .filter(|p| p["side"] == s)
            .map(|p| u(&p[k]))
            .sum()
    };
    let (rx_in, tx_out) = (side("inside", "rx_packets"), side("outside", "tx_packets"));
    let nombuf: u64 = ports.iter().map(|p| u(&p["rx_nombuf"])).sum();
    let (syn, other) = (u(&o["syn_watched"]), u(&o["watched_other"]));
    let empty = vec![];
    let seen: Vec<&Value> = d["customers"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter(|c| u(&c["syn_seen"]) > 0)
        .collect();
    let mut bad = Vec::new();
    if rx_in == 0 {
        bad.push("nothing received".to_owned());
    }
    if u(&v["rx"]) != rx_in || u(&v["forwarded"]) != rx_in {
        bad.push(format!(
            "rx {} / forwarded {} != inside rx {rx_in}",
            v["rx"], v["forwarded"]
        ));
    }
    if tx_out != u(&v["forwarded"]) {
        bad.push(format!(
            "outside tx {tx_out} != forwarded {}",
            v["forwarded"]
        ));
    }
    for k in [
        "dropped_blocked",
        "dropped_malformed",
        "reset_sent",
        "syn_no_customer",
    ] {
        if u(&v[k]) != 0 {
            bad.push(format!("{k} {}", v[k]));
        }
    }
    if shape == "flood" {
        if syn != rx_in {
            bad.push(format!("syn_watched {syn} != rx {rx_in}"));
        }
        if seen.len() as u64 != active {
            bad.push(format!(
                "{} customers counted SYNs, expected {active}",
                seen.len()
            ));
        }
    } else if syn + other != rx_in || syn == 0 {
        bad.push(format!(
            "syn_watched {syn} + watched_other {other} != rx {rx_in}"
        ));
    }
    if seen.iter().map(|c| u(&c["syn_forwarded"])).sum::<u64>() != syn {
        bad.push("customers' forwarded SYNs != syn_watched".into());
    }
    if m["in_use"] != m["in_use_at_start"] {
        bad.push(format!(
            "mempool in use {} at the end, {} at the start",
            m["in_use"], m["in_use_at_start"]
        ));
    }
    let what = format!(
        "rx {rx_in}, forwarded {}, syn_watched {syn}, watched_other {other}, {} customers with SYNs, dropped 0, rx_nombuf {nombuf}, mempool {}/{} in use",
        v["forwarded"],
        seen.len(),
        m["in_use_at_start"],
        m["size"]
    );
    if bad.is_empty() {
        Ok(what)
    } else {
        Err(format!("{} ({what})", bad.join("; ")))
    }
}

fn new_row(
    id: String,
    kind: RowKind,
    traffic: String,
    pcap: &Path,
    customers: u64,
    layout: &str,
    workers: u32,
) -> Result<Row, String> {
    let (mean_wire_bytes, frames) = mean_wire_size(pcap)?;
    Ok(Row {
        id,
        kind,
        traffic,
        frames,
        mean_wire_bytes,
        customers,
        active_customers: None,
        layout: layout.to_owned(),
        workers,
        mbufs: None,
        apps: Default::default(),
        ratios: Default::default(),
    })
}

/// Runs the bench; returns the result and whether every run passed.
pub fn run(args: Args) -> Result<(BenchRun, bool), String> {
    let p = plan(&args)?;
    let (out, bins) = args.common.dirs("bench")?;
    let needs_testpmd = p.ratio || p.flood;
    if needs_testpmd {
        host::need_testpmd()?;
    }
    let synwall = bins.copy("synwall")?;
    let mk = bins.copy("synwall-mkpcap")?;
    let tag = format!("swb{}", std::process::id());
    let _runtime_dirs = host::RuntimeDirs::new(format!("{tag}_"));
    let baseline = bins.baseline(args.baseline.as_deref())?;
    let begun = Begun::now();
    let checkout = format!(
        "{}{}",
        begun.commit,
        if begun.dirty {
            " + uncommitted changes"
        } else {
            ""
        }
    );
    match &args.common.bin_dir {
        // Binaries built elsewhere: the checkout's commit is not theirs.
        Some(dir) => println!(
            "== synwall from --bin-dir {} (this checkout: {checkout})",
            dir.display()
        ),
        None => println!("== synwall from {checkout}"),
    }
    // EAL memory (-m, MB): the flood holds up to F + 8192 mbufs of ~2.3 KB.
    let mem_mb = if p.flood { FLOOD_MEM_MB } else { 512 };
    let huge = !args.no_huge && host::reserve_hugepages(mem_mb);
    let mem: Vec<String> = if huge {
        println!("== memory: 2 MB hugepages, -m {mem_mb}");
        strings(&["-m", &mem_mb.to_string(), "--huge-unlink"])
    } else {
        println!("== memory: --no-huge (anonymous 4 KB pages), -m {mem_mb}");
        strings(&["--no-huge", "-m", &mem_mb.to_string()])
    };
    println!("== traffic mixes and customer tables in {}", out.display());
    let o = |f: &str| out.join(f).display().to_string();
    let mut b = Bench {
        args: args.clone(),
        out: out.clone(),
        mem,
        synwall,
        baseline,
        ncpu: u32::try_from(Machine::this().cpus.max(1)).unwrap_or(1),
        tag,
        runs: Runs::new(args.common.wait_idle),
    };
    let mut rows: Vec<(Row, Setup)> = Vec::new();
    if p.flood {
        let t = args.flood_table.to_string();
        for l in &p.layouts {
            let mut shapes: Vec<(&'static str, u64)> =
                p.flood_customers.iter().map(|&c| ("flood", c)).collect();
            if args.smtp_customers > 0 {
                shapes.push(("smtp", args.smtp_customers));
            }
            for (shape, c) in shapes {
                let f = flood_frames(c, p.flood_frames);
                let pcap = o(&format!("{shape}-{c}-{l}-f{f}.pcap"));
                let kind_flag = if shape == "flood" {
                    "--flood"
                } else {
                    "--smtp-established"
                };
                mkpcap(
                    &mk,
                    &[
                        "--out",
                        &pcap,
                        kind_flag,
                        &c.to_string(),
                        "--frames",
                        &f.to_string(),
                        "--customers",
                        &t,
                        "--layout",
                        l,
                    ],
                    false,
                )?;
                let traffic = if shape == "flood" {
                    "SYN flood"
                } else {
                    "established SMTP, scope smtp"
                };
                let (kind, scope) = if shape == "flood" {
                    (RowKind::Flood, None)
                } else {
                    (RowKind::Smtp, Some("smtp"))
                };
                let mut row = new_row(
                    format!("{shape}:{c}:{l}:f{f}"),
                    kind,
                    traffic.into(),
                    Path::new(&pcap),
                    args.flood_table,
                    l,
                    1,
                )?;
                row.active_customers = Some(c);
                row.mbufs = Some(pool_mbufs(f));
                let setup = Setup {
                    pcap: pcap.into(),
                    customers_file: out.join(format!("customers-flood-{l}.toml")),
                    mbufs: row.mbufs,
                    scope,
                    workers: 1,
                    check: Some((shape, c)),
                };
                rows.push((row, setup));
            }
            mkpcap(
                &mk,
                &[
                    "--customers",
                    &t,
                    "--customers-file",
                    &o(&format!("customers-flood-{l}.toml")),
                    "--layout",
                    l,
                ],
                false,
            )?;
        }
    } else {
        mkpcap(&mk, &["--out", &o("mix64.pcap"), "--sizes", "64"], false)?;
        mkpcap(&mk, &["--out", &o("imix.pcap"), "--sizes", "imix"], false)?;
        mkpcap(
            &mk,
            &[
                "--customers",
                "1000",
                "--customers-file",
                &o("customers-1k.toml"),
            ],
            true,
        )?;
        let busy = [
            "--frames",
            "8192",
            "--syn-pct",
            "15",
            "--mailers",
            "1000",
            "--layout",
            "billing",
        ];
        mkpcap(
            &mk,
            &[&["--out", &o("mix15.pcap"), "--sizes", "64"][..], &busy].concat(),
            false,
        )?;
        mkpcap(
            &mk,
            &[&["--out", &o("imix15.pcap"), "--sizes", "imix"][..], &busy].concat(),
            false,
        )?;
        mkpcap(
            &mk,
            &[
                "--customers",
                "1000",
                "--layout",
                "billing",
                "--customers-file",
                &o("customers-billing-1k.toml"),
            ],
            true,
        )?;
        if p.run_1m {
            mkpcap(
                &mk,
                &[
                    "--customers",
                    "1000000",
                    "--customers-file",
                    &o("customers-1m.toml"),
                ],
                true,
            )?;
        }
        if args.scaling {
            for c in &p.customers {
                let f = out.join(format!("customers-{c}.toml"));
                if !f.exists() {
                    mkpcap(
                        &mk,
                        &[
                            "--customers",
                            &c.to_string(),
                            "--customers-file",
                            &f.display().to_string(),
                        ],
                        true,
                    )?;
                }
            }
        }
        if p.ratio {
            for m in &p.mixes {
                let busy = m.ends_with("15");
                let sizes = if m.starts_with("imix") {
                    "IMIX"
                } else {
                    "64 B"
                };
                let traffic = if busy {
                    format!("busy mix, {sizes} (8,192 frames, 15 % SYNs to port 25 from 1,000 customers)")
                } else {
                    format!(
                        "default mix, {sizes} (1,024 frames, 5 % SYNs to port 25 from 8 mailers)"
                    )
                };
                let layout = if busy { "billing" } else { "bench" };
                let pcap = out.join(format!("{m}.pcap"));
                let mut row = new_row(m.clone(), RowKind::Mix, traffic, &pcap, 1000, layout, 1)?;
                // infinite_rx keeps the whole capture in the pool: the
                // 8,192-frame mixes need a bigger one than the apps' defaults.
                row.mbufs = busy.then(|| pool_mbufs(8192));
                let file = if busy {
                    "customers-billing-1k.toml"
                } else {
                    "customers-1k.toml"
                };
                let setup = Setup {
                    pcap,
                    customers_file: out.join(file),
                    mbufs: row.mbufs,
                    scope: None,
                    workers: 1,
                    check: None,
                };
                rows.push((row, setup));
            }
        }
    }
    let mut apps = if p.flood {
        vec![App::Testpmd("io"), App::Synwall]
    } else {
        vec![App::Testpmd("io"), App::Testpmd("5tswap"), App::Synwall]
    };
    if b.baseline.is_some() {
        apps.push(App::Baseline);
    }
    ab_rounds(args.repeat, &mut rows, &apps, |round, row, &app| {
        b.run(round, row, app)
    });
    if p.run_1m && p.mixes.iter().any(|m| m == "mix64") {
        let pcap = out.join("mix64.pcap");
        let row = new_row(
            "mix64:1m".into(),
            RowKind::Mix1m,
            "default mix, 64 B, 1M customers".into(),
            &pcap,
            1_000_000,
            "bench",
            1,
        )?;
        let setup = Setup {
            pcap,
            customers_file: out.join("customers-1m.toml"),
            mbufs: None,
            scope: None,
            workers: 1,
            check: None,
        };
        let mut one = vec![(row, setup)];
        ab_rounds(1, &mut one, &[App::Synwall], |round, row, &app| {
            b.run(round, row, app)
        });
        rows.extend(one);
    }
    if args.scaling {
        let mut scale = Vec::new();
        for c in &p.customers {
            for &w in &p.workers {
                let pcap = out.join("mix64.pcap");
                let row = new_row(
                    format!("scale:w{w}:c{c}"),
                    RowKind::Scale,
                    "default mix, 64 B".into(),
                    &pcap,
                    *c,
                    "bench",
                    w,
                )?;
                let setup = Setup {
                    pcap,
                    customers_file: out.join(format!("customers-{c}.toml")),
                    mbufs: None,
                    scope: None,
                    workers: w,
                    check: None,
                };
                scale.push((row, setup));
            }
        }
        ab_rounds(
            args.repeat,
            &mut scale,
            &[App::Synwall],
            |round, row, &app| b.run(round, row, app),
        );
        rows.extend(scale);
    }
    let pairs = [
        ("synwall", "io"),
        ("synwall", "5tswap"),
        ("baseline", "io"),
        ("baseline", "5tswap"),
        ("synwall", "baseline"),
    ];
    let mut rows: Vec<Row> = rows.into_iter().map(|(r, _)| r).collect();
    for r in &mut rows {
        r.finish(&pairs);
    }
    let settings = Settings {
        duration_secs: args.duration,
        repeat: args.repeat,
        warmup_secs: WARMUP,
        core: args.core,
        hugepages: huge,
        mem_mb,
        mix: args.mix.clone(),
        logs: out.display().to_string(),
    };
    let result = BenchRun::finished("dataplane", begun, &b.runs, settings, rows, None);
    print!("{}", tables(&result, &p.workers));
    let checks = if p.flood {
        ", every synwall summary passed its checks"
    } else {
        ""
    };
    let ok = result.save(
        &out,
        args.common.json.as_deref(),
        &format!("produced rates{checks}"),
    )?;
    Ok((result, ok))
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A cell: the median, with how many of its runs failed.
fn cell(r: &Row, app: &str) -> String {
    let Some(s) = r.apps.get(app) else {
        return "-".into();
    };
    let (bad, all) = s.failures();
    let med = fmt2(s.median.mpps);
    match bad {
        0 => med,
        b if b == all => format!("**FAILED** ({b} of {all})"),
        b => format!("{med} (**{b} of {all} FAILED**)"),
    }
}

/// The tables the script printed, from a result.
pub fn tables(res: &BenchRun, workers: &[u32]) -> String {
    let mut t = String::new();
    let s = &res.settings;
    let when = &res.date;
    let kind = |k: RowKind| res.rows.iter().filter(move |r| r.kind == k);
    let has_baseline = res.rows.iter().any(|r| r.apps.contains_key("baseline"));
    let med = |r: &Row, app: &str| r.median(app);
    let _ = writeln!(t);
    if kind(RowKind::Scale).next().is_some() {
        let first = workers.first().copied().unwrap_or(1);
        let _ = writeln!(t, "Scaling: synwall alone, 64 B mix, net_pcap infinite_rx (one rx queue per worker, each its own copy of the mix) -> net_null,");
        let _ = writeln!(t, "{}s per run, {} round(s), median over rounds; worker lcores from {}, lcore L on CPU L mod {n} ({n} CPUs here); hugepages: {}; {when}.", s.duration_secs, s.repeat, s.core, yes_no(s.hugepages), n = res.machine.cpus);
        let _ = writeln!(t, "CPU = share of a CPU each worker thread got (per round). Mpps per worker CPU-second = Mpps / (sum of the workers' CPU shares), median over rounds.\n");
        let _ = writeln!(t, "| workers | customers | Mpps (median/s) | whole-run mean | worker CPU | Mpps per worker CPU-second | Mpps ÷ ({first} worker(s), same customers) |");
        let _ = writeln!(t, "|---:|---:|---:|---:|---:|---:|---:|");
        for r in kind(RowKind::Scale) {
            let m = med(r, "synwall");
            let shares: Vec<String> = r.apps.get("synwall").map_or(vec![], |s| {
                s.rounds
                    .iter()
                    .map(|x| x.cpu.iter().map(|c| fmt2(*c)).collect::<Vec<_>>().join("+"))
                    .collect()
            });
            let base = res
                .rows
                .iter()
                .find(|x| {
                    x.kind == RowKind::Scale && x.workers == first && x.customers == r.customers
                })
                .and_then(|x| x.median("synwall").mpps);
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.workers,
                r.customers,
                fmt2(m.mpps),
                fmt2(m.mean_mpps),
                shares.join(" "),
                fmt2(m.mpps_per_cpu),
                fmt2_dash(ratio(m.mpps, base))
            );
        }
        let _ = writeln!(t);
    }
    let flood: Vec<&Row> = res
        .rows
        .iter()
        .filter(|r| matches!(r.kind, RowKind::Flood | RowKind::Smtp))
        .collect();
    if !flood.is_empty() {
        let _ = writeln!(t, "Flood: many active customers. One worker core (lcore {}), net_pcap infinite_rx -> net_null, {}s runs, {} round(s);", s.core, s.duration_secs, s.repeat);
        let _ = writeln!(t, "testpmd --forward-mode=io and synwall ({} customers in its table, limits far above reach) back to back on the same pcap;", flood[0].customers);
        let _ = writeln!(t, "hugepages: {}, -m {}; {when}; Mpps = median over rounds of each run's median per-second rate;", yes_no(s.hugepages), s.mem_mb);
        let _ = writeln!(t, "CPU = share of a CPU the forwarding thread got; Mpps/CPU = Mpps / CPU; ratios taken per round, then the median.\n");
        let _ = writeln!(t, "| traffic | layout | active customers | frames (mbufs) | testpmd io Mpps | CPU | Mpps/CPU | synwall Mpps (whole-run mean) | CPU | Mpps/CPU | synwall ÷ io (per round, Mpps/CPU) | synwall ÷ io (raw Mpps) |");
        let _ = writeln!(
            t,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &flood {
            let (io, sw, q) = (med(r, "io"), med(r, "synwall"), r.ratio("synwall", "io"));
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} ({}) | {} | {} | {} | {} ({}) | {} | {} | {} | {} |",
                r.traffic,
                r.layout,
                r.active_customers.unwrap_or(0),
                r.frames,
                r.mbufs.unwrap_or(0),
                cell(r, "io"),
                fmt2(io.cpu),
                fmt2(io.mpps_per_cpu),
                cell(r, "synwall"),
                fmt2(sw.mean_mpps),
                fmt2(sw.cpu),
                fmt2(sw.mpps_per_cpu),
                fmt2_dash(q.per_cpu),
                fmt2_dash(q.raw)
            );
        }
        let scaling = flood_scaling(&flood);
        if !scaling.is_empty() {
            let _ = writeln!(t, "\nScaling with active customers: each layout's SYN flood rows against its {} row, synwall's and testpmd io's Mpps per round, then the median", thousands(SCALING_BASE));
            let _ = writeln!(t, "(Mpps/CPU likewise in brackets); each row says its capture's frames: io slows on a bigger capture too, so only rows of the same frames measure synwall alone.");
            for line in scaling {
                let _ = writeln!(t, "{line}");
            }
        }
        if has_baseline {
            baseline_table(&mut t, &flood);
        }
    }
    let mixes: Vec<&Row> = kind(RowKind::Mix).collect();
    if !mixes.is_empty() {
        let _ = writeln!(t, "Forwarding on one worker core (lcore {}), net_pcap infinite_rx -> net_null, {}s runs, {} round(s);", s.core, s.duration_secs, s.repeat);
        let _ = writeln!(t, "hugepages: {}; {when}; Mpps = median over rounds of each run's median per-second rate;", yes_no(s.hugepages));
        let _ = writeln!(t, "CPU = share of a CPU the forwarding thread got; Mpps/CPU = Mpps / CPU (throughput per CPU-second of the worker).\n");
        let _ = writeln!(t, "| mix | app | Mpps | CPU | Mpps/CPU | synwall ÷ app (per round, Mpps/CPU) | synwall ÷ app (raw Mpps) |");
        let _ = writeln!(t, "|---|---|---:|---:|---:|---:|---:|");
        let one_m = kind(RowKind::Mix1m).next();
        for r in &mixes {
            for app in ["io", "5tswap"] {
                let (m, q) = (med(r, app), r.ratio("synwall", app));
                let _ = writeln!(
                    t,
                    "| {} | testpmd {app} | {} | {} | {} | {} | {} |",
                    r.id,
                    cell(r, app),
                    fmt2(m.cpu),
                    fmt2(m.mpps_per_cpu),
                    fmt2(q.per_cpu),
                    fmt2(q.raw)
                );
            }
            let m = med(r, "synwall");
            let table = format!("{}k {}", r.customers / 1000, r.layout);
            let _ = writeln!(
                t,
                "| {} | synwall, {table} customers (whole-run mean {}) | {} | {} | {} | | |",
                r.id,
                fmt2(m.mean_mpps),
                cell(r, "synwall"),
                fmt2(m.cpu),
                fmt2(m.mpps_per_cpu)
            );
            if let (true, Some(x)) = (r.id == "mix64", one_m) {
                let m1 = med(x, "synwall");
                let q = ratio(m1.mpps_per_cpu, m.mpps_per_cpu);
                let _ = writeln!(t, "| {} | synwall, 1M customers (whole-run mean {}; 1 run) | {} | {} | {} | 1M ÷ 1k: {} | |", r.id, fmt2(m1.mean_mpps), cell(x, "synwall"), fmt2(m1.cpu), fmt2(m1.mpps_per_cpu), fmt2_dash(q));
            }
        }
        if has_baseline {
            baseline_table(&mut t, &mixes);
        }
    }
    let _ = writeln!(
        t,
        "\nper-run values (each row and app, its runs in round order):"
    );
    for r in &res.rows {
        for (app, s) in &r.apps {
            let col =
                |f: &dyn Fn(&Round) -> String| s.rounds.iter().map(f).collect::<Vec<_>>().join(" ");
            let _ = writeln!(
                t,
                "  {:<36} Mpps {}; CPU {}; Mpps/CPU {}; whole-run mean {}",
                format!("{},{app}", r.id),
                col(&|x| fmt2(x.mpps)),
                col(&|x| x.cpu.iter().map(|c| fmt2(*c)).collect::<Vec<_>>().join("+")),
                col(&|x| fmt2(x.mpps_per_cpu)),
                col(&|x| fmt2(x.mean_mpps)),
            );
        }
    }
    t
}

/// Issue 26's reference row: the SYN flood from 8,192 active customers;
/// the rows of more active customers are taken over it.
pub(crate) const SCALING_BASE: u64 = 8192;

/// `row ÷ base` for `app`'s rates, per round and then the median: on Mpps
/// per CPU-second and on raw Mpps, as the rows' own ratios are.
fn rows_ratio(row: &Row, base: &Row, app: &str) -> Ratio {
    let (Some(a), Some(b)) = (row.apps.get(app), base.apps.get(app)) else {
        return Ratio::default();
    };
    Ratio {
        per_cpu: round_ratios(&a.per_cpu(), &b.per_cpu()),
        raw: round_ratios(&a.mpps(), &b.mpps()),
    }
}

/// The scaling lines of the flood table: for each layout, every SYN flood
/// row of more than [`SCALING_BASE`] active customers over that layout's
/// [`SCALING_BASE`] row, with both rows' frames; nothing where either row
/// was not run.
pub(crate) fn flood_scaling(rows: &[&Row]) -> Vec<String> {
    let floods = || rows.iter().filter(|r| r.kind == RowKind::Flood);
    let mut lines = Vec::new();
    for base in floods().filter(|r| r.active_customers == Some(SCALING_BASE)) {
        for row in floods().filter(|r| {
            r.layout == base.layout && r.active_customers.is_some_and(|a| a > SCALING_BASE)
        }) {
            let (sw, io) = (
                rows_ratio(row, base, "synwall"),
                rows_ratio(row, base, "io"),
            );
            lines.push(format!(
                "- {}: {} active ({} frames) ÷ {} active ({} frames): synwall {} ({}), testpmd io {} ({})",
                row.layout,
                thousands(row.active_customers.unwrap_or(0)),
                thousands(row.frames),
                thousands(SCALING_BASE),
                thousands(base.frames),
                fmt2_dash(sw.raw),
                fmt2_dash(sw.per_cpu),
                fmt2_dash(io.raw),
                fmt2_dash(io.per_cpu)
            ));
        }
    }
    lines
}

fn baseline_table(t: &mut String, rows: &[&Row]) {
    let _ = writeln!(t, "\nThis build against the baseline synwall (--baseline), run right after it in each round; ratios per round, then the median:\n");
    let _ = writeln!(t, "| row | synwall Mpps | baseline Mpps | synwall ÷ baseline (Mpps/CPU) | synwall ÷ io | baseline ÷ io | synwall ÷ 5tswap | baseline ÷ 5tswap |");
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let d = |a: &str, b: &str| fmt2_dash(r.ratio(a, b).raw);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            cell(r, "synwall"),
            cell(r, "baseline"),
            fmt2_dash(r.ratio("synwall", "baseline").per_cpu),
            d("synwall", "io"),
            d("baseline", "io"),
            d("synwall", "5tswap"),
            d("baseline", "5tswap")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::result::Load;
    use serde_json::json;

    /// A synwall `--summary-json` of a flood run, trimmed to two customers.
    fn flood_summary() -> Value {
        json!({
            "elapsed_secs": 5.014313095,
            "ports": [
                {"name": "net_pcap0", "side": "inside", "rx_packets": 34295840, "tx_packets": 0, "rx_nombuf": 0},
                {"name": "net_null0", "side": "outside", "rx_packets": 0, "tx_packets": 34295840, "rx_nombuf": 0}
            ],
            "outcomes": {"syn_watched": 34295840, "watched_other": 0},
            "verdicts": {"rx": 34295840, "forwarded": 34295840, "dropped_blocked": 0, "dropped_malformed": 0,
                         "reset_sent": 0, "reverse_forwarded": 0, "tx_full": 0, "syn_no_customer": 0},
            "mempool": {"size": 32767, "in_use": 8192, "in_use_at_start": 8192},
            "customers": [
                {"name": "acme", "syn_seen": 0, "syn_forwarded": 0},
                {"name": "c1", "syn_seen": 20000000, "syn_forwarded": 20000000},
                {"name": "c2", "syn_seen": 14295840, "syn_forwarded": 14295840}
            ]
        })
    }

    #[test]
    fn summary_checks_pass_and_fail() {
        let d = flood_summary();
        let mean = summary_mean_mpps(&d).unwrap();
        assert!((mean - 6.8396).abs() < 0.001, "{mean}");
        assert!(check_summary(&d, "flood", 2)
            .unwrap()
            .starts_with("rx 34295840, forwarded 34295840"));
        let e = check_summary(&d, "flood", 8192).unwrap_err();
        assert!(e.contains("2 customers counted SYNs, expected 8192"), "{e}");
        let mut d = flood_summary();
        d["verdicts"]["dropped_blocked"] = json!(5);
        d["mempool"]["in_use"] = json!(8000);
        let e = check_summary(&d, "flood", 2).unwrap_err();
        assert!(
            e.contains("dropped_blocked 5") && e.contains("mempool in use 8000"),
            "{e}"
        );
        assert!(check_summary(&json!({}), "flood", 1).is_err());
    }

    #[test]
    fn options_are_checked_before_anything_runs() {
        let plan_of = |argv: &[&str]| plan(&crate::bench::inputs::parse_args::<Args>(argv));
        assert!(plan_of(&[]).unwrap().run_1m);
        let flood = plan_of(&["--mix", "flood", "--flood-customers", "8192 100000"]).unwrap();
        assert!(flood.flood && !flood.ratio && !flood.run_1m);
        assert_eq!(flood.flood_customers, [8192, 100_000]);
        // --flood-frames: (arguments, the plan's floor, or the error's words)
        type Case = (&'static [&'static str], Result<Option<u64>, &'static str>);
        let cases: [Case; 7] = [
            (&["--mix", "flood"], Ok(None)),
            (
                &["--mix", "flood", "--flood-frames", "100000"],
                Ok(Some(100_000)),
            ),
            (
                &["--mix", "flood", "--flood-frames", "253951"],
                Ok(Some(253_951)),
            ),
            (
                &["--mix", "flood", "--flood-frames", "253952"],
                Err("--flood-frames: 253952 is not"),
            ),
            (
                &["--mix", "flood", "--flood-frames", "99"],
                Err("(100..253951"),
            ),
            (&["--flood-frames", "100000"], Err("add --mix flood")),
            (&["--mix", "flood", "--flood-frames", "many"], Err("'many'")),
        ];
        for (argv, want) in cases {
            let parsed = crate::bench::inputs::try_parse_args::<Args>(argv);
            match (parsed.and_then(|a| plan(&a)), want) {
                (Ok(p), Ok(f)) => assert_eq!(p.flood_frames, f, "{argv:?}"),
                (Err(e), Err(says)) => assert!(e.contains(says), "{argv:?}: {e}"),
                (got, _) => panic!("{argv:?}: {got:?}, expected {want:?}"),
            }
        }
    }

    /// A SYN flood row of `active` customers on `layout` playing a capture
    /// of `frames`, with one (synwall, io) pair of Mpps a round (synwall
    /// got half a CPU, io a whole one); 0 is a failed run.
    fn flood_row(active: u64, layout: &str, frames: u64, rounds: &[(f64, f64)]) -> Row {
        let mut row = Row {
            id: format!("flood:{active}:{layout}:f{frames}"),
            kind: RowKind::Flood,
            traffic: "SYN flood".into(),
            frames,
            mean_wire_bytes: 65.8,
            customers: 1_000_000,
            active_customers: Some(active),
            layout: layout.into(),
            workers: 1,
            mbufs: Some(crate::bench::inputs::pool_mbufs(frames)),
            apps: Default::default(),
            ratios: Default::default(),
        };
        for &(sw, io) in rounds {
            row.push("io", round(io, 1.0));
            if sw > 0.0 {
                row.push("synwall", round(sw, 0.5));
            } else {
                row.push(
                    "synwall",
                    Round {
                        failed: Some("no outside tx rate".into()),
                        ..Round::default()
                    },
                );
            }
        }
        row.finish(&[("synwall", "io")]);
        row
    }

    #[test]
    fn scaling_takes_each_layout_over_its_8192_row() {
        let f = 100_000;
        let base = |l| flood_row(8192, l, f, &[(20.0, 60.0), (30.0, 50.0)]);
        let big = |l, frames| flood_row(100_000, l, frames, &[(10.0, 40.0), (12.0, 40.0)]);
        // synwall 10/20, 12/30 -> 0.45 (per CPU-second the same: both got
        // half a CPU); io 40/60, 40/50 -> 0.73.
        let bench = "- bench: 100,000 active (100,000 frames) ÷ 8,192 active (100,000 frames): synwall 0.45 (0.45), testpmd io 0.73 (0.73)";
        let smtp = Row {
            kind: RowKind::Smtp,
            ..base("bench")
        };
        let failed = flood_row(100_000, "billing", f, &[(0.0, 40.0), (0.0, 40.0)]);
        // (rows, the lines)
        let cases: Vec<(Vec<Row>, Vec<&str>)> = vec![
            (vec![base("bench"), big("bench", f)], vec![bench]),
            (vec![base("bench")], vec![]),
            (vec![big("bench", f)], vec![]),
            (vec![base("bench"), big("billing", f)], vec![]),
            (vec![smtp, big("bench", f)], vec![]),
            (
                vec![
                    flood_row(1000, "bench", 8192, &[(40.0, 60.0)]),
                    base("bench"),
                    big("bench", f),
                    base("billing"),
                    big("billing", 8192 * 12),
                ],
                vec![bench, "- billing: 100,000 active (98,304 frames) ÷ 8,192 active (100,000 frames): synwall 0.45 (0.45), testpmd io 0.73 (0.73)"],
            ),
            (
                vec![flood_row(8192, "billing", 8192, &[(20.0, 60.0), (30.0, 50.0)]), failed],
                vec!["- billing: 100,000 active (100,000 frames) ÷ 8,192 active (8,192 frames): synwall - (-), testpmd io 0.73 (0.73)"],
            ),
        ];
        for (rows, lines) in cases {
            let refs: Vec<&Row> = rows.iter().collect();
            let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(flood_scaling(&refs), lines, "{ids:?}");
        }
    }

    #[test]
    fn flood_table_shows_frames_and_scaling() {
        let mut res = sample_result();
        res.settings.mix = "flood".into();
        res.rows = vec![
            flood_row(8192, "billing", 100_000, &[(20.0, 60.0)]),
            flood_row(100_000, "billing", 100_000, &[(10.0, 40.0)]),
        ];
        let t = tables(&res, &[1]);
        assert!(
            t.contains("| SYN flood | billing | 8192 | 100000 (131071) | 60.00 |"),
            "{t}"
        );
        assert!(t.contains("- billing: 100,000 active (100,000 frames) ÷ 8,192 active (100,000 frames): synwall 0.50 (0.50), testpmd io 0.67 (0.67)"), "{t}");
        assert!(t.contains("flood:100000:billing:f100000,synwall"), "{t}");
        res.rows.pop();
        assert!(!tables(&res, &[1]).contains("Scaling with active"));
        // The JSON carries each row's frames, for the report.
        let v = serde_json::to_value(&res).unwrap();
        assert_eq!(v["rows"][0]["frames"], 100_000);
    }

    fn round(mpps: f64, cpu: f64) -> Round {
        Round {
            mpps: Some(mpps),
            cpu: vec![Some(cpu)],
            mpps_per_cpu: Some(mpps / cpu),
            ..Round::default()
        }
    }

    /// A result as the driver builds it: two rounds of io, 5tswap and synwall
    /// on the 64 B mix, one synwall round failed.
    pub(crate) fn sample_result() -> BenchRun {
        let mut row = Row {
            id: "mix64".into(),
            kind: RowKind::Mix,
            traffic: "default mix, 64 B".into(),
            frames: 1024,
            mean_wire_bytes: 64.9,
            customers: 1000,
            active_customers: None,
            layout: "bench".into(),
            workers: 1,
            mbufs: None,
            apps: Default::default(),
            ratios: Default::default(),
        };
        row.push("io", round(40.0, 1.0));
        row.push("5tswap", round(30.0, 1.0));
        row.push("synwall", round(20.0, 0.5));
        row.push("io", round(30.0, 0.5));
        row.push("5tswap", round(20.0, 1.0));
        row.push(
            "synwall",
            Round {
                failed: Some("no outside tx rate".into()),
                ..Round::default()
            },
        );
        row.finish(&[
            ("synwall", "io"),
            ("synwall", "5tswap"),
            ("synwall", "baseline"),
        ]);
        BenchRun {
            bench: "dataplane".into(),
            date: "2026-12-06T23:00Z".into(),
            unix_time: 1_796_598_000,
            commit: "abc1234".into(),
            uncommitted_changes: false,
            machine: Machine {
                hostname: "box".into(),
                cpu: "Test CPU".into(),
                cpus: 2,
                kernel: "6.1".into(),
                dpdk: "22.11.4".into(),
            },
            load: Load {
                at_start: "0.10 0.20 0.30".into(),
                at_end: "1.00 0.50 0.40".into(),
                wait_idle_secs: 0,
                max_compilers_at_start: 0,
            },
            settings: Settings {
                duration_secs: 10,
                repeat: 2,
                warmup_secs: WARMUP,
                core: 1,
                hugepages: true,
                mem_mb: 512,
                mix: "default".into(),
                logs: "/tmp/x".into(),
            },
            command: vec!["synwall-bench".into(), "dataplane".into()],
            rows: vec![row],
            million: None,
            fleet: None,
            gen: None,
            runs: 6,
            failed_runs: 1,
        }
    }

    #[test]
    fn json_has_every_round_medians_and_ratios() {
        let r = sample_result();
        let v = serde_json::to_value(&r).unwrap();
        let row = &v["rows"][0];
        assert_eq!(row["kind"], "mix");
        assert_eq!(row["apps"]["io"]["rounds"].as_array().unwrap().len(), 2);
        assert_eq!(row["apps"]["io"]["median"]["mpps"], 35.0);
        assert_eq!(row["apps"]["synwall"]["median"]["mpps"], 20.0);
        // per CPU-second: synwall 40 / io 40 in round 1; round 2 failed.
        assert_eq!(row["ratios"]["synwall/io"]["per_cpu"], 1.0);
        assert_eq!(row["ratios"]["synwall/io"]["raw"], 0.5);
        assert!(row["ratios"].get("synwall/baseline").is_none());
        assert_eq!(v["failed_runs"], 1);
        // and it reads back as it was written
        let back: BenchRun = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn tables_show_medians_ratios_and_failures() {
        let t = tables(&sample_result(), &[1]);
        assert!(
            t.contains("| mix64 | testpmd io | 35.00 | 0.75 | 50.00 | 1.00 | 0.50 |"),
            "{t}"
        );
        assert!(t.contains("| mix64 | synwall, 1k bench customers (whole-run mean nan) | 20.00 (**1 of 2 FAILED**) | 0.50 | 40.00 | | |"), "{t}");
        assert!(!t.contains("baseline"), "{t}");
    }

    /// The flags of every `scripts/bench-dataplane`, `bench-million`,
    /// `bench-fleet` and `bench-gen` command quoted in BENCHMARKS.md and docs/ (continuation lines included)
    /// are flags the driver takes: the documented commands keep working.
    #[test]
    fn documented_commands_use_flags_the_driver_takes() {
        use clap::{Args as _, Command as ClapCommand};
        let longs = |c: ClapCommand| -> Vec<String> {
            c.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_owned))
                .chain(["help".to_owned()])
                .collect()
        };
        let dataplane = longs(Args::augment_args(ClapCommand::new("dataplane")));
        let million = longs(crate::bench::million::Args::augment_args(ClapCommand::new(
            "million",
        )));
        let fleet = longs(crate::bench::fleet::Args::augment_args(ClapCommand::new(
            "fleet",
        )));
        let gen = longs(crate::bench::gen::Args::augment_args(ClapCommand::new(
            "gen",
        )));
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut docs = vec![root.join("BENCHMARKS.md")];
        docs.extend(
            std::fs::read_dir(root.join("docs"))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "md")),
        );
        let mut checked = 0;
        for doc in docs {
            let text = std::fs::read_to_string(&doc).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                for (script, known) in [
                    ("scripts/bench-dataplane", &dataplane),
                    ("scripts/bench-million", &million),
                    ("scripts/bench-fleet", &fleet),
                    ("scripts/bench-gen", &gen),
                ] {
                    let Some(at) = line.find(script) else {
                        continue;
                    };
                    let mut cmd = line[at..].split('`').next().unwrap_or("").to_owned();
                    let mut j = i;
                    while cmd.trim_end().ends_with('\\') && j + 1 < lines.len() {
                        j += 1;
                        cmd.push(' ');
                        cmd.push_str(lines[j].split('`').next().unwrap_or(""));
                    }
                    for flag in cmd.split_whitespace().filter_map(|w| w.strip_prefix("--")) {
                        let flag = flag.trim_end_matches([',', ')', ';']);
                        assert!(
                            known.iter().any(|k| k == flag),
                            "{}:{}: {script} --{flag} is not a flag of the driver",
                            doc.display(),
                            i + 1
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 50, "only {checked} documented flags found");
    }
}
