//! Shared helpers for the integration tests: run the real `synwall` binary
//! under EAL on `net_pcap` virtual devices, with crafted input captures, and
//! read back what came out of each port and the `--summary-json` counters.
//!
//! Every run gets its own temporary directory (removed when the test passes,
//! kept and printed when it fails) and its own EAL `--file-prefix`, so tests
//! can run in parallel.

pub mod redis;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use serde_json::Value;
use synwall_dataplane::pcap::{read_pcap, write_pcap};

/// A run is killed (and the test fails) if it has not exited after this long.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Default `--duration` of a run: long enough for the workers to drain a
/// small capture, short enough to keep the suite fast.
pub const DEFAULT_DURATION: f64 = 1.5;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A per-test temporary directory, removed on drop unless the test panicked
/// (then its path is printed so the inputs and outputs can be inspected).
pub struct TestDir {
    pub path: PathBuf,
    /// A short string unique to this directory (for the EAL file prefix).
    pub unique: String,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let unique = format!("swt{}x{n}", std::process::id());
        let path = std::env::temp_dir().join(format!("synwall-test-{name}-{unique}"));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TestDir { path, unique }
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
        // EAL's runtime directory for this file prefix (empty with
        // --no-shconf, but created anyway).
        for base in ["/var/run/dpdk", "/run/dpdk"] {
            let _ = fs::remove_dir_all(Path::new(base).join(&self.unique));
        }
        if let Ok(xdg) = std::env::var("XDG_RUNTIME_DIR") {
            let _ = fs::remove_dir_all(Path::new(&xdg).join("dpdk").join(&self.unique));
        }
    }
}

/// The `synwall` binary of the same profile as this test binary, built once
/// per test process (a no-op when it is up to date).
pub fn synwall_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bins(&[("synwall-control", "synwall")]).join("synwall"))
}

