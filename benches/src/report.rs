//! The JSON report: the profile as checked, the environment, and every
//! trial, so that runs can be compared.
use std::path::Path;

use serde_json::{json, Value};

fn first_line_with(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

/// What the numbers were measured on.
pub fn environment() -> Value {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let dpdk = std::process::Command::new("pkg-config")
        .args(["--modversion", "libdpdk"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    json!({
        "synwall_gen": env!("CARGO_PKG_VERSION"),
        "hostname": read("/proc/sys/kernel/hostname"),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpu": first_line_with("/proc/cpuinfo", "model name").unwrap_or_default(),
        "cpus": std::thread::available_parallelism().map_or(0, usize::from),
        "loadavg": read("/proc/loadavg"),
        "dpdk": dpdk,
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "args": std::env::args().collect::<Vec<_>>(),
    })
}

/// Writes `report` (pretty JSON) to `path`.
pub fn write(path: &Path, report: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}
