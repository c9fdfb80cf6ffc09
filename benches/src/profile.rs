//! `synwall-gen` traffic profiles: TOML, read with serde and
//! `deny_unknown_fields`, then checked into typed values. An error names the
//! file, the key and the reason.
//!
//! ```toml
//! [dpdk]
//! eal_args = ["--no-huge", "-m", "256", "--no-pci", "--vdev=net_ring0"]
//! cores = [1]              # per queue pair: one lcore (tx and rx in one loop)
//!                          # or two (tx, rx); default 1..=queues
//! tx_port = "net_ring0"
//! rx_port = "net_ring0"
//! queues = 1               # tx/rx queue pairs, each driven by its own lcore(s)
//!
//! [appliance]              # the synwall under test (verify, cross-checks)
//! config = "synwall.toml"  # its config; verify replays through it on net_pcap
//! binary = "synwall"       # optional: default is next to synwall-gen, then $PATH
//! socket = "/run/synwall/control.sock"   # optional: live cross-checks
//! malformed = "forward"    # what its [detect] malformed policy does
//! ports = [25]             # its [detect] ports
//!
//! [traffic]
//! seed = 1
//! sizes = "imix"           # "64" | "imix" | a frame size in bytes (with FCS)
//!
//! [[customer]]
//! name = "spammer"
//! prefixes = ["198.51.100.0/24"]
//! pattern = "hammer"       # hammer | trickle | steady
//! rate = 2000              # SYNs per second
//! duration = 0.15          # seconds (or count = N)
//! limit = 100              # the tightest limit synwall enforces on it over
//!                          # the trace (absent: no limit can be reached)
//!
//! [background]
//! frames = 2000            # frames besides the customers' SYNs
//! rate = 20000             # their rate (frames/s) on the trace's time line
//! tcp = 50                 # shares by kind (relative weights)
//! http = 25
//! udp_dns = 15
//! smtp_data = 5
//! icmp = 5
//! ipv6_pct = 5             # of the background frames
//! vlan_pct = 10
//! qinq_pct = 3
//! malformed_pct = 1
//! ```
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use synwall_config::Prefix;
use synwall_config::PrefixError;

/// An error in a profile: the file, the key and the reason.
#[derive(Debug)]
pub struct ProfileError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.reason)
        }
    }
}

impl std::error::Error for ProfileError {}

/// The profile as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub dpdk: Option<RawDpdk>,
    pub appliance: Option<RawAppliance>,
    pub traffic: Option<RawTraffic>,
    #[serde(default, rename = "customer")]
    pub customers: Vec<RawCustomer>,
    pub background: Option<RawBackground>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDpdk {
    #[serde(default)]
    pub eal_args: Vec<String>,
    #[serde(default)]
    pub cores: Vec<u32>,
    pub tx_port: Option<String>,
    pub rx_port: Option<String>,
    pub queues: Option<u16>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppliance {
    pub config: Option<String>,
    pub binary: Option<String>,
    pub socket: Option<String>,
    pub malformed: Option<String>,
    pub ports: Option<Vec<u16>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraffic {
    pub seed: Option<u64>,
    pub sizes: Option<SizesText>,
}

/// `sizes = "64"`, `"imix"` or a number.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SizesText {
    Number(i64),
    Text(String),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomer {
    pub name: String,
    pub prefixes: Vec<String>,
    pub pattern: String,
    pub rate: Option<f64>,
    pub duration: Option<f64>,
    pub count: Option<u64>,
    pub start: Option<f64>,
    pub limit: Option<u64>,
    pub sizes: Option<SizesText>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackground {
    pub frames: Option<u64>,
    pub rate: Option<f64>,
    pub tcp: Option<f64>,
    pub http: Option<f64>,
    pub udp_dns: Option<f64>,
    pub smtp_data: Option<f64>,
    pub icmp: Option<f64>,
    pub ipv6_pct: Option<f64>,
    pub vlan_pct: Option<f64>,
    pub qinq_pct: Option<f64>,
    pub malformed_pct: Option<f64>,
    pub sizes: Option<SizesText>,
}

/// Frame sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FrameSize {
    /// As small as the headers allow, at least 64 B on the wire.
    Min,
    /// 7×64, 4×570, 1×1518 B on the wire (data frames; SYNs stay small).
    Imix,
    /// This many bytes on the wire (with FCS), 64..=1518.
    Fixed(u16),
}

/// How a customer sends its SYNs to port 25.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Pattern {
    /// A short, heavy burst from a few addresses: the spammer.
    Hammer,
    /// A slow rate, every SYN from another address of the pool.
    Trickle,
    /// A constant rate from a handful of mail servers.
    Steady,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Hammer => "hammer",
            Pattern::Trickle => "trickle",
            Pattern::Steady => "steady",
        }
    }
}