/// Builds `(package, binary)` pairs in the profile and target directory of
/// this test binary; returns the directory they are in
/// (`target/<profile>`).
pub fn build_bins(bins: &[(&str, &str)]) -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is not in target/<profile>/deps")
        .to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(&workspace).arg("build");
    for (package, bin) in bins {
        cmd.args(["-p", package, "--bin", bin]);
    }
    if release {
        cmd.arg("--release");
    }
    // Build into the same target directory as this test binary (it may
    // have been given with --target-dir); CACHEDIR.TAG marks its root.
    if let Some(target_dir) = profile_dir.parent() {
        if target_dir.join("CACHEDIR.TAG").exists() {
            cmd.env("CARGO_TARGET_DIR", target_dir);
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", env!("CARGO")));
    assert!(
        out.status.success(),
        "building {bins:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (_, bin) in bins {
        let path = profile_dir.join(bin);
        assert!(
            path.exists(),
            "{} missing after cargo build",
            path.display()
        );
    }
    profile_dir
}

/// What a finished process left behind.
#[derive(Debug)]
pub struct Exit {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Exit {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `synwall` with `args` in `dir`, killing it after [`RUN_TIMEOUT`]
/// (which fails the test, showing its output so far).
pub fn run_synwall(dir: &TestDir, args: &[&str]) -> Exit {
    let bin = synwall_bin();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let out_path = dir.join(&format!("stdout.{n}.txt"));
    let err_path = dir.join(&format!("stderr.{n}.txt"));
    let stdout = fs::File::create(&out_path).expect("stdout file");
    let stderr = fs::File::create(&err_path).expect("stderr file");
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for synwall") {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "synwall {args:?} did not exit within {RUN_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Exit {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// Writes `text` as a config file in `dir`, returns its path.
pub fn write_config(dir: &TestDir, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// A TOML string literal.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
        self.dpdk.push_str(toml);
        self.dpdk.push('\n');
        self
    }

    /// Replaces the outside port by another device (`--vdev` value).
    pub fn outside_device(mut self, vdev: &str) -> Self {
        self.outside_device = Some(vdev.to_owned());
        self
    }

    pub fn sections(mut self, toml: &str) -> Self {
        self.sections.push_str(toml);
        self.sections.push('\n');
        self
    }

    pub fn customers(mut self, toml: &str) -> Self {
        self.customers.push_str(toml);
        self.customers.push('\n');
        self
    }

    /// Adds keys to the `[control]` table.
    pub fn control(mut self, toml: &str) -> Self {
        self.control.push_str(toml);
        self.control.push('\n');
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
        let mut args = vec![
            "--config",
            config.to_str().expect("utf-8 path"),
            "--duration",
            &duration,
            "--summary-json",
            summary_path.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra_args);
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
    fn collect(&self, dir: TestDir, exit: Exit, summary_path: &Path) -> RunResult {
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
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let stdout_path = dir.join(&format!("stdout.{n}.txt"));
        let stderr_path = dir.join(&format!("stderr.{n}.txt"));
        let duration = self.duration.to_string();
        let bin = synwall_bin();
        let child = Command::new(bin)
            .args([
                "--config",
                config.to_str().expect("utf-8 path"),
                "--duration",
                &duration,
                "--summary-json",
                summary_path.to_str().expect("utf-8 path"),
            ])
            .args(extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
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

/// A `synwall` started by [`Scenario::spawn`], still running (or not yet
/// reaped). Dropping it kills the process.
pub struct Running<'a> {
    scenario: &'a Scenario,
    child: Option<Child>,
    dir: Option<TestDir>,
    /// The config file it was started with (rewrite it, then [`Self::signal`]
    /// `"HUP"` to reload).
    pub config: PathBuf,
    summary_path: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Running<'_> {
    /// The run's directory.
    pub fn dir(&self) -> &TestDir {
        self.dir.as_ref().expect("run directory")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// What the process printed so far.
    pub fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            fs::read_to_string(&self.stderr_path).unwrap_or_default()
        )
    }

    /// Whether the process has exited (it is not reaped by this).
    pub fn exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("child");
        matches!(child.try_wait(), Ok(Some(_)))
    }

    /// Sends a signal by name (`"HUP"`, `"TERM"`, `"KILL"`) with `kill(1)`.
    pub fn signal(&mut self, name: &str) {
        assert!(
            !self.exited(),
            "synwall exited before SIG{name}\n{}",
            self.output()
        );
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// The event log's lines so far.
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.dir().join("events.jsonl"))
    }

    /// Polls (up to `timeout`) until `f` returns something; fails the test
    /// with `what` and the process's output otherwise, or if the process
    /// exits first.
    #[track_caller]
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let started = Instant::now();
        loop {
            if let Some(t) = f(self) {
                return t;
            }
            if self.exited() {
                // One last look: it may have happened just before the exit.
                if let Some(t) = f(self) {
                    return t;
                }
                panic!(
                    "synwall exited while waiting for {what}\nevents: {:?}\n{}",
                    self.events(),
                    self.output()
                );
            }
            if started.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\nevents: {:?}\n{}",
                    self.events(),
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to `timeout`) for an event matching `pred`, returns it.
    #[track_caller]
    pub fn wait_for_event(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for(what, timeout, |r| r.events().into_iter().find(|e| pred(e)))
    }

    /// Waits (up to `timeout`) for the process to exit by itself (or after
    /// a signal) and collects what it left, like [`Scenario::run_in`]. Kills
    /// it and fails the test if it does not exit in time.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> RunResult {
        let mut child = self.child.take().expect("child");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for synwall") {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!("synwall did not exit within {timeout:?}\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let exit = Exit {
            status,
            stdout: fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: fs::read_to_string(&self.stderr_path).unwrap_or_default(),
        };
        let dir = self.dir.take().expect("run directory");
        self.scenario.collect(dir, exit, &self.summary_path)
    }

    /// SIGKILLs the process and reaps it; returns the directory (with
    /// whatever state it left) for the next run.
    pub fn kill(mut self) -> TestDir {
        let mut child = self.child.take().expect("child");
        let _ = child.kill();
        let _ = child.wait();
        self.dir.take().expect("run directory")
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("synwall output:\n{}", self.output());
            }
        }
    }
}

/// The events of a JSON-lines event log (complete lines only: a line still
/// being written is left out). Missing file: no events.
pub fn read_events(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad event line {l:?}: {e}", path.display()))
        })
        .collect()
}

