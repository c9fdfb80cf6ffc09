//! `synwall-bench gen` (`scripts/bench-gen`): synwall-gen's benches on this
//! machine's virtual devices, in one run:
//!
//! 1. verify: the verify profile replayed through synwall on net_pcap; must PASS.
//! 2. loop: the generator looped to itself on net_ring (its own ceiling):
//!    `run --rate max`, then `ndr` (with its calibration trial).
//! 3. memif: synwall in another process between two net_memif links, `run`
//!    at `--memif-rate`, with the control-socket cross-check.
//! 4. latency: the latency synwall adds: `synwall-gen latency` through
//!    dpdk-testpmd io, then through synwall, on the same net_memif links,
//!    back to back (`--latency-rounds` times), the generator's and the
//!    forwarder's worker lcores on different CPUs; then the table of both,
//!    the difference and the ratio per percentile (median over rounds), and
//!    the least disturbed trial of each.
//!
//! In 3 and 4 the generator runs with `--hold` and the forwarder stops
//! before it lets go of its memif ports ([`run_held`]).
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::host::{self, Machine};
use super::inputs::{strings, Common};
use super::result::{Begun, BenchRun, Settings};
use super::rounds::{ab_rounds, Runs};
use super::sampled::stop_by;
use super::stats::{median, ratio};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Seconds of every run (and of each load of the latency step).
    #[arg(long, default_value_t = 5)]
    pub duration: u64,
    /// Packets per second of the memif step.
    #[arg(long, value_name = "PPS", default_value_t = 100_000)]
    pub memif_rate: u64,
    /// Skip the memif step.
    #[arg(long)]
    pub no_memif: bool,
    /// Skip the latency step.
    #[arg(long)]
    pub no_latency: bool,
    /// Run the latency step alone.
    #[arg(long)]
    pub only_latency: bool,
    /// The latency step's loads are 10, 50 and 90 % of this rate.
    #[arg(long, value_name = "PPS", default_value_t = 200_000)]
    pub latency_rate: u64,
    /// Latency probes per second alongside the load.
    #[arg(long, value_name = "PPS", default_value_t = 10_000)]
    pub probe_rate: u64,
    /// Rounds of the latency step (testpmd, then synwall, in each).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub latency_rounds: usize,
}

/// The forwarders of the latency step, in the order each round runs them.
pub const FORWARDERS: [&str; 2] = ["testpmd", "synwall"];
/// The latency step's loads, % of `--latency-rate` (synwall-gen's trials).
const LOADS: [u32; 3] = [10, 50, 90];
const PROFILES: &str = "benches/profiles";

/// One latency trial of `synwall-gen latency`'s report (what the table reads).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Trial {
    pub offered_pps: f64,
    /// The generator offered what was asked.
    pub valid: bool,
    /// Times its pacer fell behind (another process took its CPU).
    pub behind: u64,
    pub latency: Option<Percentiles>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
pub struct Percentiles {
    pub p50_ns: f64,
    pub p90_ns: f64,
    pub p99_ns: f64,
    pub p999_ns: f64,
    pub max_ns: f64,
}

/// Every latency round's trials per forwarder (`None`: no report).
pub type LatencyRounds = BTreeMap<String, Vec<Option<Vec<Trial>>>>;

/// What `synwall-bench gen` adds to its result file: what each step said,
/// every latency trial.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct GenSteps {
    pub steps: Vec<Step>,
    pub latency_rate_pps: u64,
    pub latency: LatencyRounds,
}

/// One step (or latency run) and whether it did what it should.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    pub failed: Option<String>,
    pub log: String,
}

/// A trial's latency percentile `key` (`p50_ns`, ...).
fn pct(l: &Percentiles, key: usize) -> f64 {
    [l.p50_ns, l.p90_ns, l.p99_ns, l.p999_ns, l.max_ns][key]
}
const P50: usize = 0;
const P90: usize = 1;
const P99: usize = 2;
const P999: usize = 3;
const MAX: usize = 4;

/// The trials of load `i` of every round that has one.
fn trials_at(rounds: &[Option<Vec<Trial>>], i: usize) -> impl Iterator<Item = &Trial> {
    rounds.iter().flatten().filter_map(move |t| t.get(i))
}