/// A customer's source prefix: synwall's own [`Prefix`] (so a profile
/// accepts exactly the prefixes a synwall config does, but /0), and the
/// host addresses the generator sends from.
pub fn parse_prefix(text: &str) -> Result<Prefix, String> {
    let p: Prefix = text.parse().map_err(|e: PrefixError| e.to_string())?;
    if p.len == 0 {
        return Err(format!(
            "{text:?}: a source prefix needs a length of at least 1"
        ));
    }
    Ok(p)
}

/// The source addresses of a [`Prefix`].
pub trait Sources {
    /// Number of host addresses usable as sources (capped at 2^20).
    fn sources(&self) -> u64;
    /// The `i`-th source address (`i` modulo [`Self::sources`]).
    fn source(&self, i: u64) -> IpAddr;
}

impl Sources for Prefix {
    fn sources(&self) -> u64 {
        match host_bits(self) {
            0 => 1,
            1 => 2,
            h if h >= 20 => 1 << 20,
            h => (1u64 << h) - 2,
        }
    }

    fn source(&self, i: u64) -> IpAddr {
        let n = self.sources();
        // /31, /32 (and /127, /128): every address; else skip the network
        // address.
        let off = u128::from(if host_bits(self) <= 1 {
            i % n
        } else {
            1 + i % n
        });
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(((u128::from(u32::from(a)) + off) as u32).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) + off).into()),
        }
    }
}

/// How many bits of `p`'s addresses are host bits.
fn host_bits(p: &Prefix) -> u32 {
    let width = if p.is_ipv4() { 32 } else { 128 };
    width - u32::from(p.len)
}

/// One customer of the profile.
#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub name: String,
    pub prefixes: Vec<Prefix>,
    pub pattern: Pattern,
    /// SYNs per second on the trace's time line.
    pub rate: f64,
    /// SYNs in all.
    pub count: u64,
    /// When the first SYN goes, seconds into the trace.
    pub start: f64,
    /// The tightest limit synwall enforces on it over the trace.
    pub limit: Option<u64>,
}

impl Customer {
    /// SYNs synwall must forward: the limit caps them.
    pub fn expected_forwarded(&self, sent: u64) -> u64 {
        self.limit.map_or(sent, |l| sent.min(l))
    }
}

/// Shares of background kinds.
#[derive(Debug, Clone, Serialize)]
pub struct Background {
    pub frames: u64,
    pub rate: f64,
    pub tcp: f64,
    pub http: f64,
    pub udp_dns: f64,
    pub smtp_data: f64,
    pub icmp: f64,
    pub ipv6_pct: f64,
    pub vlan_pct: f64,
    pub qinq_pct: f64,
    pub malformed_pct: f64,
    pub sizes: FrameSize,
}

/// What synwall's malformed policy does with malformed frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MalformedExpect {
    Forward,
    Drop,
}

/// The appliance under test.
#[derive(Debug, Clone, Serialize)]
pub struct Appliance {
    pub config: Option<PathBuf>,
    pub binary: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub malformed: MalformedExpect,
    pub ports: Vec<u16>,
}

/// The generator's own DPDK setup.
#[derive(Debug, Clone, Serialize)]
pub struct Dpdk {
    pub eal_args: Vec<String>,
    pub cores: Vec<u32>,
    pub tx_port: Option<String>,
    pub rx_port: Option<String>,
    pub queues: u16,
}

/// Most queue pairs the generator drives per port.
pub const MAX_QUEUES: u16 = 16;

/// One tx/rx queue pair of the generator and the lcores that drive it:
/// `tx_lcore` sends on tx queue `queue`, `rx_lcore` receives on rx queue
/// `queue`; the same lcore means one loop does both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lane {
    pub queue: u16,
    pub tx_lcore: u32,
    pub rx_lcore: u32,
}

