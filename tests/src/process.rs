//! Starting `synwall` with its output in files of the test directory, and
//! waiting for it with a time limit.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{serial, synwall_bin, TestDir};

/// A run is killed (and the test fails) if it has not exited after this long.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

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

/// A started `synwall` and the files its stdout and stderr go to.
pub(crate) struct Launched {
    pub child: Child,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Launched {
    /// Starts `synwall args` in `dir` with `env` set, stdin closed.
    pub fn start(dir: &TestDir, args: &[&str], env: &[(String, String)]) -> Launched {
        let n = serial();
        let stdout_path = dir.join(&format!("stdout.{n}.txt"));
        let stderr_path = dir.join(&format!("stderr.{n}.txt"));
        let bin = synwall_bin();
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        Launched {
            child,
            stdout_path,
            stderr_path,
        }
    }
}

/// What the process printed so far.
pub(crate) fn output(stdout_path: &PathBuf, stderr_path: &PathBuf) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        fs::read_to_string(stdout_path).unwrap_or_default(),
        fs::read_to_string(stderr_path).unwrap_or_default()
    )
}

/// The [`Exit`] of a process that ended with `status`.
pub(crate) fn exit(status: ExitStatus, stdout_path: &PathBuf, stderr_path: &PathBuf) -> Exit {
    Exit {
        status,
        stdout: fs::read_to_string(stdout_path).unwrap_or_default(),
        stderr: fs::read_to_string(stderr_path).unwrap_or_default(),
    }
}

/// Waits up to `timeout` for `child` to exit; kills and reaps it and
/// returns `None` when it does not.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for synwall") {
            return Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a test's guard does when dropped with its process still running:
/// kills and reaps it, and shows what it printed (`output`) if the test is
/// failing.
pub fn reap(child: Option<Child>, output: impl FnOnce() -> String) {
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
        if std::thread::panicking() {
            eprintln!("synwall output:\n{}", output());
        }
    }
}

/// Runs `synwall` with `args` in `dir`, killing it after [`RUN_TIMEOUT`]
/// (which fails the test, showing its output so far).
pub fn run_synwall(dir: &TestDir, args: &[&str]) -> Exit {
    let mut run = Launched::start(dir, args, &[]);
    let Some(status) = wait_timeout(&mut run.child, RUN_TIMEOUT) else {
        panic!(
            "synwall {args:?} did not exit within {RUN_TIMEOUT:?}\n{}",
            output(&run.stdout_path, &run.stderr_path)
        );
    };
    exit(status, &run.stdout_path, &run.stderr_path)
}

/// Number of CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Whether the tests run as root (`id -u` says 0).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
