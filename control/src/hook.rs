//! Event hooks: `[control] hook = { command = [...], timeout = "5s" }` runs
//! an operator's program on every block, unblock and expiry, and on every
//! change an operator makes (set-limit, mode, reload): `SYNWALL_EVENT` says
//! which.
//!
//! The program is executed directly (no shell): customer names and reasons
//! reach it only as the event's JSON line on stdin and as environment
//! variables, never inside its command line. One worker thread runs the
//! hooks one after another from a bounded queue; when the queue is full the
//! event is dropped and counted, so a slow or hanging hook never stalls the
//! control thread. A hook that outlives its timeout is killed with its
//! whole process group (a shell script's children too); in the appliance
//! each hook runs under a supervisor ([`crate::supervise`]) that also kills
//! what left the group (`setsid`, daemons). A hook's run lasts until the
//! last process it started has ended.
use std::io::Write;
use std::os::fd::{AsFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use synwall_config::Hook;

use synwall_engine::event::{Event, EventKind};

/// Events waiting for the hook; more are dropped (and counted).
pub const QUEUE: usize = 256;

/// How long dropping the runner waits for queued hooks before it kills the
/// running one and forgets the rest (a shutdown is never held up longer).
pub const DRAIN_BOUND: Duration = Duration::from_secs(2);

/// Environment variables a hook may get; the optional ones are removed
/// from the inherited environment when the event lacks them, so a hook
/// never sees a stale value.
const ENV_KEYS: [&str; 11] = [
    "SYNWALL_EVENT",
    "SYNWALL_CUSTOMER",
    "SYNWALL_WINDOW",
    "SYNWALL_COUNT",
    "SYNWALL_LIMIT",
    "SYNWALL_UNTIL",
    "SYNWALL_REASON",
    "SYNWALL_BY",
    "SYNWALL_PLAN",
    "SYNWALL_OLD",
    "SYNWALL_NEW",
];

/// Where the runner's complaints go (stderr in the appliance).
type Report = Box<dyn Fn(&str) + Send + Sync>;

/// What the hooks did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookStats {
    /// Hooks that ran and exited 0.
    pub succeeded: u64,
    /// Hooks that could not be started or exited non-zero.
    pub failed: u64,
    /// Hooks killed at the timeout (or at shutdown).
    pub timed_out: u64,
    /// Events not handed to the hook: the queue was full, or the runner
    /// shut down before their turn.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    dropped: AtomicU64,
}

/// State shared by the runner and its worker.
struct Shared {
    counters: Counters,
    /// The `synwall` binary each hook runs under as its supervisor
    /// ([`crate::supervise`]), if any.
    supervisor: Option<PathBuf>,
    /// Set when the runner is dropped: queued hooks are run until then.
    give_up_at: OnceLock<Instant>,
    report: Report,
}

/// Runs the configured hook for block, unblock and expire events on a
/// worker thread of its own. The control thread owns the runner and calls
/// [`HookRunner::enqueue`], which never blocks.
pub struct HookRunner {
    queue: Option<Sender<Event>>,
    capacity: usize,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HookRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookRunner")
            .field("capacity", &self.capacity)
            .field("stats", &self.stats())
            .finish()
    }
}

impl HookRunner {
    /// Starts the worker for `hook`, with a queue of [`QUEUE`] events and
    /// complaints on stderr.
    pub fn new(hook: Hook) -> HookRunner {
        HookRunner::start(
            hook,
            QUEUE,
            Box::new(|line: &str| crate::console::err(format!("synwall: {line}"))),
            None,
        )
    }

    /// Like [`HookRunner::new`], each hook run under `synwall` (the binary
    /// at `supervisor`) as its supervisor: at the timeout, everything the
    /// hook started is killed, also what left its process group.
    pub fn supervised(hook: Hook, supervisor: PathBuf) -> HookRunner {
        HookRunner::start(
            hook,
            QUEUE,
            Box::new(|line: &str| crate::console::err(format!("synwall: {line}"))),
            Some(supervisor),
        )
    }