/// Polls `f` every 20 ms until it returns something or `timeout` passes
/// (then fails the test, naming `what`).
#[track_caller]
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(
            started.elapsed() <= timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one run produced.
pub struct RunResult {
    pub exit: Exit,
    /// The `--summary-json` document (Null if the run failed).
    pub summary: Value,
    /// Frames sent by the outside port, per tx queue (= per worker).
    pub out: Vec<Vec<Vec<u8>>>,
    /// Frames sent by the inside port, per tx queue (= per worker).
    pub back: Vec<Vec<Vec<u8>>>,
    /// Kept alive until the result is dropped (removed then if no panic).
    pub dir: TestDir,
}

impl RunResult {
    /// The event log (`events.jsonl`) after the run: every line, this run's
    /// and earlier runs' in the same directory.
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.dir.join("events.jsonl"))
    }

    /// The events of `kind` (`"block"`, `"reload"`, ...) about `customer`
    /// (`None`: events naming no customer).
    pub fn events_of(&self, kind: &str, customer: Option<&str>) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["kind"] == kind && e["customer"].as_str() == customer)
            .collect()
    }

    /// `customers[].windows.<window>` of the named customer.
    pub fn window_count(&self, customer: &str, window: &str) -> u64 {
        self.summary["customers"]
            .as_array()
            .expect("customers")
            .iter()
            .find(|c| c["name"] == customer)
            .unwrap_or_else(|| {
                panic!(
                    "customer {customer} not in the summary:\n{:#}",
                    self.summary
                )
            })["windows"][window]
            .as_u64()
            .unwrap_or_else(|| {
                panic!(
                    "customer {customer} has no window {window}:\n{:#}",
                    self.summary
                )
            })
    }

    /// Everything the outside port sent, queue 0 first.
    pub fn out_frames(&self) -> Vec<Vec<u8>> {
        self.out.concat()
    }

    /// Everything the inside port sent, queue 0 first.
    pub fn back_frames(&self) -> Vec<Vec<u8>> {
        self.back.concat()
    }

    /// A summary counter by JSON pointer, e.g. `/verdicts/rx`.
    pub fn counter(&self, pointer: &str) -> u64 {
        self.summary
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("summary has no counter {pointer}:\n{:#}", self.summary))
    }

    /// `verdicts.<name>`.
    pub fn verdict(&self, name: &str) -> u64 {
        self.counter(&format!("/verdicts/{name}"))
    }

    /// All of `outcomes` as (name, count), for exact comparison.
    pub fn outcomes(&self) -> Vec<(String, u64)> {
        let map = self
            .summary
            .get("outcomes")
            .and_then(Value::as_object)
            .expect("summary.outcomes");
        map.iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("outcome count")))
            .collect()
    }

    /// Asserts every outcome counter: those named in `nonzero` have the
    /// given value, all others are zero.
    pub fn assert_outcomes(&self, nonzero: &[(&str, u64)]) {
        let got = self.outcomes();
        for (name, _) in nonzero {
            assert!(
                got.iter().any(|(k, _)| k == name),
                "summary has no outcome {name:?}: {got:?}"
            );
        }
        let want: Vec<(String, u64)> = got
            .iter()
            .map(|(k, _)| {
                let n = nonzero
                    .iter()
                    .find(|(name, _)| name == k)
                    .map_or(0, |&(_, n)| n);
                (k.clone(), n)
            })
            .collect();
        assert_eq!(got, want, "outcome counters");
    }

    /// Asserts the verdict counters exactly (all eight of them).
    pub fn assert_verdicts(&self, want: &Verdicts) {
        let got = Verdicts::from_json(&self.summary["verdicts"]);
        assert_eq!(&got, want, "verdict counters\n{:#}", self.summary);
    }

    /// The invariants every run must keep: verdicts add up to rx, outcomes
    /// add up to the inspected frames, workers add up to the total, and the
    /// ports agree with the verdicts.
    pub fn assert_consistent(&self) {
        let v = Verdicts::from_json(&self.summary["verdicts"]);
        assert_eq!(
            v.forwarded
                + v.dropped_blocked
                + v.dropped_malformed
                + v.reset_sent
                + v.reverse_forwarded,
            v.rx,
            "verdicts do not add up to rx: {v:?}"
        );
        let outcomes: u64 = self.outcomes().iter().map(|(_, n)| n).sum();
        assert_eq!(
            outcomes,
            v.rx - v.reverse_forwarded,
            "outcomes do not add up to the inspected frames"
        );
        let workers = self.summary["workers"].as_array().expect("workers");
        let mut sum = Verdicts::default();
        for w in workers {
            sum.add(&Verdicts::from_json(&w["verdicts"]));
        }
        assert_eq!(sum, v, "workers' verdicts do not add up to the total");
        let syn: u64 = workers
            .iter()
            .map(|w| w["syn_watched"].as_u64().expect("syn_watched"))
            .sum();
        assert_eq!(syn, self.counter("/outcomes/syn_watched"));
        for c in self.all_customers() {
            assert_eq!(c.seen, c.forwarded + c.dropped, "customer {c:?}");
            let state = self.customer_state(&c.name);
            assert!(
                c.seen > 0 || state.as_deref().is_some_and(|s| s != "open"),
                "customer without SYNs listed while open: {c:?} {state:?}"
            );
        }
        // Every watched SYN of this run is either some customer's or
        // nobody's (customer counts are this run's, not carried over).
        // (Customers a reload removed are booked apart.)
        let removed_seen = self.counter("/removed_customers/syn_seen");
        let seen: u64 = self.all_customers().iter().map(|c| c.seen).sum::<u64>() + removed_seen;
        assert_eq!(
            removed_seen,
            self.counter("/removed_customers/syn_forwarded")
                + self.counter("/removed_customers/syn_dropped"),
            "removed customers: seen != forwarded + dropped"
        );
        assert_eq!(
            seen + v.syn_no_customer,
            self.counter("/outcomes/syn_watched"),
            "customers' syn_seen + syn_no_customer vs outcomes.syn_watched"
        );
        let inside = self.port("inside");
        let outside = self.port("outside");
        assert_eq!(
            inside.rx + outside.rx,
            v.rx,
            "ports' rx and verdicts.rx differ"
        );
        assert_eq!(outside.rx, v.reverse_forwarded);
        assert_eq!(outside.tx, v.forwarded, "outside tx vs forwarded");
        assert_eq!(
            inside.tx,
            v.reverse_forwarded + v.reset_sent,
            "inside tx vs reverse + resets"
        );
        assert_eq!(v.tx_full, 0, "tx rings overflowed");
        let size = self.counter("/mempool/size");
        let in_use = self.counter("/mempool/in_use");
        assert!(in_use <= size, "mempool in_use {in_use} > size {size}");
        assert_eq!(
            in_use,
            self.counter("/mempool/in_use_at_start"),
            "mbufs leaked: mempool in_use at the end vs at the start"
        );
    }

    /// The customers that sent SYNs, in summary order (the summary may also
    /// list customers that sent none, e.g. blocked ones: see
    /// [`Self::all_customers`]).
    pub fn customers(&self) -> Vec<CustomerCount> {
        self.all_customers()
            .into_iter()
            .filter(|c| c.seen > 0)
            .collect()
    }

    /// `customers[].state` of the named customer, if listed with a state.
    pub fn customer_state(&self, name: &str) -> Option<String> {
        self.summary["customers"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)?
            .get("state")?
            .as_str()
            .map(str::to_owned)
    }

    /// Every customer listed in the summary, in order.
    pub fn all_customers(&self) -> Vec<CustomerCount> {
        self.summary["customers"]
            .as_array()
            .expect("customers")
            .iter()
            .map(|c| CustomerCount {
                name: c["name"].as_str().expect("name").to_owned(),
                seen: c["syn_seen"].as_u64().expect("syn_seen"),
                forwarded: c["syn_forwarded"].as_u64().expect("syn_forwarded"),
                dropped: c["syn_dropped"].as_u64().expect("syn_dropped"),
            })
            .collect()
    }

    /// The port on `side` ("inside" / "outside") of the only link.
    pub fn port(&self, side: &str) -> PortCount {
        let ports = self.summary["ports"].as_array().expect("ports");
        let p = ports
            .iter()
            .find(|p| p["side"] == side)
            .unwrap_or_else(|| panic!("no {side} port in {ports:?}"));
        PortCount {
            name: p["name"].as_str().expect("name").to_owned(),
            rx: p["rx_packets"].as_u64().expect("rx_packets"),
            tx: p["tx_packets"].as_u64().expect("tx_packets"),
            rx_nombuf: p["rx_nombuf"].as_u64().expect("rx_nombuf"),
        }
    }
}

