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

/// How often the inside port replays its rx captures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Replay {
    /// Once: the run's traffic is the captures (the default).
    #[default]
    Once,
    /// Without end (`infinite_rx=1`, once per device: it applies to every
    /// rx queue), with every tx capture going to /dev/null, where it cannot
    /// grow without end: a run driven and read through its control socket,
    /// stopped by a signal or its `--duration`. The outside port's captures
    /// still play once.
    Forever,
}

/// Where the EAL's memory comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Memory {
    /// `--no-huge --no-shconf -m 256`: private heap memory; no root, no
    /// hugepages (the default).
    #[default]
    Private,
    /// `-m MB` on 2 MB hugepages, shared for a DPDK secondary process
    /// (`dpdk-dumpcap`, `dpdk-proc-info`) to attach: needs root and free
    /// hugepages. A secondary probes each port again from the primary's
    /// `--vdev` text and fails on a long one (`vdev_probe(): failed to
    /// initialize`: seen at 82 characters; 51 and 58 attached), so the captures are
    /// named relative to the run's directory, where synwall starts and
    /// where the secondary must start too. [`TestDir`] removes the
    /// hugepage files the primary leaves behind.
    Shared {
        /// `-m`: megabytes of hugepages the EAL takes at start.
        mb: u32,
    },
}

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
    /// How often the inside port replays its captures.
    pub replay: Replay,
    /// Where the EAL's memory comes from.
    pub memory: Memory,
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
            replay: Replay::Once,
            memory: Memory::Private,
        }
    }

    /// The inside port replays its captures without end ([`Replay::Forever`]).
    pub fn forever(mut self) -> Self {
        self.replay = Replay::Forever;
        self
    }

    /// The EAL on `mb` MB of shared hugepages ([`Memory::Shared`]).
    pub fn shared_memory(mut self, mb: u32) -> Self {
        self.memory = Memory::Shared { mb };
        self
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

    /// How the config names `file` of the run's directory: by its full
    /// path, or relative to the directory with [`Memory::Shared`].
    fn file_name(&self, dir: &TestDir, file: &str) -> String {
        match self.memory {
            Memory::Private => dir.join(file).display().to_string(),
            Memory::Shared { .. } => file.to_owned(),
        }
    }

    /// The config text for running in `dir`.
    pub fn config(&self, dir: &TestDir) -> String {
        assert_eq!(
            self.inside.len(),
            self.outside.len(),
            "inside and outside need the same number of rx queues"
        );
        let d = dir.path.display();
        let forever = self.replay == Replay::Forever;
        let port = |n: usize, rx: &str, tx: &str, endless: bool| {
            let mut s = format!("--vdev=net_pcap{n}");
            for q in 0..self.queues() {
                write!(
                    s,
                    ",rx_pcap={}",
                    self.file_name(dir, &format!("{rx}{q}.pcap"))
                )
                .unwrap();
            }
            if endless {
                s.push_str(",infinite_rx=1");
            }
            for w in 0..self.cores.len() {
                let file = if forever {
                    "/dev/null".to_owned()
                } else {
                    self.file_name(dir, &format!("{tx}{w}.pcap"))
                };
                write!(s, ",tx_pcap={file}").unwrap();
            }
            s
        };
        let mut eal: Vec<String> = match self.memory {
            Memory::Private => vec!["--no-huge", "-m", "256", "--no-shconf"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            Memory::Shared { mb } => vec!["-m".to_owned(), mb.to_string()],
        };
        eal.extend(["--no-pci", "--log-level=*:notice"].map(str::to_owned));
        eal.push(format!("--file-prefix={}", dir.unique));
        eal.extend(self.extra_eal.iter().cloned());
        eal.push(port(0, "in", "back", forever));
        let outside = match &self.outside_device {
            Some(vdev) => {
                eal.push(format!("--vdev={vdev}"));
                vdev.split(',').next().unwrap_or_default().to_owned()
            }
            None => {
                eal.push(port(1, "rev", "out", false));
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
                    let file = format!("{prefix}{w}.pcap");
                    let p = dir.join(&file);
                    // A config that transmits elsewhere (to /dev/null, or
                    // rewritten by the test) writes no file.
                    let named = format!("tx_pcap={}", self.file_name(&dir, &file));
                    let written = config_text.contains(&named);
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
        assert!(c.contains("\"--no-huge\""), "{c}");
        assert!(!c.contains("infinite_rx"), "{c}");
        let inside = format!("rx_pcap={}", dir.join("in1.pcap").display());
        assert!(c.contains(&inside), "{c}");
    }

    #[test]
    fn forever_replays_the_inside_and_writes_no_capture() {
        let dir = TestDir::new("config-forever");
        let mut s = Scenario::new(Vec::new(), Vec::new()).forever();
        s.cores = vec![1, 2];
        let c = s.config(&dir);
        assert_eq!(c.matches("infinite_rx=1").count(), 1, "{c}");
        let inside = c.lines().find(|l| l.contains("net_pcap0")).unwrap();
        assert!(inside.contains("infinite_rx=1"), "{c}");
        assert_eq!(c.matches("tx_pcap=/dev/null").count(), 4, "{c}");
        assert_eq!(c.matches("tx_pcap=").count(), 4, "{c}");
    }

    #[test]
    fn shared_memory_is_on_hugepages_with_relative_captures() {
        let dir = TestDir::new("config-shared");
        let s = Scenario::new(Vec::new(), Vec::new()).shared_memory(128);
        let c = s.config(&dir);
        assert!(
            !c.contains("--no-huge") && !c.contains("--no-shconf"),
            "{c}"
        );
        assert!(c.contains("\"-m\",\n  \"128\""), "{c}");
        assert!(
            c.contains("\"--vdev=net_pcap0,rx_pcap=in0.pcap,tx_pcap=back0.pcap\""),
            "{c}"
        );
        let d = dir.path.display().to_string();
        for vdev in c.lines().filter(|l| l.contains("--vdev")) {
            assert!(!vdev.contains(&d), "{vdev}");
        }
    }
}
