//! The synwall under test, seen from the generator: its config rewritten
//! for a capture-driven run, the process, and its control socket.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Where the capture-driven run keeps its files.
#[derive(Debug, Clone)]
pub struct PcapRun {
    pub dir: PathBuf,
    /// Frames into synwall's inside port.
    pub input: PathBuf,
    /// Frames into the outside port (none).
    pub reverse: PathBuf,
    /// What synwall forwarded upstream.
    pub out: PathBuf,
    /// What synwall sent back inside (resets).
    pub back: PathBuf,
    pub socket: PathBuf,
    pub summary: PathBuf,
    /// A unique EAL file prefix.
    pub file_prefix: String,
}

impl PcapRun {
    pub fn new(dir: &Path) -> PcapRun {
        // Ends in `_`: no other run's prefix continues it (see
        // `RuntimeDirs`, which removes the EAL's directory by prefix).
        let unique = format!(
            "swg{}x{}_",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() % 100_000)
        );
        PcapRun {
            dir: dir.to_path_buf(),
            input: dir.join("in.pcap"),
            reverse: dir.join("rev.pcap"),
            out: dir.join("out.pcap"),
            back: dir.join("back.pcap"),
            socket: dir.join("control.sock"),
            summary: dir.join("summary.json"),
            file_prefix: unique,
        }
    }
}

fn is_device_arg(a: &str) -> bool {
    a.starts_with("--vdev")
        || a.starts_with("--allow")
        || a.starts_with("--file-prefix")
        || a == "--no-pci"
        || a == "--no-shconf"
        || a.starts_with("--lcores")
}

/// synwall's config `text` (read from `path`) rewritten so that its one
/// link is two `net_pcap` ports of `run` (inside reads `run.input`, outside
/// writes `run.out`), with one worker and one queue, and its control socket,
/// state and events inside `run.dir`. Limits, plans, customers, detect and
/// block policy stay as they are: those are what is verified.
pub fn pcap_config(text: &str, path: &Path, run: &PcapRun) -> Result<String, String> {
    let mut cfg: toml::Table =
        toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(toml::Value::String(f)) = cfg.get("customers_file") {
        let p = Path::new(f);
        if !p.is_absolute() {
            let abs = base.join(p).display().to_string();
            cfg.insert("customers_file".into(), toml::Value::String(abs));
        }
    }
    let dpdk = cfg
        .entry("dpdk")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or("[dpdk] is not a table")?;
    let mut eal: Vec<String> = Vec::new();
    if let Some(toml::Value::Array(args)) = dpdk.get("eal_args") {
        let mut skip_next = false;
        for a in args {
            let a = a.as_str().ok_or("dpdk.eal_args holds a non-string")?;
            if skip_next {
                skip_next = false;
                continue;
            }
            if a == "-a" || a == "-b" || a == "--vdev" || a == "--file-prefix" || a == "--lcores" {
                skip_next = true;
                continue;
            }
            if is_device_arg(a) {
                continue;
            }
            eal.push(a.to_owned());
        }
    }
    if !eal
        .iter()
        .any(|a| a == "--no-huge" || a.starts_with("--huge"))
    {
        eal.extend(["--no-huge".to_owned(), "-m".to_owned(), "256".to_owned()]);
    }
    eal.extend([
        "--no-pci".to_owned(),
        "--no-shconf".to_owned(),
        format!("--file-prefix={}", run.file_prefix),
        format!(
            "--vdev=net_pcap0,rx_pcap={},tx_pcap={}",
            run.input.display(),
            run.back.display()
        ),
        format!(
            "--vdev=net_pcap1,rx_pcap={},tx_pcap={}",
            run.reverse.display(),
            run.out.display()
        ),
    ]);
    dpdk.insert(
        "eal_args".into(),
        toml::Value::Array(eal.into_iter().map(toml::Value::String).collect()),
    );
    let core = dpdk
        .get("cores")
        .and_then(|c| c.as_array())
        .and_then(|c| c.first())
        .and_then(|c| c.as_integer())
        .unwrap_or(1);
    dpdk.insert(
        "cores".into(),
        toml::Value::Array(vec![toml::Value::Integer(core)]),
    );
    let mut link = toml::Table::new();
    link.insert("name".into(), toml::Value::String("gen".into()));
    link.insert("inside".into(), toml::Value::String("net_pcap0".into()));
    link.insert("outside".into(), toml::Value::String("net_pcap1".into()));
    link.insert("queues".into(), toml::Value::Integer(1));
    cfg.insert(
        "link".into(),
        toml::Value::Array(vec![toml::Value::Table(link)]),
    );
    let control = cfg
        .entry("control")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or("[control] is not a table")?;
    let d = &run.dir;
    for (k, v) in [
        ("socket", run.socket.clone()),
        ("state_dir", d.join("state")),
        ("events", d.join("events.jsonl")),
    ] {
        control.insert(k.into(), toml::Value::String(v.display().to_string()));
    }
    // Side effects outside the run directory are not part of a verify run.
    control.remove("metrics_listen");
    control.remove("hook");
    control.remove("socket_group");
    toml::to_string(&cfg).map_err(|e| format!("writing the run's config: {e}"))
}