/// A port's packet counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortCount {
    pub name: String,
    pub rx: u64,
    pub tx: u64,
    /// Frames the port could not receive for want of an mbuf.
    pub rx_nombuf: u64,
}

/// One entry of `customers[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCount {
    pub name: String,
    pub seen: u64,
    pub forwarded: u64,
    pub dropped: u64,
}

impl CustomerCount {
    pub fn new(name: &str, seen: u64, forwarded: u64, dropped: u64) -> Self {
        CustomerCount {
            name: name.to_owned(),
            seen,
            forwarded,
            dropped,
        }
    }
}

/// The summary's `verdicts` object.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdicts {
    pub rx: u64,
    pub forwarded: u64,
    pub dropped_blocked: u64,
    pub dropped_malformed: u64,
    pub reset_sent: u64,
    pub reverse_forwarded: u64,
    pub tx_full: u64,
    pub syn_no_customer: u64,
}

impl Verdicts {
    pub fn from_json(v: &Value) -> Verdicts {
        let get = |k: &str| {
            v[k].as_u64()
                .unwrap_or_else(|| panic!("verdicts.{k} missing in {v}"))
        };
        Verdicts {
            rx: get("rx"),
            forwarded: get("forwarded"),
            dropped_blocked: get("dropped_blocked"),
            dropped_malformed: get("dropped_malformed"),
            reset_sent: get("reset_sent"),
            reverse_forwarded: get("reverse_forwarded"),
            tx_full: get("tx_full"),
            syn_no_customer: get("syn_no_customer"),
        }
    }