impl Dpdk {
    /// The lcores, as listed or by default `1..=queues` (lcore 0 is the
    /// EAL main lcore, which prints the stats).
    pub fn worker_lcores(&self) -> Vec<u32> {
        if self.cores.is_empty() {
            (1..=u32::from(self.queues)).collect()
        } else {
            self.cores.clone()
        }
    }

    /// Which lcores drive which queue pair: with one lcore per queue, lcore
    /// `cores[q]` sends and receives on queue `q`; with two, `cores[2q]`
    /// sends and `cores[2q + 1]` receives.
    pub fn lanes(&self) -> Result<Vec<Lane>, String> {
        let q = usize::from(self.queues);
        if q == 0 || self.queues > MAX_QUEUES {
            return Err(format!(
                "{} queues is not within 1..={MAX_QUEUES}",
                self.queues
            ));
        }
        let cores = self.worker_lcores();
        let mut seen = HashSet::new();
        for c in &cores {
            if *c == 0 {
                return Err(
                    "lcore 0 is the main lcore (it prints the stats); list worker lcores from 1"
                        .into(),
                );
            }
            if !seen.insert(*c) {
                return Err(format!("lcore {c} is listed twice"));
            }
        }
        let per = if cores.len() == q {
            1
        } else if cores.len() == 2 * q {
            2
        } else {
            return Err(format!(
                "{} lcores for {q} queue pair(s): list one lcore per queue (tx and rx in one loop) or two (tx, rx), i.e. {q} or {} lcores",
                cores.len(),
                2 * q
            ));
        };
        Ok((0..q)
            .map(|i| Lane {
                queue: i as u16,
                tx_lcore: cores[per * i],
                rx_lcore: cores[per * i + per - 1],
            })
            .collect())
    }

    /// Replaces the lcores and/or the queue count (command-line overrides)
    /// and checks the result; on error nothing changes. Changing only the
    /// queue count drops lcores that no longer fit (back to the default).
    pub fn set_lanes(
        &mut self,
        cores: Option<Vec<u32>>,
        queues: Option<u16>,
    ) -> Result<(), String> {
        let mut d = self.clone();
        if let Some(q) = queues {
            d.queues = q;
            if cores.is_none()
                && d.cores.len() != usize::from(q)
                && d.cores.len() != 2 * usize::from(q)
            {
                d.cores.clear();
            }
        }
        if let Some(c) = cores {
            d.cores = c;
        }
        d.lanes()?;
        *self = d;
        Ok(())
    }
}

