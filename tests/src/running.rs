//! [`Running`]: a `synwall` in the background, driven by signals and
//! watched through its event log.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::process::{exit, output, reap, wait_timeout};
use crate::{RunResult, Scenario, TestDir, Value};

/// A `synwall` started by [`Scenario::spawn`], still running (or not yet
/// reaped). Dropping it kills the process.
pub struct Running<'a> {
    pub(crate) scenario: &'a Scenario,
    pub(crate) child: Option<Child>,
    pub(crate) dir: Option<TestDir>,
    /// The config file it was started with (rewrite it, then [`Self::signal`]
    /// `"HUP"` to reload).
    pub config: PathBuf,
    pub(crate) summary_path: PathBuf,
    pub(crate) stdout_path: PathBuf,
    pub(crate) stderr_path: PathBuf,
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
        output(&self.stdout_path, &self.stderr_path)
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

    /// Waits (up to `timeout`) until `status` on the run's control socket
    /// (`control.sock` in its directory) says forwarding; returns it.
    #[track_caller]
    pub fn wait_forwarding(&mut self, timeout: Duration) -> Value {
        let socket = self.dir().join("control.sock");
        self.wait_for("the dataplane forwarding", timeout, |_| {
            crate::control_request(&socket, b"{\"cmd\":\"status\"}\n", Duration::from_secs(5))
                .ok()
                .filter(|v| v["state"] == "forwarding")
        })
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
        let Some(status) = wait_timeout(&mut child, timeout) else {
            panic!("synwall did not exit within {timeout:?}\n{}", self.output());
        };
        let exit = exit(status, &self.stdout_path, &self.stderr_path);
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
        reap(self.child.take(), || self.output());
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
