//! `synwall-bench million` (`scripts/bench-million`): a million customers,
//! operator-sized (issue 26, part 5): how long synwall takes from start to
//! `forwarding`, the anonymous memory it holds besides the EAL's hugepages,
//! and what a control tick costs with ACTIVE customers sending.
//!
//! ```text
//! net_pcap (rx_pcap=flood of ACTIVE customers, infinite_rx=1) -> synwall on lcore 1 -> net_null
//! ```
//!
//! Each run: start synwall, poll `synwallctl --json status` every 50 ms
//! until its state is `forwarding` (the time from the exec), then sample
//! status's `tick_us` once a second for `--duration` seconds (median
//! reported) and `/proc/PID/status` (RssAnon, VmHWM) at the end, then stop
//! it. `--baseline BIN` runs a second synwall right after, on the same files.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::host;
use super::inputs::{flood_frames, mkpcap, pool_mbufs, strings, Common};
use super::result::{Begun, BenchRun, Million, MillionRound, Settings};
use super::rounds::{ab_rounds, Runs};
use super::sampled::stop_by;
use super::stats::{fmt2, median, median_of};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Customers in the customers file.
    #[arg(long, default_value_t = 1_000_000)]
    pub customers: u64,
    /// Customers sending SYNs (the flood pcap).
    #[arg(long, default_value_t = 8192)]
    pub active: u64,
    /// Table layout: billing (a billing export's order and prefix sizes) or bench.
    #[arg(long, default_value = "billing")]
    pub layout: String,
    /// Seconds of tick samples per run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Rounds (this build, then the baseline, once a round).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// A second synwall binary run right after this one in every round.
    #[arg(long, value_name = "SYNWALL_BIN")]
    pub baseline: Option<PathBuf>,
}

const MEM_MB: u64 = 1024;
/// The builds, in the order they run and print.
pub const BUILDS: [&str; 2] = ["synwall", "baseline"];

/// No decimals, or `nan`.
pub fn fmt0(v: Option<f64>) -> String {
    v.map_or_else(|| "nan".to_owned(), |x| format!("{x:.0}"))
}

pub(crate) fn check(a: &Args) -> Result<(), String> {
    if !(1..=1_048_576).contains(&a.customers) {
        return Err(format!(
            "--customers: {} is not a table size (1..1048576)",
            a.customers
        ));
    }
    if !(1..=a.customers).contains(&a.active) {
        return Err(format!(
            "--active: {} is not a number of customers (1..{})",
            a.active, a.customers
        ));
    }
    if a.layout != "billing" && a.layout != "bench" {
        return Err(format!("--layout: {} is not billing or bench", a.layout));
    }
    if a.duration == 0 || a.repeat == 0 {
        return Err("--duration and --repeat must be at least 1".into());
    }
    Ok(())
}

struct Bench {
    out: PathBuf,
    synwallctl: PathBuf,
    mem: Vec<String>,
    mbufs: u64,
    duration: u64,
    runs: Runs,
}