/// µs with one decimal, or `-`.
fn us(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{:.1}", x / 1000.0))
}

/// `b - a` in µs with its sign, or `-`.
fn added(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:+.1}", (b - a) / 1000.0),
        _ => "-".to_owned(),
    }
}

fn times(a: Option<f64>, b: Option<f64>) -> String {
    ratio(b, a).map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

/// The last four cells of a latency row: what synwall adds to testpmd's
/// p50 (column 0) and p99 (column `p99`), in µs, then the ratios.
fn compare(tp: &[Option<f64>], sw: &[Option<f64>], p99: usize) -> String {
    format!(
        "{} | {} | {} | {}",
        added(tp[0], sw[0]),
        added(tp[p99], sw[p99]),
        times(tp[0], sw[0]),
        times(tp[p99], sw[p99])
    )
}

/// The latency tables from every round's trials of both forwarders.
pub fn latency_tables(res: &LatencyRounds, rounds: usize, rate: u64) -> String {
    let none = Vec::new();
    let of = |dut: &str| res.get(dut).unwrap_or(&none);
    let med = |dut: &str, i: usize, k: usize| {
        median(
            &trials_at(of(dut), i)
                .filter_map(|t| Some(pct(t.latency.as_ref()?, k)))
                .collect::<Vec<_>>(),
        )
    };
    let offered = |dut: &str, i: usize| {
        let v: Vec<String> = trials_at(of(dut), i)
            .map(|t| {
                let short = if t.valid { "" } else { "!" };
                format!("{:.3}{short}", t.offered_pps / 1e6)
            })
            .collect();
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join("/")
        }
    };
    // The least disturbed trial of each: the one whose generator fell
    // behind its pacer least often (on a shared machine most of the latency
    // is other processes taking a CPU from a busy-polling worker), then the
    // lowest p99.
    let best = |dut: &str, i: usize| {
        trials_at(of(dut), i)
            .filter_map(|t| Some((t.behind, t.latency?)))
            .min_by(|a, b| {
                a.0.cmp(&b.0)
                    .then(pct(&a.1, P99).total_cmp(&pct(&b.1, P99)))
            })
            .map(|(_, l)| l)
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nLatency through the forwarder over net_memif, {rounds} round(s) (median over rounds), µs; \
         load = share of {rate} pps; offered Mpps per round ('!' = below the asked rate)\n"
    );
    let _ = writeln!(t, "| load | offered Mpps testpmd / synwall | testpmd io p50 / p99 / p99.9 / max | synwall p50 / p99 / p99.9 / max | added p50 | added p99 | synwall ÷ testpmd p50 | p99 |");
    let _ = writeln!(t, "|---:|---|---|---|---:|---:|---:|---:|");
    let cols = |dut: &str, i: usize, keys: &[usize]| -> Vec<Option<f64>> {
        keys.iter().map(|&k| med(dut, i, k)).collect()
    };
    let joined = |v: &[Option<f64>]| v.iter().map(|x| us(*x)).collect::<Vec<_>>().join(" / ");
    for (i, load) in LOADS.iter().enumerate() {
        let keys = [P50, P99, P999, MAX];
        let (tp, sw) = (cols("testpmd", i, &keys), cols("synwall", i, &keys));
        let _ = writeln!(
            t,
            "| {load} % | {} / {} | {} | {} | {} |",
            offered("testpmd", i),
            offered("synwall", i),
            joined(&tp),
            joined(&sw),
            compare(&tp, &sw, 1)
        );
    }
    let _ = writeln!(
        t,
        "\nLeast disturbed trial per load (fewest pacer falls-behind, then lowest p99), µs:\n"
    );
    let _ = writeln!(t, "| load | testpmd io p50 / p90 / p99 / p99.9 | synwall p50 / p90 / p99 / p99.9 | added p50 | added p99 | synwall ÷ testpmd p50 | p99 |");
    let _ = writeln!(t, "|---:|---|---|---:|---:|---:|---:|");
    for (i, load) in LOADS.iter().enumerate() {
        let keys = [P50, P90, P99, P999];
        let pick = |dut: &str| -> Vec<Option<f64>> {
            let b = best(dut, i);
            keys.iter().map(|&k| b.map(|l| pct(&l, k))).collect()
        };
        let (tp, sw) = (pick("testpmd"), pick("synwall"));
        let row = |v: &[Option<f64>]| {
            if v[0].is_none() {
                "-".to_owned()
            } else {
                joined(v)
            }
        };
        let _ = writeln!(
            t,
            "| {load} % | {} | {} | {} |",
            row(&tp),
            row(&sw),
            compare(&tp, &sw, 2)
        );
    }
    t
}

