//! `synwall-bench fleet` (`scripts/bench-fleet`, issue 12): the fleet on
//! loopback, bounded in time, with its own redis-server (no persistence, a
//! free port, stopped at the end).
//!
//! 1. Redis load: `--appliances` synwall processes, each replaying the same
//!    flood of SYNs from `--customers` active customers (net_pcap
//!    infinite_rx -> net_null) with `[fleet]` on one Redis, tick 100 ms,
//!    floor 0 (every active customer leases) and limits no run reaches.
//!    Over `--duration` seconds after a warm-up: Redis commands per second
//!    (INFO stats), the lease script's calls per second and its mean
//!    server-side time (INFO commandstats, evalsha), and each appliance's
//!    round trip (`synwallctl fleet`'s `last_rtt_ms`, once a second; median
//!    and max over the samples).
//! 2. Dataplane with `[fleet]` off versus on: one synwall alone on the same
//!    flood, back to back in every round: off; on with floor 0.5 (no Redis
//!    call, the packet path alone); on with floor 0 (every customer leases).
//!    Rate = inside rx frames / elapsed of `--summary-json`, with the share
//!    of a CPU the worker got; ratios against off are taken per round on
//!    Mpps per worker CPU-second, then the median.
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dataplane::summary_mpps;
use super::host;
use super::inputs::{flood_frames, mkpcap, pool_mbufs, Common};
use super::result::{Begun, BenchRun, Round, Row, RowKind, Settings};
use super::rounds::{ab_rounds, Runs};
use super::sampled::{command_line, run_sampled, stop_by, Timing};
use super::stats::{fmt2, median, ratio};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Seconds each run is measured (part 1 after a 3 s warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Rounds of part 2 (off, floor 0.5, floor 0 in each).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// synwall processes sharing the one Redis in part 1.
    #[arg(long, default_value_t = 4)]
    pub appliances: u32,
    /// Active customers in the flood (and in the customers file).
    #[arg(long, default_value_t = 10_000)]
    pub customers: u64,
}

/// Seconds part 1's appliances run before Redis is sampled.
const WARMUP: u64 = 3;
const MEM_MB: u64 = 1024;
/// Part 2's apps, in the order each round runs them: key, `[fleet]` floor.
pub const APPS: [(&str, Option<f64>); 3] = [
    ("off", None),
    ("floor0.5", Some(0.5)),
    ("floor0", Some(0.0)),
];

/// Part 1: what Redis and the appliances' round trips showed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct FleetLoad {
    pub appliances: u32,
    pub active_customers: u64,
    pub redis: RedisRates,
    pub round_trip: RoundTrip,
    pub leases_held: u64,
    /// Each appliance's inside rx Mpps (whole run).
    pub appliance_mpps: Vec<Option<f64>>,
}

/// Redis's work per second over part 1's window.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RedisRates {
    pub commands_per_sec: Option<f64>,
    pub lease_calls_per_sec: Option<f64>,
    /// Mean server-side µs of one lease script call.
    pub usec_per_call: Option<f64>,
}

/// The appliances' `last_rtt_ms`, sampled once a second.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RoundTrip {
    pub samples_ms: Vec<f64>,
    pub median_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl RoundTrip {
    pub fn of(samples_ms: Vec<f64>) -> Self {
        RoundTrip {
            median_ms: median(&samples_ms),
            max_ms: samples_ms.iter().copied().reduce(f64::max),
            samples_ms,
        }
    }
}

/// Redis's counters at one moment: commands processed, and the lease
/// script's (evalsha) calls and server-side µs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RedisCounters {
    pub commands: u64,
    pub evalsha_calls: u64,
    pub evalsha_usec: u64,
}