    /// Starts the worker with a queue of `capacity` events, reporting
    /// failures to `report`.
    fn start(
        hook: Hook,
        capacity: usize,
        report: Report,
        supervisor: Option<PathBuf>,
    ) -> HookRunner {
        let capacity = capacity.max(1);
        let (tx, rx) = channel::bounded(capacity);
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            supervisor,
            give_up_at: OnceLock::new(),
            report,
        });
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("synwall-hook".to_owned())
                .spawn(move || work(&hook, &rx, &shared))
        };
        let worker = match worker {
            Ok(w) => Some(w),
            Err(e) => {
                (shared.report)(&format!(
                    "hook: cannot start its thread: {e}; hooks are off"
                ));
                None
            }
        };
        HookRunner {
            queue: worker.as_ref().map(|_| tx),
            capacity,
            shared,
            worker,
        }
    }

    /// Whether the hook runs for events of `kind`.
    pub fn wants(kind: EventKind) -> bool {
        matches!(
            kind,
            EventKind::Block
                | EventKind::Unblock
                | EventKind::Expire
                | EventKind::SetLimit
                | EventKind::SetMode
                | EventKind::Reload
        )
    }

    /// Queues `event` for the hook if it is one the hook runs for. Returns
    /// at once: when the queue is full the event is dropped and counted.
    /// Returns whether the event was queued.
    pub fn enqueue(&self, event: &Event) -> bool {
        if !HookRunner::wants(event.kind) {
            return false;
        }
        let Some(queue) = &self.queue else {
            self.shared.counters.dropped.fetch_add(1, Relaxed);
            return false;
        };
        match queue.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(e) | TrySendError::Disconnected(e)) => {
                let n = self.shared.counters.dropped.fetch_add(1, Relaxed) + 1;
                // The first drop and then every hundredth: a flood of
                // blocks must not become a flood of log lines.
                if n == 1 || n.is_multiple_of(100) {
                    (self.shared.report)(&format!(
                        "hook: queue full ({} events), dropped {} ({n} dropped so far)",
                        self.capacity,
                        describe(&e)
                    ));
                }
                false
            }
        }
    }

    /// Events dropped so far (queue full, or left at shutdown).
    pub fn dropped(&self) -> u64 {
        self.shared.counters.dropped.load(Relaxed)
    }

    /// What the hooks did so far.
    pub fn stats(&self) -> HookStats {
        let c = &self.shared.counters;
        HookStats {
            succeeded: c.succeeded.load(Relaxed),
            failed: c.failed.load(Relaxed),
            timed_out: c.timed_out.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
        }
    }
}