/// Parses a list of lcores: `1,2` or `1-4` or a mix (`1,3-4`).
pub fn parse_lcores(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let num = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("{text:?}: {t:?} is not an lcore number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b || b - a > 1024 {
                    return Err(format!("{text:?}: {part:?} is not a range low-high"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

/// A checked profile.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub path: PathBuf,
    pub dpdk: Dpdk,
    pub appliance: Appliance,
    pub seed: u64,
    pub sizes: FrameSize,
    pub customers: Vec<Customer>,
    pub background: Background,
}

fn sizes(text: &Option<SizesText>, default: FrameSize) -> Result<FrameSize, String> {
    match text {
        None => Ok(default),
        Some(SizesText::Text(t)) if t == "64" || t == "min" => Ok(FrameSize::Min),
        Some(SizesText::Text(t)) if t == "imix" => Ok(FrameSize::Imix),
        Some(SizesText::Text(t)) => match t.parse::<i64>() {
            Ok(n) => sizes(&Some(SizesText::Number(n)), default),
            Err(_) => Err(format!("{t:?} is not \"64\", \"imix\" or a size in bytes")),
        },
        Some(SizesText::Number(64)) => Ok(FrameSize::Min),
        Some(SizesText::Number(n)) if (64..=1518).contains(n) => Ok(FrameSize::Fixed(*n as u16)),
        Some(SizesText::Number(n)) => Err(format!("{n} is not within 64..=1518 bytes")),
    }
}

impl Profile {
    /// Reads and checks the profile at `path`; relative paths inside are
    /// taken relative to its directory.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            file: file.clone(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Profile::parse(&text, path)
    }

    /// Checks profile text as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        let file = path.display().to_string();
        let err = |key: &str, reason: String| ProfileError {
            file: file.clone(),
            key: key.to_owned(),
            reason,
        };
        let raw: RawProfile = toml::from_str(text).map_err(|e| {
            err(
                "",
                e.to_string().trim_end().replace('\n', "\n  ").to_string(),
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let d = raw.dpdk.unwrap_or_default();
        let queues = d.queues.unwrap_or(1);
        if queues == 0 || queues > MAX_QUEUES {
            return Err(err(
                "dpdk.queues",
                format!("{queues} is not within 1..={MAX_QUEUES}"),
            ));
        }
        let dpdk = Dpdk {
            eal_args: d.eal_args,
            cores: d.cores,
            tx_port: d.tx_port,
            rx_port: d.rx_port,
            queues,
        };
        dpdk.lanes().map_err(|e| err("dpdk.cores", e))?;
        let a = raw.appliance.unwrap_or_default();
        let malformed = match a.malformed.as_deref() {
            None | Some("forward") => MalformedExpect::Forward,
            Some("drop") => MalformedExpect::Drop,
            Some(o) => {
                return Err(err(
                    "appliance.malformed",
                    format!("{o:?} is not \"forward\" or \"drop\""),
                ))
            }
        };
        let appliance = Appliance {
            config: a.config.as_deref().map(rel),
            binary: a.binary.as_deref().map(|b| {
                if b.contains('/') {
                    rel(b)
                } else {
                    PathBuf::from(b)
                }
            }),
            socket: a.socket.as_deref().map(rel),
            malformed,
            ports: a.ports.unwrap_or_else(|| vec![25]),
        };
        if appliance.ports.is_empty() || appliance.ports.contains(&0) {
            return Err(err(
                "appliance.ports",
                "needs at least one port, none 0".into(),
            ));
        }
        let t = raw.traffic.unwrap_or_default();
        let frame_sizes = sizes(&t.sizes, FrameSize::Min).map_err(|e| err("traffic.sizes", e))?;
        let mut names = HashSet::new();
        let mut customers = Vec::new();
        for (i, c) in raw.customers.iter().enumerate() {
            let key = |k: &str| format!("customer[{i}] ({}).{k}", c.name);
            if c.name.is_empty() || !names.insert(c.name.clone()) {
                return Err(err(
                    &format!("customer[{i}].name"),
                    format!("{:?} is empty or used twice", c.name),
                ));
            }
            if c.prefixes.is_empty() {
                return Err(err(&key("prefixes"), "needs at least one prefix".into()));
            }
            let prefixes = c
                .prefixes
                .iter()
                .map(|p| parse_prefix(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(&key("prefixes"), e))?;
            let pattern = match c.pattern.as_str() {
                "hammer" => Pattern::Hammer,
                "trickle" => Pattern::Trickle,
                "steady" => Pattern::Steady,
                o => {
                    return Err(err(
                        &key("pattern"),
                        format!("{o:?} is not hammer, trickle or steady"),
                    ))
                }
            };
            let rate = c.rate.unwrap_or(match pattern {
                Pattern::Hammer => 1000.0,
                Pattern::Trickle => 1.0,
                Pattern::Steady => 10.0,
            });
            if !(rate > 0.0 && rate <= 1e9) {
                return Err(err(&key("rate"), format!("{rate} is not within (0, 1e9]")));
            }
            let count = match (c.count, c.duration) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        &key("count"),
                        "give count or duration, not both".into(),
                    ))
                }
                (Some(n), None) => n,
                (None, Some(d)) if d > 0.0 && d.is_finite() => (rate * d).round() as u64,
                (None, Some(d)) => {
                    return Err(err(&key("duration"), format!("{d} is not > 0 seconds")))
                }
                (None, None) => {
                    return Err(err(
                        &key("count"),
                        "needs count (SYNs) or duration (seconds)".into(),
                    ))
                }
            };
            if count > 10_000_000 {
                return Err(err(&key("count"), format!("{count} is over 10M SYNs")));
            }
            let start = c.start.unwrap_or(0.0);
            if !(start >= 0.0 && start.is_finite()) {
                return Err(err(&key("start"), format!("{start} is not >= 0")));
            }
            sizes(&c.sizes, frame_sizes).map_err(|e| err(&key("sizes"), e))?;
            customers.push(Customer {
                name: c.name.clone(),
                prefixes,
                pattern,
                rate,
                count,
                start,
                limit: c.limit,
            });
        }
        // Overlapping pools would make the per-customer counts ambiguous.
        for (i, a) in customers.iter().enumerate() {
            for b in &customers[i + 1..] {
                for pa in &a.prefixes {
                    for pb in &b.prefixes {
                        if pa.contains(pb.addr) || pb.contains(pa.addr) {
                            return Err(err(
                                "customer",
                                format!("{} ({pa}) and {} ({pb}) overlap", a.name, b.name),
                            ));
                        }
                    }
                }
            }
        }
        let b = raw.background.unwrap_or_default();
        let pct = |v: Option<f64>, k: &str, d: f64| -> Result<f64, ProfileError> {
            let v = v.unwrap_or(d);
            if (0.0..=100.0).contains(&v) {
                Ok(v)
            } else {
                Err(err(
                    &format!("background.{k}"),
                    format!("{v} is not within 0..=100"),
                ))
            }
        };
        let background = Background {
            frames: b.frames.unwrap_or(1000),
            rate: b.rate.unwrap_or(10_000.0),
            tcp: pct(b.tcp, "tcp", 50.0)?,
            http: pct(b.http, "http", 25.0)?,
            udp_dns: pct(b.udp_dns, "udp_dns", 15.0)?,
            smtp_data: pct(b.smtp_data, "smtp_data", 5.0)?,
            icmp: pct(b.icmp, "icmp", 5.0)?,
            ipv6_pct: pct(b.ipv6_pct, "ipv6_pct", 5.0)?,
            vlan_pct: pct(b.vlan_pct, "vlan_pct", 10.0)?,
            qinq_pct: pct(b.qinq_pct, "qinq_pct", 3.0)?,
            malformed_pct: pct(b.malformed_pct, "malformed_pct", 1.0)?,
            sizes: sizes(&b.sizes, frame_sizes).map_err(|e| err("background.sizes", e))?,
        };
        if background.vlan_pct + background.qinq_pct > 100.0 {
            return Err(err(
                "background.vlan_pct",
                "vlan_pct + qinq_pct exceed 100".into(),
            ));
        }
        if background.frames > 0
            && background.tcp
                + background.http
                + background.udp_dns
                + background.smtp_data
                + background.icmp
                <= 0.0
        {
            return Err(err(
                "background",
                "all kind shares are 0 but frames > 0".into(),
            ));
        }
        if background.rate.is_nan() || background.rate <= 0.0 {
            return Err(err("background.rate", "must be > 0".into()));
        }
        if background.frames > 10_000_000 {
            return Err(err("background.frames", "at most 10M".into()));
        }
        Ok(Profile {
            path: path.to_path_buf(),
            dpdk,
            appliance,
            seed: t.seed.unwrap_or(1),
            sizes: frame_sizes,
            customers,
            background,
        })
    }

    /// The customer owning `ip`, by index.
    pub fn customer_of(&self, ip: IpAddr) -> Option<usize> {
        self.customers
            .iter()
            .position(|c| c.prefixes.iter().any(|p| p.contains(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[traffic]
sizes = "imix"
[[customer]]
name = "spam"
prefixes = ["198.51.100.0/24", "2001:db8:1::/48"]
pattern = "hammer"
rate = 1000
duration = 0.3
limit = 100
[[customer]]
name = "quiet"
prefixes = ["203.0.113.0/28"]
pattern = "trickle"
count = 12
[background]
frames = 50
"#;

    fn parse(text: &str) -> Result<Profile, ProfileError> {
        Profile::parse(text, Path::new("/p/prof.toml"))
    }

    #[test]
    fn good_profile() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.customers[0].count, 300);
        assert_eq!(p.customers[0].expected_forwarded(300), 100);
        assert_eq!(p.customers[1].expected_forwarded(12), 12);
        assert_eq!(p.sizes, FrameSize::Imix);
        assert_eq!(p.background.sizes, FrameSize::Imix);
        assert_eq!(p.customer_of("198.51.100.7".parse().unwrap()), Some(0));
        assert_eq!(p.customer_of("2001:db8:1:2::9".parse().unwrap()), Some(0));
        assert_eq!(p.customer_of("203.0.113.16".parse().unwrap()), None);
        assert_eq!(p.appliance.ports, vec![25]);
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let e = parse("[traffic]\nsizez = 1\n").unwrap_err().to_string();
        assert!(
            e.starts_with("/p/prof.toml: ") && e.contains("sizez"),
            "{e}"
        );
        let e = parse(&GOOD.replace("\"hammer\"", "\"flood\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("customer[0] (spam).pattern") && e.contains("flood"),
            "{e}"
        );
        let e = parse(&GOOD.replace("/24", "/33")).unwrap_err().to_string();
        assert!(e.contains("prefixes") && e.contains("at most /32"), "{e}");
        let e = parse(&GOOD.replace("198.51.100.0/24", "198.51.100.1/24"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("host bits"), "{e}");
        let e = parse(&GOOD.replace("count = 12", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("count (SYNs) or duration"), "{e}");
        let e = parse(&GOOD.replace("203.0.113.0/28", "198.51.100.128/28"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlap"), "{e}");
        let e = parse(&GOOD.replace("\"imix\"", "\"jumbo\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("traffic.sizes"), "{e}");
    }

    #[test]
    fn lanes_from_cores_and_queues() {
        let with = |extra: &str| parse(&format!("[dpdk]\n{extra}\n{GOOD}"));
        let p = parse(GOOD).unwrap();
        assert_eq!(
            p.dpdk.lanes().unwrap(),
            vec![Lane {
                queue: 0,
                tx_lcore: 1,
                rx_lcore: 1
            }]
        );
        let p = with("cores = [3, 5]").unwrap();
        assert_eq!(
            p.dpdk.lanes().unwrap(),
            vec![Lane {
                queue: 0,
                tx_lcore: 3,
                rx_lcore: 5
            }]
        );
        let p = with("queues = 2").unwrap();
        let l = p.dpdk.lanes().unwrap();
        assert_eq!(
            (l[0].tx_lcore, l[0].rx_lcore, l[1].queue, l[1].tx_lcore),
            (1, 1, 1, 2)
        );
        let p = with("queues = 2\ncores = [1, 2, 3, 4]").unwrap();
        let l = p.dpdk.lanes().unwrap();
        assert_eq!((l[1].tx_lcore, l[1].rx_lcore), (3, 4));
        let e = with("queues = 2\ncores = [1, 2, 3]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dpdk.cores") && e.contains("2 or 4 lcores"),
            "{e}"
        );
        let e = with("cores = [0]").unwrap_err().to_string();
        assert!(e.contains("dpdk.cores") && e.contains("main lcore"), "{e}");
        let e = with("queues = 2\ncores = [1, 1]").unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
        let e = with("queues = 17").unwrap_err().to_string();
        assert!(e.contains("dpdk.queues") && e.contains("1..=16"), "{e}");

        // Command-line overrides: checked, and nothing changes on error.
        let mut d = parse(GOOD).unwrap().dpdk;
        d.set_lanes(None, Some(2)).unwrap();
        assert_eq!(d.worker_lcores(), vec![1, 2]);
        d.set_lanes(Some(parse_lcores("2-3").unwrap()), None)
            .unwrap();
        assert_eq!(d.lanes().unwrap()[1].tx_lcore, 3);
        assert!(d.set_lanes(Some(vec![1, 2, 3]), None).is_err());
        assert_eq!(d.worker_lcores(), vec![2, 3]);
        assert!(d.set_lanes(None, Some(0)).is_err());
        assert_eq!(d.queues, 2);
        assert_eq!(parse_lcores("1, 3-4").unwrap(), vec![1, 3, 4]);
        assert!(parse_lcores("1,x").unwrap_err().contains("\"x\""));
        assert!(parse_lcores("4-1").is_err());
    }

    #[test]
    fn prefix_hosts() {
        let p = parse_prefix("10.0.0.0/30").unwrap();
        assert_eq!(p.sources(), 2);
        assert_eq!(p.source(0).to_string(), "10.0.0.1");
        assert_eq!(p.source(3).to_string(), "10.0.0.2");
        let p = parse_prefix("10.0.0.5/32").unwrap();
        assert_eq!(p.source(7).to_string(), "10.0.0.5");
        let p = parse_prefix("2001:db8::/64").unwrap();
        assert_eq!(p.source(0).to_string(), "2001:db8::1");
        assert!(parse_prefix("0.0.0.0/0").is_err(), "a /0 is no customer");
        assert!(parse_prefix("10.0.0.1/24").is_err(), "host bits");
    }
}