impl RedisCounters {
    /// From the text of `INFO stats` and `INFO commandstats` (missing
    /// fields count 0: no evalsha yet).
    pub fn parse(info: &str) -> Self {
        let mut c = RedisCounters::default();
        for line in info.lines().map(str::trim_end) {
            if let Some(v) = line.strip_prefix("total_commands_processed:") {
                c.commands = v.parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("cmdstat_evalsha:") {
                for kv in v.split(',') {
                    match kv.split_once('=') {
                        Some(("calls", n)) => c.evalsha_calls = n.parse().unwrap_or(0),
                        Some(("usec", n)) => c.evalsha_usec = n.parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
        }
        c
    }

    /// Commands/s, lease calls/s and µs per call from `self` to `later`.
    pub fn rates(&self, later: &Self, secs: f64) -> RedisRates {
        let d = |a: u64, b: u64| Some(b.saturating_sub(a) as f64);
        let calls = d(self.evalsha_calls, later.evalsha_calls);
        RedisRates {
            commands_per_sec: ratio(d(self.commands, later.commands), Some(secs)),
            lease_calls_per_sec: ratio(calls, Some(secs)),
            usec_per_call: ratio(d(self.evalsha_usec, later.evalsha_usec), calls),
        }
    }
}

/// The frames of a summary's verdicts dropped for want of a grant, as
/// `7%`, or `?` without a summary.
pub fn dropped_share(summary: Option<&Value>) -> String {
    summary.map_or_else(
        || "?".to_owned(),
        |d| {
            let v = &d["verdicts"];
            let dropped = v["dropped_blocked"].as_u64().unwrap_or(0) as f64;
            let rx = v["rx"].as_u64().unwrap_or(0).max(1) as f64;
            format!("{:.0}%", 100.0 * dropped / rx)
        },
    )
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Three decimals, or `nan`.
fn fmt3(v: Option<f64>) -> String {
    v.map_or_else(|| "nan".to_owned(), |x| format!("{x:.3}"))
}

/// The redis-server of the bench, stopped (SIGTERM) when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("log"))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting redis-server (scripts/setup installs it): {e}"))?;
        let redis = Redis { child, port };
        for _ in 0..50 {
            if redis.cli(&["ping"]).is_some_and(|p| p.trim() == "PONG") {
                return Ok(redis);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "redis-server on port {port} did not answer PING in 5 s"
        ))
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let o = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        Some(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn counters(&self) -> RedisCounters {
        let info = [
            self.cli(&["info", "stats"]),
            self.cli(&["info", "commandstats"]),
        ];
        RedisCounters::parse(&info.into_iter().flatten().collect::<String>())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// `Redis server v=7.0.15 sha=...` -> `v=7.0.15`.
fn redis_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".to_owned())
}

struct Bench {
    out: PathBuf,
    synwall: PathBuf,
    synwallctl: PathBuf,
    redis_url: String,
    appliances: u32,
    mbufs: u64,
    duration: u64,
    runs: Runs,
}

impl Bench {
    /// synwall's config for run `name`: one worker on lcore 1, `[fleet]`
    /// with `floor` (none: no `[fleet]`), limits no run reaches.
    fn config(&self, name: &str, floor: Option<f64>) -> Result<PathBuf, String> {
        let dir = self.out.join(name);
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let state = dir.join("state");
        let mut c = format!(
            "customers_file = {}\n[dpdk]\neal_args = [\"--no-huge\", \"-m\", \"{MEM_MB}\", \"--no-pci\", \
             \"--file-prefix=bf{}_{name}\", \"--log-level=*:notice\",\n  \
             \"--vdev=net_pcap0,rx_pcap={},infinite_rx=1\", \"--vdev=net_null0,no-rx=1\"]\n\
             cores = [1]\nmbufs = {}\n[[link]]\ninside = \"net_pcap0\"\noutside = \"net_null0\"\n\
             [control]\nstate_dir = {}\nsocket = {}\nevents = {}\ntick = \"100ms\"\nstats_interval = \"1s\"\n\
             # Never reached: nothing is dropped, every active customer keeps leasing.\n\
             [windows]\n\"5m\" = 1000000000000\n\"1h\" = 1000000000000\n\"1d\" = 1000000000000\n",
            q(&self.out.join("customers.toml")),
            std::process::id(),
            self.out.join("flood.pcap").display(),
            self.mbufs,
            q(&state),
            q(&state.join("control.sock")),
            q(&state.join("events.jsonl")),
        );
        if let Some(floor) = floor {
            let _ = write!(
                c,
                "[fleet]\nname = \"{name}\"\nredis = [\"{}\"]\nappliances = {}\nfloor = {floor:?}\n",
                self.redis_url, self.appliances
            );
        }
        let path = dir.join("synwall.toml");
        std::fs::create_dir_all(&state)
            .and_then(|()| std::fs::write(&path, c))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(path)
    }

    fn synwall(&self, name: &str, floor: Option<f64>, secs: u64) -> Result<Command, String> {
        let mut cmd = Command::new(&self.synwall);
        cmd.arg("--config")
            .arg(self.config(name, floor)?)
            .arg("--duration")
            .arg(secs.to_string())
            .arg("--summary-json")
            .arg(self.out.join(name).join("summary.json"));
        Ok(cmd)
    }

    /// `synwallctl --json fleet`'s `fleet` object of appliance `name`.
    fn fleet_view(&self, name: &str) -> Option<Value> {
        let o = Command::new(&self.synwallctl)
            .arg("--socket")
            .arg(self.out.join(name).join("state/control.sock"))
            .args(["--json", "fleet"])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        serde_json::from_slice::<Value>(&o.stdout)
            .ok()
            .map(|v| v["fleet"].clone())
    }

    /// Part 1: every appliance on the one Redis at floor 0.
    fn load(&mut self, redis: &Redis, customers: u64) -> Result<FleetLoad, String> {
        let run_secs = WARMUP + self.duration + 2;
        let names: Vec<String> = (0..self.appliances).map(|a| format!("edge{a}")).collect();
        let mut children: Vec<Child> = Vec::new();
        for name in &names {
            self.runs.start();
            let log = self.out.join(name).join("log");
            let mut cmd = self.synwall(name, Some(0.0), run_secs)?;
            let spawned = File::create(&log)
                .and_then(|f| Ok((f.try_clone()?, f)))
                .and_then(|(o, e)| cmd.stdin(Stdio::null()).stdout(o).stderr(e).spawn());
            match spawned {
                Ok(c) => children.push(c),
                Err(e) => {
                    stop_all(&mut children, Instant::now());
                    return Err(format!("starting {:?}: {e}", command_line(&cmd)));
                }
            }
        }
        std::thread::sleep(Duration::from_secs(WARMUP));
        let before = redis.counters();
        let t0 = Instant::now();
        let mut rtt = Vec::new();
        for _ in 0..self.duration {
            std::thread::sleep(Duration::from_secs(1));
            rtt.extend(
                names
                    .iter()
                    .filter_map(|n| self.fleet_view(n)?["last_rtt_ms"].as_f64()),
            );
        }
        let secs = t0.elapsed().as_secs_f64();
        let after = redis.counters();
        let leases_held = names
            .iter()
            .filter_map(|n| self.fleet_view(n)?["leases_held"].as_u64())
            .sum();
        stop_all(&mut children, Instant::now() + Duration::from_secs(120));
        let mut load = FleetLoad {
            appliances: self.appliances,
            active_customers: customers,
            redis: before.rates(&after, secs),
            round_trip: RoundTrip::of(rtt),
            leases_held,
            appliance_mpps: Vec::new(),
        };
        for name in &names {
            let summary = read_json(&self.out.join(name).join("summary.json"));
            let mpps = summary
                .as_ref()
                .and_then(|s| summary_mpps(s, "inside", "rx_packets"));
            if mpps.is_none() {
                self.runs.failed += 1;
            }
            println!(
                "   {name}: {} Mpps inside rx, {} of the frames dropped for want of a grant (all {} share {} CPUs)",
                fmt3(mpps),
                dropped_share(summary.as_ref()),
                self.appliances,
                host::Machine::this().cpus
            );
            load.appliance_mpps.push(mpps);
        }
        Ok(load)
    }

    /// Part 2: one appliance alone, sampled.
    fn solo(&mut self, round: usize, key: &str, floor: Option<f64>) -> Round {
        let start = self.runs.start();
        let name = format!("solo-{key}-{round}");
        let log = self.out.join(&name).join("log");
        let mut round_of = Round {
            round,
            run: start.run,
            compilers_at_start: start.compilers,
            log: log.display().to_string(),
            ..Round::default()
        };
        let timing = Timing {
            duration: self.duration,
            warmup: 1,
            stop_after: self.duration + 120,
        };
        let sampled = self
            .synwall(&name, floor, self.duration)
            .and_then(|mut cmd| {
                round_of.command = command_line(&cmd);
                run_sampled(&mut cmd, &log, &[1], timing)
            });
        let summary = read_json(&self.out.join(&name).join("summary.json"));
        round_of.mpps = summary
            .as_ref()
            .and_then(|s| summary_mpps(s, "inside", "rx_packets"));
        round_of.note = Some(format!("{} dropped", dropped_share(summary.as_ref())));
        match sampled {
            Ok(cpu) => round_of.cpu = cpu,
            Err(e) => round_of.failed = Some(e),
        }
        if round_of.failed.is_none() && round_of.mpps.is_none() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            round_of.failed = Some(format!(
                "no summary; synwall's last words: {}",
                text.lines().last().unwrap_or("")
            ));
        }
        let cpu = round_of.cpu.first().copied().flatten();
        round_of.mpps_per_cpu = ratio(round_of.mpps, cpu);
        round_of.loadavg = host::loadavg();
        if round_of.failed.is_some() {
            self.runs.failed += 1;
        }
        println!(
            "   round {round} {key}: {} Mpps (cpu {}, {}){} ({})",
            fmt3(round_of.mpps),
            fmt2(cpu),
            round_of.note.as_deref().unwrap_or(""),
            round_of
                .failed
                .as_ref()
                .map(|f| format!("; FAILED: {f}"))
                .unwrap_or_default(),
            Runs::load_note(start)
        );
        round_of
    }
}

/// Lets every child stop by itself until `interrupt_at`, then SIGINT (and
/// SIGKILL 10 s later).
fn stop_all(children: &mut [Child], interrupt_at: Instant) {
    for c in children {
        let _ = stop_by(c, interrupt_at, Duration::from_secs(10));
    }
}

/// `0.812 (0.97 CPU, 0% dropped)`: one cell of the part 2 table.
fn cell(r: Option<&Round>, with_dropped: bool) -> String {
    let Some(r) = r else {
        return "-".to_owned();
    };
    let cpu = fmt2(r.cpu.first().copied().flatten());
    let failed = if r.failed.is_some() {
        " **FAILED**"
    } else {
        ""
    };
    match (&r.note, with_dropped) {
        (Some(n), true) => format!("{} ({cpu} CPU, {n}){failed}", fmt3(r.mpps)),
        _ => format!("{} ({cpu} CPU){failed}", fmt3(r.mpps)),
    }
}

/// The report: part 1's table, part 2's rounds, and the ratios against off.
pub fn tables(load: &FleetLoad, row: &Row, duration: u64) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nRedis load: {} appliances x {} active customers, tick 100 ms, floor 0, {duration}s after {WARMUP}s warm-up\n",
        load.appliances, load.active_customers
    );
    let _ = writeln!(t, "| Redis commands/s | lease script calls/s | µs per call (server) | round trip median ms | round trip max ms | leases held at the end |");
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    let f = |v: Option<f64>, d: usize| v.map_or_else(|| "nan".to_owned(), |x| format!("{x:.d$}"));
    let _ = writeln!(
        t,
        "| {} | {} | {} | {} | {} | {} |",
        f(load.redis.commands_per_sec, 0),
        f(load.redis.lease_calls_per_sec, 0),
        f(load.redis.usec_per_call, 1),
        f(load.round_trip.median_ms, 2),
        f(load.round_trip.max_ms, 2),
        load.leases_held
    );
    let _ = writeln!(t, "\nDataplane, one appliance, the same flood: Mpps inside rx (frames decided per second), the worker thread's CPU share, frames dropped for want of a grant\n");
    let _ = writeln!(t, "| round | [fleet] off | on, floor 0.5 (no Redis calls) | on, floor 0 (every customer leases) |");
    let _ = writeln!(t, "|---|---|---|---|");
    let rounds = |key: &str| {
        row.apps
            .get(key)
            .map(|s| s.rounds.clone())
            .unwrap_or_default()
    };
    let [off, floor, lease] = APPS.map(|(k, _)| rounds(k));
    for (i, r) in off.iter().enumerate() {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} |",
            r.round,
            cell(Some(r), false),
            cell(floor.get(i), true),
            cell(lease.get(i), true)
        );
    }
    let _ = writeln!(
        t,
        "\nMpps per worker CPU-second against off (median of the rounds' ratios): floor 0.5 {}, floor 0 {}",
        fmt3(row.ratio("floor0.5", "off").per_cpu),
        fmt3(row.ratio("floor0", "off").per_cpu)
    );
    t
}

pub(crate) fn check(a: &Args) -> Result<(), String> {
    if a.duration == 0 || a.repeat == 0 || a.appliances == 0 || a.customers == 0 {
        return Err("--duration, --repeat, --appliances and --customers must be at least 1".into());
    }
    if a.customers > 1_048_576 {
        return Err(format!(
            "--customers: {} is more than a table holds (1048576)",
            a.customers
        ));
    }
    Ok(())
}

pub fn run(a: Args) -> Result<(BenchRun, bool), String> {
    check(&a)?;
    let (out, bins) = a.common.dirs("bench-fleet")?;
    let _runtime_dirs = host::RuntimeDirs::new(format!("bf{}_", std::process::id()));
    let synwall = bins.copy("synwall")?;
    let synwallctl = bins.copy("synwallctl")?;
    let mk = bins.copy("synwall-mkpcap")?;
    let redis = Redis::start(&out.join("redis"))?;
    println!("== traffic: a flood from {} active customers", a.customers);
    let frames = flood_frames(a.customers, None);
    let o = |f: &str| out.join(f).display().to_string();
    let c = a.customers.to_string();
    mkpcap(
        &mk,
        &[
            "--out",
            &o("flood.pcap"),
            "--flood",
            &c,
            "--frames",
            &frames.to_string(),
            "--customers",
            &c,
            "--customers-file",
            &o("customers.toml"),
        ],
        true,
    )?;
    let begun = Begun::now();
    let mut b = Bench {
        out: out.clone(),
        synwall,
        synwallctl,
        redis_url: format!("redis://127.0.0.1:{}", redis.port),
        appliances: a.appliances,
        mbufs: pool_mbufs(frames),
        duration: a.duration,
        runs: Runs::new(a.common.wait_idle),
    };
    println!(
        "== part 1: {} appliances, {} active customers each, tick 100 ms",
        a.appliances, a.customers
    );
    let load = b.load(&redis, a.customers)?;
    println!(
        "== part 2: one appliance, [fleet] off / on (floor 0.5) / on (floor 0), {} round(s) of {}s each",
        a.repeat, a.duration
    );
    let mut row = Row {
        id: format!("fleet:{}", a.customers),
        kind: RowKind::Flood,
        traffic: format!("SYNs to port 25 from {} active customers", a.customers),
        frames,
        mean_wire_bytes: 64.0,
        customers: a.customers,
        active_customers: Some(a.customers),
        layout: "bench".into(),
        workers: 1,
        mbufs: Some(b.mbufs),
        apps: Default::default(),
        ratios: Default::default(),
    };
    ab_rounds(
        a.repeat,
        std::slice::from_mut(&mut row),
        &APPS,
        |round, row, (key, floor)| {
            let r = b.solo(round, key, *floor);
            row.push(key, r);
        },
    );
    row.finish(&[("floor0.5", "off"), ("floor0", "off")]);
    drop(redis);
    println!(
        "\nFleet benchmark, {}, {} CPUs, loopback Redis {}, output in {}",
        host::utc_minute(host::unix_time()),
        host::Machine::this().cpus,
        redis_version(),
        out.display()
    );
    print!("{}", tables(&load, &row, a.duration));
    let settings = Settings {
        duration_secs: a.duration,
        repeat: a.repeat,
        warmup_secs: WARMUP,
        core: 1,
        hugepages: false,
        mem_mb: MEM_MB,
        mix: "flood".into(),
        logs: out.display().to_string(),
    };
    let mut result = BenchRun::finished("fleet", begun, &b.runs, settings, vec![row], None);
    result.fleet = Some(load);
    let ok = result.save(&out, a.common.json.as_deref(), "left a summary with a rate")?;
    Ok((result, ok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redis_counters_from_info_and_their_rates() {
        let before = RedisCounters::parse(
            "# Stats\r\ntotal_connections_received:3\r\ntotal_commands_processed:1000\r\n",
        );
        assert_eq!(
            before,
            RedisCounters {
                commands: 1000,
                ..RedisCounters::default()
            }
        );
        let after = RedisCounters::parse(
            "total_commands_processed:3000\r\n# Commandstats\r\n\
             cmdstat_ping:calls=2,usec=1,usec_per_call=0.50\r\n\
             cmdstat_evalsha:calls=400,usec=6000,usec_per_call=15.00,rejected_calls=0\r\n",
        );
        assert_eq!((after.evalsha_calls, after.evalsha_usec), (400, 6000));
        assert_eq!(
            before.rates(&after, 2.0),
            RedisRates {
                commands_per_sec: Some(1000.0),
                lease_calls_per_sec: Some(200.0),
                usec_per_call: Some(15.0)
            }
        );
        // No lease call: no time per call.
        assert_eq!(before.rates(&before, 2.0).usec_per_call, None);
        let rtt = RoundTrip::of(vec![3.0, 1.0, 8.0]);
        assert_eq!((rtt.median_ms, rtt.max_ms), (Some(3.0), Some(8.0)));
    }

    #[test]
    fn dropped_share_of_a_summary() {
        let d = json!({"verdicts": {"rx": 200, "dropped_blocked": 15}});
        assert_eq!(dropped_share(Some(&d)), "8%");
        assert_eq!(dropped_share(Some(&json!({"verdicts": {"rx": 0}}))), "0%");
        assert_eq!(dropped_share(None), "?");
    }

    #[test]
    fn tables_show_rounds_and_ratios_against_off() {
        let mut row = Row {
            id: "fleet:10".into(),
            kind: RowKind::Flood,
            traffic: String::new(),
            frames: 8192,
            mean_wire_bytes: 64.0,
            customers: 10,
            active_customers: Some(10),
            layout: "bench".into(),
            workers: 1,
            mbufs: None,
            apps: Default::default(),
            ratios: Default::default(),
        };
        let r = |round, mpps: f64, cpu: f64| Round {
            round,
            mpps: Some(mpps),
            cpu: vec![Some(cpu)],
            mpps_per_cpu: Some(mpps / cpu),
            note: Some("0% dropped".into()),
            ..Round::default()
        };
        for (round, off, floor, lease) in [(1, 2.0, 2.0, 1.0), (2, 2.0, 1.8, 1.6)] {
            row.push("off", r(round, off, 1.0));
            row.push("floor0.5", r(round, floor, 1.0));
            row.push("floor0", r(round, lease, 0.5));
        }
        row.finish(&[("floor0.5", "off"), ("floor0", "off")]);
        let load = FleetLoad {
            appliances: 4,
            active_customers: 10,
            redis: RedisRates {
                commands_per_sec: Some(1234.4),
                usec_per_call: Some(15.04),
                ..RedisRates::default()
            },
            leases_held: 40,
            ..FleetLoad::default()
        };
        let t = tables(&load, &row, 8);
        assert!(t.contains("| 1234 | nan | 15.0 | nan | nan | 40 |"), "{t}");
        assert!(
            t.contains("| 2 | 2.000 (1.00 CPU) | 1.800 (1.00 CPU, 0% dropped) | 1.600 (0.50 CPU, 0% dropped) |"),
            "{t}"
        );
        // floor 0.5: 1.0 and 0.9 -> 0.95; floor 0: 1.0 and 1.6 -> 1.3
        assert!(t.contains("floor 0.5 0.950, floor 0 1.300"), "{t}");
    }
}
