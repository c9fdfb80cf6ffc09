//! The machine the bench runs on: its load, the compilers sharing it, the
//! CPU time a forwarding thread got, hugepages, and what to record of it.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Process names that mean someone's build is running (exact, like
/// `ps -eo comm=`; `build-script-b` is how a build script's name is cut).
fn is_compiler(comm: &str) -> bool {
    matches!(
        comm,
        "rustc" | "cc1" | "cc1plus" | "ld" | "ld.lld" | "clang"
    ) || comm.starts_with("build-script-b")
}

/// How many compiler processes are alive now.
pub fn compilers() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|c| is_compiler(c.trim_end()))
        .count()
}

/// Waits up to `secs` for no compiler to be running (`--wait-idle`); returns
/// how many were alive when it stopped waiting.
pub fn wait_idle(secs: u64) -> usize {
    let mut waited = 0;
    let mut busy = compilers();
    while waited < secs && busy != 0 {
        std::thread::sleep(Duration::from_secs(1));
        waited += 1;
        busy = compilers();
    }
    busy
}

/// dpdk-testpmd, the bench's reference forwarder, or what to install.
pub fn need_testpmd() -> Result<(), String> {
    Command::new("dpdk-testpmd")
        .arg("--version")
        .output()
        .map(|_| ())
        .map_err(|_| "dpdk-testpmd not found (apt install dpdk-dev)".to_owned())
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` says them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// User + system clock ticks of the forwarding thread of `lcore` in process
/// `pid` (DPDK 22.11 names it `rte-worker-N`, newer ones `lcore-worker-N`),
/// or `None` if it is not there (yet).
pub fn worker_ticks(pid: u32, lcore: u32) -> Option<u64> {
    let names = [
        format!("rte-worker-{lcore}"),
        format!("lcore-worker-{lcore}"),
    ];
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if names.iter().any(|n| n == comm.trim_end()) {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            return stat_ticks(&stat);
        }
    }
    None
}

/// utime + stime (fields 14 and 15) of a `/proc/.../stat` line; the name in
/// parentheses may hold spaces, so fields are counted after its `)`.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field n is f[n - 3].
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The share of one CPU a thread got: ticks over wall time, at most 1.
pub fn cpu_share(ticks: u64, secs: f64, hz: f64) -> Option<f64> {
    (secs > 0.0).then(|| (ticks as f64 / hz / secs).min(1.0))
}

/// What the numbers were measured on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Machine {
    pub hostname: String,
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
    pub dpdk: String,
}

impl Machine {
    pub fn this() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let dpdk = Command::new("pkg-config")
            .args(["--modversion", "libdpdk"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Machine {
            hostname: read("/proc/sys/kernel/hostname"),
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: read("/proc/sys/kernel/osrelease"),
            dpdk,
        }
    }
}

/// The checked-out commit (short hash) and whether the appliance's sources
/// differ from it.
pub fn commit() -> (String, bool) {
    let hash = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".to_owned());
    let dirty = Command::new("git")
        .args([
            "diff",
            "--quiet",
            "HEAD",
            "--",
            "dataplane",
            "control",
            "config",
            "dpdk-sys",
        ])
        .status()
        .map(|s| !s.success())
        .unwrap_or(false);
    (hash, dirty)
}

/// Seconds since the epoch.
pub fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-12-06T23:05Z` for a Unix time.
pub fn utc_minute(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let (h, m) = ((unix % 86_400) / 3600, (unix % 3600) / 60);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}Z")
}

/// Whether `mem_mb` of 2 MB hugepages are free on a mounted hugetlbfs.
pub fn hugepages_ok(mem_mb: u64) -> bool {
    let free = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("HugePages_Free"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let mounted = std::fs::read_to_string("/proc/mounts").is_ok_and(|m| m.contains("hugetlbfs"));
    free >= mem_mb / 2 + 44 && mounted
}

/// Hugepages for `mem_mb` of EAL memory if there are, or can be made
/// (as root, with `scripts/hugepages PAGES`); else false (`--no-huge`).
pub fn reserve_hugepages(mem_mb: u64) -> bool {
    if hugepages_ok(mem_mb) {
        return true;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root && Path::new("scripts/hugepages").exists() {
        let _ = Command::new("scripts/hugepages")
            .arg(mem_mb.to_string())
            .output();
    }
    hugepages_ok(mem_mb)
}

/// Removes, when dropped, the EAL runtime directories
/// (`/var/run/dpdk/PREFIX`, or under `$XDG_RUNTIME_DIR/dpdk` when not
/// root) of every file prefix that starts with `prefix`: each EAL process
/// leaves one behind, and a bench's runs each use a prefix of their own.
/// Held for the whole of a bench; `prefix` must end where no other
/// process's prefix continues it (`swb1234_`, not `swb1234`).
pub struct RuntimeDirs {
    prefix: String,
    bases: Vec<PathBuf>,
}

impl RuntimeDirs {
    /// The directories of the prefixes that start with `prefix`, where
    /// the EAL puts them.
    pub fn new(prefix: String) -> RuntimeDirs {
        let mut bases = vec![PathBuf::from("/var/run/dpdk"), PathBuf::from("/run/dpdk")];
        if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR") {
            bases.push(Path::new(&xdg).join("dpdk"));
        }
        RuntimeDirs { prefix, bases }
    }
}

impl Drop for RuntimeDirs {
    fn drop(&mut self) {
        for base in &self.bases {
            for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_counts_after_the_name() {
        let stat = "4242 (rte-worker 1) R 1 2 3 4 5 6 7 8 9 10 250 17 0 0 20 0 1 0";
        assert_eq!(stat_ticks(stat), Some(267));
        assert_eq!(stat_ticks("garbage"), None);
        assert_eq!(cpu_share(50, 1.0, 100.0), Some(0.5));
        assert_eq!(cpu_share(500, 1.0, 100.0), Some(1.0));
    }

    #[test]
    fn runtime_dirs_removes_its_prefixes_only() {
        let base = std::env::temp_dir().join(format!("swrd{}", std::process::id()));
        let dpdk = base.join("dpdk");
        for name in ["swx9_sw_0", "swx9_tp_1", "swx99_sw_0", "other"] {
            std::fs::create_dir_all(dpdk.join(name).join("inner")).unwrap();
        }
        drop(RuntimeDirs {
            prefix: "swx9_".to_owned(),
            bases: vec![dpdk.clone()],
        });
        let mut left: Vec<String> = std::fs::read_dir(&dpdk)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let _ = std::fs::remove_dir_all(&base);
        assert_eq!(left, ["other", "swx99_sw_0"]);
    }

    #[test]
    fn compilers_by_exact_name() {
        assert!(is_compiler("rustc") && is_compiler("build-script-build"));
        assert!(!is_compiler("rustc-wrapper") && !is_compiler("ldconfig"));
    }

    #[test]
    fn utc_minute_of_known_times() {
        assert_eq!(utc_minute(0), "1970-01-01T00:00Z");
        assert_eq!(utc_minute(1_796_598_000), "2026-12-06T23:00Z");
    }
}