impl Drop for HookRunner {
    /// Lets the queued hooks run for up to [`DRAIN_BOUND`], then kills the
    /// running one, drops the rest and joins the worker.
    fn drop(&mut self) {
        let _ = self.shared.give_up_at.set(Instant::now() + DRAIN_BOUND);
        // Closing the queue ends the worker's loop once it is empty.
        self.queue.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The worker: one hook at a time until the queue is closed and empty.
fn work(hook: &Hook, queue: &Receiver<Event>, shared: &Shared) {
    while let Ok(event) = queue.recv() {
        if shared
            .give_up_at
            .get()
            .is_some_and(|&t| Instant::now() >= t)
        {
            let left = 1 + queue.try_iter().count() as u64;
            shared.counters.dropped.fetch_add(left, Relaxed);
            (shared.report)(&format!(
                "hook: shutting down, {left} queued events not handed to the hook"
            ));
            return;
        }
        let c = &shared.counters;
        match run(hook, &event, shared) {
            Ran::Exited(status) if status.success() => {
                c.succeeded.fetch_add(1, Relaxed);
            }
            Ran::Exited(status) => {
                c.failed.fetch_add(1, Relaxed);
                (shared.report)(&format!(
                    "hook {} for {}: {status}",
                    program(hook),
                    describe(&event)
                ));
            }
            Ran::NotStarted(e) => {
                c.failed.fetch_add(1, Relaxed);
                (shared.report)(&format!(
                    "hook {} for {}: cannot run it: {e}",
                    program(hook),
                    describe(&event)
                ));
            }
            Ran::Killed(after) => {
                c.timed_out.fetch_add(1, Relaxed);
                (shared.report)(&format!(
                    "hook {} for {}: still running after {after:?}, killed",
                    program(hook),
                    describe(&event)
                ));
            }
        }
    }
}

/// How one hook run ended.
enum Ran {
    Exited(ExitStatus),
    NotStarted(std::io::Error),
    /// Killed after this long (its timeout, or the shutdown bound).
    Killed(Duration),
}

/// Runs the hook for one event and waits for it, up to its timeout.
fn run(hook: &Hook, event: &Event, shared: &Shared) -> Ran {
    close_on_exec();
    let mut cmd = command(hook, event, shared.supervisor.as_deref());
    let supervised = shared.supervisor.is_some();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ran::NotStarted(e),
    };
    let started = Instant::now();
    // The event on stdin, written by a helper thread: a hook that never
    // reads stdin cannot block this one (a line this small fits the pipe,
    // but a long operator reason might not).
    if let Some(mut stdin) = child.stdin.take() {
        let mut line = event.to_line();
        line.push('\n');
        let writer = std::thread::Builder::new()
            .name("synwall-hook-stdin".to_owned())
            .spawn(move || {
                // A hook that exits without reading: EPIPE, nothing to do.
                let _ = stdin.write_all(line.as_bytes());
            });
        if let Err(e) = writer {
            // Stdin was moved into the closure and dropped: the hook sees
            // an empty stdin, which it is told about.
            (shared.report)(&format!(
                "hook {} for {}: cannot write its stdin: {e}",
                program(hook),
                describe(event)
            ));
        }
    }
    let deadline = started + hook.timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ran::Exited(status),
            Ok(None) => {}
            Err(e) => {
                kill(&mut child, supervised);
                return Ran::NotStarted(e);
            }
        }
        let now = Instant::now();
        let give_up = shared.give_up_at.get().copied();
        if now >= deadline || give_up.is_some_and(|t| now >= t) {
            kill(&mut child, supervised);
            return Ran::Killed(started.elapsed());
        }
        let next = give_up.map_or(deadline, |t| t.min(deadline));
        std::thread::sleep(pause.min(next - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The hook's command for one event: the configured program and
/// arguments as they are (under `supervisor`, if given), the event in the
/// environment, its own process group (so that a timeout kills what it
/// started too), output to our stderr.
fn command(hook: &Hook, event: &Event, supervisor: Option<&Path>) -> Command {
    let mut cmd = match supervisor {
        Some(exe) => {
            let mut c = Command::new(exe);
            c.arg(crate::supervise::FLAG).args(&hook.command);
            c
        }
        None => {
            let mut c = Command::new(&hook.command[0]);
            c.args(&hook.command[1..]);
            c
        }
    };
    for key in ENV_KEYS {
        cmd.env_remove(key);
    }
    // systemd's notify socket and watchdog are synwall's, not the hook's.
    for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        cmd.env_remove(key);
    }
    for (key, value) in environment(event) {
        cmd.env(key, value);
    }
    cmd.stdin(Stdio::piped()).process_group(0);
    // The hook's output joins ours on stderr: stdout carries the event lines.
    let stderr = || {
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    };
    cmd.stdout(stderr()).stderr(stderr());
    cmd
}

/// The event's environment variables, those it has.
pub fn environment(event: &Event) -> Vec<(&'static str, String)> {
    let mut env = vec![("SYNWALL_EVENT", kind_name(event.kind))];
    let mut add = |key, value: Option<String>| {
        if let Some(v) = value {
            env.push((key, v));
        }
    };
    add("SYNWALL_CUSTOMER", event.customer.clone());
    add("SYNWALL_WINDOW", event.window.clone());
    add("SYNWALL_COUNT", event.count.map(|n| n.to_string()));
    add("SYNWALL_LIMIT", event.limit.map(|n| n.to_string()));
    add("SYNWALL_UNTIL", event.until.map(|t| t.to_string()));
    add("SYNWALL_REASON", event.reason.clone());
    add("SYNWALL_BY", event.by.clone());
    add("SYNWALL_PLAN", event.plan.clone());
    add("SYNWALL_OLD", event.old.map(|v| v.to_string()));
    add("SYNWALL_NEW", event.new.map(|v| v.to_string()));
    env
}

/// `block`, `unblock`, ...: the name the event log uses.
fn kind_name(kind: EventKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Marks every open descriptor above stderr close-on-exec. DPDK opens
/// some without `O_CLOEXEC` (its interrupt pipes and epoll, the memfd of
/// its memory, the telemetry socket): a hook would inherit them, and one
/// that lingers (or starts a daemon) would hold the appliance's memory and
/// sockets after it exits. Nothing in synwall passes descriptors to the
/// programs it runs, so the flag changes nothing else.
fn close_on_exec() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        let Ok(bits) = fcntl(fd, FcntlArg::F_GETFD) else {
            continue;
        };
        let flags = FdFlag::from_bits_truncate(bits);
        if !flags.contains(FdFlag::FD_CLOEXEC) {
            let _ = fcntl(fd, FcntlArg::F_SETFD(flags | FdFlag::FD_CLOEXEC));
        }
    }
}

/// How long a supervisor has, after SIGTERM, to kill and reap what the
/// hook started before its group is killed outright.
const SUPERVISOR_GRACE: Duration = Duration::from_secs(1);

/// Kills the hook and its process group, and reaps it. A supervisor is
/// asked first (SIGTERM): it kills what left the group too.
fn kill(child: &mut Child, supervised: bool) {
    if supervised {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let until = Instant::now() + SUPERVISOR_GRACE;
        while Instant::now() < until {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // The group was created by process_group(0): its id is the pid.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn program(hook: &Hook) -> &str {
    &hook.command[0]
}

/// `block event of acme`, for complaints.
fn describe(event: &Event) -> String {
    match &event.customer {
        Some(c) => format!("{} event of {c}", kind_name(event.kind)),
        None => format!("{} event", kind_name(event.kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;
    use synwall_engine::event::{Setting, Timestamp};

    /// A scratch directory for one test, removed at the end.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "synwall-hook-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }

        /// Writes `body` as a script run by `/bin/sh` with the scratch
        /// directory as its argument. (Through sh rather than exec'ing
        /// the file: a file just written may be "text file busy" while
        /// another test thread forks.)
        fn hook(&self, body: &str, timeout: Duration) -> Hook {
            let script = self.path("hook.sh");
            std::fs::write(&script, body).unwrap();
            Hook {
                command: vec![
                    "/bin/sh".into(),
                    script.display().to_string(),
                    self.0.display().to_string(),
                ],
                timeout,
            }
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// A runner whose complaints are collected.
    fn runner(hook: Hook, capacity: usize) -> (HookRunner, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let r = HookRunner::start(
            hook,
            capacity,
            Box::new(move |l: &str| sink.lock().unwrap().push(l.to_owned())),
            None,
        );
        (r, lines)
    }

    fn block(customer: &str) -> Event {
        Event {
            customer: Some(customer.into()),
            window: Some("5m".into()),
            count: Some(101),
            limit: Some(100),
            until: Some(Timestamp(1_700_000_000_000)),
            reason: Some("limit".into()),
            ..Event::new(EventKind::Block, Timestamp(1_699_999_000_000))
        }
    }

    #[track_caller]
    fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let started = Instant::now();
        while !f() {
            assert!(started.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn read(path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    /// Records stdin and the SYNWALL_ variables per customer; writes the
    /// record under a temporary name first so a reader sees it whole.
    const RECORDER: &str = r#"
out="$1"
cat > "$out/stdin.tmp"
env | grep '^SYNWALL_' | sort > "$out/env.tmp"
mv "$out/stdin.tmp" "$out/stdin.$SYNWALL_EVENT.$SYNWALL_CUSTOMER"
mv "$out/env.tmp" "$out/env.$SYNWALL_EVENT.$SYNWALL_CUSTOMER"
"#;

    #[test]
    fn hook_gets_the_event_on_stdin_and_in_its_environment() {
        let dir = Scratch::new("env");
        let (r, complaints) = runner(dir.hook(RECORDER, Duration::from_secs(30)), 8);
        // A reason with shell syntax arrives verbatim and runs nothing.
        let mut ev = block("acme");
        let touched = dir.path("pwned");
        ev.reason = Some(format!("spam; touch {} $(id)", touched.display()));
        ev.by = Some("uid=0 pid=1".into());
        assert!(r.enqueue(&ev));
        let mut unblock = Event::new(EventKind::Unblock, Timestamp(1_700_000_000_500));
        unblock.customer = Some("acme".into());
        assert!(r.enqueue(&unblock));
        // Not for the hook: warnings.
        let mut near = block("acme");
        near.kind = EventKind::NearLimit;
        assert!(!r.enqueue(&near));
        // An operator's change, with the old and new values.
        let mut change = Event::new(EventKind::SetLimit, Timestamp(1_700_000_000_600));
        change.customer = Some("acme".into());
        change.window = Some("5m".into());
        change.old = Some(Setting::Limit(100));
        change.new = Some(Setting::Limit(3));
        change.by = Some("uid=0 pid=2".into());
        assert!(r.enqueue(&change));

        let env_path = dir.path("env.unblock.acme");
        let change_path = dir.path("env.set_limit.acme");
        wait_for("the set_limit hook", Duration::from_secs(30), || {
            change_path.exists()
        });
        assert_eq!(
            read(&change_path).unwrap().lines().collect::<Vec<_>>(),
            [
                "SYNWALL_BY=uid=0 pid=2",
                "SYNWALL_CUSTOMER=acme",
                "SYNWALL_EVENT=set_limit",
                "SYNWALL_NEW=3",
                "SYNWALL_OLD=100",
                "SYNWALL_WINDOW=5m"
            ]
        );
        let stdin = read(&dir.path("stdin.block.acme")).unwrap();
        assert_eq!(stdin, format!("{}\n", ev.to_line()));
        let env = read(&dir.path("env.block.acme")).unwrap();
        let want = [
            "SYNWALL_BY=uid=0 pid=1".to_owned(),
            "SYNWALL_COUNT=101".to_owned(),
            "SYNWALL_CUSTOMER=acme".to_owned(),
            "SYNWALL_EVENT=block".to_owned(),
            "SYNWALL_LIMIT=100".to_owned(),
            format!("SYNWALL_REASON={}", ev.reason.as_deref().unwrap()),
            "SYNWALL_UNTIL=2023-11-14T22:13:20.000Z".to_owned(),
            "SYNWALL_WINDOW=5m".to_owned(),
        ];
        assert_eq!(env.lines().collect::<Vec<_>>(), want);
        // Only what the unblock event has.
        let env = read(&env_path).unwrap();
        assert_eq!(
            env.lines().collect::<Vec<_>>(),
            ["SYNWALL_CUSTOMER=acme", "SYNWALL_EVENT=unblock"]
        );
        assert!(!touched.exists(), "customer data was run by a shell");
        drop(r);
        assert!(complaints.lock().unwrap().is_empty(), "{complaints:?}");
    }

    #[test]
    fn hanging_hook_is_killed_at_the_timeout_and_later_events_still_run() {
        let dir = Scratch::new("hang");
        // "slow" hangs in a child of the shell (killed with the group);
        // the others record themselves.
        let body = format!(
            "if [ \"$SYNWALL_CUSTOMER\" = slow ]; then sleep 30 & echo $! > \"$1/sleep.pid\"; wait; fi\n{RECORDER}"
        );
        let (r, complaints) = runner(dir.hook(&body, Duration::from_millis(500)), 8);
        let started = Instant::now();
        assert!(r.enqueue(&block("slow")));
        assert!(r.enqueue(&block("after")));
        wait_for(
            "the hook after the hanging one",
            Duration::from_secs(30),
            || dir.path("env.block.after").exists() && r.stats().succeeded == 1,
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the hanging hook was not killed at its timeout: {:?}",
            started.elapsed()
        );
        assert_eq!(
            r.stats(),
            HookStats {
                succeeded: 1,
                failed: 0,
                timed_out: 1,
                dropped: 0
            }
        );
        let lines = complaints.lock().unwrap().clone();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("block event of slow") && lines[0].contains("killed"),
            "{lines:?}"
        );
        // The shell's child went with it (gone, or a zombie nobody reaped).
        let pid = read(&dir.path("sleep.pid")).unwrap();
        let stat = PathBuf::from(format!("/proc/{}/stat", pid.trim()));
        wait_for("the hook's child to die", Duration::from_secs(10), || {
            read(&stat).is_none_or(|s| {
                let state = s.rsplit(')').next().unwrap_or("").trim_start();
                state.starts_with('Z') || state.starts_with('X')
            })
        });
    }

    #[test]
    fn full_queue_drops_and_counts_without_blocking() {
        let dir = Scratch::new("full");
        let body = "touch \"$1/started\"; sleep 30";
        let (r, complaints) = runner(dir.hook(body, Duration::from_secs(60)), 2);
        assert!(r.enqueue(&block("a")));
        wait_for("the first hook", Duration::from_secs(30), || {
            dir.path("started").exists()
        });
        // The worker is stuck in the first hook; two fit in the queue. A
        // blocking enqueue would wait for the 30 s hook: the bound is far
        // below that and far above a loaded machine's scheduling delays.
        assert!(r.enqueue(&block("b")));
        assert!(r.enqueue(&block("c")));
        for i in 0..50 {
            let t = Instant::now();
            assert!(!r.enqueue(&block(&format!("x{i}"))));
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "enqueue blocked for {:?}",
                t.elapsed()
            );
        }
        assert_eq!(r.dropped(), 50);
        assert_eq!(complaints.lock().unwrap().len(), 1, "{complaints:?}");
        // Shutdown is bounded: the hanging hook is killed, the queued two
        // are dropped.
        let t = Instant::now();
        let shared = r.shared.clone();
        drop(r);
        assert!(
            t.elapsed() < DRAIN_BOUND + Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
        let c = &shared.counters;
        assert_eq!(c.dropped.load(Relaxed), 52);
        assert_eq!(c.timed_out.load(Relaxed), 1);
    }

    #[test]
    fn missing_program_is_reported_not_fatal() {
        let dir = Scratch::new("missing");
        let hook = Hook {
            command: vec![dir.path("no-such-hook").display().to_string()],
            timeout: Duration::from_secs(5),
        };
        let (r, complaints) = runner(hook, 8);
        assert!(r.enqueue(&block("acme")));
        assert!(r.enqueue(&block("beta")));
        wait_for("two failures", Duration::from_secs(30), || {
            r.stats().failed == 2
        });
        let lines = complaints.lock().unwrap().clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("no-such-hook")
                && lines[0].contains("block event of acme")
                && lines[0].contains("cannot run it"),
            "{lines:?}"
        );
        // And a hook that fails says how.
        let failing = dir.hook("exit 3", Duration::from_secs(30));
        let (r, complaints) = runner(failing, 8);
        assert!(r.enqueue(&block("acme")));
        wait_for("the failure", Duration::from_secs(30), || {
            r.stats().failed == 1
        });
        let lines = complaints.lock().unwrap().clone();
        assert!(lines[0].contains("exit status: 3"), "{lines:?}");
    }

    #[test]
    fn hook_inherits_no_descriptors_opened_without_cloexec() {
        use std::os::unix::fs::MetadataExt;
        let dir = Scratch::new("fds");
        // A pipe as DPDK would open it: without O_CLOEXEC.
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let ino = std::fs::File::from(read_end).metadata().unwrap().ino();
        let body = "ls -l /proc/$$/fd/ > \"$1/fds.tmp\"; mv \"$1/fds.tmp\" \"$1/fds\"";
        let (r, _) = runner(dir.hook(body, Duration::from_secs(30)), 8);
        assert!(r.enqueue(&block("acme")));
        let fds = dir.path("fds");
        wait_for(
            "the hook's descriptor list",
            Duration::from_secs(30),
            || fds.exists(),
        );
        let list = read(&fds).unwrap();
        assert!(!list.contains(&format!("pipe:[{ino}]")), "{list}");
        drop(write_end);
    }

    #[test]
    fn drop_waits_for_queued_hooks() {
        let dir = Scratch::new("drain");
        let (r, _) = runner(dir.hook(RECORDER, Duration::from_secs(30)), 8);
        for c in ["a", "b", "c"] {
            assert!(r.enqueue(&block(c)));
        }
        drop(r);
        for c in ["a", "b", "c"] {
            assert!(dir.path(&format!("env.block.{c}")).exists(), "{c}");
        }
    }
}
