//! [`Scenario`]: one appliance run on `net_pcap` ports, its config written
//! from the inputs, run to completion ([`Scenario::run`]) or in the
//! background ([`Scenario::spawn`]).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use synwall_dataplane::pcap::{read_pcap, write_pcap};

use crate::process::Launched;
use crate::{run_synwall, toml_str, write_config, Exit, RunResult, Running, TestDir, Value};

/// Default `--duration` of a run: long enough for the workers to drain a
/// small capture, short enough to keep the suite fast.
pub const DEFAULT_DURATION: f64 = 1.5;

/// Appends `toml` and a newline to one of a [`Scenario`]'s TOML parts.
fn push_line(part: &mut String, toml: &str) {
    part.push_str(toml);
    part.push('\n');
}

/// One appliance run on one link of two `net_pcap` ports: `net_pcap0`
/// inside (customers), `net_pcap1` outside (upstream).
///
/// Files in the run's directory: `in{q}.pcap` (inside rx queue q),
/// `rev{q}.pcap` (outside rx queue q), `back{w}.pcap` (inside tx queue w),
/// `out{w}.pcap` (outside tx queue w), one tx queue per worker.
pub struct Scenario {
    /// Frames entering the inside port, per rx queue.
    pub inside: Vec<Vec<Vec<u8>>>,
    /// Frames entering the outside port (reverse direction), per rx queue.
    pub outside: Vec<Vec<Vec<u8>>>,
    /// Worker lcores (`dpdk.cores`).
    pub cores: Vec<usize>,
    /// Extra EAL arguments (e.g. an `--lcores` map).
    pub extra_eal: Vec<String>,
    /// TOML inserted after `[[link]]` and before `[control]`: `[detect]`,
    /// `[block]` and such.
    pub sections: String,
    /// `[[customer]]` entries.
    pub customers: String,
    /// `--duration`.
    pub duration: f64,
    /// Extra keys of the `[control]` table (after `state_dir`, `socket` and
    /// `events`), e.g. `tick = "50ms"` or `snapshot_interval = "1s"`.
    pub control: String,
    /// Extra keys of the `[dpdk]` table, e.g. `mbufs = 15`.
    pub dpdk: String,
    /// Top-level keys, before `[dpdk]` (e.g. `customers_file = "c.toml"`).
    pub preamble: String,
    /// Another device instead of the outside `net_pcap1`: its whole `--vdev`
    /// value (`net_memif0,role=server,...`); no `out{w}.pcap` then.
    pub outside_device: Option<String>,
    /// Environment variables set for a spawned synwall
    /// ([`Self::spawn`]), e.g. `NOTIFY_SOCKET`.
    pub env: Vec<(String, String)>,
}

impl Scenario {
    /// One worker, one queue, the given inside and outside frames.
    pub fn new(inside: Vec<Vec<u8>>, outside: Vec<Vec<u8>>) -> Scenario {
        Scenario {
            inside: vec![inside],
            outside: vec![outside],
            cores: vec![1],
            extra_eal: Vec::new(),
            sections: String::new(),
            customers: String::new(),
            duration: DEFAULT_DURATION,
            control: String::new(),
            dpdk: String::new(),
            preamble: String::new(),
            outside_device: None,
            env: Vec::new(),
        }
    }

    /// Sets an environment variable for [`Self::spawn`]'s synwall.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds keys to the `[dpdk]` table.
    pub fn dpdk(mut self, toml: &str) -> Self {
        push_line(&mut self.dpdk, toml);
        self
    }

    /// Replaces the outside port by another device (`--vdev` value).
    pub fn outside_device(mut self, vdev: &str) -> Self {
        self.outside_device = Some(vdev.to_owned());
        self
    }

    pub fn sections(mut self, toml: &str) -> Self {
        push_line(&mut self.sections, toml);
        self
    }

    pub fn customers(mut self, toml: &str) -> Self {
        push_line(&mut self.customers, toml);
        self
    }

    /// Adds keys to the `[control]` table.
    pub fn control(mut self, toml: &str) -> Self {
        push_line(&mut self.control, toml);
        self
    }

    pub fn queues(&self) -> usize {
        self.inside.len()
    }