/// The trials of a `synwall-gen latency --report` file.
pub fn read_trials(path: &Path) -> Option<Vec<Trial>> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    serde_json::from_value(v["result"]["trials"].clone()).ok()
}

/// Lines DPDK prints that say nothing about the bench.
fn noise(line: &str) -> bool {
    line.contains("TELEMETRY") || line.contains("mp action callback")
}

/// A profile template with `@DIR@`, `@TAG@`, `@LCORES@` filled in.
fn fill(template: &str, dir: &Path, tag: &str, lcores: &str, to: &Path) -> Result<(), String> {
    let from = Path::new(PROFILES).join(template);
    let text = std::fs::read_to_string(&from).map_err(|e| {
        format!(
            "reading {} (run from the repository's root): {e}",
            from.display()
        )
    })?;
    let text = text
        .replace("@DIR@", &dir.display().to_string())
        .replace("@TAG@", tag)
        .replace("@LCORES@", lcores);
    std::fs::write(to, text).map_err(|e| format!("writing {}: {e}", to.display()))
}

/// Spawns `cmd` with stdin closed and stdout and stderr to `log`.
fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child, String> {
    spawn_logged_in(cmd, log, Stdio::null())
}

/// [`spawn_logged`] with `stdin`.
fn spawn_logged_in(cmd: &mut Command, log: &Path, stdin: Stdio) -> Result<Child, String> {
    let out = File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    cmd.stdin(stdin)
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))
}

/// Runs synwall-gen `cmd` with `--hold` to `log` against a forwarder on
/// the other end of its memif links, and tears the pair down in the order
/// DPDK 22.11's memif PMD needs (it unmaps a gone peer's rings under a
/// poller: scripts/lib/memif-peer.bash): the generator finishes and holds
/// its ports, polling nothing (or exits, or `secs` pass); `stop_forwarder`
/// stops the forwarder; then the generator's stdin closes and it exits.
fn run_held(
    cmd: &mut Command,
    log: &Path,
    secs: u64,
    stop_forwarder: impl FnOnce(),
) -> Result<std::process::ExitStatus, String> {
    let mut gen = spawn_logged_in(cmd.arg("--hold"), log, Stdio::piped())?;
    wait_until(secs, || {
        std::fs::read_to_string(log).is_ok_and(|t| t.contains("synwall-gen: holding the ports"))
            || !matches!(gen.try_wait(), Ok(None))
    });
    stop_forwarder();
    drop(gen.stdin.take());
    gen.wait().map_err(|e| e.to_string())
}