    fn add(&mut self, o: &Verdicts) {
        self.rx += o.rx;
        self.forwarded += o.forwarded;
        self.dropped_blocked += o.dropped_blocked;
        self.dropped_malformed += o.dropped_malformed;
        self.reset_sent += o.reset_sent;
        self.reverse_forwarded += o.reverse_forwarded;
        self.tx_full += o.tx_full;
        self.syn_no_customer += o.syn_no_customer;
    }
}

/// Asserts two frame lists are equal, frame by frame, with a readable diff
/// (index, lengths and the first differing byte) instead of two huge dumps.
#[track_caller]
pub fn assert_frames_eq(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    let mut msg = String::new();
    if got.len() != want.len() {
        writeln!(msg, "{what}: {} frames, expected {}", got.len(), want.len()).unwrap();
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let at = g.iter().zip(w.iter()).position(|(a, b)| a != b);
            writeln!(
                msg,
                "{what}: frame {i} differs (len {} vs expected {}, first difference at byte {at:?})\n  got  {}\n  want {}",
                g.len(),
                w.len(),
                hex(g),
                hex(w)
            )
            .unwrap();
        }
    }
    if got.len() != want.len() {
        for (i, g) in got.iter().enumerate() {
            writeln!(msg, "  got[{i}]  {}", hex(g)).unwrap();
        }
        for (i, w) in want.iter().enumerate() {
            writeln!(msg, "  want[{i}] {}", hex(w)).unwrap();
        }
    }
    assert!(msg.is_empty(), "{msg}");
}

