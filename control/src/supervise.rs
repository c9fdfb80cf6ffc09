//! The hook's supervisor: `synwall --supervise-hook PROGRAM ARGS...`.
//!
//! A hook's program may start children that leave its process group
//! (`setsid`, a daemon's double fork); killing the group at the timeout
//! missed them, and they outlived it. So synwall runs each hook under this
//! small supervisor, its own binary started again: the supervisor marks
//! itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), so every process
//! the hook leaves behind is re-parented to it, not to init. The hook's run
//! ends when the last of them has ended; on SIGTERM (synwall's timeout) the
//! supervisor kills them all, whatever session or group they moved to, and
//! reaps them before it exits. Its exit code is the hook program's.

use std::ffi::OsString;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::prctl::set_child_subreaper;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};

/// The first argument that makes `synwall` the supervisor.
pub const FLAG: &str = "--supervise-hook";

/// How often the supervisor looks for ended children.
const POLL: Duration = Duration::from_millis(2);

/// Runs `program` with `args` and supervises it and everything it starts,
/// as the module says. Exit code: the program's (128 + signal if it was
/// killed), 127 if it could not start.
pub fn supervise(program: &OsString, args: &[OsString]) -> ExitCode {
    if let Err(e) = set_child_subreaper(true) {
        eprintln!("synwall: hook supervisor: cannot become a subreaper: {e}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("synwall: hook supervisor: cannot handle signal {sig}: {e}");
        }
    }
    let child = match Command::new(program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("synwall: hook {}: {e}", program.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    let hook = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let mut code: u8 = 1;
    loop {
        if stop.load(Ordering::Relaxed) {
            kill_children();
        }
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(POLL),
            Ok(WaitStatus::Exited(pid, status)) if pid == hook => {
                code = u8::try_from(status).unwrap_or(1);
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == hook => {
                code = 128u8.saturating_add(signal as u8);
            }
            // One the hook left behind, ended and reaped.
            Ok(_) | Err(Errno::EINTR) => {}
            // No child left: the hook's run is over.
            Err(_) => break,
        }
    }
    ExitCode::from(code)
}

/// SIGKILL to every child of this process. Their own children, orphaned,
/// come to this subreaper and are killed on the next round.
fn kill_children() {
    for pid in children_of(getpid()) {
        let _ = kill(pid, Signal::SIGKILL);
    }
}

/// The processes whose parent is `parent`, from `/proc/*/stat`.
pub fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 1..];
        let ppid: i32 = after.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent.as_raw()).then_some(Pid::from_raw(pid))
    })
    .collect()
}
