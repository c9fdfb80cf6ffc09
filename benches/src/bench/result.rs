//! The JSON result file (`--json FILE`): what was measured, on what, when,
//! every round's values and the medians and ratios the tables show.
//! `synwall-bench report` reads it back to write `docs/performance.md`.
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::host::{self, Machine};
use super::rounds::Runs;
use super::stats::{median_of, per_round_ratios, round_ratios, spread};

/// One bench run: a JSON file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BenchRun {
    /// Which bench: `dataplane`.
    pub bench: String,
    /// When it started, `2026-12-06T23:05Z`.
    pub date: String,
    pub unix_time: u64,
    /// The checked-out commit, short hash.
    pub commit: String,
    /// The appliance's sources differed from the commit.
    pub uncommitted_changes: bool,
    pub machine: Machine,
    pub load: Load,
    pub settings: Settings,
    /// The driver's command line.
    pub command: Vec<String>,
    pub rows: Vec<Row>,
    /// `synwall-bench million`'s measurements (start-up, memory, tick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub million: Option<Million>,
    /// `synwall-bench fleet`'s Redis load (part 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<super::fleet::FleetLoad>,
    /// `synwall-bench gen`'s steps and latency trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen: Option<super::gen::GenSteps>,
    /// Runs made and runs that failed (no rate, or a summary check failed).
    pub runs: usize,
    pub failed_runs: usize,
}

/// How busy the machine was.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// `/proc/loadavg` (1, 5, 15 min) at the start and at the end.
    pub at_start: String,
    pub at_end: String,
    /// `--wait-idle` seconds, and the most compilers alive at a run's start.
    pub wait_idle_secs: u64,
    pub max_compilers_at_start: usize,
}

/// How the runs were made.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub duration_secs: u64,
    pub repeat: usize,
    /// Seconds of per-second rates ignored at the start of each run.
    pub warmup_secs: u64,
    /// The (first) worker lcore.
    pub core: u32,
    pub hugepages: bool,
    pub mem_mb: u64,
    /// `default` (the mixes) or `flood`.
    pub mix: String,
    pub logs: String,
}

/// What a row measures.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// A traffic mix against a 1k-customer table.
    Mix,
    /// The 64 B mix against a 1M-customer table (one run).
    Mix1m,
    /// SYNs to port 25 from many active customers.
    Flood,
    /// Established SMTP with `[block] scope = "smtp"`.
    Smtp,
    /// synwall alone, W workers, C customers.
    Scale,
}

/// One line of a table: one traffic shape, every app run on it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// `mix64`, `flood:8192:bench`, `scale:w2:c1000`, ...
    pub id: String,
    pub kind: RowKind,
    /// The traffic in words.
    pub traffic: String,
    pub frames: u64,
    /// Mean frame size on the wire, with FCS (bytes).
    pub mean_wire_bytes: f64,
    /// Customers in synwall's table, and how many of them send.
    pub customers: u64,
    pub active_customers: Option<u64>,
    pub layout: String,
    pub workers: u32,
    /// mbufs in the apps' pools, when set.
    pub mbufs: Option<u64>,
    /// `io`, `5tswap` (dpdk-testpmd), `synwall`, `baseline`.
    pub apps: BTreeMap<String, Series>,
    /// `synwall/io` and the like: per round, then the median.
    pub ratios: BTreeMap<String, Ratio>,
}

/// Every round of one app on one row.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Series {
    pub rounds: Vec<Round>,
    /// Medians over the rounds that produced a value.
    pub median: Medians,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Medians {
    pub mpps: Option<f64>,
    pub mean_mpps: Option<f64>,
    pub cpu: Option<f64>,
    pub mpps_per_cpu: Option<f64>,
}