/// Like [`assert_frames_eq`] but ignoring order.
#[track_caller]
pub fn assert_frames_eq_unordered(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    let mut g = got.to_vec();
    let mut w = want.to_vec();
    g.sort();
    w.sort();
    assert_frames_eq(&g, &w, what);
}

/// Lowercase hex of a frame.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The frames of `all` at the given indices, in that order.
pub fn pick(all: &[Vec<u8>], indices: &[usize]) -> Vec<Vec<u8>> {
    indices.iter().map(|&i| all[i].clone()).collect()
}

/// Number of CPUs this process may run on.
/// One request (`request`, the newline included) on a fresh connection to
/// a control socket; the reply line as JSON, or why there was none.
pub fn control_request(socket: &Path, request: &[u8], timeout: Duration) -> Result<Value, String> {
    use std::io::{BufRead, BufReader, Write as _};
    let mut s =
        std::os::unix::net::UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(request).map_err(|e| format!("write: {e}"))?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("{e}: {line:?}"))
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

/// Two customers for tests of the outside of the box: `acme` (10.1.0.0/16)
/// under a standing block, `beta` (10.2.0.0/16) open.
pub const ACME_BLOCKED_BETA_OPEN: &str = r#"
[[customer]]
name = "acme"
prefixes = ["10.1.0.0/16"]
blocked = true

[[customer]]
name = "beta"
prefixes = ["10.2.0.0/16"]
"#;

/// `GET path` from `127.0.0.1:port` over HTTP/1.0 (so the answer is never
/// chunked); the status code and the body.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header end in {text:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status code in {head:?}"))?;
    Ok((code, body.to_owned()))
}

/// `s` percent-encoded for a URL query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_comparison_catches_differences() {
        let a = vec![vec![1u8, 2, 3], vec![4, 5]];
        assert_frames_eq(&a, &a.clone(), "same");
        assert_frames_eq_unordered(&a, &[vec![4, 5], vec![1, 2, 3]], "reordered");
        let changed = vec![vec![1u8, 2, 3], vec![4, 6]];
        let r = std::panic::catch_unwind(|| assert_frames_eq(&a, &changed, "changed"));
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("frame 1 differs"), "{msg}");
        assert!(msg.contains("first difference at byte Some(1)"), "{msg}");
        let r = std::panic::catch_unwind(|| assert_frames_eq(&a, &a[..1], "shorter"));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| assert_frames_eq(&[], &a, "empty"));
        assert!(r.is_err());
    }

    #[test]
    fn outcome_and_verdict_checks_are_exact() {
        let dir = TestDir::new("helpers");
        let summary: Value = serde_json::json!({
            "outcomes": {"non_ip": 1, "other_ip": 0, "syn_watched": 2},
            "verdicts": {"rx": 4, "forwarded": 2, "dropped_blocked": 1, "dropped_malformed": 0,
                         "reset_sent": 0, "reverse_forwarded": 1, "tx_full": 0, "syn_no_customer": 0},
        });
        let run = RunResult {
            exit: Exit {
                status: Command::new("true").status().unwrap(),
                stdout: String::new(),
                stderr: String::new(),
            },
            summary,
            out: Vec::new(),
            back: Vec::new(),
            dir,
        };
        run.assert_outcomes(&[("non_ip", 1), ("syn_watched", 2)]);
        let wrong = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run.assert_outcomes(&[("syn_watched", 2)])
        }));
        assert!(wrong.is_err(), "a missed non-zero outcome must fail");
        let unknown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run.assert_outcomes(&[("non_ip", 1), ("syn_watched", 2), ("nope", 0)])
        }));
        assert!(unknown.is_err(), "an unknown outcome name must fail");
        run.assert_verdicts(&Verdicts {
            rx: 4,
            forwarded: 2,
            dropped_blocked: 1,
            reverse_forwarded: 1,
            ..Verdicts::default()
        });
        let wrong = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run.assert_verdicts(&Verdicts {
                rx: 4,
                forwarded: 3,
                reverse_forwarded: 1,
                ..Verdicts::default()
            })
        }));
        assert!(wrong.is_err());
    }

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