    /// The config text for running in `dir`.
    pub fn config(&self, dir: &TestDir) -> String {
        assert_eq!(
            self.inside.len(),
            self.outside.len(),
            "inside and outside need the same number of rx queues"
        );
        let d = dir.path.display();
        let port = |n: usize, rx: &str, tx: &str| {
            let mut s = format!("--vdev=net_pcap{n}");
            for q in 0..self.queues() {
                write!(s, ",rx_pcap={d}/{rx}{q}.pcap").unwrap();
            }
            for w in 0..self.cores.len() {
                write!(s, ",tx_pcap={d}/{tx}{w}.pcap").unwrap();
            }
            s
        };
        let mut eal: Vec<String> = [
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--no-shconf",
            "--log-level=*:notice",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        eal.push(format!("--file-prefix={}", dir.unique));
        eal.extend(self.extra_eal.iter().cloned());
        eal.push(port(0, "in", "back"));
        let outside = match &self.outside_device {
            Some(vdev) => {
                eal.push(format!("--vdev={vdev}"));
                vdev.split(',').next().unwrap_or_default().to_owned()
            }
            None => {
                eal.push(port(1, "rev", "out"));
                "net_pcap1".to_owned()
            }
        };
        let eal = eal.iter().map(|a| toml_str(a)).collect::<Vec<_>>();
        let cores = self.cores.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        format!(
            "{}[dpdk]\neal_args = [\n  {}\n]\ncores = [{}]\n{}\n\
             [[link]]\nname = \"l0\"\ninside = \"net_pcap0\"\noutside = {}\nqueues = {}\n\n\
             {}\n\
             [control]\nstate_dir = {}\nsocket = {}\nevents = {}\n{}\n\
             {}",
            self.preamble,
            eal.join(",\n  "),
            cores.join(", "),
            self.dpdk,
            toml_str(&outside),
            self.queues(),
            self.sections,
            toml_str(&format!("{d}/state")),
            toml_str(&format!("{d}/control.sock")),
            toml_str(&format!("{d}/events.jsonl")),
            self.control,
            self.customers,
        )
    }

    /// Writes the inputs and the config, runs synwall, and collects what
    /// came out. Panics (failing the test) if synwall exits non-zero.
    pub fn run(&self, name: &str) -> RunResult {
        let dir = TestDir::new(name);
        let result = self.run_in(dir);
        assert!(
            result.exit.status.success(),
            "synwall failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            result.exit.status,
            result.exit.stdout,
            result.exit.stderr
        );
        result
    }

    /// Like [`Self::run`] but returns whatever happened, even a failure.
    pub fn run_in(&self, dir: TestDir) -> RunResult {
        self.run_with(dir, &[])
    }

    /// Like [`Self::run_in`], with extra `synwall` arguments (e.g.
    /// `--fresh-state`). The directory may hold a previous run's state:
    /// inputs, config and outputs are rewritten, `state/` is kept.
    pub fn run_with(&self, dir: TestDir, extra_args: &[&str]) -> RunResult {
        let (config, summary_path) = self.prepare(&dir);
        let duration = self.duration.to_string();
        let args = run_args(&config, &summary_path, &duration, extra_args);
        let exit = run_synwall(&dir, &args);
        self.collect(dir, exit, &summary_path)
    }

    /// Writes the input captures and `synwall.toml` into `dir` and removes
    /// a previous run's summary; returns the config and summary paths.
    pub fn prepare(&self, dir: &TestDir) -> (PathBuf, PathBuf) {
        for (q, frames) in self.inside.iter().enumerate() {
            write_pcap(dir.join(&format!("in{q}.pcap")), frames).expect("writing in.pcap");
        }
        for (q, frames) in self.outside.iter().enumerate() {
            write_pcap(dir.join(&format!("rev{q}.pcap")), frames).expect("writing rev.pcap");
        }
        // A previous run's outputs, so that a run that fails to start is
        // not credited with them.
        for w in 0..self.cores.len() {
            let _ = fs::remove_file(dir.join(&format!("out{w}.pcap")));
            let _ = fs::remove_file(dir.join(&format!("back{w}.pcap")));
        }
        let config = write_config(dir, "synwall.toml", &self.config(dir));
        let summary_path = dir.join("summary.json");
        let _ = fs::remove_file(&summary_path);
        (config, summary_path)
    }

    /// Reads what a finished run left in `dir`.
    pub(crate) fn collect(&self, dir: TestDir, exit: Exit, summary_path: &Path) -> RunResult {
        let config_text = fs::read_to_string(dir.join("synwall.toml")).unwrap_or_default();
        let read_all = |prefix: &str| -> Vec<Vec<Vec<u8>>> {
            (0..self.cores.len())
                .map(|w| {
                    let p = dir.join(&format!("{prefix}{w}.pcap"));
                    // A config rewritten to transmit elsewhere writes no file.
                    let written = config_text.contains(&*p.to_string_lossy());
                    if exit.status.success() && written {
                        read_pcap(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
                    } else {
                        read_pcap(&p).unwrap_or_default()
                    }
                })
                .collect()
        };
        let out = read_all("out");
        let back = read_all("back");
        let summary = if exit.status.success() {
            let text = fs::read_to_string(summary_path).unwrap_or_else(|e| {
                panic!(
                    "reading {}: {e}\nstderr:\n{}",
                    summary_path.display(),
                    exit.stderr
                )
            });
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("summary JSON: {e}\n{text}"))
        } else {
            Value::Null
        };
        RunResult {
            exit,
            summary,
            out,
            back,
            dir,
        }
    }

    /// Starts synwall in the background in `dir` (inputs and config written
    /// as for [`Self::run_with`]) and returns at once; drive it with
    /// [`Running`]'s methods. `--duration` is this scenario's duration: make
    /// it long and stop the run with a signal.
    pub fn spawn(&self, dir: TestDir, extra_args: &[&str]) -> Running<'_> {
        self.prepare(&dir);
        self.spawn_prepared(dir, extra_args)
    }