/// One run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Round {
    pub round: usize,
    /// The run's number in the whole bench (its log is `run<N>-...`).
    pub run: usize,
    /// Median of the per-second rates after warm-up (Mpps).
    pub mpps: Option<f64>,
    /// Every per-second rate the app printed, warm-up included.
    pub per_second: Vec<f64>,
    /// synwall's whole-run mean (`--summary-json`: outside tx / elapsed).
    pub mean_mpps: Option<f64>,
    /// The share of a CPU each worker thread got (1.0: never preempted).
    pub cpu: Vec<Option<f64>>,
    /// Mpps over the workers' summed CPU share.
    pub mpps_per_cpu: Option<f64>,
    /// What the summary check found (synwall on the flood), or the summary's
    /// dropped_blocked (the mixes).
    pub note: Option<String>,
    /// Why the run counts as failed.
    pub failed: Option<String>,
    pub loadavg: String,
    pub compilers_at_start: usize,
    pub log: String,
    pub command: Vec<String>,
}

/// A million customers, operator-sized: start-up, memory and tick cost.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Million {
    pub customers: u64,
    pub active_customers: u64,
    pub layout: String,
    /// Size of the customers file, MB.
    pub file_mb: f64,
    /// `synwall` (this build) and `baseline`: one entry a round.
    pub builds: BTreeMap<String, Vec<MillionRound>>,
}

/// One start of synwall against the big table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct MillionRound {
    pub round: usize,
    pub run: usize,
    /// From the exec to `synwallctl status` saying `forwarding`.
    pub secs_to_forwarding: Option<f64>,
    /// `/proc/PID/status` at the end: anonymous memory besides the EAL's
    /// hugepages, and its high-water mark (MiB).
    pub rss_anon_mib: Option<f64>,
    pub vm_hwm_mib: Option<f64>,
    /// status's `tick_us`, once a second, and their median.
    pub tick_us_samples: Vec<u64>,
    pub tick_us: Option<f64>,
    pub failed: Option<String>,
    pub loadavg: String,
    pub compilers_at_start: usize,
    pub log: String,
}

/// A ratio on Mpps per CPU-second and on raw Mpps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Ratio {
    pub per_cpu: Option<f64>,
    pub raw: Option<f64>,
}

impl Series {
    pub fn mpps(&self) -> Vec<Option<f64>> {
        self.rounds.iter().map(|r| r.mpps).collect()
    }

    pub fn per_cpu(&self) -> Vec<Option<f64>> {
        self.rounds.iter().map(|r| r.mpps_per_cpu).collect()
    }

    /// Runs that failed, of all.
    pub fn failures(&self) -> (usize, usize) {
        (
            self.rounds.iter().filter(|r| r.failed.is_some()).count(),
            self.rounds.len(),
        )
    }

    fn finish(&mut self) {
        let of = |f: fn(&Round) -> Option<f64>| {
            median_of(&self.rounds.iter().map(f).collect::<Vec<_>>())
        };
        self.median = Medians {
            mpps: of(|r| r.mpps),
            mean_mpps: of(|r| r.mean_mpps),
            cpu: of(|r| cpu_sum(&r.cpu)),
            mpps_per_cpu: of(|r| r.mpps_per_cpu),
        };
    }
}

/// The summed CPU share of a run's workers, if every one was sampled.
pub fn cpu_sum(cpu: &[Option<f64>]) -> Option<f64> {
    cpu.iter()
        .copied()
        .sum::<Option<f64>>()
        .filter(|_| !cpu.is_empty())
}

impl Row {
    /// Records one run of `app`.
    pub fn push(&mut self, app: &str, round: Round) {
        self.apps
            .entry(app.to_owned())
            .or_default()
            .rounds
            .push(round);
    }

    /// Computes the medians and every `a/b` ratio of `pairs` whose apps ran.
    pub fn finish(&mut self, pairs: &[(&str, &str)]) {
        for s in self.apps.values_mut() {
            s.finish();
        }
        self.ratios.clear();
        for (a, b) in pairs {
            if let (Some(x), Some(y)) = (self.apps.get(*a), self.apps.get(*b)) {
                let r = Ratio {
                    per_cpu: round_ratios(&x.per_cpu(), &y.per_cpu()),
                    raw: round_ratios(&x.mpps(), &y.mpps()),
                };
                self.ratios.insert(format!("{a}/{b}"), r);
            }
        }
    }

