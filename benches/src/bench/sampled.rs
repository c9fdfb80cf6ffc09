//! Running one app for one measurement: its output to a log, stopped on
//! time, and the share of a CPU its forwarding threads got meanwhile.
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::host::{clk_tck, cpu_share, worker_ticks};

/// How long a run lasts and when it is sampled.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Seconds of forwarding the run is meant to last.
    pub duration: u64,
    /// Seconds at the start left out of rates and CPU samples.
    pub warmup: u64,
    /// Seconds from the start after which the app gets SIGINT (then SIGKILL
    /// 10 s later): testpmd runs until told; synwall stops by itself.
    pub stop_after: u64,
}

/// Runs `cmd` with stdout and stderr to `log` and returns the share of one
/// CPU each of `lcores`' forwarding threads got between warm-up and shortly
/// before the end (`None` where it could not be sampled). A compiler
/// preempting the worker lowers Mpps but not Mpps per CPU-second.
pub fn run_sampled(
    cmd: &mut Command,
    log: &Path,
    lcores: &[u32],
    t: Timing,
) -> Result<Vec<Option<f64>>, String> {
    let out = File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))?;
    let pid = child.id();
    let last = lcores.last().copied().unwrap_or(0);
    // The worker appears after EAL init (1M customers: ~20 s).
    for _ in 0..1500 {
        if worker_ticks(pid, last).is_some() || matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(t.warmup + 1));
    let c1: Vec<Option<u64>> = lcores.iter().map(|&l| worker_ticks(pid, l)).collect();
    let t1 = Instant::now();
    // At least a second, so a short --duration still gets a share.
    std::thread::sleep(Duration::from_secs(
        t.duration.saturating_sub(t.warmup + 3).max(1),
    ));
    let c2: Vec<Option<u64>> = lcores.iter().map(|&l| worker_ticks(pid, l)).collect();
    let secs = t1.elapsed().as_secs_f64();
    let hz = clk_tck();
    let shares = c1
        .iter()
        .zip(&c2)
        .map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => cpu_share(b.saturating_sub(*a), secs, hz),
            _ => None,
        })
        .collect();
    stop_by(
        &mut child,
        start + Duration::from_secs(t.stop_after),
        Duration::from_secs(10),
    )
    .map_err(|e| format!("waiting for {:?}: {e}", cmd.get_program()))?;
    Ok(shares)
}

/// Lets `child` stop by itself until `interrupt_at`, then sends it SIGINT,
/// and SIGKILL `grace` later.
pub fn stop_by(child: &mut Child, interrupt_at: Instant, grace: Duration) -> std::io::Result<()> {
    let mut interrupted = false;
    while child.try_wait()?.is_none() {
        let now = Instant::now();
        if now >= interrupt_at + grace {
            let _ = child.kill();
        } else if now >= interrupt_at && !interrupted {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            interrupted = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A command as one could type it (for the JSON).
pub fn command_line(cmd: &Command) -> Vec<String> {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}