/// `VmHWM:   123456 kB` of `/proc/PID/status`, in MiB.
pub fn status_mib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl Bench {
    fn config(&self, dir: &Path, tag: &str) -> String {
        let q = |v: &str| format!("{v:?}");
        let mut eal: Vec<String> = self.mem.iter().map(|m| q(m)).collect();
        for a in [
            "--no-pci".to_owned(),
            format!("--file-prefix=swm{}_{tag}", std::process::id()),
            "--log-level=*:notice".to_owned(),
            format!(
                "--vdev=net_pcap0,rx_pcap={},infinite_rx=1",
                self.out.join("flood.pcap").display()
            ),
            "--vdev=net_null0,no-rx=1".to_owned(),
        ] {
            eal.push(q(&a));
        }
        let state = dir.join("state");
        format!(
            "customers_file = {}\n[dpdk]\neal_args = [{}]\ncores = [1]\nmbufs = {}\n\
             [[link]]\ninside = \"net_pcap0\"\noutside = \"net_null0\"\nqueues = 1\n\
             [control]\nstate_dir = {}\nsocket = {}\nevents = {}\n\
             [windows]\n\"5m\" = 1000000000000\n\"1h\" = 1000000000000\n\"1d\" = 1000000000000\n",
            q(&self.out.join("customers.toml").display().to_string()),
            eal.join(", "),
            self.mbufs,
            q(&state.display().to_string()),
            q(&state.join("control.sock").display().to_string()),
            q(&state.join("events.jsonl").display().to_string()),
        )
    }

    fn status(&self, socket: &Path) -> Option<Value> {
        let o = Command::new(&self.synwallctl)
            .arg("--socket")
            .arg(socket)
            .args(["--json", "status"])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        serde_json::from_slice(&o.stdout).ok()
    }

    fn run(&mut self, round: usize, bin: &Path, key: &str) -> MillionRound {
        let start = self.runs.start();
        let tag = format!("{key}{round}");
        let dir = self.out.join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        let log = dir.join("log");
        let mut r = MillionRound {
            round,
            run: start.run,
            compilers_at_start: start.compilers,
            log: log.display().to_string(),
            ..MillionRound::default()
        };
        let spawned = std::fs::create_dir_all(dir.join("state"))
            .and_then(|()| std::fs::write(dir.join("synwall.toml"), self.config(&dir, &tag)))
            .and_then(|()| File::create(&log))
            .and_then(|f| Ok((f.try_clone()?, f)))
            .and_then(|(out, err)| {
                Command::new(bin)
                    .arg("--config")
                    .arg(dir.join("synwall.toml"))
                    .stdin(Stdio::null())
                    .stdout(out)
                    .stderr(err)
                    .spawn()
            });
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                r.failed = Some(format!("starting {}: {e}", bin.display()));
                return self.finish(r, key);
            }
        };
        let t0 = Instant::now();
        let socket = dir.join("state/control.sock");
        for _ in 0..1200 {
            if self
                .status(&socket)
                .is_some_and(|s| s["state"] == "forwarding")
            {
                r.secs_to_forwarding = Some(t0.elapsed().as_secs_f64());
                break;
            }
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if r.secs_to_forwarding.is_some() {
            for _ in 0..self.duration {
                std::thread::sleep(Duration::from_secs(1));
                if let Some(t) = self.status(&socket).and_then(|s| s["tick_us"].as_u64()) {
                    r.tick_us_samples.push(t);
                }
            }
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
            r.rss_anon_mib = status_mib(&status, "RssAnon:");
            r.vm_hwm_mib = status_mib(&status, "VmHWM:");
        }
        // SIGINT now, SIGKILL after 30 s.
        let _ = stop_by(&mut child, Instant::now(), Duration::from_secs(30));
        r.tick_us = median(
            &r.tick_us_samples
                .iter()
                .map(|&t| t as f64)
                .collect::<Vec<_>>(),
        );
        if r.secs_to_forwarding.is_none() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            r.failed = Some(format!(
                "never reached `forwarding`; synwall's last words: {}",
                text.lines().last().unwrap_or("")
            ));
        } else if r.tick_us.is_none() || r.rss_anon_mib.is_none() {
            r.failed = Some("no tick_us or /proc status sampled".into());
        }
        self.finish(r, key)
    }

    fn finish(&mut self, mut r: MillionRound, key: &str) -> MillionRound {
        r.loadavg = host::loadavg();
        if r.failed.is_some() {
            self.runs.failed += 1;
        }
        println!(
            "   round {} {key}: {} s to forwarding, RssAnon {} MiB, VmHWM {} MiB, tick {} µs{} (load {}, compilers at start: {})",
            r.round,
            fmt2(r.secs_to_forwarding),
            fmt0(r.rss_anon_mib),
            fmt0(r.vm_hwm_mib),
            fmt0(r.tick_us),
            r.failed.as_ref().map(|f| format!("; FAILED: {f}")).unwrap_or_default(),
            r.loadavg,
            r.compilers_at_start
        );
        r
    }
}

/// The table: one line a build and round, then the medians.
pub fn table(m: &Million, duration: u64) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n{} customers ({} layout, {:.0} MiB file), {} active:\n",
        m.customers, m.layout, m.file_mb, m.active_customers
    );
    let _ = writeln!(
        t,
        "| build | round | seconds to forwarding | RssAnon MiB | VmHWM MiB | tick µs (median of {duration} 1 s samples) |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|");
    for (key, rounds) in BUILDS.iter().filter_map(|k| Some((k, m.builds.get(*k)?))) {
        for r in rounds {
            let _ = writeln!(
                t,
                "| {key} | {} | {} | {} | {} | {} |",
                r.round,
                fmt2(r.secs_to_forwarding),
                fmt0(r.rss_anon_mib),
                fmt0(r.vm_hwm_mib),
                fmt0(r.tick_us)
            );
        }
        let med = medians(rounds);
        let _ = writeln!(
            t,
            "| {key} | median | {} | {} | {} | {} |",
            fmt2(med[0]),
            fmt0(med[1]),
            fmt0(med[2]),
            fmt0(med[3])
        );
    }
    t
}