    /// The lowest and highest of the per-round `a/b` ratios on Mpps per
    /// CPU-second (what [`Row::ratio`] takes the median of), with two
    /// rounds or more.
    pub fn ratio_spread(&self, a: &str, b: &str) -> Option<(f64, f64)> {
        let (x, y) = (self.apps.get(a)?, self.apps.get(b)?);
        spread(&per_round_ratios(&x.per_cpu(), &y.per_cpu()))
    }

    pub fn ratio(&self, a: &str, b: &str) -> Ratio {
        self.ratios
            .get(&format!("{a}/{b}"))
            .cloned()
            .unwrap_or_default()
    }

    pub fn median(&self, app: &str) -> Medians {
        self.apps
            .get(app)
            .map(|s| s.median.clone())
            .unwrap_or_default()
    }
}

/// What a bench notes as it starts, for its result.
#[derive(Debug, Clone)]
pub struct Begun {
    pub unix_time: u64,
    pub loadavg: String,
    pub commit: String,
    pub dirty: bool,
}

impl Begun {
    pub fn now() -> Self {
        let (commit, dirty) = host::commit();
        Begun {
            unix_time: host::unix_time(),
            loadavg: host::loadavg(),
            commit,
            dirty,
        }
    }
}

impl BenchRun {
    /// The result of bench `bench`, begun at `begun`, with `runs` made.
    pub fn finished(
        bench: &str,
        begun: Begun,
        runs: &Runs,
        settings: Settings,
        rows: Vec<Row>,
        million: Option<Million>,
    ) -> Self {
        BenchRun {
            bench: bench.to_owned(),
            date: host::utc_minute(begun.unix_time),
            unix_time: begun.unix_time,
            commit: begun.commit,
            uncommitted_changes: begun.dirty,
            machine: Machine::this(),
            load: Load {
                at_start: begun.loadavg,
                at_end: host::loadavg(),
                wait_idle_secs: runs.wait_idle,
                max_compilers_at_start: runs.max_compilers,
            },
            settings,
            command: std::env::args().collect(),
            rows,
            million,
            fleet: None,
            gen: None,
            runs: runs.count,
            failed_runs: runs.failed,
        }
    }

    /// Writes `OUT/result.json` and `--json FILE`, then the bench's last
    /// word, computed from the runs: `ok` (with `ok_means`) or `FAILED`.
    /// Returns whether every run passed.
    pub fn save(&self, out: &Path, json: Option<&Path>, ok_means: &str) -> Result<bool, String> {
        self.write(&out.join("result.json"))?;
        if let Some(j) = json {
            self.write(j)?;
            println!("result: {}", j.display());
        }
        println!("logs: {}", out.display());
        let name = format!("bench-{}", self.bench);
        if self.failed_runs == 0 {
            println!("{name}: ok: all {} runs {ok_means}", self.runs);
            Ok(true)
        } else {
            println!(
                "{name}: FAILED: {} of {} runs failed (each run's line above says why)",
                self.failed_runs, self.runs
            );
            Ok(false)
        }
    }

    /// Reads a result file, saying which file and why when it cannot.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a synwall-bench result: {e}", path.display()))
    }

    /// Writes it as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_result_files_say_which_and_why() {
        let dir = std::env::temp_dir().join(format!("synwall-bench-result-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = BenchRun::read(&dir.join("missing.json")).unwrap_err();
        assert!(
            e.starts_with("reading ") && e.contains("missing.json"),
            "{e}"
        );
        std::fs::write(dir.join("bad.json"), "{\"bench\": 1}").unwrap();
        let e = BenchRun::read(&dir.join("bad.json")).unwrap_err();
        assert!(e.contains("bad.json: not a synwall-bench result"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