/// One request on synwall's control socket; the reply object.
pub fn request(socket: &Path, req: &Value) -> Result<Value, String> {
    let mut s = UnixStream::connect(socket)
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut line = req.to_string();
    line.push('\n');
    s.write_all(line.as_bytes())
        .map_err(|e| format!("writing to {}: {e}", socket.display()))?;
    let mut reply = String::new();
    BufReader::new(s)
        .read_line(&mut reply)
        .map_err(|e| format!("reading from {}: {e}", socket.display()))?;
    serde_json::from_str(&reply).map_err(|e| format!("reply {reply:?}: {e}"))
}

/// A customer as synwall's control socket reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SocketView {
    pub seen: u64,
    pub forwarded: u64,
    pub state: String,
}

/// `{"cmd":"customer"}` for `name`: its counters, or why not.
pub fn customer_view(socket: &Path, name: &str) -> Result<SocketView, String> {
    let r = request(
        socket,
        &serde_json::json!({"cmd": "customer", "customer": name}),
    )?;
    if r["ok"] != Value::Bool(true) {
        return Err(r["error"].as_str().unwrap_or("refused").to_owned());
    }
    let c = &r["customer"];
    Ok(SocketView {
        seen: c["seen"].as_u64().unwrap_or(0),
        forwarded: c["forwarded"].as_u64().unwrap_or(0),
        state: c["state"].as_str().unwrap_or("?").to_owned(),
    })
}

/// The synwall binary: the given one, else next to this executable, else
/// `synwall` on `$PATH`.
pub fn synwall_binary(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            for cand in [dir.join("synwall"), dir.join("../synwall")] {
                if cand.exists() {
                    return cand;
                }
            }
        }
    }
    PathBuf::from("synwall")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_rewritten_for_pcap() {
        let text = r#"
customers_file = "more.toml"
[dpdk]
eal_args = ["-m", "512", "-a", "0000:01:00.0", "--vdev=net_memif0,role=server", "--log-level=*:notice"]
cores = [2, 3]
[[link]]
inside = "0000:01:00.0"
outside = "0000:01:00.1"
queues = 2
[control]
socket = "/run/synwall/control.sock"
metrics_listen = "127.0.0.1:9925"
[windows]
"5m" = 100
"#;
        let run = PcapRun::new(Path::new("/tmp/r"));
        let out = pcap_config(text, Path::new("/etc/synwall/s.toml"), &run).unwrap();
        let v: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(v["customers_file"].as_str(), Some("/etc/synwall/more.toml"));
        let eal: Vec<&str> = v["dpdk"]["eal_args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            !eal.iter()
                .any(|a| a.contains("memif") || a.contains("0000:")),
            "{eal:?}"
        );
        assert!(eal.contains(&"--log-level=*:notice"), "{eal:?}");
        assert!(eal
            .iter()
            .any(|a| a.starts_with("--vdev=net_pcap0,rx_pcap=/tmp/r/in.pcap")));
        assert_eq!(v["dpdk"]["cores"].as_array().unwrap().len(), 1);
        assert_eq!(v["link"][0]["inside"].as_str(), Some("net_pcap0"));
        assert_eq!(v["control"]["socket"].as_str(), Some("/tmp/r/control.sock"));
        assert!(v["control"].get("metrics_listen").is_none());
        assert_eq!(v["windows"]["5m"].as_integer(), Some(100));
    }
}
