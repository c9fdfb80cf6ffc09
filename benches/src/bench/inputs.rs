//! What every bench starts from: its out directory, private copies of the
//! binaries it runs, and the pcaps and customer tables synwall-mkpcap
//! writes.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use synwall_dataplane::pcap::read_pcap;

use super::host;

/// The options every bench driver takes: where it writes, which binaries it
/// runs, how long it waits for the machine to be idle, and the JSON copy.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Where the files, configs, logs and summaries go (default: a new /tmp dir).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The wrapper did not build (recorded in the command only).
    #[arg(long)]
    pub no_build: bool,
    /// Before each run, wait up to SECS for no compiler to be running.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub wait_idle: u64,
    /// Write the result (every round's values, medians, ratios) as JSON here
    /// (it is always written to OUT/result.json too).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Where synwall, synwallctl and synwall-mkpcap are (default: beside this binary).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

impl Common {
    /// The out directory (`--out`, or a new one under /tmp named after
    /// `bench`) and the copier of the binaries from `--bin-dir`.
    pub fn dirs(&self, bench: &str) -> Result<(PathBuf, Bins), String> {
        let out = out_dir(self.out.as_deref(), bench)?;
        let bins = Bins::new(&out, self.bin_dir.as_deref())?;
        Ok((out, bins))
    }
}

/// `--out DIR`, or a new directory under /tmp named after the bench.
pub fn out_dir(out: Option<&Path>, bench: &str) -> Result<PathBuf, String> {
    let dir = match out {
        Some(o) => o.to_path_buf(),
        None => std::env::temp_dir().join(format!(
            "synwall-{bench}.{}.{}",
            std::process::id(),
            host::unix_time()
        )),
    };
    std::fs::create_dir_all(dir.join("bin"))
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Private copies of the binaries (a concurrent rebuild must not swap them
/// mid-benchmark) in `out/bin`.
pub struct Bins {
    from: PathBuf,
    to: PathBuf,
}

impl Bins {
    /// Copies from `--bin-dir`, or from beside this binary (target/release).
    pub fn new(out: &Path, bin_dir: Option<&Path>) -> Result<Self, String> {
        let from = match bin_dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(Path::to_path_buf))
                .ok_or("cannot tell where synwall-bench is; give --bin-dir")?,
        };
        Ok(Bins {
            from,
            to: out.join("bin"),
        })
    }

    /// Copies the build's binary `name`.
    pub fn copy(&self, name: &str) -> Result<PathBuf, String> {
        self.copy_file(&self.from.join(name), name)
    }

    /// Copies `--baseline BIN` as `synwall-baseline`.
    pub fn baseline(&self, bin: Option<&Path>) -> Result<Option<PathBuf>, String> {
        match bin {
            Some(b) if b.is_file() => self.copy_file(b, "synwall-baseline").map(Some),
            Some(b) => Err(format!(
                "--baseline: {} is not an executable synwall",
                b.display()
            )),
            None => Ok(None),
        }
    }

    fn copy_file(&self, from: &Path, name: &str) -> Result<PathBuf, String> {
        let to = self.to.join(name);
        std::fs::copy(from, &to).map_err(|e| format!("copying {}: {e}", from.display()))?;
        Ok(to)
    }
}

/// Runs synwall-mkpcap with `args` (its description lines to stdout unless
/// `quiet`).
pub fn mkpcap(bin: &Path, args: &[&str], quiet: bool) -> Result<(), String> {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    if quiet {
        cmd.stdout(Stdio::null());
    }
    let status = cmd
        .status()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {} failed ({status})",
            bin.display(),
            args.join(" ")
        ))
    }
}

/// Parses `argv` (without the program's name) as a driver's options: what
/// the tests of each driver's checks start from.
#[cfg(test)]
pub fn parse_args<A: clap::Args>(argv: &[&str]) -> A {
    try_parse_args(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

/// [`parse_args`], with clap's error as a string where `argv` is not
/// options of the driver.
#[cfg(test)]
pub fn try_parse_args<A: clap::Args>(argv: &[&str]) -> Result<A, String> {
    let matches = A::augment_args(clap::Command::new("synwall-bench"))
        .try_get_matches_from(std::iter::once("synwall-bench").chain(argv.iter().copied()))
        .map_err(|e| e.to_string())?;
    A::from_arg_matches(&matches).map_err(|e| e.to_string())
}

pub fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// Frames of a flood capture when nothing else is asked for.
pub const FLOOD_MIN_FRAMES: u64 = 8192;

/// Frames of the flood pcap for `active` customers: `at_least` frames
/// (dataplane's `--flood-frames`; [`FLOOD_MIN_FRAMES`] when not given), and
/// never fewer than one a customer.
pub fn flood_frames(active: u64, at_least: Option<u64>) -> u64 {
    active.max(at_least.unwrap_or(FLOOD_MIN_FRAMES))
}

/// mbufs for a pcap of `frames` frames: the capture (infinite_rx keeps it in
/// the pool) + 8192 for rings, bursts and caches, rounded up to 2^k - 1 (the
/// size DPDK's mempool ring uses best).
pub fn pool_mbufs(frames: u64) -> u64 {
    (frames + 8192 + 1).next_power_of_two() - 1
}

/// Mean frame size on the wire of a capture (with the 4-byte FCS, 60 bytes
/// minimum before it, as `Mix::mean_wire_size` counts) and its frames.
pub fn mean_wire_size(path: &Path) -> Result<(f64, u64), String> {
    let frames = read_pcap(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if frames.is_empty() {
        return Err(format!("{}: no frames", path.display()));
    }
    let bytes: usize = frames.iter().map(|f| f.len().max(60) + 4).sum();
    Ok((bytes as f64 / frames.len() as f64, frames.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_two_frames_and_bad_files() {
        let dir = std::env::temp_dir().join(format!("synwall-bench-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("two.pcap");
        synwall_dataplane::pcap::write_pcap(&p, &[vec![0; 42], vec![0; 124]]).unwrap();
        assert_eq!(mean_wire_size(&p).unwrap(), (96.0, 2));
        std::fs::write(&p, b"nope").unwrap();
        assert!(mean_wire_size(&p).unwrap_err().contains("two.pcap"));
        assert!(mean_wire_size(&dir.join("missing.pcap")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pools_hold_the_capture_and_8192_more() {
        assert_eq!(pool_mbufs(8192), 32767);
        assert_eq!(pool_mbufs(100_000), 131_071);
        assert_eq!(pool_mbufs(8191), 16383);
    }

    #[test]
    fn flood_captures_hold_the_floor_and_every_customer() {
        // (active, --flood-frames, frames)
        let cases = [
            (1000, None, 8192),
            (8192, None, 8192),
            (100_000, None, 100_000),
            (8192, Some(100_000), 100_000),
            (100_000, Some(100_000), 100_000),
            (150_000, Some(100_000), 150_000),
            (1000, Some(2000), 2000),
            (5000, Some(2000), 5000),
        ];
        for (active, at_least, frames) in cases {
            assert_eq!(
                flood_frames(active, at_least),
                frames,
                "{active} {at_least:?}"
            );
        }
    }
}