    /// Like [`Self::spawn`] with the inputs and `synwall.toml` already in
    /// `dir` (from [`Self::prepare`], the config perhaps rewritten since).
    pub fn spawn_prepared(&self, dir: TestDir, extra_args: &[&str]) -> Running<'_> {
        let config = dir.join("synwall.toml");
        let summary_path = dir.join("summary.json");
        let duration = self.duration.to_string();
        let args = run_args(&config, &summary_path, &duration, extra_args);
        let Launched {
            child,
            stdout_path,
            stderr_path,
        } = Launched::start(&dir, &args, &self.env);
        Running {
            scenario: self,
            child: Some(child),
            dir: Some(dir),
            config,
            summary_path,
            stdout_path,
            stderr_path,
        }
    }
}

/// `synwall`'s arguments for a bounded run of `config` writing its summary
/// to `summary`, then `extra`.
fn run_args<'a>(
    config: &'a Path,
    summary: &'a Path,
    duration: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "--config",
        config.to_str().expect("utf-8 path"),
        "--duration",
        duration,
        "--summary-json",
        summary.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    args
}

/// `config` (a [`Scenario::config`] for `dir`) with the inside port
/// replaying its captures forever (`infinite_rx=1`, once per device: it
/// applies to every rx queue) and the tx captures of `workers` workers
/// going to /dev/null, where they cannot grow without end.
pub fn replay_forever(config: &str, dir: &TestDir, workers: usize) -> String {
    let d = dir.path.display();
    let rx = format!("rx_pcap={d}/in0.pcap");
    assert!(config.contains(&rx), "{config}");
    let mut c = config.replace(&rx, &format!("{rx},infinite_rx=1"));
    for w in 0..workers {
        for tx in ["back", "out"] {
            c = c.replace(&format!("tx_pcap={d}/{tx}{w}.pcap"), "tx_pcap=/dev/null");
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_one_pcap_per_queue_and_worker() {
        let dir = TestDir::new("config");
        let mut s = Scenario::new(Vec::new(), Vec::new());
        s.inside = vec![Vec::new(), Vec::new()];
        s.outside = vec![Vec::new(), Vec::new()];
        s.cores = vec![1, 2, 3];
        let c = s.config(&dir);
        assert_eq!(c.matches("rx_pcap=").count(), 4, "{c}");
        assert_eq!(c.matches("tx_pcap=").count(), 6, "{c}");
        assert!(c.contains("queues = 2"), "{c}");
        assert!(c.contains("cores = [1, 2, 3]"), "{c}");
        assert!(c.contains(&format!("--file-prefix={}", dir.unique)), "{c}");
    }
}