/// Medians over rounds: seconds to forwarding, RssAnon, VmHWM, tick µs.
pub fn medians(rounds: &[MillionRound]) -> [Option<f64>; 4] {
    let of =
        |f: fn(&MillionRound) -> Option<f64>| median_of(&rounds.iter().map(f).collect::<Vec<_>>());
    [
        of(|r| r.secs_to_forwarding),
        of(|r| r.rss_anon_mib),
        of(|r| r.vm_hwm_mib),
        of(|r| r.tick_us),
    ]
}

pub fn run(a: Args) -> Result<(BenchRun, bool), String> {
    check(&a)?;
    let (out, bins) = a.common.dirs("million")?;
    let _runtime_dirs = host::RuntimeDirs::new(format!("swm{}_", std::process::id()));
    let synwall = bins.copy("synwall")?;
    let synwallctl = bins.copy("synwallctl")?;
    let mk = bins.copy("synwall-mkpcap")?;
    let baseline = bins.baseline(a.baseline.as_deref())?;
    let frames = flood_frames(a.active, None);
    let o = |f: &str| out.join(f).display().to_string();
    let (c, l) = (a.customers.to_string(), a.layout.as_str());
    mkpcap(
        &mk,
        &[
            "--out",
            &o("flood.pcap"),
            "--flood",
            &a.active.to_string(),
            "--frames",
            &frames.to_string(),
            "--customers",
            &c,
            "--layout",
            l,
        ],
        true,
    )?;
    mkpcap(
        &mk,
        &[
            "--customers",
            &c,
            "--layout",
            l,
            "--customers-file",
            &o("customers.toml"),
        ],
        true,
    )?;
    let file_mb =
        std::fs::metadata(out.join("customers.toml")).map_or(0.0, |m| m.len() as f64 / 1_048_576.0);
    println!(
        "== {c} customers ({l} layout, {file_mb:.0} MiB file), {} active; logs in {}",
        a.active,
        out.display()
    );
    let huge = host::hugepages_ok(MEM_MB);
    let mem = if huge {
        strings(&["-m", "1024", "--huge-unlink"])
    } else {
        strings(&["--no-huge", "-m", "1024"])
    };
    let begun = Begun::now();
    let mut b = Bench {
        out: out.clone(),
        synwallctl,
        mem,
        mbufs: pool_mbufs(frames),
        duration: a.duration,
        runs: Runs::new(a.common.wait_idle),
    };
    let mut builds = vec![(BUILDS[0], synwall)];
    builds.extend(baseline.map(|p| (BUILDS[1], p)));
    let mut results: BTreeMap<String, Vec<MillionRound>> = BTreeMap::new();
    ab_rounds(a.repeat, &mut [()], &builds, |round, (), (key, bin)| {
        let r = b.run(round, bin, key);
        results.entry((*key).to_owned()).or_default().push(r);
    });
    let million = Million {
        customers: a.customers,
        active_customers: a.active,
        layout: a.layout.clone(),
        file_mb,
        builds: results,
    };
    print!("{}", table(&million, a.duration));
    let settings = Settings {
        duration_secs: a.duration,
        repeat: a.repeat,
        warmup_secs: 0,
        core: 1,
        hugepages: huge,
        mem_mb: MEM_MB,
        mix: "million".into(),
        logs: out.display().to_string(),
    };
    let result = BenchRun::finished("million", begun, &b.runs, settings, vec![], Some(million));
    let ok = result.save(
        &out,
        a.common.json.as_deref(),
        "reached forwarding and sampled tick and memory",
    )?;
    Ok((result, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_in_mib_and_medians() {
        let s = "Name:\tsynwall\nVmHWM:\t  2097152 kB\nRssAnon:\t  1048576 kB\n";
        assert_eq!(status_mib(s, "VmHWM:"), Some(2048.0));
        assert_eq!(status_mib(s, "RssAnon:"), Some(1024.0));
        assert_eq!(status_mib(s, "RssFile:"), None);
        let r = |secs, tick| MillionRound {
            secs_to_forwarding: Some(secs),
            tick_us: tick,
            ..MillionRound::default()
        };
        let m = medians(&[r(3.0, Some(10.0)), r(5.0, None), r(4.0, Some(30.0))]);
        assert_eq!(m[0], Some(4.0));
        assert_eq!(m[3], Some(20.0));
        assert_eq!(m[1], None);
    }
}