/// Polls `ready` every 100 ms for up to `secs`.
fn wait_until(secs: u64, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn last_lines(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A synwall-gen step: its name (and log's), the title line, synwall-gen's
/// arguments, which lines of its log to show.
type GenStep = (&'static str, String, Vec<String>, fn(&str) -> bool);

struct Bench {
    out: PathBuf,
    gen: PathBuf,
    synwall: PathBuf,
    synwallctl: PathBuf,
    steps: Vec<Step>,
    runs: Runs,
}

impl Bench {
    /// Runs synwall-gen with `args` to `log`, prints the lines of it that
    /// `show` keeps, and records the step (failed if it exits non-zero).
    /// With a `forwarder` (its memif peer, to be stopped within `secs`),
    /// the generator holds its ports until the forwarder has stopped.
    fn gen(
        &mut self,
        name: &str,
        args: &[String],
        log: &str,
        show: fn(&str) -> bool,
        forwarder: Option<(&mut Child, u64)>,
    ) {
        self.runs.start();
        let log = self.out.join(log);
        let mut cmd = Command::new(&self.gen);
        cmd.args(args);
        let status = match forwarder {
            None => {
                spawn_logged(&mut cmd, &log).and_then(|mut c| c.wait().map_err(|e| e.to_string()))
            }
            Some((fwd, secs)) => run_held(&mut cmd, &log, secs, || {
                let _ = stop_by(fwd, Instant::now(), Duration::from_secs(10));
            }),
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for line in text.lines().filter(|l| !noise(l) && show(l)) {
            println!("{line}");
        }
        let failed = match status {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("synwall-gen exited with {s}")),
            Err(e) => Some(e),
        };
        self.record(name, failed, &log);
    }

    fn record(&mut self, name: &str, failed: Option<String>, log: &Path) {
        if let Some(f) = &failed {
            println!("   {name}: FAILED: {f} (see {})", log.display());
            self.runs.failed += 1;
        }
        self.steps.push(Step {
            name: name.to_owned(),
            failed,
            log: log.display().to_string(),
        });
    }

    /// Whether synwall's `status` on `socket` says it is forwarding (ports
    /// started, workers running; the socket answers from before that).
    fn forwarding(&self, socket: &Path) -> bool {
        Command::new(&self.synwallctl)
            .arg("--socket")
            .arg(socket)
            .args(["--json", "status"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
            .is_some_and(|s| s["state"] == "forwarding")
    }

    /// Steps 1 and 2: verify must PASS; the generator's own ceiling.
    fn verify_and_loop(&mut self, duration: &str) {
        let o = |f: &str| self.out.join(f).display().to_string();
        let synwall = self.synwall.display().to_string();
        let (verify, looped) = (
            format!("{PROFILES}/verify.toml"),
            format!("{PROFILES}/loop.toml"),
        );
        let all = |_: &str| true;
        let verdicts = |l: &str| {
            ["NDR", "PDR", "calibration:"]
                .iter()
                .any(|p| l.starts_with(p))
        };
        let steps: [GenStep; 3] = [
            (
                "verify",
                format!("== 1. verify (pcap): {verify}"),
                strings(&[
                    "--config",
                    &verify,
                    "verify",
                    "--synwall",
                    &synwall,
                    "--workdir",
                    &o("verify"),
                    "--report",
                    &o("verify.json"),
                ]),
                all,
            ),
            (
                "loop-run",
                format!("== 2. loop (net_ring): run --rate max, {duration}s"),
                strings(&[
                    "--config",
                    &looped,
                    "run",
                    "--rate",
                    "max",
                    "--duration",
                    duration,
                    "--report",
                    &o("loop-run.json"),
                ]),
                all,
            ),
            (
                "loop-ndr",
                "== 2. loop (net_ring): ndr, 1 s trials".to_owned(),
                strings(&[
                    "--config",
                    &looped,
                    "ndr",
                    "--trial",
                    "1",
                    "--max-trials",
                    "10",
                    "--report",
                    &o("loop-ndr.json"),
                ]),
                verdicts,
            ),
        ];
        for (name, title, args, show) in steps {
            println!("{title}");
            self.gen(name, &args, &format!("{name}.log"), show, None);
        }
    }

    fn memif(&mut self, duration: u64, rate: u64) -> Result<(), String> {
        println!(
            "== 3. memif: synwall between two net_memif links, run at {rate} pps for {duration}s"
        );
        let m = self.out.join("memif");
        std::fs::create_dir_all(&m).map_err(|e| format!("creating {}: {e}", m.display()))?;
        let tag = format!("swbg{}_", std::process::id());
        fill("memif-synwall.toml", &m, &tag, "", &m.join("synwall.toml"))?;
        fill("memif-gen.toml", &m, &tag, "", &m.join("gen.toml"))?;
        let log = m.join("synwall.log");
        let mut sw = spawn_logged(
            Command::new(&self.synwall)
                .arg("--config")
                .arg(m.join("synwall.toml"))
                .arg("--duration")
                .arg((duration + 8).to_string())
                .arg("--summary-json")
                .arg(m.join("summary.json")),
            &log,
        )?;
        let socket = m.join("control.sock");
        if !wait_until(30, || self.forwarding(&socket)) {
            let _ = stop_by(&mut sw, Instant::now(), Duration::from_secs(10));
            return Err(format!(
                "synwall's dataplane not ready after 30 s; see {}:\n{}",
                log.display(),
                last_lines(&log, 5)
            ));
        }
        let args = strings(&[
            "--config",
            &m.join("gen.toml").display().to_string(),
            "run",
            "--rate",
            &rate.to_string(),
            "--duration",
            &duration.to_string(),
            "--report",
            &self.out.join("memif-run.json").display().to_string(),
        ]);
        self.gen(
            "memif run",
            &args,
            "memif-run.log",
            |l| !l.starts_with("synwall-gen: holding"),
            Some((&mut sw, duration + 30)),
        );
        println!("{}", last_lines(&log, 1));
        Ok(())
    }

    /// One latency run of `dut` in directory `d`; returns its trials.
    fn latency_run(
        &mut self,
        a: &Args,
        round: usize,
        dut: &str,
        [gen_lcores, dut_lcores]: [&str; 2],
    ) -> Result<Option<Vec<Trial>>, String> {
        let d = self.out.join("latency").join(format!("{dut}-{round}"));
        std::fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        for f in ["inside.sock", "outside.sock", "ready"] {
            let _ = std::fs::remove_file(d.join(f));
        }
        let start = self.runs.start();
        let tag = format!("swbl{}_r{round}", std::process::id());
        fill(
            "memif-latency-gen.toml",
            &d,
            &tag,
            gen_lcores,
            &d.join("gen.toml"),
        )?;
        let lat_secs = 3 * (a.duration + 1) + 30;
        let log = d.join("dut.log");
        let (mut cmd, stop_after) = if dut == "testpmd" {
            let mut c = Command::new("dpdk-testpmd");
            c.arg(format!("--lcores={dut_lcores}"))
                .args(["--no-huge", "-m", "512", "--no-pci", "--no-shconf"])
                .arg(format!("--file-prefix={tag}tp"))
                .arg("--log-level=*:notice")
                .arg(format!(
                    "--vdev=net_memif0,role=server,id=0,socket={}/inside.sock,socket-abstract=no",
                    d.display()
                ))
                .arg(format!(
                    "--vdev=net_memif1,role=server,id=0,socket={}/outside.sock,socket-abstract=no",
                    d.display()
                ))
                .args([
                    "--",
                    "--forward-mode=io",
                    "--nb-cores=1",
                    "--stats-period=1",
                ])
                .arg("--total-num-mbufs=16384");
            (c, lat_secs)
        } else {
            fill(
                "memif-latency-synwall.toml",
                &d,
                &tag,
                dut_lcores,
                &d.join("synwall.toml"),
            )?;
            let mut c = Command::new(&self.synwall);
            c.arg("--config")
                .arg(d.join("synwall.toml"))
                .arg("--duration")
                .arg(lat_secs.to_string())
                .arg("--summary-json")
                .arg(d.join("summary.json"));
            (c, lat_secs + 10)
        };
        let started = Instant::now();
        let mut child = spawn_logged(&mut cmd, &log)?;
        // Ready when its ports are started (a memif client that connects
        // earlier is turned away): testpmd says it starts forwarding,
        // synwall's status says "state": "forwarding"; and its sockets exist.
        let socket = d.join("control.sock");
        let ready = wait_until(15, || {
            if dut == "testpmd" {
                std::fs::read_to_string(&log).is_ok_and(|l| l.contains("start packet forwarding"))
            } else {
                self.forwarding(&socket)
            }
        }) && ["inside.sock", "outside.sock"]
            .iter()
            .all(|s| wait_until(15, || d.join(s).exists()));
        if !ready {
            let _ = stop_by(&mut child, Instant::now(), Duration::from_secs(5));
            return Err(format!(
                "{dut} did not create its memif sockets; see {}:\n{}",
                log.display(),
                last_lines(&log, 5)
            ));
        }
        let report = d.join("latency.json");
        let gen_log = d.join("gen.log");
        let deadline = started + Duration::from_secs(stop_after);
        let status = run_held(
            Command::new(&self.gen)
                .arg("--config")
                .arg(d.join("gen.toml"))
                .arg("latency")
                .args(["--rate", &a.latency_rate.to_string()])
                .args(["--probe-rate", &a.probe_rate.to_string()])
                .args(["--duration", &a.duration.to_string()])
                .arg("--report")
                .arg(&report),
            &gen_log,
            deadline.saturating_duration_since(Instant::now()).as_secs(),
            || {
                let _ = stop_by(
                    &mut child,
                    Instant::now().min(deadline),
                    Duration::from_secs(5),
                );
            },
        );
        println!("   round {round} {dut} ({}):", Runs::load_note(start));
        let text = std::fs::read_to_string(&gen_log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("latency at") || l.starts_with("  latency over"))
            .collect();
        if lines.is_empty() {
            println!("     (no result: see {})", gen_log.display());
        }
        for l in lines {
            println!("     {l}");
        }
        let trials = read_trials(&report);
        let failed = match (&status, &trials) {
            (_, Some(_)) => None,
            (Ok(s), None) => Some(format!("no latency report (synwall-gen exited with {s})")),
            (Err(e), None) => Some(e.clone()),
        };
        self.record(&format!("latency {dut} round {round}"), failed, &gen_log);
        Ok(trials)
    }

    fn latency(&mut self, a: &Args) -> Result<LatencyRounds, String> {
        println!(
            "== 4. latency added: synwall vs dpdk-testpmd io between two net_memif links, {} round(s)",
            a.latency_rounds
        );
        let ncpu = Machine::this().cpus;
        // Generator: main lcore 0 and its one worker lcore 1; forwarder the
        // same. The two workers always get different CPUs.
        let lcores = if ncpu >= 4 {
            ["0@0,1@1", "0@2,1@3"]
        } else {
            ["0@0,1@1", "0@1,1@0"]
        };
        println!(
            "   generator --lcores={}, forwarder --lcores={} ({ncpu} CPUs); latency at 10/50/90 % of {} pps, probes at {}/s, {}s per load",
            lcores[0], lcores[1], a.latency_rate, a.probe_rate, a.duration
        );
        let mut res = LatencyRounds::new();
        let mut err = None;
        ab_rounds(
            a.latency_rounds,
            &mut [()],
            &FORWARDERS,
            |round, (), dut| {
                if err.is_some() {
                    return;
                }
                match self.latency_run(a, round, dut, lcores) {
                    Ok(t) => res.entry((*dut).to_owned()).or_default().push(t),
                    Err(e) => err = Some(e),
                }
            },
        );
        if let Some(e) = err {
            return Err(e);
        }
        let table = latency_tables(&res, a.latency_rounds, a.latency_rate);
        print!("{table}");
        let path = self.out.join("latency/table.md");
        std::fs::write(&path, table).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(res)
    }
}

pub(crate) fn check(a: &Args) -> Result<(), String> {
    if [a.duration, a.memif_rate, a.latency_rate, a.probe_rate].contains(&0)
        || a.latency_rounds == 0
    {
        return Err(
            "--duration, --memif-rate, --latency-rate, --probe-rate and \
                    --latency-rounds must be at least 1"
                .into(),
        );
    }
    if a.only_latency && a.no_latency {
        return Err("--only-latency and --no-latency leave nothing to run".into());
    }
    if !a.no_latency {
        host::need_testpmd()?;
    }
    Ok(())
}

/// Runs the steps; returns the result and whether every step did what it should.
pub fn run(a: Args) -> Result<(BenchRun, bool), String> {
    check(&a)?;
    let (out, bins) = a.common.dirs("bench-gen")?;
    let pid = std::process::id();
    let _runtime_dirs = [
        host::RuntimeDirs::new(format!("swbg{pid}_")),
        host::RuntimeDirs::new(format!("swbl{pid}_")),
    ];
    let begun = Begun::now();
    let mut b = Bench {
        gen: bins.copy("synwall-gen")?,
        synwall: bins.copy("synwall")?,
        synwallctl: bins.copy("synwallctl")?,
        out: out.clone(),
        steps: Vec::new(),
        runs: Runs::new(a.common.wait_idle),
    };
    if !a.only_latency {
        b.verify_and_loop(&a.duration.to_string());
        if !a.no_memif {
            b.memif(a.duration, a.memif_rate)?;
        }
    }
    let latency = if a.no_latency {
        LatencyRounds::new()
    } else {
        b.latency(&a)?
    };
    let settings = Settings {
        duration_secs: a.duration,
        repeat: a.latency_rounds,
        warmup_secs: 0,
        core: 1,
        hugepages: false,
        mem_mb: 512,
        mix: "profiles".into(),
        logs: out.display().to_string(),
    };
    let mut result = BenchRun::finished("gen", begun, &b.runs, settings, vec![], None);
    result.gen = Some(GenSteps {
        steps: b.steps,
        latency_rate_pps: a.latency_rate,
        latency,
    });
    let ok = result.save(&out, a.common.json.as_deref(), "ran and left their report")?;
    Ok((result, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(offered: f64, valid: bool, behind: u64, p: [f64; 5]) -> Trial {
        Trial {
            offered_pps: offered,
            valid,
            behind,
            latency: Some(Percentiles {
                p50_ns: p[0],
                p90_ns: p[1],
                p99_ns: p[2],
                p999_ns: p[3],
                max_ns: p[4],
            }),
        }
    }

    #[test]
    fn latency_tables_take_medians_differences_and_the_least_disturbed() {
        let mut res = LatencyRounds::new();
        let tp = |p50: f64, behind| {
            Some(vec![trial(
                20_000.0,
                true,
                behind,
                [p50, p50 + 1000.0, p50 * 2.0, p50 * 3.0, p50 * 4.0],
            )])
        };
        res.insert("testpmd".into(), vec![tp(4000.0, 5), tp(6000.0, 0), None]);
        res.insert(
            "synwall".into(),
            vec![
                Some(vec![trial(
                    19_000.0,
                    false,
                    1,
                    [9000.0, 9500.0, 20_000.0, 30_000.0, 40_000.0],
                )]),
                Some(vec![trial(
                    20_000.0,
                    true,
                    1,
                    [7000.0, 7500.0, 12_000.0, 13_000.0, 14_000.0],
                )]),
                None,
            ],
        );
        let t = latency_tables(&res, 3, 200_000);
        // Medians: testpmd p50 5.0, p99 10.0; synwall p50 8.0, p99 16.0.
        assert!(
            t.contains("| 10 % | 0.020/0.020 / 0.019!/0.020 | 5.0 / 10.0 / 15.0 / 20.0 | 8.0 / 16.0 / 21.5 / 27.0 | +3.0 | +6.0 | 1.60 | 1.60 |"),
            "{t}"
        );
        // Loads without trials show dashes.
        assert!(
            t.contains("| 50 % | - / - | - / - / - / - | - / - / - / - | - | - | - | - |"),
            "{t}"
        );
        // Least disturbed: testpmd round 2 (behind 0); synwall tie on
        // behind, lower p99 (round 2).
        assert!(
            t.contains("| 10 % | 6.0 / 7.0 / 12.0 / 18.0 | 7.0 / 7.5 / 12.0 / 13.0 | +1.0 | +0.0 | 1.17 | 1.00 |"),
            "{t}"
        );
        assert!(t.contains("| 90 % | - | - | - | - | - | - |"), "{t}");
    }

    #[test]
    fn reports_without_trials_are_none() {
        let dir = std::env::temp_dir().join(format!("synwall-bench-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("latency.json");
        std::fs::write(
            &p,
            r#"{"result": {"trials": [{"offered_pps": 1.5, "valid": true, "behind": 0, "latency": null, "extra": 1}]}}"#,
        )
        .unwrap();
        assert_eq!(
            read_trials(&p),
            Some(vec![Trial {
                offered_pps: 1.5,
                valid: true,
                behind: 0,
                latency: None
            }])
        );
        std::fs::write(&p, "{}").unwrap();
        assert_eq!(read_trials(&p), None);
        assert_eq!(read_trials(&dir.join("missing.json")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
